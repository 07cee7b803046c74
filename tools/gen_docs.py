"""Generate the documentation sources: the hand-written pages of ``docs/`` plus one page
and one figure per registered loss, from the catalog.

    python tools/gen_docs.py                 # writes build/site-src and build/mkdocs.yml
    mkdocs build --strict -f build/mkdocs.yml

Nothing generated is committed: the per-loss pages are rebuilt from the code every time,
so a formula, a property or a kink on the site is what the code declares (and what
``lossgrad.verify`` measures).  ``--dpi`` sets the resolution of the figures (the test
suite builds the site at a low one to stay fast).
"""

from __future__ import annotations

import argparse
import inspect
import re
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: Peer conventions: loss name -> [(library, equivalent, mapping)].  Each row states the
#: exact relation between lossgrad's value and the peer's (the oracle tests check them).
CONVENTIONS: dict[str, list[tuple[str, str, str]]] = {
    "squared_error": [
        ("PyTorch", "torch.nn.MSELoss", "same value: r^2"),
        ("Keras", "keras.losses.MeanSquaredError", "same value: r^2"),
        ("optax", "optax.squared_error", "same value: r^2 (optax.l2_loss is r^2 / 2)"),
        ("scikit-learn", "sklearn._loss.HalfSquaredError", "half of lossgrad's: r^2 / 2"),
        ("statsmodels", "statsmodels.robust.norms.LeastSquares", "rho = r^2 / 2, half of lossgrad's"),
    ],
    "absolute_error": [
        ("PyTorch", "torch.nn.L1Loss", "same value: |r|"),
        ("Keras", "keras.losses.MeanAbsoluteError", "same value: |r|"),
        ("scikit-learn", "sklearn._loss.AbsoluteError", "same value: |r|"),
    ],
    "huber": [
        ("PyTorch", "torch.nn.HuberLoss(delta=delta)", "same value"),
        ("PyTorch", "torch.nn.SmoothL1Loss(beta=delta)", "huber(delta) / delta"),
        ("optax", "optax.huber_loss(delta=delta)", "same value"),
        ("Keras", "keras.losses.Huber(delta=delta)", "same value"),
        ("statsmodels", "statsmodels.robust.norms.HuberT(t=delta)", "same rho"),
    ],
    "smooth_l1": [("PyTorch", "torch.nn.SmoothL1Loss(beta=beta)", "same value")],
    "log_cosh": [("Keras", "keras.losses.LogCosh", "same value"), ("optax", "optax.log_cosh", "same value")],
    "quantile": [("scikit-learn", "sklearn._loss.PinballLoss(quantile=tau)", "same value")],
    "binary_cross_entropy": [
        ("PyTorch", "torch.nn.BCEWithLogitsLoss(pos_weight=...)", "same value on logits f"),
        ("optax", "optax.sigmoid_binary_cross_entropy", "same value on logits f"),
        ("Keras", "keras.losses.BinaryCrossentropy(from_logits=True)", "same value on logits f"),
        ("scikit-learn", "sklearn._loss.HalfBinomialLoss", "same value on the raw prediction f"),
    ],
    "logistic": [("optax", "optax.sigmoid_binary_cross_entropy", "same value with labels (y + 1) / 2")],
    "hinge": [("optax", "optax.hinge_loss", "same value, labels in {-1, +1}"),
              ("Keras", "keras.losses.Hinge", "same value, labels in {-1, +1}")],
    "squared_hinge": [("Keras", "keras.losses.SquaredHinge", "same value, labels in {-1, +1}")],
    "modified_huber": [("scikit-learn", "SGDClassifier(loss='modified_huber')", "same loss")],
    "epsilon_insensitive": [("scikit-learn", "SGDRegressor(loss='epsilon_insensitive')", "same loss")],
    "squared_epsilon_insensitive": [("scikit-learn", "SGDRegressor(loss='squared_epsilon_insensitive')",
                                     "same loss")],
    "poisson": [("PyTorch", "torch.nn.PoissonNLLLoss(log_input=True, full=False)", "same value on f = log mu"),
                ("scikit-learn", "sklearn._loss.HalfPoissonLoss", "same value on f = log mu")],
    "gamma": [("scikit-learn", "sklearn._loss.HalfGammaLoss", "same value on f = log mu")],
    "tweedie": [("scikit-learn", "sklearn._loss.HalfTweedieLoss(power=power)", "same value on f = log mu")],
    "cross_entropy": [
        ("PyTorch", "torch.nn.CrossEntropyLoss", "same value on logits"),
        ("optax", "optax.softmax_cross_entropy_with_integer_labels", "same value on logits"),
        ("Keras", "keras.losses.SparseCategoricalCrossentropy(from_logits=True)", "same value on logits"),
        ("scikit-learn", "sklearn._loss.HalfMultinomialLoss", "same value on the raw prediction"),
    ],
    "kl_divergence": [("PyTorch", "torch.nn.KLDivLoss", "PyTorch takes log-probabilities as input")],
    "multiclass_hinge": [("PyTorch", "torch.nn.MultiMarginLoss", "see the loss's docstring for the scaling")],
    "multilabel": [("PyTorch", "torch.nn.BCEWithLogitsLoss", "summed over labels per row")],
    "triplet": [("PyTorch", "torch.nn.TripletMarginLoss", "see the loss's docstring")],
    "cosine_embedding": [("PyTorch", "torch.nn.CosineEmbeddingLoss", "same value")],
    "margin_ranking": [("PyTorch", "torch.nn.MarginRankingLoss", "same value")],
    "tukey_biweight": [("statsmodels", "statsmodels.robust.norms.TukeyBiweight(c=c)", "same rho")],
    "andrews": [("statsmodels", "statsmodels.robust.norms.AndrewWave(a=a)", "same rho")],
    "hampel": [("statsmodels", "statsmodels.robust.norms.Hampel(a=a, b=b, c=c)", "same rho")],
}

