"""The newer optimizers against AdamW (``momentopt compare --modern``): the problems, the
fairness of the runs (independent copies, the same refined grid, schedule-free evaluated at its
average, the cosine baselines told the horizon), every criterion measured on short runs, and
verdicts that turn to "does not hold" when an optimizer is swapped for one that lacks the
claimed mechanism. Short budgets only: the whole file takes seconds."""

from __future__ import annotations

import math
import os
from pathlib import Path

import prodigyopt
import pytest
import schedulefree
import torch

import momentopt
from momentopt.lab import lrsearch
from momentopt.lab.optimizers import (
    MODERN_EXPERIMENTS,
    MODERN_NAMES,
    Registry,
    Spec,
    couples_parameters,
    parse_optimizer,
)
from momentopt.lab.report import final_rows, verdict_rows
from momentopt.lab.runner import plan
from momentopt.lab.scenarios import (
    EXPERIMENTS,
    FAILS,
    HOLDS,
    MODERN_ORDER,
    SCENARIOS,
    Run,
    resolve,
)
from momentopt.lab.scenarios.base import FAIL, PASS, SKIP, Copy, end_metrics
from momentopt.lab.scenarios.modern import TOLERANCE, Comparison, ratio
from momentopt.lab.scenarios.quadratic import CURVATURE, DIM, SIGMA
from momentopt.lab.schedules import AdamWCosine, MomentumCosine

QUADRATIC = EXPERIMENTS["noisy-quadratic"]
DIGITS = EXPERIMENTS["digits-final"]


def run(experiment, names, lrs, steps, seeds=(0,), swap=()):
    """``names`` on ``experiment`` (lrs: the shared grid before the experiment refines it);
    ``swap``: ``NAME=module:Class[:JSON]`` replacements."""
    registry = Registry()
    for text in swap:
        registry.put(parse_optimizer(text))
    e = EXPERIMENTS[experiment]
    return {spec.name: e.run(spec, lrs, steps, list(seeds)) for spec in registry.resolve(names)}


# -- what runs where --------------------------------------------------------------------------
def test_the_newer_optimizers_run_the_comparison_only():
    registry = Registry()
    for name in MODERN_NAMES:
        spec = registry.find(name)
        assert spec is not None and not spec.added
        assert [e.name for e in EXPERIMENTS.values() if e.runs_with(spec)] == list(
            MODERN_EXPERIMENTS
        )
    adamw = registry.find("AdamW")
    assert all(e.runs_with(adamw) for e in (QUADRATIC, DIGITS))
    assert not any(e.runs_with(registry.find("SGD")) for e in (QUADRATIC, DIGITS))
    # the default run (the lineage's claims) plans no job of the comparison: it costs nothing
    jobs = plan(resolve(None), registry.resolve(None), None)
    assert not any(e.name in MODERN_EXPERIMENTS for e, _, _ in jobs)
    assert {spec.name for _, spec, _ in jobs}.isdisjoint(MODERN_NAMES)
    assert [s.name for s in resolve(["modern"])] == list(MODERN_ORDER)
    assert {s.experiment for s in resolve(["modern"])} == set(MODERN_EXPERIMENTS)


def test_registry_specs_are_the_packages_defaults():
    registry = Registry()
    assert registry.find("Lion").cls is momentopt.Lion and registry.find("Lion").kwargs == {}
    assert registry.find("CautiousAdamW").kwargs == {"cautious": True}
    assert registry.find("Prodigy").group()["lr"] == 1.0  # prodigyopt: "lr=1. for all networks"
    assert registry.find("ScheduleFreeAdamW").group()["lr"] == 0.0025
    assert registry.find("ScheduleFreeSGD").group()["lr"] == 1.0
    # Prodigy's d is one number for all its parameters: each copy gets its own optimizer
    assert registry.find("Prodigy").per_copy and couples_parameters(momentopt.Prodigy)
    assert not any(registry.find(n).per_copy for n in MODERN_NAMES if n != "Prodigy")
    assert parse_optimizer('P=momentopt:Prodigy:{"d_coef": 0.5}').per_copy  # a user's too


def test_refined_grid_is_the_shared_grid_with_half_decades():
    assert lrsearch.refine(lrsearch.grid(), 2) == [
        1e-4, 3.16e-4, 1e-3, 3.16e-3, 0.01, 0.0316, 0.1, 0.316, 1.0, 3.16, 10.0
    ]  # fmt: skip
    assert lrsearch.refine([0.1], 2) == [0.1] and lrsearch.refine([1e-3, 0.1], 1) == [1e-3, 0.1]
    with pytest.raises(ValueError):
        lrsearch.refine([1.0], 0)
    assert QUADRATIC.grid_for(lrsearch.grid(2)) == [1e-4, 0.0316, 10.0]


