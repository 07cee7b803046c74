"""lossgrad.nn.fit: batch GD, SGD and mini-batches, shuffling, validation, early stopping,
callbacks, the L2 penalty and the progress bar, each held against a hand-written loop."""

from __future__ import annotations

import doctest
import io

import numpy as np
import pytest
from rich.console import Console

import lossgrad
from lossgrad import nn, optim

RNG = np.random.default_rng(7)
X = RNG.normal(size=(40, 3))
Y = np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2]


def _net(seed=0):
    return nn.Sequential(nn.Dense(3, 6, seed=seed), nn.Tanh(), nn.Dense(6, 1, seed=seed + 1))


def _copy(params):
    return {k: {n: v.copy() for n, v in p.items()} for k, p in params.items()}


def _manual_gd(net, loss, batches, lr, alpha=0.0, w=None):
    """Plain SGD steps on the given row batches, from value_and_grad."""
    for idx in batches:
        _, g = net.value_and_grad(loss, X[idx], Y[idx], None if w is None else w[idx])
        new = {}
        for k, p in net.params.items():
            new[k] = {n: v - lr * (g[k][n] + (alpha * v if n == "weight" else 0.0)) for n, v in p.items()}
        net.set_params(new)


def _same_params(a, b, rtol=1e-13):
    for k in a:
        for n in a[k]:
            np.testing.assert_allclose(a[k][n], b[k][n], rtol=rtol, atol=1e-15)


def test_batch_gradient_descent_is_full_batch_steps():
    fitted, manual = _net(), _net()
    h = nn.fit(fitted, "squared_error", X, Y, optimizer=optim.sgd(0.05), epochs=5, batch_size=None)
    _manual_gd(manual, "squared_error", [np.arange(40)] * 5, 0.05)
    _same_params(fitted.params, manual.params)
    assert h.epochs == 5 and len(h.loss) == 5 and h.val_loss == []


def test_sgd_batch_size_one_without_shuffle_visits_rows_in_order():
    fitted, manual = _net(), _net()
    nn.fit(fitted, "huber", X, Y, optimizer=optim.sgd(0.01), epochs=2, batch_size=1, shuffle=False)
    _manual_gd(manual, "huber", [np.array([i]) for i in range(40)] * 2, 0.01)
    _same_params(fitted.params, manual.params)


def test_minibatches_follow_the_seeded_permutation():
    fitted, manual = _net(), _net()
    nn.fit(fitted, "squared_error", X, Y, optimizer=optim.sgd(0.02), epochs=3, batch_size=16, seed=123)
    rng = np.random.default_rng(123)
    batches = []
    for _ in range(3):
        order = rng.permutation(np.arange(40))
        batches += [order[s : s + 16] for s in range(0, 40, 16)]  # 16, 16, 8
    _manual_gd(manual, "squared_error", batches, 0.02)
    _same_params(fitted.params, manual.params)


def test_epoch_loss_is_the_weighted_mean_of_batch_losses():
    net, ref = _net(), _net()
    w = RNG.uniform(0.5, 2.0, 40)
    h = nn.fit(net, "squared_error", X, Y, optimizer=optim.sgd(0.02), epochs=1, batch_size=16, shuffle=False,
               sample_weight=w)
    expected, total = 0.0, 0.0
    for s in range(0, 40, 16):
        idx = np.arange(s, min(s + 16, 40))
        v, _ = ref.value_and_grad("squared_error", X[idx], Y[idx], w[idx])
        _manual_gd(ref, "squared_error", [idx], 0.02, w=w)
        expected, total = expected + v * w[idx].sum(), total + w[idx].sum()
    assert h.loss[0] == pytest.approx(expected / total, rel=1e-13)


def test_integer_sample_weights_equal_repeated_rows_in_batch_gd():
    reps = RNG.integers(0, 3, 40)
    a, b = _net(), _net()
    nn.fit(a, "log_cosh", X, Y, optimizer=optim.adam(0.01), epochs=20, batch_size=None, sample_weight=reps.astype(float))
    nn.fit(b, "log_cosh", np.repeat(X, reps, 0), np.repeat(Y, reps), optimizer=optim.adam(0.01), epochs=20,
           batch_size=None)
    _same_params(a.params, b.params, rtol=1e-9)


