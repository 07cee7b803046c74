r"""The training loop: epochs of mini-batches, validation, early stopping, callbacks, progress.

One epoch visits every training sample once, in batches of ``batch_size`` rows (1: SGD;
the number of samples: batch gradient descent; in between: mini-batch), shuffled from
``seed`` at every epoch when ``shuffle`` is on.  Each batch takes one optimizer step on

    J_B(theta) = sum_{n in B} s_n L(y_n, F(x_n)) / sum_{n in B} s_n  +  alpha/2 sum_l ||W_l||^2,

the weighted mean loss of the batch (see :func:`~lossgrad.nn.loss_value_grad`) plus an L2
penalty on the Dense weights (biases unpenalised).  The epoch's training loss in the history
is the weighted mean of the batch losses (sum_B J_B sum_{B} s / sum s: every sample counted
once, at the parameters of its step; the penalty is not included), as Keras and scikit-learn
report it; the validation loss is the weighted mean loss on the held-out rows at the end of
the epoch.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import array_api_compat
import numpy as np

from .. import optim
from .._config import config_context, get_config
from ._network import Sequential, loss_value_grad, resolve_loss

__all__ = ["fit", "History", "Trainer", "Callback", "EarlyStopping", "LambdaCallback"]

Array = Any


@dataclass
class History:
    """Loss per epoch: ``loss`` (training) and ``val_loss`` (validation, empty without one)."""

    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    epochs: int = 0
    stopped_early: bool = False
    best_epoch: int | None = None  #: set by EarlyStopping: the epoch (0-based) of the best monitored value

    def as_dict(self) -> dict[str, list[float]]:
        out = {"loss": list(self.loss)}
        if self.val_loss:
            out["val_loss"] = list(self.val_loss)
        return out


class Callback:
    """Hooks called by :func:`fit`; ``trainer`` gives the network, the history and
    ``stop_training`` (set it to True to stop after the current epoch)."""

    def on_train_begin(self, trainer: Trainer) -> None: ...

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None: ...

    def on_batch_end(self, trainer: Trainer, step: int, loss: float) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...


class LambdaCallback(Callback):
    """A callback from plain functions, e.g. ``LambdaCallback(on_epoch_end=lambda t, e, logs: ...)``."""

    def __init__(self, **hooks: Any) -> None:
        allowed = {"on_train_begin", "on_epoch_begin", "on_batch_end", "on_epoch_end", "on_train_end"}
        for name, fn in hooks.items():
            if name not in allowed:
                raise ValueError(f"LambdaCallback: unknown hook {name!r}; use {sorted(allowed)}")
            if not callable(fn):
                raise TypeError(f"LambdaCallback: {name} must be callable")
            setattr(self, name, fn)


class EarlyStopping(Callback):
    """Stop when the monitored loss has not improved by more than ``min_delta`` for
    ``patience`` epochs; with ``restore_best`` the network ends with the parameters of its
    best epoch.  ``monitor``: "val_loss", "loss", or "auto" (val_loss when there is a
    validation set, else loss).  An improvement is value < best - min_delta."""

    def __init__(self, monitor: str = "auto", patience: int = 5, min_delta: float = 0.0, restore_best: bool = True):
        if monitor not in ("auto", "loss", "val_loss"):
            raise ValueError(f"EarlyStopping: monitor must be 'auto', 'loss' or 'val_loss', got {monitor!r}")
        if isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or patience < 1:
            raise ValueError(f"EarlyStopping: patience must be an integer >= 1, got {patience!r}")
        if not (isinstance(min_delta, numbers.Real) and math.isfinite(min_delta) and min_delta >= 0):
            raise ValueError(f"EarlyStopping: min_delta must be a finite number >= 0, got {min_delta!r}")
        self.monitor, self.patience, self.min_delta, self.restore_best = monitor, int(patience), float(min_delta), restore_best

    def on_train_begin(self, trainer: Trainer) -> None:
        self.key = self.monitor if self.monitor != "auto" else ("val_loss" if trainer.has_validation else "loss")
        if self.key == "val_loss" and not trainer.has_validation:
            raise ValueError("EarlyStopping(monitor='val_loss') needs validation_split > 0 or validation_data")
        self.best, self.best_epoch, self.best_params, self.wait = math.inf, None, None, 0

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        value = logs[self.key]
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            self.best_params = trainer.net.params  # arrays are never modified in place: a snapshot
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.stop_training = True
                trainer.history.stopped_early = True
        trainer.history.best_epoch = self.best_epoch

    def on_train_end(self, trainer: Trainer) -> None:
        if self.restore_best and self.best_params is not None:
            trainer.net.set_params(self.best_params)


class Trainer:
    """The state :func:`fit` shares with callbacks: ``net``, ``loss``, ``optimizer``,
    ``opt_state``, ``history``, ``epoch``, ``has_validation``, ``stop_training``."""

    def __init__(self, net: Sequential, loss: Any, optimizer: Any, history: History, has_validation: bool):
        self.net, self.loss, self.optimizer, self.history = net, loss, optimizer, history
        self.has_validation = has_validation
        self.stop_training = False
        self.epoch = 0
        self.opt_state: Any = None


def _check_int(name: str, v: Any, low: int) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
        raise ValueError(f"fit: {name} must be an integer >= {low}, got {v!r}")
    return int(v)


def _take(xp: Any, a: Any, idx: np.ndarray) -> Any:
    if a is None:
        return None
    if isinstance(a, np.ndarray):
        return a[idx]
    return xp.take(a, xp.asarray(idx, device=array_api_compat.device(a)), axis=0)


def _penalise(params: dict, grads: dict, alpha: float) -> tuple[float, dict]:
    """(alpha/2 sum ||W||^2, grads + alpha W) over the Dense weights."""
    if alpha == 0:
        return 0.0, grads
    total, out = 0.0, {}
    for key, g in grads.items():
        out[key] = dict(g)
        if "weight" in g:
            W = params[key]["weight"]
            xp = array_api_compat.array_namespace(W)
            total += 0.5 * alpha * float(xp.sum(W * W))
            out[key]["weight"] = g["weight"] + alpha * W
    return total, out


def _progress(progress: Any, epochs: int) -> Any:
    if progress is False or progress is None:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = progress if isinstance(progress, Console) else None
    if console is None and progress is not True:
        raise TypeError(f"fit: progress must be True, False or a rich Console, got {progress!r}")
    bar = Progress(TextColumn("epoch"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[logs]}"),
                   TimeElapsedColumn(), console=console)
    return bar


def fit(net: Sequential, loss: Any, X: Array, y: Any, *, optimizer: Any = None, epochs: int = 10,
        batch_size: int | None = 32, shuffle: bool = True, seed: Any = None, sample_weight: Any = None,
        validation_split: float = 0.0, validation_data: tuple | None = None, alpha: float = 0.0,
        early_stopping: EarlyStopping | None = None, callbacks: tuple | list = (), progress: Any = False) -> History:
    r"""Train ``net`` in place on (X, y) with the weighted mean of ``loss``; returns the :class:`History`.

    Parameters
    ----------
    net, loss:
        A :class:`Sequential` and a pointwise or row loss of the catalog (object or name).
    optimizer:
        A :mod:`lossgrad.optim` transformation (default ``optim.adam(1e-3)``).
    epochs, batch_size, shuffle, seed:
        Passes over the data; rows per step (``None``: all, batch gradient descent; 1: SGD);
        reshuffle at each epoch with ``numpy.random.default_rng(seed)``.
    sample_weight:
        One non-negative weight per sample.
    validation_split, validation_data:
        Hold out that fraction of the rows (drawn from ``seed``), or evaluate on (X_val, y_val)
        or (X_val, y_val, w_val), at the end of every epoch.
    alpha:
        L2 penalty alpha/2 sum ||W||^2 on the Dense weights (biases unpenalised).
    early_stopping, callbacks:
        An :class:`EarlyStopping` and any :class:`Callback` objects.
    progress:
        Show a rich progress bar (True, or a ``rich.console.Console`` to draw on); off by default.
    """
    if not isinstance(net, Sequential):
        raise TypeError(f"fit: net must be a lossgrad.nn.Sequential, got {type(net).__name__}")
    loss = resolve_loss(loss)
    epochs = _check_int("epochs", epochs, 1)
    if not (isinstance(validation_split, numbers.Real) and 0 <= validation_split < 1):
        raise ValueError(f"fit: validation_split must lie in [0, 1), got {validation_split!r}")
    if not (isinstance(alpha, numbers.Real) and math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"fit: alpha must be a finite number >= 0, got {alpha!r}")
    callbacks = list(callbacks) + ([early_stopping] if early_stopping is not None else [])
    for c in callbacks:
        if not isinstance(c, Callback):
            raise TypeError(f"fit: callbacks must be lossgrad.nn.Callback objects, got {type(c).__name__}")
    optimizer = optim.adam(1e-3) if optimizer is None else optimizer
    if not (isinstance(optimizer, tuple) and len(optimizer) == 2 and all(map(callable, optimizer))):
        raise TypeError(f"fit: optimizer must be a lossgrad.optim transformation (init, update), got {optimizer!r}")
    rng = np.random.default_rng(seed)
    xp = array_api_compat.array_namespace(X)
    n = int(X.shape[0]) if hasattr(X, "shape") and X.ndim == 2 else -1
    if n < 1:
        raise ValueError(f"fit: X must be a 2-dimensional array with at least one row, got {getattr(X, 'shape', X)!r}")
    if int(getattr(y, "shape", [len(y)])[0]) != n:
        raise ValueError(f"fit: X has {n} rows but y has {int(getattr(y, 'shape', [len(y)])[0])}")
    if isinstance(y, (list, tuple)):
        y = np.asarray(y)
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=float) if isinstance(sample_weight, (list, tuple)) else sample_weight
        if tuple(sample_weight.shape) != (n,):
            raise ValueError(f"fit: sample_weight must have shape ({n},), got {tuple(sample_weight.shape)}")
    train_idx = np.arange(n)
    val = None
    if validation_data is not None:
        if not isinstance(validation_data, tuple) or len(validation_data) not in (2, 3):
            raise ValueError("fit: validation_data must be (X_val, y_val) or (X_val, y_val, sample_weight_val)")
        val = tuple(validation_data) + (None,) * (3 - len(validation_data))
    elif validation_split > 0:
        n_val = int(math.ceil(validation_split * n))
        if n_val >= n:
            raise ValueError(f"fit: validation_split={validation_split} leaves no training rows out of {n}")
        perm = rng.permutation(n)
        val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        val = (_take(xp, X, val_idx), _take(xp, y, val_idx), _take(xp, sample_weight, val_idx))
    n_train = len(train_idx)
    bs = n_train if batch_size is None else _check_int("batch_size", batch_size, 1)
    bs = min(bs, n_train)

    # validate the targets (and shapes) once on the whole data; the loop then skips the checks
    out = net.predict(X)
    loss_value_grad(loss, y, out, sample_weight)
    loop_config: dict[str, Any] = {"assume_valid": True}
    config = get_config()
    if config.use_kernels and math.prod(out.shape) * len(train_idx) // n >= config.kernel_threshold:
        # an epoch passes enough elements to pay for loading the fused kernels (see Config.kernel_threshold):
        # use them on every batch, however small
        loop_config["kernel_threshold"] = 0
    if val is not None:
        loss_value_grad(loss, val[1], net.predict(val[0]), val[2])

    history = History()
    trainer = Trainer(net, loss, optimizer, history, val is not None)
    trainer.opt_state = optimizer.init(net.params)
    bar = _progress(progress, epochs)
    task = bar.add_task("train", total=epochs, logs="") if bar is not None else None
    if bar is not None:
        bar.start()
    try:
        for c in callbacks:
            c.on_train_begin(trainer)
        step = 0
        for epoch in range(epochs):
            trainer.epoch = epoch
            for c in callbacks:
                c.on_epoch_begin(trainer, epoch)
            order = rng.permutation(train_idx) if shuffle else train_idx
            total, weight = 0.0, 0.0
            with config_context(**loop_config):
                for start in range(0, n_train, bs):
                    idx = order[start : start + bs]
                    wb = _take(xp, sample_weight, idx)
                    bw = float(len(idx)) if wb is None else float(np.sum(np.asarray(wb)))
                    if bw <= 0:
                        continue  # a batch of zero-weight rows has no gradient
                    out = net.forward(_take(xp, X, idx))
                    value, g = loss_value_grad(loss, _take(xp, y, idx), out, wb)
                    net.backward(g)
                    params = net.params
                    _, grads = _penalise(params, net.grads, alpha)
                    updates, trainer.opt_state = optimizer.update(grads, trainer.opt_state, params)
                    net.set_params(optim.apply_updates(params, updates))
                    total, weight = total + value * bw, weight + bw
                    for c in callbacks:
                        c.on_batch_end(trainer, step, value)
                    step += 1
                logs = {"loss": total / weight if weight > 0 else math.nan}
                if val is not None:
                    logs["val_loss"] = loss_value_grad(loss, val[1], net.predict(val[0]), val[2])[0]
            if not math.isfinite(logs["loss"]):
                raise FloatingPointError(f"fit: the training loss became {logs['loss']} at epoch {epoch}; "
                                         "lower the learning rate")
            history.loss.append(logs["loss"])
            if "val_loss" in logs:
                history.val_loss.append(logs["val_loss"])
            history.epochs = epoch + 1
            for c in callbacks:
                c.on_epoch_end(trainer, epoch, logs)
            if bar is not None:
                bar.update(task, advance=1, logs="  ".join(f"{k} {v:.4g}" for k, v in logs.items()))
            if trainer.stop_training:
                break
        for c in callbacks:
            c.on_train_end(trainer)
    finally:
        if bar is not None:
            bar.stop()
    return history
