"""Errors: torch's optim_db error inputs and a table of bad hyperparameters, vs torch.optim."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch.nn import Parameter
from torch.testing._internal.common_optimizers import OptimizerErrorEnum

from .optimizer_table import ALGORITHMS, OPTIMIZERS, Predicate, every, names, takes

Outcome = tuple[str, type, str] | None


def default_params() -> list[torch.Tensor]:
    """The param list used where an error input leaves ``params`` as None."""
    return [Parameter(torch.randn(2, 3)), Parameter(torch.randn(3))]


def outcome(cls: type, params: Any, kwargs: dict[str, Any]) -> Outcome:
    """Construct ``cls`` and take one step with unit grads; the first error as
    (phase, type, message), or None if nothing raised."""
    try:
        opt = cls(params, **kwargs)
    except Exception as err:  # noqa: BLE001 — whatever torch raises: compared with ours
        return "construction", type(err), str(err)
    try:
        for group in opt.param_groups:
            for p in group["params"]:
                p.grad = torch.ones_like(p)
        opt.step()
    except Exception as err:  # noqa: BLE001 — whatever torch raises: compared with ours
        return "step", type(err), str(err)
    return None


# -- 1. torch's own error inputs ---------------------------------------------------------------
def _db_cases() -> list[Any]:
    cases = []
    for name, case in OPTIMIZERS.items():
        for i, err in enumerate(case.error_inputs(torch.float32)):
            desc = err.optimizer_error_input.desc.replace(" ", "_")
            cases.append(pytest.param(name, i, id=f"{name}-{i}-{desc}"))
    return cases


@pytest.mark.parametrize("name,index", _db_cases())
def test_optim_db_error_input(name: str, index: int) -> None:
    """Every ErrorOptimizerInput raises (or warns) the same type, matching torch's regex."""
    err = OPTIMIZERS[name].error_inputs(torch.float32)[index]
    inp = err.optimizer_error_input
    cls = OPTIMIZERS[name].ours_cls
    params = inp.params if inp.params is not None else default_params()

    def act() -> None:
        opt = cls(params, **inp.kwargs)
        if err.error_on == OptimizerErrorEnum.STEP_ERROR:
            for group in opt.param_groups:
                for p in group["params"]:
                    p.grad = torch.ones_like(p)
            opt.step()

    if issubclass(err.error_type, Warning):
        with pytest.warns(err.error_type, match=err.error_regex):
            act()
    else:
        with pytest.raises(err.error_type, match=err.error_regex):
            act()


def test_optim_db_covers_every_algorithm() -> None:
    """The table above is not silently empty for any algorithm."""
    for name, case in OPTIMIZERS.items():
        assert len(case.error_inputs(torch.float32)) >= 6, name


# -- 2. bad hyperparameters, message for message -----------------------------------------------
def _float() -> list[torch.Tensor]:
    return [Parameter(torch.randn(3))]


def _int() -> list[torch.Tensor]:
    return [torch.arange(3)]


def _complex() -> list[torch.Tensor]:
    return [Parameter(torch.randn(3, dtype=torch.complex64))]


@dataclass(frozen=True)
class BadCase:
    """Keyword arguments torch.optim refuses (at construction or at the first step), for every
    algorithm ``where`` holds for (default: each whose constructor takes all of ``kwargs``)."""

    desc: str
    kwargs: dict[str, Any]
    params: Callable[[], list[torch.Tensor]] = field(default=_float)
    where: Predicate | None = None

    def algorithms(self) -> tuple[str, ...]:
        return names(self.where or takes(*self.kwargs))


BAD_CASES = [
    BadCase("negative lr", {"lr": -0.1}),
    BadCase("negative tensor lr", {"lr": torch.tensor(-0.1)}),
    BadCase("2-element tensor lr", {"lr": torch.tensor([0.1, 0.1])}),
    BadCase("negative eps", {"eps": -1e-8}),
    BadCase("negative weight_decay", {"weight_decay": -0.5}),
    BadCase("negative momentum", {"momentum": -0.5}),
    # (ASGD's alpha is the power of its step size's decay, which torch does not check)
    BadCase(
        "negative alpha", {"alpha": -0.5}, where=lambda c: c.takes("alpha") and c.name != "ASGD"
    ),
    BadCase("negative lr_decay", {"lr_decay": -0.5}),
    BadCase("negative initial_accumulator_value", {"initial_accumulator_value": -1.0}),
    BadCase("negative momentum_decay", {"momentum_decay": -1.0}),
    BadCase("beta1 = 1", {"betas": (1.0, 0.999)}),
    BadCase("beta2 = 1", {"betas": (0.9, 1.0)}),
    BadCase("negative beta1", {"betas": (-0.1, 0.999)}),
    BadCase("rho > 1", {"rho": 1.5}),
    BadCase("negative rho", {"rho": -0.5}),
    BadCase("nesterov without momentum", {"nesterov": True}),
    BadCase("nesterov with dampening", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}),
    BadCase("fused and foreach", {"fused": True, "foreach": True}),
    BadCase("fused and differentiable", {"fused": True, "differentiable": True}),
    BadCase("fused with an integer param", {"fused": True}, _int),
    BadCase("fused with a complex param", {"fused": True}, _complex),
    BadCase("capturable on the CPU", {"capturable": True}),
    BadCase("unknown keyword", {"bogus": 1}, where=every),
    BadCase("empty parameter list", {}, list),
    BadCase("non-leaf parameter", {}, lambda: [Parameter(torch.randn(2)) * 2]),
]


def _bad_cases() -> list[Any]:
    out = []
    for case in BAD_CASES:
        for name in case.algorithms():
            out.append(pytest.param(name, case, id=f"{name}-{case.desc.replace(' ', '_')}"))
    return out


@pytest.mark.parametrize("name,case", _bad_cases())
def test_bad_hyperparameter_same_error(name: str, case: BadCase) -> None:
    """Same phase, exception type and ``str(exception)`` as torch.optim."""
    torch_cls, ours_cls = OPTIMIZERS[name].pair
    expected = outcome(torch_cls, case.params(), dict(case.kwargs))
    assert expected is not None, f"torch accepts {case.desc}; the case is wrong"
    got = outcome(ours_cls, case.params(), dict(case.kwargs))
    if (
        expected[1] is TypeError and got is not None
    ):  # the class name in the message differs only by module
        assert got[:2] == expected[:2]
        assert got[2] == expected[2]
    else:
        assert got == expected


@pytest.mark.parametrize("name", ALGORITHMS)
def test_duplicate_params_warn_like_torch(name: str) -> None:
    """A group with a parameter twice warns with torch's category and message."""
    torch_cls, ours_cls = OPTIMIZERS[name].pair
    p = Parameter(torch.randn(2, 2))  # a matrix: Muon takes no other
    messages = []
    for cls in (torch_cls, ours_cls):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cls([p, p])
        messages.append([(w.category, str(w.message)) for w in caught])
    assert messages[0] and messages[1] == messages[0]
    assert any(re.search("duplicate parameters", m) for _, m in messages[1])
