r"""The worked 2-2-1 sigmoid network of the course notes, computed exactly with lossgrad.nn.

Source: ``shared/seeds/003_64c9dc4b0702b22b.txt``, "Worked Example: A Tiny Neural Network".
Input x = (1, 0), label y = 1, binary cross-entropy on a sigmoid output, learning rate 0.1:

    z1 = w11 x1 + w21 x2 + b1,  a1 = sigma(z1)        (w11 = 0.2, w21 = 0.4, b1 = 0.1)
    z2 = w12 x1 + w22 x2 + b2,  a2 = sigma(z2)        (w12 = 0.3, w22 = 0.1, b2 = 0.2)
    z3 = w13 a1 + w23 a2 + b3,  y_hat = sigma(z3)     (w13 = 0.7, w23 = 0.5, b3 = 0.3)
    L = -[y log y_hat + (1 - y) log(1 - y_hat)]

In lossgrad.nn this is ``Dense(2, 2) -> Sigmoid -> Dense(2, 1) -> Sigmoid`` with
``W1[i, j] = w_(i+1)(j+1)`` (input i to unit j) and the catalog loss
``binary_cross_entropy(from_logits=False)``; backpropagation runs layer by layer, so every
delta of the notes is the gradient that arrives at a pre-activation.

Every number the notes print is checked: a value agrees when it is within one unit of its
last printed digit of the exact value.  A differing line is reported with its quotation and
classified as an arithmetic slip (the line's own arithmetic, redone from the notes' printed
inputs, does not give the printed result) or as carried over from an earlier slip.

Run ``python examples/worked_backprop.py``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

import lossgrad
from lossgrad import activations, nn, optim

LEARNING_RATE = 0.1
X = np.array([[1.0, 0.0]])
Y = np.array([1.0])
PARAMS = {
    "0": {"weight": np.array([[0.2, 0.3], [0.4, 0.1]]), "bias": np.array([0.1, 0.2])},  # [[w11, w12], [w21, w22]]
    "2": {"weight": np.array([[0.7], [0.5]]), "bias": np.array([0.3])},  # [[w13], [w23]]
}


@dataclass(frozen=True)
class NoteLine:
    """One number printed by the notes: its quantity, the line quoted, the value printed, and the
    line's own arithmetic redone from the values the notes print before it (None: a given)."""

    key: str
    quote: str
    redo: Callable[[], float] | None = None

    @property
    def text(self) -> str:
        """The number as printed: the last one of the line."""
        return re.findall(r"-?[0-9]+(?:\.[0-9]+)?", self.quote)[-1]

    @property
    def printed(self) -> float:
        return float(self.text)

    @property
    def unit(self) -> float:
        """One unit of the last printed digit (at least 0.001, the notes' usual precision)."""
        decimals = len(self.text.split(".")[1]) if "." in self.text else 0
        return 10.0 ** -max(decimals, 3)