def test_l2_penalty_adds_alpha_w_to_the_weight_gradients_only():
    fitted, manual = _net(), _net()
    nn.fit(fitted, "squared_error", X, Y, optimizer=optim.sgd(0.05), epochs=4, batch_size=None, alpha=0.3)
    _manual_gd(manual, "squared_error", [np.arange(40)] * 4, 0.05, alpha=0.3)
    _same_params(fitted.params, manual.params)


def test_seeds_make_training_reproducible():
    runs = [nn.fit(_net(), "squared_error", X, Y, epochs=3, batch_size=8, seed=s).loss for s in (1, 1, 2)]
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_validation_split_holds_out_rows_and_reports_their_loss():
    net = _net()
    seen = []
    cb = nn.LambdaCallback(on_batch_end=lambda t, step, loss: seen.append(step))
    h = nn.fit(net, "squared_error", X, Y, optimizer=optim.sgd(0.05), epochs=3, batch_size=None, seed=4,
               validation_split=0.25, callbacks=[cb])
    assert len(h.val_loss) == 3 and len(seen) == 3  # one full batch of the 30 training rows per epoch
    val_idx = np.sort(np.random.default_rng(4).permutation(40)[:10])
    assert h.val_loss[-1] == pytest.approx(net.loss("squared_error", X[val_idx], Y[val_idx]), rel=1e-13)
    train_idx = np.setdiff1d(np.arange(40), val_idx)
    manual = _net()
    _manual_gd(manual, "squared_error", [train_idx] * 3, 0.05)
    _same_params(net.params, manual.params)


def test_validation_data_and_early_stopping_restore_the_best_epoch():
    Xv, Yv = RNG.normal(size=(20, 3)), RNG.normal(size=20) * 3  # unrelated targets: validation loss rises soon
    net = _net()
    snapshots = []
    cb = nn.LambdaCallback(on_epoch_end=lambda t, e, logs: snapshots.append(_copy(t.net.params)))
    es = nn.EarlyStopping(patience=3, restore_best=True)
    h = nn.fit(net, "squared_error", X, Y, optimizer=optim.adam(0.05), epochs=200, batch_size=None,
               validation_data=(Xv, Yv), early_stopping=es, callbacks=[cb])
    assert h.stopped_early and h.epochs < 200
    best = int(np.argmin(h.val_loss))
    assert h.best_epoch == best and h.epochs == best + 1 + 3  # stopped after `patience` epochs without gain
    _same_params(net.params, snapshots[best], rtol=0)
    assert net.loss("squared_error", Xv, Yv) == pytest.approx(min(h.val_loss), rel=1e-13)


def test_min_delta_counts_small_gains_as_no_improvement():
    h_loose = nn.fit(_net(), "squared_error", X, Y, optimizer=optim.sgd(1e-3), epochs=50, batch_size=None,
                     early_stopping=nn.EarlyStopping(monitor="loss", patience=2, min_delta=1.0))
    assert h_loose.stopped_early and h_loose.epochs == 3  # epoch 0 sets the best; two epochs gain < 1.0
    h_tight = nn.fit(_net(), "squared_error", X, Y, optimizer=optim.sgd(1e-3), epochs=8, batch_size=None,
                     early_stopping=nn.EarlyStopping(monitor="loss", patience=2, min_delta=0.0))
    assert not h_tight.stopped_early and h_tight.epochs == 8  # gradient descent with a small step always gains


def test_a_callback_can_stop_training_and_sees_every_hook():
    calls = []

    class Recorder(nn.Callback):
        def on_train_begin(self, t):
            calls.append("begin")

        def on_epoch_begin(self, t, epoch):
            calls.append(f"e{epoch}")

        def on_epoch_end(self, t, epoch, logs):
            calls.append(f"end{epoch}:{sorted(logs)}")
            t.stop_training = epoch == 1

        def on_train_end(self, t):
            calls.append("done")

    h = nn.fit(_net(), "squared_error", X, Y, epochs=10, batch_size=None, callbacks=[Recorder()])
    assert h.epochs == 2 and not h.stopped_early
    assert calls == ["begin", "e0", "end0:['loss']", "e1", "end1:['loss']", "done"]


def test_row_loss_training_reduces_the_loss():
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int)  # 3 classes
    net = nn.Sequential(nn.Dense(3, 8, seed=0), nn.ReLU(), nn.Dense(8, 3, seed=1))
    h = nn.fit(net, lossgrad.get("focal", gamma=1.0), X, y.astype(float), optimizer=optim.adam(0.05), epochs=60,
               batch_size=10, seed=0)
    assert h.loss[-1] < 0.5 * h.loss[0]
    assert np.mean(np.argmax(net.predict(X), 1) == y) > 0.9


