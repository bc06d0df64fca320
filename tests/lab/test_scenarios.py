"""Each scenario's claim as a numeric assertion on a short run (fair: same grid for all)."""

from __future__ import annotations

import math

import pytest
import torch

from momentopt.lab import lrsearch
from momentopt.lab.optimizers import BY_NAME, resolve
from momentopt.lab.scenarios import SCENARIOS, UnknownScenario
from momentopt.lab.scenarios import resolve as resolve_scenarios
from momentopt.lab.scenarios.base import run_grid
from momentopt.lab.scenarios.reddi import gradient_at
from momentopt.lab.scenarios.surfaces import sign_flips, zigzag

GRID = lrsearch.grid()


def runs_of(name, optimizers, steps=None, lrs=GRID, seed=0):
    scenario = SCENARIOS[name]
    runs = {
        s.name: scenario.run(s, lrs, steps or scenario.default_steps, seed)
        for s in resolve(optimizers)
    }
    return runs, scenario.verdict(runs)


def test_registry_and_unknown_scenario():
    assert list(SCENARIOS) == [
        "ravine",
        "rosenbrock",
        "saddle",
        "sparse",
        "effective-lr",
        "reddi",
        "weight-decay",
        "digits",
    ]
    with pytest.raises(UnknownScenario, match="unknown scenario 'nope'"):
        resolve_scenarios(["nope"])


def test_zigzag_measures():
    assert zigzag([[0, 1], [0, 0.5], [0, 0]]) == 1.0
    assert zigzag([[0, 1], [0, -1], [0, 0]]) == 3.0
    assert sign_flips([[0, 1], [0, -1], [0, 0.5], [0, 0.4]]) == 2


def test_ravine_sgd_zigzags_most_often_nesterov_least():
    runs, verdict = runs_of("ravine", ["SGD", "Momentum", "Nesterov"])
    flips = verdict.numbers["sign_flips"]
    assert flips["SGD"] > flips["Momentum"] > flips["Nesterov"]
    assert flips["SGD"] >= 140  # every step swings back across the ravine
    assert verdict.holds
    # measured, not the claim: heavy-ball momentum's swings are wider than SGD's
    swing = verdict.numbers["zigzag"]
    assert swing["Momentum"] > swing["Nesterov"]
    assert swing["Momentum"] > swing["SGD"]


def test_rosenbrock_and_saddle():
    runs, verdict = runs_of("rosenbrock", ["SGD", "Momentum", "Adam"])
    d = verdict.numbers["distance_to_minimum"]
    assert d["Adam"] < 0.5 < d["SGD"] and d["Momentum"] < d["SGD"]
    assert len(runs["Adam"].extra["trajectory"]) == SCENARIOS["rosenbrock"].default_steps + 1
    runs, verdict = runs_of("saddle", ["SGD", "Adam"])
    e = verdict.numbers["escape_step"]
    assert e["Adam"] < e["SGD"] and verdict.holds


def test_sparse_features_adagrad_and_adam_beat_sgd():
    runs, verdict = runs_of("sparse", ["SGD", "Adagrad", "Adam"], steps=200)
    loss = verdict.numbers["final_loss"]
    assert loss["Adagrad"] < loss["SGD"] - 0.05
    assert loss["Adam"] < loss["SGD"] - 0.05
    assert verdict.holds


def test_effective_lr_adagrad_decays_rmsprop_adadelta_do_not():
    runs, verdict = runs_of("effective-lr", ["Adagrad", "RMSprop", "Adadelta"])
    ratio = verdict.numbers["lr_eff_ratio"]
    assert ratio["Adagrad"] < 0.5
    assert ratio["RMSprop"] > 0.5 and ratio["Adadelta"] > 1.0
    eff = runs["Adagrad"].curves["lr_eff_q50"]
    assert all(
        b <= a * (1 + 1e-9) for a, b in zip(eff, eff[1:], strict=False)
    )  # monotone: Σg² only grows
    assert verdict.holds


def test_reddi_adam_goes_to_the_worst_point_amsgrad_towards_the_optimum():
    """Reddi et al.'s problem, β = (0.9, 0.99), x0 = 0, lr 0.0316 for both, 20 periods."""
    ends = {}
    for name in ("Adam", "AMSGrad"):
        trace = run_grid(
            BY_NAME[name],
            [0.0316],
            2020,
            init=lambda: [torch.zeros(1, dtype=torch.float64, requires_grad=True)],
            losses=lambda copies, t: gradient_at(t) * copies[0][0],
            optimizer_kwargs={"betas": (0.9, 0.99)},
            after_step=lambda copies, t: copies[0][0].clamp_(-1, 1),
            watch=lambda copies, t: float(copies[0][0].detach()),
        )
        ends[name] = sum(trace.watched[-101:]) / 101
    assert ends["Adam"] > 0.9
    assert ends["AMSGrad"] < 0.0


def test_reddi_scenario_reports_every_lr():
    runs, verdict = runs_of("reddi", ["Adam", "AMSGrad"])  # default: 808 steps, 8 periods
    by_lr = verdict.numbers["x_by_lr"]
    assert list(by_lr["Adam"]) == [f"{lr:g}" for lr in GRID]
    assert by_lr["Adam"]["0.1"] > 0.5 and by_lr["AMSGrad"]["0.1"] < -0.2
    assert verdict.holds
    # measured, not claimed: tuned on the online loss both pick the smallest lr and stay near 0
    assert abs(runs["Adam"].metrics["x_final_mean"]) < 0.05


def test_weight_decay_coupled_vs_decoupled():
    runs, verdict = runs_of("weight-decay", ["SGD", "Adam", "AdamW"], steps=100)
    spread = verdict.numbers["decay_spread"]
    assert spread["Adam"] > 100  # L2 through 1/√V: decay depends on the gradient scale
    assert spread["AdamW"] == pytest.approx(1.0, rel=1e-3)  # decoupled: α·λ for every weight
    adamw = runs["AdamW"]
    assert adamw.metrics["decay_at_small_grad"] == pytest.approx(adamw.lr * 1e-2, rel=1e-3)
    adam = runs["Adam"]
    assert adam.metrics["decay_at_small_grad"] > 100 * adam.metrics["decay_at_large_grad"]
    assert spread["SGD"] < 2  # plain SGD: coupled = decoupled up to noise
    assert verdict.holds


def test_digits_mlp_learns():
    runs, verdict = runs_of("digits", ["SGD", "Adam"], steps=120, lrs=[0.01, 0.1, 1.0])
    for run in runs.values():
        assert run.metrics["test_acc"] > 0.9
        assert run.curves["train_loss"][-1] < run.curves["train_loss"][0]
        assert math.isfinite(run.metrics["test_loss"])
    assert runs["Adam"].lr in (0.01, 0.1, 1.0)


def test_diverging_copies_do_not_poison_the_grid():
    runs, _ = runs_of("ravine", ["SGD"], steps=120, lrs=[0.01, 10.0])  # 1500^t overflows
    run = runs["SGD"]
    assert run.lr == 0.01 and run.scores[1] == math.inf
