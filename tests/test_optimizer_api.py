"""The shared torch.optim.Optimizer API, each behaviour compared with torch.optim itself."""

from __future__ import annotations

import copy
import io
import pickle
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from .helpers import assert_state_dicts_close, loss_of, make_inputs, model_for, sparse_if_needed
from .optimizer_table import ALGORITHMS, OPTIMIZERS

DTYPE = torch.float32
STEPS = 4

# Non-default hyperparameters that make every state tensor appear.
KWARGS = {
    "SGD": {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1},
    "Adagrad": {"lr": 0.05, "lr_decay": 0.1},
    "Adadelta": {"lr": 0.5, "weight_decay": 0.1},
    "RMSprop": {"lr": 0.01, "momentum": 0.5, "centered": True},
    "Adam": {"lr": 0.01, "amsgrad": True},
    "AdamW": {"lr": 0.01},
    "NAdam": {"lr": 0.01, "decoupled_weight_decay": True, "weight_decay": 0.1},
    "Adamax": {"lr": 0.01, "weight_decay": 0.1},
    "RAdam": {"lr": 0.01, "decoupled_weight_decay": True, "weight_decay": 0.1},
    "SparseAdam": {"lr": 0.01, "betas": (0.8, 0.9)},
    "Rprop": {"lr": 0.01, "etas": (0.4, 1.5)},
    "ASGD": {"lr": 0.01, "t0": 2.0, "weight_decay": 0.1},
    "Adafactor": {"lr": 0.01, "weight_decay": 0.1},
    "Muon": {"lr": 0.01, "momentum": 0.9},
}
Sides = list[tuple[nn.Module, torch.optim.Optimizer]]


def twins(name: str, make_params: Callable[[nn.Module], Any] | None = None, **extra: Any) -> Sides:
    """[(model, torch optimizer), (same model copied, our optimizer)]."""
    model = model_for(OPTIMIZERS[name], DTYPE)
    sides = []
    for cls, m in zip(OPTIMIZERS[name].pair, (model, copy.deepcopy(model)), strict=True):
        params = make_params(m) if make_params else m.parameters()
        sides.append((m, cls(params, **copy.deepcopy({**KWARGS[name], **extra}))))
    return sides


def closure_for(
    model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor
) -> Callable[[], torch.Tensor]:
    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_of(model(x))
        loss.backward()
        sparse_if_needed(opt, model.parameters())
        return loss

    return closure


def run(
    sides: Sides, steps: int = STEPS, before_step: Callable[[nn.Module, int], None] | None = None
) -> None:
    for i, x in enumerate(make_inputs(DTYPE, steps)):
        for model, opt in sides:
            opt.zero_grad()
            loss_of(model(x)).backward()
            if before_step:
                before_step(model, i)
            sparse_if_needed(opt, model.parameters())
            opt.step()


def tol(name: str) -> dict[str, float]:
    """The row's tolerance for DTYPE runs judged against torch's directly (no float64 run)."""
    return OPTIMIZERS[name].tolerances.direct[DTYPE].kwargs()


def assert_twins_equal(sides: Sides, name: str) -> None:
    (mt, ot), (mo, oo) = sides
    for (n, pt), po in zip(mt.named_parameters(), mo.parameters(), strict=True):
        torch.testing.assert_close(po, pt, **tol(name), msg=f"param {n}")
    assert_state_dicts_close(oo.state_dict(), ot.state_dict(), **tol(name))


algorithms = pytest.mark.parametrize("name", ALGORITHMS)


# -- add_param_group -------------------------------------------------------------------------
@algorithms
def test_add_param_group_fills_defaults_and_trains_like_torch(name: str) -> None:
    """A group added after some steps gets the defaults (and its overrides) and trains as torch."""
    sides = [
        (m, type(o)(list(m.parameters())[:-2], **copy.deepcopy(KWARGS[name])))
        for m, o in twins(name)
    ]
    run(sides, 2)
    for model, opt in sides:
        opt.add_param_group({"params": list(model.parameters())[-2:], "lr": 0.02})
    (_, ot), (_, oo) = sides
    assert repr(oo) == repr(ot)
    run(sides, STEPS)
    assert_twins_equal(sides, name)


@algorithms
def test_add_param_group_refuses_duplicates_like_torch(name: str) -> None:
    errors = []
    for model, opt in twins(name):
        with pytest.raises(ValueError) as info:
            opt.add_param_group({"params": [model.fc.weight]})
        errors.append(str(info.value))
        assert len(opt.param_groups) == 1
    assert errors[1] == errors[0]


