"""``cautious=True`` on every recipe optimizer and on ``compose``, against a reference written
here from the paper's equations (no package implements it for every optimizer): Liang, Chen,
Liu & Liu, "Cautious Optimizers: Improving Training with One Line of Code" (arXiv:2411.16085,
2024), Algorithm 2, with the normalisation of its reference repository (kyleliang919/C-Optim):

    u = the optimizer's own update at this step (before −α_t), from the same state,
    φ = 1[u ∘ g > 0],   w ← w' − α_t · u ∘ φ / max(mean(φ), 1e-3)

where ``w'`` is ``w`` after the decoupled decay (not masked: C-AdamW shrinks ``w`` first) and
``g`` the gradient the moments see (negated under ``maximize``, plus ``λw`` for coupled
decay). The reference takes ``u`` from the plain algorithm — torch.optim's class, or the
reference package of the newer optimizers — stepped from the cautious run's weights with the
same gradients; so every step of every optimizer is checked, and its state too (the moments
never see the mask). Also: lion-pytorch's own cautious Lion, the default (off) keeping every
number and torch's kernels, the option's life through checkpoints, and compose."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import pytest
import torch
from adopt import ADOPT as ReferenceADOPT
from lion_pytorch.cautious_lion import Lion as CautiousLion
from torch import nn

import momentopt
from momentopt import compose, rules

from .modern_reference import compare, hand_gradients, hand_params
from .test_modern_ademamix import PaperAdEMAMix

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch._utils.is_compiling` is deprecated"),
    pytest.mark.filterwarnings("ignore:Use _accelerator_graph_capture_health_check"),
]

Shrink = Callable[[torch.optim.Optimizer, dict[str, Any], nn.Parameter], torch.Tensor]


def no_decay(opt: torch.optim.Optimizer, group: dict[str, Any], p: nn.Parameter) -> torch.Tensor:
    return p.detach().clone()


def lr_decay(opt: torch.optim.Optimizer, group: dict[str, Any], p: nn.Parameter) -> torch.Tensor:
    """Decoupled decay as torch.optim applies it before the step: ``w·(1 − α·λ)``."""
    return p.detach().mul(1 - group["lr"] * group["weight_decay"])


def asgd_decay(opt: torch.optim.Optimizer, group: dict[str, Any], p: nn.Parameter) -> torch.Tensor:
    """ASGD's ``w·(1 − λ·η)`` with the step size η of this step."""
    eta = opt.state[p]["eta"] if opt.state.get(p) else torch.tensor(group["lr"])  # (float32)
    return p.detach().mul(1 - group["lambd"] * eta.item())


def adopt_decay(opt: torch.optim.Optimizer, group: dict[str, Any], p: nn.Parameter) -> torch.Tensor:
    """torch-adopt's decoupled ``w + (−α·λ)·w`` (from its second step)."""
    if not opt.state.get(p) or opt.state[p]["step"] == 0:
        return p.detach().clone()
    return p.detach().add(p.detach(), alpha=-group["lr"] * group["weight_decay"])


def seen(group: dict[str, Any], p: torch.Tensor, g: torch.Tensor, coupled: bool) -> torch.Tensor:
    """The gradient the moments see: negated under ``maximize``, plus ``λw`` where the decay
    is ``coupled``."""
    g = -g if group.get("maximize") else g
    return g + group["weight_decay"] * p if coupled and group.get("weight_decay") else g


Case = tuple[type, type, dict[str, Any], Shrink]

