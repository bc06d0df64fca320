"""Facts about tensors that the step plan (:mod:`.plan`) decides by: layouts, types, devices."""

from __future__ import annotations

from collections.abc import Sequence

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
_FAST_DTYPES = frozenset((torch.float32, torch.float64, torch.complex64, torch.complex128))


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
    return all(
        a == b for a, b, n in zip(t.stride(), like.stride(), like.shape, strict=True) if n != 1
    )


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


def takes_fast_path(params: Sequence[Tensor]) -> bool:
    """Whether default flags may take torch's kernels or the compiled step for these
    tensors: :func:`fusable` float32, float64 or complex tensors.

    Low-precision parameters stay on torch's default path: torch's fused kernels compute
    them in float32 internally, so their numbers would differ from torch's default.
    """
    for p in params:
        if (
            type(p) not in _PLAIN_TYPES
            or p.dtype not in _FAST_DTYPES
            or p.layout != torch.strided
            or not (p.is_cpu or p.is_cuda)
        ):
            return False
    return True


def default_path(params: Sequence[Tensor]) -> tuple[str, str]:
    """torch's own default path for tensors no fast path takes, and why: multi-tensor on
    CUDA and for tensor subclasses the foreach kernels take (DTensor), per-tensor otherwise
    (the CPU's foreach kernels round a scalar to a float16/bfloat16 tensor's dtype, torch's
    loop does not)."""
    if not _multi_tensor_ready(params):
        return "per-tensor", "torch's default: tensors the foreach kernels do not take"
    if any(type(p) not in _PLAIN_TYPES for p in params):
        return "multi-tensor", "torch's default for tensor subclasses (DTensor): foreach"
    if all(p.is_cuda for p in params):
        return "multi-tensor", "torch's default on CUDA: foreach"
    return "per-tensor", "torch's default on the CPU: the for-loop"
