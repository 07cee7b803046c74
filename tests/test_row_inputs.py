"""Bad input to row losses: clear errors naming the argument; assume_valid skips data checks."""

from __future__ import annotations

import numpy as np
import pytest

import lossgrad

F = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]])


@pytest.mark.parametrize("y,match", [
    (np.array([0, 3]), r"y_true must contain class labels in \[0, 2\]"),
    (np.array([-1, 0]), "class labels"),
    (np.array([0.5, 1.0]), "integer class labels"),
    (np.array([0, 1, 2]), "3 labels but y_pred has 2 rows"),
    (np.array([[0.5, 0.5, 0.1], [0.2, 0.3, 0.5]]), "sum to 1"),
    (np.array([[1.5, -0.5, 0.0], [0.2, 0.3, 0.5]]), r"probabilities in \[0, 1\]"),
    (np.array([[0.5, 0.5], [0.5, 0.5]]), "shape of y_pred"),
    (np.array([[[0.0]]]), "y_true must be"),
    (np.array([np.nan, 0.0]), "y_true contains 1 NaN"),
])
def test_bad_targets(y, match):
    with pytest.raises(ValueError, match=match):
        lossgrad.CrossEntropy().value(y, F)


def test_bad_predictions_and_weights():
    ce = lossgrad.CrossEntropy()
    with pytest.raises(ValueError, match="2-dimensional"):
        ce.value(np.array([0]), np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="floating"):
        ce.value(np.array([0]), np.array([[1, 2]]))
    with pytest.raises(ValueError, match="y_pred contains"):
        ce.value(np.array([0, 1]), np.array([[np.inf, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="at least 2 columns"):
        ce.value(np.array([0]), np.array([[1.0]]))
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        ce.value(np.array([0, 1]), F, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="sample_weight must contain non-negative"):
        ce.value(np.array([0, 1]), F, sample_weight=np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="v and y_pred must have the same shape"):
        ce.hvp(np.array([0, 1]), F, np.ones((2, 4)))
    with pytest.raises(ValueError, match="weight has 2 entries but y_pred has K=3"):
        lossgrad.CrossEntropy(weight=(1.0, 2.0)).value(np.array([0, 1]), F)
    with pytest.raises(ValueError, match="from_logits=False"):
        lossgrad.CrossEntropy(from_logits=False).value(np.array([0, 1]), F)


def test_bad_parameters():
    with pytest.raises(ValueError, match="label_smoothing"):
        lossgrad.CrossEntropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match="weight must contain finite non-negative"):
        lossgrad.CrossEntropy(weight=(1.0, -1.0))
    with pytest.raises(TypeError, match="ignore_index"):
        lossgrad.CrossEntropy(ignore_index=1.5)
    with pytest.raises(ValueError, match="z_loss needs logits"):
        lossgrad.CrossEntropy(z_loss=0.1, from_logits=False)
    with pytest.raises(ValueError, match="gamma"):
        lossgrad.Focal(gamma=-1.0)
    with pytest.raises(ValueError, match="epsilon"):
        lossgrad.Poly1(epsilon=-2.0)
    with pytest.raises(ValueError, match="kind"):
        lossgrad.MulticlassHinge(kind="ovr")
    with pytest.raises(ValueError, match="margin"):
        lossgrad.MulticlassHinge(margin=0.0)


def test_target_kinds_per_loss():
    with pytest.raises(ValueError, match=r"needs y_true of shape \(N, K\)"):
        lossgrad.KLDivergence().value(np.array([0, 1]), F)
    with pytest.raises(ValueError, match=r"takes class labels"):
        lossgrad.MulticlassHinge().value(np.full((2, 3), 1 / 3), F)
    with pytest.raises(ValueError, match=r"per-column labels or probabilities in \[0, 1\]"):
        lossgrad.Multilabel().value(np.array([[2.0, 0.0, 1.0], [0.0, 0.0, 1.0]]), F)
    with pytest.raises(ValueError, match="logsumexp 0"):
        lossgrad.KLDivergence(log_target=True).value(np.log(np.full((2, 3), 0.5)), F)
    # multilabel rows need not sum to 1
    assert lossgrad.Multilabel().value(np.ones((2, 3)), F).shape == (2,)


def test_ignore_index_semantics():
    ce = lossgrad.CrossEntropy(ignore_index=-100)
    y = np.array([0, -100])
    v = ce.value(y, F)
    assert v[1] == 0 and np.all(ce.grad(y, F)[1] == 0) and np.all(ce.hess(y, F)[1] == 0)
    assert np.isclose(ce(y, F), v[0])  # the mean divides by the one counted row
    with pytest.raises(ValueError, match="every row is ignored"):
        ce(np.array([-100, -100]), F)
    with pytest.raises(ValueError, match="class labels"):
        ce.value(np.array([0, -1]), F)


def test_assume_valid_skips_data_checks_and_inputs_are_not_mutated():
    y = np.array([0.0, 1.0])
    f = F.copy()
    with lossgrad.config_context(assume_valid=True):
        lossgrad.CrossEntropy().value(np.array([[0.5, 0.6, 0.1], [0.2, 0.3, 0.5]]), f)
    lossgrad.CrossEntropy(label_smoothing=0.1).hess(y, f)
    np.testing.assert_array_equal(f, F)
    np.testing.assert_array_equal(y, [0.0, 1.0])


def test_probability_tolerance_depends_on_dtype():
    p64 = np.array([[0.5, 0.5 + 1e-5, 0.0]])
    with pytest.raises(ValueError, match="sum to 1"):
        lossgrad.CrossEntropy().value(p64, F[:1])
    lossgrad.CrossEntropy().value(p64.astype(np.float32), F[:1].astype(np.float32))  # within 1000 eps32
