"""The row kernels of multiclass_hinge, categorical_hinge, multilabel and sparsemax_loss
(lossgrad.kernels._row_margin, _row_multilabel, _row_sparsemax) against the reference.

Every registered variant (and a few more options) x float32/float64 x with/without
sample_weight x the ops value, grad, value+grad (and for multilabel hess_diag,
grad+hess_diag, value+grad+hess_diag), through the public methods with
``kernel_threshold=0`` against ``use_kernels=False``: the hinge gradients (and the
values the kernel computes with the reference's own arithmetic) are bit-for-bit equal,
the rest to 16 ulps of the entry plus 16 ulps of the row's scale.  The data include
rows on a dyadic grid (margins exactly 0, ties in the max, sparsemax scores exactly at
the threshold), which the tests check are there.  Bad input raises the reference's own
error; the threaded path (N K >= 2^17) and the dispatch are covered.
"""

from __future__ import annotations

import numpy as np
import pytest

import lossgrad
from lossgrad import kernels
from lossgrad._registry import catalog

RNG = np.random.default_rng(0)
NAMES = ("multiclass_hinge", "categorical_hinge", "multilabel", "sparsemax_loss")
EXTRA = {"multiclass_hinge": ({"margin": 2.0}, {"kind": "crammer_singer", "margin": 0.25}),
         "multilabel": ({"pos_weight": (0.0, 1.5, 2.0, 0.5, 1.0, 4.0, 0.25)},)}


def _variants() -> list[tuple[str, object]]:
    out = []
    for e in catalog(shape="row"):
        if e.name in NAMES:
            for params in tuple(e.variants) + EXTRA.get(e.name, ()):
                out.append((e.name + "[" + ",".join(f"{k}={v}" for k, v in params.items()) + "]", e.make(**params)))
    return out


VARIANTS = _variants()
IDS = [v[0] for v in VARIANTS]
LOSSES = [v[1] for v in VARIANTS]
OPS = (("value",), ("grad",), ("value", "grad"))


def _ops(loss):
    """The op sets served: multilabel's kernel also writes its (diagonal) Hessian."""
    if isinstance(loss, lossgrad.Multilabel):
        return OPS + (("hess_diag",), ("grad", "hess_diag"), ("value", "grad", "hess_diag"))
    return OPS


def _targets(loss) -> tuple[str, ...]:
    if isinstance(loss, lossgrad.Multilabel):
        return ("multilabel",)
    if isinstance(loss, lossgrad.MulticlassHinge):
        return ("labels",)
    return ("labels", "probs")


def _dyadic_rows(rng, n, k):
    """Probability rows of 1, 1/2 + 1/2 or 1/2 + 1/4 + 1/4 (sums exact in any order)."""
    q = np.zeros((n, k))
    for i in range(n):
        parts = ((1.0,), (0.5, 0.5), (0.5, 0.25, 0.25))[i % 3][:k]
        q[i, rng.choice(k, len(parts), replace=False)] = parts
        q[i, 0] += 1.0 - q[i].sum()
    return q


def _data(loss, target, dt, grid, n=240, k=7, seed=0):
    rng = np.random.default_rng(seed)
    k = loss._fixed_classes() or k
    if grid:  # dyadic scores: margins, sums and sparsemax thresholds exact in either dtype
        f = rng.integers(-4, 5, (n, k)) * 0.25
        f[::5] = rng.integers(-1, 2, (len(f[::5]), k))  # many ties
    else:
        f = rng.normal(0, 3, (n, k)) * rng.uniform(0.05, 3, (n, 1))
        f[::7] += 1e4  # the margin (m + f_j) - f_y rounds: ties of the rounded margins
        f[3::11] *= 1e-3
    if target == "labels":
        y = rng.integers(0, k, n)
        if grid:  # rows where the largest margin 1 + f_j - f_y is exactly 0
            rows = np.arange(1, n, 6)
            others = np.where(np.arange(k)[None, :] == y[rows, None], -np.inf, f[rows])
            f[rows, y[rows]] = others.max(axis=1) + 1.0
    elif target == "probs":
        y = _dyadic_rows(rng, n, k) if grid else rng.dirichlet(np.full(k, 0.5), n)
        y[::4] = np.eye(k)[rng.integers(0, k, len(y[::4]))]
        if grid:  # one-hot rows at the categorical hinge's kink: f_c = 1 + max(0, max_{j != c} f_j)
            for r in range(0, n, 8):
                c = int(np.argmax(y[r]))
                f[r, c] = 1.0 + max(0.0, np.delete(f[r], c).max())
        y = y.astype(dt)
    else:
        y = np.where(rng.random((n, k)) < 0.6, rng.integers(0, 2, (n, k)), rng.random((n, k))).astype(dt)
    w = rng.uniform(0, 3, n).astype(dt)
    w[::9] = 0.0
    return y, f.astype(dt), w


