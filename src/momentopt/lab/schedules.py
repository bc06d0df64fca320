"""The scheduled baselines Schedule-Free is measured against: an optimizer whose lr follows a
cosine over the whole run, as torch's ``CosineAnnealingLR`` sets it (lab helpers, not library
optimizers).

.. math::
    α_t = α · ½ (1 + \\cos(π t / T)), \\qquad t = 0, 1, …, T − 1

with ``T`` the number of steps of the run (no warm-up, down to 0: ``eta_min = 0``). Defazio
et al. (2024, "The Road Less Scheduled") claim that Schedule-Free, which needs no ``T``,
matches or beats such a schedule; the cosine schedule needs ``T`` in advance, so these classes
take ``total_steps`` and the lab's loop passes the run's horizon (``needs_horizon``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

import momentopt


class Cosine:
    """``base`` (with ``base_kwargs``) under ``CosineAnnealingLR(T_max=total_steps)``: the
    schedule steps once after every optimizer step, from each group's own lr."""

    base: ClassVar[type] = momentopt.AdamW
    base_kwargs: ClassVar[dict[str, Any]] = {}
    needs_horizon: ClassVar[bool] = True

    def __init__(self, params: Any, lr: float = 1e-3, total_steps: int = 100) -> None:
        if not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"total_steps must be an int >= 1, got {total_steps!r}")
        self.optimizer = self.base(params, lr=lr, **self.base_kwargs)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=total_steps
        )

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none)

    def step(self) -> None:
        self.optimizer.step()
        self.schedule.step()

    def describe(self) -> list[tuple[str, str]]:
        """The base optimizer's steps, with the schedule in step 3."""
        cosine = "α_t = α·½(1 + cos(π·t/T)), T = the run's steps   (CosineAnnealingLR)"
        return [
            (step, formula.replace("α_t = α", cosine) if step == "3. step" else formula)
            for step, formula in self.optimizer.describe()
        ]


class AdamWCosine(Cosine):
    """AdamW (torch's defaults, weight_decay 0.01) with its lr on a cosine over the run."""

    base = momentopt.AdamW


class MomentumCosine(Cosine):
    """SGD with momentum 0.9 (the lab's Momentum) with its lr on a cosine over the run."""

    base = momentopt.SGD
    base_kwargs = {"momentum": 0.9}
