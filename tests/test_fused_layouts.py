"""Memory layouts on every executor: parameters, gradients and state in any layout torch.optim
takes give torch's numbers; expanded parameters raise torch's error, never crash.

torch's fused CPU kernels walk a parameter, its gradient and its state as one flat block of
memory; momentopt gives them only tensors for which that is right and runs the others
multi-tensor. Everything here is float64: the paths differ only in operation order, which
moves float64 results by ~1e-16 relative, while a layout mistake moves them by O(1) (each
row's ``tolerances.layouts``, tests/optimizer_table.py).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch

import momentopt

from .helpers import sparse_if_needed
from .optimizer_table import ALGORITHMS, OPTIMIZERS

DTYPE = torch.float64

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "SGD-momentum": ("SGD", {"lr": 0.1, "momentum": 0.9}),
    "SGD-decay": ("SGD", {"lr": 0.1, "weight_decay": 0.1}),
    "SGD-nesterov": ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "maximize": True}),
    "Adagrad": ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.1}),
    "Adam": ("Adam", {"lr": 0.1}),
    "AMSGrad": ("Adam", {"lr": 0.1, "amsgrad": True, "weight_decay": 0.1}),
    "AdamW": ("AdamW", {"lr": 0.1}),
    "RMSprop": ("RMSprop", {"lr": 0.01, "momentum": 0.9, "centered": True}),
    "NAdam": ("NAdam", {"lr": 0.1}),
    "Adadelta": ("Adadelta", {"lr": 0.5}),
    "Rprop": ("Rprop", {"lr": 0.1, "etas": (0.4, 1.5)}),
    "ASGD": ("ASGD", {"lr": 0.1, "lambd": 0.1, "t0": 2.0, "weight_decay": 0.1}),
}
EXECUTORS = {
    "default": {},
    "fused": {"fused": True},
    "foreach": {"foreach": True},
    "for-loop": {"foreach": False},
}


def _randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=DTYPE)


# (parameter, gradient for a step) in layouts users produce
LAYOUTS: dict[str, tuple[Callable[[], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]] = {
    "transposed param, contiguous grad": (lambda: _randn(8, 6).t(), lambda p: _randn(6, 8)),
    "contiguous param, transposed grad": (lambda: _randn(6, 8), lambda p: _randn(8, 6).t()),
    "strided-slice param": (lambda: _randn(12, 8)[::2], lambda p: _randn(6, 8)),
    "grad sliced from a bigger tensor": (lambda: _randn(6, 8), lambda p: _randn(6, 16)[:, ::2]),
    "expanded grad": (lambda: _randn(6, 8), lambda p: _randn(6, 1).expand(6, 8)),
    "channels_last param, contiguous grad": (
        lambda: _randn(2, 3, 4, 5).to(memory_format=torch.channels_last),
        lambda p: _randn(2, 3, 4, 5),
    ),
    "channels_last param and grad": (
        lambda: _randn(2, 3, 4, 5).to(memory_format=torch.channels_last),
        lambda p: torch.empty_like(p).normal_(),
    ),
    "matching layouts": (lambda: _randn(6, 8), lambda p: _randn(6, 8)),
}


def _inputs(layout: str) -> tuple[list[torch.nn.Parameter], list[list[torch.Tensor]]]:
    """Fresh parameters (a misfit beside a plain vector, so the group is split) and three
    steps' gradients; the same values and layouts on every call."""
    torch.manual_seed(3)
    make_param, make_grad = LAYOUTS[layout]
    params = [torch.nn.Parameter(make_param()), torch.nn.Parameter(_randn(5))]
    grads = [[make_grad(params[0]), _randn(5)] for _ in range(3)]
    return params, grads


def _run(
    cls: type, kwargs: dict[str, Any], layout: str
) -> tuple[list[torch.Tensor], dict[str, Any]]:
    params, grads = _inputs(layout)
    opt = cls(params, **kwargs)
    for step_grads in grads:
        for p, g in zip(params, step_grads, strict=True):
            p.grad = g
        opt.step()
    return [p.detach() for p in params], opt.state_dict()


def _cases() -> list[Any]:
    cases = []
    for algo, (name, _) in VARIANTS.items():
        for executor in EXECUTORS:
            if executor == "fused" and not OPTIMIZERS[name].supports("fused"):
                continue
            cases.append(pytest.param(algo, executor, id=f"{algo}-{executor}"))
    return cases


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("algo,executor", _cases())
def test_any_layout_gives_torchs_default_numbers(algo: str, executor: str, layout: str) -> None:
    name, kwargs = VARIANTS[algo]
    case = OPTIMIZERS[name]
    tol = case.tolerances.layouts.kwargs()
    expected, expected_state = _run(case.torch_cls, {**kwargs, "foreach": False}, layout)
    got, got_state = _run(case.ours_cls, {**kwargs, **EXECUTORS[executor]}, layout)
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e, **tol)
    for key, state in expected_state["state"].items():
        for n, value in state.items():
            torch.testing.assert_close(
                got_state["state"][key][n], value, **tol, check_dtype=False, check_device=False
            )


