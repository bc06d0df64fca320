"""Which executor runs a param group: torch's ``foreach``/``fused`` flags, then speed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import _foreach_supported_types

FUSED_DEVICES = ("cpu", "cuda", "xpu", "mps")


def check_fused_param(p: Tensor) -> None:
    """torch's contract for ``fused=True``: floating-point tensors on a supported device."""
    if not (p.device.type in FUSED_DEVICES and torch.is_floating_point(p)):
        raise RuntimeError(
            "`fused=True` requires all the params to be floating point Tensors of "
            f"supported devices: {list(FUSED_DEVICES)} but {p.dtype} and {p.device.type}"
        )


def _multi_tensor_ready(params: Sequence[Tensor]) -> bool:
    """Whether ``torch._foreach_*`` kernels take these tensors (plain tensors, and DTensor
    once ``torch.distributed.tensor`` registered it in torch.optim's list)."""
    supported = tuple(_foreach_supported_types)
    return all(type(p) in supported for p in params)


def choose_executor(group: Mapping[str, Any], params: Sequence[Tensor]) -> str:
    """"per_tensor", "multi_tensor" or "fused" for this group's flags and tensors.

    * ``differentiable`` → per-tensor (autograd sees every op, as in torch);
    * ``fused=True`` → fused (validated as torch does); ``foreach=True`` → multi-tensor;
    * ``foreach=False`` → per-tensor (the user asked for the for-loop);
    * neither set → multi-tensor whenever the foreach kernels take every parameter.
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
    return "multi_tensor" if _multi_tensor_ready(params) else "per_tensor"
