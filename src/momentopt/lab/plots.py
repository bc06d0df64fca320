"""matplotlib figures for the report (Agg backend: files only, no display needed).

One figure per scenario, built to show that scenario's comparison (matched step sizes where
the claim is about dynamics, tuned runs where it is about performance), and one appendix figure
per 2-D experiment with every optimizer's tuned path. Every axis is labelled; a path that
diverges or leaves the frame is marked; log axes are cut to the informative range.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from .optimizers import NAMES
from .scenarios import EXPERIMENTS, Run, Scenario
from .scenarios.surfaces import HEAVY_BALL_RUNGS, POLYAK, SGD_BOUND, B, Surface

LINEAGE_COLORS = dict(zip(NAMES, plt.get_cmap("tab10").colors, strict=False))
EXTRA_COLORS = ("black", "magenta", "navy", "darkgoldenrod", "teal")  # none of tab10
LOG_RANGE = 1e-12  # log loss axes show at most 12 decades below the largest value
DPI = 100

Figure = Callable[[Scenario, dict[str, Run], Path], Path]


def color(name: str, names: Sequence[str] = ()) -> Any:
    if name in LINEAGE_COLORS:
        return LINEAGE_COLORS[name]
    extra = [n for n in names if n not in LINEAGE_COLORS]
    return EXTRA_COLORS[extra.index(name) % len(EXTRA_COLORS)] if name in extra else "black"


def _finite(values: Sequence[float]) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    a[~np.isfinite(a)] = np.nan
    return a


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _log_floor(ax: Any, series: Sequence[np.ndarray]) -> None:
    """Log y axis cut at LOG_RANGE below the largest finite value (and noted in the label)."""
    top = max((np.nanmax(s) for s in series if np.isfinite(s).any()), default=1.0)
    low = min((np.nanmin(s[s > 0]) for s in series if (s > 0).any()), default=top * LOG_RANGE)
    ax.set_yscale("log")
    ax.set_ylim(max(low, top * LOG_RANGE) / 2, top * 2)


def _seed_band(ax: Any, x: Any, curves: Sequence[Sequence[float]], c: Any, **kw: Any) -> None:
    """Median over seeds as a line, min–max over seeds as a band (one seed: the line)."""
    a = np.vstack([_finite(cv) for cv in curves])
    ax.plot(x, np.nanmedian(a, axis=0), color=c, **kw)
    if len(curves) > 1:
        ax.fill_between(x, np.nanmin(a, axis=0), np.nanmax(a, axis=0), color=c, alpha=0.15, lw=0)


# -- 2-D surfaces --------------------------------------------------------------------------
AXIS_LABELS = {
    "ravine": ("x (along the floor, curvature 1)", "y (across, curvature 150)"),
    "rosenbrock": ("x", "y"),
    "saddle": ("x (curving up)", "y (escape direction)"),
}


def _surface_frame(
    exp: Surface, paths: Sequence[Sequence[Sequence[float]]], zoom: tuple[float, ...] | None = None
) -> tuple[float, float, float, float]:
    """The experiment's bounds (or ``zoom``), widened to keep the paths, at most 2× wider."""
    x0, x1, y0, y1 = zoom or exp.bounds
    pts = np.array([p for path in paths for p in path], dtype=float).reshape(-1, 2)
    if pts.size:
        cx, cy, wx, wy = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0), (y1 - y0)
        finite = pts[np.isfinite(pts).all(1)]
        lo = np.maximum(finite.min(0), [cx - wx, cy - wy])
        hi = np.minimum(finite.max(0), [cx + wx, cy + wy])
        pad_x, pad_y = 0.03 * wx, 0.03 * wy
        x0, x1 = min(x0, lo[0] - pad_x), max(x1, hi[0] + pad_x)
        y0, y1 = min(y0, lo[1] - pad_y), max(y1, hi[1] + pad_y)
    return x0, x1, y0, y1


def _contours(ax: Any, exp: Surface, frame: tuple[float, float, float, float]) -> None:
    x0, x1, y0, y1 = frame
    xs, ys = torch.meshgrid(
        torch.linspace(x0, x1, 200, dtype=torch.float64),
        torch.linspace(y0, y1, 200, dtype=torch.float64),
        indexing="xy",
    )
    z = exp.f(torch.stack([xs, ys], -1)).numpy()
    if exp.log_levels:
        levels = np.logspace(np.log10(max(z.min(), 1e-3)), np.log10(z.max()), 18)
    else:
        levels = np.linspace(z.min(), z.max(), 18)
    ax.contour(xs.numpy(), ys.numpy(), z, levels=levels, colors="#bbbbbb", linewidths=0.6)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)


