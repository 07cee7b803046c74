"""The cross-entropy's Hessian-vector product kernel (lossgrad.kernels.evaluate_row_hvp)
against the reference: every option it serves (class weights, ignore_index, label
smoothing; labels or probability rows; sample_weight), float32/float64, saturated rows,
both ways of splitting the rows; bad input raises the reference's own error; what it
does not serve (z-loss, probabilities as predictions, other losses) goes to the reference.
"""

from __future__ import annotations

import numpy as np
import pytest

import lossgrad
from lossgrad import kernels
from lossgrad.kernels import _rowdispatch

OPTIONS = [
    {},
    {"label_smoothing": 0.1},
    {"weight": (0.5, 1.0, 2.0, 0.0, 1.5, 3.0, 1.0)},
    {"ignore_index": 2, "label_smoothing": 0.2},
    {"ignore_index": -100, "weight": (1.0, 2.0, 1.0, 1.0, 0.5, 1.0, 1.0), "label_smoothing": 0.05},
]
N, K = 301, 7


def _data(dt, labels, seed=0, ignore=None, n=N, k=K):
    rng = np.random.default_rng(seed)
    f = (rng.normal(0, 4, (n, k)) * rng.uniform(0.1, 3, (n, 1))).astype(dt)
    f[5] += 300.0  # a large offset
    f[6] *= 60.0  # large gaps between the logits
    f[7] = 0.0
    f[7, 3] = 50.0  # saturated: p at the arg-max rounds to 1, the others are e^-50
    v = rng.normal(0, 1, (n, k)).astype(dt)
    if labels:
        y = rng.integers(0, k, n)
        if ignore is not None:
            y[::9] = ignore
    else:
        y = rng.dirichlet(np.full(k, 0.5), n).astype(dt)
    w = rng.uniform(0, 2, n).astype(dt)
    w[::13] = 0
    return y, f, v, w


def _reference(loss, y, f, v, w):
    with lossgrad.config_context(use_kernels=False):
        return loss.hvp(y, f, v, w)


def _close(r, k, dt, loss, v, w):
    """A few ulps of the row's scale: (Hv)_c = S p_c (v_c - p.v), |S| <= the largest class weight."""
    assert k.dtype == r.dtype == dt and k.shape == r.shape
    eps = float(np.finfo(dt).eps)
    wi = np.ones(r.shape[0]) if w is None else np.asarray(w, float)
    scale = (wi * max(1.0, *(loss.weight or (1.0,))) * 2 * np.max(np.abs(v), axis=-1))[:, None]
    err = np.abs(k.astype(float) - r)
    assert np.all(err <= 4 * eps * (np.abs(r) + scale)), np.max(err / (np.abs(r) + scale) / eps)
    # the saturated row 7 entry by entry: at the arg-max v_c - p.v is the small sum
    # sum_k p_k (v_c - v_k) (~1e-21 here), which v_c - p.v would round to 0
    assert np.all(err[7] <= 4 * eps * np.abs(r[7])), (k[7], r[7])


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(o) or "plain")
def test_hvp_kernel_equals_reference(opts, dt, weighted):
    loss = lossgrad.CrossEntropy(**opts)
    targets = [True] if "ignore_index" in opts else [True, False]
    for labels in targets:
        y, f, v, w = _data(dt, labels, ignore=opts.get("ignore_index"))
        w = w if weighted else None
        got = kernels.evaluate_row_hvp(loss, y, f, v, w)
        assert got is not None
        ref = _reference(loss, y, f, v, w)
        _close(ref, got, dt, loss, v, w)
        assert ref[7, 3] != 0 or opts.get("weight")  # the saturated arg-max entry is tested


def test_public_hvp_uses_the_kernel_above_the_threshold(monkeypatch):
    calls = []
    real = _rowdispatch.cross_entropy_hvp
    monkeypatch.setattr(_rowdispatch, "cross_entropy_hvp", lambda *a, **k: calls.append(1) or real(*a, **k))
    y, f, v, w = _data(np.float64, True)
    loss = lossgrad.CrossEntropy()
    with lossgrad.config_context(kernel_threshold=0):
        fused = loss.hvp(y, f, v, w)
    assert calls == [1]
    _close(_reference(loss, y, f, v, w), fused, np.float64, loss, v, w)
    with lossgrad.config_context(kernel_threshold=f.size + 1):  # below the threshold: the reference
        loss.hvp(y, f, v, w)
    assert calls == [1]
    for other in (lossgrad.CrossEntropy(z_loss=1e-3), lossgrad.Focal()):  # not served: the reference
        with lossgrad.config_context(kernel_threshold=0):
            other.hvp(y, f, v, w)
    assert calls == [1]


