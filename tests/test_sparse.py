"""Sparse gradients (nn.Embedding(sparse=True)): SGD and Adagrad train as torch.optim does;
every other case is refused with torch's exception and message."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import pytest
import torch
from torch import nn

from .helpers import (
    PAIRS,
    assert_close_report,
    assert_models_match,
    assert_state_dicts_match,
    widened,
)

STEPS = 8


class SparseNet(nn.Module):
    """A sparse-gradient embedding next to a dense linear layer, in one param group."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(12, 4, sparse=True)
        self.fc = nn.Linear(4, 2)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.fc(self.emb(idx).tanh())


def batches(steps: int) -> list[torch.Tensor]:
    """Index batches with repeats (duplicate indices make uncoalesced gradients)."""
    g = torch.Generator().manual_seed(5)
    return [torch.randint(0, 12, (6,), generator=g) for _ in range(steps)]


def outcome(cls: type, model: nn.Module, kwargs: dict[str, Any]) -> tuple[type, str] | torch.optim.Optimizer:
    """Train; the optimizer, or (type, message) of the first error."""
    try:
        opt = cls(model.parameters(), **copy.deepcopy(kwargs))
        for idx in batches(STEPS):
            opt.zero_grad()
            model(idx).pow(2).sum().backward()
            opt.step()
    except Exception as err:
        return type(err), str(err)
    return opt


TRAINS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "foreach": True}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "foreach": False}),
    ("SGD", {"lr": 0.1, "maximize": True}),
    ("Adagrad", {"lr": 0.1}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.1, "foreach": True}),
    ("Adagrad", {"lr": 0.1, "initial_accumulator_value": 0.2, "foreach": False}),
    ("Adagrad", {"lr": 0.1, "maximize": True, "eps": 1e-3}),
]
REFUSALS = [
    ("SGD", {"weight_decay": 0.1}),
    ("SGD", {"weight_decay": 0.1, "momentum": 0.9, "foreach": True}),
    ("Adagrad", {"weight_decay": 0.1}),
    ("Adagrad", {"fused": True}),
    ("SGD", {"fused": True}),
    ("SGD", {"differentiable": True, "momentum": 0.9}),
    ("Adadelta", {}),
    ("RMSprop", {}),
    ("Adam", {}),
    ("Adam", {"foreach": True}),
    ("AdamW", {}),
    ("NAdam", {}),
]


def _id(case: tuple[str, dict[str, Any]]) -> str:
    name, kwargs = case
    return name + "-" + "-".join(f"{k}={v}" for k, v in kwargs.items())


@pytest.fixture(autouse=True)
def _quiet_sparse_invariant_warning() -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse invariant checks")
        yield


@pytest.mark.parametrize("case", TRAINS, ids=_id)
def test_sparse_training_matches_torch(case: tuple[str, dict[str, Any]]) -> None:
    name, kwargs = case
    model_t = SparseNet()
    model_o = copy.deepcopy(model_t)
    model_r = widened(model_t)  # the float64 reference (see helpers.K)
    opt_t = outcome(PAIRS[name][0], model_t, kwargs)
    opt_o = outcome(PAIRS[name][1], model_o, kwargs)
    opt_r = outcome(PAIRS[name][0], model_r, kwargs)
    assert isinstance(opt_t, torch.optim.Optimizer), opt_t
    assert isinstance(opt_o, torch.optim.Optimizer), opt_o
    assert isinstance(opt_r, torch.optim.Optimizer), opt_r
    assert model_o.emb.weight.grad.is_sparse
    assert_models_match(model_o, model_t, model_r)
    assert_state_dicts_match(*(_dense_state(opt) for opt in (opt_o, opt_t, opt_r)))


def _dense_state(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """The state dict with sparse state tensors made dense."""
    sd = opt.state_dict()
    for s in sd["state"].values():
        for k, v in s.items():
            if isinstance(v, torch.Tensor) and v.is_sparse:
                s[k] = v.to_dense()
    return sd


@pytest.mark.parametrize("case", REFUSALS, ids=_id)
def test_sparse_refusals_match_torch(case: tuple[str, dict[str, Any]]) -> None:
    name, kwargs = case
    model_t = SparseNet()
    model_o = copy.deepcopy(model_t)
    expected = outcome(PAIRS[name][0], model_t, kwargs)
    got = outcome(PAIRS[name][1], model_o, kwargs)
    assert isinstance(expected, tuple), "torch accepts this case"
    assert got == expected
    for pt, po in zip(model_t.parameters(), model_o.parameters(), strict=True):
        assert_close_report(po, pt, "param", rtol=0.0, atol=0.0)  # refused before any change
