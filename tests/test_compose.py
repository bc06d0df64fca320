"""Composition: optimizers built from the public rules get groups, state_dict, executors,
hooks and pickling for free; rebuilt built-ins equal torch.optim."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
import torch
from torch import nn

from momentopt import ComposedOptimizer, compose, rules

from .helpers import TOLERANCES, Net, assert_state_dicts_close, loss_of, make_inputs

DTYPE = torch.float32
TOL = TOLERANCES[DTYPE]
STEPS = 6

# Module level, so instances pickle.
AdaGradMomentum = compose(
    "AdaGradMomentum",
    first=rules.BiasCorrectedAverage(),
    second=rules.AccumulatedSquares(),
    gradient=(rules.Maximize(), rules.WeightDecay(decoupled=True)),
    lr=1e-2,
)
RMSPropNesterov = compose(
    "RMSPropNesterov", first=rules.ScaledMomentum(nesterov=True), second=rules.SquaredAverage(), momentum=0.9
)
ComposedAdam = compose("ComposedAdam", first=rules.BiasCorrectedAverage(), second=rules.BiasCorrectedSquaredAverage())
ComposedRMSprop = compose("ComposedRMSprop", first=rules.ScaledMomentum(), second=rules.SquaredAverage(), lr=1e-2)
ComposedAdagrad = compose(
    "ComposedAdagrad",
    second=rules.AccumulatedSquares(),
    schedule=(rules.InverseTimeDecay(),),
    gradient=(rules.Maximize(), rules.WeightDecay(sparse_ok=False)),
    lr=1e-2,
)
ComposedAdadelta = compose(
    "ComposedAdadelta", first=rules.DeltaScaledGradient(), second=rules.RootMeanSquare(), lr=1.0
)
NEW = {"AdaGradMomentum": (AdaGradMomentum, {"weight_decay": 0.01}), "RMSPropNesterov": (RMSPropNesterov, {"lr": 1e-2})}


def train(model: nn.Module, opt: torch.optim.Optimizer, xs: list[torch.Tensor]) -> list[float]:
    losses = []
    for x in xs:
        opt.zero_grad()
        loss = loss_of(model(x))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def assert_models_equal(a: nn.Module, b: nn.Module, **tol: float) -> None:
    for (n, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pb, pa, **tol, msg=f"param {n}")


# -- (a) the built-ins, rebuilt from their rules, equal torch.optim ---------------------------
REBUILT = [
    (ComposedAdam, torch.optim.Adam, {"lr": 0.01, "betas": (0.8, 0.9), "weight_decay": 0.1}),
    (ComposedAdam, torch.optim.Adam, {"lr": 0.01, "amsgrad": True, "maximize": True}),
    (ComposedRMSprop, torch.optim.RMSprop, {"momentum": 0.5, "centered": True, "alpha": 0.9}),
    (ComposedAdagrad, torch.optim.Adagrad, {"lr_decay": 0.1, "initial_accumulator_value": 0.1}),
    (ComposedAdadelta, torch.optim.Adadelta, {"rho": 0.8, "weight_decay": 0.1}),
]


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("ours,theirs,kwargs", REBUILT, ids=lambda v: getattr(v, "__name__", None))
def test_rebuilt_builtin_equals_torch(ours: type, theirs: type, kwargs: dict, foreach: bool) -> None:
    model_t = Net(DTYPE)
    model_o = copy.deepcopy(model_t)
    opt_t = theirs(model_t.parameters(), foreach=foreach, **kwargs)
    opt_o = ours(model_o.parameters(), foreach=foreach, **kwargs)
    xs = make_inputs(DTYPE, STEPS)
    train(model_t, opt_t, xs)
    train(model_o, opt_o, xs)
    assert_models_equal(model_t, model_o, **TOL)
    for pt, po in zip(model_t.parameters(), model_o.parameters(), strict=True):
        st, so = opt_t.state[pt], opt_o.state[po]
        assert set(so) == set(st)
        for key in st:
            torch.testing.assert_close(so[key], st[key], **TOL, msg=key)


# -- (b) new optimizers ----------------------------------------------------------------------
new_classes = pytest.mark.parametrize("label", list(NEW))


def fresh(label: str, model: nn.Module | None = None, **extra: Any) -> tuple[nn.Module, ComposedOptimizer]:
    cls, kwargs = NEW[label]
    model = model or Net(DTYPE)
    return model, cls(model.parameters(), **{**kwargs, **extra})


@new_classes
def test_new_optimizer_trains(label: str) -> None:
    """Loss on a fixed batch falls over the steps; the class is a torch optimizer."""
    model, opt = fresh(label)
    assert isinstance(opt, torch.optim.Optimizer) and type(opt).__name__ == label
    assert type(opt).__doc__
    x = make_inputs(DTYPE, 1)[0]
    losses = train(model, opt, [x] * 25)
    assert losses[-1] < 0.5 * losses[0], losses


@new_classes
def test_new_optimizer_state_dict_round_trip(label: str) -> None:
    """Save, load into a fresh instance (through a deep copy), continue identically."""
    model, opt = fresh(label)
    xs = make_inputs(DTYPE, STEPS)
    train(model, opt, xs[:4])
    model2 = copy.deepcopy(model)
    _, opt2 = fresh(label, model2)
    saved = copy.deepcopy(opt.state_dict())
    opt2.load_state_dict(saved)
    assert_state_dicts_close(opt2.state_dict(), opt.state_dict(), rtol=0, atol=0)
    train(model, opt, xs[4:])
    train(model2, opt2, xs[4:])
    assert_models_equal(model, model2, rtol=0, atol=0)
    assert_state_dicts_close(opt2.state_dict(), opt.state_dict(), rtol=0, atol=0)


@new_classes
def test_new_optimizer_pickles(label: str) -> None:
    model, opt = fresh(label)
    train(model, opt, make_inputs(DTYPE, 2))
    model2, opt2 = pickle.loads(pickle.dumps((model, opt)))
    assert type(opt2) is type(opt)
    xs = make_inputs(DTYPE, 3)
    train(model, opt, xs)
    train(model2, opt2, xs)
    assert_models_equal(model, model2, rtol=0, atol=0)


@new_classes
def test_new_optimizer_groups_and_hooks(label: str) -> None:
    """Per-group hyperparameters (a group with lr 0 stays put); each hook fires once."""
    model = Net(DTYPE)
    cls, kwargs = NEW[label]
    frozen = [model.fc.weight, model.fc.bias]
    rest = [p for p in model.parameters() if all(p is not f for f in frozen)]
    opt = cls([{"params": rest}, {"params": frozen, "lr": 0.0}], **kwargs)
    assert opt.param_groups[1]["lr"] == 0.0 and opt.param_groups[1]["eps"] == opt.defaults["eps"]
    before = [f.detach().clone() for f in frozen]
    calls: list[str] = []
    opt.register_step_pre_hook(lambda o, a, k: calls.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: calls.append("post"))
    opt.register_state_dict_post_hook(lambda o, sd: calls.append("sd"))
    opt.register_load_state_dict_post_hook(lambda o: calls.append("load"))
    train(model, opt, make_inputs(DTYPE, 2))
    opt.load_state_dict(opt.state_dict())
    assert calls == ["pre", "post", "pre", "post", "sd", "load"]
    for f, b in zip(frozen, before, strict=True):
        assert torch.equal(f, b)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [model.fc.weight]})


@new_classes
def test_new_optimizer_executors_agree(label: str) -> None:
    runs = []
    for foreach in (False, True, None):
        torch.manual_seed(0)
        model, opt = fresh(label, foreach=foreach)
        train(model, opt, make_inputs(DTYPE, STEPS))
        sd = opt.state_dict()
        for group in sd["param_groups"]:
            del group["foreach"]
        runs.append((model, sd))
    for model, sd in runs[1:]:
        assert_models_equal(runs[0][0], model, rtol=1e-6, atol=1e-7)
        assert_state_dicts_close(sd, runs[0][1], rtol=1e-6, atol=1e-7)


def test_rmsprop_nesterov_is_not_plain_momentum() -> None:
    """The Nesterov variant really differs from RMSprop's heavy ball (the rule is used)."""
    model = Net(DTYPE)
    model2 = copy.deepcopy(model)
    xs = make_inputs(DTYPE, 3)
    train(model, RMSPropNesterov(model.parameters(), lr=1e-2), xs)
    train(model2, torch.optim.RMSprop(model2.parameters(), lr=1e-2, momentum=0.9), xs)
    assert not torch.allclose(model.fc.weight, model2.fc.weight)