def _path(
    ax: Any,
    exp: Surface,
    path: Sequence[Sequence[float]],
    diverged_at: float,
    c: Any,
    frame: tuple[float, float, float, float],
    label: str | None = None,
    **kw: Any,
) -> None:
    """A trajectory; × where it diverged, ▸ where it leaves the frame for good."""
    xy = np.array(path, dtype=float).reshape(-1, 2)
    ax.plot(xy[:, 0], xy[:, 1], ".-", ms=2, lw=0.9, color=c, label=label, **kw)
    x0, x1, y0, y1 = frame
    inside = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
    if math.isfinite(diverged_at) or not inside[-1]:
        last = xy[inside][-1] if inside.any() else xy[0]
        ax.plot(*last, marker="x", ms=9, mew=2, color="crimson", zorder=5)
        word = (
            f"diverged (step {int(diverged_at)})"
            if math.isfinite(diverged_at)
            else "leaves the frame"
        )
        ax.annotate(
            word, last, xytext=(4, 4), textcoords="offset points", fontsize=7, color="crimson"
        )
    elif not inside.all():
        far = np.abs(xy).max()
        ax.text(
            0.02,
            0.03,
            f"goes outside the frame (to |w| = {far:.3g}) and returns",
            transform=ax.transAxes,
            fontsize=6.5,
            color="crimson",
        )


def _markers(ax: Any, exp: Surface) -> None:
    ax.plot(*exp.start, marker="o", ms=6, color="black", zorder=6, ls="none")
    for point in exp.minima():
        ax.plot(*point, marker="*", ms=11, color="gold", mec="black", zorder=6, ls="none")


def _key(exp: Surface) -> list[Line2D]:
    handles = [Line2D([], [], marker="o", color="black", ls="none", label="start")]
    if exp.minima():
        handles.append(
            Line2D([], [], marker="*", color="gold", mec="black", ms=11, ls="none", label="minimum")
        )
    handles.append(
        Line2D(
            [], [], marker="x", color="crimson", mew=2, ls="none", label="diverged / leaves frame"
        )
    )
    return handles


def _surface_panel(
    ax: Any,
    exp: Surface,
    entries: Sequence[tuple[str, dict[str, Any], str]],
    frame: tuple[float, float, float, float],
    title: str,
    names: Sequence[str] = (),
) -> None:
    """Contours, start/minimum markers and paths (``(optimizer, curves-and-metrics, label)``)."""
    _contours(ax, exp, frame)
    for name, data, label in entries:
        _path(ax, exp, data["path"], data["diverged_at"], color(name, names), frame, label)
    _markers(ax, exp)
    xl, yl = AXIS_LABELS.get(exp.name, ("x", "y"))
    ax.set_xlabel(xl, fontsize=8)
    ax.set_ylabel(yl, fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)


def tuned_data(run: Run, seed: int = 0) -> dict[str, Any]:
    return {"path": run.curves["path"][seed], "diverged_at": run.metrics["diverged_at"][seed]}


def matched_data(run: Run, base_lr: float, seed: int = 0) -> dict[str, Any]:
    entry = run.matched[f"{base_lr:g}"]
    return {
        "path": entry["curves"]["path"][seed],
        "diverged_at": entry["metrics"]["diverged_at"][seed],
        "lr": entry["lr"],
    }


