"""matplotlib figures for the report (Agg backend: files only, no display needed)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from .scenarios import Run, Scenario

COLORS = dict(
    zip(
        [
            "SGD",
            "Momentum",
            "Nesterov",
            "Adagrad",
            "Adadelta",
            "RMSprop",
            "Adam",
            "AMSGrad",
            "NAdam",
            "AdamW",
        ],
        plt.get_cmap("tab10").colors,
        strict=False,
    )
)


def _color(name: str):
    return COLORS.get(name, "black")


def _label(run: Run) -> str:
    return f"{run.optimizer} (lr {run.lr:g}{', grid edge' if run.edge else ''})"


def _finite(values):
    return [v if isinstance(v, (int, float)) and math.isfinite(v) else np.nan for v in values]


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def loss_curves(scenario: Scenario, runs: dict[str, Run], path: Path, key: str = "loss") -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    positive = True
    for run in runs.values():
        values = _finite(run.curves.get(key, []))
        positive &= all(not (v <= 0) for v in values)
        ax.plot(
            range(1, len(values) + 1),
            values,
            label=_label(run),
            color=_color(run.optimizer),
            lw=1.2,
        )
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(key.replace("_", " "))
    ax.set_title(f"{scenario.title}: {key.replace('_', ' ')} at each tuned lr", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    return _save(fig, path)


def contour(scenario, runs: dict[str, Run], path: Path) -> Path:
    """One panel per optimizer (small multiples): the surface's contours and its trajectory."""
    x0, x1, y0, y1 = scenario.bounds
    xs, ys = torch.meshgrid(
        torch.linspace(x0, x1, 160, dtype=torch.float64),
        torch.linspace(y0, y1, 160, dtype=torch.float64),
        indexing="xy",
    )
    z = scenario.f(torch.stack([xs, ys], -1)).numpy()
    if scenario.log_levels:
        levels = np.logspace(np.log10(max(z.min(), 1e-3)), np.log10(z.max()), 20)
    else:
        levels = 20
    cols = min(5, len(runs))
    rows = math.ceil(len(runs) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.0 * cols, 2.6 * rows), squeeze=False, sharex=True, sharey=True
    )
    for ax in axes.flat[len(runs) :]:
        ax.set_visible(False)
    for ax, run in zip(axes.flat, runs.values(), strict=False):
        ax.contour(xs.numpy(), ys.numpy(), z, levels=levels, cmap="Greys", linewidths=0.5)
        path_xy = np.array(run.extra["trajectory"], dtype=float)
        ax.plot(path_xy[:, 0], path_xy[:, 1], ".-", ms=1.5, lw=0.8, color=_color(run.optimizer))
        ax.plot(*scenario.start, "k*", ms=7)
        if scenario.minimum is not None:
            ax.plot(*scenario.minimum, "r*", ms=7)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_title(_label(run), fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle(f"{scenario.title}: trajectories at each tuned lr", fontsize=9)
    return _save(fig, path)


def effective_lr(scenario, runs: dict[str, Run], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    for run in runs.values():
        mid = _finite(run.curves["lr_eff_q50"])
        steps = np.arange(1, len(mid) + 1)
        ax.plot(steps, mid, label=_label(run), color=_color(run.optimizer), lw=1.2)
        ax.fill_between(
            steps,
            _finite(run.curves["lr_eff_q05"]),
            _finite(run.curves["lr_eff_q95"]),
            color=_color(run.optimizer),
            alpha=0.12,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("effective lr α·c/√V (median, 5–95%)")
    ax.set_title("Effective learning rate per coordinate (momentopt.diagnostics)", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    return _save(fig, path)


def reddi(scenario, runs: dict[str, Run], path: Path) -> Path:
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs.values():
        a.plot(run.curves["x"], label=_label(run), color=_color(run.optimizer), lw=1)
        grid = run.extra["x_by_lr"]
        b.plot(
            [float(k) for k in grid],
            list(grid.values()),
            "o-",
            label=run.optimizer,
            color=_color(run.optimizer),
        )
    a.set_xlabel("step")
    a.set_ylabel("x (optimum −1, worst point +1)")
    a.set_title("x_t at each tuned lr", fontsize=9)
    b.set_xscale("log")
    b.set_xlabel("lr")
    b.set_ylabel("mean x over the last period")
    b.set_title("where each optimizer ends, at every lr of the grid", fontsize=9)
    for ax in (a, b):
        ax.axhline(-1, color="green", lw=0.5)
        ax.axhline(1, color="red", lw=0.5)
        ax.legend(fontsize=6, ncol=2)
    return _save(fig, path)


def weight_decay(scenario, runs: dict[str, Run], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    for run in runs.values():
        decay = np.array(_finite(run.extra["relative_decay"]), dtype=float)
        decay[decay <= 0] = np.nan
        ax.plot(
            run.extra["gradient_scale"],
            decay,
            "o-",
            label=_label(run),
            color=_color(run.optimizer),
            ms=3,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("gradient scale of the weight (feature scale)")
    ax.set_ylabel("decay received in one step / weight")
    ax.set_title("Coupled L2 (all but AdamW) vs decoupled decay (AdamW), λ = 0.01", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    return _save(fig, path)


def digits(scenario, runs: dict[str, Run], path: Path) -> Path:
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs.values():
        c = _color(run.optimizer)
        a.plot(
            run.curves["eval_step"],
            run.curves["train_loss"],
            color=c,
            lw=1,
            label=f"{_label(run)} train",
        )
        a.plot(run.curves["eval_step"], run.curves["test_loss"], color=c, lw=1, ls="--")
    a.set_yscale("log")
    a.set_xlabel("step")
    a.set_ylabel("loss (solid: train, dashed: test)")
    a.legend(fontsize=6, ncol=2)
    names = list(runs)
    b.barh(names, [runs[n].metrics["test_acc"] for n in names], color=[_color(n) for n in names])
    b.set_xlim(0.8, 1.0)
    b.set_xlabel("test accuracy")
    fig.suptitle("MLP 64-32-10 on scikit-learn's digits", fontsize=9)
    return _save(fig, path)


SPECIAL = {
    "effective-lr": effective_lr,
    "reddi": reddi,
    "weight-decay": weight_decay,
    "digits": digits,
}


def plot_scenario(scenario: Scenario, runs: dict[str, Run], folder: Path) -> list[Path]:
    """All figures of one scenario, as PNG files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    if scenario.kind == "2d":
        out.append(contour(scenario, runs, folder / f"{scenario.name}-trajectories.png"))
    if scenario.name in SPECIAL:
        out.append(SPECIAL[scenario.name](scenario, runs, folder / f"{scenario.name}.png"))
    if scenario.name != "digits":
        out.append(loss_curves(scenario, runs, folder / f"{scenario.name}-loss.png"))
    return out
