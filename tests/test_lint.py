"""House lint: pyflakes errors and import order (the rules in pyproject's [tool.ruff]) stay clean."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    folders = [f for f in ("src", "tests", "benchmarks", "tools", "examples") if (ROOT / f).is_dir()]
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", *folders],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
