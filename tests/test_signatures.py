"""Constructor signatures, ``defaults``, ``repr`` and docs equal torch.optim's; the table's
facts about them (tests/optimizer_table.py) are torch's."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch.nn import Parameter

from .optimizer_table import ALGORITHMS, IMPLS, MOMENTOPT_OPTIONS, OPTIMIZERS

# A few non-default configurations per class, on top of torch's optim_db inputs.
EXTRA_KWARGS = {
    "SGD": [{"lr": 0.1, "momentum": 0.9, "nesterov": True, "foreach": True}],
    "Adagrad": [{"lr_decay": 0.1, "initial_accumulator_value": 0.5, "fused": True}],
    "Adadelta": [{"rho": 0.5, "capturable": True}],
    "RMSprop": [{"centered": True, "momentum": 0.5, "foreach": False}],
    "Adam": [{"betas": (torch.tensor(0.8), torch.tensor(0.9)), "fused": True}],
    "AdamW": [{"amsgrad": True, "weight_decay": 0.5, "maximize": True}],
    "NAdam": [{"decoupled_weight_decay": True, "momentum_decay": 0.1, "differentiable": True}],
    "Adamax": [{"betas": (0.5, 0.6), "eps": 1e-3, "foreach": True, "capturable": True}],
    "RAdam": [{"decoupled_weight_decay": True, "weight_decay": 0.1, "differentiable": True}],
    "SparseAdam": [{"betas": (0.5, 0.6), "eps": 1e-3, "maximize": True}],
    "Adafactor": [{"eps": (1e-30, 1e-2), "d": 2.0, "beta2_decay": -0.5, "foreach": True}],
    "Muon": [{"nesterov": False, "adjust_lr_fn": "match_rms_adamw", "ns_steps": 3}],
    "Rprop": [{"etas": (0.3, 1.1), "step_sizes": (1e-4, 2.0), "capturable": True}],
    "ASGD": [{"lambd": 1e-3, "alpha": 0.5, "t0": 10.0, "weight_decay": 0.1, "foreach": True}],
}


def _configs() -> list[object]:
    out = []
    for name in ALGORITHMS:
        kwargs = [inp.kwargs for inp in OPTIMIZERS[name].inputs(torch.float32)] + EXTRA_KWARGS[name]
        for i, kw in enumerate(kwargs):
            out.append(pytest.param(name, kw, id=f"{name}-{i}"))
    return out


@pytest.mark.parametrize("name", ALGORITHMS)
def test_signature_equal(name: str) -> None:
    """Names, order, kinds, defaults of the constructor's parameters."""
    torch_cls, ours_cls = OPTIMIZERS[name].pair
    ours = dict(inspect.signature(ours_cls).parameters)
    theirs = inspect.signature(torch_cls).parameters
    assert list(ours)[-len(MOMENTOPT_OPTIONS) :] == list(MOMENTOPT_OPTIONS)
    for option in MOMENTOPT_OPTIONS:  # momentopt's own: last, keyword-only, off by default
        extra = ours.pop(option)
        assert extra.kind is extra.KEYWORD_ONLY and extra.default is MOMENTOPT_OPTIONS[option]
    assert list(ours) == list(theirs)
    for key in theirs:
        assert ours[key].kind == theirs[key].kind, key
        assert ours[key].default == theirs[key].default, key
        assert type(ours[key].default) is type(theirs[key].default), key


@pytest.mark.parametrize("name", ALGORITHMS)
def test_subclass_and_doc(name: str) -> None:
    ours_cls = OPTIMIZERS[name].ours_cls
    assert issubclass(ours_cls, torch.optim.Optimizer)
    assert ours_cls.__name__ == name
    assert ours_cls.__doc__ and ours_cls.__doc__.strip()
    assert ours_cls.step.__doc__ and ours_cls.step.__doc__.strip()


@pytest.mark.parametrize("name,kwargs", _configs())
def test_defaults_and_repr_equal(name: str, kwargs: dict) -> None:
    """``defaults`` and ``repr`` (which prints every group key) as torch's, and the groups."""
    torch_cls, ours_cls = OPTIMIZERS[name].pair
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


# -- the table's facts about the classes -------------------------------------------------------
def test_table_lists_every_algorithm_once() -> None:
    assert list(OPTIMIZERS) == [
        "SGD",
        "Adagrad",
        "Adadelta",
        "RMSprop",
        "Adam",
        "AdamW",
        "NAdam",
        "Adamax",
        "RAdam",
        "SparseAdam",
        "Rprop",
        "ASGD",
        "Adafactor",
        "Muon",
    ]
    for name, case in OPTIMIZERS.items():
        assert case.name == name == case.torch_cls.__name__ == case.ours_cls.__name__
        assert case.torch_cls is getattr(torch.optim, name)
        assert case.info.optim_cls is case.torch_cls


@pytest.mark.parametrize("name", ALGORITHMS)
def test_table_keywords_are_the_signatures(name: str) -> None:
    """``hyperparameters`` and ``impls`` are torch's constructor keywords (and ours, which
    test_signature_equal holds equal to torch's): in order, less the IMPLS; the IMPLS present."""
    case = OPTIMIZERS[name]
    for cls in case.pair:
        keywords = [
            k for k in inspect.signature(cls).parameters if k not in ("params", *MOMENTOPT_OPTIONS)
        ]
        assert tuple(k for k in keywords if k not in IMPLS) == case.hyperparameters, cls
        assert {k for k in keywords if k in IMPLS} == case.impls, cls


@pytest.mark.parametrize("name", ALGORITHMS)
def test_table_tensor_hyperparameters_as_annotated(name: str) -> None:
    """``tensor_hyperparameters``: those typed ``float | Tensor`` (betas: per element) in
    torch's signature and in ours."""
    case = OPTIMIZERS[name]
    for cls in case.pair:
        annotated = {
            k
            for k, p in inspect.signature(cls).parameters.items()
            if k != "params" and "Tensor" in str(p.annotation)
        }
        assert annotated == case.tensor_hyperparameters, cls


@pytest.mark.parametrize("name", ALGORITHMS)
def test_table_agrees_with_torchs_optim_db(name: str) -> None:
    """The implementation flags, fused support on the CPU, sparse and complex support are
    what torch's OptimizerInfo says."""
    case = OPTIMIZERS[name]
    info = case.info
    declared = set(info.supported_impls) | ({"capturable"} if info.has_capturable_arg else set())
    assert declared == case.impls
    assert ("cpu" in info.supports_fused_on) == case.supports("fused")
    assert (info.supports_sparse or info.only_supports_sparse_grads) == case.sparse_grads
    assert info.only_supports_sparse_grads == case.sparse_only
    assert info.supports_complex == case.complex_params


@pytest.mark.parametrize("name", ALGORITHMS)
def test_table_fused_path(name: str) -> None:
    """A torch kernel exactly where ``fused=True`` exists, and torch has it."""
    case = OPTIMIZERS[name]
    assert (case.fused_kernel is not None) == case.supports("fused")
    if case.fused_kernel is not None:
        assert callable(getattr(torch, case.fused_kernel))