# -- fairness -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODERN_NAMES)
def test_copies_are_independent_runs(name):
    """Two copies (two lrs, two seeds) in one grid give each copy's numbers alone, bit for
    bit: one optimizer's param groups never mix the copies (Prodigy: one optimizer each)."""
    spec = Registry().find(name)
    both = QUADRATIC.simulate(spec, [Copy(0.01, 0), Copy(0.1, 1)], 12)
    alone = [QUADRATIC.simulate(spec, [c], 12)[0] for c in (Copy(0.01, 0), Copy(0.1, 1))]
    for a, b in zip(both, alone, strict=True):
        assert a.loss == b.loss and a.curves == b.curves


def test_one_prodigy_for_all_copies_would_couple_them():
    """Why Prodigy runs per copy: with the copies in one optimizer, its d (a sum over all the
    parameters) changes with the other copy, and the run is no longer the copy's own."""
    coupled = Spec("Prodigy", momentopt.Prodigy)
    together = QUADRATIC.simulate(coupled, [Copy(1.0, 0), Copy(1.0, 1)], 12)[0]
    alone = QUADRATIC.simulate(coupled, [Copy(1.0, 0)], 12)[0]
    assert together.loss != alone.loss
    per_copy = QUADRATIC.simulate(Registry().find("Prodigy"), [Copy(1.0, 0), Copy(1.0, 1)], 12)
    assert per_copy[0].loss == alone.loss
    assert per_copy[0].metrics["estimated_lr"] > 1e-6  # d grew from d0 = 1e-6


def replay(make, lr, steps, *, schedule_free=False, seed=0):
    """The noisy quadratic by hand, one copy, for optimizer ``make``: the exact f every 10
    steps (schedule-free in eval mode, as its users evaluate), f at the training point y
    after the last step, and the optimizer."""
    gen = torch.Generator().manual_seed(seed)
    optimum = torch.randn(DIM, generator=gen)
    noise = torch.randn(steps, DIM, generator=gen) * (SIGMA * CURVATURE.sqrt())
    w = torch.zeros(DIM, requires_grad=True)

    def f() -> float:
        return 0.5 * float((CURVATURE * (w.detach() - optimum) ** 2).sum())

    opt = make([w], lr=lr)
    if schedule_free:
        opt.train()
    evals = [f()]
    for t in range(1, steps + 1):
        opt.zero_grad()
        (0.5 * (CURVATURE * (w - optimum) ** 2).sum() + (noise[t - 1] * w).sum()).backward()
        opt.step()
        if t % 10 == 0 or t == steps:
            if schedule_free:
                opt.eval()
            evals.append(f())
            if schedule_free:
                opt.train()
    return evals, f(), opt


def test_schedule_free_is_evaluated_at_its_average():
    """The judged loss is schedule-free's at x (eval mode), as its users evaluate; training
    steps are taken at y (train mode)."""
    result = QUADRATIC.simulate(Registry().find("ScheduleFreeSGD"), [Copy(0.1, 0)], 10)[0]
    evals, at_y, _ = replay(momentopt.ScheduleFreeSGD, 0.1, 10, schedule_free=True)
    assert result.curves["eval_step"] == [0, 10]
    assert result.curves["eval_loss"] == evals
    assert evals[-1] != at_y  # x, not the point y the gradients are taken at


@pytest.mark.parametrize(
    "name,reference,lr",
    [
        ("Prodigy", prodigyopt.Prodigy, 1.0),
        ("ScheduleFreeAdamW", schedulefree.AdamWScheduleFree, 0.0316),
        ("ScheduleFreeSGD", schedulefree.SGDScheduleFree, 1.0),
    ],
)
def test_the_labs_run_is_the_reference_packages(name, reference, lr):
    """End to end: the lab's run of Prodigy / Schedule-Free on the noisy quadratic (per-copy
    optimizer, train/eval switches, the evaluation every 10 steps) gives the reference
    package's numbers exactly — momentopt's classes are bitwise their references
    (tests/test_modern_*.py), and the harness adds nothing."""
    steps = 40
    lab = QUADRATIC.simulate(Registry().find(name), [Copy(lr, 0)], steps)[0]
    evals, _, opt = replay(reference, lr, steps, schedule_free=name != "Prodigy")
    assert lab.curves["eval_loss"] == evals
    if name == "Prodigy":
        assert lab.metrics["estimated_lr"] == opt.param_groups[0]["d"] * lr


