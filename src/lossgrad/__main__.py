"""``python -m lossgrad``: the same as the ``lossgrad`` command."""

from lossgrad.cli import main

if __name__ == "__main__":
    main()
