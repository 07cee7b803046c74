"""lossgrad losses in JAX: jit, grad, hessian and vmap with the closed-form derivatives.

    python examples/engine_jax.py
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import lossgrad
from lossgrad.integrations import jax as lgj

jax.config.update("jax_enable_x64", True)


def main() -> None:
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.normal(size=(500, 3)))
    beta_true = jnp.asarray([1.0, -2.0, 0.5])
    counts = jnp.asarray(rng.poisson(np.exp(np.asarray(X @ beta_true) * 0.5)).astype(float))

    poisson = lgj.function("poisson")
    objective = jax.jit(lambda b: poisson(counts, 0.5 * (X @ b)))
    newton = jax.jit(lambda b: b - jnp.linalg.solve(jax.hessian(objective)(b), jax.grad(objective)(b)))
    beta = jnp.zeros(3)
    for _ in range(8):
        beta = newton(beta)
    print(f"Poisson regression by Newton (exact Hessian through custom_jvp): {np.round(np.asarray(beta), 4)}")

    # the Hessian jax computes is lossgrad's closed form
    f = 0.5 * (X @ beta)
    diag = jnp.diag(jax.hessian(lambda f: poisson(counts, f, reduction="sum"))(f))
    ref = lossgrad.get("poisson").hess(np.asarray(counts), np.asarray(f))
    print(f"max |jax.hessian - lossgrad hess| = {float(jnp.max(jnp.abs(diag - ref))):.1e}")

    # vmap over several label sets for a row loss
    ce = lgj.function("cross_entropy", label_smoothing=0.1)
    logits = jnp.asarray(rng.normal(size=(4, 10, 5)))
    labels = jnp.asarray(rng.integers(0, 5, (4, 10)))
    print("per-batch cross-entropy (vmap):", np.round(np.asarray(jax.vmap(ce)(labels, logits)), 4))


if __name__ == "__main__":
    main()
