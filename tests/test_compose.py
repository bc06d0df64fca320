"""Composition: optimizers built from the public rules get groups, state_dict, executors,
hooks and pickling for free; rebuilt built-ins equal torch.optim."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from momentopt import ComposedOptimizer, compose, rules
from momentopt.compose import make_recipe

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
    "RMSPropNesterov",
    first=rules.ScaledMomentum(nesterov=True),
    second=rules.SquaredAverage(),
    momentum=0.9,
)
ComposedAdam = compose(
    "ComposedAdam", first=rules.BiasCorrectedAverage(), second=rules.BiasCorrectedSquaredAverage()
)
ComposedRMSprop = compose(
    "ComposedRMSprop", first=rules.ScaledMomentum(), second=rules.SquaredAverage(), lr=1e-2
)
ComposedAdagrad = compose(
    "ComposedAdagrad",
    second=rules.AccumulatedSquares(),
    schedule=(rules.InverseTimeDecay(),),
    gradient=(rules.Maximize(), rules.WeightDecay()),
    lr=1e-2,
)
ComposedAdadelta = compose(
    "ComposedAdadelta", first=rules.DeltaScaledGradient(), second=rules.RootMeanSquare(), lr=1.0
)
NEW = {
    "AdaGradMomentum": (AdaGradMomentum, {"weight_decay": 0.01}),
    "RMSPropNesterov": (RMSPropNesterov, {"lr": 1e-2}),
}


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
def test_rebuilt_builtin_equals_torch(
    ours: type, theirs: type, kwargs: dict, foreach: bool
) -> None:
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


def fresh(
    label: str, model: nn.Module | None = None, **extra: Any
) -> tuple[nn.Module, ComposedOptimizer]:
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
# compose(...) keyword arguments whose rules read each hyperparameter.
READERS: dict[str, dict[str, Any]] = {
    "lr": {},
    "weight_decay": {},
    "eps": {"second": rules.SquaredAverage()},
    "alpha": {"second": rules.SquaredAverage()},
    "betas": {"first": rules.BiasCorrectedAverage()},
    "momentum": {"first": rules.HeavyBall()},
    "dampening": {"first": rules.HeavyBall()},
    "initial_accumulator_value": {"second": rules.AccumulatedSquares()},
    "rho": {"second": rules.RootMeanSquare()},
    "lr_decay": {"schedule": (rules.InverseTimeDecay(),)},
    "momentum_decay": {"first": rules.NesterovAverage()},
}
BAD = [
    ("lr", -1.0, "lr >= 0"),
    ("lr", float("nan"), "lr >= 0"),
    ("eps", -1e-8, "eps >= 0"),
    ("weight_decay", -0.1, "weight_decay >= 0"),
    ("betas", (0.9, 1.0), "0 <= betas[i] < 1"),
    ("betas", (-0.1, 0.9), "0 <= betas[i] < 1"),
    ("momentum", -0.5, "momentum >= 0"),
    ("dampening", 1.5, "0 <= dampening <= 1"),
    ("alpha", -0.5, "alpha >= 0"),
    ("rho", -0.1, "0 <= rho <= 1"),
    ("lr_decay", -1.0, "lr_decay >= 0"),
    ("momentum_decay", -1.0, "momentum_decay >= 0"),
    ("initial_accumulator_value", -1.0, "initial_accumulator_value >= 0"),
]
WRONG_TYPE = [("lr", "fast"), ("betas", 0.9), ("momentum", None)]


def _assert_names(err: BaseException, *fragments: str) -> None:
    for fragment in fragments:
        assert fragment in str(err), (fragment, str(err))


@pytest.mark.parametrize("arg,value,allowed", BAD, ids=str)
def test_bad_value_refused_at_compose(arg: str, value: Any, allowed: str) -> None:
    with pytest.raises(ValueError) as info:
        compose("Bad", **READERS[arg], **{arg: value})
    _assert_names(info.value, arg, allowed, str(value))


@pytest.mark.parametrize("arg,value,allowed", BAD, ids=str)
def test_bad_value_refused_at_instantiation(arg: str, value: Any, allowed: str) -> None:
    cls = compose("Fine", **READERS[arg])
    with pytest.raises(ValueError) as info:
        cls(Net(DTYPE).parameters(), **{arg: value})
    _assert_names(info.value, arg, allowed, str(value))


@pytest.mark.parametrize("arg,value", WRONG_TYPE, ids=str)
def test_wrong_type_is_a_type_error_naming_the_key(arg: str, value: Any) -> None:
    with pytest.raises(TypeError) as info:
        compose("Bad", **READERS[arg], **{arg: value})
    _assert_names(info.value, arg, repr(value))
    cls = compose("Fine", **READERS[arg])
    with pytest.raises(TypeError) as info:
        cls(Net(DTYPE).parameters(), **{arg: value})
    _assert_names(info.value, arg, repr(value))


def test_misspelt_hyperparameter_named_with_the_allowed_ones() -> None:
    """At compose(...) and at instantiation: a TypeError naming the misspelling and the
    names the rules read."""
    with pytest.raises(TypeError) as info:
        compose("Misspelt", first=rules.HeavyBall(), momentm=0.9)
    _assert_names(info.value, "'momentm'", "'momentum'", "'dampening'", "'lr'")
    cls = compose("Spelt", first=rules.HeavyBall())
    with pytest.raises(TypeError) as info:
        cls(Net(DTYPE).parameters(), momentm=0.9)
    _assert_names(info.value, "'momentm'", "'momentum'", "'dampening'", "'lr'")


@pytest.mark.parametrize("kwargs", [{"bogus": 1}, {"nesterov": True}, {"rho": 0.5}], ids=str)
def test_unknown_keyword_is_a_type_error(kwargs: dict) -> None:
    with pytest.raises(TypeError) as info:
        AdaGradMomentum(Net(DTYPE).parameters(), **kwargs)
    assert next(iter(kwargs)) in str(info.value)


def test_fused_flags_checked_like_torch() -> None:
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together"):
        AdaGradMomentum(Net(DTYPE).parameters(), fused=True, foreach=True)
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together"):
        compose("BothFlags", fused=True, foreach=True)


# Slots holding something else than a rule of their role: (compose kwargs, message fragments).
WRONG_SLOTS = [
    (
        {"first": rules.AccumulatedSquares()},
        ["first", "FirstMoment", "'first'", "AccumulatedSquares(", "'second'"],
    ),
    ({"second": rules.BiasCorrectedAverage()}, ["second", "SecondMoment", "'second'", "'first'"]),
    ({"first": "adam"}, ["first", "FirstMoment", "str 'adam'"]),
    ({"second": rules.SquaredAverage}, ["second", "SecondMoment", "type"]),  # the class, not a rule
    (
        {"gradient": (rules.Maximize(), "decay")},
        ["gradient[1]", "GradientRule", "'gradient'", "str"],
    ),
    ({"gradient": (rules.AccumulatedSquares(),)}, ["gradient[0]", "GradientRule", "'second'"]),
    ({"gradient": rules.WeightDecay()}, ["gradient", "tuple", "GradientRule", "WeightDecay("]),
    ({"schedule": (rules.Maximize(),)}, ["schedule[0]", "LrSchedule", "'schedule'", "'gradient'"]),
    ({"schedule": ("cosine",)}, ["schedule[0]", "LrSchedule", "str 'cosine'"]),
    ({"schedule": 0.5}, ["schedule", "tuple", "LrSchedule"]),
]


@pytest.mark.parametrize("kwargs,fragments", WRONG_SLOTS, ids=lambda v: str(v)[:40])
def test_wrong_slot_refused_at_compose(kwargs: dict, fragments: list[str]) -> None:
    with pytest.raises(TypeError) as info:
        compose("Swapped", **kwargs)
    _assert_names(info.value, "Swapped", *fragments)


def _subclass(recipe: Any, hyperparameters: dict[str, Any]) -> type:
    """The ``class X(ComposedOptimizer)`` route."""

    class Sub(ComposedOptimizer):
        pass

    return type("Sub", (Sub,), {"recipe": recipe, "hyperparameters": hyperparameters})


SUBCLASS_ERRORS = [
    (make_recipe(first=rules.AccumulatedSquares()), {}, TypeError, ["first", "FirstMoment"]),
    (make_recipe(schedule=(rules.WeightDecay(),)), {}, TypeError, ["schedule[0]", "LrSchedule"]),
    ("adam", {}, TypeError, ["recipe", "Recipe", "str 'adam'"]),
    (
        make_recipe(first=rules.HeavyBall()),
        {"momentm": 0.9},
        TypeError,
        ["'momentm'", "'momentum'"],
    ),
    (
        make_recipe(first=rules.HeavyBall()),
        {"momentum": -1.0},
        ValueError,
        ["momentum", "momentum >= 0"],
    ),
]


@pytest.mark.parametrize("recipe,hyperparameters,error,fragments", SUBCLASS_ERRORS, ids=str)
def test_subclass_checked_when_defined(
    recipe: Any, hyperparameters: dict, error: type[Exception], fragments: list[str]
) -> None:
    with pytest.raises(error) as info:
        _subclass(recipe, hyperparameters)
    _assert_names(info.value, *fragments)


def test_subclass_with_rules_of_their_roles_is_built() -> None:
    cls = _subclass(make_recipe(first=rules.HeavyBall()), {"momentum": 0.9})
    opt = cls(Net(DTYPE).parameters())
    assert opt.defaults["momentum"] == 0.9 and opt.defaults["maximize"] is False


def test_compose_takes_lists_and_flag_defaults() -> None:
    """A list of gradient rules is a tuple of them; a flag given to compose is the class's
    default (it is not overridden by the implementation flags' defaults)."""
    cls = compose(
        "Listed", gradient=[rules.Maximize(), rules.WeightDecay()], maximize=True, foreach=False
    )
    assert cls.recipe.gradient == tuple(cls.recipe.gradient) and len(cls.recipe.gradient) == 2
    opt = cls(Net(DTYPE).parameters())
    assert opt.defaults["maximize"] is True and opt.defaults["foreach"] is False
    model_t, model_o = Net(DTYPE), Net(DTYPE)
    model_o.load_state_dict(model_t.state_dict())
    xs = make_inputs(DTYPE, 3)
    train(model_t, torch.optim.SGD(model_t.parameters(), lr=1e-3, maximize=True), xs)
    train(model_o, cls(model_o.parameters()), xs)
    assert_models_equal(model_t, model_o, **TOL)


# -- (d) loading checks the composed class's ranges -----------------------------------------------
def _in_group(changes: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def apply(sd: dict[str, Any]) -> None:
        sd["param_groups"][0].update(changes)

    return apply


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    def apply(sd: dict[str, Any]) -> None:
        del sd["param_groups"][0][key]

    return apply


LOAD_ERRORS = [
    (_in_group({"lr": -1.0}), ValueError, ["param_groups[0]", "Invalid lr value: -1.0", "lr >= 0"]),
    (_in_group({"lr": float("nan")}), ValueError, ["param_groups[0]", "lr", "nan"]),
    (_in_group({"lr": "fast"}), TypeError, ["param_groups[0]", "'lr'", "str 'fast'"]),
    (_in_group({"betas": (0.9, 1.0)}), ValueError, ["param_groups[0]", "0 <= betas[i] < 1"]),
    (_in_group({"eps": -1.0}), ValueError, ["param_groups[0]", "eps >= 0"]),
    (
        _in_group({"initial_accumulator_value": -1.0}),
        ValueError,
        ["initial_accumulator_value >= 0"],
    ),
    (
        _in_group({"fused": True, "foreach": True}),
        ValueError,
        ["param_groups[0]", "`fused` and `foreach`"],
    ),
    (_drop("eps"), ValueError, ["param_groups[0]", "lacks", "'eps'"]),
]


@pytest.mark.parametrize("change,error,fragments", LOAD_ERRORS, ids=lambda v: str(v)[:30])
def test_composed_load_refuses_out_of_range(
    change: Callable[[dict[str, Any]], None], error: type[Exception], fragments: list[str]
) -> None:
    """The composed class's ranges apply to loaded groups; nothing changes on refusal."""
    model, opt = fresh("AdaGradMomentum")
    train(model, opt, make_inputs(DTYPE, 2))
    bad = copy.deepcopy(opt.state_dict())
    change(bad)
    bad_before, before = copy.deepcopy(bad), copy.deepcopy(opt.state_dict())
    with pytest.raises(error) as info:
        opt.load_state_dict(bad)
    _assert_names(info.value, *fragments)
    assert str(info.value).count("allowed") <= 1, str(info.value)  # the range said once
    assert_state_dicts_close(opt.state_dict(), before, rtol=0, atol=0)
    assert_state_dicts_close(bad, bad_before, rtol=0, atol=0)


def test_composed_load_ignores_keys_its_rules_do_not_read() -> None:
    """Scheduler keys, and a key no rule reads (even out of any range), load as in torch."""
    model, opt = fresh("AdaGradMomentum")
    train(model, opt, make_inputs(DTYPE, 2))
    sd = copy.deepcopy(opt.state_dict())
    sd["param_groups"][0].update(initial_lr=0.01, max_momentum=0.95, momentum=-1.0)
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["momentum"] == -1.0 and opt.param_groups[0]["initial_lr"] == 0.01


# -- (d) a rule written outside the package needs nothing from momentopt.engine -------------
class UncorrectedAverage(rules.FirstMoment):
    """``m ← β·m + (1−β)·g``, step ``m`` (Adam's first moment without bias correction)."""

    hyperparameters = {"beta": 0.9}
    state = (rules.StateSpec("momentum"),)

    def direction(self, view: rules.UpdateView, g: Any, denom: Any) -> rules.Direction:
        m = view.state("momentum").lerp_(g, 1 - view.group["beta"])
        return [rules.Term(m, 1.0, denom)]

    def formula(self, group: Any) -> str:
        return "m ← β·m + (1−β)·g"


Uncorrected = compose("Uncorrected", first=UncorrectedAverage(), lr=0.1)


def test_this_module_needs_no_engine_import() -> None:
    """The rule above is written with ``momentopt.rules`` and ``compose`` only."""
    import ast
    import pathlib

    tree = ast.parse(pathlib.Path(__file__).read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m and m.startswith("momentopt.engine")]


@pytest.mark.parametrize("flags", [{"foreach": False}, {"foreach": True}, {"fused": True}, {}])
def test_an_outside_rule_runs_on_every_path(flags: dict) -> None:
    """Its state is created from the declaration; every path computes the same numbers as
    the rule's math written by hand (``fused=True``: compiled, within FMA rounding)."""
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(7)), torch.nn.Parameter(torch.randn(3, 4))]
    reference = [p.detach().clone() for p in params]
    momenta = [torch.zeros_like(p) for p in params]
    opt = Uncorrected(params, beta=0.8, **flags)
    for _ in range(4):
        grads = [torch.randn_like(p) for p in params]
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        opt.step()
        for w, m, g in zip(reference, momenta, grads, strict=True):
            m.lerp_(g, 1 - 0.8)
            w.add_(m, alpha=-0.1)
    assert list(opt.state[params[0]]) == ["step", "momentum"]
    exact = {"rtol": 0, "atol": 0} if not flags.get("fused") else {"rtol": 1e-6, "atol": 1e-7}
    for p, w in zip(params, reference, strict=True):
        torch.testing.assert_close(p.detach(), w, **exact)
