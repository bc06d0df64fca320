"""momentopt.AdEMAMix against a reference written here from the paper's equations (no package
exists): Pagliardini, Ablin & Grangier, "The AdEMAMix Optimizer: Better, Faster, Older"
(arXiv:2409.03137, 2024), Algorithm 1, with the warm-up schedulers of the reference
implementation (apple/ml-ademamix, ``linear_warmup_scheduler`` and
``linear_hl_warmup_scheduler``). The reference is written independently of momentopt's rules:
one parameter at a time, in plain torch."""

from __future__ import annotations

import inspect
import math
from typing import Any

import pytest
import torch
from torch import nn

import momentopt

from .modern_reference import compare, executors_agree, train_hand


def alpha_schedule(t: int, alpha: float, warmup: int | None) -> float:
    """Algorithm 1's α(t) scheduler, as the reference implementation writes it: linear from 0
    to α over ``warmup`` steps."""
    if warmup is None or t >= warmup:
        return alpha
    a = t / warmup
    return (1 - a) * 0.0 + a * alpha


def beta3_schedule(t: int, beta3: float, beta1: float, warmup: int | None) -> float:
    """Algorithm 1's β3(t) scheduler, as the reference implementation writes it: from β1 to β3,
    linear in the half-life ``ln ½/ln β − 1`` (the reference's ``+1e-8`` inside the log)."""
    if warmup is None or t >= warmup:
        return beta3

    def half_life(beta: float) -> float:
        return math.log(0.5) / math.log(beta + 1e-8) - 1

    a = t / warmup
    h = (1 - a) * half_life(beta1) + a * half_life(beta3)
    return math.pow(0.5, 1 / (h + 1))


class PaperAdEMAMix(torch.optim.Optimizer):
    """Algorithm 1 of the paper, line by line (one parameter at a time)."""

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
        alpha: float = 2.0,
        beta3_warmup: int | None = None,
        alpha_warmup: int | None = None,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, alpha=alpha, eps=eps, wd=weight_decay))
        self.warmups = (beta3_warmup, alpha_warmup)

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            eta, (b1, b2, b3), lam = group["lr"], group["betas"], group["wd"]
            for theta in group["params"]:
                if theta.grad is None:
                    continue
                g, s = theta.grad, self.state[theta]
                if not s:  # m1 ← 0, m2 ← 0, ν ← 0
                    s["step"] = 0
                    if b1 != 0:
                        s["exp_avg_fast"] = torch.zeros_like(theta)
                    s["exp_avg_slow"] = torch.zeros_like(theta)
                    s["exp_avg_sq"] = torch.zeros_like(theta)
                s["step"] += 1
                t = s["step"]
                alpha_t = alpha_schedule(t, group["alpha"], self.warmups[1])
                beta3_t = beta3_schedule(t, b3, b1, self.warmups[0])
                if b1 != 0:
                    s["exp_avg_fast"] = b1 * s["exp_avg_fast"] + (1 - b1) * g  # m1
                    m1_hat = s["exp_avg_fast"] / (1 - b1**t)
                else:
                    m1_hat = g
                s["exp_avg_slow"] = beta3_t * s["exp_avg_slow"] + (1 - beta3_t) * g  # m2
                s["exp_avg_sq"] = b2 * s["exp_avg_sq"] + (1 - b2) * g * g  # ν
                nu_hat = s["exp_avg_sq"] / (1 - b2**t)
                update = (m1_hat + alpha_t * s["exp_avg_slow"]) / (nu_hat.sqrt() + group["eps"])
                theta.copy_(theta - eta * (update + lam * theta))


CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "non-defaults": {"lr": 3e-3, "betas": (0.8, 0.99, 0.999), "alpha": 5.0, "eps": 1e-6},
    "weight-decay": {"lr": 1e-3, "weight_decay": 0.1},
    "warm-ups": {"lr": 1e-3, "alpha_warmup": 20, "beta3_warmup": 25},
    "beta1-zero": {"lr": 1e-3, "betas": (0.0, 0.999, 0.999), "beta3_warmup": 10},
}


@pytest.mark.parametrize("name", CONFIGS)
def test_matches_the_papers_algorithm(name: str) -> None:
    kwargs = CONFIGS[name]
    compare(
        lambda p: momentopt.AdEMAMix(p, **kwargs),
        lambda p: PaperAdEMAMix(p, **kwargs),
        exact_state=("step",),
    )