def _matched_pair(
    scenario: Scenario,
    runs: dict[str, Run],
    path: Path,
    names: tuple[str, str],
    rung: float,
    rungs: Sequence[float],
    rung_label: Callable[[float], str],
    zoom: tuple[float, float, float, float],
) -> Path:
    """Two methods at one matched step size, side by side, and |y| over time at every rung."""
    exp = EXPERIMENTS[scenario.experiment]
    assert isinstance(exp, Surface)
    data = {n: matched_data(runs[n], rung) for n in names}
    frame = _surface_frame(exp, [d["path"] for d in data.values()], zoom)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), gridspec_kw={"width_ratios": [1, 1, 1.1]})
    for ax, n in zip(axes[:2], names, strict=True):
        _surface_panel(
            ax,
            exp,
            [(n, data[n], n)],
            frame,
            f"matched: {n} ({rung_label(rung)})"
            if data[n]["lr"] == rung
            else f"matched: {n} at lr {data[n]['lr']:.3g} ({rung_label(rung)})",
        )
    axes[1].sharey(axes[0])
    ax = axes[2]
    styles = ("-", "--", ":")
    series = []
    for n in names:
        for r, ls in zip(rungs, styles, strict=False):
            ys = np.abs(_finite([p[1] for p in matched_data(runs[n], r)["path"]]))
            series.append(ys)
            ax.plot(ys, ls=ls, color=color(n), lw=1.2, label=f"{n}, {rung_label(r)}")
    _log_floor(ax, series)
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel("|y|: distance across the ravine (log)", fontsize=8)
    ax.set_title("the swing across the ravine, at every matched step size", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.tick_params(labelsize=7)
    fig.legend(
        handles=_key(exp), loc="upper center", ncol=3, fontsize=8, bbox_to_anchor=(0.35, 0.0)
    )
    fig.suptitle(f"{scenario.title} — matched step sizes", fontsize=10)
    return _save(fig, path)


RAVINE_ZOOM = (-9.5, 0.8, -1.3, 1.3)


def fig_sgd_ravine(scenario: Scenario, runs: dict[str, Run], path: Path) -> Path:
    exp = EXPERIMENTS["ravine"]
    assert isinstance(exp, Surface)
    sgd = runs["SGD"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 3.8))
    data = tuned_data(sgd)
    frame = _surface_frame(exp, [data["path"]], RAVINE_ZOOM)
    _surface_panel(a, exp, [("SGD", data, "SGD")], frame, f"SGD at its tuned lr {sgd.lr:g}")
    a.legend(handles=_key(exp), fontsize=7, loc="lower right")
    rates = _finite(sgd.grid_metrics["rate"])
    lrs = np.array(sgd.grid)
    ok = np.isfinite(rates)
    b.plot(lrs[ok], rates[ok], "o-", color=color("SGD"), label="SGD, measured")
    for lr in lrs[~ok]:
        b.axvline(lr, color="crimson", lw=0.8, ls=":")
    if (~ok).any():
        b.plot([], [], color="crimson", ls=":", label="diverged at this lr")
    b.axhline(SGD_BOUND, color="black", ls="--", lw=1, label=f"bound (κ−1)/(κ+1) = {SGD_BOUND:.4f}")
    b.axhline(1.0, color="gray", lw=0.5)
    b.set_xscale("log")
    b.set_ylim(min(0.95, np.nanmin(rates) - 0.005) if ok.any() else 0.95, 1.002)
    b.set_xlabel("lr (the shared grid)", fontsize=8)
    b.set_ylabel("per-step contraction of the distance (lower = faster)", fontsize=8)
    b.set_title("no lr beats the bound", fontsize=9)
    b.legend(fontsize=7)
    b.tick_params(labelsize=7)
    fig.suptitle(scenario.title, fontsize=10)
    return _save(fig, path)


