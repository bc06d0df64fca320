"""Lock-step parity with torch.optim over every input of torch's optimizer database."""

from __future__ import annotations

import copy

import pytest
import torch

from .helpers import (
    ALGORITHMS,
    PAIRS,
    TOLERANCES,
    Net,
    assert_state_dicts_close,
    lockstep,
    make_inputs,
    optim_inputs,
)

DTYPES = (torch.float32, torch.float64, torch.complex64)
EXECUTORS = {"per_tensor": {"foreach": False}, "multi_tensor": {"foreach": True}}


def _cases():
    for name in ALGORITHMS:
        for dtype in DTYPES:
            for inp in optim_inputs(name, dtype):
                for executor in EXECUTORS:
                    yield pytest.param(
                        name, dtype, inp.kwargs, executor,
                        id=f"{name}-{str(dtype)[6:]}-{inp.desc.replace(' ', '_')}-{executor}",
                    )


def _kwargs(kwargs: dict, extra: dict) -> dict:
    kw = dict(kwargs)
    if isinstance(kw.get("lr"), torch.Tensor) and extra.get("foreach") and "capturable" not in kw:
        kw["lr"] = kw["lr"].item()  # torch refuses a tensor lr with foreach=True
    return {**kw, **extra}


@pytest.mark.parametrize("name,dtype,kwargs,executor", list(_cases()))
def test_lockstep_parity(name, dtype, kwargs, executor):
    torch_cls, ours_cls = PAIRS[name]
    torch.manual_seed(0)
    model_t = Net(dtype)
    model_o = copy.deepcopy(model_t)
    kw = _kwargs(kwargs, EXECUTORS[executor])
    opt_t = torch_cls(model_t.parameters(), **copy.deepcopy(kw))
    opt_o = ours_cls(model_o.parameters(), **copy.deepcopy(kw))
    tol = TOLERANCES[dtype]
    for _ in lockstep(model_t, opt_t, model_o, opt_o, make_inputs(dtype, 30)):
        pass
    for (n, pt), po in zip(model_t.named_parameters(), model_o.parameters(), strict=True):
        torch.testing.assert_close(po, pt, **tol, msg=f"param {n}")
    assert_state_dicts_close(opt_o.state_dict(), opt_t.state_dict(), **tol)
