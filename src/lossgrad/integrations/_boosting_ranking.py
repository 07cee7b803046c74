r"""Ranking losses as boosting objectives: per-document (grad, hess) over query groups.

An engine hands a ranking objective one flat vector of scores, the relevance labels
and the query groups (XGBoost: ``DMatrix(group=...)`` or ``qid=``, read back as
``group_ptr``; LightGBM: ``Dataset(group=...)``, group sizes).  Each group is one list
of the loss; the groups are padded into (n_lists, list_len) arrays with a mask, the
loss's ``grad_hess_diag`` runs on them, and the results are scattered back to the
documents.  Lists are padded to the longest list of a chunk: groups are taken in
order of size and cut into chunks of at most ``_CHUNK_ENTRIES`` pair entries
(n_lists x list_len^2), so one long query does not pad every short one to its length
and the pairwise losses' (list_len x list_len) intermediates stay bounded.

Conventions:

* Hessians: ``exact`` is the diagonal of the exact Hessian block of each list (for
  ListNet and XE-NDCG p (1 - p), as LightGBM's ``rank_xendcg``; for ApproxNDCG it can
  be negative, so use ``floor`` there); ``upper_bound`` the absolute row sums of the
  block (ListNet: 2 p (1 - p)), from the loss's ``grad_hess_bound`` with the gradient
  (no (n_lists, L, L) blocks: ApproxNDCG's objective of examples/engine_ranking.py
  3.97 -> 1.02 ms a round in one thread; a loss without it: ``grad``, then the row sums
  of ``hess``); ``expected`` is not defined for ranking losses.
* Weights: one per group (XGBoost's ranking convention) weighs the list; one per
  document (LightGBM's) multiplies that document's grad and hess.
* Groups with fewer than two documents have no pair and no softmax to speak of:
  their documents get grad 0 and hess 0 (``floor`` with ``hessian="floor"``).
* XE-NDCG draws a fresh gamma for every call, i.e. every boosting round, from
  ``numpy.random.default_rng(loss.seed)`` owned by the objective: the paper's and
  LightGBM's per-iteration resampling, reproducible from the seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._props import Shape

__all__ = ["is_ranking", "group_sizes", "ranking_grad_hess", "ranking_value"]

_CHUNK_ENTRIES = 1 << 22


def is_ranking(loss: Any) -> bool:
    """A batch loss over (scores, relevance, mask) lists with a Hessian diagonal."""
    return (loss.shape is Shape.BATCH and tuple(getattr(loss, "differentiable", ())) == ("scores",)
            and "relevance" in getattr(loss, "inputs", ()) and hasattr(loss, "grad_hess_diag"))


def group_sizes(group: Any, n: int, *, pointers: bool = False) -> np.ndarray:
    """Group sizes (int64) from sizes or, with ``pointers``, boundaries [0, ..., n]; checked against n."""
    if group is None:
        raise ValueError("a ranking loss needs the query groups: XGBoost DMatrix(group=...) or (qid=...), "
                         "LightGBM Dataset(group=...) or fit(group=...)")
    g = np.asarray(group, dtype=np.int64).reshape(-1)
    sizes = np.diff(g) if pointers else g
    if sizes.size == 0 or np.any(sizes < 0) or int(sizes.sum()) != n:
        raise ValueError(f"query groups must be non-negative sizes adding up to the {n} predictions, "
                         f"got {sizes.size} group(s) adding up to {int(sizes.sum()) if sizes.size else 0}")
    return sizes


def _chunks(sizes: np.ndarray) -> list[np.ndarray]:
    """Indices of the groups of >= 2 documents, by size, cut at _CHUNK_ENTRIES padded pair entries."""
    order = np.argsort(sizes, kind="stable")
    order = order[sizes[order] >= 2]
    out, start = [], 0
    for stop in range(1, order.size + 1):
        longest = int(sizes[order[stop - 1]])
        if stop - start > 1 and (stop - start) * longest * longest > _CHUNK_ENTRIES:
            out.append(order[start:stop - 1])
            start = stop - 1
    if order.size:
        out.append(order[start:])
    return out


def _padded(sizes: np.ndarray, starts: np.ndarray, chunk: np.ndarray, f: np.ndarray,
            y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(list row, list column, document index) of every document of the chunk, and the
    loss's inputs: its groups as padded lists (scores, relevance, mask)."""
    sz = sizes[chunk]
    rows = np.repeat(np.arange(chunk.size), sz)
    cols = np.arange(int(sz.sum())) - np.repeat(np.cumsum(sz) - sz, sz)
    items = np.repeat(starts[chunk], sz) + cols
    shape = (chunk.size, int(sz.max()))
    scores, rel, mask = np.zeros(shape), np.zeros(shape), np.zeros(shape, dtype=bool)
    scores[rows, cols], rel[rows, cols], mask[rows, cols] = f[items], y[items], True
    return rows, cols, items, {"scores": scores, "relevance": rel, "mask": mask}