API_MODULES = [
    ("lossgrad", "The package: get, catalog, base classes"),
    ("lossgrad.plot", "Figures"),
    ("lossgrad.custom", "Custom losses from a formula"),
    ("lossgrad.verification", "verify"),
    ("lossgrad.numdiff", "Finite differences"),
    ("lossgrad.activations", "Activations"),
    ("lossgrad.robust", "Robust regression"),
    ("lossgrad.models", "Estimators"),
    ("lossgrad.optim", "Optimizers"),
    ("lossgrad.nn", "Networks"),
]


# ------------------------------------------------------------------ griffe extension


def fence_doctests(text: str) -> str:
    """Wrap every run of doctest lines (``>>>`` and the output up to a blank line) in a
    ```` ```pycon ```` fence, so that Markdown renders them as code (and does not read
    ``x["weight"]`` or ``[(0.0, 1)]`` in an example as a link)."""
    out: list[str] = []
    in_block = False
    in_fence = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            in_fence = not in_fence
        if not in_fence and not in_block and stripped.startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}```pycon")
            in_block = True
        elif in_block and not stripped:
            out.append(f"{indent}```")
            in_block = False
        out.append(line)
    if in_block:
        out.append(f"{indent}```")
    return "\n".join(out)


try:  # the extension is loaded by mkdocstrings (see mkdocs.yml); griffe is a docs dependency
    from griffe import Extension as _Extension
except ImportError:  # pragma: no cover - building the site needs the docs extra
    _Extension = object  # type: ignore[assignment,misc]