def _s(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


#: The notes' lines with numbers, in order (quoted from the seed text).
NOTES: tuple[NoteLine, ...] = (
    NoteLine("z1", r"z_1 = (0.2)(1) + (0.4)(0) + 0.1 = 0.3", lambda: 0.2 * 1 + 0.4 * 0 + 0.1),
    NoteLine("a1", r"a_1 = \sigma(0.3) \approx 0.574", lambda: _s(0.3)),
    NoteLine("z2", r"z_2 = (0.3)(1) + (0.1)(0) + 0.2 = 0.5", lambda: 0.3 * 1 + 0.1 * 0 + 0.2),
    NoteLine("a2", r"a_2 = \sigma(0.5) \approx 0.622", lambda: _s(0.5)),
    NoteLine("z3", r"z_3 = (0.7)(0.574) + (0.5)(0.622) + 0.3 \approx 1.086",
             lambda: 0.7 * 0.574 + 0.5 * 0.622 + 0.3),
    NoteLine("y_hat", r"\hat{y} = \sigma(1.086) \approx 0.748", lambda: _s(1.086)),
    NoteLine("loss", r"L = -\log(0.748) \approx 0.289", lambda: -math.log(0.748)),
    NoteLine("delta3", r"\delta_3 = \hat{y} - y = 0.748 - 1 = -0.252", lambda: 0.748 - 1),
    NoteLine("dw13", r"\frac{\partial L}{\partial w_{13}} = \delta_3 \cdot a_1 = (-0.252)(0.574) \approx -0.145", lambda: -0.252 * 0.574),
    NoteLine("dw23", r"\frac{\partial L}{\partial w_{23}} = \delta_3 \cdot a_2 = (-0.252)(0.622) \approx -0.157", lambda: -0.252 * 0.622),
    NoteLine("db3", r"\frac{\partial L}{\partial b_3} = \delta_3 = -0.252", lambda: -0.252),
    NoteLine("dsigma1", r"\sigma'(0.3) = 0.574(1-0.574) = 0.244", lambda: 0.574 * (1 - 0.574)),
    NoteLine("delta1", r"\delta_1 = (0.7)(-0.252)(0.244) \approx -0.043", lambda: 0.7 * -0.252 * 0.244),
    NoteLine("dsigma2", r"\sigma'(0.5) = 0.622(1-0.622) = 0.235", lambda: 0.622 * (1 - 0.622)),
    NoteLine("delta2", r"\delta_2 = (0.5)(-0.252)(0.235) \approx -0.030", lambda: 0.5 * -0.252 * 0.235),
    NoteLine("dw11", r"\frac{\partial L}{\partial w_{11}} = \delta_1 \cdot x_1 = (-0.043)(1) = -0.043",
             lambda: -0.043 * 1),
    NoteLine("dw21", r"\frac{\partial L}{\partial w_{21}} = \delta_1 \cdot x_2 = (-0.043)(0) = 0",
             lambda: -0.043 * 0),
    NoteLine("db1", r"\frac{\partial L}{\partial b_1} = \delta_1 = -0.043", lambda: -0.043),
    NoteLine("dw12", r"\frac{\partial L}{\partial w_{12}} = \delta_2 \cdot x_1 = (-0.030)(1) = -0.030",
             lambda: -0.030 * 1),
    NoteLine("dw22", r"\frac{\partial L}{\partial w_{22}} = \delta_2 \cdot x_2 = (-0.030)(0) = 0",
             lambda: -0.030 * 0),
    NoteLine("db2", r"\frac{\partial L}{\partial b_2} = \delta_2 = -0.030", lambda: -0.030),
    NoteLine("w13_new", r"w_{13}^{new} = w_{13} - \eta \cdot \frac{\partial L}{\partial w_{13}} = 0.7 - 0.1(-0.145) = 0.7145", lambda: 0.7 - 0.1 * -0.145),
)


@dataclass(frozen=True)
class Discrepancy:
    key: str
    quote: str
    printed: str
    exact: float
    slip: bool  #: True: the line's own arithmetic is off; False: carried over from an earlier line
    redone: float | None


def build_network() -> nn.Sequential:
    net = nn.Sequential(nn.Dense(2, 2), nn.Sigmoid(), nn.Dense(2, 1), nn.Sigmoid())
    net.set_params(PARAMS)
    return net


def compute() -> dict[str, float]:
    """Every quantity of the worked example, exactly (float64), with lossgrad.nn."""
    net = build_network()
    loss = lossgrad.get("binary_cross_entropy", from_logits=False)
    dense1, sig1, dense2, sig2 = net.layers
    z = dense1.forward(X)
    a = sig1.forward(z)
    z3 = dense2.forward(a)
    y_hat = sig2.forward(z3)
    value, dL_dyhat = nn.loss_value_grad(loss, Y, y_hat)
    delta3 = sig2.backward(dL_dyhat)  # dL/dz3 = dL/dy_hat * sigma'(z3)
    dL_da = dense2.backward(delta3)
    delta12 = sig1.backward(dL_da)  # dL/dz1, dL/dz2
    dense1.backward(delta12)
    grads = net.grads
    dsig = activations.get("sigmoid").derivative(z)
    updates, _ = optim.sgd(LEARNING_RATE).update(grads, optim.sgd(LEARNING_RATE).init(net.params), net.params)
    new = optim.apply_updates(net.params, updates)
    W1, b1, W2, b2 = new["0"]["weight"], new["0"]["bias"], new["2"]["weight"], new["2"]["bias"]
    g1, g2 = grads["0"], grads["2"]
    out = {
        "z1": z[0, 0], "a1": a[0, 0], "z2": z[0, 1], "a2": a[0, 1], "z3": z3[0, 0], "y_hat": y_hat[0, 0],
        "loss": value, "dL_dyhat": dL_dyhat[0, 0], "delta3": delta3[0, 0],
        "dw13": g2["weight"][0, 0], "dw23": g2["weight"][1, 0], "db3": g2["bias"][0],
        "dsigma1": dsig[0, 0], "delta1": delta12[0, 0], "dsigma2": dsig[0, 1], "delta2": delta12[0, 1],
        "dw11": g1["weight"][0, 0], "dw21": g1["weight"][1, 0], "db1": g1["bias"][0],
        "dw12": g1["weight"][0, 1], "dw22": g1["weight"][1, 1], "db2": g1["bias"][1],
        "w11_new": W1[0, 0], "w21_new": W1[1, 0], "b1_new": b1[0], "w12_new": W1[0, 1], "w22_new": W1[1, 1],
        "b2_new": b1[1], "w13_new": W2[0, 0], "w23_new": W2[1, 0], "b3_new": b2[0],
    }
    net.set_params(new)
    out["loss_after_step"] = net.loss(loss, X, Y)
    return {k: float(v) for k, v in out.items()}


def check_notes(exact: dict[str, float]) -> list[Discrepancy]:
    """The notes' lines whose printed value is off by more than one unit of its last digit."""
    found = []
    for line in NOTES:
        if abs(line.printed - exact[line.key]) <= line.unit * (1 + 1e-9):
            continue
        redone = line.redo() if line.redo is not None else None
        slip = redone is not None and abs(redone - line.printed) > line.unit * (1 + 1e-9)
        found.append(Discrepancy(line.key, line.quote, line.text, exact[line.key], slip, redone))
    return found


_LABELS = {
    "z1": "z1 = w11 x1 + w21 x2 + b1", "a1": "a1 = sigma(z1)", "z2": "z2 = w12 x1 + w22 x2 + b2",
    "a2": "a2 = sigma(z2)", "z3": "z3 = w13 a1 + w23 a2 + b3", "y_hat": "y_hat = sigma(z3)",
    "loss": "L = -log(y_hat)", "dL_dyhat": "dL/dy_hat = -1/y_hat", "delta3": "delta3 = dL/dz3 = y_hat - y",
    "dw13": "dL/dw13 = delta3 a1", "dw23": "dL/dw23 = delta3 a2", "db3": "dL/db3 = delta3",
    "dsigma1": "sigma'(z1) = a1 (1 - a1)", "delta1": "delta1 = w13 delta3 sigma'(z1)",
    "dsigma2": "sigma'(z2) = a2 (1 - a2)", "delta2": "delta2 = w23 delta3 sigma'(z2)",
    "dw11": "dL/dw11 = delta1 x1", "dw21": "dL/dw21 = delta1 x2", "db1": "dL/db1 = delta1",
    "dw12": "dL/dw12 = delta2 x1", "dw22": "dL/dw22 = delta2 x2", "db2": "dL/db2 = delta2",
}
_SECTIONS = (
    ("Forward pass", ("z1", "a1", "z2", "a2", "z3", "y_hat")),
    ("Loss (binary cross-entropy, y = 1)", ("loss",)),
    ("Backward pass (chain rule, layer by layer)",
     ("dL_dyhat", "delta3", "dw13", "dw23", "db3", "dsigma1", "delta1", "dsigma2", "delta2",
      "dw11", "dw21", "db1", "dw12", "dw22", "db2")),
)


def report(exact: dict[str, float], found: list[Discrepancy]) -> str:
    notes = {line.key: line for line in NOTES}
    bad = {d.key: d for d in found}
    lines = ["Worked example: 2-2-1 sigmoid network, x = (1, 0), y = 1 (lossgrad.nn, float64)", ""]

    def row(key: str, label: str) -> str:
        text = f"  {label:<36} {exact[key]: .10f}"
        if key in notes:
            mark = "DIFFERS" if key in bad else "agrees"
            text += f"   notes {notes[key].text}: {mark}"
        return text

    for title, keys in _SECTIONS:
        lines.append(title)
        lines.extend(row(k, _LABELS[k]) for k in keys)
        lines.append("")
    lines.append(f"Gradient-descent step, learning rate {LEARNING_RATE}: w <- w - {LEARNING_RATE} dL/dw")
    for name in ("w11", "w21", "b1", "w12", "w22", "b2", "w13", "w23", "b3"):
        lines.append(row(f"{name}_new", f"{name} new"))
    lines.append(f"  loss after the step: {exact['loss_after_step']:.10f} (before: {exact['loss']:.10f})")
    lines.append("")
    lines.append(f"Checking the notes: {len(NOTES)} printed numbers, {len(found)} differ from the exact values "
                 "(more than one unit of their last digit).")
    for d in found:
        lines.append(f'  notes line "{d.quote}"')
        lines.append(f"    prints {d.printed}; the exact value is {d.exact:.6f}")
        if d.slip:
            lines.append(f"    arithmetic slip in this line: its own inputs give {d.redone:.6f}, not {d.printed}")
        else:
            lines.append("    carried over from an earlier line (this line's own arithmetic is right)")
    slips = [d for d in found if d.slip]
    if slips:
        lines.append("Root causes: " + "; ".join(f"{d.key} (notes {d.printed}, should be {d.redone:.4f} from "
                                                 f"their inputs, exactly {d.exact:.4f})" for d in slips) + ".")
    return "\n".join(lines)


def main() -> tuple[dict[str, float], list[Discrepancy]]:
    exact = compute()
    found = check_notes(exact)
    print(report(exact, found))
    return exact, found


if __name__ == "__main__":
    main()
