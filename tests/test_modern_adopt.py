"""momentopt.ADOPT against torch-adopt 0.1.0's ``adopt.ADOPT`` (its reference implementation):
the trajectories and state of a table of hyperparameters, loading checkpoints both ways, the
checks, and the paths agreeing bit for bit."""

from __future__ import annotations

import copy
import inspect
from typing import Any

import pytest
import torch
from adopt import ADOPT as ReferenceADOPT
from torch import nn

import momentopt
from momentopt.algorithms.adopt import default_clip

from .modern_reference import compare, executors_agree, train_hand

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch._utils.is_compiling` is deprecated"),
    pytest.mark.filterwarnings("ignore:Use _accelerator_graph_capture_health_check"),
]

CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "lr-betas-eps": {"lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-3},
    "coupled-decay": {"lr": 1e-3, "weight_decay": 0.1},
    "decoupled-decay": {"lr": 1e-3, "weight_decay": 0.1, "decouple": True},
    "no-clipping": {"lr": 1e-3, "clip_lambda": None},
    "tight-clipping": {"lr": 1e-3, "clip_lambda": lambda step: 0.05 * step},
}


@pytest.mark.parametrize("name", CONFIGS)
def test_matches_torch_adopt(name: str) -> None:
    kwargs = CONFIGS[name]
    compare(
        lambda p: momentopt.ADOPT(p, **kwargs),
        lambda p: ReferenceADOPT(p, **kwargs),
        exact_state=("step",),
    )


def test_maximize() -> None:
    kwargs = {"lr": 1e-3, "weight_decay": 0.1, "maximize": True}
    compare(
        lambda p: momentopt.ADOPT(p, **kwargs),
        lambda p: ReferenceADOPT(p, **kwargs),
        exact_state=("step",),
        dtypes=(torch.float64,),
    )


def test_multi_tensor_keeps_each_parameters_count() -> None:
    """foreach=True counts each parameter's steps (a parameter that missed steps starts later),
    as torch-adopt's default per-parameter path does."""
    compare(
        lambda p: momentopt.ADOPT(p, lr=1e-3, foreach=True),
        lambda p: ReferenceADOPT(p, lr=1e-3, foreach=False),
        exact_state=("step",),
        dtypes=(torch.float64,),
        model=False,
    )


def test_first_step_only_starts_the_second_moment() -> None:
    p = nn.Parameter(torch.randn(4))
    before = p.detach().clone()
    opt = momentopt.ADOPT([p], weight_decay=0.5, decouple=True)
    p.grad = torch.randn(4)
    opt.step()
    assert torch.equal(p, before)
    assert torch.equal(opt.state[p]["exp_avg_sq"], p.grad * p.grad)
    assert not opt.state[p]["exp_avg"].any()


def test_executors_bit_for_bit() -> None:
    executors_agree(momentopt.ADOPT, {"lr": 1e-3, "weight_decay": 0.1, "decouple": True})


def test_checkpoints_load_both_ways() -> None:
    kwargs = {"lr": 1e-3, "weight_decay": 0.1}
    for first, second in ((ReferenceADOPT, momentopt.ADOPT), (momentopt.ADOPT, ReferenceADOPT)):
        (pa, a), (pb, b) = train_hand(
            [lambda p: first(p, **kwargs), lambda p: first(p, **kwargs)], torch.float64, 10
        )
        moved = [nn.Parameter(p.detach().clone()) for p in pb]
        c = second(moved, **kwargs)
        c.load_state_dict(b.state_dict())
        g = torch.Generator().manual_seed(5)
        for _ in range(5):
            for p, q in zip(pa, moved, strict=True):
                p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
                q.grad = p.grad.clone()
            a.step()
            c.step()
        for p, q in zip(pa, moved, strict=True):
            assert torch.equal(p, q)


def test_clip_lambda_stays_with_the_optimizer() -> None:
    """Not in the groups (torch-adopt keeps it on the optimizer): a copy keeps it, and loading
    a state_dict does not reset it."""
    clip = lambda step: 0.1  # noqa: E731
    p = nn.Parameter(torch.randn(3))
    opt = momentopt.ADOPT([p], clip_lambda=clip)
    assert "clip_lambda" not in opt.param_groups[0]
    opt.load_state_dict(opt.state_dict())
    assert opt.clip_lambda is clip
    assert copy.deepcopy(opt).clip_lambda is clip
    assert default_clip(16.0) == 2.0


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"lr": -1e-3}, ValueError, "Invalid learning rate: -0.001"),
        ({"eps": -1.0}, ValueError, "Invalid epsilon value: -1.0"),
        ({"betas": (1.0, 0.9)}, ValueError, "Invalid beta parameter at index 0: 1.0"),
        ({"betas": (0.9, -0.1)}, ValueError, "Invalid beta parameter at index 1: -0.1"),
        ({"weight_decay": -1.0}, ValueError, "Invalid weight_decay value: -1.0"),
        (
            {"lr": torch.tensor(1e-3), "foreach": True},
            ValueError,
            "lr as a Tensor is not supported for capturable=False and foreach=True",
        ),
        ({"lr": torch.tensor([1e-3, 1e-3])}, ValueError, "Tensor lr must be 1-element"),
    ],
)
def test_invalid_hyperparameters(kwargs: dict[str, Any], error: type, match: str) -> None:
    p = nn.Parameter(torch.randn(3))
    with pytest.raises(error, match=match):
        ReferenceADOPT([p], **kwargs)
    with pytest.raises(error, match=match):
        momentopt.ADOPT([p], **kwargs)


def test_refusals_at_the_step() -> None:
    p = nn.Parameter(torch.randn(3))
    p.grad = torch.randn(3).to_sparse()
    for cls in (ReferenceADOPT, momentopt.ADOPT):
        with pytest.raises(RuntimeError, match="ADOPT does not support sparse gradients"):
            cls([p]).step()
    p.grad = torch.randn(3)
    with pytest.raises(ValueError):
        momentopt.ADOPT([p], betas=(0.9, 0.99, 0.999)).step()


def test_signature_and_state() -> None:
    ours = inspect.signature(momentopt.ADOPT).parameters
    theirs = inspect.signature(ReferenceADOPT).parameters
    assert list(ours) == [*theirs, "cautious", "state_precision"]
    for name in theirs:
        assert ours[name].kind == theirs[name].kind, name
        if name != "clip_lambda":  # (a lambda there, a function that pickles here)
            assert ours[name].default == theirs[name].default, name
    p = nn.Parameter(torch.randn(3))
    p.grad = torch.randn(3)
    opt, ref = momentopt.ADOPT([p]), ReferenceADOPT([nn.Parameter(p.detach().clone())])
    assert opt.defaults == ref.defaults
    opt.step()
    assert list(opt.state[p]) == ["step", "exp_avg", "exp_avg_sq"]