CASES: dict[str, Case] = {
    "SGD": (
        momentopt.SGD,
        torch.optim.SGD,
        {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1},
        no_decay,
    ),
    "SGD-nesterov-maximize": (
        momentopt.SGD,
        torch.optim.SGD,
        {"lr": 0.05, "momentum": 0.9, "nesterov": True, "maximize": True},
        no_decay,
    ),
    "Adagrad": (
        momentopt.Adagrad,
        torch.optim.Adagrad,
        {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.05},
        no_decay,
    ),
    "Adadelta": (momentopt.Adadelta, torch.optim.Adadelta, {"weight_decay": 0.1}, no_decay),
    "RMSprop": (
        momentopt.RMSprop,
        torch.optim.RMSprop,
        {"lr": 0.01, "momentum": 0.5, "centered": True},
        no_decay,
    ),
    "Adam": (
        momentopt.Adam,
        torch.optim.Adam,
        {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1},
        no_decay,
    ),
    "AdamW": (momentopt.AdamW, torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}, lr_decay),
    "NAdam": (
        momentopt.NAdam,
        torch.optim.NAdam,
        {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
        lr_decay,
    ),
    "Adamax": (momentopt.Adamax, torch.optim.Adamax, {"lr": 0.01, "maximize": True}, no_decay),
    "RAdam": (momentopt.RAdam, torch.optim.RAdam, {"lr": 0.01}, no_decay),
    "Rprop": (momentopt.Rprop, torch.optim.Rprop, {}, no_decay),
    "ASGD": (
        momentopt.ASGD,
        torch.optim.ASGD,
        {"lr": 0.05, "t0": 5.0, "lambd": 1e-3},
        asgd_decay,
    ),
    "Adafactor": (momentopt.Adafactor, torch.optim.Adafactor, {"lr": 0.01}, lr_decay),
    "Muon": (momentopt.Muon, torch.optim.Muon, {"lr": 0.02}, lr_decay),
    "ADOPT": (
        momentopt.ADOPT,
        ReferenceADOPT,
        {"lr": 0.01, "weight_decay": 0.1, "decouple": True},
        adopt_decay,
    ),
    "AdEMAMix": (momentopt.AdEMAMix, PaperAdEMAMix, {"lr": 0.01, "alpha_warmup": 10}, no_decay),
}
NOT_COMPARED = {"ASGD": ("ax",)}
"""State the reference keeps from its own (unmasked) weights: ASGD's average of the iterates."""


