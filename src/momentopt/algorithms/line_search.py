"""A line search satisfying the strong Wolfe conditions, with cubic interpolation.

Along a descent direction ``d`` from ``x`` the objective is ``φ(t) = f(x + t·d)``, with
``φ'(t) = ∇f(x + t·d)·d`` and ``φ'(0) < 0``. A step length ``t`` satisfies the strong Wolfe
conditions when

* it decreases ``φ`` enough (Armijo): ``φ(t) ≤ φ(0) + c1·t·φ'(0)``, and
* it flattens the slope enough (curvature): ``|φ'(t)| ≤ c2·|φ'(0)|``, ``0 < c1 < c2 < 1``.

:func:`strong_wolfe` finds one in two phases (J. Nocedal and S. J. Wright, *Numerical
Optimization*, 2nd ed., Springer 2006, §3.5): it extrapolates until an interval brackets such a
step (Algorithm 3.5), then shrinks the interval (Algorithm 3.6, "zoom"); new trial steps are the
minimizers of cubic interpolants (:func:`cubic_minimizer`, eq. 3.59). The safeguards and the
bookkeeping are those of torch.optim.LBFGS's search (itself after Mark Schmidt's minFunc), so
that its decisions, and with them its numbers, are torch's; each is noted where it is made.

Step lengths are Python numbers or 0-d tensors, as in torch: which one a value is decides how
it rounds, so it is kept as torch keeps it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Number = int | float | Tensor
"""A step length, function value or slope: a Python number or a 0-d tensor."""

Evaluate = Callable[[Number], tuple[float, Tensor]]
"""``t ↦ (φ(t), ∇f(x + t·d))``: the objective and its flat gradient at ``x + t·d``."""


def cubic_minimizer(
    x1: Number,
    f1: Number,
    g1: Number,
    x2: Number,
    f2: Number,
    g2: Number,
    bounds: tuple[Number, Number] | None = None,
) -> Number:
    r"""The minimizer of the cubic through two points with their values and slopes, clamped.

    The cubic ``p`` with ``p(x1) = f1, p'(x1) = g1, p(x2) = f2, p'(x2) = g2`` has, for
    ``a < b`` the two points in increasing order, its local minimizer at

    .. math::
        x^* = b - (b - a)\,\frac{g_b + d_2 - d_1}{g_b - g_a + 2 d_2},\qquad
        d_1 = g_a + g_b - 3\,\frac{f_a - f_b}{a - b},\quad d_2 = \sqrt{d_1^2 - g_a g_b}

    (Nocedal & Wright, eq. 3.59). The result is clamped to ``bounds`` (default: the interval
    between the two points). Where ``d_1^2 < g_a g_b`` the cubic has no local minimizer and
    the midpoint of the bounds is returned.

    ``d_1`` and ``d_2`` are symmetric in the two points, and are computed from them as given;
    the slopes must include a tensor (they do in the line search), so that ``d_1`` is one.
    """
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if x1 <= x2:
        a, g_a, b, g_b = x1, g1, x2, g2
    else:
        a, g_a, b, g_b = x2, g2, x1, g1
    low, high = bounds if bounds is not None else (a, b)
    if not d2_square >= 0:
        return (low + high) / 2.0
    d2 = torch.sqrt(d2_square)
    x_star = b - (b - a) * ((g_b + d2 - d1) / (g_b - g_a + 2 * d2))
    return min(max(x_star, low), high)


@dataclass
class _Trial:
    """A step length tried: ``t``, ``φ(t)``, the flat gradient at ``x + t·d`` and ``φ'(t)``."""

    t: Number
    f: float
    g: Tensor
    slope: Number