def _reference(loss, op, y, f, w):
    with lossgrad.config_context(use_kernels=False):
        return getattr(loss, op)(y, f, sample_weight=w)


def _public(loss, ops, y, f, w):
    with lossgrad.config_context(kernel_threshold=0):
        if len(ops) == 1:
            return (getattr(loss, ops[0])(y, f, sample_weight=w),)
        if ops == ("value", "grad", "hess_diag"):  # no public method: the dispatch itself
            return kernels.evaluate_row(loss, ops, y, f, w)
        method = {("value", "grad"): "value_grad", ("grad", "hess_diag"): "grad_hess_diag"}[ops]
        return getattr(loss, method)(y, f, sample_weight=w)


def _exact(loss, op, target) -> bool:
    """Where the kernel does the reference's own arithmetic (no reordered sum)."""
    if isinstance(loss, lossgrad.MulticlassHinge):
        return op == "grad" or loss.kind == "crammer_singer"
    if isinstance(loss, lossgrad.CategoricalHinge):
        return op == "grad" or target == "labels"
    return False


def _scale(loss, op, y, f, w):
    """|w| times the row's largest term (its entries' size for the gradient)."""
    f = np.asarray(f, float)
    wi = np.ones(f.shape[0]) if w is None else np.abs(np.asarray(w, float))
    if isinstance(loss, lossgrad.Multilabel):
        pw = max(1.0, *(loss.pos_weight or (1.0,)))
        s = pw * (1.0 + np.max(np.abs(f), axis=1)) if op == "value" else np.full(f.shape[0], pw)
    elif isinstance(loss, lossgrad.SparsemaxLoss):
        z = f - f.max(axis=1, keepdims=True)
        s = 1.0 + np.max(np.abs(z), axis=1) if op == "value" else np.ones(f.shape[0])
    else:
        s = 1.0 + getattr(loss, "margin", 1.0) + 2.0 * np.max(np.abs(f), axis=1)
    s = wi * s
    return s if op == "value" else s[:, None]


def _check(loss, op, target, k_out, r_out, y, f, w):
    assert k_out.dtype == r_out.dtype == f.dtype and k_out.shape == r_out.shape
    if _exact(loss, op, target):
        np.testing.assert_array_equal(k_out, r_out)
        return
    eps = float(np.finfo(f.dtype).eps)
    room = np.abs(r_out.astype(float)) + _scale(loss, op, y, f, w)
    diff = np.abs(k_out.astype(float) - r_out)
    assert np.all(diff <= 16 * eps * room), np.max(diff / np.maximum(room, 1e-300)) / eps


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("loss", LOSSES, ids=IDS)
def test_kernel_equals_reference(loss, dt):
    for target in _targets(loss):
        for grid in (False, True):
            y, f, w = _data(loss, target, dt, grid)
            for weights in (None, w):
                ref = {op: _reference(loss, op, y, f, weights) for op in ("value", "grad", "hess_diag")}
                for ops in _ops(loss):
                    out = _public(loss, ops, y, f, weights)
                    assert len(out) == len(ops)
                    for op, o in zip(ops, out):
                        _check(loss, op, target, o, ref[op], y, f, weights)


