"""The cross-entropy row kernel (lossgrad.kernels.evaluate_row) against the reference.

Every option of CrossEntropy with logits (class weights, ignore_index, label smoothing,
z-loss), label and probability targets, float32/float64, with and without
sample_weight: value and grad equal the reference's to a few ulps; bad input raises the
reference's own error; the ops and losses the kernel does not serve return None.
"""

from __future__ import annotations

import numpy as np
import pytest

import lossgrad
from lossgrad import kernels
from lossgrad.kernels import _cross_entropy_narrow

OPTIONS = [
    {},
    {"label_smoothing": 0.1},
    {"weight": (0.5, 1.0, 2.0, 0.0, 1.5, 3.0, 1.0)},
    {"ignore_index": 2, "label_smoothing": 0.2},
    {"ignore_index": -100, "weight": (1.0, 2.0, 1.0, 1.0, 0.5, 1.0, 1.0)},
    {"z_loss": 1e-3},
    {"z_loss": 0.1, "label_smoothing": 0.05, "weight": (1.0, 2.0, 3.0, 1.0, 1.0, 1.0, 0.5)},
]
N, K = 301, 7


@pytest.fixture(params=["narrow", "wide"])
def path(request, monkeypatch):
    """Both cross-entropy kernels at K = 7: the narrow one (SIMD across rows, K <= 24, blocks
    of 128 rows: N = 301 ends on a partial block) and the row kernel (forced)."""
    if request.param == "wide":
        monkeypatch.setattr(_cross_entropy_narrow, "NARROW_MAX_CLASSES", 0)
    return request.param


def _data(dt, labels, seed=0, ignore=None):
    rng = np.random.default_rng(seed)
    f = (rng.normal(0, 4, (N, K)) * rng.uniform(0.1, 3, (N, 1))).astype(dt)
    f[5] += 300.0  # large logits: lse stays finite
    if labels:
        y = rng.integers(0, K, N)
        if ignore is not None:
            y[::9] = ignore
    else:
        y = rng.dirichlet(np.full(K, 0.5), N).astype(dt)
    w = rng.uniform(0, 2, N).astype(dt)
    w[::13] = 0
    return y, f, w


def _close(r, k, dt, f, loss, w=None):
    """A few ulps of each entry plus a few ulps of the row's largest term: the value
    -sum a_c (f_c - lse) cancels terms of the size of the logits, the gradient
    S p - a (+ 2 z lse p) terms of the size of S = sum_c a_c <= max class weight."""
    assert k.dtype == r.dtype == dt and k.shape == r.shape
    eps = float(np.finfo(dt).eps)
    wi = np.ones(r.shape[0]) if w is None else np.asarray(w, float)
    big = max(1.0, *(loss.weight or (1.0,))) * (1.0 + 2.0 * loss.z_loss * (1.0 + np.max(np.abs(f), axis=-1)))
    if r.ndim == 1:
        scale = wi * big * (1.0 + np.max(np.abs(f), axis=-1))
    else:
        scale = (wi * big)[:, None]
    assert np.all(np.abs(k - r) <= 16 * eps * (np.abs(r) + scale)), np.max(np.abs(k - r) / (np.abs(r) + scale) / eps)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(o) or "plain")
def test_row_kernel_equals_reference(opts, dt, path):
    loss = lossgrad.CrossEntropy(**opts)
    for labels in (True, False):
        if not labels and "ignore_index" in opts:
            continue  # an error in the reference (tested below)
        y, f, w = _data(dt, labels, ignore=opts.get("ignore_index"))
        for weights in (None, w):
            with lossgrad.config_context(use_kernels=False):
                rv, rg = loss.value_grad(y, f, sample_weight=weights)
            for ops in (("value",), ("grad",), ("value", "grad")):
                out = kernels.evaluate_row(loss, ops, y, f, weights)
                assert out is not None and len(out) == len(ops)
                for op, o in zip(ops, out):
                    _close(rv if op == "value" else rg, o, dt, f, loss, weights)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(o) or "plain")
def test_row_kernel_hessian_diagonal_equals_reference(opts, dt, path):
    """The diagonal (S + 2 z lse) p (1 - p) + 2 z p^2, alone and with the gradient: a few
    ulps of the row's scale S (1 + 2 z |lse|), as for the gradient."""
    loss = lossgrad.CrossEntropy(**opts)
    for labels in (True, False):
        if not labels and "ignore_index" in opts:
            continue
        y, f, w = _data(dt, labels, seed=1, ignore=opts.get("ignore_index"))
        for weights in (None, w):
            with lossgrad.config_context(use_kernels=False):
                rg, rh = loss.grad(y, f, sample_weight=weights), loss.hess_diag(y, f, sample_weight=weights)
            for ops in (("hess_diag",), ("grad", "hess_diag"), ("value", "grad", "hess_diag")):
                out = kernels.evaluate_row(loss, ops, y, f, weights)
                assert out is not None and len(out) == len(ops)
                _close(rh, out[ops.index("hess_diag")], dt, f, loss, weights)
                if "grad" in ops:
                    _close(rg, out[ops.index("grad")], dt, f, loss, weights)
            if "ignore_index" in opts and labels:
                assert np.all(out[2][y == opts["ignore_index"]] == 0.0)


