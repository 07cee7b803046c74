"""The optimizer protocol: a pair of pure functions, ``init`` and ``update``.

A *gradient transformation* turns the gradient into an update::

    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    params = apply_updates(params, updates)

``init`` and ``update`` never modify their arguments: every array they return is new, and
the state is a (nested) ``NamedTuple`` of arrays and Python numbers.  :func:`chain`
composes transformations left to right.

*Params* (and grads, updates) are a tree: a single floating array (NumPy, PyTorch, JAX: any
array-API namespace), or a ``dict`` whose values are arrays or nested dicts of arrays.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

__all__ = [
    "GradientTransformation",
    "EmptyState",
    "identity",
    "chain",
    "apply_updates",
    "tree_map",
    "tree_leaves",
    "global_norm",
    "as_learning_rate",
]

Params = Any
Updates = Any
State = Any


class GradientTransformation(NamedTuple):
    """``init(params) -> state`` and ``update(grads, state, params=None) -> (updates, state)``."""

    init: Callable[[Params], State]
    update: Callable[..., tuple[Updates, State]]


class EmptyState(NamedTuple):
    """The state of a stateless transformation."""


# ------------------------------------------------------------------------------- trees


def _path(where: Any) -> str:
    """The leaf's name in messages: "params", or its keys as ``['layer']['w']``."""
    return _keys(where) or "params"


def _keys(where: Any) -> str:
    # ``where`` is a prefix string or a (parent, key) pair, formatted only when an error needs it
    if isinstance(where, tuple):
        parent, key = where
        return f"{_keys(parent)}[{key!r}]"
    return where


def _check_leaf(x: Any, path: Any) -> None:
    if type(x) is np.ndarray and x.dtype.kind == "f":  # the common case, without the namespace lookup
        return
    if isinstance(x, Mapping):
        return
    if isinstance(x, (bool, numbers.Number, list, tuple)) or x is None or not hasattr(x, "dtype"):
        raise TypeError(
            f"{_path(path)} must be a floating-point array (NumPy, PyTorch, JAX, ...) or a dict of such arrays, "
            f"got {type(x).__name__}"
        )
    try:
        xp = array_api_compat.array_namespace(x)
    except TypeError:
        raise TypeError(f"{_path(path)} must be an array of a known array library, got {type(x).__name__}") from None
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(f"{_path(path)} must have a real floating-point dtype, got {x.dtype}")


def tree_map(fn: Callable[..., Any], tree: Any, *rest: Any, _path_prefix: Any = "") -> Any:
    """Apply ``fn`` leaf by leaf to trees of the same structure (an array or nested dicts).

    Raises ValueError naming the key when the structures or the leaf shapes differ.
    """
    if isinstance(tree, Mapping):
        for other in rest:
            if not isinstance(other, Mapping) or set(other) != set(tree):
                got = sorted(map(str, other)) if isinstance(other, Mapping) else type(other).__name__
                raise ValueError(
                    f"{_path(_path_prefix)}: the trees must have the same structure; expected keys "
                    f"{sorted(map(str, tree))}, got {got}"
                )
        return {k: tree_map(fn, tree[k], *(o[k] for o in rest), _path_prefix=(_path_prefix, k)) for k in tree}
    _check_leaf(tree, _path_prefix)
    for other in rest:
        if isinstance(other, Mapping):
            raise ValueError(f"{_path(_path_prefix)}: expected an array, got a dict")
        _check_leaf(other, _path_prefix)
        if other.shape != tree.shape and tuple(other.shape) != tuple(tree.shape):
            raise ValueError(
                f"{_path(_path_prefix)}: shapes differ, {tuple(tree.shape)} and {tuple(other.shape)}"
            )
    out = fn(tree, *rest)
    return np.asarray(out) if isinstance(out, np.generic) else out


def tree_leaves(tree: Any) -> list[Any]:
    """The arrays of a tree, in key order of the dicts."""
    if isinstance(tree, Mapping):
        return [leaf for k in tree for leaf in tree_leaves(tree[k])]
    _check_leaf(tree, "")
    return [tree]


