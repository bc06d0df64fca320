"""Opt-in per-step statistics of any momentopt optimizer, read from the four steps.

Turn it on around your own training loop. It never changes the update's numbers: while it
records, the engine first runs each step on copies of the tensors (multi-tensor, with the
observer reading the step's pieces) and then runs the real step, unwatched, on the same path
as without diagnostics. A recorded step therefore costs about two steps and a copy of the
optimizer state (``every=k`` records every k-th step only); off, it costs nothing::

    import momentopt
    from momentopt import diagnostics

    opt = momentopt.Adam(model.parameters(), lr=1e-3)
    with diagnostics.record(opt) as rec:
        for x, y in loader:
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
    rec.to_csv("diagnostics.csv")          # one row per (step, param group)
    print(rec.history[-1])                 # {'step': ..., 'lr_eff_q50': ..., ...}

TensorBoard (``torch.utils.tensorboard`` needs the ``tensorboard`` package)::

    from torch.utils.tensorboard import SummaryWriter
    writer = SummaryWriter("runs/diag")
    rec = diagnostics.record(opt)          # recording starts now; rec.close() stops it
    for step, (x, y) in enumerate(loader):
        ...; opt.step()
        for key, value in rec.latest().items():
            writer.add_scalar(f"diagnostics/{key}", value, step)
    rec.close()

Statistics, per optimizer step and param group (``Recorder.FIELDS``):

* ``lr_eff_q{05,50,95}``, ``lr_eff_mean``: the effective learning rate of each coordinate,
  ``α_t · c / √V`` — ``α_t`` the scheduled lr, ``c`` the first moment's coefficients (Adam's
  ``1/(1−β1^t)``, NAdam's two factors summed), ``√V`` the ψ denominator as the recipe builds
  it (with ε and Adam's ``√(1−β2^t)``); ``√V = 1`` where the recipe has no ψ (SGD).
  AdaDelta's φ also multiplies ``g`` by ``√(U+ε)``; that factor is *not* in ``lr_eff``.
* ``update_to_weight``: ``‖η‖ / ‖w‖``, the gradient step's norm over the weights' norm
  (decoupled decay, applied before the step, is not part of ``η``).
* ``cos_m_g``: cosine between the first moment ``m = Σ coef·term`` and the gradient ``g``.
* ``eps_share``: share of coordinates where ε makes at least half of the denominator, i.e.
  the denominator is at most twice its value at ``V = 0`` (``ε`` for ``√V + ε``, ``√ε`` for
  ``√(V + ε)``); NaN without ψ.
* ``grad_norm``: ``‖g‖`` after the gradient rules (maximize, coupled decay).

Sparse gradients (Adagrad, SGD) are left out of the statistics. Quantiles use at most
``max_samples`` evenly strided coordinates per group.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .engine.optimizer import RecipeOptimizer
from .engine.views import TensorsView
from .rules.contract import Scalars

__all__ = ["Recorder", "record"]


def _tensors(x: Any) -> list[Tensor]:
    return list(x.tensors) if hasattr(x, "tensors") else [x]


def _number(x: Any) -> float:
    return float(x.detach()) if isinstance(x, Tensor) else float(x)


def _numbers(x: Any, n: int) -> list[float]:
    """``x`` for each of ``n`` tensors: a number for all, or one each (a step size or a
    divisor that depends on each tensor, as Adafactor's and Muon's do, is a ``Scalars``)."""
    if isinstance(x, Scalars):
        return [_number(v) for v in x.values]
    return [_number(x)] * n


class _Pending:
    """Sums for one param group within one step."""

    def __init__(self) -> None:
        self.eff: list[Tensor] = []
        self.step_sq = 0.0
        self.weight_sq = 0.0
        self.dot = 0.0
        self.m_sq = 0.0
        self.g_sq = 0.0
        self.eps_hits = 0
        self.eps_total = 0


class Recorder:
    """Records statistics of ``optimizer``'s steps from construction until :meth:`close`.

    ``history`` is a list of rows (dicts) with ``step`` (1-based count of ``step()`` calls
    since recording began), ``group`` (param group index) and the ``FIELDS``. ``every=k``
    records every k-th step only (the others run with no observer at all).
    """

    FIELDS: tuple[str, ...] = (
        "lr",
        "lr_eff_q05",
        "lr_eff_q50",
        "lr_eff_q95",
        "lr_eff_mean",
        "update_to_weight",
        "cos_m_g",
        "eps_share",
        "grad_norm",
    )

    def __init__(
        self, optimizer: RecipeOptimizer, every: int = 1, max_samples: int = 1 << 20
    ) -> None:
        if not isinstance(optimizer, RecipeOptimizer):
            raise TypeError(
                f"diagnostics need a momentopt optimizer, got {type(optimizer).__name__}"
            )
        if optimizer._step_observer is not None or getattr(optimizer, "_diagnostics", None):
            raise RuntimeError("this optimizer already has a step observer (another recorder?)")
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.optimizer = optimizer
        self.every = every
        self.max_samples = max_samples
        self.history: list[dict[str, float]] = []
        self._count = 0
        self._pending: dict[int, _Pending] = {}
        self._group_lr: dict[int, float] = {}
        self._floors: dict[int, float | None] = {}
        self._hooks = [
            optimizer.register_step_pre_hook(self._before_step),
            optimizer.register_step_post_hook(self._after_step),
        ]
        self.active = True
        optimizer._diagnostics = self  # type: ignore[attr-defined]

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop recording: the optimizer runs exactly as without diagnostics again."""
        if not self.active:
            return
        for hook in self._hooks:
            hook.remove()
        if self.optimizer._step_observer == self._observe:
            self.optimizer._step_observer = None
        if getattr(self.optimizer, "_diagnostics", None) is self:
            del self.optimizer._diagnostics
        self.active = False

    # -- results ---------------------------------------------------------------------------
    def latest(self, group: int = 0) -> dict[str, float]:
        """The last recorded row of ``group`` without ``step``/``group`` (e.g. for TensorBoard)."""
        for row in reversed(self.history):
            if row["group"] == group:
                return {k: row[k] for k in self.FIELDS}
        return {}

    def series(self, field: str, group: int = 0) -> list[float]:
        """``field`` over the recorded steps of ``group``."""
        return [row[field] for row in self.history if row["group"] == group]

    def to_csv(self, path: Any) -> None:
        """Write ``history`` as CSV: columns ``step, group`` and ``FIELDS``."""
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["step", "group", *self.FIELDS])
            writer.writeheader()
            writer.writerows(self.history)

    # -- hooks -----------------------------------------------------------------------------
    def _before_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._count += 1
        recording = (self._count - 1) % self.every == 0
        self.optimizer._step_observer = self._observe if recording else None
        self._pending = {}

    def _after_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.optimizer._step_observer = None
        for group, acc in sorted(self._pending.items()):
            self.history.append(self._row(group, acc))
        self._pending = {}

    def _floor(self, group: int, view: TensorsView) -> float | None:
        """The denominator at ``V = 0`` for this group (ε or √ε …), from the recipe's ψ."""
        if group not in self._floors:
            recipe = type(self.optimizer).recipe
            probe = torch.zeros(1, dtype=torch.float64)
            state = recipe.state.new_state(
                probe, view.group, self.optimizer.defaults, torch.float64, "cpu"
            )
            scratch = TensorsView(
                [probe],
                [torch.zeros_like(probe)],
                [state],
                as_list=False,
                t=1.0,
                group=view.group,
            )
            denom = recipe.second.denominator(scratch, scratch.grad)
            self._floors[group] = None if denom is None else float(denom.reshape(-1)[0])
        return self._floors[group]

    def _observe(
        self,
        b: TensorsView,
        g: Any,
        denom: Any,
        direction: Sequence[Any],
        lr: Any,
        *,
        group: int,
    ) -> None:
        """Read one view's step of param group ``group`` (the engine shows it a copy)."""
        if any(t.is_sparse for t in _tensors(g)):
            return
        with torch.no_grad():
            acc = self._pending.setdefault(group, _Pending())
            grads = _tensors(g)
            n = len(grads)
            lrs = _numbers(lr, n)
            self._group_lr[group] = sum(lrs) / n  # (per-tensor step sizes: their mean)
            floor = self._floor(group, b) if denom is not None else None
            weights = _tensors(b.param)
            denoms = _tensors(denom) if denom is not None else [None] * n
            terms = [
                (
                    _tensors(t.tensor),
                    [
                        c / d
                        for c, d in zip(_numbers(t.coef, n), _numbers(t.divisor, n), strict=True)
                    ],
                    _tensors(t.denom) if t.denom is not None else [None] * n,
                )
                for t in direction
            ]
            for i, (gi, wi, di) in enumerate(zip(grads, weights, denoms, strict=True)):
                lr_value = lrs[i]
                coef_sum = sum(coefs[i] for _, coefs, _ in terms)
                m = torch.zeros_like(gi, dtype=torch.float64)
                step = torch.zeros_like(gi, dtype=torch.float64)
                for tensors, coefs, tdenoms in terms:
                    ti = tensors[i].double()
                    m.add_(ti, alpha=coefs[i])
                    step.add_(
                        ti if tdenoms[i] is None else ti / tdenoms[i].double(), alpha=coefs[i]
                    )
                step.mul_(lr_value)
                g64 = gi.double()
                acc.step_sq += float(step.square().sum())
                acc.weight_sq += float(wi.double().square().sum())
                acc.dot += float((m * g64).sum())
                acc.m_sq += float(m.square().sum())
                acc.g_sq += float(g64.square().sum())
                if di is None:
                    acc.eff.append(torch.full((1,), lr_value * coef_sum, dtype=torch.float64))
                else:
                    flat = di.reshape(-1).double()
                    acc.eff.append(lr_value * coef_sum / flat)
                    if floor is not None:
                        acc.eps_hits += int((flat <= 2 * floor).sum())
                        acc.eps_total += flat.numel()

    def _row(self, group: int, acc: _Pending) -> dict[str, float]:
        eff = torch.cat(acc.eff) if acc.eff else torch.full((1,), math.nan, dtype=torch.float64)
        if eff.numel() > self.max_samples:
            eff = eff[:: math.ceil(eff.numel() / self.max_samples)]
        q = torch.quantile(eff, torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64))
        norm = math.sqrt(acc.m_sq * acc.g_sq)
        return {
            "step": self._count,
            "group": group,
            "lr": self._group_lr.get(group, math.nan),
            "lr_eff_q05": float(q[0]),
            "lr_eff_q50": float(q[1]),
            "lr_eff_q95": float(q[2]),
            "lr_eff_mean": float(eff.mean()),
            "update_to_weight": (
                math.sqrt(acc.step_sq / acc.weight_sq) if acc.weight_sq > 0 else math.inf
            ),
            "cos_m_g": acc.dot / norm if norm > 0 else math.nan,
            "eps_share": acc.eps_hits / acc.eps_total if acc.eps_total else math.nan,
            "grad_norm": math.sqrt(acc.g_sq),
        }


def record(optimizer: RecipeOptimizer, every: int = 1, max_samples: int = 1 << 20) -> Recorder:
    """Start recording ``optimizer``'s step statistics; use as a context manager or call
    ``close()``. See the module docstring for the fields and a CSV/TensorBoard example."""
    return Recorder(optimizer, every=every, max_samples=max_samples)