def fig_momentum_ravine(scenario: Scenario, runs: dict[str, Run], path: Path) -> Path:
    exp = EXPERIMENTS["ravine"]
    assert isinstance(exp, Surface)
    rung = HEAVY_BALL_RUNGS[-1]  # the rung closest to SGD's fastest lr, 2/(a+b)
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.2))
    data = {n: matched_data(runs[n], rung) for n in ("SGD", "Momentum")}
    frame = _surface_frame(exp, [d["path"] for d in data.values()], RAVINE_ZOOM)
    for ax, n in zip(axes[0], ("SGD", "Momentum"), strict=True):
        _surface_panel(
            ax,
            exp,
            [(n, data[n], n)],
            frame,
            f"matched: {n} at lr {data[n]['lr']:.3g} (SGD's lr·b = {rung * B:.1f})",
        )
    axes[0][0].legend(handles=_key(exp), fontsize=7, loc="lower right")
    ax = axes[1][0]
    for n in ("SGD", "Momentum"):
        ys = [p[1] for p in data[n]["path"]][:61]
        ax.plot(ys, ".-", ms=3, lw=1, color=color(n), label=n)
    ax.axhline(0, color="gray", lw=0.5)
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel("y (across the ravine)", fontsize=8)
    ax.set_title("matched: SGD flips sign every step, Momentum swings slowly", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1][1]
    series = []
    for n in ("SGD", "Momentum"):
        run = runs[n]
        d = np.array([math.dist(p, exp.minimum or (0, 0)) for p in run.curves["path"][0]])
        series.append(d)
        ax.plot(d, color=color(n), lw=1.2, label=f"{n}, tuned lr {run.lr:g}")
    t = np.arange(len(series[0]))
    d0 = series[0][0]
    ax.plot(t, d0 * SGD_BOUND**t, "k--", lw=0.8, label=f"SGD's best rate {SGD_BOUND:.3f}ᵗ")
    ax.plot(t, d0 * POLYAK**t, "k:", lw=0.8, label=f"Polyak's rate √μ = {POLYAK:.3f}ᵗ")
    _log_floor(ax, series)
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel("distance to the minimum (log)", fontsize=8)
    ax.set_title("tuned: each at its best lr of the grid", fontsize=9)
    ax.legend(fontsize=7)
    for ax in axes.flat:
        ax.tick_params(labelsize=7)
    fig.suptitle(scenario.title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def fig_nesterov(scenario: Scenario, runs: dict[str, Run], path: Path) -> Path:
    return _matched_pair(
        scenario,
        runs,
        path,
        ("Momentum", "Nesterov"),
        HEAVY_BALL_RUNGS[1],
        HEAVY_BALL_RUNGS,
        lambda r: f"SGD's lr·b = {r * B:.1f}",
        RAVINE_ZOOM,
    )


def fig_nadam(scenario: Scenario, runs: dict[str, Run], path: Path) -> Path:
    from .scenarios.surfaces import ADAM_RUNGS

    return _matched_pair(
        scenario,
        runs,
        path,
        ("Adam", "NAdam"),
        ADAM_RUNGS[1],
        ADAM_RUNGS,
        lambda r: f"lr {r:g} for both",
        RAVINE_ZOOM,
    )


def fig_rosenbrock(scenario: Scenario, runs: dict[str, Run], path: Path) -> Path:
    from .scenarios.surfaces import ROSENBROCK_RUNGS

    exp = EXPERIMENTS["rosenbrock"]
    assert isinstance(exp, Surface)
    sgd, mom = runs["SGD"], runs["Momentum"]

    def stable(run: Run) -> list[float]:
        return [
            r
            for r in ROSENBROCK_RUNGS
            if f"{r:g}" in run.matched
            and math.isfinite(run.matched_metric(r, "distance_to_minimum"))
        ]

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    s_top = max(stable(sgd), default=ROSENBROCK_RUNGS[0])
    m_top = max(stable(mom), default=ROSENBROCK_RUNGS[0])
    same = [
        ("SGD", matched_data(sgd, s_top), f"SGD, lr {s_top:g}"),
        ("Momentum", matched_data(mom, s_top), f"Momentum, lr {s_top:g}·(1−μ)"),
    ]
    wide = [("Momentum", matched_data(mom, m_top), f"Momentum, lr {m_top:g}·(1−μ)")]
    frame = _surface_frame(exp, [e[1]["path"] for e in same + wide])
    _surface_panel(axes[0], exp, same, frame, f"matched at SGD's largest stable lr, {s_top:g}")
    axes[0].get_lines()[1].set_linestyle("--")
    axes[0].legend(
        handles=[*axes[0].get_legend_handles_labels()[0], *_key(exp)], fontsize=7, loc="lower right"
    )
    _surface_panel(axes[1], exp, wide, frame, f"Momentum at lr {m_top:g}·(1−μ), where SGD diverges")
    axes[1].legend(fontsize=7, loc="lower right")
    ax = axes[2]
    for run in (sgd, mom):
        lrs = [r for r in ROSENBROCK_RUNGS if f"{r:g}" in run.matched]
        d = np.array([run.matched_metric(r, "distance_to_minimum") for r in lrs])
        ok = np.isfinite(d)
        ax.plot(np.array(lrs)[ok], d[ok], "o-", color=color(run.optimizer), label=run.optimizer)
        top = 3.2
        ax.plot(
            np.array(lrs)[~ok],
            np.full((~ok).sum(), top),
            "x",
            color=color(run.optimizer),
            ms=9,
            mew=2,
        )
    ax.axhline(3.2, color="crimson", lw=0.5, ls=":")
    ax.text(ROSENBROCK_RUNGS[0], 3.25, "× = diverged", color="crimson", fontsize=7)
    ax.set_xscale("log")
    ax.set_ylim(0, 3.5)
    ax.set_xlabel("lr (SGD's; Momentum runs at lr·(1−μ))", fontsize=8)
    ax.set_ylabel("distance to (1, 1) after the run", fontsize=8)
    ax.set_title("matched step sizes: same travel, wider stable range", fontsize=9)
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)
    fig.suptitle(scenario.title, fontsize=10)
    return _save(fig, path)


def fig_saddle(scenario: Scenario, runs: dict[str, Run], path: Path) -> Path:
    exp = EXPERIMENTS["saddle"]
    assert isinstance(exp, Surface)
    names = [n for n in ("SGD", "Adagrad") if n in runs]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
    entries = [(n, tuned_data(runs[n]), f"{n}, tuned lr {runs[n].lr:g}") for n in names]
    frame = _surface_frame(exp, [e[1]["path"] for e in entries])
    _surface_panel(a, exp, entries, frame, "tuned paths from (1, 10⁻⁴)")
    a.legend(
        handles=[*a.get_legend_handles_labels()[0], *_key(exp)[:2]], fontsize=7, loc="lower left"
    )
    for n in names:
        ys = np.abs(_finite([p[1] for p in runs[n].curves["path"][0]]))
        b.plot(ys, color=color(n), lw=1.2, label=f"{n}, lr {runs[n].lr:g}")
    b.axhline(1.0, color="black", ls="--", lw=0.8, label="|y| = 1: escaped")
    b.set_yscale("log")
    b.set_xlabel("step", fontsize=8)
    b.set_ylabel("|y| (log)", fontsize=8)
    b.set_title("distance from the saddle along the escape direction", fontsize=9)
    b.legend(fontsize=7)
    b.tick_params(labelsize=7)
    fig.suptitle(scenario.title, fontsize=10)
    return _save(fig, path)


