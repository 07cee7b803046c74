"""The focal / poly1 / kl_divergence row kernels (lossgrad.kernels._row_softmax) against the reference.

Every registered variant (and a few more options) x float32/float64 x labels/probability
rows x with/without sample_weight x the ops value, grad, value+grad, hess_diag,
grad+hess_diag through the public
methods: the kernel path (``kernel_threshold=0``, checked to have run) equals the
reference (``use_kernels=False``) to a few ulps of the row's scale; bad input raises the
reference's own error; the threaded path; the dispatch.
"""

from __future__ import annotations

import numpy as np
import pytest

import lossgrad
from lossgrad import kernels
from lossgrad._registry import catalog
from lossgrad.kernels import _row_softmax as RS

NAMES = ("focal", "poly1", "kl_divergence")
VARIANTS = [(e.name, e.cls, p) for e in catalog(shape="row") if e.name in NAMES for p in e.variants]
EXTRA = [
    ("focal", lossgrad.Focal, {"gamma": 1.5, "alpha": (1.0, 0.0, 0.5, 3.0, 1.0, 0.25, 2.0)}),
    ("focal", lossgrad.Focal, {"gamma": 2.0, "alpha": (0.5,) * 7}),
    ("poly1", lossgrad.Poly1, {"epsilon": 0.5}),
]
N, K = 97, 7
RNG = np.random.default_rng(0)
OPS = (("value",), ("grad",), ("value", "grad"), ("hess_diag",), ("grad", "hess_diag"))


def _ids(case):
    name, _, p = case
    return name + "[" + ",".join(f"{k}={v}" for k, v in p.items()) + "]"


def _logits(dt, n, k, big=300.0):
    f = RNG.normal(0, 4, (n, k)) * RNG.uniform(0.1, 3, (n, 1))
    f[3] += big  # large logits: lse and s = f - lse lose digits (in both implementations)
    f[4] = 1.25  # ties: the first arg-max is c*
    f[5, 2] += 2.5 * big  # one class far ahead: p_c* = 1 to the last bit (the kernel's shifted t)
    f[6, :3] = f[6, 3:6].max() + 40.0  # tied leaders far ahead
    return f.astype(dt)


def _targets(loss, dt, n, k, f):
    out = []
    if loss.accepts_labels:
        y = RNG.integers(0, k, n)
        y[:12] = np.argmax(f[:12], axis=1)  # the label at the arg-max: p_y -> 1 rows
        out.append(y)
    q = RNG.dirichlet(np.full(k, 0.5), n)
    q[::4, 1] = 0.0  # exact zeros (0 log 0)
    q[7] = 0.0
    q[7, np.argmax(f[7])] = 1.0  # a one-hot row at the arg-max
    q[8] = 1e-12
    q[8, 0] = 1.0 - (k - 1) * 1e-12  # near one-hot, entries near 1 and tiny ones
    q = q / q.sum(axis=1, keepdims=True)
    if getattr(loss, "log_target", False):
        q = np.log(np.clip(q, 1e-300, None))
        q[9, 1] = -900.0  # e^y underflows
        q = q - np.logaddexp.reduce(q, axis=1, keepdims=True)
    out.append(q.astype(dt))
    return out


def _weights(dt, n):
    w = RNG.uniform(0, 2, n)
    w[::11] = 0.0
    return w.astype(dt)


def _scale(loss):
    """Bound on |phi'| (the gradient's coefficient size): the tolerance's unit."""
    if isinstance(loss, lossgrad.Focal):
        return max(loss.alpha or (1.0,)) * (1.0 + loss.gamma)
    if isinstance(loss, lossgrad.Poly1):
        return 1.0 + abs(loss.epsilon)
    return 1.0


def _close(ref, ker, dt, f, loss, w=None):
    """16 ulps of each entry plus 16 ulps of the row's scale |phi'| (1 + max |f|): the
    reference forms s = f - lse and p = e^s, whose rounding is eps |lse| absolute."""
    assert ker.dtype == ref.dtype == dt and ker.shape == ref.shape
    eps = float(np.finfo(dt).eps)
    wi = np.ones(f.shape[0]) if w is None else np.asarray(w, float)
    scale = wi * _scale(loss) * (1.0 + np.max(np.abs(f.astype(float)), axis=-1))
    if ref.ndim == 2:
        scale = scale[:, None]
    err = np.abs(ker.astype(float) - ref.astype(float))
    tol = 16 * eps * (np.abs(ref.astype(float)) + scale)
    assert np.all(err <= tol), f"max error {np.max(err / (tol / 16)):.1f} ulps of the scale"