# -- step(closure), zero_grad, missing grads --------------------------------------------------
@algorithms
def test_step_returns_closure_loss(name: str) -> None:
    x = make_inputs(DTYPE, 1)[0]
    losses = []
    for model, opt in twins(name):
        losses.append([opt.step(closure_for(model, opt, x)) for _ in range(3)])
        assert opt.step() is None
    for lt, lo in zip(*losses, strict=True):
        assert isinstance(lo, torch.Tensor)
        torch.testing.assert_close(lo, lt, **tol(name))


@pytest.mark.parametrize("set_to_none", [True, False])
@algorithms
def test_zero_grad_like_torch(name: str, set_to_none: bool) -> None:
    sides = twins(name)
    run(sides, 1)
    for _, opt in sides:
        opt.zero_grad(set_to_none=set_to_none)
    (mt, _), (mo, _) = sides
    for pt, po in zip(mt.parameters(), mo.parameters(), strict=True):
        if set_to_none:
            assert pt.grad is None and po.grad is None
        else:  # (sparse gradients, SparseAdam's, compared as dense ones)
            assert po.grad is not None and po.grad.is_sparse == pt.grad.is_sparse
            go, gt = (g.to_dense() if g.is_sparse else g for g in (po.grad, pt.grad))
            assert torch.equal(go, gt) and not go.any()


@algorithms
def test_steps_without_grads_like_torch(name: str) -> None:
    """All params without grad: nothing happens; some without grad: only they are skipped."""
    sides = twins(name)
    for _, opt in sides:
        opt.step()
    (_, ot), (_, oo) = sides
    assert_state_dicts_close(oo.state_dict(), ot.state_dict(), rtol=0, atol=0)

    def drop(model: nn.Module, i: int) -> None:
        next(model.parameters()).grad = None  # (Net's conv.weight)
        if i % 2:
            model.scale.grad = None

    run(sides, STEPS, before_step=drop)
    assert_twins_equal(sides, name)


# -- hooks -----------------------------------------------------------------------------------
@algorithms
def test_every_hook_fires_once_per_call(name: str) -> None:
    """step, state_dict and load_state_dict hooks (and the global step hooks): once per call,
    in the same order as for torch."""
    from torch.optim.optimizer import (
        register_optimizer_step_post_hook,
        register_optimizer_step_pre_hook,
    )

    logs = []
    for model, opt in twins(name):
        log: list[str] = []
        handles = [
            register_optimizer_step_pre_hook(
                lambda o, a, k: log.append("global_pre") if o is opt else None
            ),
            register_optimizer_step_post_hook(
                lambda o, a, k: log.append("global_post") if o is opt else None
            ),
        ]
        opt.register_step_pre_hook(lambda o, a, k: log.append("step_pre"))
        opt.register_step_post_hook(lambda o, a, k: log.append("step_post"))
        opt.register_state_dict_pre_hook(lambda o: log.append("sd_pre"))
        opt.register_state_dict_post_hook(lambda o, sd: log.append("sd_post"))
        opt.register_load_state_dict_pre_hook(lambda o, sd: log.append("load_pre"))
        opt.register_load_state_dict_post_hook(lambda o: log.append("load_post"))
        try:
            x = make_inputs(DTYPE, 1)[0]
            opt.step(closure_for(model, opt, x))
            log.append("|")
            sd = opt.state_dict()
            log.append("|")
            opt.load_state_dict(sd)
        finally:
            for h in handles:
                h.remove()
        logs.append(log)
    assert logs[1] == logs[0]
    assert logs[1].count("step_pre") == 1 and logs[1].count("global_pre") == 1
    assert logs[1].count("sd_post") == 1 and logs[1].count("load_pre") == 1


@algorithms
def test_step_pre_hook_may_replace_arguments(name: str) -> None:
    """A pre-hook returning (args, kwargs) changes what step receives, as in torch."""
    x = make_inputs(DTYPE, 1)[0]
    losses = []
    for model, opt in twins(name):
        replacement = closure_for(model, opt, x)
        opt.register_step_pre_hook(lambda o, a, k: ((a[0],), {"closure": replacement}))
        losses.append(opt.step())
    assert losses[0] is not None and losses[1] is not None
    torch.testing.assert_close(losses[1], losses[0])


# -- copies, pickles, checkpoints ------------------------------------------------------------
@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@algorithms
def test_deepcopy_and_pickle_continue_identically(name: str, how: str) -> None:
    """A copied (model, optimizer) pair continues exactly like the original."""
    model, opt = twins(name)[1]
    run([(model, opt)], 2)
    if how == "deepcopy":
        model2, opt2 = copy.deepcopy((model, opt))
    else:
        model2, opt2 = pickle.loads(pickle.dumps((model, opt)))
    assert type(opt2) is type(opt) and repr(opt2) == repr(opt)
    hooks: list[str] = []
    opt2.register_step_post_hook(lambda o, a, k: hooks.append("post"))
    run([(model, opt), (model2, opt2)], 3)
    assert hooks == ["post"] * 3
    for p, p2 in zip(model.parameters(), model2.parameters(), strict=True):
        torch.testing.assert_close(p2, p, rtol=0, atol=0)
    assert_state_dicts_close(opt2.state_dict(), opt.state_dict(), rtol=0, atol=0)


