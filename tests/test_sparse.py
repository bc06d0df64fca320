"""Sparse gradients (nn.Embedding(sparse=True)): the algorithms the table says take them
(SGD, Adagrad and SparseAdam, which takes nothing else) train as torch.optim does; every other
case is refused with torch's exception and message."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import pytest
import torch
from torch import nn

from .helpers import (
    assert_close_report,
    assert_models_match,
    assert_state_dicts_match,
    widened,
)
from .optimizer_table import OPTIMIZERS, names

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


def outcome(
    cls: type, model: nn.Module, kwargs: dict[str, Any], sparse_only: bool = False
) -> tuple[type, str] | torch.optim.Optimizer:
    """Train (``sparse_only``: the embedding alone); the optimizer, or (type, message) of the
    first error."""
    try:
        params = model.emb.parameters() if sparse_only else model.parameters()
        opt = cls(params, **copy.deepcopy(kwargs))
        for idx in batches(STEPS):
            opt.zero_grad()
            model(idx).pow(2).sum().backward()
            opt.step()
    except Exception as err:  # noqa: BLE001 — whatever torch raises: compared with ours
        return type(err), str(err)
    return opt


SPARSE = names(lambda case: case.sparse_grads)
DENSE_ONLY = names(lambda case: not case.sparse_grads)

# For each algorithm that takes sparse gradients: configurations that train on them ...
TRAINS_WITH = {
    "SGD": [
        {"lr": 0.1},
        {"lr": 0.1, "momentum": 0.9},
        {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "foreach": True},
        {"lr": 0.1, "momentum": 0.9, "nesterov": True, "foreach": False},
        {"lr": 0.1, "maximize": True},
    ],
    "Adagrad": [
        {"lr": 0.1},
        {"lr": 0.1, "lr_decay": 0.1, "foreach": True},
        {"lr": 0.1, "initial_accumulator_value": 0.2, "foreach": False},
        {"lr": 0.1, "maximize": True, "eps": 1e-3},
    ],
    "SparseAdam": [
        {"lr": 0.04},  # torch's optim_db's configuration for sparse gradients
        {"lr": 0.01, "betas": (0.8, 0.9), "maximize": True},
        {"lr": torch.tensor(0.01), "eps": 1e-3},
    ],
}
# ... and configurations torch refuses them with (weight decay, and fused=True where it exists).
REFUSED_WITH = {
    "SGD": [
        {"weight_decay": 0.1},
        {"weight_decay": 0.1, "momentum": 0.9, "foreach": True},
        {"fused": True},
        {"differentiable": True, "momentum": 0.9},
    ],
    "Adagrad": [{"weight_decay": 0.1}, {"fused": True}],
    "SparseAdam": [{}],  # the linear layer's dense gradient
}
# The others refuse sparse gradients whatever the executor.
DENSE_ONLY_FLAGS = ({}, {"foreach": True})

TRAINS = [(name, kwargs) for name in SPARSE for kwargs in TRAINS_WITH[name]]
REFUSALS = [(name, kwargs) for name in SPARSE for kwargs in REFUSED_WITH[name]] + [
    (name, flags) for name in DENSE_ONLY for flags in DENSE_ONLY_FLAGS
]


def test_sparse_support_as_torch_declares() -> None:
    """The table's ``sparse_grads`` is torch's optim_db ``supports_sparse``, and every such
    algorithm has configurations here."""
    for name, case in OPTIMIZERS.items():
        declared = case.info.supports_sparse or case.info.only_supports_sparse_grads
        assert case.sparse_grads == declared, name
    assert set(TRAINS_WITH) == set(REFUSED_WITH) == set(SPARSE)


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
    model_r = widened(model_t)  # the float64 reference (the row's tolerances.drift)
    row = OPTIMIZERS[name]
    opt_t = outcome(row.torch_cls, model_t, kwargs, row.sparse_only)
    opt_o = outcome(row.ours_cls, model_o, kwargs, row.sparse_only)
    opt_r = outcome(row.torch_cls, model_r, kwargs, row.sparse_only)
    assert isinstance(opt_t, torch.optim.Optimizer), opt_t
    assert isinstance(opt_o, torch.optim.Optimizer), opt_o
    assert isinstance(opt_r, torch.optim.Optimizer), opt_r
    assert model_o.emb.weight.grad.is_sparse
    assert_models_match(model_o, model_t, model_r, tolerances=row.tolerances)
    assert_state_dicts_match(
        *(_dense_state(opt) for opt in (opt_o, opt_t, opt_r)), tolerances=row.tolerances
    )


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
    expected = outcome(OPTIMIZERS[name].torch_cls, model_t, kwargs)
    got = outcome(OPTIMIZERS[name].ours_cls, model_o, kwargs)
    assert isinstance(expected, tuple), "torch accepts this case"
    assert got == expected
    for pt, po in zip(model_t.parameters(), model_o.parameters(), strict=True):
        assert_close_report(po, pt, "param", rtol=0.0, atol=0.0)  # refused before any change