def _public(loss, ops, y, f, w):
    if len(ops) == 2:
        return getattr(loss, "value_grad" if ops == ("value", "grad") else "grad_hess_diag")(y, f, sample_weight=w)
    return (getattr(loss, ops[0])(y, f, sample_weight=w),)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("case", VARIANTS + EXTRA, ids=_ids)
def test_kernel_equals_reference(case, dt, kernel_calls):
    _, cls, params = case
    loss = cls(**params)
    k = loss._fixed_classes() or K
    f = _logits(dt, N, k)
    for y in _targets(loss, dt, N, k, f):
        for w in (None, _weights(dt, N)):
            with lossgrad.config_context(use_kernels=False):
                rv, rg = loss.value_grad(y, f, sample_weight=w)
                rh = loss.hess_diag(y, f, sample_weight=w)
            ref = {"value": rv, "grad": rg, "hess_diag": rh}
            for ops in OPS:
                n_calls = len(kernel_calls)
                with lossgrad.config_context(kernel_threshold=0):
                    out = _public(loss, ops, y, f, w)
                assert kernel_calls[n_calls:] == [True]  # the kernel ran and returned
                for op, o in zip(ops, out):
                    _close(ref[op], o, dt, f, loss, w)
            # the reductions of __call__ (reference code) agree with the kernel's rows
            with lossgrad.config_context(kernel_threshold=0):
                v = loss.value(y, f, sample_weight=w).astype(float)
            total = float(loss(y, f, sample_weight=w, reduction="sum"))
            mean = float(loss(y, f, sample_weight=w, reduction="mean"))
            tol = 64 * float(np.finfo(dt).eps) * (np.sum(np.abs(v)) + 1.0) * _scale(loss) * (1 + np.abs(f).max())
            assert abs(v.sum() - total) <= tol
            denom = N if w is None else float(np.sum(w.astype(float)))
            assert abs(v.sum() / denom - mean) <= tol / denom


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_extreme_logits(dt):
    """Logits of +-1e4 (float64) / +-1e3 (float32), as the reference's docstring promises:
    value, gradient and Hessian diagonal finite and equal to the reference."""
    big = 1e4 if dt == np.float64 else 1e3
    f = (RNG.choice([-1.0, 0.0, 1.0], (60, 5)) * RNG.uniform(0.5, 1.0, (60, 5)) * big).astype(dt)
    for loss in (lossgrad.Focal(gamma=0.5), lossgrad.Focal(gamma=3.0, alpha=(1, 2, 0.5, 1, 1)), lossgrad.Poly1(),
                 lossgrad.KLDivergence(), lossgrad.KLDivergence(log_target=True)):
        for y in _targets(loss, dt, 60, 5, f):
            with lossgrad.config_context(use_kernels=False):
                rv, rg = loss.value_grad(y, f)
                rh = loss.hess_diag(y, f)
            with lossgrad.config_context(kernel_threshold=0):
                v, g = loss.value_grad(y, f)
                h = loss.hess_diag(y, f)
            assert np.all(np.isfinite(v)) and np.all(np.isfinite(g)) and np.all(np.isfinite(h))
            _close(rv, v, dt, f, loss)
            _close(rg, g, dt, f, loss)
            _close(rh, h, dt, f, loss)


def _errors(loss, y, f, w):
    """(reference error, kernel-path error) as (type, message)."""
    out = []
    for cfg in ({"use_kernels": False}, {"kernel_threshold": 0}):
        with lossgrad.config_context(**cfg), pytest.raises((ValueError, TypeError)) as info:
            loss.value_grad(y, f, sample_weight=w)
        out.append((type(info.value), str(info.value)))
    return out


