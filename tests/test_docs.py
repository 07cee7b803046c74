"""The documentation: a generated page and figure for every registered loss, the site built
with warnings as errors (offline), and the doctests of every lossgrad module."""

from __future__ import annotations

import doctest
import importlib
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lossgrad

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import gen_docs  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    import matplotlib

    matplotlib.use("Agg")
    out = tmp_path_factory.mktemp("docs")
    return gen_docs.generate(out, dpi=40)


def test_every_registered_loss_has_a_page_and_a_figure(generated):
    src = generated["src"]
    names = [e.name for e in lossgrad.catalog()]
    assert len(names) >= 50
    assert generated["pages"] == sorted(names)
    for e in lossgrad.catalog():
        page = (src / "losses" / f"{e.name}.md").read_text()
        assert page.startswith(f"# {e.name}\n")
        assert f"![{e.name}]({e.name}.png)" in page
        png = (src / "losses" / f"{e.name}.png").read_bytes()
        assert png[:8] == PNG and len(png) > 2000
        assert f"[{e.name}]({e.name}.md)" in (src / "losses" / "index.md").read_text()
        if e.shape.value == "pointwise":
            loss = e.make()
            assert "## Formulas" in page and loss.formula.grad in page and loss.formula.hess in page
            assert "| convex |" in page and "## Kinks" in page
            for k in loss.kinks:
                assert f"| {k.at:g} | {k.order} | {k.side.value} |" in page


def test_pages_carry_parameters_conventions_and_references(generated):
    src = generated["src"]
    huber = (src / "losses" / "huber.md").read_text()
    assert "| `delta` | `1.0` |" in huber
    assert "torch.nn.HuberLoss(delta=delta)" in huber and "statsmodels.robust.norms.HuberT" in huber
    assert "| -1 | 2 |" in huber and "| 1 | 2 |" in huber
    triplet = (src / "losses" / "triplet.md").read_text()
    assert "## References" in triplet and "Schroff" in triplet
    assert (src / "benchmarks.md").exists()
    for module, _ in gen_docs.API_MODULES:
        assert (src / "reference" / f"{module}.md").read_text().endswith(f"::: {module}\n")


def test_fence_doctests():
    text = "Intro.\n\n>>> x = {'a': [1]}\n>>> x['a']\n[1]\n\nAfter [(0.0, 1)] text."
    fenced = gen_docs.fence_doctests(text)
    assert fenced.splitlines() == ["Intro.", "", "```pycon", ">>> x = {'a': [1]}", ">>> x['a']", "[1]", "```", "",
                                   "After [(0.0, 1)] text."]


def test_site_builds_strict_and_offline(generated, tmp_path):
    config = generated["config"]
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", no_proxy="*", http_proxy="http://127.0.0.1:9",
               https_proxy="http://127.0.0.1:9")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(config),
                           "-d", str(tmp_path / "site")], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    site = tmp_path / "site"
    for e in lossgrad.catalog():
        html = (site / "losses" / e.name / "index.html").read_text()
        assert f'src="../{e.name}.png"' in html
    assert "lossgrad.custom.from_formula" in (site / "reference" / "lossgrad.custom" / "index.html").read_text()
    assert (site / "guide" / "custom" / "index.html").exists() and (site / "benchmarks" / "index.html").exists()


_NUMPY_1 = int(np.__version__.split(".")[0]) < 2
_NUMPY2_SCALAR = re.compile(r"np\.(?:float|int|uint|complex)\d+\(([^()]*)\)|np\.(True|False)_")


class _Numpy1Checker(doctest.OutputChecker):
    """The examples show NumPy 2's scalar reprs (``np.float64(0.5)``, ``np.True_``); NumPy 1
    prints the bare value (``0.5``, ``True``), which is what the expectation becomes there."""

    def check_output(self, want: str, got: str, optionflags: int) -> bool:
        want = _NUMPY2_SCALAR.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2), want)
        return super().check_output(want, got, optionflags)


def _modules():
    names = ["lossgrad"]
    for info in pkgutil.walk_packages(lossgrad.__path__, "lossgrad."):
        names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_doctests(name):
    import matplotlib

    matplotlib.use("Agg")
    module = importlib.import_module(name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, name)
    runner = doctest.DocTestRunner(checker=_Numpy1Checker() if _NUMPY_1 else None,
                                   optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    ran = 0
    for test in tests:
        if test.examples and (test.filename is None or Path(test.filename).resolve().is_relative_to(ROOT)):
            result = runner.run(test, out=report.append)
            ran += result.attempted
    assert runner.failures == 0, f"doctests failed in {name}:\n" + "".join(report)
    if name in ("lossgrad", "lossgrad.plot", "lossgrad.custom"):
        assert ran >= 3  # these modules document themselves by example