def test_cosine_baselines_are_adamw_under_torchs_cosine_annealing():
    """The baseline is momentopt's AdamW stepped by torch's CosineAnnealingLR over the run,
    α_t = α·½(1 + cos(πt/T))."""
    torch.manual_seed(0)
    start = torch.randn(5)
    mine, ref = start.clone().requires_grad_(), start.clone().requires_grad_()
    opt = AdamWCosine([mine], lr=0.1, total_steps=8)
    torch_opt = momentopt.AdamW([ref], lr=0.1)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(torch_opt, T_max=8)
    lrs = []
    for _ in range(8):
        g = torch.randn(5)
        mine.grad, ref.grad = g.clone(), g.clone()
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        torch_opt.step()
        schedule.step()
    assert torch.equal(mine, ref)
    assert lrs == pytest.approx([0.1 * 0.5 * (1 + math.cos(math.pi * t / 8)) for t in range(8)])
    assert "cos(π·t/T)" in dict(opt.describe())["3. step"]
    assert MomentumCosine([torch.zeros(1, requires_grad=True)]).param_groups[0]["momentum"] == 0.9
    with pytest.raises(ValueError, match="total_steps must be an int >= 1"):
        AdamWCosine([torch.zeros(1, requires_grad=True)], total_steps=0)
    # the lab's loop tells it the run's horizon
    spec = Registry().find("AdamW+cosine")
    result = QUADRATIC.simulate(spec, [Copy(0.1, 0)], 6)[0]
    assert len(result.loss) == 6


def test_untuned_runs_at_the_default_lr_reuse_the_grid():
    runs = run("noisy-quadratic", ["Prodigy", "ScheduleFreeAdamW", "AdamW"], [1e-3, 0.1], 20)
    assert runs["Prodigy"].grid == [1e-3, 0.01, 0.1]  # the refined grid, for everyone
    assert runs["AdamW"].grid == runs["Prodigy"].grid and not runs["AdamW"].default
    assert runs["Prodigy"].default["lr"] == 1.0
    assert runs["ScheduleFreeAdamW"].default["lr"] == 0.0025
    assert set(runs["Prodigy"].default["metrics"]) >= {"final_loss", "mean_loss", "score"}
    on_grid = run("noisy-quadratic", ["Prodigy"], [0.1, 10.0], 20)["Prodigy"]  # 1 is on it
    index = on_grid.grid.index(1.0)
    assert on_grid.default["metrics"]["final_loss"] == [on_grid.grid_metrics["final_loss"][index]]


def test_end_metrics_and_ratios():
    m = end_metrics([0, 10, 20, 30], [9.0, 4.0, 2.0, 1.0], 30)
    assert m == {"final_loss": 1.0, "mean_loss": pytest.approx(7 / 3)}  # after 27: step 30 only
    assert end_metrics([0, 10, 20], [9.0, math.nan, 1.0], 20)["mean_loss"] == math.inf
    assert end_metrics([0, 5], [1.0, 2.0], 100)["final_loss"] == 2.0  # at least the last one
    assert ratio(math.inf, 1.0) == math.inf and ratio(1.0, math.inf) == 0.0
    c = Comparison("A", "B", [1.0, 1.2, math.inf], [1.0, 1.0, 1.0], 1.1, False, "x", "", "t")
    assert c.passed == [True, False, False]
    assert Comparison("A", "B", [1.0], [1.0], 1.0, True, "x", "", "t").passed == [False]
    assert TOLERANCE == 1.1


# -- verdicts --------------------------------------------------------------------------------
def test_every_claim_measures_its_criteria_on_a_short_run():
    names = ["AdamW", *MODERN_NAMES]
    for experiment in MODERN_EXPERIMENTS:
        runs = run(experiment, names, [1e-3, 0.1], 12, seeds=(0, 1))
        for s in (SCENARIOS[n] for n in MODERN_ORDER if SCENARIOS[n].experiment == experiment):
            v = s.verdict(runs)
            assert len(v.checks) == len(s.criteria) and all(c.status != SKIP for c in v.checks)
            assert [c.criterion for c in v.checks] == list(s.criteria)
            assert all(len(r) == 2 for k, r in v.figures.items() if k.startswith("ratio_"))
            assert v.note  # what else was measured (lrs, controls, test accuracy)
    v = SCENARIOS["lion-digits"].verdict({"AdamW": runs["AdamW"]})
    assert v.verdict == "not checked" and "Lion" in v.note