def _bad_cases():
    f = _logits(np.float64, 40, 4)
    y = RNG.integers(0, 4, 40).astype(float)
    q = RNG.dirichlet(np.ones(4), 40)
    lq = np.log(q)
    w = _weights(np.float64, 40)
    cases = []
    for loss in (lossgrad.Focal(gamma=2.0, alpha=(1, 2, 1, 1)), lossgrad.Poly1(epsilon=2.0)):
        for arr, idx, value in (("f", (3, 2), np.nan), ("f", (4, 0), -np.inf), ("f", (0, 1), np.inf),
                                ("y", 7, 4.0), ("y", 8, 1.5), ("y", 9, np.nan), ("y", 10, -1.0),
                                ("w", 2, -1.0), ("w", 2, np.nan), ("w", 2, np.inf)):
            yy, ff, ww = y.copy(), f.copy(), w.copy()
            {"y": yy, "f": ff, "w": ww}[arr][idx] = value
            cases.append((loss, yy, ff, ww))
        for idx, value in (((1, 1), -0.1), ((2, 3), 1.5), ((6, 0), np.nan), ((5, 0), np.inf)):
            qq = q.copy()
            qq[idx] = value
            cases.append((loss, qq, f, None))
        cases.append((loss, q * 1.01, f, None))  # rows not summing to 1
        ff = f.copy()
        ff[1, 1] = np.nan
        ww = w.copy()
        ww[0] = -1.0
        cases.append((loss, y, ff, ww))  # two errors: the reference's order decides
        cases.append((loss, y[:-1], f, None))  # wrong number of labels
        cases.append((loss, y, f, w[:-1]))  # wrong weight shape
        cases.append((loss, y, f, w[:, None]))
        cases.append((loss, y, ff, w[:-1]))  # NaN logit and wrong weight shape: the logit first
        cases.append((loss, np.array(["a"] * 40), f, None))  # TypeError: non-numeric labels
        cases.append((loss, y, f, -2.0))  # a negative scalar weight
        cases.append((loss, y, f[:, :1], None))  # K = 1
        cases.append((loss, np.zeros((40, 2, 2)), f, None))
    cases.append((lossgrad.Focal(alpha=(1.0, 2.0, 3.0)), y, f, None))  # alpha of the wrong length
    kl, klt = lossgrad.KLDivergence(), lossgrad.KLDivergence(log_target=True)
    cases.append((kl, y, f, None))  # labels: KL needs rows
    for idx, value in (((1, 1), -0.1), ((2, 3), 1.5), ((6, 0), np.nan)):
        qq = q.copy()
        qq[idx] = value
        cases.append((kl, qq, f, None))
    cases.append((kl, q * 0.99, f, None))
    cases.append((kl, q, f, np.full(40, -1.0)))
    for idx, value in (((1, 1), 0.5), ((2, 3), -np.inf), ((6, 0), np.nan)):
        qq = lq.copy()
        qq[idx] = value
        cases.append((klt, qq, f, None))
    cases.append((klt, lq + 0.01, f, None))  # log-probabilities above 0 and rows off lse 0
    cases.append((klt, lq - 0.01, f, None))  # rows with logsumexp -0.01
    return cases


@pytest.mark.parametrize("case", range(len(_bad_cases())))
def test_bad_input_raises_the_reference_error(case):
    loss, y, f, w = _bad_cases()[case]
    ref, ker = _errors(loss, y, f, w)
    assert ker == ref


def test_flagged_but_accepted_rows_fall_back_to_the_reference(kernel_calls):
    """A probability row off 1 by 0.7 of the tolerance: the kernel flags it (it tests at
    half), the reference accepts it, and computes the answer."""
    f = _logits(np.float64, 30, 4)
    q = RNG.dirichlet(np.ones(4), 30)
    q[3] *= 1.0 + 0.7e-6
    for loss in (lossgrad.Focal(), lossgrad.Poly1(), lossgrad.KLDivergence()):
        with lossgrad.config_context(use_kernels=False):
            rv, rg = loss.value_grad(q, f)
        with lossgrad.config_context(kernel_threshold=0):
            v, g = loss.value_grad(q, f)
        assert kernel_calls[-1] is False  # evaluate_row returned None: the reference ran
        np.testing.assert_array_equal(v, rv)
        np.testing.assert_array_equal(g, rg)


def test_scalar_and_list_sample_weight(kernel_calls):
    f = _logits(np.float32, 30, 4)
    q = RNG.dirichlet(np.ones(4), 30).astype(np.float32)
    for loss in (lossgrad.Focal(gamma=2.0), lossgrad.KLDivergence()):
        for w in (2.5, list(np.linspace(0, 1, 30))):
            with lossgrad.config_context(use_kernels=False):
                rv, rg = loss.value_grad(q, f, sample_weight=w)
            with lossgrad.config_context(kernel_threshold=0):
                v, g = loss.value_grad(q, f, sample_weight=w)
            assert kernel_calls[-1] is True
            wi = np.broadcast_to(np.asarray(w, np.float32), (30,))
            _close(rv, v, np.float32, f, loss, wi)
            _close(rg, g, np.float32, f, loss, wi)