def _split_weights(w: np.ndarray | None, sizes: np.ndarray, n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(per-list weights, per-document weights): one per group or one per document."""
    if w is None:
        return None, None
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    if w.size == sizes.size:
        return w, None
    if w.size == n:
        return None, w
    raise ValueError(f"sample_weight must have one entry per query group ({sizes.size}) or per document ({n}), "
                     f"got {w.size}")


def ranking_grad_hess(loss: Any, hessian: str, floor: float, labels: Any, scores: Any, weight: Any,
                      sizes: np.ndarray, gamma_rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-document (grad, hess) of the ranking loss summed over the groups (module docstring)."""
    f = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    n = f.size
    if y.size != n:
        raise ValueError(f"labels ({y.size}) and predictions ({n}) differ in length")
    list_w, doc_w = _split_weights(weight, sizes, n)
    starts = np.cumsum(sizes) - sizes
    gamma = gamma_rng.random(n) if gamma_rng is not None else None
    g, h = np.zeros(n), np.zeros(n)
    for chunk in _chunks(sizes):
        rows, cols, items, inputs = _padded(sizes, starts, chunk, f, y)
        if gamma is not None:
            inputs["gamma"] = np.zeros_like(inputs["scores"])
            inputs["gamma"][rows, cols] = gamma[items]
        lw = None if list_w is None else list_w[chunk]
        if hessian == "upper_bound" and hasattr(loss, "grad_hess_bound"):  # the row sums without the blocks
            gd, hd = loss.grad_hess_bound(sample_weight=lw, **inputs)
            gc, hc = gd["scores"], hd["scores"]
        elif hessian == "upper_bound":
            gc = loss.grad(sample_weight=lw, **inputs)["scores"]
            hc = np.sum(np.abs(loss.hess(sample_weight=lw, **inputs)["scores"]), axis=-1)
        else:
            gd, hd = loss.grad_hess_diag(sample_weight=lw, **inputs)
            gc, hc = gd["scores"], hd["scores"]
        g[items], h[items] = np.asarray(gc)[rows, cols], np.asarray(hc)[rows, cols]
    if hessian == "floor":
        h = np.maximum(h, floor)
    if doc_w is not None:
        g, h = g * doc_w, h * doc_w
    return g, h


def ranking_value(loss: Any, labels: Any, scores: Any, weight: Any, sizes: np.ndarray) -> float:
    """The weighted mean of the loss over the groups of >= 2 documents (document weights: their mean per group)."""
    f = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    list_w, doc_w = _split_weights(weight, sizes, f.size)
    if doc_w is not None:
        group_of = np.repeat(np.arange(sizes.size), sizes)
        list_w = np.bincount(group_of, weights=doc_w, minlength=sizes.size) / np.maximum(sizes, 1)
    starts = np.cumsum(sizes) - sizes
    total, weight_sum = 0.0, 0.0
    for chunk in _chunks(sizes):
        inputs = _padded(sizes, starts, chunk, f, y)[3]
        v = np.asarray(loss.value(**inputs))
        lw = np.ones(chunk.size) if list_w is None else list_w[chunk]
        total += float(np.sum(lw * v))
        weight_sum += float(np.sum(lw))
    if weight_sum == 0.0:
        raise ValueError("no query group has two or more documents: the ranking loss is undefined")
    return total / weight_sum