def strong_wolfe(
    evaluate: Evaluate,
    t: Number,
    d: Tensor,
    f: float,
    g: Tensor,
    gtd: Tensor,
    c1: float = 1e-4,
    c2: float = 0.9,
    tolerance_change: float = 1e-9,
    max_ls: int = 25,
) -> tuple[float, Tensor, Number, int]:
    r"""A step length along ``d`` satisfying the strong Wolfe conditions (or the best found).

    Args:
        evaluate: ``t ↦ (φ(t), ∇f(x + t·d))``; it must leave the parameters at ``x``
        t: the first step length to try
        d: the descent direction (flat)
        f, g, gtd: ``φ(0)``, the flat gradient at ``x`` and ``φ'(0) = g·d`` (negative)
        c1, c2: the constants of the Armijo and the curvature condition
        tolerance_change: the zoom stops once the bracket is shorter than this (measured in
            parameter change: its length times ``max|d|``)
        max_ls: the most evaluations of ``φ`` (the first included)

    Returns:
        ``(φ(t), gradient, t, evaluations)`` for the step length found: one satisfying both
        conditions, else the bracket end with the lowest ``φ`` when the budget or the bracket
        runs out.

    Bracketing (Algorithm 3.5): a trial step ``t_i`` ends the phase as one end of a bracket
    ``[t_{i−1}, t_i]`` when it fails the Armijo condition, when it is no lower than the
    previous trial (from the third trial on: torch counts trials from 0 and compares after
    two, where Nocedal & Wright compare after one), or when the slope is no longer negative;
    it is the answer when it satisfies the curvature condition too. Otherwise the next trial
    is the cubic's minimizer over ``[t_i + 0.01·(t_i − t_{i−1}), 10·t_i]``. Zoom (Algorithm
    3.6): the bracket's low end (lowest ``φ``) and high end are refined by the cubic's
    minimizer over the bracket, moved to ``0.1`` of the bracket's length from its nearer end
    when it lies within that distance of an end for the second time in a row or at an end.
    """
    d_norm = d.abs().max()

    def trial(step: Number) -> _Trial:
        f_new, g_new = evaluate(step)
        return _Trial(step, f_new, g_new, g_new.dot(d))

    def armijo_fails(point: _Trial) -> bool:
        return bool(point.f > (f + c1 * point.t * gtd))

    def curvature_holds(point: _Trial) -> bool:
        return bool(abs(point.slope) <= -c2 * gtd)

    start = _Trial(0, f, g, gtd)
    new = trial(t)
    evaluations = 1

    # -- bracketing (Algorithm 3.5) --------------------------------------------------------
    prev = start
    bracket: list[_Trial] | None = None
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if armijo_fails(new) or (ls_iter > 1 and new.f >= prev.f):
            bracket = [prev, new]
            break
        if curvature_holds(new):
            bracket = [new]
            done = True
            break
        if new.slope >= 0:
            bracket = [prev, new]
            break
        extrapolated = cubic_minimizer(
            prev.t,
            prev.f,
            prev.slope,
            new.t,
            new.f,
            new.slope,
            bounds=(new.t + 0.01 * (new.t - prev.t), new.t * 10),
        )
        prev, new = new, trial(extrapolated)
        evaluations += 1
        ls_iter += 1
    if ls_iter == max_ls:  # the budget ran out while extrapolating
        bracket = [start, new]
    if bracket is None:
        # No budget at all (max_ls < 0, or not an integer): torch's search then fails on an
        # unbound name; the same error, by type and message.
        raise UnboundLocalError(
            "cannot access local variable 'bracket_f' where it is not associated with a value"
        )

    # -- zoom (Algorithm 3.6) --------------------------------------------------------------
    low, high = (0, 1) if bracket[0].f <= bracket[-1].f else (1, 0)
    insufficient_progress = False
    while not done and ls_iter < max_ls:
        first, second = bracket
        if abs(second.t - first.t) * d_norm < tolerance_change:
            break
        step = cubic_minimizer(first.t, first.f, first.slope, second.t, second.f, second.slope)
        top, bottom = max(first.t, second.t), min(first.t, second.t)
        margin = 0.1 * (top - bottom)
        if min(top - step, step - bottom) < margin:
            # Close to an end: accepted once; the second time in a row, or at an end, moved
            # to `margin` from the nearer end.
            if insufficient_progress or step >= top or step <= bottom:
                step = top - margin if abs(step - top) < abs(step - bottom) else bottom + margin
                insufficient_progress = False
            else:
                insufficient_progress = True
        else:
            insufficient_progress = False

        new = trial(step)
        evaluations += 1
        ls_iter += 1
        if armijo_fails(new) or new.f >= bracket[low].f:
            bracket[high] = new  # the new high end
            low, high = (0, 1) if bracket[0].f <= bracket[1].f else (1, 0)
        else:
            if curvature_holds(new):
                done = True
            elif new.slope * (bracket[high].t - bracket[low].t) >= 0:
                bracket[high] = bracket[low]  # the slope points back: the old low is the high
            bracket[low] = new  # the new low end

    best = bracket[low]
    return best.f, best.g, best.t, evaluations