@pytest.mark.parametrize("algo", ["SGD-momentum", "Adam", "Adagrad"])
def test_state_loaded_in_another_layout(algo: str) -> None:
    """A checkpoint whose state tensors have other strides than the parameters."""
    name, kwargs = VARIANTS[algo]
    case = OPTIMIZERS[name]
    torch_cls, ours = case.pair
    start = _randn(6, 8)
    saved_from = torch.nn.Parameter(start.clone())
    donor = torch_cls([saved_from], **kwargs)
    saved_from.grad = _randn(6, 8)
    donor.step()
    sd = donor.state_dict()
    for n, v in sd["state"][0].items():
        if v.dim() == 2:  # same values, transposed memory
            sd["state"][0][n] = v.t().contiguous().t()
    grads = [_randn(6, 8) for _ in range(3)]
    results = []
    for cls, flags in ((torch_cls, {"foreach": False}), (ours, {})):
        p = torch.nn.Parameter(saved_from.detach().clone())
        opt = cls([p], **kwargs, **flags)
        opt.load_state_dict(copy.deepcopy(sd))  # torch's load aliases the tensors it loads
        for g in grads:
            p.grad = g.clone()
            opt.step()
        results.append(p.detach())
    torch.testing.assert_close(results[1], results[0], **case.tolerances.layouts.kwargs())


# SGD with momentum: a state buffer, and (fused=True) torch's kernel rather than one foreach op
EXPANDED_KWARGS = {"SGD": {"momentum": 0.9}}


@pytest.mark.parametrize("executor", list(EXECUTORS))
@pytest.mark.parametrize("name", ALGORITHMS)
def test_expanded_param_raises_torchs_error(name: str, executor: str) -> None:
    """Elements that share memory: torch refuses the in-place update with a RuntimeError
    (before this was guarded, torch's fused kernel wrote out of bounds: heap corruption)."""
    case = OPTIMIZERS[name]
    lacking = [flag for flag in EXECUTORS[executor] if not case.supports(flag)]
    if lacking:
        pytest.skip(f"torch.optim.{name} has no {lacking[0]} flag")
    kwargs = EXPANDED_KWARGS.get(name, {})
    torch_cls, ours = case.pair
    # (a sparse update, SparseAdam's, meets autograd's check of the expanded view first)
    message = "view of a leaf Variable" if case.sparse_only else "single memory location"
    raised = []
    for cls, flags in ((torch_cls, {}), (ours, EXECUTORS[executor])):
        p = torch.nn.Parameter(torch.randn(4, 1).expand(4, 1000))
        opt = cls([p], lr=0.1, **kwargs, **flags)
        p.grad = torch.randn(4, 1000)
        sparse_if_needed(opt, [p])
        with pytest.raises(RuntimeError, match=message) as info:
            opt.step()
            opt.step()
        raised.append(type(info.value))
    assert raised[0] is raised[1]


def test_fused_kernel_still_takes_the_tensors_that_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The layout rule sends only misfits elsewhere: matching layouts (channels_last
    included) still go to torch's kernel in one call."""
    seen: list[int] = []
    kernel_name = OPTIMIZERS["Adam"].fused_kernel
    kernel = getattr(torch, kernel_name)

    def counting(params: list[torch.Tensor], *args: Any, **kwargs: Any) -> None:
        seen.append(len(params))
        kernel(params, *args, **kwargs)

    monkeypatch.setattr(torch, kernel_name, counting)
    cl = torch.nn.Parameter(_randn(2, 3, 4, 5).to(memory_format=torch.channels_last))
    plain = torch.nn.Parameter(_randn(7))
    misfit = torch.nn.Parameter(_randn(8, 6).t())
    opt = momentopt.Adam([cl, plain, misfit])
    cl.grad = torch.empty_like(cl).normal_()
    plain.grad = _randn(7)
    misfit.grad = _randn(6, 8)
    opt.step()
    assert seen == [2]


def _optim_db_cases() -> list[Any]:
    return [
        pytest.param(name, inp.kwargs, layout, id=f"{name}-{inp.desc.replace(' ', '_')}-{layout}")
        for name, case in OPTIMIZERS.items()
        for inp in case.inputs(DTYPE)
        for layout in HAND_SET
    ]


HAND_SET = (
    "transposed param, contiguous grad",
    "contiguous param, transposed grad",
    "grad sliced from a bigger tensor",
)


@pytest.mark.parametrize("name,kwargs,layout", _optim_db_cases())
def test_hand_set_grads_over_optim_db_with_default_flags(
    name: str, kwargs: dict[str, Any], layout: str
) -> None:
    """Every input of torch's optimizer database, default flags, gradients set by hand in
    another layout than their parameters: torch's default numbers (or torch's error)."""
    case = OPTIMIZERS[name]
    outcomes = []
    for cls in case.pair:
        try:
            outcomes.append(_run(cls, copy.deepcopy(kwargs), layout))
        except Exception as err:  # noqa: BLE001 — both must refuse alike: the type is compared
            outcomes.append(type(err))
    expected, got = outcomes
    if isinstance(expected, type) or isinstance(got, type):
        assert got == expected
        return
    for e, g in zip(expected[0], got[0], strict=True):
        torch.testing.assert_close(g, e, **case.tolerances.layouts.kwargs())
