"""state_dict / load_state_dict: checkpoints move both ways with torch.optim, old dicts load,
malformed dicts are refused without changing anything, inputs are never mutated."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

from .helpers import (
    ALGORITHMS,
    PAIRS,
    TOLERANCES,
    Net,
    assert_state_dicts_close,
    lockstep,
    loss_of,
    make_inputs,
    optim_inputs,
)

DTYPE = torch.float32
TOL = TOLERANCES[DTYPE]
WARMUP, CONTINUE = 4, 5
EXACT = {"rtol": 0.0, "atol": 0.0}

# Flags torch.optim added over the years; a state_dict saved before them lacks them.
NEWER_FLAGS = ("foreach", "maximize", "differentiable", "capturable", "fused", "decoupled_weight_decay")


def train(model: nn.Module, opt: torch.optim.Optimizer, xs: list[torch.Tensor]) -> None:
    """Plain training steps (every parameter gets a gradient)."""
    for x in xs:
        opt.zero_grad()
        loss_of(model(x)).backward()
        opt.step()


def configs(richest: int = 3) -> list[Any]:
    """(algorithm, kwargs): per algorithm, torch's default optim_db input and its ``richest``
    inputs with the most keyword arguments (the most flags at once)."""
    out = []
    for name in ALGORITHMS:
        inputs = optim_inputs(name, DTYPE)
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
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_same_nested(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_nested(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


# -- (a) checkpoints move both ways ----------------------------------------------------------
@pytest.mark.parametrize("direction", ["torch_to_ours", "ours_to_torch"])
@pytest.mark.parametrize("name,kwargs", configs(richest=1))
def test_checkpoint_moves_and_training_continues(name: str, kwargs: dict, direction: str) -> None:
    """Train one side, load its state_dict into the other, continue both in lock step."""
    torch_cls, ours_cls = PAIRS[name]
    src_cls, dst_cls = (torch_cls, ours_cls) if direction == "torch_to_ours" else (ours_cls, torch_cls)
    model_src = Net(DTYPE)
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
    assert_models_equal(model_dst, model_src, **TOL)
    assert_state_dicts_close(opt_dst.state_dict(), opt_src.state_dict(), **TOL)


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
    torch_cls, ours_cls = PAIRS[name]
    model_t = Net(DTYPE)
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
def make_old(sd: dict[str, Any]) -> dict[str, Any]:
    """``sd`` as an older torch wrote it: no newer flags, ``step`` a Python float."""
    old = copy.deepcopy(sd)
    for group in old["param_groups"]:
        for flag in NEWER_FLAGS:
            group.pop(flag, None)
    for s in old["state"].values():
        if isinstance(s.get("step"), torch.Tensor):
            s["step"] = float(s["step"].item())
    return old


@pytest.mark.parametrize("name,kwargs", configs(richest=1))
def test_old_state_dict_loads_like_torch(name: str, kwargs: dict) -> None:
    """The same old dict loaded into torch and into ours: same groups, state and training."""
    torch_cls, ours_cls = PAIRS[name]
    model = Net(DTYPE)
    opt = build(torch_cls, model, kwargs)
    xs = make_inputs(DTYPE, WARMUP + CONTINUE)
    train(model, opt, xs[:WARMUP])
    old = make_old(opt.state_dict())
    model_t, model_o = copy.deepcopy(model), copy.deepcopy(model)
    opt_t, opt_o = build(torch_cls, model_t, kwargs), build(ours_cls, model_o, kwargs)
    opt_t.load_state_dict(copy.deepcopy(old))
    opt_o.load_state_dict(copy.deepcopy(old))
    assert_state_dicts_close(opt_o.state_dict(), opt_t.state_dict(), **EXACT)
    assert _layout(opt_o.state_dict()) == _layout(opt_t.state_dict())
    for _ in lockstep(model_t, opt_t, model_o, opt_o, xs[WARMUP:]):
        pass
    assert_models_equal(model_o, model_t, **TOL)
    assert_state_dicts_close(opt_o.state_dict(), opt_t.state_dict(), **TOL)


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
    torch_cls, ours_cls = PAIRS[name]
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
    assert_models_equal(model_o, model_t, **TOL)


# -- (d) safe loading ------------------------------------------------------------------------
SAFE_KWARGS = {
    "SGD": {"momentum": 0.9},
    "Adagrad": {},
    "Adadelta": {},
    "RMSprop": {"centered": True, "momentum": 0.5},
    "Adam": {"amsgrad": True},
    "AdamW": {},
    "NAdam": {},
}
TARGET = 1  # position of the parameter the corruptions touch ('conv.bias')


def _target(sd: dict[str, Any]) -> tuple[int, str, str]:
    """(param id, param name, a tensor state key) of the parameter the corruptions touch."""
    group = sd["param_groups"][0]
    index = group["params"][TARGET]
    tensor_keys = [k for k, v in sd["state"][index].items() if isinstance(v, torch.Tensor) and v.dim() > 0]
    return index, group["param_names"][TARGET], tensor_keys[-1]


def _extra_group(sd: dict[str, Any]) -> list[str]:
    sd["param_groups"].append({**sd["param_groups"][0], "params": [], "param_names": []})
    return ["parameter groups", "2", "1"]


def _short_group(sd: dict[str, Any]) -> list[str]:
    group = sd["param_groups"][0]
    index = group["params"].pop()
    group["param_names"].pop()
    sd["state"].pop(index, None)
    return ["group 0", "parameters"]


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


@dataclass(frozen=True)
class Corruption:
    desc: str
    apply: Callable[[dict[str, Any]], list[str]]  # corrupts in place; fragments of the message
    skip: tuple[str, ...] = ()  # algorithms where the corruption is legal


CORRUPTIONS = [
    Corruption("extra group", _extra_group),
    Corruption("group with a parameter fewer", _short_group),
    Corruption("state of the wrong shape", _wrong_shape),
    Corruption("missing state key", _missing_key, skip=("SGD",)),  # torch's SGD buffer is lazy
    Corruption("unknown state key", _unknown_key),
    Corruption("state for an unknown parameter id", _unknown_param),
]


def _trained(name: str) -> tuple[nn.Module, torch.optim.Optimizer]:
    model = Net(DTYPE)
    opt = PAIRS[name][1](model.named_parameters(), **SAFE_KWARGS[name])
    train(model, opt, make_inputs(DTYPE, 2))
    return model, opt


@pytest.mark.parametrize("corruption", CORRUPTIONS, ids=lambda c: c.desc.replace(" ", "_"))
@pytest.mark.parametrize("name", ALGORITHMS)
def test_malformed_state_dict_refused_and_nothing_changes(name: str, corruption: Corruption) -> None:
    """ValueError naming parameter and key; the optimizer and the input dict are untouched."""
    if name in corruption.skip:
        pytest.skip("legal for this algorithm")
    _, opt = _trained(name)
    _, other = _trained(name)
    bad = copy.deepcopy(other.state_dict())
    fragments = corruption.apply(bad)
    bad_before = copy.deepcopy(bad)
    before = copy.deepcopy(opt.state_dict())
    with pytest.raises(ValueError) as info:
        opt.load_state_dict(bad)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert_same_nested(opt.state_dict(), before)
    assert_same_nested(bad, bad_before)


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
    for side, cls in zip(("torch", "ours"), PAIRS[name], strict=True):
        model = Net(DTYPE)
        opt = cls(model.parameters())
        train(model, opt, make_inputs(DTYPE, 2))
        calls: list[str] = []
        opt.register_load_state_dict_pre_hook(lambda o, sd: calls.append("pre"))
        opt.register_load_state_dict_post_hook(lambda o: calls.append("post"))
        opt.load_state_dict(opt.state_dict())
        counts[side] = calls
    assert counts["ours"] == counts["torch"] == ["pre", "post"]


@pytest.mark.parametrize("name", ALGORITHMS)
def test_load_pre_hook_result_is_what_is_checked_and_loaded(name: str) -> None:
    """A pre-hook may repair a dict (here: re-adding a dropped state key) before it is checked,
    and its returned dict is the one loaded, as in torch."""
    torch_cls, ours_cls = PAIRS[name]
    results = []
    for cls in (torch_cls, ours_cls):
        torch.manual_seed(0)
        model = Net(DTYPE)
        opt = cls(model.parameters(), **SAFE_KWARGS[name])
        train(model, opt, make_inputs(DTYPE, 3))
        good = copy.deepcopy(opt.state_dict())
        broken = copy.deepcopy(good)
        key = next(iter(broken["state"][TARGET]))
        stolen = broken["state"][TARGET].pop(key)

        def repair(o: torch.optim.Optimizer, sd: dict[str, Any]) -> dict[str, Any]:
            fixed = copy.deepcopy(sd)
            fixed["state"][TARGET][key] = stolen
            fixed["param_groups"][0]["lr"] = 0.125
            return fixed

        opt.register_load_state_dict_pre_hook(repair)
        opt.load_state_dict(broken)
        results.append(opt.state_dict())
    assert results[1]["param_groups"][0]["lr"] == 0.125
    assert_state_dicts_close(results[1], results[0], **TOL)
