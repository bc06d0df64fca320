"""state_dict / load_state_dict: checkpoints move both ways with torch.optim, old dicts load,
malformed dicts are refused without changing anything, inputs are never mutated."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

import momentopt

from .helpers import (
    Net,
    assert_state_dicts_close,
    lockstep,
    loss_of,
    make_inputs,
    model_for,
    sparse_if_needed,
)
from .optimizer_table import (
    ALGORITHMS,
    OPTIMIZERS,
    OptimizerCase,
    Predicate,
    every,
    keeps,
    supports,
    takes,
)

DTYPE = torch.float32
WARMUP, CONTINUE = 4, 5
EXACT = {"rtol": 0.0, "atol": 0.0}

# Flags torch.optim added over the years; a state_dict saved before them lacks them.
NEWER_FLAGS = (
    "foreach",
    "maximize",
    "differentiable",
    "capturable",
    "fused",
    "decoupled_weight_decay",
)


def tol(name: str) -> dict[str, float]:
    """The row's tolerance for DTYPE runs judged against torch's directly (no float64 run)."""
    return OPTIMIZERS[name].tolerances.direct[DTYPE].kwargs()


def train(model: nn.Module, opt: torch.optim.Optimizer, xs: list[torch.Tensor]) -> None:
    """Plain training steps (every parameter gets a gradient)."""
    for x in xs:
        opt.zero_grad()
        loss_of(model(x)).backward()
        sparse_if_needed(opt, model.parameters())
        opt.step()


def configs(richest: int = 3) -> list[Any]:
    """(algorithm, kwargs): per algorithm, torch's default optim_db input and its ``richest``
    inputs with the most keyword arguments (the most flags at once)."""
    out = []
    for name, case in OPTIMIZERS.items():
        inputs = case.inputs(DTYPE)
        chosen = [inputs[0], *sorted(inputs[1:], key=lambda i: -len(i.kwargs))[:richest]]
        for inp in chosen:
            out.append(pytest.param(name, inp.kwargs, id=f"{name}-{inp.desc.replace(' ', '_')}"))
    return out


def build(cls: type, model: nn.Module, kwargs: dict[str, Any]) -> torch.optim.Optimizer:
    return cls(model.parameters(), **copy.deepcopy(kwargs))


def assert_models_equal(a: nn.Module, b: nn.Module, **tol: float) -> None:
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, **tol, msg=f"param {name}")


def assert_same_nested(a: Any, b: Any, where: str = "") -> None:
    """Deep equality of nested dicts/lists with tensors compared exactly (values, dtype, shape)."""
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.device == b.device, where
        assert torch.equal(a, b) or _equal_nan(a, b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_same_nested(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            assert_same_nested(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, where


def _equal_nan(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal, NaN where NaN (floating-point and complex tensors)."""
    inexact = a.is_floating_point() or a.is_complex()
    return inexact and torch.allclose(a, b, rtol=0.0, atol=0.0, equal_nan=True)


# -- (a) checkpoints move both ways ----------------------------------------------------------
def _assert_loaded_and_continue_alike(name, model_t, opt_t, model_o, opt_o, xs) -> None:
    """Right after loading, the same state dict (values and layout) as torch's; after
    training on ``xs`` in lock-step, the same models and state."""
    assert_state_dicts_close(opt_o.state_dict(), opt_t.state_dict(), **EXACT)
    assert _layout(opt_o.state_dict()) == _layout(opt_t.state_dict())
    for _ in lockstep(model_t, opt_t, model_o, opt_o, xs):
        pass
    assert_models_equal(model_o, model_t, **tol(name))
    assert_state_dicts_close(opt_o.state_dict(), opt_t.state_dict(), **tol(name))


@pytest.mark.parametrize("direction", ["torch_to_ours", "ours_to_torch"])
@pytest.mark.parametrize("name,kwargs", configs(richest=1))
def test_checkpoint_moves_and_training_continues(name: str, kwargs: dict, direction: str) -> None:
    """Train one side, load its state_dict into the other, continue both in lock step."""
    torch_cls, ours_cls = OPTIMIZERS[name].pair
    src_cls, dst_cls = (
        (torch_cls, ours_cls) if direction == "torch_to_ours" else (ours_cls, torch_cls)
    )
    model_src = model_for(OPTIMIZERS[name], DTYPE)
    opt_src = build(src_cls, model_src, kwargs)
    xs = make_inputs(DTYPE, WARMUP + CONTINUE)
    train(model_src, opt_src, xs[:WARMUP])
    model_dst = copy.deepcopy(model_src)
    opt_dst = build(dst_cls, model_dst, kwargs)
    # a real checkpoint is a copy (torch.optim's load aliases same-dtype tensors it is given)
    opt_dst.load_state_dict(copy.deepcopy(opt_src.state_dict()))
    assert_state_dicts_close(opt_dst.state_dict(), opt_src.state_dict(), **EXACT)
    for _ in lockstep(model_src, opt_src, model_dst, opt_dst, xs[WARMUP:]):
        pass
    assert_models_equal(model_dst, model_src, **tol(name))
    assert_state_dicts_close(opt_dst.state_dict(), opt_src.state_dict(), **tol(name))


