"""The ``lossgrad`` command (typer + rich).

Each subcommand lives in its own module and registers itself on :data:`app` (from
``._app``) when imported; adding a subcommand is one more import line below.

    lossgrad demo                 # the main job: cards, verification, a robust fit
    lossgrad list                 # the catalog
    lossgrad show huber -p delta=2
    lossgrad check                # verify every registered loss; exit 1 on failure
"""

from __future__ import annotations

from ._app import app

# One import per subcommand module (the import registers its commands on `app`), in the
# order `lossgrad --help` lists them: not sorted.
# isort: off
from . import catalog  # noqa: E402,F401  list
from . import show  # noqa: E402,F401  show
from . import check  # noqa: E402,F401  check
from . import demo  # noqa: E402,F401  demo
from . import fit  # noqa: E402,F401  fit
from . import plot  # noqa: E402,F401  plot
from . import derive  # noqa: E402,F401  derive
from . import bench  # noqa: E402,F401  bench
# isort: on

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``lossgrad`` console script and of ``python -m lossgrad``."""
    app(prog_name="lossgrad")
