"""The newer optimizers' bench configs: momentopt's step against its reference implementation's.

Lion, ADOPT, Schedule-Free AdamW and Prodigy are timed against their authors' packages
(lion-pytorch, torch-adopt, schedulefree, prodigyopt: the test extra installs them; a config
whose package is missing is skipped with a note), each with default arguments, as its users
run it. AdEMAMix has no package: its reference is :class:`LoopAdEMAMix`, Algorithm 1 of the
paper as a plain PyTorch loop of in-place ops over the parameters (as torch's own Adam
for-loop is written) — what a user without momentopt would run.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

import momentopt


class LoopAdEMAMix(torch.optim.Optimizer):
    """AdEMAMix (Pagliardini, Ablin & Grangier, 2024, Algorithm 1) as a per-parameter loop
    of in-place torch ops, without warm-ups (the default): the bench's stand-in for a
    reference package.

    .. math::
        m_1 ← β_1 m_1 + (1 − β_1) g, \\quad m_2 ← β_3 m_2 + (1 − β_3) g, \\quad
        ν ← β_2 ν + (1 − β_2) g^2,

        w ← w − η\\Big(\\frac{m_1/(1 − β_1^t) + α m_2}{\\sqrt{ν/(1 − β_2^t)} + ε} + λ w\\Big)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
        alpha: float = 2.0,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        defaults = dict(lr=lr, betas=betas, alpha=alpha, eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            lr, (beta1, beta2, beta3) = group["lr"], group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg_fast"] = torch.zeros_like(p)
                    state["exp_avg_slow"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t, g = state["step"], p.grad
                fast, slow, sq = state["exp_avg_fast"], state["exp_avg_slow"], state["exp_avg_sq"]
                fast.mul_(beta1).add_(g, alpha=1 - beta1)
                slow.mul_(beta3).add_(g, alpha=1 - beta3)
                sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                denom = (sq.sqrt() / math.sqrt(1 - beta2**t)).add_(group["eps"])
                update = fast.div(1 - beta1**t).add_(slow, alpha=group["alpha"]).div_(denom)
                if group["weight_decay"] != 0:
                    update.add_(p, alpha=group["weight_decay"])
                p.add_(update, alpha=-lr)


def _from(module: str, name: str) -> Callable[..., torch.optim.Optimizer]:
    """``module.name``, imported when a config runs (ImportError where it is not installed)."""

    def make(params: Any, **kwargs: Any) -> torch.optim.Optimizer:
        return getattr(importlib.import_module(module), name)(params, **kwargs)

    return make


@dataclass(frozen=True)
class ReferenceConfig:
    """A newer optimizer's bench config.

    Attributes:
        ours: the momentopt class.
        reference: makes the reference optimizer from params (and kwargs).
        package: where the reference comes from (the bench's ``torch best`` column).
        states: state tensors of the parameters' size (the step's minimal traffic).
        module: the package's module (a missing one skips the config), or None.
        kwargs: arguments for both (default: none, the defaults).
        train: call ``train()`` before stepping (schedule-free).
    """

    ours: type
    reference: Callable[..., torch.optim.Optimizer]
    package: str
    states: int
    module: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    train: bool = False

    def available(self) -> bool:
        """Whether the reference can be imported here."""
        if self.module is None:
            return True
        try:
            importlib.import_module(self.module)
        except ImportError:
            return False
        return True

    def make(self, cls: Callable[..., Any], params: list[torch.Tensor]) -> Any:
        opt = cls(params, **self.kwargs)
        if self.train:
            opt.train()
        return opt


REFERENCE_CONFIGS: dict[str, ReferenceConfig] = {
    "Lion": ReferenceConfig(
        momentopt.Lion, _from("lion_pytorch", "Lion"), "lion-pytorch", 1, "lion_pytorch"
    ),
    "ADOPT": ReferenceConfig(momentopt.ADOPT, _from("adopt", "ADOPT"), "torch-adopt", 2, "adopt"),
    "AdEMAMix": ReferenceConfig(momentopt.AdEMAMix, LoopAdEMAMix, "paper loop", 3),
    "ScheduleFreeAdamW": ReferenceConfig(
        momentopt.ScheduleFreeAdamW,
        _from("schedulefree", "AdamWScheduleFree"),
        "schedulefree",
        2,
        "schedulefree",
        train=True,
    ),
    # (s and p0: two more flat vectors of the parameters' size at slice_p = 1)
    "Prodigy": ReferenceConfig(
        momentopt.Prodigy, _from("prodigyopt", "Prodigy"), "prodigyopt", 4, "prodigyopt"
    ),
}
"""The newer optimizers' configs, against their references (default arguments)."""
REFERENCE_SETS = ("gpt-like", "one-big")
"""The sets the issue's target names for them."""
REFERENCE_TARGET = 0.5
"""The issue's target: at most half the reference's step time."""