# -- curves over seeds ---------------------------------------------------------------------
def _dots(ax: Any, runs: dict[str, Run], key: str, highlight: Sequence[str], xlabel: str) -> None:
    """One row per optimizer: mean over seeds (dot) and min–max (bar); highlighted names bold."""
    names = list(runs)[::-1]
    for i, n in enumerate(names):
        v = np.array(runs[n].metrics[key], dtype=float)
        c = color(n, list(runs))
        ax.plot([v.min(), v.max()], [i, i], color=c, lw=2, alpha=0.5)
        ax.plot(v.mean(), i, "o", color=c, ms=6)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=7)
    for label in ax.get_yticklabels():
        if label.get_text() in highlight:
            label.set_fontweight("bold")
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(axis="x", lw=0.3)


def fig_sparse(scenario: Scenario, runs: dict[str, Run], path: Path) -> Path:
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1.5, 1]})
    every = 5
    for n, run in runs.items():
        curves = run.curves["full_loss"]
        x = np.arange(1, len(curves[0]) + 1) * every
        bold = n in scenario.participants
        _seed_band(
            a,
            x,
            curves,
            color(n, list(runs)),
            lw=2.2 if bold else 0.9,
            label=f"{n} (lr {run.lr:g})",
            alpha=1 if bold else 0.6,
        )
    a.set_xlabel("step", fontsize=8)
    a.set_ylabel("full-data logistic loss", fontsize=8)
    a.set_title("tuned runs: median over seeds, band = min–max", fontsize=9)
    a.legend(fontsize=7, ncol=2)
    _dots(
        b,
        runs,
        "final_loss",
        scenario.participants,
        "final full-data loss (dot: mean, bar: seeds' range)",
    )
    b.set_title("at the end (lower is better)", fontsize=9)
    fig.suptitle(scenario.title, fontsize=10)
    return _save(fig, path)


def _effective(
    ax: Any, runs: dict[str, Run], names: Sequence[str], stop: float
) -> list[np.ndarray]:
    series = []
    for n in names:
        curves = runs[n].curves["lr_eff"]
        steps = max(1, int(len(curves[0]) * stop))
        x = np.arange(1, steps + 1)
        part = [cv[:steps] for cv in curves]
        _seed_band(ax, x, part, color(n, list(runs)), lw=1.4, label=f"{n} (lr {runs[n].lr:g})")
        series.append(np.vstack([_finite(p) for p in part]))
    return series


def _effective_names(scenario: Scenario, runs: dict[str, Run]) -> list[str]:
    wanted = ["SGD", "Adagrad", "Adadelta", "RMSprop", *(n for n in runs if n not in NAMES)]
    return [n for n in dict.fromkeys(wanted) if n in runs]


def fig_effective_lr(scenario: Scenario, runs: dict[str, Run], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(9, 4.2))
    series = _effective(ax, runs, _effective_names(scenario, runs), 0.5)
    half = len(runs[scenario.participants[0]].curves["lr_eff"][0]) // 2
    t = np.arange(1, half + 1)
    ref = np.nanmedian(
        np.vstack([_finite(c[:half]) for c in runs["Adagrad"].curves["lr_eff"]]), axis=0
    )
    anchor = int(0.2 * 2 * half)
    if anchor > 0:
        ax.plot(t, ref[anchor] * np.sqrt(anchor / t), "k:", lw=1, label="∝ t^(−1/2)")
    for lo, hi in ((0.2, 0.25), (0.45, 0.5)):
        ax.axvspan(lo * 2 * half, hi * 2 * half, color="gray", alpha=0.15)
    ax.text(
        0.2 * 2 * half,
        0.97,
        "compared ",
        transform=ax.get_xaxis_transform(),
        fontsize=7,
        ha="right",
        va="top",
    )
    ax.set_xscale("log")
    _log_floor(ax, [s.ravel() for s in series])
    ax.set_xlabel("step (log)", fontsize=8)
    ax.set_ylabel("effective lr: median |Δw|/|g| (log)", fontsize=8)
    ax.set_title(
        f"{scenario.title}: first half, stationary noise (median over seeds, band = min–max)",
        fontsize=9,
    )
    ax.legend(fontsize=7, ncol=2)
    ax.tick_params(labelsize=7)
    return _save(fig, path)


