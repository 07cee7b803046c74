r"""SphereFace's monotone multiplicative angular margin psi and its first two derivatives in c = cos theta.

Liu et al. (SphereFace, CVPR 2017; L-Softmax, ICML 2016) replace cos(theta_y) in the target logit by

    psi(theta) = (-1)^k cos(m theta) - 2k,   theta in [k pi / m, (k + 1) pi / m],  k = 0..m-1,

for an integer margin m >= 1: cos(m theta) alone stops decreasing at theta = pi / m, and the
shift -2k with the sign (-1)^k continues it as one monotone decreasing curve from psi(0) = 1
to psi(pi) = 1 - 2m.  With cos(m theta) = T_m(cos theta) (Chebyshev polynomial of the
first kind) it is a piecewise polynomial in c = cos theta:

    psi(c)   = (-1)^k T_m(c) - 2k,
    psi'(c)  = (-1)^k T_m'(c) = (-1)^k m U_{m-1}(c)     (U: second kind; T_n' = n U_{n-1}),
    psi''(c) = (-1)^k T_m''(c).

The piece index k = floor(m arccos(c) / pi), clipped to m - 1, is computed without arccos:
k = #{j in 1..m-1 : c <= cos(j pi / m)}, the count of piece boundaries at or below theta
(the same k; a boundary itself belongs to the piece of larger theta, as with the floor).

Smoothness.  At theta = j pi / m (0 < j < m) sin(m theta) = 0, so U_{m-1}(c) = sin(m theta) /
sin(theta) = 0 from both sides: psi' is continuous (0 there), psi is C^1 in c and in theta.
psi'' is not: T_m''(cos(j pi / m)) = (-1)^{j+1} m^2 / sin^2(j pi / m), and the factor (-1)^k
flips across the boundary, so psi'' jumps by 2 m^2 / sin^2(j pi / m) (a kink of order 2;
m = 1 has no boundary and psi(c) = c).  At c = +-1 (theta = 0 or pi) the forms are finite,
psi'(+-1) = m^2, with no division by sin theta (unlike ArcFace's psi', which has one).

T_m, U_{m-1} and T_m'' come from the three-term recurrences, stable for |c| <= 1 (every
term stays bounded there; no powers of c, no cancellation between large monomials):

    T_{n+1} = 2c T_n - T_{n-1},  U_n = 2c U_{n-1} - U_{n-2},  T_{n+1}'' = 4n U_{n-1} + 2c T_n'' - T_{n-1}''

(the last from differentiating the first twice, with T_n' = n U_{n-1}), starting from
T_0 = 1, T_1 = c, U_{-1} = 0, U_0 = 1, T_0'' = T_1'' = 0.
"""

from __future__ import annotations

import math
from typing import Any

from . import _embedding_common as C

Array = Any

__all__ = ["chebyshev", "sphereface_psi"]


def chebyshev(xp: Any, c: Array, m: int) -> tuple[Array, Array, Array]:
    """(T_m(c), U_{m-1}(c), T_m''(c)) by the three-term recurrences of the module docstring."""
    t_prev, t = xp.ones_like(c), c  # T_0, T_1
    u_prev, u = xp.zeros_like(c), xp.ones_like(c)  # U_{-1}, U_0
    d2_prev, d2 = xp.zeros_like(c), xp.zeros_like(c)  # T_0'', T_1''
    for n in range(1, m):  # from (T_n, U_{n-1}, T_n'') to (T_{n+1}, U_n, T_{n+1}'')
        t_prev, t = t, 2.0 * c * t - t_prev
        d2_prev, d2 = d2, 4.0 * n * u + 2.0 * c * d2 - d2_prev
        u_prev, u = u, 2.0 * c * u - u_prev
    return t, u, d2


def sphereface_psi(xp: Any, c: Array, m: int, order: int = 1) -> tuple[Array, ...]:
    """(psi, psi') of the cosines c (entries in [-1, 1]), and psi'' when order is 2."""
    k = xp.zeros_like(c)
    sign = xp.ones_like(c)  # (-1)^k
    for j in range(1, m):
        past = c <= math.cos(j * math.pi / m)  # theta >= j pi / m: piece j or later
        k = k + C.as_float(xp, past, c)
        sign = xp.where(past, -sign, sign)
    t, u, d2 = chebyshev(xp, c, m)
    out = (sign * t - 2.0 * k, sign * (m * u))
    return out if order < 2 else (*out, sign * d2)
