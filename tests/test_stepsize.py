"""Sign-based steps with per-element step sizes (Rprop) and rules that run after the update
(ASGD's iterate average and step size): as mechanisms of their own (composed into new
optimizers), on the compiled path, and where momentopt deviates from torch on purpose."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.nn import Parameter

import momentopt
from momentopt import rules
from momentopt.engine import compiled

from .optimizer_table import OPTIMIZERS
from .test_differentiable import CONFIGS, inputs, one_step, run


def _params(dtype: torch.dtype = torch.float64, seed: int = 3) -> list[Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [Parameter(torch.randn(shape, generator=g, dtype=dtype)) for shape in ((3, 4), (5,))]


def _train(opt: torch.optim.Optimizer, params: list[Parameter], steps: int = 8) -> list[Any]:
    """``steps`` steps with gradients ``sin((t+1)·w) + 0.2·w``; the weights after each."""
    history = []
    for t in range(steps):
        for p in params:
            p.grad = torch.sin(p.detach() * (t + 1)) + 0.2 * p.detach()
        opt.step()
        history.append([p.detach().clone() for p in params])
    return history


# -- the mechanisms, composed into optimizers of their own --------------------------------------
AveragedMomentum = momentopt.compose(
    "AveragedMomentum",
    first=rules.HeavyBall(),
    after=(rules.IterateAverage(),),
    lr=0.05,
    momentum=0.9,
    t0=3.0,
)


@pytest.mark.parametrize("flags", [{"foreach": False}, {"foreach": True}])
def test_an_iterate_average_composes_with_any_step(flags: dict[str, Any]) -> None:
    """``after`` rules run after the update on every path: momentum SGD whose ``ax`` is the
    average of its iterates from step t0 on (μ_t = 1/max(1, t−1−t0)), computed by hand."""
    params = _params()
    opt = AveragedMomentum(params, **flags)
    history = _train(opt, params)
    for i, p in enumerate(params):
        average = history[0][i].clone()
        for t in range(2, len(history) + 1):  # μ used at step t was set after step t − 1
            mu = torch.tensor(1 / max(1, t - 1 - 3.0), dtype=torch.float32).item()
            average = average + (history[t - 1][i] - average) * mu
        torch.testing.assert_close(opt.state[p]["ax"], average, rtol=1e-12, atol=1e-12)
        assert opt.state[p]["mu"] == torch.tensor(1 / max(1, len(history) - 3.0))
    assert opt.describe()[-1][0] == "after the update"


def test_a_schedule_that_keeps_its_step_size_runs_after_the_update() -> None:
    """DecayingStepSize is a schedule (α_t = η) and an after-update rule (η for the next
    step): η after step t is α/(1 + λ·α·t)^p, rounded once to the state's dtype."""
    cls = momentopt.compose(
        "DecayingSGD", schedule=(rules.DecayingStepSize(),), lr=0.3, lambd=0.5, alpha=0.6
    )
    params = _params()
    opt = cls(params, foreach=True)
    _train(opt, params, steps=5)
    for p in params:
        expected = torch.as_tensor(0.3 / (1 + 0.5 * 0.3 * 5) ** 0.6).to(opt.state[p]["eta"])
        assert torch.equal(opt.state[p]["eta"], expected)


def test_a_sign_step_composes_with_a_learning_rate() -> None:
    """ResilientStep without UnitStepSize: the group's lr then scales the per-element steps
    (here lr = 0.5 halves Rprop's update, and Rprop's state is unchanged)."""
    half = momentopt.compose("HalfRprop", first=rules.ResilientStep(), gradient=(), lr=0.5)
    p_half, p_rprop = _params(), _params()
    opt_half = half(p_half, step_sizes=(1e-6, 50))
    opt_rprop = momentopt.Rprop(p_rprop, lr=0.5)
    for t in range(4):  # the same gradients for both (not functions of their weights)
        before = [p.detach().clone() for p in p_half]
        for ps in (p_half, p_rprop):
            for p in ps:
                p.grad = torch.cos(torch.arange(p.numel(), dtype=p.dtype) * (t + 2)).view_as(p)
        opt_half.step()
        rprop_before = [p.detach().clone() for p in p_rprop]
        opt_rprop.step()
        for b, p, rb, r in zip(before, p_half, rprop_before, p_rprop, strict=True):
            torch.testing.assert_close(p - b, 0.5 * (r - rb))
        for p, r in zip(p_half, p_rprop, strict=True):
            assert torch.equal(opt_half.state[p]["step_size"], opt_rprop.state[r]["step_size"])


