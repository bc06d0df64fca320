"""The execution paths: each runs the recipe over some of a param group's tensors.

* per-tensor — the readable reference: one tensor at a time (torch.optim's for-loop); also
  the path under autograd (``differentiable=True``) and for sparse gradients;
* multi-tensor — tensors grouped into buckets of one device, dtype and scalar state; each
  tensor method of the rules is one ``torch._foreach_*`` call per bucket;
* torch kernel — one of torch's fused kernels that computes the recipe exactly
  (:mod:`.torch_kernels`);
* compiled — the recipe's step recorded and compiled into one memory pass
  (:mod:`.compiled`).

Which path runs which tensors is decided by :func:`~.plan.plan_step`, as a list of
:class:`Assignment` s; :func:`execute` runs them. Every path but torch's kernels runs the very same :meth:`Recipe.run`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import compiled
from .batch import BucketKey, GroupTensors, buckets
from .compact_step import run_decoded
from .compiled import kernel_key, run_compiled
from .compiled_compact import run_compiled_compact
from .tape import Tape
from .torch_kernels import TorchKernel, run_torch_kernel
from .views import AutogradView, SparseView, TapeView, TensorsView

PER_TENSOR = "per-tensor"
MULTI_TENSOR = "multi-tensor"
TORCH_KERNEL = "torch kernel"
COMPILED = "compiled"


@dataclass(frozen=True)
class Assignment:
    """One entry of a step plan: which path runs which tensors, and why.

    Attributes:
        path: :data:`PER_TENSOR`, :data:`MULTI_TENSOR`, :data:`TORCH_KERNEL` or
            :data:`COMPILED`.
        members: the positions of its tensors in the group's step (None: all of them).
        reason: why this path, in words.
        bucket: the bucket the tensors form, where the plan grouped them.
        kernel: torch's kernel (:data:`TORCH_KERNEL`).
        tape, recorded: the recorded step and the view that recorded it (:data:`COMPILED`).
        dtype: the real dtype the compiled step computes in (:data:`COMPILED`).
    """

    path: str
    members: list[int] | None
    reason: str
    bucket: BucketKey | None = None
    kernel: TorchKernel | None = None
    tape: Tape | None = None
    recorded: TapeView | None = None
    dtype: torch.dtype | None = None


def per_tensor(batch: GroupTensors) -> None:
    """Run the recipe on one parameter at a time."""
    counted = batch.recipe.counts_steps
    for p, g, s in zip(batch.params, batch.grads, batch.states, strict=True):
        t = s["step"].item() if counted else 0.0  # (float() warns when it needs grad)
        options = {"t": t, "group": batch.group, "observer": batch.observer}
        if g.is_sparse:  # torch's sparse step, under autograd too
            batch.recipe.run(SparseView(p, g, s, **options))
        elif batch.differentiable:
            view = AutogradView(p, g, s, **options)
            batch.recipe.run(view)
            view.commit()
        else:
            batch.recipe.run(TensorsView([p], [g], [s], as_list=False, **options))


def run_bucket(batch: GroupTensors, key: BucketKey) -> None:
    """Run the recipe once over one bucket (``key`` from :func:`buckets`) as tensor lists."""
    t = key[2][0] if batch.recipe.counts_steps else 0.0
    batch.recipe.run(
        TensorsView(
            batch.params,
            batch.grads,
            batch.states,
            as_list=True,
            t=t,
            group=batch.group,
            is_complex=key[1].is_complex,
            observer=batch.observer,
        )
    )


def multi_tensor(batch: GroupTensors) -> None:
    """Run the recipe once per bucket of tensors that share device, dtype and scalar state;
    sparse gradients one at a time, as in torch.optim."""
    grouped, sparse = buckets(batch)
    for key, members in grouped.items():
        run_bucket(batch.subset(members), key)
    if sparse:
        per_tensor(batch.subset(sparse))


def _unscale(batch: GroupTensors) -> None:
    """Divide the gradients by GradScaler's scale in place, as torch's fused kernels do."""
    if batch.grad_scale is not None and batch.grads:
        scale = batch.grad_scale.reshape(()).to(batch.grads[0].device)
        torch._foreach_div_(batch.grads, scale)


def execute(batch: GroupTensors, plan: list[Assignment]) -> None:
    """Run each assignment of ``plan`` on its tensors. Under ``fused=True`` with GradScaler,
    torch's kernels take the scale and the inf flag themselves; for the other paths the
    gradients are unscaled here, a found inf skips them, and every counter the step advanced
    goes back (``step -= found_inf``)."""
    for a in plan:
        sub = batch.subset(a.members)
        if not sub.params:
            continue
        if a.path != TORCH_KERNEL:
            if batch.skipped:
                continue
            _unscale(sub)
        if a.path == TORCH_KERNEL:
            run_torch_kernel(a.kernel, sub, a.bucket[0])  # type: ignore[arg-type, index]
        elif a.path == COMPILED:
            _run_compiled_or_fall_back(sub, a)
        elif a.path == MULTI_TENSOR:
            _run_eager(sub, _multi_tensor_runner(a.bucket), one_at_a_time=False)
        elif a.path == PER_TENSOR:
            _run_eager(sub, per_tensor, one_at_a_time=True)
    if batch.found_inf is not None and batch.recipe.counts_steps and batch.states:
        counters = [s["step"] for s in batch.states]
        torch._foreach_sub_(counters, [batch.found_inf.to(c.device) for c in counters])


def _multi_tensor_runner(bucket: BucketKey | None) -> Callable[[GroupTensors], None]:
    """The multi-tensor run of one bucket (``bucket``), or of a batch it buckets itself."""
    if bucket is None:
        return multi_tensor
    return lambda batch: run_bucket(batch, bucket)


def _run_eager(
    batch: GroupTensors, run: Callable[[GroupTensors], None], one_at_a_time: bool
) -> None:
    """``run(batch)``; with compact state, on decoded states encoded afterwards."""
    if batch.compact:
        run_decoded(batch, run, one_at_a_time)
    else:
        run(batch)


def _run_compiled_or_fall_back(batch: GroupTensors, a: Assignment) -> None:
    """The compiled step (with compact state decoded and encoded inside its kernel); if
    compiling fails, the bucket runs multi-tensor (and the failure is remembered, so the next
    plans choose multi-tensor themselves)."""
    device, dtype = a.bucket[0], a.dtype  # type: ignore[index]
    try:
        if batch.compact:
            run_compiled_compact(a.tape, batch, dtype, device)  # type: ignore[arg-type]
        else:
            run_compiled(a.tape, batch, dtype, device)  # type: ignore[arg-type]
    except Exception as err:  # noqa: BLE001 - any compiler failure: same numbers another way
        compiled.COMPILE_HEALTH.compile_failed(kernel_key(a.tape, dtype, device), err)  # type: ignore[arg-type]
        _run_eager(batch, _multi_tensor_runner(a.bucket), one_at_a_time=False)
        return
    a.recorded.commit(batch)  # type: ignore[union-attr]