def test_schedulers() -> None:
    """α(t) and β3(t): the ends of the warm-ups, and the half-life interpolated linearly."""
    from momentopt.rules.mixed_moments import half_life_warmup, linear_warmup

    assert linear_warmup(5, 2.0, 0.0, 10) == 1.0 == alpha_schedule(5, 2.0, 10)
    assert linear_warmup(10, 2.0, 0.0, 10) == 2.0
    for t in (0, 1, 7, 24, 25, 40):
        assert half_life_warmup(t, 0.9999, 0.9, 25) == beta3_schedule(t, 0.9999, 0.9, 25)
    assert half_life_warmup(0, 0.9999, 0.9, 25) == pytest.approx(0.9, rel=1e-7)
    mid = half_life_warmup(12.5, 0.9999, 0.9, 25)  # half-way: the half-lives' mean
    ends = [math.log(0.5) / math.log(b + 1e-8) for b in (0.9, 0.9999)]
    assert math.log(0.5) / math.log(mid) == pytest.approx(sum(ends) / 2, rel=1e-9)


def test_maximize() -> None:
    kwargs = {"lr": 1e-3, "weight_decay": 0.1, "alpha_warmup": 10}
    compare(
        lambda p: momentopt.AdEMAMix(p, **kwargs, maximize=True),
        lambda p: PaperAdEMAMix(p, **kwargs),
        maximize=True,
        exact_state=("step",),
        dtypes=(torch.float64,),
    )


def test_executors_bit_for_bit() -> None:
    executors_agree(momentopt.AdEMAMix, {"lr": 1e-3, "weight_decay": 0.1, "beta3_warmup": 8})


def test_checkpoints_of_the_reference_layout_load() -> None:
    """A checkpoint of the reference's layout (groups without momentopt's flags, an int
    ``step``) loads, and training goes on identically."""
    kwargs = {"lr": 1e-3, "beta3_warmup": 12, "alpha_warmup": 12}
    (pa, a), (pb, b) = train_hand(
        [lambda p: PaperAdEMAMix(p, **kwargs), lambda p: PaperAdEMAMix(p, **kwargs)],
        torch.float64,
        6,
    )
    saved = b.state_dict()
    for g in saved["param_groups"]:  # the reference's group keys
        g["weight_decay"] = g.pop("wd")
        g.update(eps=1e-8, beta3_warmup=12, alpha_warmup=12)
    moved = [nn.Parameter(p.detach().clone()) for p in pb]
    c = momentopt.AdEMAMix(moved, **kwargs)
    c.load_state_dict(saved)
    gen = torch.Generator().manual_seed(5)
    for _ in range(8):
        for p, q in zip(pa, moved, strict=True):
            p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            q.grad = p.grad.clone()
        a.step()
        c.step()
    for p, q in zip(pa, moved, strict=True):
        torch.testing.assert_close(q, p, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lr": -1.0}, "Invalid learning rate: -1.0"),
        ({"eps": -1.0}, "Invalid epsilon value: -1.0"),
        ({"betas": (0.9, 0.999, 1.0)}, "Invalid beta parameter at index 2: 1.0"),
        ({"betas": (-0.1, 0.999, 0.9)}, "Invalid beta parameter at index 0: -0.1"),
        ({"weight_decay": -1.0}, "Invalid weight_decay value: -1.0"),
        ({"alpha": -1.0}, "Invalid alpha value: -1.0"),
    ],
)
def test_invalid_hyperparameters(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        momentopt.AdEMAMix([nn.Parameter(torch.randn(3))], **kwargs)


def test_signature_state_and_refusals() -> None:
    ours = inspect.signature(momentopt.AdEMAMix).parameters
    assert list(ours) == [
        *("params", "lr", "betas", "alpha", "beta3_warmup", "alpha_warmup", "eps"),
        *("weight_decay", "maximize", "foreach", "fused", "differentiable", "cautious"),
        "state_precision",
    ]
    p = nn.Parameter(torch.randn(3))
    p.grad = torch.randn(3)
    opt = momentopt.AdEMAMix([p])
    opt.step()
    assert list(opt.state[p]) == ["step", "exp_avg_fast", "exp_avg_slow", "exp_avg_sq"]
    with pytest.raises(ValueError):
        momentopt.AdEMAMix([p], betas=(0.9, 0.999)).step()
    p.grad = p.grad.to_sparse()
    with pytest.raises(RuntimeError, match="AdEMAMix does not support sparse gradients."):
        momentopt.AdEMAMix([p]).step()