# -- the compiled path records them ---------------------------------------------------------------
@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Compiling forced on small groups, the recorded kernels run as recorded (uncompiled:
    inductor's own compiles are test_fused's ``test_compiled_parity``); their sources."""
    sources: list[str] = []

    def keep(kernel: Any) -> Any:
        sources.append(kernel.source)
        return kernel

    monkeypatch.setattr(compiled, "COMPILE_MIN_NUMEL", 0)
    monkeypatch.setattr(compiled, "_compile", keep)
    monkeypatch.setattr(compiled, "_compiled", {})
    return sources


@pytest.mark.parametrize(
    "name,kwargs,ops",
    [
        (
            "Rprop",
            {"etas": (0.3, 1.7), "maximize": True},
            (".sign()", ".masked_fill_(", ".clamp_("),
        ),
        ("Rprop", {}, (".gt(", ".lt(", ".eq(")),
        ("ASGD", {"weight_decay": 0.1}, (".mul_(", ".copy_(")),  # decay (1 − λη), w̄ ← w
        ("ASGD", {"t0": 2.0, "lambd": 0.1}, (".neg()",)),  # w̄ + μ·(w − w̄) from step 4 on
    ],
)
def test_the_compiled_path_records_the_recipe(
    recorded: list[str], name: str, kwargs: dict[str, Any], ops: tuple[str, ...]
) -> None:
    """The plan compiles the recipe (the new ops and the after-update rules included), and
    the recorded step gives torch's numbers (η and μ to the last bit: they are set from the
    step's Python numbers after the kernel ran)."""
    case = OPTIMIZERS[name]
    p_ours, p_torch = _params(), _params()
    ours, theirs = case.ours_cls(p_ours, **kwargs), case.torch_cls(p_torch, **kwargs)
    for p in p_ours:
        p.grad = torch.ones_like(p)
    assert {row["path"] for row in ours.explain()} == {"compiled"}
    _train(ours, p_ours)
    _train(theirs, p_torch)
    assert recorded and all(any(op in source for source in recorded) for op in ops), recorded
    for po, pt in zip(p_ours, p_torch, strict=True):
        torch.testing.assert_close(po, pt, rtol=1e-12, atol=1e-14)
        for key, value in theirs.state[pt].items():
            exact = key in case.tolerances.exact_state
            tol = {"rtol": 0.0, "atol": 0.0} if exact else {"rtol": 1e-12, "atol": 1e-14}
            torch.testing.assert_close(ours.state[po][key], value, **tol)


# -- deliberate deviations, pinned ---------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_asgd_foreach_gives_torchs_for_loop_numbers(dtype: torch.dtype) -> None:
    """torch's foreach ASGD computes other numbers than its for-loop (the row's
    ``torch_foreach_differs``, checked here); momentopt's foreach=True gives the for-loop's,
    to the last bit."""
    kwargs = {"lambd": 0.01, "t0": 3.0, "weight_decay": 0.1}
    runs = {}
    for label, cls, flags in (
        ("torch loop", torch.optim.ASGD, {"foreach": False}),
        ("torch foreach", torch.optim.ASGD, {"foreach": True}),
        ("ours foreach", momentopt.ASGD, {"foreach": True}),
    ):
        params = _params(dtype)
        opt = cls(params, **kwargs, **flags)
        _train(opt, params, steps=30)
        runs[label] = (params, opt)
    assert OPTIMIZERS["ASGD"].torch_foreach_differs
    loop, foreach, ours = runs["torch loop"], runs["torch foreach"], runs["ours foreach"]
    assert not all(torch.equal(a, b) for a, b in zip(loop[0], foreach[0], strict=True))
    for a, b in zip(loop[0], ours[0], strict=True):
        assert torch.equal(a, b)
        for key, value in loop[1].state[a].items():
            assert torch.equal(ours[1].state[b][key], value), key


def test_rows_without_the_fact_have_torch_foreach_equal_to_its_loop() -> None:
    """Rprop's foreach and for-loop agree to the last bit (so its row states no deviation)."""
    assert not OPTIMIZERS["Rprop"].torch_foreach_differs
    finals = []
    for flags in ({"foreach": False}, {"foreach": True}):
        params = _params(torch.float32)
        _train(torch.optim.Rprop(params, etas=(0.3, 1.7), **flags), params, steps=20)
        finals.append(params)
    assert all(torch.equal(a, b) for a, b in zip(*finals, strict=True))


@pytest.mark.parametrize("name", ["Rprop", "ASGD"])
def test_no_derivative_through_is_torchs(name: str) -> None:
    """The row's ``no_derivative_through`` states: torch's differentiable step passes no
    derivative through them (zero) where it passes one through the others it reads."""
    case = OPTIMIZERS[name]
    for kwargs in CONFIGS[name]:
        given = inputs(name, kwargs)
        keys = given[0]
        _, grads = run(case.torch_cls, kwargs, given)
        by_key = dict(zip(["param", "grad", *keys], grads, strict=True))
        for key in case.no_derivative_through:
            assert by_key[key] is not None and not by_key[key].any(), (key, by_key[key])
        assert by_key["param"] is not None and by_key["param"].any()


def test_asgd_average_under_autograd_once_t_passes_t0() -> None:
    """A deliberate deviation: momentopt reads μ as a number, as torch reads η. torch's
    differentiable step multiplies by the 0-d tensor μ (once t > t0) and then changes μ in
    place, so its backward pass raises; momentopt's step has the same values and a backward
    pass (no derivative through μ)."""
    kwargs = {"lr": 0.1, "t0": 0.0}
    keys, tensors, constants = given = inputs("ASGD", kwargs)
    ours, grads = run(momentopt.ASGD, kwargs, given)
    theirs = one_step(torch.optim.ASGD, kwargs, keys, constants, True, *tensors)
    for o, t in zip(ours, theirs, strict=True):
        torch.testing.assert_close(o, t, rtol=1e-12, atol=1e-14)
    assert not grads[2 + keys.index("mu")].any() and grads[0].any()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        sum(t.sum() for t in theirs).backward()


def test_rprop_complex_step_sizes_start_at_lr_in_both_parts() -> None:
    """torch starts a complex parameter's step sizes at complex(lr, lr): each real number of
    its real view has the step size lr (a zero gradient keeps them)."""
    expected = torch.full((4,), complex(0.25, 0.25), dtype=torch.complex64)
    for cls in (torch.optim.Rprop, momentopt.Rprop):
        p = Parameter(torch.randn(4, dtype=torch.complex64))
        p.grad = torch.zeros_like(p)
        opt = cls([p], lr=0.25)
        opt.step()
        assert torch.equal(opt.state[p]["step_size"], expected), cls