def test_an_optimizer_that_climbs_does_not_hold():
    """An "optimizer" that climbs (maximize) ends above its start at every lr."""
    runs = run(
        "noisy-quadratic",
        ["AdamW", "Lion"],
        [1e-3, 0.1],
        40,
        seeds=(0, 1),
        swap=['Lion=momentopt:SGD:{"maximize": true}'],
    )
    v = SCENARIOS["lion-quadratic"].verdict(runs)
    assert v.verdict == FAILS
    assert all(r > 10 for r in v.checks[0].figures["ratio_Lion_AdamW"])


def test_schedule_free_without_its_averaging_does_not_hold():
    """AdamW at a constant lr in Schedule-Free's place stalls at its noise floor, which the
    cosine schedule goes below: criterion (1) fails in every seed, (2) is untouched."""
    runs = run(
        "noisy-quadratic",
        ["ScheduleFreeAdamW", "AdamW+cosine", "ScheduleFreeSGD", "Momentum+cosine"],
        [0.01, 0.1],
        300,
        seeds=(0, 1),
        swap=["ScheduleFreeAdamW=momentopt:AdamW"],
    )
    v = SCENARIOS["schedule-free-quadratic"].verdict(runs)
    assert v.checks[0].status == FAIL
    assert all(r > TOLERANCE for r in v.checks[0].figures["ratio_ScheduleFreeAdamW_AdamW+cosine"])


def test_prodigy_without_its_estimate_does_not_hold():
    """Adam in Prodigy's place, at its default lr 1e-3 (no step size of its own to find),
    barely moves in 100 steps: both Prodigy criteria fail."""
    runs = run(
        "noisy-quadratic",
        ["Prodigy", "AdamW"],
        [0.01, 0.1],
        100,
        seeds=(0, 1),
        swap=["Prodigy=momentopt:Adam"],
    )
    assert runs["Prodigy"].default["lr"] == 1e-3
    v = SCENARIOS["prodigy-quadratic"].verdict(runs)
    assert [c.status for c in v.checks] == [FAIL, FAIL] and v.verdict == FAILS


def test_adamw_against_itself_holds_the_matches_claims():
    """The other direction: AdamW under the name Lion (or ADOPT) is AdamW, bit for bit, so
    every ratio is exactly 1 and "matches" holds; AdEMAMix's strict "beats" does not."""
    swap = ["Lion=momentopt:AdamW", "AdEMAMix=momentopt:AdamW"]
    runs = run("digits-final", ["AdamW", "Lion", "AdEMAMix"], [0.01, 0.1], 20, (0, 1), swap)
    lion = SCENARIOS["lion-digits"].verdict(runs)
    assert lion.verdict == HOLDS and lion.checks[0].figures["ratio_Lion_AdamW"] == [1.0, 1.0]
    assert SCENARIOS["ademamix-digits"].verdict(runs).checks[0].status == FAIL
    assert [c.status for c in lion.checks] == [PASS]


def test_verdict_rows_name_the_problem():
    runs = run("noisy-quadratic", ["AdamW", "Lion"], [0.1], 5)
    s = SCENARIOS["lion-quadratic"]
    rows = verdict_rows([s], {s.name: s.verdict(runs)})
    assert rows[2].startswith("| Lion | `lion-quadratic` | (1) tuned: Lion's final loss")


# -- the real budget, on request ---------------------------------------------------------------
@pytest.mark.skipif(
    os.environ.get("MOMENTOPT_LAB_FULL") != "1",
    reason="the comparison at its real budget takes minutes: MOMENTOPT_LAB_FULL=1 to run it",
)
def test_docs_quote_the_modern_runs_figures():
    """docs/lab.md's table of the comparison is the real budget's, row for row (opt-in: about
    3 min of one core; the default suite checks the mechanics above on short runs)."""
    scenarios = [SCENARIOS[n] for n in MODERN_ORDER]
    registry = Registry()
    runs: dict[str, dict[str, Run]] = {}
    for name in MODERN_EXPERIMENTS:
        e = EXPERIMENTS[name]
        names = ["AdamW", "Adam", *MODERN_NAMES]
        runs[name] = {
            spec.name: e.run(spec, lrsearch.grid(), e.default_steps, [0, 1, 2])
            for spec in registry.resolve(names)
        }
    verdicts = {s.name: s.verdict(runs[s.experiment]) for s in scenarios}
    docs = (Path(__file__).parents[2] / "docs" / "lab.md").read_text()
    rows = verdict_rows(scenarios, verdicts)[2:]
    rows += [row for name in MODERN_EXPERIMENTS for row in final_rows(runs[name])[2:]]
    for row in rows:
        assert row in docs, f"docs/lab.md does not have the row\n{row}"