def fig_scale_change(scenario: Scenario, runs: dict[str, Run], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(9, 4.2))
    series = _effective(ax, runs, _effective_names(scenario, runs), 1.0)
    steps = len(runs[scenario.participants[0]].curves["lr_eff"][0])
    ax.axvline(steps / 2, color="black", ls="--", lw=0.8)
    ax.text(
        steps / 2,
        0.97,
        " gradients × 0.1 from here",
        transform=ax.get_xaxis_transform(),
        fontsize=7,
        va="top",
    )
    for lo, hi in ((0.45, 0.5), (0.95, 1.0)):
        ax.axvspan(lo * steps, hi * steps, color="gray", alpha=0.15)
    _log_floor(ax, [s.ravel() for s in series])
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel("effective lr: median |Δw|/|g| (log)", fontsize=8)
    ax.set_title(f"{scenario.title} (shaded: the windows compared)", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.tick_params(labelsize=7)
    return _save(fig, path)


def fig_digits(scenario: Scenario, runs: dict[str, Run], path: Path) -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4), gridspec_kw={"width_ratios": [1.5, 1, 1]})
    a = axes[0]
    series = []
    for n, run in runs.items():
        x = run.curves["eval_step"][0]
        bold = n in scenario.participants
        _seed_band(
            a,
            x,
            run.curves["train_loss"],
            color(n, list(runs)),
            lw=2.2 if bold else 0.9,
            label=f"{n} (lr {run.lr:g})",
            alpha=1 if bold else 0.6,
        )
        series.append(np.vstack([_finite(c) for c in run.curves["train_loss"]]).ravel())
    _log_floor(a, series)
    a.set_xlabel("step", fontsize=8)
    a.set_ylabel("training-set loss (log)", fontsize=8)
    a.set_title("tuned runs: median over seeds, band = min–max", fontsize=9)
    a.legend(fontsize=7, ncol=2)
    _dots(
        axes[1], runs, "score", scenario.participants, "mean minibatch training loss over the run"
    )
    axes[1].set_title("the criterion (lower is better)", fontsize=9)
    _dots(axes[2], runs, "test_acc", (), "test accuracy at the end")
    accs = [v for r in runs.values() for v in r.metrics["test_acc"]]
    axes[2].set_xlim(max(0.0, min(accs) - 0.03), 1.0)
    axes[2].set_title("not judged: the test set", fontsize=9)
    fig.suptitle(scenario.title, fontsize=10)
    return _save(fig, path)


def fig_reddi(scenario: Scenario, runs: dict[str, Run], path: Path) -> Path:
    from .scenarios.reddi import RUNGS

    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.2), sharey=True)
    styles = ("-", "--", ":")
    for n in ("Adam", "AMSGrad"):
        if n not in runs:
            continue
        for r, ls in zip(RUNGS, styles, strict=False):
            if f"{r:g}" in runs[n].matched:
                a.plot(
                    runs[n].matched[f"{r:g}"]["curves"]["x"][0],
                    ls=ls,
                    lw=1,
                    color=color(n),
                    label=f"{n}, lr {r:g}",
                )
    a.set_title("matched: both at the same lr", fontsize=9)
    for n, run in runs.items():
        b.plot(
            run.curves["x"][0], lw=1, color=color(n, list(runs)), label=f"{n}, tuned lr {run.lr:g}"
        )
    b.set_title("tuned on the average regret (each at its best lr of the grid)", fontsize=9)
    for ax in (a, b):
        ax.axhline(-1, color="green", lw=0.8)
        ax.axhline(1, color="crimson", lw=0.8)
        ax.text(0, -0.97, "optimum x = −1", color="green", fontsize=7)
        ax.text(0, 0.93, "worst point x = +1", color="crimson", fontsize=7)
        ax.set_ylim(-1.1, 1.1)
        ax.set_xlabel("step", fontsize=8)
        ax.legend(fontsize=7, ncol=2, loc="lower right")
        ax.tick_params(labelsize=7)
    a.set_ylabel("x", fontsize=8)
    fig.suptitle(scenario.title, fontsize=10)
    return _save(fig, path)


