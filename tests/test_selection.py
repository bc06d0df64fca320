"""The executor choice: torch's flags first, then the fastest correct executor."""

from __future__ import annotations

import pytest
import torch

import momentopt
from momentopt.engine import fused
from momentopt.engine.selection import choose_executor


def _params(*shapes):
    return [torch.nn.Parameter(torch.randn(s)) for s in shapes]


@pytest.mark.parametrize(
    "flags,expected",
    [
        ({"differentiable": True}, "per_tensor"),
        ({"differentiable": True, "foreach": True}, "per_tensor"),
        ({"fused": True}, "fused"),
        ({"foreach": True}, "multi_tensor"),
        ({"foreach": False}, "per_tensor"),
        ({"foreach": None, "fused": None}, "auto"),
        ({}, "auto"),
    ],
)
def test_flags(flags, expected):
    assert choose_executor(flags, _params(3, (2, 2))) == expected


def test_tensor_subclass_is_not_fused():
    class Sub(torch.Tensor):
        pass

    p = torch.randn(3).as_subclass(Sub)
    assert choose_executor({}, [p]) in ("multi_tensor", "per_tensor")


def test_env_override(monkeypatch):
    monkeypatch.setenv("MOMENTOPT_EXECUTOR", "multi_tensor")
    assert choose_executor({}, _params(3)) == "multi_tensor"
    assert choose_executor({"differentiable": True}, _params(3)) == "per_tensor"


def test_torch_kernel_table():
    hp = lambda opt: opt.param_groups[0]
    cases = {
        momentopt.Adam: "_fused_adam_",
        momentopt.AdamW: "_fused_adamw_",
        momentopt.SGD: None,
        momentopt.Adagrad: "_fused_adagrad_",
        momentopt.RMSprop: None,
        momentopt.Adadelta: None,
        momentopt.NAdam: None,
    }
    for cls, name in cases.items():
        opt = cls(_params(3))
        kernel = fused.torch_kernel_for(cls.recipe, hp(opt))
        assert (kernel.name if kernel else None) == name, cls
    # plain SGD is one foreach op (torch's kernel is slower at it); with momentum, the kernel
    opt = momentopt.SGD(_params(3), momentum=0.9)
    assert fused.torch_kernel_for(opt.recipe, hp(opt)).name == "_fused_sgd_"
    # Adam with decoupled decay is AdamW's kernel
    opt = momentopt.Adam(_params(3), decoupled_weight_decay=True, weight_decay=0.1)
    assert fused.torch_kernel_for(opt.recipe, hp(opt)).name == "_fused_adamw_"
    # a composed recipe with Adam's rules but decoupled SGD-style decay has no SGD kernel
    Composed = momentopt.compose(
        "Composed", first=momentopt.rules.HeavyBall(),
        gradient=(momentopt.rules.Maximize(), momentopt.rules.WeightDecay(decoupled=True)),
    )
    opt = Composed(_params(3), momentum=0.9)
    assert fused.torch_kernel_for(opt.recipe, hp(opt)) is None


def test_small_groups_do_not_compile_by_default(monkeypatch):
    """With default flags a small group needing a compile runs multi-tensor (no compile)."""
    def refuse(kernel):
        raise AssertionError("compiled a small group")

    monkeypatch.setattr(fused, "_compile", refuse)
    monkeypatch.setattr(fused, "_compiled", {})
    params = _params(10, (3, 4))
    for p in params:
        p.grad = torch.randn_like(p)
    momentopt.RMSprop(params).step()
    assert fused.compile_available()


def test_differentiable_keeps_per_tensor():
    p = torch.nn.Parameter(torch.randn(3))
    opt = momentopt.Adam([p], differentiable=True)
    assert choose_executor(opt.param_groups[0], [p]) == "per_tensor"


def test_a_fused_key_means_nothing_to_an_algorithm_without_fused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """torch's RMSprop ignores a ``fused`` key that a loaded group brings; so does ours."""
    p = torch.nn.Parameter(torch.randn(4, 3))
    opt = momentopt.RMSprop([p], lr=0.1, foreach=False)
    sd = opt.state_dict()
    sd["param_groups"][0]["fused"] = True
    opt.load_state_dict(sd)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the fused executor ran")

    monkeypatch.setattr(fused, "fused", refuse)
    p.grad = torch.randn(4, 3)
    opt.step()
    assert opt.param_groups[0]["fused"] is True
