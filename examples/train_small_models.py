"""Train a small MLP on scikit-learn's digits with every momentopt optimizer beside torch.optim's.

Each pair starts from the same weights and sees the same mini-batches; the script prints both
loss curves' ends and their largest gap. Run: ``python examples/train_small_models.py``.
"""

from __future__ import annotations

import argparse
import copy

import torch
from torch import nn

import momentopt

CONFIGS: dict[str, tuple[type, type, dict]] = {
    "SGD": (torch.optim.SGD, momentopt.SGD, {"lr": 0.1}),
    "Momentum": (torch.optim.SGD, momentopt.SGD, {"lr": 0.05, "momentum": 0.9}),
    "Nesterov": (torch.optim.SGD, momentopt.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    "Adagrad": (torch.optim.Adagrad, momentopt.Adagrad, {"lr": 0.05}),
    "Adadelta": (torch.optim.Adadelta, momentopt.Adadelta, {"lr": 1.0}),
    "RMSprop": (torch.optim.RMSprop, momentopt.RMSprop, {"lr": 1e-3}),
    "Adam": (torch.optim.Adam, momentopt.Adam, {"lr": 1e-3}),
    "AMSGrad": (torch.optim.Adam, momentopt.Adam, {"lr": 1e-3, "amsgrad": True}),
    "NAdam": (torch.optim.NAdam, momentopt.NAdam, {"lr": 2e-3}),
    "AdamW": (torch.optim.AdamW, momentopt.AdamW, {"lr": 1e-3, "weight_decay": 1e-2}),
}


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The 1,797 8×8 digit images that scikit-learn ships, scaled to [0, 1]."""
    from sklearn.datasets import load_digits as sklearn_digits

    data = sklearn_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    return x, torch.tensor(data.target, dtype=torch.long)


def make_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10))


def loss_curves(
    name: str, steps: int, batch_size: int = 128, seed: int = 0
) -> tuple[list[float], list[float]]:
    """Loss per step of torch.optim's and momentopt's optimizer ``name``, trained in lock step."""
    torch_cls, ours_cls, kwargs = CONFIGS[name]
    x, y = load_digits()
    model_t = make_model(seed)
    model_o = copy.deepcopy(model_t)
    opt_t = torch_cls(model_t.parameters(), **kwargs)
    opt_o = ours_cls(model_o.parameters(), **kwargs)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    curves: tuple[list[float], list[float]] = ([], [])
    for step in range(steps):
        start = (step * batch_size) % (len(x) - batch_size)
        idx = order[start : start + batch_size]
        for model, opt, curve in ((model_t, opt_t, curves[0]), (model_o, opt_o, curves[1])):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            curve.append(loss.item())
    return curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="training steps per optimizer")
    args = parser.parse_args()
    print(f"MLP 64-64-10 on scikit-learn digits, {args.steps} steps of 128 images")
    print(f"{'optimizer':<10} {'first loss':>11} {'torch.optim':>12} {'momentopt':>12} {'max |gap|':>10}")
    for name in CONFIGS:
        theirs, ours = loss_curves(name, args.steps)
        gap = max(abs(a - b) for a, b in zip(theirs, ours, strict=True))
        print(f"{name:<10} {theirs[0]:>11.4f} {theirs[-1]:>12.6f} {ours[-1]:>12.6f} {gap:>10.2e}")


if __name__ == "__main__":
    main()