class DoctestFence(_Extension):  # type: ignore[misc,valid-type]
    """Griffe extension: fence the doctests of every docstring (see :func:`fence_doctests`)."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)


# ------------------------------------------------------------------ figures


def _batch_figure(loss: Any) -> Any:
    """A batch loss along a random direction v through its example inputs: the summed
    value, its directional derivative (from ``grad``) and, where the loss has a
    Hessian-vector product, its curvature v^T H v (from ``hvp``)."""
    from lossgrad.plot import _figure

    rng = np.random.default_rng(0)
    inputs = {k: (np.asarray(v, dtype=float) if np.asarray(v).dtype.kind == "f" else v)
              for k, v in loss._example_inputs(rng).items()}
    diff = [k for k in loss.differentiable if k in inputs]
    direction = {k: rng.standard_normal(np.shape(inputs[k])) for k in diff}
    s = np.linspace(-1.0, 1.0, 41)
    values, slopes, curvatures = [], [], []
    for si in s:
        moved = dict(inputs)
        for k in diff:
            moved[k] = inputs[k] + si * direction[k]
        v, g = loss.value_grad(**moved)
        values.append(float(np.sum(np.asarray(v))))
        slopes.append(float(sum(np.sum(np.asarray(g[k]) * direction[k]) for k in diff)))
        if loss.has_hvp:
            hv = loss.hvp(direction, **moved)
            curvatures.append(float(sum(np.sum(np.asarray(hv[k]) * direction[k]) for k in diff)))
    panels = [(values, "L (summed)"), (slopes, "dL/ds (from grad)")]
    if curvatures:
        panels.append((curvatures, "d2L/ds2 (from hvp)"))
    fig, axes = _figure(len(panels))
    for i, (ax, (ys, label)) in enumerate(zip(axes, panels)):
        ax.plot(s, ys, gid="curve", color=f"C{i}")
        ax.set_ylabel(label)
        ax.set_xlabel("s: inputs + s * random direction")
        ax.grid(True, alpha=0.3)
        ax.set_xlim(-1.0, 1.0)
    return fig


def _row_figure(loss: Any) -> Any:
    from lossgrad import plot

    last: Exception | None = None
    for target in (1, np.array([0.2, 0.8]), np.array([0.0, 1.0])):
        try:
            return plot.row_contour(loss, target, x_range=(-4, 4), n=41)
        except (ValueError, TypeError) as exc:
            last = exc
    raise RuntimeError(f"no figure for the row loss {loss.name}: {last}")


def figure_of(loss: Any) -> Any:
    """The figure of one loss: L, L', L'' (pointwise), contours over two scores (row),
    or a slice along a random direction (batch)."""
    from lossgrad import Shape, plot

    if loss.shape == Shape.POINTWISE:
        what = [w for w, ok in (("value", True), ("grad", loss.props.has_grad), ("hess", loss.props.has_hess)) if ok]
        return plot.curves(loss, what=what, n=301)
    if loss.shape == Shape.ROW:
        return _row_figure(loss)
    return _batch_figure(loss)


# ------------------------------------------------------------------ pages


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if hasattr(v, "value") and not isinstance(v, (int, float, str)):
        return str(v.value)
    return str(v)


def _references(loss: Any) -> list[str]:
    refs = list(getattr(type(loss), "references", ()) or ())
    lines = (inspect.getdoc(type(loss)) or "").splitlines()
    for i, line in enumerate(lines):
        if re.match(r"\s*(References?|Source)\s*:", line):
            parts = [line.split(":", 1)[1].strip()]
            for more in lines[i + 1:]:  # the paragraph goes on until a blank line or an example
                if not more.strip() or more.lstrip().startswith(">>>"):
                    break
                parts.append(more.strip())
            text = " ".join(p for p in parts if p)
            if text and text not in refs:
                refs.append(text)
    return refs


def loss_page(entry: Any, figure_name: str) -> str:
    loss = entry.make()
    out = [f"# {entry.name}", "", _md_escape(entry.summary), ""]
    out += [f"*Family* `{entry.family}` · *shape* `{entry.shape.value}` · class `lossgrad.{type(loss).__name__}`", ""]
    out += ["```python", "import lossgrad", f"loss = lossgrad.get({entry.name!r})", "```", ""]
    try:
        f = loss.formula
    except NotImplementedError:
        f = None
    if f is not None:
        out += ["## Formulas", "", f"Variable: ${f.variable}$", ""]
        for label, tex in (("Value", f.value), ("Gradient", f.grad), ("Hessian", f.hess)):
            out += [f"**{label}**", "", "$$", tex, "$$", ""]
    out += ["## Figure", "", f"![{entry.name}]({figure_name})", ""]
    if entry.params:
        out += ["## Parameters", "", "| parameter | default |", "|---|---|"]
        out += [f"| `{k}` | `{_md_escape(repr(v))}` |" for k, v in entry.params.items()]
        variants = [v for v in entry.variants if v]
        if variants:
            out += ["", "Variants swept by the contract tests: "
                    + ", ".join(f"`{_md_escape(repr(v))}`" for v in variants) + "."]
        out.append("")
    if entry.shape.value != "batch":
        props = loss.props.as_dict()
        out += ["## Properties", "", "Declared, and measured by `lossgrad.verify`.", "",
                "| property | value |", "|---|---|"]
        out += [f"| {k} | `{_fmt(v)}` |" for k, v in props.items()]
        out.append("")
    else:
        props = getattr(loss, "props", None)
        if props is not None:
            out += ["## Properties", "", "| property | value |", "|---|---|"]
            out += [f"| {k} | `{_fmt(v)}` |" for k, v in props.as_dict().items()]
            out.append("")
    kinks = tuple(getattr(loss, "kinks", ()) or ())
    if entry.shape.value == "pointwise":
        out += ["## Kinks", ""]
        if kinks:
            out += ["| at | order | side returned |", "|---|---|---|"]
            out += [f"| {k.at:g} | {k.order} | {k.side.value} |" for k in kinks]
        else:
            out.append("None: the value, gradient and Hessian are continuous.")
        out.append("")
    conv = CONVENTIONS.get(entry.name)
    if conv:
        out += ["## Conventions in other libraries", "", "| library | equivalent | relation to lossgrad |",
                "|---|---|---|"]
        out += [f"| {lib} | `{eq}` | {_md_escape(note)} |" for lib, eq, note in conv]
        out.append("")
    refs = _references(loss)
    if refs:
        out += ["## References", ""] + [f"- {_md_escape(r)}" for r in refs] + [""]
    doc = inspect.getdoc(type(loss))
    if doc:
        out += ["## Docstring", "", "```text", doc.replace("```", "'''"), "```", ""]
    return "\n".join(out)


def losses_index(entries: list[Any]) -> str:
    out = ["# Catalog", "", f"{len(entries)} registered losses, one page each, generated from the code.", ""]
    family = None
    for e in entries:
        if e.family != family:
            family = e.family
            out += ["", f"## {family}", "", "| loss | shape | summary |", "|---|---|---|"]
        out.append(f"| [{e.name}]({e.name}.md) | {e.shape.value} | {_md_escape(e.summary)} |")
    return "\n".join(out) + "\n"


def api_page(module: str, title: str) -> str:
    return f"# {module}\n\n{title}.\n\n::: {module}\n"


_BENCH_STUB = """# Benchmarks

