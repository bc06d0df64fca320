"""The learning-rate search every optimizer gets: one shared log-spaced grid, one criterion.

Fairness (issue §3): every optimizer is run at *every* lr of the same grid, over exactly the
horizon that is plotted, with the same seed and no gradient clipping; the run kept for the
plots is the one the criterion picks — no re-tuning on another horizon.

The grid is shared rather than centred per optimizer, and wide enough for all of them:
1e-4, 1e-3, …, 10 — one point per decade (SGD on a stiff problem needs 1e-4, Adadelta's
natural lr is 1.0 and it often wants 10). One point per decade keeps the default run within
its time budget; ``--lr-points`` makes it finer (same range), for every optimizer alike. A
choice at either end of the grid is flagged in the report.
The criterion is the mean of the loss over the whole horizon (the area under the plotted
curve), so fast *and* stable wins; a run that diverges (non-finite loss) scores +inf.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

DEFAULT_POINTS = 6
LOW, HIGH = 1e-4, 10.0


def grid(points: int = DEFAULT_POINTS, low: float = LOW, high: float = HIGH) -> list[float]:
    """``points`` log-spaced learning rates from ``low`` to ``high`` inclusive."""
    if points < 1:
        raise ValueError("the lr grid needs at least one point")
    if points == 1:
        return [math.sqrt(low * high)]
    ratio = math.log10(high / low) / (points - 1)
    return [float(f"{low * 10 ** (i * ratio):.3g}") for i in range(points)]


def refine(lrs: Sequence[float], factor: int) -> list[float]:
    """``lrs`` with ``factor − 1`` log-spaced points inserted between neighbours (rounded to
    3 significant digits, as :func:`grid` rounds): ``refine([1e-3, 1e-2], 2)`` is
    ``[1e-3, 0.00316, 1e-2]``. Every optimizer of an experiment gets the same refined grid."""
    if factor < 1:
        raise ValueError("the refinement factor must be at least 1")
    if factor == 1:
        return [float(v) for v in lrs]
    out: list[float] = []
    for low, high in zip(lrs, lrs[1:], strict=False):
        ratio = math.log10(high / low) / factor
        out += [float(f"{low * 10 ** (i * ratio):.3g}") for i in range(factor)]
    return out + [float(v) for v in lrs[-1:]]


def score(losses: Sequence[float]) -> float:
    """Mean loss over the horizon; +inf if any loss is not finite."""
    if not losses or not all(math.isfinite(v) for v in losses):
        return math.inf
    return sum(losses) / len(losses)


def pick(scores: Sequence[float]) -> int:
    """Index of the best (lowest) score; the smallest lr wins ties; 0 if all diverged."""
    best = 0
    for i, value in enumerate(scores):
        if value < scores[best]:
            best = i
    return best


def at_edge(index: int, points: int) -> bool:
    """Whether the chosen lr is the grid's first or last point (the grid may be too narrow)."""
    return points > 2 and index in (0, points - 1)
