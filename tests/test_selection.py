"""The step plan: torch's flags first, then the fastest path that computes the same numbers."""

from __future__ import annotations

import pytest
import torch

import momentopt
from momentopt.engine import compiled


def _params(*shapes):
    params = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
    for p in params:
        p.grad = torch.randn_like(p)
    return params


def _paths(opt) -> list[str]:
    return [row["path"] for row in opt.explain()]


@pytest.mark.parametrize(
    "flags,expected",
    [
        ({"differentiable": True}, "per-tensor"),
        ({"differentiable": True, "foreach": True}, "per-tensor"),
        ({"fused": True}, "torch kernel"),
        ({"foreach": True}, "multi-tensor"),
        ({"foreach": False}, "per-tensor"),
        ({"foreach": None, "fused": None}, "torch kernel"),
        ({}, "torch kernel"),
    ],
)
def test_flags(flags, expected):
    assert _paths(momentopt.Adam(_params(3, (2, 2)), **flags)) == [expected]


def test_tensor_subclass_is_not_fused():
    class Sub(torch.Tensor):
        pass

    p = torch.randn(3).as_subclass(Sub)
    p.grad = torch.randn(3)
    assert _paths(momentopt.Adam([p])) in (["multi-tensor"], ["per-tensor"])


def test_env_override(monkeypatch):
    monkeypatch.setenv("MOMENTOPT_EXECUTOR", "multi-tensor")
    assert _paths(momentopt.Adam(_params(3))) == ["multi-tensor"]
    assert _paths(momentopt.Adam(_params(3), differentiable=True)) == ["per-tensor"]


def _kernel(opt) -> str | None:
    rows = [r for r in opt.explain() if r["path"] == "torch kernel"]
    return rows[0]["reason"].removeprefix("torch.") if rows else None


def test_torch_kernel_table():
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
        assert _kernel(cls(_params(3), fused=True) if name else cls(_params(3))) == name, cls
    assert _kernel(momentopt.Adagrad(_params(3))) is None  # not torch's default's numbers
    # plain SGD is one foreach op (torch's kernel is slower at it); with momentum, the kernel
    assert _kernel(momentopt.SGD(_params(3), momentum=0.9)) == "_fused_sgd_"
    # Adam with decoupled decay is AdamW's kernel
    opt = momentopt.Adam(_params(3), decoupled_weight_decay=True, weight_decay=0.1)
    assert _kernel(opt) == "_fused_adamw_"
    # AMSGrad and tensor hyperparameters are not torch's kernel's numbers: the recipe runs
    assert _kernel(momentopt.Adam(_params(3), amsgrad=True)) is None
    assert _kernel(momentopt.Adam(_params(3), lr=torch.tensor(1e-3))) is None
    # a composed recipe with SGD's rules but decoupled decay has no kernel: none is listed
    Composed = momentopt.compose(
        "Composed",
        first=momentopt.rules.HeavyBall(),
        gradient=(momentopt.rules.Maximize(), momentopt.rules.WeightDecay(decoupled=True)),
    )
    assert _kernel(Composed(_params(3), momentum=0.9)) is None


def test_plan_says_why():
    """Every row names its path's reason; layouts torch's kernel cannot take go elsewhere."""
    params = _params(8, (4, 4))
    params[1].grad = torch.randn(4, 4).t()  # a gradient in another layout than its param
    rows = momentopt.Adam(params).explain()
    assert [(r["path"], r["tensors"]) for r in rows] == [("torch kernel", 1), ("multi-tensor", 1)]
    assert "layout" in rows[1]["reason"]
    rows = momentopt.RMSprop(_params(10)).explain()
    assert rows[0]["path"] == "multi-tensor" and "would not pay" in rows[0]["reason"]
    half = [torch.nn.Parameter(torch.randn(3, dtype=torch.float16))]
    half[0].grad = torch.randn(3, dtype=torch.float16)
    rows = momentopt.Adam(half).explain()
    assert rows[0]["path"] == "per-tensor" and "float16" in rows[0]["reason"]


def test_explain_changes_nothing():
    params = _params(5)
    opt = momentopt.Adam(params)
    before = [p.detach().clone() for p in params]
    opt.explain()
    assert not opt.state and all(torch.equal(a, p) for a, p in zip(before, params, strict=True))


def test_small_groups_do_not_compile_by_default(monkeypatch):
    """With default flags a small group needing a compile runs multi-tensor (no compile)."""

    def refuse(kernel):
        raise AssertionError("compiled a small group")

    monkeypatch.setattr(compiled, "_compile", refuse)
    monkeypatch.setattr(compiled, "_compiled", {})
    momentopt.RMSprop(_params(10, (3, 4))).step()
    assert compiled.compile_available()


def test_a_fused_key_means_nothing_to_an_algorithm_without_fused() -> None:
    """torch's RMSprop ignores a ``fused`` key that a loaded group brings; so does ours."""
    p = torch.nn.Parameter(torch.randn(4, 3))
    opt = momentopt.RMSprop([p], lr=0.1, foreach=False)
    sd = opt.state_dict()
    sd["param_groups"][0]["fused"] = True
    opt.load_state_dict(sd)
    p.grad = torch.randn(4, 3)
    assert _paths(opt) == ["per-tensor"]
    opt.step()
    assert opt.param_groups[0]["fused"] is True
