"""Executors: per-tensor (foreach=False), multi-tensor (foreach=True) and the default choice
(foreach=None) give the same numbers as each other and as torch.optim.

float32 results are judged against a float64 run of torch.optim on the same parameters and
gradient function (the row's ``tolerances.drift``, tests/optimizer_table.py); float64 results
against torch's directly.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.nn import Parameter

from .helpers import (
    WIDE,
    assert_close_report,
    assert_matches_torch,
    assert_state_dicts_close,
    assert_state_dicts_match,
    choose_executor,
    sparse_if_needed,
    taken,
)
from .optimizer_table import ALGORITHMS, OPTIMIZERS, Tolerances

STEPS = 12
Dtypes = tuple[torch.dtype, ...]
FLAGS = {"per_tensor": {"foreach": False}, "multi_tensor": {"foreach": True}, "default": {}}
GradMask = Callable[[int, int], bool]  # (step, param index) -> whether the param gets a grad


def make_params(dtypes: Dtypes = (torch.float32,) * 4) -> list[Parameter]:
    """A matrix, a vector, a scalar and a non-contiguous matrix, of the given dtypes."""
    g = torch.Generator().manual_seed(3)
    shapes = [(3, 4), (4,), (), (2, 5)]
    params = [
        Parameter(torch.randn(s, generator=g).to(d)) for s, d in zip(shapes, dtypes, strict=True)
    ]
    params[3] = Parameter(params[3].detach().t())  # non-contiguous (5, 2)
    return params


def every_grad(step: int, index: int) -> bool:
    return True


def staggered_grads(step: int, index: int) -> bool:
    """Param 1 starts late and param 2 skips every third step: step counts differ in a group."""
    return not ((index == 1 and step < 4) or (index == 2 and step % 3 == 1))


def train(
    cls: type, kwargs: dict[str, Any], params: list[Parameter], mask: GradMask = every_grad
) -> torch.optim.Optimizer:
    """STEPS steps with gradients ``cos((t+1)·w) + 0.3·w`` where ``mask`` allows."""
    opt = cls(_taken(cls, params), **copy.deepcopy(kwargs))
    for step in range(STEPS):
        for i, p in enumerate(params):
            with torch.no_grad():
                p.grad = torch.cos(p * (step + 1)) + 0.3 * p if mask(step, i) else None
        sparse_if_needed(opt, params)
        opt.step()
    return opt


def _taken(cls: type, params: list[Parameter]) -> list[Parameter]:
    """The parameters ``cls`` (torch's class or ours) takes (Muon: the matrices)."""
    return taken(next(c for c in OPTIMIZERS.values() if cls in c.pair), params)


def _flags(case: Any, label: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The flags of the executor ``label`` for ``case`` (a class without ``foreach``:
    MOMENTOPT_EXECUTOR)."""
    if label == "default":
        monkeypatch.delenv("MOMENTOPT_EXECUTOR", raising=False)
        return {}
    return choose_executor(case, label, monkeypatch)


def _kwargs(kwargs: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    kw = {**kwargs, **flags}
    if isinstance(kw.get("lr"), torch.Tensor) and kw.get("foreach") and not kw.get("capturable"):
        kw["lr"] = kw["lr"].item()  # torch refuses a tensor lr with foreach=True
    return kw


def configs(richest: int = 2) -> list[Any]:
    out = []
    for name, case in OPTIMIZERS.items():
        inputs = case.inputs(torch.float32)
        for inp in [inputs[0], *sorted(inputs[1:], key=lambda i: -len(i.kwargs))[:richest]]:
            out.append(pytest.param(name, inp.kwargs, id=f"{name}-{inp.desc.replace(' ', '_')}"))
    return out


Run = tuple[list[Parameter], torch.optim.Optimizer]


def reference_run(
    name: str,
    kwargs: dict[str, Any],
    dtypes: Dtypes = (torch.float32,) * 4,
    mask: GradMask = every_grad,
) -> Run:
    """torch.optim's run in float64 (complex128) from the same values: what a float32 run's
    error is measured against."""
    params = make_params(tuple(WIDE.get(d, d) for d in dtypes))
    return params, train(OPTIMIZERS[name].torch_cls, kwargs, params, mask)


def _state_dict(run: Run) -> dict[str, Any]:
    sd = run[1].state_dict()
    for group in sd["param_groups"]:  # the executor flag itself may differ between runs
        group.pop("foreach", None)
    return sd


def assert_same_run(ours: Run, theirs: Run, reference: Run, tolerances: Tolerances) -> None:
    """``ours`` matches ``theirs`` (torch's, or another executor's) through the float64
    ``reference`` run: parameters and states."""
    for i, (po, pt, pr) in enumerate(zip(ours[0], theirs[0], reference[0], strict=True)):
        assert_matches_torch(po, pt, pr, f"param {i}", tolerances=tolerances)
    assert_state_dicts_match(
        _state_dict(ours), _state_dict(theirs), _state_dict(reference), tolerances=tolerances
    )


def assert_identical_runs(a: Run, b: Run) -> None:
    """The same numbers to the last bit."""
    for i, (pa, pb) in enumerate(zip(a[0], b[0], strict=True)):
        assert_close_report(pb, pa, f"param {i}", rtol=0.0, atol=0.0)
    assert_state_dicts_close(_state_dict(b), _state_dict(a), rtol=0.0, atol=0.0)


@pytest.mark.parametrize("name,kwargs", configs())
def test_executors_agree(name: str, kwargs: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """foreach=False and foreach=True run the same torch ops on each tensor (the CPU's
    ``_foreach_*`` kernels loop over the per-tensor ones): identical numbers. foreach=None and
    both of them match torch.optim."""
    case = OPTIMIZERS[name]
    ours = case.ours_cls
    runs = {}
    for label in FLAGS:
        params = make_params()
        flags = _flags(case, label, monkeypatch)
        runs[label] = (params, train(ours, _kwargs(kwargs, flags), params, staggered_grads))
    assert_identical_runs(runs["per_tensor"], runs["multi_tensor"])
    params = make_params()
    theirs = (params, train(case.torch_cls, kwargs, params, staggered_grads))
    reference = reference_run(name, kwargs, mask=staggered_grads)
    for run in runs.values():
        assert_same_run(run, theirs, reference, case.tolerances)


CASES = {
    "mixed_dtypes": ((torch.float32, torch.float64, torch.float32, torch.float64), every_grad),
    "different_step_counts": ((torch.float32,) * 4, staggered_grads),
    "mixed_dtypes_and_step_counts": (
        (torch.float64, torch.float32, torch.float64, torch.float32),
        staggered_grads,
    ),
}
RICH = {
    "SGD": {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1},
    "Adagrad": {"lr_decay": 0.1, "weight_decay": 0.1, "initial_accumulator_value": 0.1},
    "Adadelta": {"weight_decay": 0.1, "maximize": True},
    "RMSprop": {"momentum": 0.5, "centered": True, "weight_decay": 0.1},
    "Adam": {"amsgrad": True, "weight_decay": 0.1},
    "AdamW": {"amsgrad": True, "maximize": True},
    "NAdam": {"decoupled_weight_decay": True, "weight_decay": 0.1, "momentum_decay": 0.01},
    "Adamax": {"weight_decay": 0.1, "maximize": True},
    "RAdam": {"decoupled_weight_decay": True, "weight_decay": 0.1, "betas": (0.9, 0.9)},
    "SparseAdam": {"betas": (0.8, 0.9), "maximize": True},
    "Rprop": {"etas": (0.4, 1.5), "step_sizes": (1e-3, 0.05), "maximize": True},
    "ASGD": {"lambd": 0.1, "t0": 4.0, "weight_decay": 0.1, "maximize": True},
    "Adafactor": {"weight_decay": 0.1, "maximize": True, "beta2_decay": -0.5, "d": 1.5},
    "Muon": {"nesterov": False, "adjust_lr_fn": "match_rms_adamw", "momentum": 0.8},
}


@pytest.mark.parametrize("executor", ["per_tensor", "multi_tensor"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name", ALGORITHMS)
def test_heterogeneous_group_matches_torch(
    name: str, case: str, executor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """float32 and float64 params in one group, and params at different step counts."""
    dtypes, mask = CASES[case]
    row = OPTIMIZERS[name]
    kwargs = {**RICH[name], **_flags(row, executor, monkeypatch)}
    params_t, params_o = make_params(dtypes), make_params(dtypes)
    judge = row.judge_kwargs(kwargs)  # torch's numbers for ours (a foreach that differs: its loop)
    opt_t = train(row.torch_cls, judge, params_t, mask)
    opt_o = train(row.ours_cls, kwargs, params_o, mask)
    assert_same_run(
        (params_o, opt_o),
        (params_t, opt_t),
        reference_run(name, judge, dtypes, mask),
        row.tolerances,
    )
    for p in params_o:
        assert opt_o.state[p].get("exp_avg", p).dtype == p.dtype


@pytest.mark.parametrize("executor", ["per_tensor", "multi_tensor"])
@pytest.mark.parametrize("name", ALGORITHMS)
def test_group_added_later_matches_torch(
    name: str, executor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A param group added after some steps (its params at step 0 while others are not)."""
    case = OPTIMIZERS[name]
    torch_cls, ours_cls = case.pair
    flags = _flags(case, executor, monkeypatch)
    runs = [
        _group_added_later(cls, name, flags, dtype)
        for cls, dtype in (
            (ours_cls, torch.float32),
            (torch_cls, torch.float32),
            (torch_cls, torch.float64),
        )
    ]
    assert_same_run(*runs, case.tolerances)


def _group_added_later(cls: type, name: str, flags: dict[str, Any], dtype: torch.dtype) -> Run:
    params = make_params((dtype,) * 4)
    kwargs = {**RICH[name], **flags}
    case = OPTIMIZERS[name]
    opt = cls(
        _taken(cls, params[:2]),
        **(case.judge_kwargs(kwargs) if cls is case.torch_cls else kwargs),
    )
    for step in range(STEPS):
        if step == 4:
            opt.add_param_group({"params": _taken(cls, params[2:]), "lr": 0.02})
        for p in params:
            with torch.no_grad():
                p.grad = torch.cos(p * (step + 1)) + 0.3 * p
        sparse_if_needed(opt, params)
        opt.step()
    return params, opt