The benchmark results are published by the benchmark suite (`benchmarks/`); this page is
replaced by them when they exist.
"""


# ------------------------------------------------------------------ driver


def _nav_files(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [f for v in nav.values() for f in _nav_files(v)]
    if isinstance(nav, list):
        return [f for v in nav for f in _nav_files(v)]
    return []


def generate(out: Path, *, dpi: int = 60, site_dir: Path | None = None) -> dict[str, Any]:
    """Write ``out/site-src`` (pages and figures) and ``out/mkdocs.yml``; return a summary."""
    import matplotlib

    matplotlib.use("Agg")
    import yaml

    import lossgrad

    out = Path(out).resolve()
    src = out / "site-src"
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(ROOT / "docs", src)
    if not (src / "benchmarks.md").exists():
        (src / "benchmarks.md").write_text(_BENCH_STUB)
    entries = lossgrad.catalog()
    (src / "losses").mkdir(exist_ok=True)
    figures = {}
    for e in entries:
        loss = e.make()
        fig_name = f"{e.name}.png"
        fig = figure_of(loss)
        try:
            fig.set_layout_engine("tight")  # half the cost of constrained layout, for 60 figures
        except RuntimeError:  # a figure with a colorbar keeps its constrained layout
            pass
        fig.savefig(src / "losses" / fig_name, dpi=dpi)
        figures[e.name] = fig_name
        (src / "losses" / f"{e.name}.md").write_text(loss_page(e, fig_name))
    (src / "losses" / "index.md").write_text(losses_index(entries))
    (src / "reference").mkdir(exist_ok=True)
    for module, title in API_MODULES:
        (src / "reference" / f"{module}.md").write_text(api_page(module, title))
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    config["docs_dir"] = str(src)
    config["site_dir"] = str(site_dir or out / "site")
    for plugin in config.get("plugins", []):
        if isinstance(plugin, dict) and "mkdocstrings" in plugin:
            python = plugin["mkdocstrings"]["handlers"]["python"]
            python["paths"] = [str(ROOT / "src")]
            python["options"]["extensions"] = [f"{Path(__file__).resolve()}:DoctestFence"]
    nav = config.setdefault("nav", [])
    listed = set(_nav_files(nav))
    extra = []
    for page in sorted(src.rglob("*.md")):  # hand-written pages of other authors: listed too
        rel = page.relative_to(src).as_posix()
        if rel not in listed and not rel.startswith(("losses/", "reference/")):
            first = next((ln[2:].strip() for ln in page.read_text().splitlines() if ln.startswith("# ")), rel)
            extra.append({first: rel})
    if extra:
        nav.append({"More": extra})
    families: dict[str, list] = {}
    for e in entries:
        families.setdefault(e.family, []).append({e.name: f"losses/{e.name}.md"})
    nav.append({"Catalog": [{"Overview": "losses/index.md"}] + [{f: pages} for f, pages in families.items()]})
    nav.append({"API reference": [{m: f"reference/{m}.md"} for m, _ in API_MODULES]})
    (out / "mkdocs.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return {"pages": sorted(figures), "figures": figures, "src": src, "config": out / "mkdocs.yml"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=textwrap.dedent(__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build", help="output folder (default: build/)")
    parser.add_argument("--dpi", type=int, default=80, help="figure resolution")
    args = parser.parse_args(argv)
    summary = generate(args.out, dpi=args.dpi)
    print(f"{len(summary['pages'])} loss pages in {summary['src']}; build with: "
          f"mkdocs build --strict -f {summary['config']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