def test_grid_data_has_kinks_and_ties():
    """The dyadic rows reach the kinks the conventions decide (else the test above proves less)."""
    y, f, _ = _data(lossgrad.MulticlassHinge(), "labels", np.float64, True)
    n, k = f.shape
    other = np.arange(k)[None, :] != y[:, None]
    t = 1.0 + f - f[np.arange(n), y][:, None]
    assert np.sum((t == 0) & other) > 20  # Weston-Watkins terms exactly at the kink
    top = np.where(other, t, -np.inf).max(axis=1)
    ties = np.sum((np.where(other, t, -np.inf) == top[:, None]), axis=1)
    assert np.sum((top > 0) & (ties > 1)) > 20 and np.sum(top == 0) > 5  # Crammer-Singer ties, kinks
    yp, fp, _ = _data(lossgrad.CategoricalHinge(), "probs", np.float64, True)
    negv = (1 - yp) * fp
    mm = 1 + negv.max(axis=1) - (yp * fp).sum(axis=1)
    assert np.sum(mm == 0) > 3 and np.sum((negv == negv.max(axis=1, keepdims=True)).sum(axis=1) > 1) > 20
    y, f, _ = _data(lossgrad.SparsemaxLoss(), "labels", np.float64, True)
    z = f - f.max(axis=1, keepdims=True)
    import array_api_compat

    from lossgrad.activations import _sparsemax

    p, tau = _sparsemax(array_api_compat.array_namespace(z), z)
    assert np.sum(z == tau) > 5  # a score exactly at the threshold (p_j = 0 at the kink)
    assert np.sum(np.sum(p > 0, axis=1) > 1) > 20


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_rounded_margins_tie_on_the_reference_arg_max(dt):
    """Distinct scores whose margins (m + f_j) - f_y round to the same number: the
    gradient goes to the first of them (not to the larger score), as in the reference."""
    big = 2.0**24 if dt == np.float32 else 2.0**53  # the spacing of the floats there is 2
    f = np.array([[0.0, big, big + 2.0, 1.0, 5.0], [big, big + 2.0, 0.0, 1.0, 2.0]], dt)
    y = np.array([0, 2])
    assert (dt(3.0) + f[0, 1]) - f[0, 0] == (dt(3.0) + f[0, 2]) - f[0, 0]
    for kind in ("crammer_singer", "weston_watkins"):
        loss = lossgrad.MulticlassHinge(kind=kind, margin=3.0)
        v, g = _public(loss, ("value", "grad"), y, f, None)
        np.testing.assert_array_equal(g, _reference(loss, "grad", y, f, None))
        np.testing.assert_array_equal(v, _reference(loss, "value", y, f, None))
        if kind == "crammer_singer":
            np.testing.assert_array_equal(g, [[-1, 1, 0, 0, 0], [1, 0, -1, 0, 0]])