def fig_weight_decay(scenario: Scenario, runs: dict[str, Run], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for n, run in runs.items():
        decay = _finite(run.curves["relative_decay"][0])
        decay[decay <= 0] = np.nan
        bold = n in scenario.participants
        ax.plot(
            run.curves["gradient_scale"][0],
            decay,
            "o-",
            ms=3,
            lw=2 if bold else 0.8,
            alpha=1 if bold else 0.5,
            color=color(n, list(runs)),
            label=f"{n} (lr {run.lr:g})",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("the weight's feature (and gradient) scale", fontsize=8)
    ax.set_ylabel("decay received in one step / weight (log)", fontsize=8)
    ax.set_title(f"{scenario.title} (λ = 0.01)", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.tick_params(labelsize=7)
    return _save(fig, path)


# -- the newer optimizers against AdamW --------------------------------------------------------
MODERN_COLORS = {
    "AdamW": LINEAGE_COLORS["AdamW"],
    "AdamW+cosine": "black",
    "Momentum+cosine": "dimgray",
    "Lion": "tab:orange",
    "ADOPT": "tab:green",
    "AdEMAMix": "tab:purple",
    "ScheduleFreeAdamW": "tab:red",
    "ScheduleFreeSGD": "tab:brown",
    "Prodigy": "tab:pink",
    "CautiousAdamW": "tab:olive",
}


def fig_modern(scenario: Scenario, runs: dict[str, Run], path: Path) -> Path:
    """(a) the judged loss over the run of the claim's optimizers, tuned (solid) and untuned
    at their default lr (dashed); (b) each criterion's per-seed ratio against its limit;
    (c) every optimizer's final loss on this problem, for context."""
    from .scenarios.modern import ModernClaim, default_finals, finals

    assert isinstance(scenario, ModernClaim)
    exp = EXPERIMENTS[scenario.experiment]
    key, label = exp.judged  # type: ignore[attr-defined]
    names = list(runs)

    def hue(n: str) -> Any:
        return MODERN_COLORS.get(n, color(n, names))

    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6), gridspec_kw={"width_ratios": [1.5, 1, 1.1]})
    a = axes[0]
    series = []
    for n in scenario.participants:
        run = runs[n]
        x = run.curves["eval_step"][0]
        _seed_band(a, x, run.curves[key], hue(n), lw=1.8, label=f"{n} (tuned lr {run.lr:g})")
        series.append(np.vstack([_finite(c) for c in run.curves[key]]).ravel())
        if run.default:
            curves = run.default["curves"][key]
            a.plot(
                x,
                np.nanmedian(np.vstack([_finite(c) for c in curves]), axis=0),
                ls="--",
                lw=1.2,
                color=hue(n),
                label=f"{n} (default lr {run.default['lr']:g}, untuned)",
            )
            series.append(np.vstack([_finite(c) for c in curves]).ravel())
    _log_floor(a, series)
    steps = len(runs[scenario.participants[0]].curves["loss"][0])
    a.axvspan(0.9 * steps, steps, color="gray", alpha=0.15)
    a.text(0.9 * steps, 0.02, "judged ", transform=a.get_xaxis_transform(), fontsize=7, ha="right")
    a.set_xlabel("step", fontsize=8)
    a.set_ylabel(f"{label} (log)", fontsize=8)
    a.set_title("median over seeds, band = min–max", fontsize=9)
    a.legend(fontsize=7)
    b = axes[1]
    comparisons = scenario.comparisons(runs)
    for i, c in enumerate(comparisons):
        r = np.array(c.ratios, dtype=float)
        shown = np.where(np.isfinite(r), r, np.nan)
        ok = np.array(c.passed)
        b.scatter(np.full(len(r), i)[ok], shown[ok], color="green", zorder=3, s=25)
        b.scatter(np.full(len(r), i)[~ok], shown[~ok], color="crimson", marker="x", zorder=3, s=30)
        b.plot([i - 0.3, i + 0.3], [c.limit, c.limit], color="black", lw=1.2)
        b.text(
            i + 0.32, c.limit, f"{'<' if c.strict else '≤'} {c.limit:g}", fontsize=7, va="center"
        )
        if (~np.isfinite(r)).any():
            b.text(i, 1.0, "diverged", fontsize=7, color="crimson", ha="center")
    b.set_xticks(range(len(comparisons)))
    b.set_xticklabels(
        [f"({i}) {c.mine}\n/ {c.theirs}" for i, c in enumerate(comparisons, 1)], fontsize=7
    )
    b.set_xlim(-0.6, len(comparisons) - 0.2)
    b.axhline(1.0, color="gray", lw=0.5, ls=":")
    b.set_yscale("log")
    shown_all = [v for c in comparisons for v in c.ratios if math.isfinite(v) and v > 0]
    limits = [c.limit for c in comparisons]
    b.set_ylim(min([*shown_all, *limits]) / 1.3, max([*shown_all, *limits]) * 1.3)
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    b.yaxis.set_major_formatter(plain)
    b.yaxis.set_minor_formatter(plain)
    b.set_ylabel("ratio per seed (✔ met: green, ✘ not met: red ×)", fontsize=8)
    b.set_title("the criteria: per-seed ratios and their limits", fontsize=9)
    b.tick_params(labelsize=7)
    c_ax = axes[2]
    rows = []
    for n, run in runs.items():
        rows.append((f"{n} (lr {run.lr:g})", finals(run), hue(n), n in scenario.participants))
        if default_finals(run):
            rows.append(
                (
                    f"{n} (default {run.default['lr']:g})",
                    default_finals(run),
                    hue(n),
                    n in scenario.participants,
                )
            )
    for i, (_, values, c, bold) in enumerate(reversed(rows)):
        v = _finite(values)
        if np.isfinite(v).any():
            c_ax.plot([np.nanmin(v), np.nanmax(v)], [i, i], color=c, lw=2, alpha=0.5)
            c_ax.plot(np.nanmean(v), i, "o", color=c, ms=6 if bold else 4)
    c_ax.set_yticks(range(len(rows)))
    c_ax.set_yticklabels([r[0] for r in reversed(rows)], fontsize=7)
    for tick, row in zip(c_ax.get_yticklabels(), reversed(rows), strict=True):
        if row[3]:
            tick.set_fontweight("bold")
    c_ax.set_xscale("log")
    c_ax.set_xlabel("final loss (dot: mean, bar: seeds' range; log)", fontsize=8)
    c_ax.set_title("every optimizer on this problem (claim's in bold)", fontsize=9)
    c_ax.tick_params(labelsize=7)
    c_ax.grid(axis="x", lw=0.3)
    fig.suptitle(scenario.title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


FIGURES: dict[str, Figure] = {
    "sgd-ravine": fig_sgd_ravine,
    "ravine": fig_momentum_ravine,
    "rosenbrock": fig_rosenbrock,
    "nesterov": fig_nesterov,
    "saddle": fig_saddle,
    "sparse": fig_sparse,
    "effective-lr": fig_effective_lr,
    "scale-change": fig_scale_change,
    "digits": fig_digits,
    "reddi": fig_reddi,
    "nadam": fig_nadam,
    "weight-decay": fig_weight_decay,
}


# -- appendix: every optimizer's tuned path on a surface -----------------------------------
def tuned_paths(experiment: str, runs: dict[str, Run], path: Path) -> Path:
    exp = EXPERIMENTS[experiment]
    assert isinstance(exp, Surface)
    names = list(runs)
    data = {n: tuned_data(runs[n]) for n in names}
    frame = _surface_frame(exp, [d["path"] for d in data.values()])
    cols = min(5, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.1 * cols, 2.7 * rows + 0.6), squeeze=False, sharex=True, sharey=True
    )
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    for ax, n in zip(axes.flat, names, strict=False):
        run = runs[n]
        edge = ", grid edge" if run.edge else ""
        _surface_panel(ax, exp, [(n, data[n], n)], frame, f"{n} (lr {run.lr:g}{edge})", names)
        if not ax.get_subplotspec().is_last_row():
            ax.set_xlabel("")
        if not ax.get_subplotspec().is_first_col():
            ax.set_ylabel("")
    fig.legend(
        handles=_key(exp), loc="lower center", ncol=3, fontsize=8, bbox_to_anchor=(0.5, -0.02)
    )
    fig.suptitle(f"{exp.title}: every optimizer at its tuned lr (shared axes)", fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return _save(fig, path)


def tuned_losses(experiment: str, runs: dict[str, Run], path: Path) -> Path:
    exp = EXPERIMENTS[experiment]
    fig, ax = plt.subplots(figsize=(9, 4))
    series = []
    for n, run in runs.items():
        loss = _finite(run.curves["loss"][0])
        series.append(loss)
        ax.plot(
            np.arange(1, len(loss) + 1),
            loss,
            lw=1.2,
            color=color(n, list(runs)),
            label=f"{n} (lr {run.lr:g})",
        )
    if isinstance(exp, Surface) and exp.log_levels:
        _log_floor(ax, series)
        ax.set_ylabel("loss (log, cut 12 decades below the largest value)", fontsize=8)
    else:
        ax.set_ylabel("loss", fontsize=8)
    ax.set_xlabel("step", fontsize=8)
    ax.set_title(f"{exp.title}: loss at each tuned lr", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.tick_params(labelsize=7)
    return _save(fig, path)


def plot_scenario(scenario: Scenario, runs: dict[str, Run], folder: Path) -> list[Path]:
    """The scenario's figure, as a PNG file in ``folder`` (none if a participant is missing)."""
    from .scenarios.modern import ModernClaim

    folder.mkdir(parents=True, exist_ok=True)
    if any(n not in runs for n in scenario.participants):
        return []
    figure = fig_modern if isinstance(scenario, ModernClaim) else FIGURES[scenario.name]
    return [figure(scenario, runs, folder / f"{scenario.name}.png")]


def plot_experiment(experiment: str, runs: dict[str, Run], folder: Path) -> list[Path]:
    """Appendix figures of an experiment: every tuned path and loss curve on a surface."""
    folder.mkdir(parents=True, exist_ok=True)
    if not runs or not isinstance(EXPERIMENTS[experiment], Surface):
        return []
    return [
        tuned_paths(experiment, runs, folder / f"{experiment}-tuned-paths.png"),
        tuned_losses(experiment, runs, folder / f"{experiment}-tuned-loss.png"),
    ]