def _masked(before: torch.Tensor, after: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The cautious step from ``before`` (after decay) given the plain step to ``after``."""
    delta = after - before  # −α_t·u
    mask = ((-delta) * g > 0).to(delta.dtype)
    return before + delta * (mask / mask.mean().clamp(min=1e-3))


@pytest.mark.parametrize("name", CASES)
def test_every_step_is_the_masked_plain_step(name: str) -> None:
    ours_cls, ref_cls, kwargs, shrink = CASES[name]
    keep = [0, 3] if name == "Muon" else [0, 1, 2, 3]  # (Muon takes matrices only)
    ours_p = [hand_params(torch.float64)[i] for i in keep]
    ref_p = [hand_params(torch.float64)[i] for i in keep]
    ours, ref = ours_cls(ours_p, **kwargs, cautious=True), ref_cls(ref_p, **kwargs)
    group = ref.param_groups[0]
    for step, all_grads in enumerate(hand_gradients(30)):
        grads = [all_grads[i] for i in keep]
        expected = []
        with torch.no_grad():
            for q, p, g in zip(ref_p, ours_p, grads, strict=True):
                q.copy_(p)
                p.grad = q.grad = None if g is None else g.to(torch.float64)
            before = [shrink(ref, group, q) for q in ref_p]
            mask_grads = [
                None if q.grad is None else seen(group, q.clone(), q.grad, shrink is no_decay)
                for q in ref_p
            ]
            ref.step()
            for q, b, g in zip(ref_p, before, mask_grads, strict=True):
                expected.append(q.clone() if g is None else _masked(b, q, g))
        ours.step()
        for i, (p, e) in enumerate(zip(ours_p, expected, strict=True)):
            scale = max(1.0, e.abs().max().item())
            torch.testing.assert_close(
                p.detach(),
                e,
                rtol=0,
                atol=1e-13 * scale,
                msg=lambda m: f"{name} step {step} param {i}: {m}",
            )
    for p, q in zip(ours_p, ref_p, strict=True):
        for key, value in ours.state[p].items():
            if key not in NOT_COMPARED.get(name, ()):
                other = ref.state[q][key]
                torch.testing.assert_close(
                    torch.as_tensor(value).to(torch.float64),
                    torch.as_tensor(other).to(torch.float64),
                    rtol=1e-10,
                    atol=1e-13,
                )


def test_lion_matches_lion_pytorchs_cautious_lion() -> None:
    """lion-pytorch's own cautious Lion (Algorithm 2 with ``cautious_factor=0``; its clamp of
    the mask's mean at 1e-5 instead of 1e-3 changes nothing for tensors of fewer than 1000
    elements, where the mean is 0 or at least 1/1000)."""
    kwargs = {"lr": 1e-3, "weight_decay": 0.1}
    compare(
        lambda p: momentopt.Lion(p, **kwargs, cautious=True),
        lambda p: CautiousLion(p, **kwargs, cautious_factor=0.0),
    )


def test_off_by_default_keeps_numbers_and_torchs_kernels() -> None:
    p = nn.Parameter(torch.randn(300, 300))
    p.grad = torch.randn(300, 300)
    plain, off, on = (
        momentopt.Adam([p]),
        momentopt.Adam([p], cautious=False),
        momentopt.Adam([p], cautious=True),
    )
    assert plain.defaults == off.defaults and "cautious" not in off.defaults
    assert [row["path"] for row in off.explain()] == ["torch kernel"]
    (row,) = on.explain()
    assert row["path"] == "multi-tensor" and "mean" in row["reason"]
    assert "cautious" not in " ".join(f for _, f in off.describe())
    assert "(cautious)" in " ".join(f for _, f in on.describe())


@pytest.mark.parametrize("cls", [momentopt.Adam, momentopt.Lion, momentopt.ADOPT])
def test_paths_agree_bit_for_bit(cls: type) -> None:
    runs = []
    for foreach in (False, True):
        params = hand_params(torch.float32)
        opt = cls(params, lr=1e-2, cautious=True, foreach=foreach)
        for grads in hand_gradients(12):
            for p, g in zip(params, grads, strict=True):
                p.grad = g
            opt.step()
        runs.append(params)
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a, b)


def test_the_option_lives_through_checkpoints_and_copies() -> None:
    """Loading torch's checkpoint (no ``cautious`` key) keeps the optimizer cautious; a
    cautious checkpoint loads into torch.optim (the key is ignored) and makes a momentopt
    optimizer cautious; pickling keeps it."""
    p = nn.Parameter(torch.randn(4))
    p.grad = torch.randn(4)
    plain = torch.optim.Adam([p])
    plain.step()
    ours = momentopt.Adam([p], cautious=True)
    ours.load_state_dict(plain.state_dict())
    assert ours.param_groups[0]["cautious"] is True
    torch.optim.Adam([p]).load_state_dict(ours.state_dict())
    other = momentopt.Adam([p])
    other.load_state_dict(ours.state_dict())
    assert other.param_groups[0]["cautious"] is True
    assert pickle.loads(pickle.dumps(ours)).param_groups[0]["cautious"] is True


def test_compose_takes_the_option() -> None:
    """A composed class takes ``cautious`` as a default and when it is made; SGD's momentum
    composed from its rules, cautious, is momentopt.SGD's cautious step."""
    Momentum = compose(
        "Momentum",
        first=rules.HeavyBall(),
        gradient=(rules.Maximize(), rules.WeightDecay()),
        lr=0.05,
        momentum=0.9,
        cautious=True,
    )
    runs = []
    for make in (
        lambda p: Momentum(p),
        lambda p: momentopt.SGD(p, lr=0.05, momentum=0.9, cautious=True),
    ):
        params = hand_params(torch.float64)
        opt = make(params)
        for grads in hand_gradients(10):
            for p, g in zip(params, grads, strict=True):
                p.grad = None if g is None else g.double()
            opt.step()
        runs.append(params)
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a, b)
    assert Momentum([nn.Parameter(torch.randn(2))], cautious=False).defaults["cautious"] is False


def test_refusals() -> None:
    p = nn.Parameter(torch.randn(3))
    with pytest.raises(TypeError, match="cautious must be True or False"):
        momentopt.Adam([p], cautious=1)
    with pytest.raises(ValueError, match="SparseAdam does not support cautious=True"):
        momentopt.SparseAdam([p], cautious=True)