def zeros_like(tree: Any, value: float = 0.0) -> Any:
    """A tree of new arrays of the same shapes, dtypes and devices, filled with ``value``."""

    def fill(x: Any) -> Any:
        xp = array_api_compat.array_namespace(x)
        return xp.full(x.shape, value, dtype=x.dtype, device=array_api_compat.device(x))

    return tree_map(fill, tree)


def global_norm(tree: Any) -> float:
    """sqrt(sum over every leaf of sum(g**2)): the Euclidean norm of all entries together."""
    total = 0.0
    for g in tree_leaves(tree):
        xp = array_api_compat.array_namespace(g)
        total += float(xp.sum(g * g))
    return math.sqrt(total)


def sqrt(x: Any) -> Any:
    if type(x) is np.ndarray:
        return np.sqrt(x)
    return array_api_compat.array_namespace(x).sqrt(x)


# ------------------------------------------------------------------------------- composition


def identity() -> GradientTransformation:
    """The transformation that returns the gradient unchanged."""
    return GradientTransformation(lambda params: EmptyState(), lambda grads, state, params=None: (grads, state))


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Compose transformations: the updates of one are the input of the next, left to right.

    The state is the tuple of the states of the parts.

    >>> import numpy as np
    >>> from lossgrad import optim
    >>> tx = optim.chain(optim.clip(1.0), optim.scale(-0.5))
    >>> u, _ = tx.update(np.array([3.0, -0.2]), tx.init(np.zeros(2)))
    >>> u.tolist()
    [-0.5, 0.1]
    """
    for i, t in enumerate(transforms):
        if not (isinstance(t, tuple) and len(t) == 2 and callable(t[0]) and callable(t[1])):
            raise TypeError(f"chain: argument {i} must be a GradientTransformation (init, update), got {t!r}")

    def init(params: Params) -> tuple[State, ...]:
        return tuple(t.init(params) for t in transforms)

    def update(grads: Updates, state: tuple[State, ...], params: Params = None) -> tuple[Updates, tuple[State, ...]]:
        if not isinstance(state, tuple) or len(state) != len(transforms):
            raise ValueError(f"chain: state must be the tuple of {len(transforms)} states returned by init")
        new_state = []
        for t, s in zip(transforms, state):
            grads, s = t.update(grads, s, params)
            new_state.append(s)
        return grads, tuple(new_state)

    return GradientTransformation(init, update)


def apply_updates(params: Params, updates: Updates) -> Params:
    """``params + updates`` leaf by leaf, in new arrays of the dtype of ``params``."""

    def add(p: Any, u: Any) -> Any:
        out = p + u
        return out if out.dtype == p.dtype else array_api_compat.array_namespace(p).astype(out, p.dtype)

    return tree_map(add, params, updates)


# ------------------------------------------------------------------------------- hyper-parameters


def number(owner: str, name: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{owner}: {name} must be finite, got {value!r}")
    return v


def positive(owner: str, name: str, value: Any) -> float:
    v = number(owner, name, value)
    if not v > 0:
        raise ValueError(f"{owner}: {name} must be > 0, got {value!r}")
    return v


def nonnegative(owner: str, name: str, value: Any) -> float:
    v = number(owner, name, value)
    if not v >= 0:
        raise ValueError(f"{owner}: {name} must be >= 0, got {value!r}")
    return v


def unit_interval(owner: str, name: str, value: Any) -> float:
    """A decay rate: 0 <= value < 1."""
    v = number(owner, name, value)
    if not 0 <= v < 1:
        raise ValueError(f"{owner}: {name} must lie in [0, 1), got {value!r}")
    return v


def flag(owner: str, name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be True or False, got {value!r}")
    return bool(value)


def as_learning_rate(owner: str, learning_rate: Any) -> Callable[[int], float]:
    """A schedule from a float (> 0) or a callable step -> learning rate (checked at step 0)."""
    if callable(learning_rate):
        try:
            v0 = float(learning_rate(0))
        except Exception as exc:
            raise TypeError(f"{owner}: learning_rate schedule failed at step 0: {exc}") from exc
        if not (math.isfinite(v0) and v0 >= 0):
            raise ValueError(f"{owner}: learning_rate schedule must return finite values >= 0, got {v0!r} at step 0")
        return learning_rate
    lr = positive(owner, "learning_rate", learning_rate)
    return lambda step: lr