def test_progress_bar_draws_on_a_console_and_is_off_by_default(capsys):
    buf = io.StringIO()
    nn.fit(_net(), "squared_error", X, Y, epochs=3, batch_size=None,
           progress=Console(file=buf, force_terminal=False, width=100))
    text = buf.getvalue()
    assert "epoch" in text and "3/3" in text and "loss" in text
    nn.fit(_net(), "squared_error", X, Y, epochs=3, batch_size=None)
    assert capsys.readouterr().out == ""


def test_inputs_are_not_modified():
    X0, Y0, w = X.copy(), Y.copy(), np.ones(40)
    nn.fit(_net(), "squared_error", X, Y, epochs=2, batch_size=7, sample_weight=w, validation_split=0.2)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(Y, Y0)
    assert np.all(w == 1)


def test_bad_arguments():
    net = _net()
    with pytest.raises(ValueError, match="epochs"):
        nn.fit(net, "squared_error", X, Y, epochs=0)
    with pytest.raises(ValueError, match="batch_size"):
        nn.fit(net, "squared_error", X, Y, batch_size=0)
    with pytest.raises(ValueError, match="validation_split"):
        nn.fit(net, "squared_error", X, Y, validation_split=1.0)
    with pytest.raises(ValueError, match="rows"):
        nn.fit(net, "squared_error", X, Y[:10])
    with pytest.raises(ValueError, match="sample_weight"):
        nn.fit(net, "squared_error", X, Y, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="sums to zero"):
        nn.fit(net, "squared_error", X, Y, sample_weight=np.zeros(40))
    with pytest.raises(ValueError, match="val_loss"):
        nn.fit(net, "squared_error", X, Y, early_stopping=nn.EarlyStopping(monitor="val_loss"))
    with pytest.raises(ValueError, match="patience"):
        nn.EarlyStopping(patience=0)
    with pytest.raises(TypeError, match="optimizer"):
        nn.fit(net, "squared_error", X, Y, optimizer="adam")
    with pytest.raises(TypeError, match="callbacks"):
        nn.fit(net, "squared_error", X, Y, callbacks=[print])
    with pytest.raises(ValueError, match="y_true"):
        nn.fit(net, "logistic", X, Y)  # continuous targets for a margin loss
    with pytest.raises(FloatingPointError, match="learning rate"), np.errstate(all="ignore"):
        nn.fit(net, "squared_error", X, Y * 1e3, optimizer=optim.sgd(1e3), epochs=50, batch_size=None)
    with pytest.raises(ValueError, match="unknown hook"):
        nn.LambdaCallback(on_step=print)


@pytest.mark.parametrize("module", ["lossgrad.nn", "lossgrad.nn._layers", "lossgrad.nn._network"])
def test_docstring_examples(module):
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_training_on_torch_arrays_follows_the_numpy_run():
    """Same network, data and seed as torch tensors: the same trajectory (float64).  (JAX arrays
    run too, see test_nn.py; a JAX training run is left out here because eager JAX compiles every
    operation for every batch shape, seconds of test time for no further coverage.)"""
    import torch

    conv = torch.tensor
    y = (X[:, 0] > 0).astype(float) + (X[:, 1] > 0)

    def make():
        return nn.Sequential(nn.Dense(3, 4, seed=0), nn.GELU(), nn.Dense(4, 3, seed=1))

    ref = make()
    h_ref = nn.fit(ref, "cross_entropy", X, y, optimizer=optim.adam(0.01), epochs=4, batch_size=7, seed=0,
                   validation_split=0.2)
    other = make()
    other.set_params({k: {n: conv(v) for n, v in p.items()} for k, p in other.params.items()})
    h = nn.fit(other, "cross_entropy", conv(X), conv(y), optimizer=optim.adam(0.01), epochs=4, batch_size=7, seed=0,
               validation_split=0.2)
    assert isinstance(other.params["0"]["weight"], torch.Tensor)
    np.testing.assert_allclose(h.loss, h_ref.loss, rtol=1e-12)
    np.testing.assert_allclose(h.val_loss, h_ref.val_loss, rtol=1e-12)
    for k, p in ref.params.items():
        for n, v in p.items():
            np.testing.assert_allclose(np.asarray(other.params[k][n]), v, rtol=1e-10, atol=1e-14)
