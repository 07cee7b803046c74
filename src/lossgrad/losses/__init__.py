"""The loss catalog, one family a module. Importing this package registers every loss."""

from . import (
    binary,
    embedding,
    glm,
    margin,
    multiclass,
    quantile,
    ranking,
    ranking_lambda,
    regression,
    robust,
    segmentation,
)
from .binary import *  # noqa: F401,F403
from .embedding import *  # noqa: F401,F403
from .glm import *  # noqa: F401,F403
from .margin import *  # noqa: F401,F403
from .multiclass import *  # noqa: F401,F403
from .quantile import *  # noqa: F401,F403
from .ranking import *  # noqa: F401,F403
from .ranking_lambda import *  # noqa: F401,F403
from .regression import *  # noqa: F401,F403
from .robust import *  # noqa: F401,F403
from .segmentation import *  # noqa: F401,F403

__all__ = [
    name
    for module in (regression, quantile, robust, glm, margin, binary, multiclass, embedding, ranking, ranking_lambda,
                   segmentation)
    for name in module.__all__
]
