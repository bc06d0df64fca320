"""Each algorithm's hyperparameter table against torch.optim itself: the defaults (values and
key order), the keys torch's ``__setstate__`` fills in, and each range's refusals."""

from __future__ import annotations

import inspect
import itertools
from typing import Any

import pytest
import torch
from torch.nn import Parameter

from momentopt.algorithms.hyperparameters import Hyperparameter, HyperparameterTable

from .helpers import ALGORITHMS, PAIRS
from .optimizer_table import MOMENTOPT_OPTIONS


def _params() -> list[torch.Tensor]:
    return [Parameter(torch.randn(2, 3))]  # a matrix: Muon takes no other


def _table(name: str) -> HyperparameterTable:
    return PAIRS[name][1].hyperparameter_table


def _outside(row: Hyperparameter) -> list[Any]:
    """Values just outside ``row``'s range: below 0 (0 itself for an open bottom) and (if
    bounded) above its top; for a pair, each number in turn with the other one at its default."""
    assert row.bound is not None
    bound = row.bound
    numbers = [0.0 if bound.open_low else -1e-3]
    if bound.high is not None:
        numbers.append(bound.high if bound.open_high else bound.high + 1e-3)
    if not bound.pair:
        return numbers
    first, second = row.default
    return [v for x in numbers for v in ((x, second), (first, x))]


def _ranged(name: str) -> list[Hyperparameter]:
    return [row for row in _table(name) if row.bound is not None]


def _refusal(cls: type, kwargs: dict[str, Any]) -> tuple[type, str] | None:
    try:
        cls(_params(), **kwargs)
    except (ValueError, TypeError, RuntimeError) as err:
        return type(err), str(err)
    return None


@pytest.mark.parametrize("name", ALGORITHMS)
def test_defaults_are_torchs(name: str) -> None:
    """The table's defaults are torch's ``defaults``, key order included, and ours."""
    torch_cls, ours_cls = PAIRS[name]
    theirs = torch_cls(_params()).defaults
    table = _table(name).defaults()
    assert list(table) == list(theirs)
    assert repr(table) == repr(theirs)
    assert repr(ours_cls(_params()).defaults) == repr(theirs)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_signature_defaults_are_the_tables(name: str) -> None:
    """The constructor's signature (which must restate them) has the table's defaults."""
    table = _table(name)
    for key, parameter in inspect.signature(PAIRS[name][1]).parameters.items():
        if key not in ("params", *MOMENTOPT_OPTIONS):  # (momentopt's own: not torch's)
            assert repr(parameter.default) == repr(table[key].default), key


@pytest.mark.parametrize("name", ALGORITHMS)
def test_load_defaults_are_what_torch_fills_in(name: str) -> None:
    """A saved group with no key but ``params``, loaded into torch: the keys torch's
    ``__setstate__`` fills in, their values and their order are the table's."""
    torch_cls, ours_cls = PAIRS[name]
    saved = torch_cls(_params()).state_dict()
    saved["param_groups"] = [{"params": g["params"]} for g in saved["param_groups"]]
    opt = torch_cls(_params())
    opt.load_state_dict(saved)
    filled = {k: v for k, v in opt.param_groups[0].items() if k != "params"}
    assert repr(filled) == repr(_table(name).load_defaults())
    assert repr(ours_cls.flag_defaults()) == repr(filled)


def _range_cases() -> list[Any]:
    return [
        pytest.param(name, row.name, value, id=f"{name}-{row.name}={value}")
        for name in ALGORITHMS
        for row in _ranged(name)
        for value in _outside(row)
    ]


@pytest.mark.parametrize("name,key,value", _range_cases())
def test_range_refuses_just_outside_like_torch(name: str, key: str, value: Any) -> None:
    """Torch's constructor refuses the value; ours, and the table's check of a group holding
    it, raise the same exception type with the same message."""
    torch_cls, ours_cls = PAIRS[name]
    refusal = _refusal(torch_cls, {key: value})
    assert refusal is not None
    assert _refusal(ours_cls, {key: value}) == refusal
    group = {**_table(name).defaults(), key: value}
    with pytest.raises(refusal[0]) as info:
        _table(name).check(group)
    assert str(info.value) == refusal[1]


@pytest.mark.parametrize("name", ALGORITHMS)
def test_range_edges_accepted_like_torch(name: str) -> None:
    """0 (a tiny positive number for an open bottom), and a closed range's top, pass in torch
    and in ours."""
    for row in _ranged(name):
        assert row.bound is not None
        bottom = 1e-30 if row.bound.open_low else 0.0
        numbers = [bottom] + (
            [row.bound.high] if row.bound.high and not row.bound.open_high else []
        )
        values = [(x, x) for x in numbers] if row.bound.pair else numbers
        for value in values:
            assert _refusal(PAIRS[name][0], {row.name: value}) is None, (row.name, value)
            assert _refusal(PAIRS[name][1], {row.name: value}) is None, (row.name, value)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_checks_run_in_torchs_order(name: str) -> None:
    """Two values out of range at once: the refusal is the one torch checks first."""
    torch_cls, ours_cls = PAIRS[name]
    for a, b in itertools.combinations(_ranged(name), 2):
        kwargs = {a.name: _outside(a)[0], b.name: _outside(b)[0]}
        assert _refusal(ours_cls, kwargs) == _refusal(torch_cls, kwargs), kwargs


def test_nan_passes_sgds_ranges_as_in_torch() -> None:
    """SGD writes its checks as refusals (``lr < 0``), so NaN passes; the others refuse it."""
    nan = float("nan")
    for name in ALGORITHMS:
        torch_cls, ours_cls = PAIRS[name]
        assert (_refusal(ours_cls, {"lr": nan}) is None) == (
            _refusal(torch_cls, {"lr": nan}) is None
        )
    assert _refusal(PAIRS["SGD"][1], {"lr": nan, "momentum": nan, "weight_decay": nan}) is None
