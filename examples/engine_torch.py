"""lossgrad losses inside PyTorch: a robust linear fit by Newton's method with exact Hessians.

The loss's backward is its closed-form gradient and its double backward its
closed-form Hessian, so ``torch.autograd.functional.hessian`` gives the exact Newton
matrix of a model trained with any catalog loss.

    python examples/engine_torch.py
"""

from __future__ import annotations

import numpy as np
import torch

import lossgrad
from lossgrad.integrations.torch import LossModule, function


def main() -> None:
    torch.manual_seed(0)
    n, p = 500, 3
    X = torch.randn(n, p, dtype=torch.float64)
    beta_true = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    y = X @ beta_true + 0.3 * torch.randn(n, dtype=torch.float64)
    y[:25] += 30.0  # outliers

    loss = function("pseudo_huber", delta=0.5)
    objective = lambda b: loss(y, X @ b)  # noqa: E731
    ols = torch.linalg.lstsq(X, y[:, None]).solution[:, 0]
    beta = ols.clone()  # damped Newton from least squares (pure Newton is not globally convergent here)
    for it in range(50):
        g = torch.autograd.functional.jacobian(objective, beta)
        H = torch.autograd.functional.hessian(objective, beta)
        step, t = torch.linalg.solve(H, g), 1.0
        while float(objective(beta - t * step)) > float(objective(beta)) and t > 1e-8:
            t *= 0.5
        beta = beta - t * step
        if float(g.norm()) < 1e-10:
            break
    print(f"pseudo-Huber damped Newton fit, {it + 1} steps: {beta.numpy().round(4)} (true {beta_true.numpy()})")
    print(f"least squares for comparison:              {ols.numpy().round(4)}")

    # a classifier head trained with lossgrad's cross-entropy module
    Xc = torch.randn(400, 2, dtype=torch.float64)
    labels = (Xc[:, 0] > 0).long() + (Xc[:, 1] > 1).long()
    model = torch.nn.Linear(2, 3, dtype=torch.float64)
    ce = LossModule("cross_entropy", label_smoothing=0.05)
    opt = torch.optim.LBFGS(model.parameters(), max_iter=50)

    def closure():
        opt.zero_grad()
        out = ce(labels, model(Xc))
        out.backward()
        return out

    opt.step(closure)
    with torch.no_grad():
        scores = model(Xc)
        acc = (scores.argmax(1) == labels).double().mean()
        ours = float(ce(labels, scores))
        # the built-in agrees (PyTorch takes (input, target), lossgrad (y_true, y_pred))
        ref = float(torch.nn.functional.cross_entropy(scores, labels, label_smoothing=0.05))
    print(f"cross-entropy head: loss {ours:.4f}, accuracy {float(acc):.3f}; torch's cross_entropy {ref:.4f}")
    assert np.isclose(ours, ref)
    print(f"every catalog loss works the same way: {len(lossgrad.catalog())} of them")


if __name__ == "__main__":
    main()
