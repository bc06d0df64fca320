"""torch.optim.lr_scheduler drives momentopt exactly as it drives torch.optim."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.optim import lr_scheduler as S

from ..helpers import assert_close_report
from .common import (
    ALGORITHMS,
    KWARGS,
    PAIRS,
    TOL,
    assert_params_close,
    batches,
    loss_fn,
    tiny_model,
    twin,
)

STEPS = 8
Schedulers = list[Any]


def _step_all(scheds: Schedulers, loss: torch.Tensor) -> None:
    for s in scheds:
        if isinstance(s, S.ReduceLROnPlateau):
            s.step(loss.item())
        else:
            s.step()


SCHEDULES: dict[str, Callable[[torch.optim.Optimizer], Schedulers]] = {
    "StepLR": lambda o: [S.StepLR(o, step_size=2, gamma=0.5)],
    "CosineAnnealingLR": lambda o: [S.CosineAnnealingLR(o, T_max=5, eta_min=1e-4)],
    "ReduceLROnPlateau": lambda o: [S.ReduceLROnPlateau(o, patience=0, factor=0.5, threshold=0.5)],
    "LambdaLR": lambda o: [S.LambdaLR(o, lambda e: 0.8**e)],
    "SequentialLR": lambda o: [
        S.SequentialLR(
            o,
            [S.LinearLR(o, start_factor=0.2, total_iters=3), S.ExponentialLR(o, 0.7)],
            milestones=[3],
        )
    ],
    "ChainedScheduler": lambda o: [
        S.ChainedScheduler([S.ConstantLR(o, factor=0.5, total_iters=4), S.ExponentialLR(o, 0.9)])
    ],
    "two_schedulers": lambda o: [S.StepLR(o, step_size=3, gamma=0.3), S.ExponentialLR(o, 0.9)],
    "OneCycleLR_no_momentum": lambda o: [
        S.OneCycleLR(o, max_lr=0.05, total_steps=STEPS, cycle_momentum=False)
    ],
}


def _lrs(opt: torch.optim.Optimizer) -> list[float]:
    return [float(g["lr"]) for g in opt.param_groups]


def _run(name: str, make: Callable[[torch.optim.Optimizer], Schedulers], **overrides: Any) -> None:
    model_t, opt_t, model_o, opt_o = twin(name, **overrides)
    sched_t, sched_o = make(opt_t), make(opt_o)
    for x, y in batches(STEPS):
        for model, opt, scheds in ((model_t, opt_t, sched_t), (model_o, opt_o, sched_o)):
            opt.zero_grad()
            loss = loss_fn(model, x, y)
            loss.backward()
            opt.step()
            _step_all(scheds, loss)
        assert _lrs(opt_o) == pytest.approx(_lrs(opt_t), rel=1e-12)
        assert_params_close(model_t, model_o)
    for st, so in zip(sched_t, sched_o, strict=True):
        assert st.get_last_lr() == pytest.approx(so.get_last_lr(), rel=1e-12)


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize("name", ALGORITHMS)
def test_scheduler_matches_torch(name: str, schedule: str) -> None:
    _run(name, SCHEDULES[schedule])


def _has_momentum(name: str) -> bool:
    defaults = PAIRS[name][0]([torch.zeros(1, requires_grad=True)]).defaults
    return "momentum" in defaults or "betas" in defaults


@pytest.mark.parametrize("name", ALGORITHMS)
def test_one_cycle_cycles_momentum_like_torch(name: str) -> None:
    torch_cls, our_cls = PAIRS[name]
    probe = [torch.zeros(1, requires_grad=True)]
    ours_has = "momentum" in our_cls(probe).defaults or "betas" in our_cls(probe).defaults
    assert ours_has == _has_momentum(name)
    make = lambda o: [
        S.OneCycleLR(o, max_lr=0.05, total_steps=STEPS, base_momentum=0.7, max_momentum=0.95)
    ]
    if not ours_has:  # Adagrad, Adadelta: torch refuses, so do we, with torch's message
        with pytest.raises(ValueError) as torch_error:
            make(torch_cls(tiny_model().parameters(), **KWARGS[name]))
        with pytest.raises(ValueError) as our_error:
            make(our_cls(tiny_model().parameters(), **KWARGS[name]))
        assert str(our_error.value) == str(torch_error.value)
        return
    model_t, opt_t, model_o, opt_o = twin(name)
    sched_t, sched_o = make(opt_t), make(opt_o)
    key = "betas" if "betas" in opt_t.defaults else "momentum"
    for x, y in batches(STEPS - 1):
        for model, opt, scheds in ((model_t, opt_t, sched_t), (model_o, opt_o, sched_o)):
            opt.zero_grad()
            loss_fn(model, x, y).backward()
            opt.step()
            _step_all(scheds, torch.zeros(()))
        assert opt_o.param_groups[0][key] == pytest.approx(opt_t.param_groups[0][key], rel=1e-12)
        assert_params_close(model_t, model_o)
    assert opt_o.param_groups[0][key] != pytest.approx(KWARGS[name].get(key, 0.9))  # it did cycle


@pytest.mark.parametrize("name", ALGORITHMS)
def test_scheduler_and_optimizer_state_dict_round_trip(name: str) -> None:
    """Stop mid-run, save both state_dicts, resume in fresh objects: same as never stopping,
    and the same as torch.optim doing it."""
    make = lambda o: [
        S.SequentialLR(o, [S.LinearLR(o, 0.3, total_iters=3), S.CosineAnnealingLR(o, 6)], [3])
    ]
    data = batches(STEPS)
    model_t, opt_t, model_o, opt_o = twin(name)
    sched_t, sched_o = make(opt_t), make(opt_o)

    def run(model: Any, opt: Any, scheds: Schedulers, part: list[Any]) -> None:
        for x, y in part:
            opt.zero_grad()
            loss = loss_fn(model, x, y)
            loss.backward()
            opt.step()
            _step_all(scheds, loss)

    run(model_t, opt_t, sched_t, data)
    run(model_o, opt_o, sched_o, data[:4])
    saved = copy.deepcopy(
        {"model": model_o.state_dict(), "opt": opt_o.state_dict(), "sched": sched_o[0].state_dict()}
    )
    resumed = tiny_model(seed=123)
    resumed.load_state_dict(saved["model"])
    opt_r = PAIRS[name][1](resumed.parameters(), **KWARGS[name])
    sched_r = make(opt_r)
    opt_r.load_state_dict(saved["opt"])
    sched_r[0].load_state_dict(saved["sched"])
    run(resumed, opt_r, sched_r, data[4:])
    run(model_o, opt_o, sched_o, data[4:])
    assert_params_close(model_t, resumed)
    assert_params_close(resumed, model_o, "resumed", rtol=0.0, atol=0.0)
    assert _lrs(opt_r) == pytest.approx(_lrs(opt_t), rel=1e-12)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_tensor_lr_changed_in_place_by_scheduler(name: str) -> None:
    lr = KWARGS[name]["lr"]
    torch_cls, our_cls = PAIRS[name]
    kwargs = {k: v for k, v in KWARGS[name].items() if k != "lr"}
    model_t, model_o = tiny_model(), tiny_model()
    opt_t = torch_cls(model_t.parameters(), lr=torch.tensor(lr), **kwargs)
    opt_o = our_cls(model_o.parameters(), lr=torch.tensor(lr), **kwargs)
    lr_tensor = opt_o.param_groups[0]["lr"]
    sched_t = [S.StepLR(opt_t, step_size=2, gamma=0.5)]
    sched_o = [S.StepLR(opt_o, step_size=2, gamma=0.5)]
    for x, y in batches(STEPS):
        for model, opt, scheds in ((model_t, opt_t, sched_t), (model_o, opt_o, sched_o)):
            opt.zero_grad()
            loss_fn(model, x, y).backward()
            opt.step()
            _step_all(scheds, torch.zeros(()))
        assert_params_close(model_t, model_o)
    assert opt_o.param_groups[0]["lr"] is lr_tensor  # the same tensor, changed in place
    assert float(lr_tensor) == pytest.approx(lr * 0.5**4)
    assert_close_report(opt_o.param_groups[0]["lr"], opt_t.param_groups[0]["lr"], "lr", **TOL)