# -- (b) the layout itself -------------------------------------------------------------------
def _layout(sd: dict[str, Any]) -> Any:
    """Everything about a state_dict but the numbers: keys in order, types, dtypes, shapes."""

    def describe(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return ("tensor", v.dtype, tuple(v.shape), v.device.type, v.requires_grad)
        return (type(v).__name__,)

    state = {k: [(key, describe(v)) for key, v in s.items()] for k, s in sd["state"].items()}
    groups = [[(key, describe(v)) for key, v in g.items()] for g in sd["param_groups"]]
    return list(sd), list(sd["state"]), state, groups, [g["params"] for g in sd["param_groups"]]


@pytest.mark.parametrize("name,kwargs", configs())
def test_layout_equal_after_training(name: str, kwargs: dict, named: bool = True) -> None:
    """Same keys (in order), value types, dtypes, shapes, devices; param ids and names."""
    torch_cls, ours_cls = OPTIMIZERS[name].pair
    model_t = model_for(OPTIMIZERS[name], DTYPE)
    model_o = copy.deepcopy(model_t)
    params_t = model_t.named_parameters() if named else model_t.parameters()
    params_o = model_o.named_parameters() if named else model_o.parameters()
    opt_t = torch_cls(params_t, **copy.deepcopy(kwargs))
    opt_o = ours_cls(params_o, **copy.deepcopy(kwargs))
    assert _layout(opt_o.state_dict()) == _layout(opt_t.state_dict())  # before any step
    for _ in lockstep(model_t, opt_t, model_o, opt_o, make_inputs(DTYPE, 3)):
        pass
    sd_t, sd_o = opt_t.state_dict(), opt_o.state_dict()
    assert _layout(sd_o) == _layout(sd_t)
    if named:
        assert sd_o["param_groups"][0]["param_names"] == sd_t["param_groups"][0]["param_names"]


# -- (c) state_dicts from older torch versions -----------------------------------------------
def make_old(sd: dict[str, Any], case: OptimizerCase) -> dict[str, Any]:
    """``sd`` as an older torch wrote it: no newer flags (those ``case``'s torch fills in on
    load: a flag it does not, as Adafactor's ``maximize``, was there from its first release),
    ``step`` a Python float."""
    old = copy.deepcopy(sd)
    for group in old["param_groups"]:
        for flag in NEWER_FLAGS:
            if flag in case.load_defaults:
                group.pop(flag, None)
    for s in old["state"].values():
        if isinstance(s.get("step"), torch.Tensor):
            s["step"] = float(s["step"].item())
    return old


@pytest.mark.parametrize("name,kwargs", configs(richest=1))
def test_old_state_dict_loads_like_torch(name: str, kwargs: dict) -> None:
    """The same old dict loaded into torch and into ours: same groups, state and training."""
    torch_cls, ours_cls = OPTIMIZERS[name].pair
    model = model_for(OPTIMIZERS[name], DTYPE)
    opt = build(torch_cls, model, kwargs)
    xs = make_inputs(DTYPE, WARMUP + CONTINUE)
    train(model, opt, xs[:WARMUP])
    old = make_old(opt.state_dict(), OPTIMIZERS[name])
    model_t, model_o = copy.deepcopy(model), copy.deepcopy(model)
    opt_t, opt_o = build(torch_cls, model_t, kwargs), build(ours_cls, model_o, kwargs)
    opt_t.load_state_dict(copy.deepcopy(old))
    opt_o.load_state_dict(copy.deepcopy(old))
    _assert_loaded_and_continue_alike(name, model_t, opt_t, model_o, opt_o, xs[WARMUP:])


@pytest.mark.parametrize(
    "name,saved_kwargs,new_kwargs,drop",
    [
        ("Adam", {}, {"amsgrad": True}, "amsgrad"),
        ("AdamW", {}, {"amsgrad": True}, "amsgrad"),
        ("RMSprop", {}, {"centered": True}, "centered"),
        ("RMSprop", {}, {"momentum": 0.5}, "momentum"),
        ("SGD", {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True}, "nesterov"),
    ],
)
def test_missing_flag_takes_torch_default_not_current_value(
    name: str, saved_kwargs: dict, new_kwargs: dict, drop: str
) -> None:
    """A saved group lacking a flag gets torch's default for it, whatever the optimizer had."""
    assert drop in OPTIMIZERS[name].load_defaults  # (what loading fills in: the table's row)
    torch_cls, ours_cls = OPTIMIZERS[name].pair
    model = Net(DTYPE)
    opt = build(torch_cls, model, saved_kwargs)
    xs = make_inputs(DTYPE, 6)
    train(model, opt, xs[:3])
    old = copy.deepcopy(opt.state_dict())
    for group in old["param_groups"]:
        del group[drop]
    model_t, model_o = copy.deepcopy(model), copy.deepcopy(model)
    opt_t, opt_o = build(torch_cls, model_t, new_kwargs), build(ours_cls, model_o, new_kwargs)
    opt_t.load_state_dict(copy.deepcopy(old))
    opt_o.load_state_dict(copy.deepcopy(old))
    assert_state_dicts_close(opt_o.state_dict(), opt_t.state_dict(), **EXACT)
    for _ in lockstep(model_t, opt_t, model_o, opt_o, xs[3:]):
        pass
    assert_models_equal(model_o, model_t, **tol(name))


# -- (d) safe loading ------------------------------------------------------------------------
SAFE_KWARGS = {
    "SGD": {"momentum": 0.9},
    "Adagrad": {},
    "Adadelta": {},
    "RMSprop": {"centered": True, "momentum": 0.5},
    "Adam": {"amsgrad": True},
    "AdamW": {},
    "NAdam": {},
    "Adamax": {},
    "RAdam": {},
    "SparseAdam": {},
    "Rprop": {},
    "ASGD": {"t0": 1.0},
    "Adafactor": {},
    "Muon": {},
}
SECOND_LR = 0.02  # the second group's lr
TARGET_GROUP, TARGET = 1, 1  # the group and position of the parameter touched ('conv.bias')
NAN = float("nan")


def two_groups(cls: type, model: nn.Module, kwargs: dict[str, Any]) -> torch.optim.Optimizer:
    """``cls`` over ``model``'s named parameters in two groups, the second with its own lr."""
    named = list(model.named_parameters())
    groups = [{"params": named[:3]}, {"params": named[3:], "lr": SECOND_LR}]
    return cls(groups, **copy.deepcopy(kwargs))


def _trained(name: str) -> tuple[nn.Module, torch.optim.Optimizer]:
    model = model_for(OPTIMIZERS[name], DTYPE)
    opt = two_groups(OPTIMIZERS[name].ours_cls, model, SAFE_KWARGS[name])
    train(model, opt, make_inputs(DTYPE, 2))
    return model, opt


def _target(sd: dict[str, Any]) -> tuple[int, str, str]:
    """(param id, param name, a tensor state key) of the parameter the corruptions touch."""
    group = sd["param_groups"][TARGET_GROUP]
    index = group["params"][TARGET]
    tensor_keys = [
        k for k, v in sd["state"][index].items() if isinstance(v, torch.Tensor) and v.dim() > 0
    ]
    return index, group["param_names"][TARGET], tensor_keys[-1]


def _extra_group(sd: dict[str, Any]) -> list[str]:
    sd["param_groups"].append({**sd["param_groups"][0], "params": [], "param_names": []})
    return ["parameter groups", "3", "2"]


def _short_group(sd: dict[str, Any]) -> list[str]:
    group = sd["param_groups"][TARGET_GROUP]
    index = group["params"].pop()
    group["param_names"].pop()
    sd["state"].pop(index, None)
    return [f"param_groups[{TARGET_GROUP}]", "parameters"]


def _wrong_shape(sd: dict[str, Any]) -> list[str]:
    index, pname, key = _target(sd)
    sd["state"][index][key] = torch.zeros(7, 7)
    return [pname, repr(key), "shape"]


def _missing_key(sd: dict[str, Any]) -> list[str]:
    index, pname, key = _target(sd)
    del sd["state"][index][key]
    return [pname, repr(key), "missing"]


def _unknown_key(sd: dict[str, Any]) -> list[str]:
    index, pname, _ = _target(sd)
    sd["state"][index]["bogus_avg"] = torch.zeros(3)
    return [pname, "'bogus_avg'", "unknown"]


def _unknown_param(sd: dict[str, Any]) -> list[str]:
    index, _, _ = _target(sd)
    sd["state"][1000] = copy.deepcopy(sd["state"][index])
    return ["1000", "no parameter group"]


Apply = Callable[[dict[str, Any]], list[str]]  # corrupts in place; returns fragments of the message


def _group(changes: dict[str, Any], *fragments: str) -> Apply:
    """Set keys of the target group."""

    def apply(sd: dict[str, Any]) -> list[str]:
        sd["param_groups"][TARGET_GROUP].update(copy.deepcopy(changes))
        return [f"param_groups[{TARGET_GROUP}]", *fragments]

    return apply


def _drop(key: str) -> Apply:
    """Remove a key from the target group."""

    def apply(sd: dict[str, Any]) -> list[str]:
        del sd["param_groups"][TARGET_GROUP][key]
        return [f"param_groups[{TARGET_GROUP}]", "lacks", repr(key)]

    return apply


def _state(key: str | None, make: Callable[[Any], Any], *fragments: str) -> Apply:
    """Replace the target parameter's state ``key`` (None: its last tensor buffer) by
    ``make(old value)``."""

    def apply(sd: dict[str, Any]) -> list[str]:
        index, pname, buffer = _target(sd)
        name = buffer if key is None else key
        sd["state"][index][name] = make(sd["state"][index][name])
        return [f"state[{index}]", f"'{pname}'", repr(name), *fragments]

    return apply


def _structure(change: Callable[[dict[str, Any]], None], *fragments: str) -> Apply:
    def apply(sd: dict[str, Any]) -> list[str]:
        change(sd)
        return list(fragments)

    return apply


def _set_params(sd: dict[str, Any], value: Any) -> None:
    sd["param_groups"][TARGET_GROUP]["params"] = value


def _set_param_id(sd: dict[str, Any], value: Any) -> None:
    sd["param_groups"][TARGET_GROUP]["params"][TARGET] = value


def _set_entry(sd: dict[str, Any], value: Any) -> None:
    sd["state"][_target(sd)[0]] = value


@dataclass(frozen=True)
class Corruption:
    desc: str
    apply: Apply
    error: type[Exception] = ValueError
    where: Predicate = every  # the algorithms the corruption applies to (and is illegal for)


def _refuses(kwargs: dict[str, Any], message: str) -> Predicate:
    """The algorithms whose torch constructor refuses ``kwargs`` with ``message`` (the
    corruption's expected text is that class's wording)."""

    def where(case: OptimizerCase) -> bool:
        try:
            case.torch_cls([nn.Parameter(torch.randn(2, 2))], **kwargs)
        except (ValueError, TypeError) as err:
            return message in str(err)
        return False

    return where


def _unfilled(key: str) -> Predicate:
    """The algorithms taking ``key`` whose torch does not fill it in on load."""
    return lambda case: case.takes(key) and key not in case.load_defaults


CORRUPTIONS = [
    # fit: sizes, keys, shapes, ids
    Corruption("extra group", _extra_group),
    Corruption("group with a parameter fewer", _short_group),
    Corruption("state of the wrong shape", _wrong_shape),
    Corruption("missing state key", _missing_key, where=lambda case: not case.lazy_state),
    Corruption("unknown state key", _unknown_key),
    Corruption("state for an unknown parameter id", _unknown_param),
    # hyperparameters: what the constructor refuses, with its message, plus NaN
    Corruption("lr a string", _group({"lr": "fast"}, "'lr'", "str 'fast'"), TypeError),
    # (the allowed range as the note states it: "lr >= 0", or "lr > 0" for SparseAdam's)
    Corruption(
        "negative lr",
        _group({"lr": -0.1}, "Invalid learning rate: -0.1", "lr >"),
        where=_refuses({"lr": -0.1}, "Invalid learning rate"),
    ),
    Corruption(
        "negative lr (Adafactor's and Muon's wording)",
        _group({"lr": -0.1}, "Learning rate should be >= 0 but is: -0.1", "lr >= 0"),
        where=_refuses({"lr": -0.1}, "Learning rate should be"),
    ),
    Corruption("NaN lr", _group({"lr": NAN}, "lr", "nan")),
    Corruption("NaN tensor lr", _group({"lr": torch.tensor(NAN)}, "lr", "nan")),
    Corruption(
        "2-element tensor lr", _group({"lr": torch.ones(2)}, "'lr'", "1-element"), TypeError
    ),
    Corruption("no lr", _drop("lr")),
    Corruption("no weight_decay", _drop("weight_decay"), where=takes("weight_decay")),
    Corruption("no eps", _drop("eps"), where=_unfilled("eps")),
    Corruption("no momentum", _drop("momentum"), where=_unfilled("momentum")),
    Corruption("no betas", _drop("betas"), where=_unfilled("betas")),
    Corruption(
        "negative weight_decay",
        _group({"weight_decay": -0.5}, "Invalid weight_decay value: -0.5", "weight_decay >= 0"),
        where=_refuses({"weight_decay": -0.5}, "Invalid weight_decay value"),
    ),
    Corruption(
        "negative weight_decay (Adafactor's and Muon's wording)",
        _group({"weight_decay": -0.5}, "should be >= 0 but is: -0.5", "weight_decay >= 0"),
        where=_refuses({"weight_decay": -0.5}, "should be >= 0 but is"),
    ),
    Corruption(
        "NaN weight_decay",
        _group({"weight_decay": NAN}, "weight_decay", "nan"),
        where=takes("weight_decay"),
    ),
    Corruption(
        "negative eps",
        _group({"eps": -1e-8}, "Invalid epsilon value", "eps >"),
        where=_refuses({"eps": -1e-8}, "Invalid epsilon value"),
    ),
    Corruption(
        "NaN eps",
        _group({"eps": NAN}, "eps", "nan"),
        where=lambda case: case.takes("eps") and not case.takes("beta2_decay"),
    ),
    # Adafactor's: eps a pair, beta2_decay <= 0, d >= 1; Muon's adjust_lr_fn
    Corruption(
        "negative epsilon1",
        _group({"eps": (-1e-30, 1e-3)}, "epsilon1 should be >= 0", "eps[0]"),
        where=takes("beta2_decay"),
    ),
    Corruption(
        "NaN epsilon2",
        _group({"eps": (None, NAN)}, "epsilon2 should be >= 0 but is: nan", "eps[1]"),
        where=takes("beta2_decay"),
    ),
    Corruption(
        "positive beta2_decay",
        _group({"beta2_decay": 0.5}, "beta2_decay should be <= 0", "beta2_decay <= 0"),
        where=takes("beta2_decay"),
    ),
    Corruption(
        "d below 1",
        _group({"d": 0.5}, "Clipping threshold d should be >= 1", "d >= 1"),
        where=takes("d"),
    ),
    Corruption(
        "unknown adjust_lr_fn",
        _group({"adjust_lr_fn": "fast"}, "Adjust learning rate function fast is not supported"),
        where=takes("adjust_lr_fn"),
    ),
    Corruption(
        "beta2 = 1",
        _group({"betas": (0.9, 1.0)}, "index 1: 1.0", "0 <= betas[1] < 1"),
        where=takes("betas"),
    ),
    Corruption(
        "negative beta1",
        _group({"betas": (-0.1, 0.9)}, "index 0", "betas[0]"),
        where=takes("betas"),
    ),
    Corruption("NaN beta1", _group({"betas": (NAN, 0.9)}, "betas[0]", "nan"), where=takes("betas")),
    Corruption(
        "betas a string", _group({"betas": "ab"}, "'betas'", "2 numbers"), TypeError, takes("betas")
    ),
    Corruption(
        "three betas", _group({"betas": (0.9, 0.9, 0.9)}, "'betas'"), TypeError, takes("betas")
    ),
    Corruption(
        "negative momentum", _group({"momentum": -0.5}, "momentum >= 0"), where=takes("momentum")
    ),
    Corruption(
        "NaN momentum", _group({"momentum": NAN}, "momentum", "nan"), where=takes("momentum")
    ),
    Corruption(
        "dampening a string",
        _group({"dampening": "x"}, "'dampening'"),
        TypeError,
        takes("dampening"),
    ),
    Corruption(
        "nesterov with dampening",
        _group(
            {"nesterov": True, "dampening": 0.5}, "Nesterov momentum requires", "dampening == 0"
        ),
        where=takes("nesterov", "dampening"),
    ),
    Corruption(
        "rho > 1",
        _group({"rho": 1.5}, "Invalid rho value: 1.5", "0 <= rho <= 1"),
        where=takes("rho"),
    ),
    Corruption("NaN rho", _group({"rho": NAN}, "rho", "nan"), where=takes("rho")),
    Corruption(
        "negative alpha",
        _group({"alpha": -0.5}, "Invalid alpha value", "alpha >= 0"),
        # (ASGD's alpha is the power of its step size's decay, which torch does not check)
        where=lambda case: case.takes("alpha") and case.name != "ASGD",
    ),
    Corruption(
        "negative lr_decay", _group({"lr_decay": -1.0}, "lr_decay >= 0"), where=takes("lr_decay")
    ),
    Corruption(
        "negative initial_accumulator_value",
        _group({"initial_accumulator_value": -1.0}, "initial_accumulator_value >= 0"),
        where=takes("initial_accumulator_value"),
    ),
    Corruption(
        "negative momentum_decay",
        _group({"momentum_decay": -1.0}, "momentum_decay >= 0"),
        where=takes("momentum_decay"),
    ),
    Corruption(
        "fused and foreach",
        _group({"fused": True, "foreach": True}, "`fused` and `foreach`"),
        where=supports("fused"),
    ),
    Corruption(
        "flag a string",
        _group({"maximize": "yes"}, "'maximize'", "str 'yes'"),
        TypeError,
        takes("maximize"),
    ),
    # state: dtypes and counters
    Corruption("int64 buffer", _state(None, lambda v: v.long(), "torch.int64")),
    Corruption("bool buffer", _state(None, lambda v: v > 0, "torch.bool")),
    Corruption(
        "complex buffer of a real parameter",
        _state(None, lambda v: v.to(torch.complex64), "complex"),
    ),
    Corruption("buffer a list", _state(None, lambda v: v.tolist(), "tensor"), TypeError),
    Corruption(
        "negative step",
        _state("step", lambda v: torch.tensor(-5.0), ">= 0", "-5"),
        where=keeps("step"),
    ),
    Corruption(
        "negative Python step", _state("step", lambda v: -5, ">= 0", "-5"), where=keeps("step")
    ),
    Corruption(
        "NaN step",
        _state("step", lambda v: torch.tensor(NAN), "finite", "nan"),
        where=keeps("step"),
    ),
    Corruption(
        "infinite Python step",
        _state("step", lambda v: float("inf"), "finite"),
        where=keeps("step"),
    ),
    Corruption(
        "string step", _state("step", lambda v: "abc", "str 'abc'"), TypeError, keeps("step")
    ),
    Corruption(
        "3-element step",
        _state("step", lambda v: torch.zeros(3), "shape (3,)"),
        where=keeps("step"),
    ),
    Corruption(
        "integer tensor step",
        _state("step", lambda v: torch.as_tensor(v).long(), "int64"),
        TypeError,
        keeps("step"),
    ),
    Corruption("bool step", _state("step", lambda v: True, "bool"), TypeError, keeps("step")),
    Corruption(
        "NaN mu_product",
        _state("mu_product", lambda v: v * NAN, "finite"),
        where=keeps("mu_product"),
    ),
    # structure
    Corruption(
        "state a list", _structure(lambda sd: sd.update(state=[]), "'state'", "dict"), TypeError
    ),
    Corruption(
        "param_groups a dict",
        _structure(lambda sd: sd.update(param_groups={}), "'param_groups'", "list"),
        TypeError,
    ),
    Corruption(
        "a group a string",
        _structure(
            lambda sd: sd["param_groups"].__setitem__(TARGET_GROUP, "g"), "param_groups[1]", "dict"
        ),
        TypeError,
    ),
    Corruption(
        "params an int",
        _structure(lambda sd: _set_params(sd, 3), "param_groups[1]['params']", "list"),
        TypeError,
    ),
    Corruption(
        "group without params",
        _structure(
            lambda sd: sd["param_groups"][TARGET_GROUP].pop("params"), "param_groups[1]", "'params'"
        ),
    ),
    Corruption(
        "unhashable parameter id",
        _structure(lambda sd: _set_param_id(sd, [4]), "param_groups[1]['params'][1]"),
        TypeError,
    ),
    Corruption(
        "parameter id twice",
        _structure(
            lambda sd: _set_param_id(sd, 0), "id 0", "twice", "param_groups[0]", "param_groups[1]"
        ),
    ),
    Corruption(
        "state entry a list",
        _structure(lambda sd: _set_entry(sd, []), "state[4]", "dict"),
        TypeError,
    ),
    Corruption(
        "state entry None",
        _structure(lambda sd: _set_entry(sd, None), "state[4]", "dict"),
        TypeError,
    ),
]


def _snapshot(opt: torch.optim.Optimizer) -> Any:
    """Everything loading could change: the state_dict, the groups (with their parameters'
    identities) and which tensor objects the state holds."""
    groups = [
        ({k: v for k, v in g.items() if k != "params"}, [id(p) for p in g["params"]])
        for g in opt.param_groups
    ]
    objects = [(id(p), key, id(value)) for p, s in opt.state.items() for key, value in s.items()]
    return copy.deepcopy((opt.state_dict(), groups)), objects


def _cases() -> list[Any]:
    out = []
    for c in CORRUPTIONS:
        for name, case in OPTIMIZERS.items():
            if c.where(case):
                out.append(pytest.param(name, c, id=f"{name}-{c.desc.replace(' ', '_')}"))
    return out


@pytest.mark.parametrize("name,corruption", _cases())
def test_malformed_state_dict_refused_and_nothing_changes(
    name: str, corruption: Corruption
) -> None:
    """ValueError/TypeError naming group, parameter and key; the optimizer and the input dict
    are untouched."""
    _, opt = _trained(name)
    _, other = _trained(name)
    bad = copy.deepcopy(other.state_dict())
    fragments = corruption.apply(bad)
    bad_before = copy.deepcopy(bad)
    before = _snapshot(opt)
    with pytest.raises(corruption.error) as info:
        opt.load_state_dict(bad)
    assert type(info.value) is corruption.error
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert_same_nested(_snapshot(opt), before)
    assert_same_nested(bad, bad_before)


@pytest.mark.parametrize("value", ["checkpoint", 3, None, [], ("state", "param_groups")], ids=repr)
@pytest.mark.parametrize("name", ALGORITHMS)
def test_non_dict_refused_with_type_error(name: str, value: Any) -> None:
    _, opt = _trained(name)
    before = _snapshot(opt)
    with pytest.raises(TypeError, match=f"expected a dict.*got {type(value).__name__}"):
        opt.load_state_dict(value)
    assert_same_nested(_snapshot(opt), before)


# Legitimate variations: loaded by momentopt as by torch.optim (whose training dict they change).
def _all_state(change: Callable[[str, Any], Any]) -> Callable[[dict[str, Any]], None]:
    """Replace every state value by ``change(key, value)``."""

    def apply(sd: dict[str, Any]) -> None:
        for s in sd["state"].values():
            for key, value in s.items():
                s[key] = change(key, value)

    return apply


def _buffers_to(dtype: torch.dtype) -> Callable[[dict[str, Any]], None]:
    return _all_state(lambda k, v: v.to(dtype) if k != "step" and v.dim() > 0 else v)


def _steps(change: Callable[[torch.Tensor], Any]) -> Callable[[dict[str, Any]], None]:
    return _all_state(lambda k, v: change(v) if k == "step" else v)


def _in_group(changes: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def apply(sd: dict[str, Any]) -> None:
        sd["param_groups"][TARGET_GROUP].update(copy.deepcopy(changes))

    return apply


def _without_newer_flags(sd: dict[str, Any]) -> None:
    for group in sd["param_groups"]:
        for flag in NEWER_FLAGS:
            group.pop(flag, None)


def _never_stepped(sd: dict[str, Any]) -> None:
    del sd["state"][_target(sd)[0]]


def _empty_entry(sd: dict[str, Any]) -> None:
    sd["state"][_target(sd)[0]] = {}


def _reordered(sd: dict[str, Any]) -> None:
    """Every dict of it with its keys in reverse order."""

    def reverse(d: dict[str, Any]) -> dict[str, Any]:
        return dict(reversed(d.items()))

    sd["state"] = reverse({k: reverse(s) for k, s in sd["state"].items()})
    sd["param_groups"] = [reverse(g) for g in sd["param_groups"]]
    items = list(sd.items())
    sd.clear()
    sd.update(reversed(items))


SCHEDULER_KEYS = {
    "initial_lr": SECOND_LR,
    "max_lr": 0.1,
    "min_lr": 0.0,
    "base_momentum": 0.85,
    "max_momentum": 0.95,
}


@dataclass(frozen=True)
class Variation:
    desc: str
    apply: Callable[[dict[str, Any]], None]
    where: Predicate = every  # the algorithms the variation applies to


def _fills_newer_flags(case: OptimizerCase) -> bool:
    """torch fills in every newer flag the class takes (its Adafactor does not fill in
    ``maximize``: its own step then fails on such a group; momentopt refuses it on load)."""
    return all(f in case.load_defaults for f in NEWER_FLAGS if case.takes(f))


def _lazy(case: OptimizerCase) -> bool:
    """torch makes the state on the first step (its Adagrad in the constructor: a loaded dict
    must hold all of it)."""
    return not case.eager_state


def _tensor_steps(case: OptimizerCase) -> bool:
    """torch keeps ``step`` as a tensor. Its SparseAdam keeps a Python int, and any other
    type loaded into it as it is (momentopt's SparseAdam saves the int its torch would write;
    only the saved type of such a checkpoint's steps differs, not their values)."""
    return case.counts_steps and not case.sparse_only


VARIATIONS = [
    Variation("as torch saved it", lambda sd: None),
    Variation("a parameter never stepped", _never_stepped, _lazy),
    Variation("an empty state entry", _empty_entry, _lazy),
    Variation("Python float steps", _steps(lambda v: float(v)), _tensor_steps),
    Variation("Python int steps", _steps(lambda v: int(v)), keeps("step")),
    Variation("float64 step tensors", _steps(lambda v: v.double()), _tensor_steps),
    # NAdam's __setstate__ turns a Python mu_product into a tensor, as torch's does
    Variation(
        "Python float mu_product",
        _all_state(lambda k, v: float(v) if k == "mu_product" else v),
        keeps("mu_product"),
    ),
    Variation("groups without the newer flags", _without_newer_flags, _fills_newer_flags),
    Variation("float64 state for float32 parameters", _buffers_to(torch.float64)),
    Variation("bfloat16 state for float32 parameters", _buffers_to(torch.bfloat16)),
    Variation("other valid hyperparameters", _in_group({"lr": 0.01, "weight_decay": 0.1})),
    Variation("integer hyperparameters", _in_group({"weight_decay": 1})),
    Variation("LR scheduler keys", _in_group(SCHEDULER_KEYS)),
    Variation("reordered keys", _reordered),
    Variation("0-d tensor lr", _in_group({"lr": torch.tensor(0.05)})),
    Variation("1-element tensor lr", _in_group({"lr": torch.tensor([0.05])})),
    Variation("betas as a list", _in_group({"betas": [0.8, 0.99]}), takes("betas")),
    Variation("foreach set", _in_group({"foreach": True})),
]


def _variations() -> list[Any]:
    return [
        pytest.param(name, v, id=f"{name}-{v.desc.replace(' ', '_')}")
        for v in VARIATIONS
        for name, case in OPTIMIZERS.items()
        if v.where(case)
    ]


@pytest.mark.parametrize("name,variation", _variations())
def test_legitimate_variation_loads_like_torch(name: str, variation: Variation) -> None:
    """torch.optim's checkpoint, varied, loads into ours as into torch (same state, same groups)
    and training continues identically; the dict is never changed."""
    torch_cls, ours_cls = OPTIMIZERS[name].pair
    model = model_for(OPTIMIZERS[name], DTYPE)
    source = two_groups(torch_cls, model, SAFE_KWARGS[name])
    xs = make_inputs(DTYPE, WARMUP + CONTINUE)
    train(model, source, xs[:WARMUP])
    saved = copy.deepcopy(source.state_dict())
    variation.apply(saved)
    snapshot = copy.deepcopy(saved)
    model_t, model_o = copy.deepcopy(model), copy.deepcopy(model)
    opt_t = two_groups(torch_cls, model_t, SAFE_KWARGS[name])
    opt_o = two_groups(ours_cls, model_o, SAFE_KWARGS[name])
    opt_t.load_state_dict(copy.deepcopy(saved))
    opt_o.load_state_dict(saved)
    assert_same_nested(saved, snapshot)
    _assert_loaded_and_continue_alike(name, model_t, opt_t, model_o, opt_o, xs[WARMUP:])
    assert_same_nested(saved, snapshot)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_loading_never_mutates_or_aliases_the_input(name: str) -> None:
    """After a load and more training, the loaded-from dict is exactly as it was."""
    model, opt = _trained(name)
    _, other = _trained(name)
    source = other.state_dict()
    snapshot = copy.deepcopy(source)
    opt.load_state_dict(source)
    assert_same_nested(source, snapshot)
    train(model, opt, make_inputs(DTYPE, 3))
    assert_same_nested(source, snapshot)
    assert_same_nested(other.state_dict(), snapshot)


# -- (e) load_state_dict hooks ----------------------------------------------------------------
@pytest.mark.parametrize("name", ALGORITHMS)
def test_load_state_dict_hooks_fire_once_like_torch(name: str) -> None:
    """Pre- and post-hooks fire once per load, for ours exactly as for torch."""
    counts: dict[str, list[str]] = {}
    for side, cls in zip(("torch", "ours"), OPTIMIZERS[name].pair, strict=True):
        model = model_for(OPTIMIZERS[name], DTYPE)
        opt = cls(model.parameters())
        train(model, opt, make_inputs(DTYPE, 2))
        calls: list[str] = []
        opt.register_load_state_dict_pre_hook(lambda o, sd, calls=calls: calls.append("pre"))
        opt.register_load_state_dict_post_hook(lambda o, calls=calls: calls.append("post"))
        opt.load_state_dict(opt.state_dict())
        counts[side] = calls
    assert counts["ours"] == counts["torch"] == ["pre", "post"]


@pytest.mark.parametrize("name", ALGORITHMS)
def test_load_pre_hook_result_is_what_is_checked_and_loaded(name: str) -> None:
    """A pre-hook may repair a dict (here: re-adding a dropped state key) before it is checked,
    and its returned dict is the one loaded, as in torch."""
    torch_cls, ours_cls = OPTIMIZERS[name].pair
    results = []
    for cls in (torch_cls, ours_cls):
        torch.manual_seed(0)
        model = model_for(OPTIMIZERS[name], DTYPE)
        opt = cls(model.parameters(), **SAFE_KWARGS[name])
        train(model, opt, make_inputs(DTYPE, 3))
        good = copy.deepcopy(opt.state_dict())
        broken = copy.deepcopy(good)
        pid = 1  # a parameter id with state
        key = next(iter(broken["state"][pid]))
        stolen = broken["state"][pid].pop(key)

        def repair(
            o: torch.optim.Optimizer, sd: dict[str, Any], key: str = key, stolen: Any = stolen
        ) -> dict[str, Any]:
            fixed = copy.deepcopy(sd)
            fixed["state"][1][key] = stolen
            fixed["param_groups"][0]["lr"] = 0.125
            return fixed

        opt.register_load_state_dict_pre_hook(repair)
        opt.load_state_dict(broken)
        results.append(opt.state_dict())
    assert results[1]["param_groups"][0]["lr"] == 0.125
    assert_state_dicts_close(results[1], results[0], **tol(name))


FLAG_KEYS = frozenset({"foreach", "fused", "capturable", "differentiable", "maximize"})
"""The flags a pre-hook's dict may lack (torch fills them in, or never had them)."""


def _without_flags(keys: frozenset[str]) -> Callable[..., dict[str, Any]]:
    """A pre-hook returning a new dict whose groups lack ``differentiable`` and ``keys``."""

    def hook(o: torch.optim.Optimizer, sd: dict[str, Any]) -> dict[str, Any]:
        fresh = copy.deepcopy(sd)
        for group in fresh["param_groups"]:
            for key in {"differentiable", *keys}:
                group.pop(key, None)
        return fresh

    return hook


def _lbfgs_step(model: nn.Module, opt: torch.optim.Optimizer) -> None:
    x = make_inputs(DTYPE, 1)[0]

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_of(model(x))
        loss.backward()
        return loss

    opt.step(closure)


@pytest.mark.parametrize("name", [*ALGORITHMS, "LBFGS"])
def test_load_pre_hook_returning_dict_without_flags_loads_like_torch(name: str) -> None:
    """A pre-hook that returns a new dict whose groups lack ``differentiable`` (and the flags
    torch fills in on load) loads, again and again, as torch.optim's class loads it.

    The second load is the one that failed for Muon, Adafactor, SparseAdam and LBFGS (torch's
    own test_load_state_dict_pre_hook_and_prepend): torch's ``Optimizer.__setstate__`` adds
    ``differentiable=False`` to ``defaults`` alone, so after one load the defaults of a class
    without that argument hold a key its groups never do, and loading required it."""
    case = OPTIMIZERS.get(name)
    flags = FLAG_KEYS & case.load_defaults if case is not None else frozenset()
    pair = case.pair if case is not None else (torch.optim.LBFGS, momentopt.LBFGS)
    seen = []
    for cls in pair:
        torch.manual_seed(0)
        model = model_for(case, DTYPE) if case is not None else nn.Linear(4, 2)
        opt = cls(model.parameters(), **SAFE_KWARGS.get(name, {}))
        if case is None:
            _lbfgs_step(model, opt)
        else:
            train(model, opt, make_inputs(DTYPE, 2))
        opt.register_load_state_dict_pre_hook(_without_flags(flags))
        saved = opt.state_dict()
        for _ in range(3):
            opt.load_state_dict(saved)
        # a copy: torch's state_dict holds its live state, which the next step changes
        loaded = (opt.defaults, [sorted(g) for g in opt.param_groups], opt.state_dict())
        seen.append(copy.deepcopy(loaded))
        if case is None:  # and it steps as before
            _lbfgs_step(model, opt)
        else:
            train(model, opt, make_inputs(DTYPE, 1))
    (torch_defaults, torch_keys, torch_sd), (defaults, keys, sd) = seen
    assert defaults == torch_defaults
    assert keys == torch_keys
    if case is None:  # LBFGS: lists of tensors in its state, bitwise torch's (test_lbfgs.py)
        assert_same_nested(sd, torch_sd)
    else:
        assert_state_dicts_close(sd, torch_sd, **tol(name))


@pytest.mark.parametrize("name", ALGORITHMS)
def test_state_entries_that_are_not_dicts_pass_through_like_torch(name: str) -> None:
    """Entries of ``opt.state`` that are not a parameter's state dict (torch's own tests put a
    flag there from a load post-hook) are in ``state_dict()`` under their keys, unchanged, as
    in torch's; the parameters' states beside them keep torch's layout (SparseAdam's ``step``
    an int)."""
    odd = {"ran_load_state_dict_post_hook": True, "note": [1, 2], "none": None}
    dicts = []
    for cls in OPTIMIZERS[name].pair:
        torch.manual_seed(0)
        model = model_for(OPTIMIZERS[name], DTYPE)
        opt = cls(model.parameters(), **SAFE_KWARGS[name])
        train(model, opt, make_inputs(DTYPE, 2))
        opt.state.update(odd)
        dicts.append(copy.deepcopy(opt.state_dict()))
    torch_sd, sd = dicts
    assert list(sd["state"]) == list(torch_sd["state"])
    for key, value in odd.items():
        assert sd["state"][key] == torch_sd["state"][key] == value

    def params_only(d: dict[str, Any]) -> dict[str, Any]:
        return {**d, "state": {k: v for k, v in d["state"].items() if k not in odd}}

    assert _layout(params_only(sd)) == _layout(params_only(torch_sd))


# -- (f) the table's state facts are torch's --------------------------------------------------
@pytest.mark.parametrize("name", ALGORITHMS)
def test_table_state_keys_are_torchs(name: str) -> None:
    """``state_keys``: the keys torch's state holds over all its optim_db inputs; ``eager_state``:
    whether torch (and ours) hold state before the first step."""
    case = OPTIMIZERS[name]
    seen: set[str] = set()
    for inp in case.inputs(DTYPE):
        params = _vector_and_matrix(case)
        opt = case.torch_cls(params, **copy.deepcopy(inp.kwargs))
        for p in params:
            p.grad = torch.randn_like(p)
        sparse_if_needed(opt, params)
        opt.step()
        for p in params:
            seen |= set(opt.state[p])
    assert seen == set(case.state_keys)
    for cls in case.pair:
        assert bool(cls(_vector_and_matrix(case)).state) == case.eager_state, cls


def _vector_and_matrix(case: OptimizerCase) -> list[nn.Parameter]:
    """A vector and a matrix (Adafactor keeps other states for each), or for a class of
    matrices only (Muon) the matrix."""
    shapes = [(2, 3)] if case.only_matrices else [(3,), (2, 3)]
    return [nn.Parameter(torch.randn(s)) for s in shapes]


@pytest.mark.parametrize("name", ALGORITHMS)
def test_table_load_facts_are_torchs(name: str) -> None:
    """``load_defaults``: the group keys torch fills in when a loaded group lacks them;
    ``lazy_state``: whether torch steps from a state entry that lacks a buffer."""
    case = OPTIMIZERS[name]
    p = nn.Parameter(torch.randn(2, 3))  # a matrix: Muon takes no other
    opt = case.torch_cls([p], **SAFE_KWARGS[name])
    filled = set()
    for key in opt.defaults:
        sd = opt.state_dict()
        del sd["param_groups"][0][key]
        loaded = case.torch_cls([p], **SAFE_KWARGS[name])
        loaded.load_state_dict(sd)
        if key in loaded.param_groups[0]:
            filled.add(key)
    assert filled == case.load_defaults
    p.grad = torch.randn(2, 3)
    sparse_if_needed(opt, [p])
    opt.step()
    sd = copy.deepcopy(opt.state_dict())
    buffers = [k for k, v in sd["state"][0].items() if isinstance(v, torch.Tensor) and v.dim() > 0]
    del sd["state"][0][buffers[-1]]
    loaded = case.torch_cls([p], **SAFE_KWARGS[name])
    loaded.load_state_dict(sd)
    try:
        loaded.step()
        stepped = True
    except (KeyError, AssertionError):  # (torch's Adafactor asserts its factors exist)
        stepped = False
    assert stepped == case.lazy_state
