"""Which executor runs a param group: torch's ``foreach``/``fused`` flags, then speed."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import _foreach_supported_types
from torch.utils._foreach_utils import _get_fused_kernels_supported_devices


def check_fused_param(p: Tensor) -> None:
    """torch's contract for ``fused=True``: floating-point tensors on a supported device."""
    devices = _get_fused_kernels_supported_devices()
    if not (p.device.type in devices and torch.is_floating_point(p)):
        raise RuntimeError(
            "`fused=True` requires all the params to be floating point Tensors of "
            f"supported devices: {devices} but {p.dtype} and {p.device.type}"
        )


def _multi_tensor_ready(params: Sequence[Tensor]) -> bool:
    """Whether ``torch._foreach_*`` kernels take these tensors (plain tensors, and DTensor
    once ``torch.distributed.tensor`` registered it in torch.optim's list)."""
    supported = tuple(_foreach_supported_types)
    return all(type(p) in supported for p in params)


_PLAIN_TYPES = (Tensor, torch.nn.Parameter)
_AUTO_DTYPES = frozenset((torch.float32, torch.float64, torch.complex64, torch.complex128))


def fusable(params: Sequence[Tensor]) -> bool:
    """Whether the fused executor takes these tensors: plain dense tensors (not DTensor or
    other subclasses) on the CPU or a CUDA device."""
    for p in params:
        if type(p) not in _PLAIN_TYPES or p.layout != torch.strided or not (p.is_cpu or p.is_cuda):
            return False
    return True


def is_dense(t: Tensor) -> bool:
    """Whether ``t``'s elements fill a block of memory exactly once: no two elements share
    memory (as in an expanded tensor) and there are no gaps (as in a strided slice); i.e.
    ``t`` is a permutation of a contiguous tensor. Contiguous tensors answer in one call."""
    if t.is_contiguous():
        return True
    expected = 1
    for stride, size in sorted((s, n) for s, n in zip(t.stride(), t.shape, strict=True) if n != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def same_layout(t: Tensor, like: Tensor) -> bool:
    """Whether ``t`` has the memory layout of ``like`` (same shape): element ``i`` of one lies
    at the same offset from its start as element ``i`` of the other. Dimensions of size 1
    carry no layout."""
    if t.is_contiguous() and like.is_contiguous():
        return True
    return all(a == b for a, b, n in zip(t.stride(), like.stride(), like.shape, strict=True) if n != 1)


def flat_layout_split(
    params: Sequence[Tensor], grads: Sequence[Tensor], states: Sequence[Sequence[Tensor]]
) -> tuple[list[int], list[int]]:
    """Indices of the tensors that torch's fused optimizer kernels compute correctly, and of
    the others.

    Those kernels walk every tensor of one update as one flat block of memory. That is
    right only when the parameter is dense (:func:`is_dense`) and its gradient and every
    state tensor (``states``: one list per state name) have the parameter's layout; for any
    other tensor they compute garbage or write out of bounds (expanded parameters). The
    usual case — all contiguous — is a few C-level calls per list.
    """
    lists = (params, grads, *states)
    if all(all(map(Tensor.is_contiguous, tensors)) for tensors in lists):
        return list(range(len(params))), []
    fits: list[int] = []
    misfits: list[int] = []
    for i, p in enumerate(params):
        ok = is_dense(p) and all(same_layout(tensors[i], p) for tensors in lists[1:])
        (fits if ok else misfits).append(i)
    return fits, misfits


def _auto_ready(params: Sequence[Tensor]) -> bool:
    """Whether the fused executor is the default for these tensors: :func:`fusable` float32,
    float64 or complex tensors.

    Low-precision parameters stay on the multi-tensor path by default: torch's fused kernels
    compute them in float32 internally, so their numbers would differ from torch's default.
    """
    for p in params:
        if (type(p) not in _PLAIN_TYPES or p.dtype not in _AUTO_DTYPES
                or p.layout != torch.strided or not (p.is_cpu or p.is_cuda)):
            return False
    return True


def choose_executor(group: Mapping[str, Any], params: Sequence[Tensor]) -> str:
    """"per_tensor", "multi_tensor", "fused" or "auto" for this group's flags and tensors.

    * ``differentiable`` → per-tensor (autograd sees every op, as in torch);
    * ``fused=True`` → fused (validated as torch does); ``foreach=True`` → multi-tensor;
    * ``foreach=False`` → per-tensor (the user asked for the for-loop);
    * neither set → "auto": the fused executor for plain float32/float64/complex tensors on
      CPU/CUDA (torch's fused kernel where one computes the recipe; the recipe compiled for
      groups large enough to pay for a compile; multi-tensor otherwise); for other tensors,
      the path of torch's own default: multi-tensor on CUDA and for tensor subclasses the
      foreach kernels take (DTensor), per-tensor otherwise (float16/bfloat16 on the CPU:
      the foreach kernels round a scalar to the tensor's dtype, torch's loop does not).
      ``MOMENTOPT_EXECUTOR`` (an executor name) overrides this default choice.
    """
    if group.get("differentiable", False):
        return "per_tensor"
    if group.get("fused"):
        return "fused"
    foreach = group.get("foreach")
    if foreach:
        return "multi_tensor"
    if foreach is False:
        return "per_tensor"
    forced = os.environ.get("MOMENTOPT_EXECUTOR")
    if forced in ("per_tensor", "multi_tensor") or forced in ("fused", "auto") and fusable(params):
        return forced
    if _auto_ready(params):
        return "auto"
    return default_unfused(params)


def default_unfused(params: Sequence[Tensor]) -> str:
    """torch's own default for tensors no fused path takes: multi-tensor on CUDA and for
    tensor subclasses the foreach kernels take (DTensor), per-tensor otherwise."""
    if not _multi_tensor_ready(params):
        return "per_tensor"
    subclass = any(type(p) not in _PLAIN_TYPES for p in params)
    return "multi_tensor" if subclass or all(p.is_cuda for p in params) else "per_tensor"
