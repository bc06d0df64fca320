"""Constructor signatures, ``defaults``, ``repr`` and docs equal torch.optim's."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch.nn import Parameter

from .helpers import ALGORITHMS, PAIRS, optim_inputs

# A few non-default configurations per class, on top of torch's optim_db inputs.
EXTRA_KWARGS = {
    "SGD": [{"lr": 0.1, "momentum": 0.9, "nesterov": True, "foreach": True}],
    "Adagrad": [{"lr_decay": 0.1, "initial_accumulator_value": 0.5, "fused": True}],
    "Adadelta": [{"rho": 0.5, "capturable": True}],
    "RMSprop": [{"centered": True, "momentum": 0.5, "foreach": False}],
    "Adam": [{"betas": (torch.tensor(0.8), torch.tensor(0.9)), "fused": True}],
    "AdamW": [{"amsgrad": True, "weight_decay": 0.5, "maximize": True}],
    "NAdam": [{"decoupled_weight_decay": True, "momentum_decay": 0.1, "differentiable": True}],
}


def _configs() -> list[object]:
    out = []
    for name in ALGORITHMS:
        kwargs = [inp.kwargs for inp in optim_inputs(name, torch.float32)] + EXTRA_KWARGS[name]
        for i, kw in enumerate(kwargs):
            out.append(pytest.param(name, kw, id=f"{name}-{i}"))
    return out


@pytest.mark.parametrize("name", ALGORITHMS)
def test_signature_equal(name: str) -> None:
    """Names, order, kinds, defaults of the constructor's parameters."""
    torch_cls, ours_cls = PAIRS[name]
    ours = inspect.signature(ours_cls).parameters
    theirs = inspect.signature(torch_cls).parameters
    assert list(ours) == list(theirs)
    for key in theirs:
        assert ours[key].kind == theirs[key].kind, key
        assert ours[key].default == theirs[key].default, key
        assert type(ours[key].default) is type(theirs[key].default), key


@pytest.mark.parametrize("name", ALGORITHMS)
def test_subclass_and_doc(name: str) -> None:
    ours_cls = PAIRS[name][1]
    assert issubclass(ours_cls, torch.optim.Optimizer)
    assert ours_cls.__name__ == name
    assert ours_cls.__doc__ and ours_cls.__doc__.strip()
    assert ours_cls.step.__doc__ and ours_cls.step.__doc__.strip()


@pytest.mark.parametrize("name,kwargs", _configs())
def test_defaults_and_repr_equal(name: str, kwargs: dict) -> None:
    """``defaults`` and ``repr`` (which prints every group key) as torch's, and the groups."""
    torch_cls, ours_cls = PAIRS[name]
    p = Parameter(torch.randn(2, 2))
    opt_t = torch_cls([p], **kwargs)
    opt_o = ours_cls([p], **kwargs)
    assert repr(opt_o) == repr(opt_t)
    assert list(opt_o.defaults) == list(opt_t.defaults)
    assert repr(opt_o.defaults) == repr(opt_t.defaults)
    g_t = {k: v for k, v in opt_t.param_groups[0].items() if k != "params"}
    g_o = {k: v for k, v in opt_o.param_groups[0].items() if k != "params"}
    assert list(g_o) == list(g_t)
    assert repr(g_o) == repr(g_t)
