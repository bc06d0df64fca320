"""torch.optim's conventions that are not math: written once, here.

The rules hold the math and the engine runs any recipe; what makes a recipe behave exactly
like a torch.optim class lives in this module: torch's state_dict key order, which of
torch's fused kernels computes which recipe and how the group's keys map to the kernel's
arguments, the gradient rules every torch.optim class applies, and the texts of torch's
refusals that depend on the class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..engine.recipe import Recipe
from ..engine.torch_kernels import TorchKernel, flag, number
from ..rules.base import AfterUpdate, FirstMoment, GradientRule, LrSchedule, SecondMoment
from ..rules.direction import Cautious
from ..rules.gradient import Maximize, WeightDecay
from ..rules.second_moment import NoSecondMoment

STATE_ORDER = (
    "step",
    "mu_product",
    "square_avg",
    "momentum_buffer",
    "grad_avg",
    "acc_delta",
    "sum",
    "exp_avg",
    "exp_inf",
    "exp_avg_sq",
    "max_exp_avg_sq",
    "row_var",
    "col_var",
    "variance",
    "eta",
    "mu",
    "ax",
    "prev",
    "step_size",
)
"""The order in which torch.optim's classes create their state keys (the state_dict
layout); a class uses the keys of its own recipe."""


def torch_recipe(
    first: FirstMoment,
    second: SecondMoment | None = None,
    *,
    gradient: tuple[GradientRule, ...] | None = None,
    schedule: tuple[LrSchedule, ...] = (),
    after: tuple[AfterUpdate, ...] = (),
    counts_steps: bool = True,
    eager_state: bool = False,
    fill_from_defaults: bool = False,
) -> Recipe:
    """A recipe with torch.optim's conventions: ``maximize`` then weight decay (coupled, or
    as the group's ``decoupled_weight_decay`` says) on the gradient, torch's key order; and
    momentopt's ``cautious`` option (:class:`~momentopt.rules.direction.Cautious`, off unless
    a group sets it)."""
    return Recipe(
        first=first,
        second=NoSecondMoment() if second is None else second,
        gradient=(Maximize(), WeightDecay()) if gradient is None else gradient,
        schedule=schedule,
        after=after,
        direction=(Cautious(),),
        counts_steps=counts_steps,
        eager_state=eager_state,
        state_order=STATE_ORDER,
        fill_from_defaults=fill_from_defaults,
    )


def refuse_complex_and_sparse(name: str, group: Mapping[str, Any]) -> None:
    """The refusals of torch's classes that take neither complex parameters nor sparse
    gradients (Adafactor, Muon), in torch's order: parameter by parameter, complex first."""
    for p in group["params"]:
        if p.grad is None:
            continue
        if torch.is_complex(p):
            raise RuntimeError(f"{name} does not support complex parameters")
        if p.grad.is_sparse:
            raise RuntimeError(f"{name} does not support sparse gradients")


# -- torch's fused kernels -----------------------------------------------------------------
def _adam_states(group: Mapping[str, Any]) -> tuple[str, ...]:
    names = ("exp_avg", "exp_avg_sq")
    return (*names, "max_exp_avg_sq") if group.get("amsgrad") else names


def _adam_arguments(group: Mapping[str, Any]) -> dict[str, Any]:
    beta1, beta2 = group["betas"]  # torch's step unpacks them: betas of another length raise
    return {
        "lr": number(group["lr"]),
        "beta1": number(beta1),
        "beta2": number(beta2),
        "weight_decay": number(group["weight_decay"]),
        "eps": number(group["eps"]),
        "amsgrad": flag(group.get("amsgrad", False)),
        "maximize": flag(group["maximize"]),
    }


def _adam_applies(decoupled: bool) -> Any:
    """Adam or AdamW, without AMSGrad: torch's kernel keeps ``max(v̂_max, v̂)`` without NaN
    (its max drops a NaN that ``torch.maximum`` keeps), so AMSGrad runs the recipe."""
    return lambda group: (
        bool(group.get("decoupled_weight_decay")) == decoupled and not group.get("amsgrad")
    )


FUSED_ADAM = TorchKernel(
    "_fused_adam_",
    applies=_adam_applies(decoupled=False),
    states=_adam_states,
    arguments=_adam_arguments,
    state_lists=3,
    flags=("amsgrad", "maximize"),
)
FUSED_ADAMW = TorchKernel(
    "_fused_adamw_",
    applies=_adam_applies(decoupled=True),
    states=_adam_states,
    arguments=_adam_arguments,
    state_lists=3,
    flags=("amsgrad", "maximize"),
)
FUSED_SGD = TorchKernel(
    "_fused_sgd_",
    # plain SGD is one foreach op already, and torch's kernel is slower at it
    applies=lambda group: bool(
        group["momentum"] != 0 or group["weight_decay"] != 0 or group["maximize"]
    ),
    states=lambda group: ("momentum_buffer",) if group["momentum"] != 0 else (),
    arguments=lambda group: {
        "weight_decay": number(group["weight_decay"]),
        "momentum": number(group["momentum"]),
        "lr": number(group["lr"]),
        "dampening": number(group["dampening"]) if group["momentum"] != 0 else 0.0,  # unread
        "nesterov": flag(group["nesterov"]),
        "maximize": flag(group["maximize"]),
    },
    takes_steps=False,
    created_in_step="momentum_buffer",
    flags=("nesterov", "maximize"),
)
FUSED_ADAGRAD = TorchKernel(
    "_fused_adagrad_",
    applies=lambda group: True,
    states=lambda group: ("sum",),
    arguments=lambda group: {
        "lr": number(group["lr"]),
        "lr_decay": number(group["lr_decay"]),
        "weight_decay": number(group["weight_decay"]),
        "eps": number(group["eps"]),
        "maximize": flag(group["maximize"]),
    },
    devices=("cpu",),  # torch 2.13 has no CUDA kernel for it
    # its update rounds (lr·g)/(√V+ε) where torch's loop rounds lr·(g/(√V+ε)): a parameter
    # near zero (w ≈ the update) then differs by far more than rounding (found by the fuzz
    # suite), so with default flags the recipe runs instead
    with_default_flags=False,
)


# -- betas as torch's loop takes them -----------------------------------------------------
def shaped_betas(group: Mapping[str, Any]) -> bool:
    """Whether a beta is a tensor of one element that is not 0-d: torch's for-loop of a class
    that does not squeeze its betas (Adamax, RAdam) uses it as it is."""
    return any(isinstance(b, torch.Tensor) and b.dim() > 0 for b in group["betas"])


def loop_stand_in(group: Mapping[str, Any]) -> torch.Tensor:
    """An uninitialized tensor like the real view of the group's first parameter with a
    gradient (the first torch's loop updates), to run torch's ops on: where they refuse a
    value, they raise torch's own error."""
    p = next(p for p in group["params"] if p.grad is not None)
    return torch.empty_like(torch.view_as_real(p) if p.is_complex() else p)
