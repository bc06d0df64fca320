"""Experiments, the claims they test, and the one loop that runs many copies of a problem.

An :class:`Experiment` is a problem (a surface, a data set, an online loss). For every
optimizer it runs, in one go, *copies* of the problem: one per (lr, seed) of the shared lr
grid — the **tuned** runs, of which the best lr (by the experiment's score, averaged over the
seeds) is kept — and one per (lr, seed) of the experiment's **matched** ladders, where the
optimizers a claim compares take the same step size (:func:`..optimizers.step_match`).

A :class:`Scenario` is one claim of the story, tested on one experiment's runs: pre-stated
criteria (:class:`Check`), each measured and marked pass / partial / fail, and a verdict that
follows from them alone.

Every copy has its own parameters; the copies sharing an lr share a param group of *one*
optimizer, and their losses are summed before ``backward()``. The copies never interact (their
losses are separate terms and every optimizer here acts per parameter tensor, or per param
group on numbers that depend on the step count and the lr only, as schedule-free's averaging
weights), so this is exactly that many independent runs, with one forward/backward and one
``step()`` per step. An optimizer that reduces a number over *all* its parameters (Prodigy's
step size ``d``) would couple the copies; its spec says ``per_copy`` and each copy gets an
optimizer of its own (:class:`PerCopy`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .. import lrsearch
from ..optimizers import Spec, Stepping, step_match

HOLDS, FAILS, MIXED, UNCHECKED = "holds", "does not hold", "mixed", "not checked"
VERDICTS = (HOLDS, FAILS, MIXED, UNCHECKED)


# -- runs ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Copy:
    """One copy of the problem: its lr, its seed, and the ladder rung (None: the grid)."""

    lr: float
    seed: int
    base_lr: float | None = None


@dataclass
class CopyResult:
    """What one copy produced: the series the score reads, curves and end-of-run numbers."""

    loss: list[float]
    curves: dict[str, list[Any]] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Run:
    """One optimizer on one experiment.

    ``lr`` is the tuned lr (``grid``'s best by ``scores``, the experiment's score averaged
    over ``seeds``); ``curves`` and ``metrics`` hold one entry per seed at that lr.
    ``matched[f"{base_lr:g}"]`` holds the ladder runs: ``lr`` (the lr actually used, the base
    lr times the step-size match), ``curves`` and ``metrics`` per seed. ``default`` holds the
    untuned run at the optimizer's own default lr (``lr``, ``curves``, ``metrics`` per seed)
    where the experiment runs one (:attr:`Experiment.at_default`), else it is empty.
    """

    optimizer: str
    lr: float
    grid: list[float]
    scores: list[float]
    edge: bool
    seeds: list[int]
    curves: dict[str, list[list[Any]]] = field(default_factory=dict)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    matched: dict[str, dict[str, Any]] = field(default_factory=dict)
    grid_metrics: dict[str, list[float]] = field(default_factory=dict)
    default: dict[str, Any] = field(default_factory=dict)

    def metric(self, name: str) -> float:
        """The mean over seeds of ``name`` at the tuned lr (NaN if missing)."""
        return mean(self.metrics.get(name, []))

    def matched_metric(self, base_lr: float, name: str) -> float:
        entry = self.matched.get(f"{base_lr:g}")
        return mean(entry["metrics"].get(name, [])) if entry else math.nan


def mean(values: Sequence[float]) -> float:
    """Mean of ``values``; inf if any is inf (a diverged seed), NaN if empty."""
    if not values:
        return math.nan
    if any(math.isinf(v) for v in values):
        return math.inf
    return statistics.fmean(values)


def spread(values: Sequence[float], fmt: str = ".3g") -> str:
    """``mean`` or ``mean (min–max)`` over seeds."""
    if len(values) <= 1:
        return format(values[0], fmt) if values else "n/a"
    return f"{format(mean(values), fmt)} ({format(min(values), fmt)}–{format(max(values), fmt)})"


# -- the loop ------------------------------------------------------------------------------
@dataclass
class GridTrace:
    """Per-step losses of all copies (``losses[t][i]``) and the final parameters."""

    losses: list[list[float]]
    optimizer: Any
    params: list[list[Tensor]]

    def column(self, i: int) -> list[float]:
        return [row[i] for row in self.losses]


class PerCopy(Stepping):
    """One optimizer per copy, stepping together: for an optimizer whose step reads a number
    reduced over every parameter it holds (Prodigy's ``d``), which would otherwise couple the
    copies. ``parts[i]`` holds copy ``i``'s parameters; ``eval()`` / ``train()`` reach every
    part that has them (schedule-free)."""

    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts

    def eval(self) -> None:
        switch_mode(self.parts, "eval")

    def train(self) -> None:
        switch_mode(self.parts, "train")


def switch_mode(optimizers: Sequence[Any], mode: str) -> None:
    """Call ``opt.eval()`` or ``opt.train()`` on those that have it (schedule-free's switch
    between the average ``x``, where a model is evaluated, and the point ``y`` where its
    gradients are taken); the others have one sequence of weights and nothing to switch."""
    for opt in optimizers:
        method = getattr(opt, mode, None)
        if callable(method):
            method()


def build_grid_optimizer(
    spec: Spec, params: list[list[Tensor]], lrs: Sequence[float], steps: int | None = None
) -> Any:
    """One optimizer of ``spec`` with one param group per distinct lr (one optimizer per copy
    if ``spec.per_copy``). A class that schedules its lr over the run (``needs_horizon``, e.g.
    the lab's cosine baselines) is told the horizon, ``total_steps=steps``."""
    if getattr(spec.cls, "needs_horizon", False):
        if steps is None:
            raise ValueError(f"{spec.name} schedules its lr over the run: give the horizon")
        spec = Spec(spec.name, spec.cls, {**spec.kwargs, "total_steps": steps})
    if spec.per_copy:
        return PerCopy(
            [
                spec.build([{"params": ps, "lr": float(lr)}])
                for ps, lr in zip(params, lrs, strict=True)
            ]
        )
    groups: dict[float, list[Tensor]] = {}
    for ps, lr in zip(params, lrs, strict=True):
        groups.setdefault(float(lr), []).extend(ps)
    return spec.build([{"params": ps, "lr": lr} for lr, ps in groups.items()])


def run_grid(
    spec: Spec,
    copies: Sequence[Copy],
    steps: int,
    init: Callable[[Copy], list[Tensor]],
    losses: Callable[[list[list[Tensor]], int], Tensor],
    *,
    after_step: Callable[[list[list[Tensor]], int], None] | None = None,
    watch: Callable[[list[list[Tensor]], int], None] | None = None,
    optimizer_kwargs: dict[str, Any] | None = None,
    evaluate_at: Callable[[int], bool] | None = None,
) -> GridTrace:
    """Run ``spec`` on every copy for ``steps`` steps.

    ``init(copy)`` makes one copy's parameters; ``losses(params, t)`` returns the copies'
    losses at step ``t`` (1-based) as one tensor; ``after_step`` may project the parameters
    (a constraint of the problem, not clipping); ``watch(params, t)`` is called after each
    step (``t = 0``: before the first) and may read the parameters and, for ``t ≥ 1``, the
    gradients of step ``t``. At the steps where ``evaluate_at(t)`` is true the parameters
    ``watch`` reads are the ones a user evaluates: an optimizer with ``eval()`` / ``train()``
    (schedule-free) is switched to ``eval()`` for the call and back to ``train()`` after it,
    as its users do around an evaluation (the two switches round the weights by an ulp or
    so); it is put in train mode before the first step. A copy whose loss is not finite is
    left out of ``backward()``, so a diverging lr cannot poison the others.
    """
    params = [init(c) for c in copies]
    opt = build_grid_optimizer(
        Spec(
            spec.name, spec.cls, {**spec.kwargs, **(optimizer_kwargs or {})}, per_copy=spec.per_copy
        ),
        params,
        [c.lr for c in copies],
        steps,
    )
    switch_mode([opt], "train")
    rows: list[list[float]] = []

    def look(t: int) -> None:
        if watch is None:
            return
        evaluating = evaluate_at is not None and evaluate_at(t)
        if evaluating:
            switch_mode([opt], "eval")
        watch(params, t)
        if evaluating:
            switch_mode([opt], "train")

    look(0)
    for t in range(1, steps + 1):
        opt.zero_grad()
        loss = losses(params, t)
        finite = torch.isfinite(loss)
        rows.append(
            [v if ok else math.inf for v, ok in zip(loss.tolist(), finite.tolist(), strict=True)]
        )
        torch.where(finite, loss, torch.zeros_like(loss)).sum().backward()
        opt.step()
        if after_step is not None:
            with torch.no_grad():
                after_step(params, t)
        look(t)
    return GridTrace(rows, opt, params)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- the end of a run, where a user evaluates ------------------------------------------------
END = 0.9  # "the end of the run": the evaluations after 90 % of its steps


def end_metrics(eval_steps: Sequence[int], values: Sequence[float], steps: int) -> dict[str, float]:
    """``final_loss``: the mean of ``values`` (a loss at the evaluation point, taken at
    ``eval_steps``) over the evaluations after ``END·steps`` (at least the last one);
    ``mean_loss``: their mean over the whole run (after step 0), the area under the curve.
    Either is inf if a value it averages is not finite (a diverged run)."""
    pairs = [(t, v) for t, v in zip(eval_steps, values, strict=True) if t > 0]
    if not pairs:
        return {"final_loss": math.inf, "mean_loss": math.inf}
    end = [v for t, v in pairs if t > END * steps] or [pairs[-1][1]]
    return {"final_loss": finite_mean(end), "mean_loss": finite_mean([v for _, v in pairs])}


def finite_mean(values: Sequence[float]) -> float:
    """The mean of ``values``, or inf if one is not finite."""
    if not all(math.isfinite(v) for v in values):
        return math.inf
    return statistics.fmean(values)


def estimated_lr(optimizer: Any, copy: int) -> dict[str, float]:
    """``{"estimated_lr": d·lr}`` of copy ``copy`` for an optimizer that estimates its step size
    ``d`` (Prodigy, one optimizer per copy: its group's ``d`` and ``lr``); else ``{}``."""
    if not isinstance(optimizer, PerCopy):
        return {}
    group = optimizer.parts[copy].param_groups[0]
    if "d" not in group:
        return {}
    return {"estimated_lr": float(group["d"]) * float(group["lr"])}


# -- experiments ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Ladder:
    """Matched runs: ``optimizers`` at each base lr, every lr times its step-size match."""

    optimizers: tuple[str, ...]
    base_lrs: tuple[float, ...]
    note: str


class Experiment:
    """A problem, run by every optimizer on the shared lr grid (tuned) and on its ladders."""

    name: str = ""
    title: str = ""
    setup: str = ""
    default_steps: int = 100
    noisy: bool = False  # several seeds only where the data or the batches are random
    tuned: bool = True  # False: every optimizer runs at its own default lr only
    criterion: str = "mean loss over the horizon"
    ladders: dict[str, Ladder] = {}
    only: tuple[str, ...] = ()  # if set: the lineage optimizers that run it (added ones always do)
    optimizer_kwargs: dict[str, dict[str, Any]] = {}
    refine: int = 1  # the shared grid with refine − 1 points inserted between neighbours
    at_default: tuple[str, ...] = ()  # also run untuned, at their own default lr (Run.default)

    def score(self, result: CopyResult) -> float:
        return lrsearch.score(result.loss)

    def simulate(self, spec: Spec, copies: Sequence[Copy], steps: int) -> list[CopyResult]:
        raise NotImplementedError

    def copy_metrics(
        self, trace: GridTrace, copy: int, curves: dict[str, list[Any]], steps: int
    ) -> dict[str, float]:
        """Metrics an experiment adds to copy ``copy``'s own (default: none)."""
        return {}

    def runs_with(self, spec: Spec) -> bool:
        """Whether ``spec`` runs this experiment (see ``only`` and ``Spec.experiments``)."""
        if spec.experiments and self.name not in spec.experiments:
            return False
        return not self.only or spec.added or spec.name in self.only

    def base_lrs_for(self, spec: Spec) -> list[float]:
        """The ladder rungs ``spec`` runs: those of every ladder naming it; an optimizer the
        user added runs every ladder, to be compared with the story's."""
        rungs: list[float] = []
        for ladder in self.ladders.values():
            if spec.added or spec.name in ladder.optimizers:
                rungs += [lr for lr in ladder.base_lrs if lr not in rungs]
        return rungs

    def grid_for(self, lrs: Sequence[float]) -> list[float]:
        """The lrs every optimizer of this experiment is tuned on: the shared grid, refined."""
        return lrsearch.refine(list(lrs), self.refine) if lrs else []

    def run(self, spec: Spec, lrs: Sequence[float], steps: int, seeds: Sequence[int]) -> Run:
        seeds = list(seeds) if self.noisy else list(seeds)[:1]
        lrs = self.grid_for(lrs) if self.tuned else [float(spec.group()["lr"])]
        factor = step_match(spec)
        rungs = self.base_lrs_for(spec)
        default_lr = float(spec.group()["lr"]) if spec.name in self.at_default else None
        copies = [Copy(float(lr), s) for lr in lrs for s in seeds]
        copies += [Copy(base * factor, s, base) for base in rungs for s in seeds]
        if default_lr is not None:
            copies += [Copy(default_lr, s) for s in seeds]
        # a rung whose lr is on the grid reuses the grid's run: one simulation per (lr, seed)
        distinct = list(dict.fromkeys((c.lr, c.seed) for c in copies))
        simulated = self.simulate(spec, [Copy(lr, s) for lr, s in distinct], steps)
        by_key = dict(zip(distinct, simulated, strict=True))
        results = [by_key[(c.lr, c.seed)] for c in copies]
        n = len(seeds)
        scores = [
            mean([self.score(r) for r in results[i * n : (i + 1) * n]]) for i in range(len(lrs))
        ]
        best = lrsearch.pick(scores)
        run = Run(
            optimizer=spec.name,
            lr=float(lrs[best]),
            grid=[float(v) for v in lrs],
            scores=[float(s) for s in scores],
            edge=lrsearch.at_edge(best, len(lrs)),
            seeds=seeds,
        )
        tuned = results[best * n : (best + 1) * n]
        run.curves = {"loss": [r.loss for r in tuned]}
        for key in tuned[0].curves:
            run.curves[key] = [r.curves[key] for r in tuned]
        run.metrics = {key: [r.metrics[key] for r in tuned] for key in tuned[0].metrics}
        run.metrics["score"] = [self.score(r) for r in tuned]
        run.grid_metrics = {
            key: [
                mean([r.metrics[key] for r in results[i * n : (i + 1) * n]])
                for i in range(len(lrs))
            ]
            for key in tuned[0].metrics
        }
        for j, base in enumerate(rungs):
            chunk = results[(len(lrs) + j) * n : (len(lrs) + j + 1) * n]
            run.matched[f"{base:g}"] = {
                "base_lr": base,
                "lr": base * factor,
                "curves": {"loss": [r.loss for r in chunk]}
                | {k: [r.curves[k] for r in chunk] for k in chunk[0].curves},
                "metrics": {k: [r.metrics[k] for r in chunk] for k in chunk[0].metrics},
            }
        if default_lr is not None:
            chunk = results[len(copies) - n :]
            run.default = {
                "lr": default_lr,
                "curves": {"loss": [r.loss for r in chunk]}
                | {k: [r.curves[k] for r in chunk] for k in chunk[0].curves},
                "metrics": {k: [r.metrics[k] for r in chunk] for k in chunk[0].metrics}
                | {"score": [self.score(r) for r in chunk]},
            }
        return run

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "setup": self.setup,
            "tuning_criterion": self.criterion,
            "noisy": self.noisy,
            "tuned": self.tuned,
            "only": list(self.only),
            "ladders": {
                k: {"optimizers": list(v.optimizers), "base_lrs": list(v.base_lrs), "note": v.note}
                for k, v in self.ladders.items()
            },
            "optimizer_kwargs": self.optimizer_kwargs,
            "lr_grid_refinement": self.refine,
            "at_default": list(self.at_default),
        }


# -- claims --------------------------------------------------------------------------------
PASS, PARTIAL, FAIL, SKIP = "pass", "partial", "fail", "not checked"


@dataclass
class Check:
    """One pre-stated criterion, what was measured, and whether it was met."""

    criterion: str
    measured: str
    status: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class Verdict:
    """A claim's verdict: "holds" if every checked criterion passed, "does not hold" if none
    did (not even in part), "mixed" otherwise, "not checked" if none could be checked."""

    verdict: str
    checks: list[Check]
    note: str = ""

    @classmethod
    def of(cls, checks: list[Check], note: str = "") -> Verdict:
        statuses = [c.status for c in checks if c.status != SKIP]
        if not statuses:
            word = UNCHECKED
        elif all(s == PASS for s in statuses):
            word = HOLDS
        elif all(s == FAIL for s in statuses):
            word = FAILS
        else:
            word = MIXED
        return cls(word, checks, note)

    @property
    def criterion(self) -> str:
        return " AND ".join(c.criterion for c in self.checks)

    @property
    def measured(self) -> str:
        return "; ".join(c.measured for c in self.checks)

    @property
    def figures(self) -> dict[str, Any]:
        return {k: v for c in self.checks for k, v in c.figures.items()}


def status_of(passed: Sequence[bool]) -> str:
    """All → pass, none → fail, some → partial, nothing to judge → not checked."""
    if not passed:
        return SKIP
    if all(passed):
        return PASS
    return FAIL if not any(passed) else PARTIAL


def missing(runs: dict[str, Run], names: Sequence[str]) -> Check | None:
    """A not-checked Check if any of ``names`` did not run."""
    absent = [n for n in names if n not in runs]
    if not absent:
        return None
    return Check("", f"not run: {', '.join(absent)} (select them with --optimizers)", SKIP)


class Scenario:
    """One claim of the story, the experiment that tests it, and its pre-stated criteria.

    ``criteria`` are fixed texts, written before any run; :meth:`judge` measures each and
    returns one :class:`Check` per criterion, in order. ``reason`` says where each criterion
    comes from (the theory or the paper).
    """

    name: str = ""
    section: str = ""  # the lineage step it belongs to (story.SECTIONS)
    experiment: str = ""
    title: str = ""
    claim: str = ""
    kind: str = ""  # "dynamics (matched step sizes)" or "tuned performance"
    ladder: str | None = None  # the experiment's matched ladder the criteria use, if any
    reason: str = ""
    participants: tuple[str, ...] = ()
    criteria: tuple[str, ...] = ()

    def judge(self, runs: dict[str, Run]) -> list[Check]:
        raise NotImplementedError

    def verdict(self, runs: dict[str, Run]) -> Verdict:
        absent = missing(runs, self.participants)
        if absent is not None:
            return Verdict.of(
                [Check(c, absent.measured, SKIP) for c in self.criteria],
                note=absent.measured,
            )
        checks = self.judge(runs)
        return Verdict.of(checks, self.note(runs))

    def note(self, runs: dict[str, Run]) -> str:
        """Measured but not judged: what a reader should also know (default: nothing)."""
        return ""

    def check(self, index: int, measured: str, passed: Sequence[bool], **figures: Any) -> Check:
        return Check(self.criteria[index], measured, status_of(passed), figures)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "section": self.section,
            "experiment": self.experiment,
            "title": self.title,
            "claim": self.claim,
            "kind": self.kind,
            "ladder": self.ladder,
            "reason": self.reason,
            "participants": list(self.participants),
            "criteria": list(self.criteria),
        }
