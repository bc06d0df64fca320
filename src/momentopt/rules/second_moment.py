"""Step 2, ψ: second-moment rules. Each keeps ``V`` and returns the denominator ``√V``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..engine.bundle import Bundle
from ..engine.tensorlist import Tensors, maximum_
from .averages import ema_, ema_of_squares_, plus_eps
from .base import SecondMoment


class NoSecondMoment(SecondMoment):
    """ψ = 1: plain (momentum) SGD."""

    def denominator(self, b: Bundle, g: Tensors) -> None:
        return None

    def formula(self, group: Mapping[str, Any]) -> str:
        return "V = 1"


class AccumulatedSquares(SecondMoment):
    """AdaGrad: ``V ← V + g²`` (state ``sum``, starts at ``initial_accumulator_value``);
    denominator ``√V + ε``.

    Sparse gradients update only their rows. ``start_from_defaults`` reads the starting value
    from the optimizer's defaults rather than the group, as torch.optim's Adagrad does.
    """

    hyperparameters = {"eps": 1e-10, "initial_accumulator_value": 0.0}

    def __init__(self, start_from_defaults: bool = False) -> None:
        self.start_from_defaults = start_from_defaults

    def init_state(
        self, param: Tensor, group: Mapping[str, Any], state: dict[str, Any], defaults: Mapping[str, Any]
    ) -> None:
        source = defaults if self.start_from_defaults else group
        start = source.get("initial_accumulator_value", 0.0)
        value = complex(start, start) if torch.is_complex(param) else start
        state["sum"] = torch.full_like(param, value, memory_format=torch.preserve_format)

    def denominator(self, b: Bundle, g: Tensors) -> Tensors:
        total, eps = b.state("sum"), b.hp["eps"]
        if g.is_sparse:
            total.add_(torch.sparse_coo_tensor(g._indices(), g._values().pow(2), g.size()))
            masked = total.sparse_mask(g)
            return torch.sparse_coo_tensor(
                masked._indices(), masked._values().sqrt_().add_(eps), g.size()
            )
        total.addcmul_(g, g, value=1)
        return plus_eps(total.sqrt(), eps, b.differentiable)

    def formula(self, group: Mapping[str, Any]) -> str:
        return "V ← V + g²   (sum);  √V + ε"

    def __repr__(self) -> str:
        return f"AccumulatedSquares(start_from_defaults={self.start_from_defaults})"


class SquaredAverage(SecondMoment):
    """RMSProp: ``V ← α·V + (1−α)·g²`` (``square_avg``); denominator ``√V + ε``.

    ``centered`` also keeps ``ḡ ← α·ḡ + (1−α)·g`` (``grad_avg``) and uses ``√(V − ḡ²) + ε``.
    """

    hyperparameters = {"alpha": 0.99, "eps": 1e-8, "centered": False}

    def init_state(
        self, param: Tensor, group: Mapping[str, Any], state: dict[str, Any], defaults: Mapping[str, Any]
    ) -> None:
        state["square_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        if group["centered"]:
            state["grad_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def denominator(self, b: Bundle, g: Tensors) -> Tensors:
        alpha = b.hp["alpha"]
        square_avg = ema_of_squares_(b.state("square_avg"), g, alpha)
        if b.hp["centered"]:
            grad_avg = ema_(b.state("grad_avg"), g, alpha)
            root = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
        else:
            root = square_avg.sqrt()
        return plus_eps(root, b.hp["eps"], b.differentiable)

    def formula(self, group: Mapping[str, Any]) -> str:
        if group["centered"]:
            return "V ← α·V + (1−α)·g²;  ḡ ← α·ḡ + (1−α)·g;  √(V − ḡ²) + ε"
        return "V ← α·V + (1−α)·g²   (square_avg);  √V + ε"


class RootMeanSquare(SecondMoment):
    """AdaDelta: ``V ← ρ·V + (1−ρ)·g²`` (``square_avg``); denominator ``√(V + ε)``."""

    hyperparameters = {"rho": 0.9, "eps": 1e-6}

    def init_state(
        self, param: Tensor, group: Mapping[str, Any], state: dict[str, Any], defaults: Mapping[str, Any]
    ) -> None:
        state["square_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def denominator(self, b: Bundle, g: Tensors) -> Tensors:
        square_avg = ema_of_squares_(b.state("square_avg"), g, b.hp["rho"])
        return square_avg.add(b.hp["eps"]).sqrt_()

    def formula(self, group: Mapping[str, Any]) -> str:
        return "V ← ρ·V + (1−ρ)·g²   (square_avg);  √(V + ε)"


class BiasCorrectedSquaredAverage(SecondMoment):
    """Adam: ``v ← β2·v + (1−β2)·g²`` (``exp_avg_sq``); denominator ``√(v̂/(1−β2^t)) + ε``.

    ``amsgrad`` keeps the running maximum ``v̂ = max(v̂, v)`` (``max_exp_avg_sq``) and uses it
    in place of ``v``.
    """

    hyperparameters = {"betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False}

    def init_state(
        self, param: Tensor, group: Mapping[str, Any], state: dict[str, Any], defaults: Mapping[str, Any]
    ) -> None:
        state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        if group.get("amsgrad", False):
            state["max_exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def denominator(self, b: Bundle, g: Tensors) -> Tensors:
        _, beta2 = b.hp["betas"]
        v = ema_of_squares_(b.state("exp_avg_sq"), g, beta2)
        if b.hp.get("amsgrad", False):
            v = maximum_(b.state("max_exp_avg_sq"), v, b.differentiable)
        correction_sqrt = (1 - beta2**b.step) ** 0.5
        return v.sqrt().div(correction_sqrt).add_(b.hp["eps"])

    def formula(self, group: Mapping[str, Any]) -> str:
        line = "v ← β2·v + (1−β2)·g²   (exp_avg_sq)"
        if group.get("amsgrad", False):
            line += ";  v̂ ← max(v̂, v)   (max_exp_avg_sq)"
        return line + ";  √(v/(1−β2^t)) + ε"
