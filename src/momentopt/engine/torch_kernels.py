"""torch's own fused optimizer kernels as data, and how to call one on a bucket.

The engine knows no kernel by name: an optimizer class lists the kernels that compute its
recipe exactly (``RecipeOptimizer.torch_kernels``, filled in by the torch compatibility
layer in :mod:`momentopt.algorithms`), each a :class:`TorchKernel` saying for which
hyperparameters it applies and how the group's keys map to its arguments.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .batch import GroupTensors
from .selection import flat_layout_split
from .views import real_views

BIG = 1 << 16
"""Tensors with at least this many elements (and contiguous) are big: updated where they lie
by the compiled path, and by torch's kernels on all threads; smaller ones are small."""

ONE_THREAD_MIN = 256
"""torch's kernels take the small tensors on one thread only when there are this many (a
thread-count switch costs about as much as a few hundred parallel regions)."""


@dataclass(frozen=True)
class TorchKernel:
    """One of torch's fused optimizer kernels.

    Attributes:
        function: the name of the ``torch`` function.
        applies: whether it computes the recipe for a group's hyperparameters.
        states: the state tensors it takes, in order, for a group's hyperparameters.
        arguments: its keyword arguments from the group's hyperparameters.
        takes_steps: whether it takes the ``step`` tensors.
        created_in_step: a state it creates at the first step (torch's ``is_first_step``
            protocol), if any.
        state_lists: how many state lists it takes (absent ones are passed empty).
        flags: the group keys it takes as bools (it refuses anything else, so with default
            flags a group holding another value there takes another path).
        devices: the device types it runs on.
        with_default_flags: whether it is taken with default flags too (False where its
            numbers differ from torch's default path by more than rounding of the scalars:
            it is then taken with ``fused=True`` only).
    """

    function: str
    applies: Callable[[Mapping[str, Any]], bool]
    states: Callable[[Mapping[str, Any]], tuple[str, ...]]
    arguments: Callable[[Mapping[str, Any]], dict[str, Any]]
    takes_steps: bool = True
    created_in_step: str | None = None
    state_lists: int = 1
    flags: tuple[str, ...] = ("maximize",)
    devices: tuple[str, ...] = ("cpu", "cuda")
    with_default_flags: bool = True

    def takes_flags(self, group: Mapping[str, Any]) -> bool:
        return all(isinstance(group.get(k, False), bool) for k in self.flags)

    def takes_numbers(self, group: Mapping[str, Any]) -> bool:
        """Whether every hyperparameter it takes is a number (a string ``dampening`` is not:
        the kernel refuses it, where torch's default loop reads it only when it needs it)."""
        try:
            self.arguments(group)
        except TypeError:
            return False
        return True


def number(value: Any) -> float:
    """A hyperparameter as the kernels take it; a string (which ``float`` would read) or
    anything else that is not a number raises TypeError, as torch's own step does."""
    if isinstance(value, Tensor | numbers.Real):
        return float(value)
    raise TypeError(f"a hyperparameter must be a number, got {type(value).__name__} {value!r}")


def flag(value: Any) -> bool:
    """A flag as the kernels take it: a bool; anything else (``maximize=None``) raises
    TypeError, as torch's fused kernels do."""
    if isinstance(value, bool):
        return value
    raise TypeError(f"a flag must be a bool, got {type(value).__name__} {value!r}")


def has_tensor_values(group: Mapping[str, Any]) -> bool:
    """Whether a hyperparameter is a tensor (tensor lr, tensor betas)."""
    return any(
        isinstance(v, Tensor) or isinstance(v, tuple) and any(isinstance(x, Tensor) for x in v)
        for k, v in group.items()
        if k != "params"
    )


def kernel_for(
    kernels: Sequence[TorchKernel], group: Mapping[str, Any], device: torch.device
) -> TorchKernel | None:
    """The first of ``kernels`` that computes the recipe for ``group`` on ``device``.

    None for tensor hyperparameters: torch's default path computes its scalars with them in
    their dtype (``1 − β2^t`` of a float32 β2 loses 1e-4 to cancellation), its kernels in
    float64; the recipe, run by the other paths, computes them as torch's default does."""
    if not kernels or group.get("capturable") or has_tensor_values(group):
        return None
    return next((k for k in kernels if device.type in k.devices and k.applies(group)), None)


def kernel_fits(kernel: TorchKernel, batch: GroupTensors) -> tuple[list[int], list[int]]:
    """The positions of the tensors ``kernel`` computes correctly (dense, with the
    parameter's layout in gradient and state) and of the others."""
    names = kernel.states(batch.group)
    lazy = kernel.created_in_step
    first_step = bool(lazy and lazy in names and lazy not in batch.states[0])
    lists = [[s[n] for s in batch.states] for n in names if not (first_step and n == lazy)]
    return flat_layout_split(batch.params, batch.grads, lists)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch's CPU kernels on one intra-op thread for a moment: its fused kernels open a
    parallel region per tensor, which costs more than a small tensor's update (and stalls
    when a core is busy)."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_torch_kernel(kernel: TorchKernel, batch: GroupTensors, device: torch.device) -> None:
    """``kernel`` on the batch's own tensors (no copies; all must fit, see
    :func:`kernel_fits`): big tensors as one call, small ones (on the CPU) as another on one
    thread."""
    group, states = batch.group, batch.states
    names = kernel.states(group)
    lazy = kernel.created_in_step
    first_step = bool(lazy and lazy in names and lazy not in states[0])
    if first_step and batch.found_inf is not None and bool(batch.found_inf):
        return  # a skipped first step creates no buffer (torch's would hold garbage)
    lists = {n: [s[n] for s in states] for n in names if not (first_step and n == lazy)}
    if first_step:  # the kernel's is_first_step protocol: it fills the new buffers
        lists[lazy] = [torch.empty_like(p) for p in batch.params]  # type: ignore[index]
        for s, buf in zip(states, lists[lazy], strict=True):  # type: ignore[index]
            s[lazy] = buf  # type: ignore[index]
    fn = getattr(torch, kernel.function)
    options = {**kernel.arguments(group), **({"is_first_step": first_step} if lazy else {})}
    if batch.grad_scale is not None:
        options["grad_scale"] = batch.grad_scale.to(device)
    if batch.found_inf is not None:
        options["found_inf"] = batch.found_inf.to(device)
    absent = [[] for _ in range(kernel.state_lists - len(names))]  # e.g. no max_exp_avg_sqs
    is_complex = batch.params[0].is_complex()  # one dtype per bucket

    def pick(tensors: list[Tensor], members: Sequence[int] | None) -> list[Tensor]:
        picked = tensors if members is None else [tensors[i] for i in members]
        return real_views(picked, is_complex)

    def call(members: Sequence[int] | None) -> None:
        steps = [s["step"] for s in states] if kernel.takes_steps else None
        fn(
            pick(batch.params, members),
            pick(batch.grads, members),
            *[pick(lists[n], members) for n in names],
            *absent,
            *([pick(steps, members)] if steps is not None else []),  # type: ignore[arg-type]
            **options,
        )

    big: list[int] = []
    small: list[int] = []
    if device.type == "cpu":
        for i, p in enumerate(batch.params):
            (big if p.numel() >= BIG else small).append(i)
    if len(small) < ONE_THREAD_MIN:  # switching threads costs more than it saves
        call(None)
        return
    if big:
        call(big)
    with _one_thread():
        call(small)
