"""Test helpers: torch's optimizer database, a small model and lock-step training."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.testing._internal.common_optimizers import optim_db

import momentopt

PAIRS = {
    "SGD": (torch.optim.SGD, momentopt.SGD),
    "Adagrad": (torch.optim.Adagrad, momentopt.Adagrad),
    "Adadelta": (torch.optim.Adadelta, momentopt.Adadelta),
    "RMSprop": (torch.optim.RMSprop, momentopt.RMSprop),
    "Adam": (torch.optim.Adam, momentopt.Adam),
    "AdamW": (torch.optim.AdamW, momentopt.AdamW),
    "NAdam": (torch.optim.NAdam, momentopt.NAdam),
}

ALGORITHMS = ("SGD", "Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW", "NAdam")
OPTIM_INFO = {info.optim_cls.__name__: info for info in optim_db if info.optim_cls.__name__ in ALGORITHMS}

TOLERANCES = {
    torch.float32: {"rtol": 1e-5, "atol": 1e-6},
    torch.complex64: {"rtol": 1e-5, "atol": 1e-6},
    torch.float64: {"rtol": 1e-10, "atol": 1e-12},
}


def optim_inputs(name: str, dtype: torch.dtype) -> list[Any]:
    """torch's own constructor inputs for ``name`` on the CPU."""
    return OPTIM_INFO[name].optim_inputs_func("cpu", dtype)


class Net(nn.Module):
    """Conv, linear, a non-contiguous (transposed) weight, 1-D and 0-D parameters."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, dtype=dtype)
        self.fc = nn.Linear(12, 4, dtype=dtype)
        self.transposed = nn.Parameter(torch.randn(4, 5, dtype=dtype).t())  # non-contiguous
        self.scale = nn.Parameter(torch.randn(5, dtype=dtype))
        self.bias0 = nn.Parameter(torch.randn((), dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        h = (h if h.is_complex() else h.tanh()).flatten(1)[:, :12]  # complex tanh has poles
        h = self.fc(h) @ self.transposed.t()
        return h * self.scale + self.bias0


def loss_of(out: torch.Tensor) -> torch.Tensor:
    return (out.abs() ** 2).mean() if out.is_complex() else (out**2).mean()


def make_inputs(dtype: torch.dtype, steps: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    real = torch.float32 if dtype == torch.complex64 else dtype
    xs = [torch.randn(3, 2, 5, 4, generator=g, dtype=real) for _ in range(steps)]
    return [x.to(dtype) for x in xs]


def lockstep(
    model_a: nn.Module,
    opt_a: torch.optim.Optimizer,
    model_b: nn.Module,
    opt_b: torch.optim.Optimizer,
    xs: list[torch.Tensor],
    *,
    check: Callable[[int], None] | None = None,
) -> Iterator[int]:
    """Train both models on the same inputs; the 0-D bias misses its grad every third step
    and ``fc.bias`` gets no grad on steps 5–9."""
    for i, x in enumerate(xs):
        for model, opt in ((model_a, opt_a), (model_b, opt_b)):
            opt.zero_grad()
            loss = loss_of(model(x))
            loss.backward()
            if i % 3 == 2:
                model.bias0.grad = None
            if 5 <= i < 10:
                model.fc.bias.grad = None
            opt.step()
        yield i


def clone_model(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)


def assert_state_dicts_close(a: dict[str, Any], b: dict[str, Any], **tol: float) -> None:
    """Same groups and state keys, values equal within ``tol``."""
    assert a["param_groups"] == b["param_groups"] or _groups_close(a["param_groups"], b["param_groups"])
    assert set(a["state"]) == set(b["state"])
    for k in a["state"]:
        sa, sb = a["state"][k], b["state"][k]
        assert set(sa) == set(sb), (k, set(sa), set(sb))
        for key in sa:
            va, vb = sa[key], sb[key]
            if isinstance(va, torch.Tensor):
                assert va.dtype == vb.dtype and va.shape == vb.shape and va.device == vb.device, (
                    k, key, va.dtype, vb.dtype,
                )
                torch.testing.assert_close(va, vb, **tol, msg=f"state {k}.{key}")
            else:
                assert va == vb


def _groups_close(ga: list[dict[str, Any]], gb: list[dict[str, Any]]) -> bool:
    for a, b in zip(ga, gb, strict=True):
        assert set(a) == set(b), (set(a) ^ set(b))
        for key in a:
            va, vb = a[key], b[key]
            if isinstance(va, torch.Tensor) or isinstance(vb, torch.Tensor):
                torch.testing.assert_close(torch.as_tensor(va), torch.as_tensor(vb))
            else:
                assert va == vb, (key, va, vb)
    return True
