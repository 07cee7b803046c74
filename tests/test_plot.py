"""lossgrad.plot: figures drawn under Agg and checked for their content."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import lossgrad  # noqa: E402
from lossgrad import plot  # noqa: E402


def _curves(ax):
    return [line for line in ax.lines if line.get_gid() == "curve"]


def _kinks(ax):
    return [line for line in ax.lines if line.get_gid() == "kink"]


def test_curves_value_grad_hess_with_kinks():
    fig = plot.curves(["huber", "squared_error", "absolute_error"], x_range=(-3, 3))
    assert [ax.get_ylabel() for ax in fig.axes] == ["L", "L'", "L''"]
    for ax in fig.axes:
        assert ax.get_xlim() == (-3.0, 3.0)
        assert len(_curves(ax)) == 3
        # huber: 2 kinks, absolute_error: 1, squared_error: none
        xs = sorted(x for line in _kinks(ax) for x in line.get_xdata())
        assert xs == [-1.0, 0.0, 1.0]
    # the plotted numbers are the loss's own
    value_ax, grad_ax, hess_ax = fig.axes
    huber = lossgrad.get("huber")
    line = _curves(grad_ax)[0]
    x, g = line.get_xdata(), line.get_ydata()
    np.testing.assert_array_equal(g, huber.grad(np.zeros_like(x), x))
    sq = _curves(hess_ax)[1]
    assert np.all(sq.get_ydata() == 2.0)
    # the kink marker sits at the value the loss returns there (absolute_error: grad 0 at 0)
    k = _kinks(grad_ax)[1]
    assert k.get_xdata().tolist() == [0.0] and k.get_ydata().tolist() == [0.0]
    labels = [t.get_text() for t in value_ax.get_legend().get_texts()]
    assert labels == ["huber(delta=1)", "squared_error", "absolute_error"]


def test_curves_default_range_covers_kinks_and_margin_axis():
    fig = plot.curves("hampel", what="value")
    lo, hi = fig.axes[0].get_xlim()
    assert lo <= -8 and hi >= 8 and len(fig.axes) == 1
    assert len(_kinks(fig.axes[0])[0].get_xdata()) == 6
    fig = plot.curves(["hinge", "zero_one"], what="value,grad")
    assert fig.axes[0].get_xlabel().startswith("z")
    # zero_one declares no gradient: only hinge is drawn in the L' panel
    assert len(_curves(fig.axes[0])) == 2 and len(_curves(fig.axes[1])) == 1
    fig = plot.curves(("huber", {"delta": 2.0}), what="grad", x_range=(-5, 5))
    g = _curves(fig.axes[0])[0].get_ydata()
    assert g.min() == -2.0 and g.max() == 2.0


def test_classification_against_probability_and_margin():
    fig = plot.classification(["logistic", "binary_cross_entropy"], against="probability")
    ax = fig.axes[0]
    a, b = _curves(ax)
    p = a.get_xdata()
    np.testing.assert_allclose(a.get_ydata(), -np.log(p), rtol=1e-9)  # cross-entropy of the true class
    np.testing.assert_allclose(b.get_ydata(), -np.log(p), rtol=1e-9)
    assert 0 < ax.get_xlim()[0] < ax.get_xlim()[1] < 1
    fig = plot.classification()
    assert len(_curves(fig.axes[0])) == 5 and fig.axes[0].get_xlim() == (-3.0, 3.0)
    with pytest.raises(ValueError, match="not a classification loss"):
        plot.classification(["huber"])
    with pytest.raises(ValueError, match="against"):
        plot.classification(against="odds")


def test_robust_weights():
    fig = plot.robust_weights(["huber", "tukey_biweight"], x_range=(-6, 6))
    ax = fig.axes[0]
    h, t = _curves(ax)
    r = h.get_xdata()
    np.testing.assert_allclose(h.get_ydata(), 1.0 / np.maximum(1.0, np.abs(r)), rtol=1e-12)
    assert t.get_ydata()[0] == 0.0 and t.get_ydata().max() == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ValueError, match="not a residual loss"):
        plot.robust_weights(["hinge"])


def test_landscape_filter_normalised():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    w = np.array([1.0, -2.0, 0.5])
    y = X @ w + 0.5
    fig = plot.landscape("squared_error", X, y, {"w": w, "b": np.array(0.5)}, n=9, span=1.0)
    a, b, values = fig.lossgrad_surface
    assert values.shape == (9, 9) and values[4, 4] == pytest.approx(0.0, abs=1e-20)  # the optimum at the centre
    assert np.all(values >= 0) and values.max() > 0.1
    ax = fig.axes[0]
    assert ax.get_xlim() == (-1.0, 1.0) and ax.get_ylim() == (-1.0, 1.0)
    assert [line.get_gid() for line in ax.lines] == ["center"]
    # filter normalisation: a direction has the norm of its filter; biases get none
    d = plot.filter_normalized_direction({"W": np.ones((4, 3)) * [1.0, 2.0, 3.0], "b": np.ones(3)},
                                         np.random.default_rng(1))
    np.testing.assert_allclose(np.linalg.norm(d["W"], axis=0), [2.0, 4.0, 6.0])
    assert np.all(d["b"] == 0)
    with pytest.raises(ValueError, match="span"):
        plot.landscape("squared_error", X, y, w, span=-1.0)


def test_landscape_of_a_fitted_estimator():
    from lossgrad.models import LinearRegressor

    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 2))
    y = X @ [1.0, 2.0] + rng.normal(0, 0.1, 60)
    model = LinearRegressor(loss="huber").fit(X, y)
    fig = plot.landscape("huber", X, y, model, n=7)
    values = fig.lossgrad_surface[2]
    assert values[3, 3] == pytest.approx(values.min())  # the fit is the minimum of the slice


def test_row_contour():
    fig = plot.row_contour("cross_entropy", 1, x_range=(-2, 2), n=21)
    s1, s2, values = fig.lossgrad_surface
    # cross-entropy of class 1 depends only on s2 - s1: log(1 + exp(s1 - s2))
    np.testing.assert_allclose(values, np.logaddexp(0.0, s1[None, :] - s2[:, None]), rtol=1e-12)
    assert fig.axes[0].get_xlim() == (-2.0, 2.0)
    with pytest.raises(ValueError, match="row"):
        plot.row_contour("huber")
    with pytest.raises(ValueError, match="class 0 or 1"):
        plot.row_contour("cross_entropy", 3)


def test_training_curves_forms():
    fig = plot.training_curves({"loss": [4.0, 2.0, 1.0], "val_loss": [5.0, 3.0, 2.5]})
    ax = fig.axes[0]
    lines = _curves(ax)
    assert [line.get_label() for line in lines] == ["loss", "val_loss"]
    assert lines[0].get_xdata().tolist() == [1, 2, 3] and ax.get_yscale() == "linear"
    fig = plot.training_curves([1000.0, 10.0, 1.0, 0.1])
    assert fig.axes[0].get_yscale() == "log" and len(_curves(fig.axes[0])) == 1
    fig = plot.training_curves([{"loss": 1.0, "acc": 0.5}, {"loss": 0.5, "acc": 0.7}])
    assert [line.get_label() for line in _curves(fig.axes[0])] == ["loss", "acc"]
    from lossgrad.nn._train import History

    fig = plot.training_curves(History(loss=[3.0, 2.0]))
    assert _curves(fig.axes[0])[0].get_ydata().tolist() == [3.0, 2.0]
    with pytest.raises(ValueError, match="history"):
        plot.training_curves([])
    with pytest.raises(ValueError, match="sequence of numbers"):
        plot.training_curves({"loss": ["a", "b"]})


def test_bad_input():
    with pytest.raises(ValueError, match="unknown loss name"):
        plot.curves("hubber")
    with pytest.raises(TypeError, match="losses"):
        plot.curves(3.0)
    with pytest.raises(ValueError, match="what"):
        plot.curves("huber", what="value,jerk")
    with pytest.raises(ValueError, match="x_range"):
        plot.curves("huber", x_range=(2, 1))
    with pytest.raises(ValueError, match="pointwise"):
        plot.curves("cross_entropy")
    with pytest.raises(ValueError, match="at least one"):
        plot.curves([])


def test_savefig_writes_a_png(tmp_path):
    fig = plot.curves("huber")
    out = tmp_path / "h.png"
    fig.savefig(out, dpi=50)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


# ------------------------------------------------------------------ the command line


def _cli(args):
    from typer.testing import CliRunner

    import lossgrad.cli.plot  # noqa: F401  (registers `lossgrad plot` on the app)
    from lossgrad.cli import app

    return CliRunner().invoke(app, args)


def test_cli_plot_writes_the_figure(tmp_path):
    import json

    out = tmp_path / "cmp.png"
    res = _cli(["plot", "huber", "squared_error", "absolute_error", "-o", str(out), "--dpi", "40"])
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = _cli(["plot", "huber", "-p", "delta=2", "--what", "grad", "--range", "-5,5", "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["panels"] == ["L'"] and data["x_range"] == [-5.0, 5.0] and data["kinks"] == [[-2.0, 2.0]]
    assert data["losses"] == [{"name": "huber", "params": {"delta": 2}}]
    res = _cli(["plot", "huber", "tukey_biweight", "--kind", "weights", "-o", str(out), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["panels"] == ["w(r) = psi(r) / r"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["plot", "hubr"], "did you mean 'huber'"),
        (["plot", "huber", "--what", "jerk"], "what must name"),
        (["plot", "huber", "--range", "3,1"], "LO < HI"),
        (["plot", "huber", "--range", "a"], "LO,HI"),
        (["plot", "huber", "-p", "tau=0.3"], "no plotted loss has a parameter 'tau'"),
        (["plot", "huber", "--kind", "pie"], "--kind must be one of"),
        (["plot", "huber", "-p", "delta=-1"], "delta"),
    ],
)
def test_cli_plot_usage_errors_exit_2(args, message, tmp_path):
    res = _cli([*args, "-o", str(tmp_path / "x.png")])
    assert res.exit_code == 2
    assert message in res.output


def test_cli_plot_unwritable_path_exits_1(tmp_path):
    res = _cli(["plot", "huber", "-o", str(tmp_path / "missing" / "dir" / "x.png")])
    assert res.exit_code == 1 and "could not write" in res.output


def test_landscape_of_a_network():
    from lossgrad import nn

    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 2))
    y = np.tanh(X[:, 0]) - X[:, 1]
    net = nn.Sequential(nn.Dense(2, 5, seed=0), nn.Tanh(), nn.Dense(5, 1, seed=1))
    before = {k: {n: v.copy() for n, v in p.items()} for k, p in net.params.items()}
    fig = plot.landscape("squared_error", X, y, net, n=5, span=0.5)
    values = fig.lossgrad_surface[2]
    assert values[2, 2] == pytest.approx(float(lossgrad.get("squared_error")(y, np.asarray(net.predict(X))[:, 0])))
    assert np.ptp(values) > 0  # the directions move the loss
    for k, p in net.params.items():  # the network is left as it was
        for n, v in p.items():
            np.testing.assert_array_equal(v, before[k][n])
