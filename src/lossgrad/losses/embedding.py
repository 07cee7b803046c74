"""Losses of the embedding family: pairs, triplets, in-batch softmax, angular margins, centers, GE2E.

One module a group (each under ~500 lines):

* :mod:`.embedding_pair`: ``contrastive``, ``margin_ranking``, ``cosine_embedding``;
* :mod:`.embedding_triplet`: ``triplet`` (with batch-all / batch-hard mining);
* :mod:`.embedding_nce`: ``info_nce`` (NT-Xent), ``multiple_negatives_ranking``;
* :mod:`.embedding_supcon`: ``supcon`` (supervised contrastive);
* :mod:`.embedding_margin`: ``arcface``, ``cosface``, ``sphereface``;
* :mod:`.embedding_center`: ``center``;
* :mod:`.embedding_ge2e`: ``ge2e``.

Every loss is a :class:`~lossgrad.BatchLoss`: named inputs, per-item ``value``,
``grad`` a dict of closed-form gradients of sum(sample_weight * value), ``hvp`` the
exact Hessian of that sum times a direction.
"""

from .embedding_center import CenterLoss
from .embedding_ge2e import GE2E
from .embedding_margin import ArcFace, CosFace, SphereFace
from .embedding_nce import InfoNCE, MultipleNegativesRanking
from .embedding_pair import Contrastive, CosineEmbedding, MarginRanking
from .embedding_supcon import SupCon
from .embedding_triplet import Triplet

__all__ = [
    "Contrastive",
    "MarginRanking",
    "CosineEmbedding",
    "Triplet",
    "InfoNCE",
    "MultipleNegativesRanking",
    "SupCon",
    "ArcFace",
    "CosFace",
    "SphereFace",
    "CenterLoss",
    "GE2E",
]
