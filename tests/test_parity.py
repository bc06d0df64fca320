"""Lock-step parity with torch.optim over every input of torch's optimizer database.

float32 and complex64 runs are judged against a float64 run of torch.optim from the same
weights and inputs (the row's ``tolerances.drift``, tests/optimizer_table.py); float64 runs
against torch's directly.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from .helpers import (
    EXECUTOR_FLAGS,
    WIDE,
    assert_models_match,
    assert_state_dicts_match,
    choose_executor,
    make_inputs,
    model_for,
    train_together,
    widened,
)
from .optimizer_table import OPTIMIZERS

DTYPES = (torch.float32, torch.float64, torch.complex64)


def _cases():
    for name, case in OPTIMIZERS.items():
        for dtype in DTYPES:
            if dtype.is_complex and not case.complex_params:
                continue
            for inp in case.inputs(dtype):
                for executor in EXECUTOR_FLAGS:
                    yield pytest.param(
                        name,
                        dtype,
                        inp.kwargs,
                        executor,
                        id=f"{name}-{str(dtype)[6:]}-{inp.desc.replace(' ', '_')}-{executor}",
                    )


def _kwargs(kwargs: dict, extra: dict) -> dict:
    kw = dict(kwargs)
    if isinstance(kw.get("lr"), torch.Tensor) and extra.get("foreach") and "capturable" not in kw:
        kw["lr"] = kw["lr"].item()  # torch refuses a tensor lr with foreach=True
    return {**kw, **extra}


@pytest.mark.parametrize("name,dtype,kwargs,executor", list(_cases()))
def test_lockstep_parity(
    name: str, dtype: torch.dtype, kwargs: dict[str, Any], executor: str, monkeypatch: Any
) -> None:
    case = OPTIMIZERS[name]
    torch_cls, ours_cls = case.pair
    torch.manual_seed(0)
    model_t = model_for(case, dtype)
    model_o = copy.deepcopy(model_t)
    model_r = widened(model_t) if dtype in WIDE else None
    kw = _kwargs(kwargs, choose_executor(case, executor, monkeypatch))
    judge = case.judge_kwargs(kw)  # torch's numbers for ours (a foreach that differs: its loop)
    opt_t = torch_cls(model_t.parameters(), **copy.deepcopy(judge))
    opt_o = ours_cls(model_o.parameters(), **copy.deepcopy(kw))
    runs = [(model_t, opt_t), (model_o, opt_o)]
    if model_r is not None:
        opt_r = torch_cls(model_r.parameters(), **copy.deepcopy(judge))
        runs.append((model_r, opt_r))
    for _ in train_together(runs, make_inputs(dtype, 30)):
        pass
    assert_models_match(model_o, model_t, model_r, tolerances=case.tolerances)
    theirs = [opt_t.state_dict(), None if model_r is None else opt_r.state_dict()]
    if judge.get("foreach") != kw.get("foreach"):  # the judging run's flag aside
        for sd in filter(None, theirs):
            for group in sd["param_groups"]:
                group["foreach"] = kw["foreach"]
    assert_state_dicts_match(opt_o.state_dict(), *theirs, tolerances=case.tolerances)