def test_assume_valid_skips_the_checks():
    f = _logits(np.float64, 30, 4)
    y = RNG.integers(0, 4, 30)
    loss = lossgrad.Focal(gamma=2.0)
    with lossgrad.config_context(use_kernels=False):
        rv, rg = loss.value_grad(y, f)
    with lossgrad.config_context(kernel_threshold=0, assume_valid=True):
        v, g = loss.value_grad(y, f)
        _close(rv, v, np.float64, f, loss)
        _close(rg, g, np.float64, f, loss)
        f[0, 0] = np.nan
        v, _ = loss.value_grad(y, f)  # no check: no error (the row's value is NaN)
    assert np.isnan(v[0]) and np.all(np.isfinite(v[1:]))


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("path", ["threading layer", "python threads"])
def test_threaded_path_and_inputs_not_mutated(dt, path, kernel_calls, force_split):
    n, k = 2100, 64  # 134400 >= 2^17 elements: rows split over the threads
    assert n * k >= 1 << 17
    parts = force_split(path)  # 3 uneven blocks over Numba's threads, or 2 Python threads
    f = _logits(dt, n, k)
    f = np.asfortranarray(f)  # not C-contiguous: the kernel copies
    y = RNG.integers(0, k, n)
    q = RNG.dirichlet(np.full(k, 0.3), n).astype(dt)
    w = _weights(dt, n)
    f0, q0, w0 = f.copy(), q.copy(), w.copy()
    for loss, yy in ((lossgrad.Focal(gamma=2.0), y), (lossgrad.Focal(gamma=0.5), q), (lossgrad.Poly1(), q),
                     (lossgrad.KLDivergence(), q)):
        with lossgrad.config_context(use_kernels=False):
            rv, rg = loss.value_grad(yy, f, sample_weight=w)
        v, g = loss.value_grad(yy, f, sample_weight=w)  # default threshold: 50 000 elements
        assert kernel_calls[-1] is True
        _close(rv, v, dt, f, loss, w)
        _close(rg, g, dt, f, loss, w)
    # a bad logit in the second thread's rows is still found
    f[n - 3, 5] = np.nan
    with pytest.raises(ValueError, match="y_pred contains 1 NaN"):
        lossgrad.Poly1().value(y, f)
    f[n - 3, 5] = f0[n - 3, 5]
    np.testing.assert_array_equal(f, f0)
    np.testing.assert_array_equal(q, q0)
    assert parts
    np.testing.assert_array_equal(w, w0)


def test_dispatch_above_the_threshold_only(kernel_calls):
    f = _logits(np.float32, 200, 10)
    y = RNG.integers(0, 10, 200)
    for loss in (lossgrad.Focal(), lossgrad.Poly1(), lossgrad.KLDivergence()):
        assert kernels.row_kernel_supports(loss, ("value", "grad"))
        assert kernels.row_kernel_supports(loss, ("grad",))
        assert kernels.row_kernel_supports(loss, ("grad", "hess_diag"))
        assert not kernels.row_kernel_supports(loss, ("hess",))
        assert not kernels.row_kernel_supports(loss, ("grad", "hess"))
        assert type(loss) in RS.KERNELS
    loss = lossgrad.Focal(gamma=2.0)
    with lossgrad.config_context(use_kernels=False):
        rh = loss.hess(y, f)
    assert kernel_calls == []
    with lossgrad.config_context(kernel_threshold=2000):
        loss.value_grad(y, f)
        assert kernel_calls == [True]
        loss.value(y[:150], f[:150])  # 1500 elements: under the threshold
        assert kernel_calls == [True]
        h = loss.hess(y, f)  # not served: the reference
        assert kernel_calls == [True]
        (2.0 * loss).grad(y, f)  # Scaled forwards to the kernel
        assert kernel_calls == [True, True]
    np.testing.assert_array_equal(h, rh)
    assert kernels.evaluate_row(loss, ("value",), y, f.astype(np.float16), None) is None


def test_direct_entry_counts_and_value_only():
    f = _logits(np.float64, 20, 5)
    y = RNG.integers(0, 5, 20).astype(float)
    y[2] = 7.0
    w = np.ones(20)
    w[4] = -2.0
    f[1, 1] = np.inf
    v, g, h, counts = RS.softmax_family_rows(RS.POLY1, f, y, epsilon=1.0, sample_weight=w, want_grad=False)
    assert g is None and h is None and v.shape == (20,)
    assert counts.tolist() == [1, 1, 1]