def _ref_error(loss, y, f, w):
    with lossgrad.config_context(use_kernels=False), pytest.raises(ValueError) as info:
        loss.value_grad(y, f, sample_weight=w)
    return str(info.value)


def test_row_kernel_raises_the_reference_errors(path):
    loss = lossgrad.CrossEntropy(ignore_index=-1)
    y, f, w = _data(np.float64, True)
    yp, _, _ = _data(np.float64, False)
    cases = []
    for arr, idx, value in (("f", (3, 2), np.nan), ("f", (4, 0), -np.inf), ("y", 7, K), ("y", 8, 1.5),
                            ("y", 9, np.nan), ("w", 2, -1.0), ("w", 2, np.inf)):
        yy, ff, ww = y.astype(float), f.copy(), w.copy()
        {"y": yy, "f": ff, "w": ww}[arr][idx] = value
        cases.append((loss, yy, ff, ww))
    plain = lossgrad.CrossEntropy()
    for idx, value in (((1, 1), -0.1), ((2, 3), 1.5), ((6, 0), np.nan)):
        yy = yp.copy()
        yy[idx] = value
        cases.append((plain, yy, f, None))
    yy = yp.copy()
    yy[4] *= 1.01  # a row not summing to 1
    cases.append((plain, yy, f, None))
    cases.append((loss, yp, f, None))  # ignore_index with probability targets
    for ls, yy, ff, ww in cases:
        msg = _ref_error(ls, yy, ff, ww)
        with pytest.raises(ValueError) as info:
            kernels.evaluate_row(ls, ("value", "grad"), yy, ff, ww)
        assert str(info.value) == msg


def test_row_kernel_declines_what_it_does_not_serve():
    y, f, _ = _data(np.float64, True)
    ce = lossgrad.CrossEntropy()
    assert kernels.evaluate_row(ce, ("hess",), y, f, None) is None
    assert kernels.evaluate_row(ce, ("grad", "hvp"), y, f, None) is None
    assert kernels.evaluate_row(lossgrad.CrossEntropy(from_logits=False), ("value",), y, f, None) is None
    assert kernels.evaluate_row(ce, ("value",), y, f.astype(np.float16), None) is None
    assert not kernels.row_kernel_supports(lossgrad.CrossEntropy(from_logits=False), ("value",))
    assert kernels.row_kernel_supports(ce, ("value", "grad"))


@pytest.mark.parametrize("n,k", [(3000, 64), (20011, 10)])
@pytest.mark.parametrize("path", ["threading layer", "python threads"])
def test_row_kernel_threads_see_a_bad_value_in_the_last_part(n, k, path, force_split):
    """The parts' counts are summed (in the threading layer's wrapper, or after the Python
    threads): a NaN in the last row still raises the reference's error."""
    force_split(path)
    rng = np.random.default_rng(4)
    f = rng.normal(0, 3, (n, k))
    f[-1, -1] = np.nan
    y = rng.integers(0, k, n)
    with pytest.raises(ValueError, match="y_pred contains 1 NaN"):
        kernels.evaluate_row(lossgrad.CrossEntropy(), ("value", "grad"), y, f, None)


@pytest.mark.parametrize("n,k", [(3000, 64), (20011, 10)])
@pytest.mark.parametrize("path", ["threading layer", "python threads"])
def test_row_kernel_threads_and_inputs_not_mutated(n, k, path, force_split):
    # 3 uneven blocks over Numba's threads (wide rows, and the narrow kernel), or 2 Python threads
    parts = force_split(path)
    rng = np.random.default_rng(3)
    f = rng.normal(0, 3, (n, k))
    y = rng.integers(0, k, n)
    f0, y0 = f.copy(), y.copy()
    loss = lossgrad.CrossEntropy(label_smoothing=0.1)
    v, g = kernels.evaluate_row(loss, ("value", "grad"), y, f, None)
    with lossgrad.config_context(use_kernels=False):
        rv, rg = loss.value_grad(y, f)
    _close(rv, v, np.float64, f, loss)
    _close(rg, g, np.float64, f, loss)
    np.testing.assert_array_equal(f, f0)
    np.testing.assert_array_equal(y, y0)
    assert parts