# -- (c) argument checking -------------------------------------------------------------------
BAD = [
    ("lr", -1.0, "lr >= 0"),
    ("eps", -1e-8, "eps >= 0"),
    ("weight_decay", -0.1, "weight_decay >= 0"),
    ("betas", (0.9, 1.0), "0 <= betas[i] < 1"),
    ("betas", (-0.1, 0.9), "0 <= betas[i] < 1"),
    ("momentum", -0.5, "momentum >= 0"),
    ("alpha", 1.5, "0 <= alpha <= 1"),
    ("initial_accumulator_value", -1.0, "initial_accumulator_value >= 0"),
]


@pytest.mark.parametrize("arg,value,allowed", BAD, ids=lambda v: str(v))
def test_bad_hyperparameter_names_argument_and_range(arg: str, value: Any, allowed: str) -> None:
    cls = AdaGradMomentum if arg in AdaGradMomentum(Net(DTYPE).parameters()).defaults else RMSPropNesterov
    with pytest.raises(ValueError) as info:
        cls(Net(DTYPE).parameters(), **{arg: value})
    assert arg in str(info.value) and allowed in str(info.value) and repr(value) in str(info.value)


@pytest.mark.parametrize("kwargs", [{"bogus": 1}, {"nesterov": True}, {"rho": 0.5}], ids=str)
def test_unknown_keyword_is_a_type_error(kwargs: dict) -> None:
    with pytest.raises(TypeError) as info:
        AdaGradMomentum(Net(DTYPE).parameters(), **kwargs)
    assert next(iter(kwargs)) in str(info.value)


def test_fused_flags_checked_like_torch() -> None:
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together"):
        AdaGradMomentum(Net(DTYPE).parameters(), fused=True, foreach=True)