def test_exact_answers_at_the_kinks():
    """The conventions written out: a term at t = 0 is inactive, ties go to the first index."""
    f = np.array([[1.0, 0.0, 1.0, 2.0], [0.0, -1.0, -1.0, -3.0]])
    fc = np.array([[1.0, 0.0, 1.0, 2.0], [1.0, 0.0, -1.0, -1.0], [0.5, 0.0, -1.0, -1.0]])
    with lossgrad.config_context(kernel_threshold=0):
        ww = lossgrad.MulticlassHinge().grad(np.array([0, 0]), f)
        cs = lossgrad.MulticlassHinge(kind="crammer_singer").grad(np.array([0, 0]), f)
        ch = lossgrad.CategoricalHinge().grad(np.array([0, 0, 0]), fc)
        sv, sg = lossgrad.SparsemaxLoss().value_grad(np.array([0]), np.array([[0.0, -1.0, -0.5, 0.5]]))
    np.testing.assert_array_equal(ww, [[-2.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(cs, [[-1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    # row 2: M = 0 (inactive); row 3: n = (0, 0, -1, -1), the tie goes to the label itself
    np.testing.assert_array_equal(ch, [[-1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0]])
    # z = (-0.5, -1.5, -1, 0): support {0, -0.5} -> tau = -0.75, p = (0.25, 0, 0, 0.75)
    np.testing.assert_array_equal(sg, [[0.25 - 1.0, 0.0, 0.0, 0.75]])
    np.testing.assert_array_equal(sv, [0.5625])


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_sparsemax_sorts_the_whole_row_when_the_cut_is_passed(monkeypatch, dt):
    """With a cut above some supports the check at the next position must send those
    rows to the full sort (the default cut -1 is never passed in exact arithmetic)."""
    from lossgrad.kernels import _row_sparsemax

    monkeypatch.setattr(_row_sparsemax, "_CUT", -0.05)
    loss = lossgrad.SparsemaxLoss()
    for target in ("labels", "probs"):
        y, f, w = _data(loss, target, dt, False, seed=7)
        f *= dt(0.3)  # supports of several scores
        v, g = _public(loss, ("value", "grad"), y, f, w)
        _check(loss, "value", target, v, _reference(loss, "value", y, f, w), y, f, w)
        _check(loss, "grad", target, g, _reference(loss, "grad", y, f, w), y, f, w)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_large_supports_constant_rows_and_one_column(dt):
    """Sparsemax supports of hundreds of scores (the library sort, not the insertion sort),
    constant rows (every score tied), and a multilabel row of one column."""
    rng = np.random.default_rng(8)
    loss = lossgrad.SparsemaxLoss()
    f = (rng.normal(0, 1, (40, 300)) * rng.choice([1e-3, 1e-2, 0.3], (40, 1))).astype(dt)
    f[5] = 1.25
    for y in (rng.integers(0, 300, 40), rng.dirichlet(np.full(300, 0.1), 40).astype(dt)):
        v, g = _public(loss, ("value", "grad"), y, f, None)
        target = "labels" if y.ndim == 1 else "probs"
        _check(loss, "value", target, v, _reference(loss, "value", y, f, None), y, f, None)
        _check(loss, "grad", target, g, _reference(loss, "grad", y, f, None), y, f, None)
    p = g + (y if y.ndim == 2 else 0)
    assert np.sum(p > 0, axis=1).max() > 100 and np.all(np.abs(p[5] - 1 / 300) < 1e-6)
    ml = lossgrad.Multilabel(pos_weight=(2.0,))
    y1, f1 = rng.random((30, 1)).astype(dt), rng.normal(0, 3, (30, 1)).astype(dt)
    v, g = _public(ml, ("value", "grad"), y1, f1, None)
    _check(ml, "value", "multilabel", v, _reference(ml, "value", y1, f1, None), y1, f1, None)
    _check(ml, "grad", "multilabel", g, _reference(ml, "grad", y1, f1, None), y1, f1, None)


def _bad_cases():
    rng = np.random.default_rng(1)
    n, k = 40, 4
    f = rng.normal(0, 2, (n, k))
    lab = rng.integers(0, k, n).astype(float)
    q = rng.dirichlet(np.ones(k), n)
    ml = rng.random((n, k))
    w = rng.uniform(0, 2, n)
    cases = []
    for loss, y in ((lossgrad.MulticlassHinge(), lab), (lossgrad.MulticlassHinge(kind="crammer_singer"), lab),
                    (lossgrad.CategoricalHinge(), lab), (lossgrad.CategoricalHinge(), q),
                    (lossgrad.Multilabel(), ml), (lossgrad.Multilabel(pos_weight=(1.0, 2.0, 3.0, 4.0)), ml),
                    (lossgrad.SparsemaxLoss(), lab), (lossgrad.SparsemaxLoss(), q)):
        for what, idx, value in (("f", (3, 2), np.nan), ("f", (n - 1, 0), -np.inf), ("f", (5, 1), np.inf),
                                 ("w", 2, -1.0), ("w", n - 1, np.nan), ("w", 0, np.inf)):
            yy, ff, ww = y.copy(), f.copy(), w.copy()
            {"f": ff, "w": ww}[what][idx] = value
            cases.append((loss, yy, ff, ww))
        if y.ndim == 1:
            bad_labels = ((7, k), (8, -1.0), (9, 1.5), (10, np.nan), (n - 1, np.inf))
        else:
            bad_labels = (((1, 1), -0.1), ((2, 3), 1.5), ((6, 0), np.nan))
        if isinstance(loss, lossgrad.MulticlassHinge):
            other = q  # probability rows: labels only
        elif isinstance(loss, lossgrad.Multilabel):
            other = lab  # labels: (N, K) only
        else:
            other = np.full((n, k + 1), 1.0 / (k + 1))
        for idx, value in bad_labels:
            yy = y.copy()
            yy[idx] = value
            cases.append((loss, yy, f, None))
        cases.append((loss, other, f, None))  # the other kind of target (or a wrong shape)
        cases.append((loss, y[:-1], f, None))  # one row short
        cases.append((loss, y, f, w[:-1]))  # weights of the wrong shape
        cases.append((loss, y, f[:, :1] if y.ndim == 1 else f[0], None))  # too few classes / 1-d scores
        yy, ff = y.copy(), f.copy()
        ff[0, 0] = np.nan
        if yy.ndim == 1:
            yy[1] = k
        else:
            yy[1, 0] = 2.0
        cases.append((loss, yy, ff, -w))  # several faults: the reference's first one is reported
    q2 = q.copy()
    q2[4] *= 1.01  # a row not summing to 1
    cases += [(lossgrad.CategoricalHinge(), q2, f, None), (lossgrad.SparsemaxLoss(), q2, f, None)]
    cases.append((lossgrad.Multilabel(pos_weight=(1.0, 2.0, 3.0)), ml, f, None))  # pos_weight of K - 1
    cases.append((lossgrad.MulticlassHinge(), np.array(["a"] * n), f, None))  # non-numeric labels
    return cases


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("case", range(len(_bad_cases())))
def test_bad_input_raises_the_reference_error(case, dt):
    loss, y, f, w = _bad_cases()[case]
    f = f.astype(dt)
    with lossgrad.config_context(use_kernels=False), pytest.raises((ValueError, TypeError)) as ref:
        loss.value_grad(y, f, sample_weight=w)
    with lossgrad.config_context(kernel_threshold=0):
        for ops in OPS:
            with pytest.raises(type(ref.value)) as got:
                kernels.evaluate_row(loss, ops, y, f, w)
            assert str(got.value) == str(ref.value)
        with pytest.raises(type(ref.value)) as got:
            loss.value_grad(y, f, sample_weight=w)
        assert str(got.value) == str(ref.value)


def test_a_row_the_kernel_flags_but_the_reference_accepts_goes_to_the_reference():
    rng = np.random.default_rng(2)
    f = rng.normal(0, 1, (50, 5))
    q = rng.dirichlet(np.ones(5), 50)
    q[3] *= 1 + 0.8e-6  # off 1 by 0.8e-6: within the reference tolerance 1e-6, over half of it
    for loss in (lossgrad.CategoricalHinge(), lossgrad.SparsemaxLoss()):
        assert kernels.evaluate_row(loss, ("value", "grad"), q, f, None) is None
        with lossgrad.config_context(kernel_threshold=0):
            v, g = loss.value_grad(q, f)
        np.testing.assert_array_equal(v, _reference(loss, "value", q, f, None))
        np.testing.assert_array_equal(g, _reference(loss, "grad", q, f, None))


def test_assume_valid_invalid_labels_act_as_the_reference_zero_row():
    rng = np.random.default_rng(3)
    f = rng.normal(0, 2, (60, 6))
    y = rng.integers(0, 6, 60).astype(float)
    y[::5] = 6
    y[1::7] = -2
    y[2::9] = 0.5
    for loss in (lossgrad.MulticlassHinge(), lossgrad.MulticlassHinge(kind="crammer_singer"),
                 lossgrad.CategoricalHinge(), lossgrad.SparsemaxLoss()):
        with lossgrad.config_context(assume_valid=True):
            out = kernels.evaluate_row(loss, ("value", "grad"), y, f, None)
            with lossgrad.config_context(use_kernels=False):
                ref = loss.value_grad(y, f)
        for op, o, r in zip(("value", "grad"), out, ref):
            _check(loss, op, "labels", o, r, y, f, None)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("path", ["threading layer", "python threads"])
def test_threaded_path_and_inputs_untouched(force_split, dt, path):
    """3 uneven blocks of rows, in Numba's threading layer or (where it is not safe) in
    Python threads: the same numbers, a NaN in the last block seen."""
    calls = force_split(path, layer_parts=3, thread_parts=3)
    n, k = 2053, 64  # N K >= 2^17
    for loss in (lossgrad.MulticlassHinge(), lossgrad.MulticlassHinge(kind="crammer_singer"), lossgrad.CategoricalHinge(),
                 lossgrad.Multilabel(), lossgrad.SparsemaxLoss()):
        for target in _targets(loss):
            y, f, w = _data(loss, target, dt, False, n=n, k=k, seed=4)
            f = np.asfortranarray(f)  # not C-contiguous: copied
            y0, f0, w0 = y.copy(), f.copy(), w.copy()
            with lossgrad.config_context(kernel_threshold=0):
                v, g = loss.value_grad(y, f, sample_weight=w)
            outs = [("value", v), ("grad", g)]
            if isinstance(loss, lossgrad.Multilabel):
                outs += list(zip(("value", "grad", "hess_diag"),
                                 kernels.evaluate_row(loss, ("value", "grad", "hess_diag"), y, f, w)))
            for op, o in outs:
                _check(loss, op, target, o, _reference(loss, op, y, f, w), y, f, w)
            np.testing.assert_array_equal(f, f0)
            np.testing.assert_array_equal(y, y0)
            np.testing.assert_array_equal(w, w0)
            f[n - 1, k - 1] = np.nan  # a fault in the last block is seen
            with lossgrad.config_context(kernel_threshold=0), pytest.raises(ValueError, match="y_pred contains 1 NaN"):
                loss.value(y, f, sample_weight=w)
    assert calls


@pytest.mark.parametrize("loss", LOSSES, ids=IDS)
def test_public_methods_use_the_kernel(kernel_calls, loss):
    calls = kernel_calls
    target = _targets(loss)[-1]
    y, f, w = _data(loss, target, np.float32, False, n=300)
    with lossgrad.config_context(kernel_threshold=f.size):
        loss.value_grad(y, f, sample_weight=w)
        loss.grad(y, f)
        assert calls == [True, True]
        loss.value(y[:-1], f[:-1])  # under the threshold: the reference
        loss.hess_diag(y, f)  # served for multilabel only
        served = isinstance(loss, lossgrad.Multilabel)
        assert calls == [True, True] + [True] * served
        loss.hess(y, f)  # not served: the reference
        assert calls == [True, True] + [True] * served
        (2.0 * loss).value(y, f)  # Scaled forwards to the kernel
        assert calls == [True, True] + [True] * served + [True]
    assert kernels.row_kernel_supports(loss, ("value", "grad"))
    assert kernels.row_kernel_supports(loss, ("grad", "hess_diag")) == served
    assert not kernels.row_kernel_supports(loss, ("grad", "hess"))
    assert kernels.evaluate_row(loss, ("value",), y, f.astype(np.float16), None) is None


def test_reductions_of_the_kernel_rows():
    """The kernel's rows are unreduced and weighted: sum / weighted mean give the reference's reductions."""
    for loss in LOSSES:
        target = _targets(loss)[0]
        y, f, w = _data(loss, target, np.float64, False, seed=5)
        with lossgrad.config_context(kernel_threshold=0):
            v = loss.value(y, f, sample_weight=w)
            u = loss.value(y, f)
        for red, mine in (("sum", v.sum()), ("mean", v.sum() / w.sum()), ("none", v)):
            np.testing.assert_allclose(mine, loss(y, f, sample_weight=w, reduction=red), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(u.mean(), loss(y, f), rtol=1e-12)


def test_scalar_and_list_weights_and_float_labels():
    rng = np.random.default_rng(6)
    f = rng.normal(0, 2, (30, 5))
    y = rng.integers(0, 5, 30)
    for loss in (lossgrad.MulticlassHinge(), lossgrad.SparsemaxLoss(), lossgrad.CategoricalHinge()):
        for yy, w in ((y.astype(np.float32), 2.5), (list(y), list(np.linspace(0, 1, 30))), (y, np.float32(0.5))):
            with lossgrad.config_context(kernel_threshold=0):
                v, g = loss.value_grad(yy, f, sample_weight=w)
            _check(loss, "value", "labels", v, _reference(loss, "value", yy, f, w), y, f, np.broadcast_to(w, 30))
            _check(loss, "grad", "labels", g, _reference(loss, "grad", yy, f, w), y, f, np.broadcast_to(w, 30))
