"""2-D surfaces: the ravine (zig-zag), Rosenbrock's valley and a saddle point.

Each copy of the parameters is one point ``(x, y)``; trajectories are kept for the contour
plots.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..optimizers import Spec
from .base import Run, Scenario, Verdict, choose, mean_log_score, run_grid


class Surface(Scenario):
    kind = "2d"
    start: tuple[float, float] = (0.0, 0.0)
    bounds: tuple[float, float, float, float] = (-1.0, 1.0, -1.0, 1.0)  # x0, x1, y0, y1
    log_levels = True
    minimum: tuple[float, float] | None = None

    def f(self, xy: Tensor) -> Tensor:
        """The surface at points ``xy`` of shape (..., 2)."""
        raise NotImplementedError

    def score(self, losses: list[float]) -> float:
        return mean_log_score(losses)

    def run(self, spec: Spec, lrs: Sequence[float], steps: int, seed: int) -> Run:
        start = torch.tensor(self.start, dtype=torch.float64)
        trace = run_grid(
            spec,
            lrs,
            steps,
            init=lambda: [start.clone().requires_grad_()],
            losses=lambda copies, t: self.f(torch.stack([c[0] for c in copies])),
            watch=lambda copies, t: [c[0].detach().tolist() for c in copies],
        )
        best, run = choose(spec, lrs, trace, self.score)
        path = [point[best] for point in trace.watched]
        run.extra["trajectory"] = path
        run.metrics.update(self.measure_path(path, run.curves["loss"]))
        return run

    def measure_path(self, path: list[list[float]], losses: list[float]) -> dict[str, float]:
        end = path[-1]
        out = {"final_loss": losses[-1] if losses else math.nan}
        if self.minimum is not None and all(math.isfinite(v) for v in end):
            out["distance_to_minimum"] = math.dist(end, self.minimum)
        return out


def zigzag(path: Sequence[Sequence[float]], axis: int = 1) -> float:
    """Path length along ``axis`` over the net distance travelled along it.

    1.0 means a straight approach along the steep axis; every swing across the ravine adds
    twice its amplitude. ``inf`` if the path diverged.
    """
    coords = [p[axis] for p in path]
    if not all(math.isfinite(c) for c in coords):
        return math.inf
    travelled = sum(abs(b - a) for a, b in zip(coords, coords[1:], strict=False))
    net = abs(coords[-1] - coords[0])
    return travelled / net if net > 0 else math.inf


def sign_flips(path: Sequence[Sequence[float]], axis: int = 1) -> int:
    """How often the step along ``axis`` changes sign (each is one zig or zag)."""
    steps = [b[axis] - a[axis] for a, b in zip(path, path[1:], strict=False)]
    return sum(1 for a, b in zip(steps, steps[1:], strict=False) if a * b < 0)


class Ravine(Surface):
    name = "ravine"
    title = "Ravine: an ill-conditioned quadratic"
    claim = (
        "SGD zig-zags across the steep axis of a ravine; momentum damps the zig-zag, "
        "Nesterov damps it more."
    )
    measure = (
        "zig-zags = sign changes of the step along the steep axis y (how often it swings back "
        "across the ravine); also the swing amplitude, path length along y / net distance "
        "along y (1 = no swing) — both at each optimizer's tuned lr"
    )
    criterion = "mean log10 loss over the horizon"
    default_steps = 150
    start = (-9.0, 1.0)
    bounds = (-10.0, 2.0, -2.0, 2.0)
    minimum = (0.0, 0.0)
    curvature = (1.0, 150.0)  # along x (shallow) and y (steep): condition number 150

    def f(self, xy: Tensor) -> Tensor:
        a, b = self.curvature
        return 0.5 * (a * xy[..., 0] ** 2 + b * xy[..., 1] ** 2)

    def measure_path(self, path: list[list[float]], losses: list[float]) -> dict[str, float]:
        out = super().measure_path(path, losses)
        out["zigzag"] = zigzag(path)
        out["sign_flips"] = float(sign_flips(path))
        return out

    def verdict(self, runs: dict[str, Run]) -> Verdict:
        flips = {name: run.metrics["sign_flips"] for name, run in runs.items()}
        swing = {name: run.metrics["zigzag"] for name, run in runs.items()}
        holds = None
        text = "zig-zags (sign changes along y): " + ", ".join(
            f"{n} {v:g}" for n, v in flips.items()
        )
        text += "; swing amplitude (path/net along y): " + ", ".join(
            f"{n} {v:.2f}" for n, v in swing.items()
        )
        if {"SGD", "Momentum", "Nesterov"} <= set(flips):
            holds = flips["SGD"] > flips["Momentum"] > flips["Nesterov"]
            if swing["Momentum"] > swing["SGD"]:
                text += (
                    ". Momentum zig-zags less often than SGD but its swings are wider: "
                    "heavy-ball momentum rings across the ravine at its tuned lr"
                )
        return Verdict(holds, {"sign_flips": flips, "zigzag": swing}, text)


class Rosenbrock(Surface):
    name = "rosenbrock"
    title = "Rosenbrock's valley"
    claim = (
        "In a curved, flat-bottomed valley plain SGD crawls; momentum and adaptive steps "
        "travel along the valley floor."
    )
    measure = "distance of the final point to the minimum (1, 1), at each tuned lr"
    criterion = "mean log10 loss over the horizon"
    default_steps = 300
    start = (-1.5, 2.0)
    bounds = (-2.0, 2.0, -1.0, 3.0)
    minimum = (1.0, 1.0)

    def f(self, xy: Tensor) -> Tensor:
        x, y = xy[..., 0], xy[..., 1]
        return (1 - x) ** 2 + 100 * (y - x**2) ** 2

    def verdict(self, runs: dict[str, Run]) -> Verdict:
        d = {n: r.metrics.get("distance_to_minimum", math.inf) for n, r in runs.items()}
        holds = None
        if "SGD" in d and len(d) > 1:
            holds = min(v for n, v in d.items() if n != "SGD") < d["SGD"]
        text = ", ".join(f"{n} {v:.3g}" for n, v in d.items())
        return Verdict(holds, {"distance_to_minimum": d}, f"distance to (1, 1): {text}")


class Saddle(Surface):
    name = "saddle"
    title = "Escaping a saddle point"
    claim = (
        "Near a saddle the gradient is tiny: SGD's step is tiny too, while methods that divide "
        "by √V take full-size steps and escape sooner."
    )
    measure = "steps until |y| > 1 (escape from the saddle at the origin), at each tuned lr"
    criterion = "mean loss over the horizon"
    default_steps = 100
    start = (1.0, 1e-4)
    bounds = (-1.5, 1.5, -2.0, 2.0)
    log_levels = False

    def f(self, xy: Tensor) -> Tensor:
        x, y = xy[..., 0], xy[..., 1]
        return x**2 - y**2 + 0.25 * y**4  # saddle at 0; minima (0, ±√2), f = −1

    def score(self, losses: list[float]) -> float:
        if not losses or not all(math.isfinite(v) for v in losses):
            return math.inf
        return sum(losses) / len(losses)

    def measure_path(self, path: list[list[float]], losses: list[float]) -> dict[str, float]:
        out = super().measure_path(path, losses)
        escape = next((t for t, p in enumerate(path) if abs(p[1]) > 1.0), None)
        out["escape_step"] = float(escape) if escape is not None else math.inf
        return out

    def verdict(self, runs: dict[str, Run]) -> Verdict:
        e = {n: r.metrics["escape_step"] for n, r in runs.items()}
        holds = None
        if "SGD" in e and "Adam" in e:
            holds = e["Adam"] < e["SGD"]
        text = ", ".join(f"{n} {v:g}" for n, v in e.items())
        return Verdict(holds, {"escape_step": e}, f"steps to escape: {text}")


def describe_extra(run: Run) -> dict[str, Any]:
    return run.extra
