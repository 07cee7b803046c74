"""The ranking family's one-pass input checks (lossgrad.kernels._ranking_inputs) against
RankingLoss's reference checks: the same errors, the same accepted inputs."""

from __future__ import annotations

import numpy as np
import pytest
from ranking_kernel_checks import random_lists

import lossgrad
from lossgrad.kernels._ranking_inputs import check_lists
from lossgrad.losses import _ranking_base
from lossgrad.losses.ranking import XENDCG, ApproxNDCG, ListNet, RankNet
from lossgrad.losses.ranking_lambda import LambdaLoss

LOSSES = [ListNet(), XENDCG(), RankNet(), ApproxNDCG(), LambdaLoss(), LambdaLoss(scheme="ranknet")]


def _bad_inputs():
    """(name, scores, relevance, mask, message pattern): one bad entry on a real item each."""
    s, r, m = random_lists(3, 30, 17)
    cases = []
    for value, what in ((np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "-inf")):
        bad = s.copy()
        bad[7, 0] = value
        cases.append((f"score {what}", bad, r, m, "scores contains"))
        bad_r = r.copy()
        bad_r[7, 1] = value
        cases.append((f"relevance {what}", s, bad_r, m, "relevance contains" if what != "-inf" else "relevance"))
    neg = r.copy()
    neg[29, 0] = -0.5
    cases.append(("negative relevance", s, neg, m, "relevance.*non-negative"))
    short = m.copy()
    short[4, 1:] = False
    cases.append(("one real item", s, r, short, r"list\(s\) \[4\]"))
    return cases


@pytest.mark.parametrize("loss", LOSSES, ids=repr)
@pytest.mark.parametrize("case", _bad_inputs(), ids=lambda c: c[0])
def test_one_pass_raises_the_reference_error(loss, case):
    _, s, r, m, pattern = case
    messages = []
    for settings in ({"kernel_threshold": 0}, {"use_kernels": False}):
        with lossgrad.config_context(**settings), pytest.raises(ValueError, match=pattern) as err:
            loss.value_grad(scores=s, relevance=r, mask=m)
        messages.append(str(err.value))
    assert messages[0] == messages[1]


@pytest.mark.parametrize("loss", LOSSES, ids=repr)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_padding_is_not_checked(loss, dtype):
    """NaN scores and negative or NaN grades at padding pass, with the reference's outputs."""
    s, r, m = random_lists(5, 40, 23)
    s[~m] = np.nan
    r[~m] = np.where(np.arange(r.size).reshape(r.shape)[~m] % 2 == 0, -3.0, np.nan)
    s = s.astype(dtype)
    with lossgrad.config_context(kernel_threshold=0):
        fused = loss.grad_hess_diag(scores=s, relevance=r, mask=m)
    with lossgrad.config_context(use_kernels=False):
        reference = loss.grad_hess_diag(scores=s, relevance=r, mask=m)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for a, b in zip(fused, reference):
        np.testing.assert_allclose(a["scores"], b["scores"], rtol=tol, atol=tol * np.abs(b["scores"]).max())


def test_check_lists_zeroes_and_marks_padding_and_counts():
    s, r, m = random_lists(2, 50, 31)
    r[~m] = 7.0
    relv, marked, flagged = check_lists(s, r, m)
    assert not flagged
    np.testing.assert_array_equal(relv, np.where(m, r, 0.0))
    np.testing.assert_array_equal(marked, np.where(m, r, np.nan))  # NaN exactly at the padding
    # strided (a transposed copy's transpose) and float32 inputs
    relv32, marked32, flagged = check_lists(np.asfortranarray(s.astype(np.float32)),
                                            np.asfortranarray(r.astype(np.float32)), np.asfortranarray(m))
    assert not flagged and relv32.dtype == np.float32 and marked32.dtype == np.float32
    np.testing.assert_array_equal(relv32, np.where(m, r, 0.0).astype(np.float32))
    np.testing.assert_array_equal(marked32, np.where(m, r, np.nan).astype(np.float32))
    for edit in (lambda s, r, m: s.__setitem__((3, 0), np.inf), lambda s, r, m: r.__setitem__((3, 0), -1.0),
                 lambda s, r, m: r.__setitem__((3, 0), np.nan), lambda s, r, m: m.__setitem__((3, slice(1, None)), False)):
        s2, r2, m2 = s.copy(), r.copy(), m.copy()
        edit(s2, r2, m2)
        assert check_lists(s2, r2, m2)[2]


def test_check_lists_runs_in_parts():
    """Above its threshold the pass runs on threads: every part counts, zeroes and marks its lists."""
    s, r, m = random_lists(4, 20000, 16)
    relv, marked, flagged = check_lists(s, r, m)
    assert not flagged
    np.testing.assert_array_equal(relv, np.where(m, r, 0.0))
    np.testing.assert_array_equal(marked, np.where(m, r, np.nan))
    r[19999, 0] = -1.0  # in the last part
    assert check_lists(s, r, m)[2]


@pytest.mark.parametrize("loss", LOSSES, ids=repr)
def test_kernels_read_the_checks_marked_grades(loss, monkeypatch):
    """The list kernels take the grades the one-pass check marked (no marking pass of their
    own), and a kernel called without them marks them itself, with the same outputs."""
    from lossgrad.kernels import (
        _ranking,
        _ranking_approx,
        _ranking_lambda,
        _ranking_softmax,
    )

    marks = []
    original = _ranking.mark_padding
    for module in (_ranking, _ranking_approx, _ranking_lambda, _ranking_softmax):
        monkeypatch.setattr(module, "mark_padding", lambda *a: marks.append(1) or original(*a))
    s, r, m = random_lists(8, 40, 23)
    with lossgrad.config_context(kernel_threshold=0):
        data = loss._prepare_batch({"scores": s, "relevance": r, "mask": m}, None)[1]
        np.testing.assert_array_equal(data["marked"], np.where(m, r, np.nan))
        checked = loss._fused(np, data, True, True)
        data["marked"] = None  # as a call without the one-pass check
        alone = loss._fused(np, data, True, True)
    assert marks == [1]
    for a, b in zip(checked, alone):
        np.testing.assert_array_equal(a, b)


def test_the_one_pass_is_what_runs(monkeypatch):
    """Above the threshold, _prepare's reference checks do not run on valid inputs."""
    calls = []
    monkeypatch.setattr(_ranking_base.V, "check_finite", lambda *a, **k: calls.append(a))
    s, r, m = random_lists(1, 10, 12)
    with lossgrad.config_context(kernel_threshold=0):
        ListNet().value(scores=s, relevance=r, mask=m)
    assert calls == []
    with lossgrad.config_context(use_kernels=False):
        ListNet().value(scores=s, relevance=r, mask=m)
    assert len(calls) == 2