def test_hvp_kernel_declines_what_it_does_not_serve():
    y, f, v, _ = _data(np.float64, True)
    ce = lossgrad.CrossEntropy()
    assert kernels.evaluate_row_hvp(lossgrad.CrossEntropy(z_loss=0.1), y, f, v, None) is None
    p = np.exp(f - f.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    assert kernels.evaluate_row_hvp(lossgrad.CrossEntropy(from_logits=False), y, p, v, None) is None
    assert kernels.evaluate_row_hvp(lossgrad.Focal(), y, f, v, None) is None
    assert kernels.evaluate_row_hvp(ce, y, f, v[:, :3], None) is None  # the reference names v's shape
    assert kernels.evaluate_row_hvp(ce, y, f, v.tolist(), None) is None
    assert kernels.evaluate_row_hvp(ce, y, f.astype(np.float16), v, None) is None


def _errors(loss, y, f, v, w):
    """The reference's error, and the one the public hvp raises through the kernel."""
    with lossgrad.config_context(use_kernels=False), pytest.raises(ValueError) as ref:
        loss.hvp(y, f, v, w)
    with lossgrad.config_context(kernel_threshold=0), pytest.raises(ValueError) as fused:
        loss.hvp(y, f, v, w)
    return str(ref.value), str(fused.value)


def test_hvp_kernel_raises_the_reference_errors():
    loss = lossgrad.CrossEntropy(ignore_index=-1)
    y, f, v, w = _data(np.float64, True)
    yp, _, _, _ = _data(np.float64, False)
    cases = []
    for arr, idx, value in (("f", (3, 2), np.nan), ("f", (4, 0), -np.inf), ("v", (5, 1), np.nan),
                            ("v", (0, 6), np.inf), ("y", 7, K), ("y", 8, 1.5), ("y", 9, np.nan), ("w", 2, -1.0)):
        yy, ff, vv, ww = y.astype(float), f.copy(), v.copy(), w.copy()
        {"y": yy, "f": ff, "v": vv, "w": ww}[arr][idx] = value
        cases.append((loss, yy, ff, vv, ww))
    plain = lossgrad.CrossEntropy()
    for idx, value in (((1, 1), -0.1), ((2, 3), 1.5)):
        yy = yp.copy()
        yy[idx] = value
        cases.append((plain, yy, f, v, None))
    yy = yp.copy()
    yy[4] *= 1.01  # a row not summing to 1
    cases.append((plain, yy, f, v, None))
    cases.append((plain, y, f, v[:, :3], None))
    for case in cases:
        ref, fused = _errors(*case)
        assert fused == ref


@pytest.mark.parametrize("path", ["threading layer", "python threads"])
def test_hvp_kernel_threads_inputs_untouched_and_a_bad_value_in_the_last_part(path, force_split):
    parts = force_split(path)
    y, f, v, w = _data(np.float64, True, n=20011, k=10)
    copies = [a.copy() for a in (y, f, v, w)]
    loss = lossgrad.CrossEntropy(label_smoothing=0.1)
    got = kernels.evaluate_row_hvp(loss, y, f, v, w)
    _close(_reference(loss, y, f, v, w), got, np.float64, loss, v, w)
    for a, b in zip((y, f, v, w), copies):
        np.testing.assert_array_equal(a, b)
    assert parts
    v[-1, -1] = np.nan
    assert kernels.evaluate_row_hvp(loss, y, f, v, w) is None  # flagged: the reference then raises
    with lossgrad.config_context(kernel_threshold=0), pytest.raises(ValueError, match="v contains 1 NaN"):
        loss.hvp(y, f, v, w)


def test_softmax_classifier_fit_is_the_same_with_and_without_the_kernel():
    """SoftmaxClassifier's trust-region Newton-CG calls hvp at every inner step."""
    from lossgrad.models import SoftmaxClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 6))
    y = np.argmax(X @ rng.normal(size=(6, 4)) + rng.gumbel(size=(4000, 4)), axis=1)
    with lossgrad.config_context(kernel_threshold=0):
        fused = SoftmaxClassifier(alpha=1e-3, tol=1e-8).fit(X, y)
    with lossgrad.config_context(use_kernels=False):
        ref = SoftmaxClassifier(alpha=1e-3, tol=1e-8).fit(X, y)
    np.testing.assert_allclose(fused.coef_, ref.coef_, rtol=1e-9, atol=1e-9)
