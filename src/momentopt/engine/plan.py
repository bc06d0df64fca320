"""The step plan: for one param group's step, which path runs which tensors, and why.

:func:`plan_step` is the one place that decides. It looks at the group's flags, the
tensors (device, dtype, layout, sparse gradients), the kernels the optimizer class lists and
what the compiled path has learnt (:data:`~.compiled.COMPILE_HEALTH`), and returns
:class:`~.executors.Assignment` s that :func:`~.executors.execute` runs. It changes nothing.

The order of the decisions:

1. ``differentiable=True`` → per-tensor under autograd (as torch's loop).
2. ``foreach=False`` → per-tensor; ``foreach=True`` → multi-tensor; neither and no
   ``fused=True`` → torch's own default for tensors no fast path takes (float16/bfloat16 or
   other dtypes, tensor subclasses such as DTensor, devices other than CPU/CUDA).
3. ``fused=True`` or default flags, per bucket of one device, dtype and scalar state:
   torch's kernel where one computes the recipe exactly, for the tensors whose layout it
   takes; otherwise the recipe compiled, for dense tensors, when the step has more than one
   op and (with default flags) the group is large enough to pay for a compile; otherwise
   multi-tensor. A step that is not elementwise (a norm of each tensor, a factored moment, a
   function of matrices) is not recorded for compiling: multi-tensor, with what it uses as
   the reason. Sparse gradients always run per-tensor.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from . import compiled
from .batch import BucketKey, GroupTensors, buckets
from .compiled import kernel_key
from .executors import COMPILED, MULTI_TENSOR, PER_TENSOR, TORCH_KERNEL, Assignment
from .selection import default_path, fusable, is_dense, takes_fast_path
from .tape import CannotRecord, Tape
from .torch_kernels import TorchKernel, kernel_fits, kernel_for
from .views import TapeView

FAST_DTYPES = (torch.float32, torch.float64)
"""Real dtypes (of real views) that torch's kernels and the compiled step compute as torch's
default path does. float16/bfloat16 take torch's default path instead: the fused kernels
compute them in float32 (other numbers than torch's default loop), and on the CPU one of torch's
fused kernels updates only the scalar tail of a float16/bfloat16 tensor."""


def _choice(group: Any, params: Sequence[Tensor]) -> tuple[str, str]:
    """The path the flags ask for ("fused", "default" or a path) and why."""
    if group.get("fused"):
        return "fused", "fused=True"
    foreach = group.get("foreach")
    if foreach:
        return MULTI_TENSOR, "foreach=True"
    if foreach is False:
        return PER_TENSOR, "foreach=False"
    forced = os.environ.get("MOMENTOPT_EXECUTOR", "").replace("_", "-")  # per_tensor as well
    if forced in (PER_TENSOR, MULTI_TENSOR):
        return forced, f"MOMENTOPT_EXECUTOR={forced}"
    if forced == "fused" and fusable(params):
        return "fused", "MOMENTOPT_EXECUTOR=fused"
    if takes_fast_path(params):
        return "default", "default flags"
    path, why = default_path(params)
    slow = sorted({str(p.dtype).removeprefix("torch.") for p in params} - _FAST_NAMES)
    return path, f"{', '.join(slow)}: {why}" if slow else why


_FAST_NAMES = {"float32", "float64", "complex64", "complex128"}


def _sub(members: list[int] | None, picked: list[int]) -> list[int]:
    """Positions ``picked`` of the bucket ``members`` as positions in the group."""
    return picked if members is None else [members[i] for i in picked]


def plan_step(batch: GroupTensors, kernels: Sequence[TorchKernel]) -> list[Assignment]:
    """The plan of ``batch``'s step; see the module docstring."""
    if batch.differentiable:
        return [Assignment(PER_TENSOR, None, "differentiable=True: autograd records each op")]
    choice, why = _choice(batch.group, batch.params)
    if choice == PER_TENSOR:
        return [Assignment(PER_TENSOR, None, why)]
    grouped, sparse = buckets(batch)
    plan: list[Assignment] = []
    if choice == MULTI_TENSOR or torch.compiler.is_compiling() or not fusable(batch.params):
        if choice != MULTI_TENSOR:
            why = (
                "inside torch.compile (the surrounding graph is compiled)"
                if torch.compiler.is_compiling()
                else "tensors that are not plain CPU/CUDA"
            )
        plan += [Assignment(MULTI_TENSOR, m, why, key) for key, m in grouped.items()]
    else:
        total = sum(p.numel() for p in batch.params) if choice == "default" else None
        for key, members in grouped.items():
            plan += _plan_bucket(batch, key, members, kernels, total)
    if sparse:
        plan.append(Assignment(PER_TENSOR, sparse, "sparse gradients"))
    return plan


def _plan_bucket(
    batch: GroupTensors,
    key: BucketKey,
    members: list[int] | None,
    kernels: Sequence[TorchKernel],
    total: int | None,
) -> list[Assignment]:
    """The plan of one bucket under ``fused=True`` (``total`` None) or default flags
    (``total``: the group's elements)."""
    device, dtype = key[0], key[1]
    real = dtype.to_real() if dtype.is_complex else dtype
    sub = batch.subset(members)
    if real not in FAST_DTYPES:
        path, why = default_path(sub.params)
        return [Assignment(path, members, f"{dtype}: {why}", key)]
    kernel = (
        None  # torch's kernels: no sign, no mask; state in the parameter's dtype only
        if sub.recipe.changes_direction(batch.group) or sub.compact
        else kernel_for(kernels, batch.group, device)
    )
    if (
        total is not None
        and kernel is not None
        and not (
            kernel.with_default_flags
            and kernel.takes_flags(batch.group)
            and kernel.takes_numbers(batch.group)
        )
    ):  # not torch's default's numbers, or it would refuse (say) maximize=1 or a string
        kernel = None  # hyperparameter where torch's default path does not
    if kernel is not None:
        fits, misfits = kernel_fits(kernel, sub)
        plan = []
        if fits:
            picked = members if not misfits else _sub(members, fits)
            plan.append(Assignment(TORCH_KERNEL, picked, f"torch.{kernel.function}", key, kernel))
        if misfits:
            plan.append(
                Assignment(
                    MULTI_TENSOR,
                    _sub(members, misfits),
                    "memory layout torch's kernel cannot take",
                    key,
                )
            )
        return plan
    plan = []
    if not all(map(Tensor.is_contiguous, sub.params)):  # the usual case answers in C
        loose = [i for i, p in enumerate(sub.params) if not is_dense(p)]
        if loose:  # expanded or gapped params: the compiled step's flat copies assume dense
            plan.append(
                Assignment(
                    MULTI_TENSOR, _sub(members, loose), "parameters not dense in memory", key
                )
            )
            if len(loose) == len(sub.params):
                return plan
            dense = sorted(set(range(len(sub.params))) - set(loose))
            members, sub = _sub(members, dense), sub.subset(dense)
    return plan + [_plan_compiled(sub, key, members, real, total)]


def _plan_compiled(
    sub: GroupTensors,
    key: BucketKey,
    members: list[int] | None,
    real: torch.dtype,
    total: int | None,
) -> Assignment:
    """Record the bucket's step; compile it unless that cannot or would not pay."""
    recipe, device = sub.recipe, key[0]
    tape = Tape()
    view = TapeView(
        tape,
        sub.states,
        t=key[2][0] if recipe.counts_steps else 0.0,
        group=sub.group,
        params=sub.params,
    )
    try:
        recipe.run(view)  # records the step (scalar-state updates deferred)
    except CannotRecord as err:  # by design: tensorwise ops, functions of matrices
        return Assignment(MULTI_TENSOR, members, f"not compiled: {err}", key)
    except (TypeError, AttributeError) as err:  # an op the tape cannot record (own rule code)
        compiled.COMPILE_HEALTH.cannot_record(recipe, err)
        return Assignment(MULTI_TENSOR, members, f"step cannot be recorded: {err}", key)
    if len(tape.ops) <= 1:
        return Assignment(MULTI_TENSOR, members, "one op: already one memory pass", key)
    unavailable = compiled.COMPILE_HEALTH.why_not(kernel_key(tape, real, device))
    if unavailable is not None:
        return Assignment(MULTI_TENSOR, members, f"cannot compile: {unavailable}", key)
    minimum = compiled.COMPILE_MIN_NUMEL
    if total is not None and total < minimum:
        return Assignment(
            MULTI_TENSOR, members, f"{total} elements < {minimum}: a compile would not pay", key
        )
    return Assignment(
        COMPILED,
        members,
        f"recipe compiled: {len(tape.ops)} ops in one pass"
        + (" (compact state decoded and encoded in the kernel)" if sub.compact else ""),
        key,
        tape=tape,
        recorded=view,
        dtype=real,
    )


def describe_plan(batch: GroupTensors, plan: Sequence[Assignment]) -> list[dict[str, Any]]:
    """The plan as rows: path, number of tensors and elements, device, dtype, reason."""
    rows = []
    for a in plan:
        sub = batch.subset(a.members)
        rows.append(
            {
                "path": a.path,
                "tensors": len(sub.params),
                "elements": sum(p.numel() for p in sub.params),
                "device": str(a.bucket[0]) if a.bucket else str(sub.params[0].device),
                "dtype": str(a.bucket[1] if a.bucket else sub.params[0].dtype).replace(
                    "torch.", ""
                ),
                "reason": a.reason,
            }
        )
    return rows