@algorithms
def test_torch_save_and_weights_only_load(name: str) -> None:
    """torch.save + torch.load(weights_only=True) of our state_dict, loadable by torch too."""
    (mt, ot), (mo, oo) = sides = twins(name)
    run(sides, 2)
    buf = io.BytesIO()
    torch.save(oo.state_dict(), buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    assert_state_dicts_close(loaded, oo.state_dict(), rtol=0, atol=0)
    fresh_t = OPTIMIZERS[name].torch_cls(mt.parameters(), **copy.deepcopy(KWARGS[name]))
    fresh_t.load_state_dict(copy.deepcopy(loaded))
    fresh_o = OPTIMIZERS[name].ours_cls(mo.parameters(), **copy.deepcopy(KWARGS[name]))
    fresh_o.load_state_dict(loaded)
    assert_state_dicts_close(fresh_o.state_dict(), fresh_t.state_dict(), rtol=0, atol=0)


# -- named parameters, tensor lr, per-group hyperparameters ----------------------------------
@algorithms
def test_named_parameters_like_torch(name: str) -> None:
    sides = twins(name, make_params=lambda m: m.named_parameters())
    run(sides, 2)
    (_, ot), (_, oo) = sides
    assert oo.param_groups[0]["param_names"] == ot.param_groups[0]["param_names"]
    assert oo.state_dict()["param_groups"] == ot.state_dict()["param_groups"]
    assert_twins_equal(sides, name)


@pytest.mark.parametrize("change", ["fill_", "scheduler"])
@algorithms
def test_tensor_lr_changed_in_place(name: str, change: str) -> None:
    """A 0-d tensor lr changed in place between steps takes effect, as in torch."""
    sides = twins(name, lr=torch.tensor(0.01))
    schedulers = [torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5) for _, opt in sides]
    lr_objects = [opt.param_groups[0]["lr"] for _, opt in sides]
    for i in range(STEPS):
        run(sides, 1)
        if change == "fill_":
            for _, opt in sides:
                opt.param_groups[0]["lr"].fill_(0.03 / (i + 1))
        else:
            for s in schedulers:
                s.step()
    for (_, opt), obj in zip(sides, lr_objects, strict=True):
        assert opt.param_groups[0]["lr"] is obj  # changed in place, never replaced
    torch.testing.assert_close(sides[1][1].param_groups[0]["lr"], sides[0][1].param_groups[0]["lr"])
    assert_twins_equal(sides, name)


PER_GROUP = {
    "SGD": {"lr": 0.2, "momentum": 0.0, "nesterov": False, "maximize": True},
    "Adagrad": {"lr": 0.2, "eps": 1e-3, "weight_decay": 0.3},
    "Adadelta": {"rho": 0.5, "maximize": True},
    "RMSprop": {"alpha": 0.5, "centered": False, "momentum": 0.0},
    "Adam": {"betas": (0.5, 0.6), "amsgrad": False, "weight_decay": 0.2},
    "AdamW": {"betas": (0.5, 0.6), "maximize": True, "weight_decay": 0.5},
    "NAdam": {"momentum_decay": 0.1, "decoupled_weight_decay": False, "weight_decay": 0.2},
    "Adamax": {"betas": (0.5, 0.6), "maximize": True, "weight_decay": 0.2},
    "RAdam": {"betas": (0.5, 0.9), "decoupled_weight_decay": True, "weight_decay": 0.2},
    "SparseAdam": {"betas": (0.5, 0.6), "eps": 1e-3, "maximize": True},
    "Rprop": {"etas": (0.3, 1.1), "step_sizes": (1e-4, 1.0), "maximize": True},
    "ASGD": {"lambd": 0.01, "alpha": 0.5, "t0": 3.0, "maximize": True},
    "Adafactor": {"beta2_decay": -0.5, "d": 2.0, "maximize": True},
    "Muon": {"nesterov": False, "adjust_lr_fn": "match_rms_adamw", "ns_steps": 3},
}


@algorithms
def test_per_group_hyperparameters(name: str) -> None:
    """Two groups with different hyperparameters (flags included) train as in torch."""

    def groups(m: nn.Module) -> list[dict[str, Any]]:
        params = list(m.parameters())
        return [{"params": params[:3]}, {"params": params[3:], **PER_GROUP[name]}]

    sides = twins(name, make_params=groups)
    run(sides, STEPS)
    assert repr(sides[1][1]) == repr(sides[0][1])
    assert_twins_equal(sides, name)
