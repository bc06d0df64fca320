"""momentopt.ScheduleFreeAdamW and ScheduleFreeSGD against schedulefree 1.4.1's
``AdamWScheduleFree`` and ``SGDScheduleFree`` (the reference implementation): trajectories,
state and the group's counters over a table of hyperparameters, with train/eval switches mid-run
and at the end, checkpoints both ways, and the checks."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch
from schedulefree import AdamWScheduleFree, SGDScheduleFree
from torch import nn

import momentopt

from .modern_reference import compare, executors_agree, train_hand

PAIRS = {
    "AdamW": (momentopt.ScheduleFreeAdamW, AdamWScheduleFree),
    "SGD": (momentopt.ScheduleFreeSGD, SGDScheduleFree),
}
COUNTERS = ("k", "train_mode", "weight_sum", "lr_max", "scheduled_lr")

CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ("AdamW", {}),
    ("AdamW", {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-6, "warmup_steps": 10}),
    ("AdamW", {"lr": 1e-2, "weight_decay": 0.1, "r": 1.0, "weight_lr_power": 1.0}),
    ("AdamW", {"lr": 1e-2, "warmup_steps": 5, "foreach": False}),
    ("SGD", {"lr": 0.05}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.05, "warmup_steps": 8}),
    ("SGD", {"lr": 0.05, "r": 2.0, "weight_lr_power": 0.0, "foreach": False}),
]


def _training(opt: torch.optim.Optimizer) -> torch.optim.Optimizer:
    opt.train()  # type: ignore[attr-defined]
    return opt


def _switch(step: int, opts: Any) -> None:
    """Evaluate mid-run: eval() then train() before steps 10 and 20 (at 20, each twice)."""
    for opt in opts if step in (10, 20) else ():
        for _ in range(1 + (step == 20)):
            opt.eval()
        for _ in range(1 + (step == 20)):
            opt.train()


def _eval(opts: Any) -> None:
    for opt in opts:
        opt.eval()
    for opt in opts[1:]:  # the group's counters as schedulefree keeps them
        for key in COUNTERS:
            assert opts[0].param_groups[0][key] == opt.param_groups[0][key], key


@pytest.mark.parametrize(
    "name, kwargs", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)]
)
def test_matches_schedulefree(name: str, kwargs: dict[str, Any]) -> None:
    ours, theirs = PAIRS[name]
    compare(
        lambda p: _training(ours(p, **kwargs)),
        lambda p: _training(theirs(p, **kwargs)),
        hook=_switch,
        after=_eval,
    )


@pytest.mark.parametrize("name", PAIRS)
def test_maximize(name: str) -> None:
    ours, theirs = PAIRS[name]
    compare(
        lambda p: _training(ours(p, lr=1e-2, weight_decay=0.1, maximize=True)),
        lambda p: _training(theirs(p, lr=1e-2, weight_decay=0.1)),
        maximize=True,
        dtypes=(torch.float64,),
        after=_eval,
    )


@pytest.mark.parametrize("name", PAIRS)
def test_groups_count_their_steps_without_gradients(name: str) -> None:
    """Every group's counters advance at every step, also while none of its parameters has a
    gradient (the 0-d parameter, alone in its group, misses every fourth one)."""
    ours, theirs = PAIRS[name]

    def groups(cls: type, params: Any) -> torch.optim.Optimizer:
        p = list(params)
        return _training(
            cls([{"params": p[:2]}, {"params": [p[2]], "lr": 5e-3}, {"params": [p[3]]}], lr=1e-2)
        )

    compare(
        lambda p: groups(ours, p),
        lambda p: groups(theirs, p),
        dtypes=(torch.float64,),
        model=False,
        after=lambda opts: [
            opts[0].param_groups[i][key] == opts[1].param_groups[i][key] or pytest.fail(key)
            for i in range(3)
            for key in COUNTERS
        ],
    )


@pytest.mark.parametrize("name", PAIRS)
def test_executors_bit_for_bit(name: str) -> None:
    ours, _ = PAIRS[name]
    executors_agree(lambda p, **kw: _training(ours(p, **kw)), {"lr": 1e-2, "weight_decay": 0.1})


@pytest.mark.parametrize("name", PAIRS)
def test_checkpoints_load_both_ways(name: str) -> None:
    """Saved in eval mode, as schedulefree asks: loaded into the other, both train on alike."""
    ours, theirs = PAIRS[name]
    kwargs = {"lr": 1e-2, "warmup_steps": 4}
    for first, second in ((theirs, ours), (ours, theirs)):
        (pa, a), (pb, b) = train_hand(
            [lambda p: _training(first(p, **kwargs)), lambda p: _training(first(p, **kwargs))],
            torch.float64,
            8,
        )
        a.eval()
        b.eval()
        moved = [nn.Parameter(p.detach().clone()) for p in pb]
        c = second(moved, **kwargs)
        c.load_state_dict(b.state_dict())
        a.train()
        c.train()
        gen = torch.Generator().manual_seed(5)
        for _ in range(5):
            for p, q in zip(pa, moved, strict=True):
                p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
                q.grad = p.grad.clone()
            a.step()
            c.step()
        for p, q in zip(pa, moved, strict=True):
            assert torch.equal(p, q)
        assert c.param_groups[0]["k"] == 13


@pytest.mark.parametrize("name", PAIRS)
def test_step_needs_train_mode_and_switches_are_idempotent(name: str) -> None:
    ours, theirs = PAIRS[name]
    p = nn.Parameter(torch.randn(3))
    p.grad = torch.randn(3)
    for cls in (ours, theirs):
        with pytest.raises(Exception, match="Optimizer was not in train mode when step is called"):
            cls([p]).step()
    opt = _training(ours([p]))
    opt.step()
    opt.eval()
    x = p.detach().clone()
    opt.eval()
    assert torch.equal(p, x)
    assert list(opt.state[p]) == (["z", "exp_avg_sq"] if name == "AdamW" else ["z"])


@pytest.mark.parametrize(
    "name, kwargs, match",
    [
        ("SGD", {"lr": -1.0}, "Invalid learning rate: -1.0"),
        ("SGD", {"weight_decay": -1.0}, "Invalid weight_decay value: -1.0"),
        ("SGD", {"momentum": 0.0}, "Momentum must be between 0 and 1 exclusive: 0.0"),
        ("SGD", {"momentum": 1.0}, "Momentum must be between 0 and 1 exclusive: 1.0"),
        ("AdamW", {"lr": -1.0}, "Invalid learning rate: -1.0"),
        ("AdamW", {"betas": (0.0, 0.999)}, "Invalid beta parameter at index 0: 0.0"),
        ("AdamW", {"eps": -1.0}, "Invalid epsilon value: -1.0"),
    ],
)
def test_invalid_hyperparameters(name: str, kwargs: dict[str, Any], match: str) -> None:
    """The SGD's checks are schedulefree's (type and text); schedulefree's AdamW checks
    nothing, momentopt's refuses what cannot step (torch's texts)."""
    ours, theirs = PAIRS[name]
    p = nn.Parameter(torch.randn(3))
    if name == "SGD":
        with pytest.raises(ValueError, match=match):
            theirs([p], **kwargs)
    with pytest.raises(ValueError, match=match):
        ours([p], **kwargs)


@pytest.mark.parametrize("name", PAIRS)
def test_signature_and_group_keys(name: str) -> None:
    ours, theirs = PAIRS[name]
    mine = inspect.signature(ours).parameters
    ref = inspect.signature(theirs).parameters
    assert list(mine) == [*ref, "maximize", "fused", "cautious", "state_precision"]
    for key in ref:  # (foreach: None, momentopt's plan chooses the path; theirs True)
        assert mine[key].default == (None if key == "foreach" else ref[key].default), key
    p = nn.Parameter(torch.randn(3))
    keys = list(ours([p]).param_groups[0])
    assert keys == [*theirs([p]).param_groups[0], "maximize", "fused"]
