"""Regression tests for the defects the differential fuzz suite (tests/test_fuzz.py) found.

Each test is the smallest input that showed a defect: momentopt must do what torch.optim's
default path does — raise the same exception type, or give the same numbers (NaN and ±inf
at the same places).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor

import momentopt

NAMES = ("SGD", "Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW", "NAdam")
NAN, INF = math.nan, math.inf
Run = Callable[[Any], Any]  # (torch.optim or momentopt) -> what to compare


def outcome(run: Run, lib: Any) -> Any:
    """``run(lib)``'s result, or the type of the exception it raised."""
    try:
        return run(lib)
    except Exception as err:  # noqa: BLE001 — the exception type is the outcome compared
        return type(err)


def assert_same(run: Run, rtol: float = 0.0, atol: float = 0.0) -> None:
    """momentopt's outcome is torch's: the same exception type, or equal tensors (within
    ``rtol``/``atol``; NaN where torch has NaN)."""
    expected, actual = outcome(run, torch.optim), outcome(run, momentopt)
    if isinstance(expected, type) or isinstance(actual, type):
        assert actual is expected, f"momentopt: {actual!r}, torch: {expected!r}"
        return
    flat_a, flat_e = _flat(actual), _flat(expected)
    assert [k for k, _ in flat_a] == [k for k, _ in flat_e], "different params or state keys"
    for (key, a), (_, e) in zip(flat_a, flat_e, strict=True):
        torch.testing.assert_close(
            a, e, rtol=rtol, atol=atol, equal_nan=True, msg=lambda m, key=key: f"{key}: {m}"
        )


def _flat(value: Any, key: str = "") -> list[tuple[str, Tensor]]:
    """(path, tensor) pairs of nested lists and dicts (numbers as 0-d tensors)."""
    if isinstance(value, Tensor):  # complex as (real, imag): NaN in each compared
        value = value.detach()
        return [(key, torch.view_as_real(value) if value.is_complex() else value)]
    if isinstance(value, dict):
        return [t for k in sorted(value) for t in _flat(value[k], f"{key}[{k!r}]")]
    if isinstance(value, (list, tuple)):
        return [t for i, v in enumerate(value) for t in _flat(v, f"{key}[{i}]")]
    return [(key, torch.as_tensor(value))]


def stepped(
    name: str,
    groups: Any,
    grads: list[Any],
    steps: int = 1,
    ours_only: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Run:
    """A run: ``<lib>.<name>(groups(), **kwargs)`` (and ``**ours_only`` for momentopt: its
    executor flags, compared with torch's default path), ``steps`` steps with ``grads()`` set
    on the params; returns the params and the state."""

    def run(lib: Any) -> Any:
        built = groups()
        params = [p for g in built for p in (g["params"] if isinstance(g, dict) else [g])]
        extra = (ours_only or {}) if lib is momentopt else {}
        opt = getattr(lib, name)(built, **kwargs, **extra)
        for _ in range(steps):
            for p, g in zip(params, grads, strict=True):
                p.grad = g() if callable(g) else g
            opt.step()
        return [p.detach().clone() for p in params], [dict(s) for s in opt.state.values()]

    return run


def _ones(*shape: int, dtype: torch.dtype = torch.float32) -> Callable[[], Tensor]:
    return lambda: torch.ones(shape, dtype=dtype)


# -- a param listed twice in one group: torch steps it twice (and counts two steps) --------
@pytest.mark.parametrize("name", NAMES)
def test_duplicate_param_is_stepped_twice(name: str) -> None:
    kwargs = {"momentum": 0.9} if name == "SGD" else {}

    def groups() -> list[Tensor]:
        p = torch.nn.Parameter(torch.ones(3))
        return [p, p]

    run = stepped(name, groups, [_ones(3), _ones(3)], lr=0.1, **kwargs)
    assert_same(run, rtol=1e-6, atol=1e-7)  # torch's loop and a multi-tensor step: ulps


# -- a flag that is not a bool: torch's step raises TypeError --------------------------------
@pytest.mark.parametrize("value", [None, 1, "yes"])
@pytest.mark.parametrize("name", NAMES)
def test_non_bool_differentiable_raises_type_error(name: str, value: Any) -> None:
    run = stepped(
        name, lambda: [torch.nn.Parameter(torch.ones(3))], [_ones(3)], differentiable=value
    )
    assert_same(run)


# -- foreach=True with differentiable=True: torch's multi-tensor step refuses --------------
@pytest.mark.parametrize("name", [n for n in NAMES if n != "SGD"])
def test_foreach_with_differentiable_raises(name: str) -> None:
    run = stepped(name, lambda: [torch.ones(3)], [_ones(3)], foreach=True, differentiable=True)
    assert_same(run)


# -- betas of the wrong length: torch's step cannot unpack them ------------------------------
@pytest.mark.parametrize("name", ["Adam", "AdamW", "NAdam"])
def test_three_betas_raise_at_step(name: str) -> None:
    run = stepped(
        name, lambda: [torch.nn.Parameter(torch.ones(3))], [_ones(3)], betas=(0.9, 0.999, 0.5)
    )
    assert_same(run)


# -- NAdam's tensor betas: torch does not squeeze them --------------------------------------
@pytest.mark.parametrize("shape,flags", [((1,), {}), ((), {"foreach": True})])
def test_nadam_tensor_betas_as_torch(shape: tuple[int, ...], flags: dict[str, Any]) -> None:
    def run(lib: Any) -> Any:
        betas = (torch.full(shape, 0.9), torch.full(shape, 0.999))
        return stepped(
            "NAdam", lambda: [torch.nn.Parameter(torch.ones(3))], [_ones(3)], betas=betas, **flags
        )(lib)

    assert_same(run)


# -- a string hyperparameter in a param group (torch's constructor does not check groups) --
@pytest.mark.parametrize(
    "name,key,flags",
    [
        ("AdamW", "weight_decay", {}),
        ("Adam", "lr", {}),
        ("Adagrad", "lr_decay", {}),
        ("Adam", "lr", {"fused": True}),
    ],
)
def test_string_group_hyperparameter_raises_type_error(
    name: str, key: str, flags: dict[str, Any]
) -> None:
    run = stepped(
        name,
        lambda: [{"params": [torch.nn.Parameter(torch.ones(3))], key: "0.1"}],
        [_ones(3)],
        **flags,
    )
    assert_same(run)


# -- a complex param with a sparse gradient --------------------------------------------------
@pytest.mark.parametrize("name", ["SGD", "Adagrad"])
def test_complex_param_sparse_grad(name: str) -> None:
    def grad() -> Tensor:
        values = torch.tensor([1 + 2j, 3 - 1j, 0.5j], dtype=torch.complex64)
        return torch.sparse_coo_tensor([[0, 0, 2]], values, (4,))

    run = stepped(
        name,
        lambda: [torch.nn.Parameter(torch.ones(4, dtype=torch.complex64))],
        [grad],
        steps=2,
        lr=0.1,
    )
    assert_same(run, rtol=1e-6, atol=1e-7)  # float32 op order: ulps


# -- fused=True on float16/bfloat16 -----------------------------------------------------------
def _small_grads(name: str, dtype: torch.dtype, **kwargs: Any) -> Run:
    """momentopt's fused=True against torch's default path: 257 elements (a vectorized body
    and a tail), gradients of 1e-2 (in float16, ``(1-β2)·g²`` is below the normal range)."""
    gen = torch.Generator().manual_seed(0)
    p0, g = torch.randn(257, generator=gen), torch.randn(257, generator=gen) * 1e-2
    return stepped(
        name,
        lambda: [torch.nn.Parameter(p0.to(dtype))],
        [lambda: g.to(dtype)],
        lr=0.1,
        ours_only={"fused": True},
        **kwargs,
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"momentum": 0.9},
        {"weight_decay": 0.1},
        {"maximize": True},
    ],
    ids=["plain", "momentum", "weight_decay", "maximize"],
)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fused_sgd_low_precision_updates_every_element(
    dtype: torch.dtype, kwargs: dict[str, Any]
) -> None:
    """torch's ``_fused_sgd_`` on the CPU updates only the scalar tail of a float16/bfloat16
    tensor (256 of 257 elements unchanged); momentopt's fused=True must not use it so."""
    assert_same(_small_grads("SGD", dtype, **kwargs))


@pytest.mark.parametrize("name", ["Adam", "AdamW", "Adagrad"])
def test_fused_float16_gives_torch_default_numbers(name: str) -> None:
    """torch's default path computes float16 in float16 (here: ``inf`` where ``(1-β2)·g²``
    underflows to 0); torch's fused kernels compute in float32. fused=True must give the
    default path's numbers (the suite's reference), within a float16 ulp."""
    assert_same(_small_grads(name, torch.float16), rtol=1e-3, atol=1e-3)


# -- tensor hyperparameters: torch computes its per-step scalars with them in their dtype ------
# ``1 - lr·λ``, ``1 - β^t`` with a float32 tensor lr/betas are float32 tensors in torch's loop
# (``1 - 0.999^t`` loses ~1e-4 to cancellation); momentopt's rules compute with the tensors
# too, and torch's kernels (which compute them in float64) are not used for such groups.
# What may remain is the order of a few float32 scalar operations: a few float32 ulps of a
# scalar factor, relative to the update.
FLOAT32_SCALARS = 8 * 2.0**-24


@pytest.mark.parametrize("flags", [{}, {"foreach": False}, {"fused": True}])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "name,hyperparameters",
    [
        pytest.param("AdamW", {"lr": torch.tensor(0.05)}, id="AdamW-tensor-lr"),
        pytest.param("Adam", {"betas": (torch.tensor(0.9), torch.tensor(0.999))}, id="Adam-betas"),
        pytest.param(
            "Adam",
            {"betas": (torch.tensor(0.999999), torch.tensor(0.999999))},
            id="Adam-betas-near-1",
        ),
        pytest.param(
            "Adagrad", {"lr": torch.tensor(0.05), "lr_decay": 0.1}, id="Adagrad-tensor-lr"
        ),
    ],
)
def test_tensor_hyperparameters_as_torch(
    name: str, hyperparameters: dict[str, Any], dtype: torch.dtype, flags: dict[str, Any]
) -> None:
    gen = torch.Generator().manual_seed(0)
    p0 = torch.randn(3, 5, dtype=dtype, generator=gen)
    g = torch.randn(3, 5, dtype=dtype, generator=gen)
    results = []
    for lib, extra in ((torch.optim, {}), (momentopt, flags)):
        p = torch.nn.Parameter(p0.clone())
        opt = getattr(lib, name)([p], **hyperparameters, **extra)
        for _ in range(3):
            p.grad = g.clone()
            opt.step()
        results.append(p.detach())
    expected, actual = results
    update = (expected - p0).abs()
    bound = FLOAT32_SCALARS * update + 4 * torch.finfo(dtype).eps * expected.abs()
    worst = float(((actual - expected).abs() - bound).max())
    assert worst <= 0, f"beyond the bound by {worst:.3g}"


# -- deliberate deviation: complex parameters are updated as pairs of reals ---------------------
# torch's SGD (and parts of Adadelta's and Adam's steps) multiply complex tensors by real
# scalars in complex arithmetic, where an infinite component makes the other one NaN
# (``inf·0``); momentopt updates every complex parameter as its real view, as torch itself
# does for most of its steps, so the result is torch's on the real view.
@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("SGD", {}),
        ("SGD", {"momentum": 0.9}),
        ("Adadelta", {}),
        ("Adam", {"weight_decay": 0.5, "decoupled_weight_decay": True}),
    ],
)
def test_complex_infinite_gradient_as_torch_on_the_real_view(
    name: str, kwargs: dict[str, Any]
) -> None:
    grad = torch.tensor([complex(-INF, 0.0), 0.5 + 0.5j], dtype=torch.complex64)
    start = torch.tensor([1 + 1j, 2 - 1j], dtype=torch.complex64)
    ours = stepped(name, lambda: [start.clone()], [grad], steps=2, lr=0.1, **kwargs)(momentopt)
    real = stepped(
        name,
        lambda: [torch.view_as_real(start).clone()],
        [torch.view_as_real(grad)],
        steps=2,
        lr=0.1,
        **kwargs,
    )(torch.optim)
    torch.testing.assert_close(
        torch.view_as_real(ours[0][0]), real[0][0], rtol=1e-6, atol=1e-7, equal_nan=True
    )  # float32 op order: ulps


# -- float16 on the default path: a scalar rounded to float16 --------------------------------
def test_float16_tiny_momentum_infinite_gradient() -> None:
    """torch's loop computes ``buf·1e-30`` in float32 (``-inf``); a multi-tensor step that
    rounds the scalar to float16 first computes ``-inf·0 = NaN``."""
    grad = torch.full((3,), -INF, dtype=torch.float16)
    run = stepped(
        "SGD",
        lambda: [torch.nn.Parameter(torch.ones(3, dtype=torch.float16))],
        [grad],
        steps=2,
        lr=0.1,
        momentum=1e-30,
    )
    assert_same(run)


# -- fused=True SGD with a complex param after a real one ------------------------------------
def test_fused_sgd_complex_after_real_raises_torchs_type() -> None:
    """torch checks no dtype for fused SGD; its kernel raises NotImplementedError."""

    def groups() -> list[Tensor]:
        return [
            torch.nn.Parameter(torch.ones(3)),
            torch.nn.Parameter(torch.ones(3, dtype=torch.complex64)),
        ]

    grads = [_ones(3), _ones(3, dtype=torch.complex64)]
    assert_same(stepped("SGD", groups, grads, lr=0.1, weight_decay=0.01, fused=True))


# -- AMSGrad with a NaN gradient --------------------------------------------------------------
@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_amsgrad_max_keeps_nan(name: str) -> None:
    """torch's ``torch.maximum`` keeps a NaN in ``max_exp_avg_sq``; torch's fused kernel (and
    momentopt's default path through it) drops it."""
    grad = torch.tensor([NAN, 1.0])
    run = stepped(name, lambda: [torch.nn.Parameter(torch.ones(2))], [grad], amsgrad=True)
    assert_same(run, rtol=1e-6, atol=1e-7)  # float32 op order: ulps


# -- fused=True SGD, maximize not a bool, an expanded parameter --------------------------------
def _expanded_and_vector(with_grad: bool) -> tuple[list[Tensor], list[Tensor | None]]:
    """An expanded (stride-0) parameter (with a gradient or not) and a vector."""
    expanded = torch.nn.Parameter(torch.ones(4, 1).expand(4, 1000))
    vector = torch.nn.Parameter(torch.ones(7))
    return [expanded, vector], [torch.ones(4, 1000) if with_grad else None, torch.ones(7)]


@pytest.mark.parametrize("with_grad", [False, True], ids=["no-grad", "grad"])
@pytest.mark.parametrize("maximize", [None, 1, "yes"])
def test_fused_sgd_non_bool_maximize_with_expanded_param(maximize: Any, with_grad: bool) -> None:
    """torch 2.13's SGD(fused=True) passes ``maximize`` to ``torch._fused_sgd_``, whose argument
    parser refuses a non-bool (TypeError) after torch's other checks (the first parameter's
    dtype and device, sparse gradients) and before anything changes; an expanded parameter
    changes none of that. (torch is run with its kernel on copies of what it would overrun:
    its fused kernels write past an expanded tensor's memory where they run.) momentopt
    raises TypeError too, before anything changes."""
    from .fuzz_run import _step_with_safe_kernels

    errors = []
    for lib in (torch.optim, momentopt):
        params, grads = _expanded_and_vector(with_grad)
        opt = lib.SGD(params, lr=0.1, momentum=0.9, fused=True, maximize=maximize)
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        with pytest.raises(TypeError) as caught:
            _step_with_safe_kernels(opt) if lib is torch.optim else opt.step()
        errors.append(caught.value)
        assert all(torch.equal(p, torch.ones_like(p)) for p in params)
        if lib is momentopt:
            assert not opt.state
    assert "_fused_sgd_() received an invalid combination of arguments" in str(errors[0])
    assert "maximize" in str(errors[1])


def test_fuzz_harness_judges_fused_sgd_by_torchs_own_refusal() -> None:
    """The fuzz suite's falsifying example for SGD/fused (an expanded first parameter without
    a gradient, listed twice, and maximize=None): torch's fused step refuses maximize=None
    (TypeError) as momentopt's does. The harness skipped torch's fused run for any expanded
    parameter (its kernels overrun it), so it judged momentopt's TypeError against torch's
    default loop, which accepts maximize=None; it now runs torch's step with its kernels on
    copies of such tensors (and skips nothing for a parameter without a gradient)."""
    from .fuzz_cases import Case, GradSpec, ParamSpec
    from .fuzz_run import run_case

    vector = ParamSpec(shape="vector", dtype="float32")
    for expanded_grad in ("none", "normal"):
        run_case(
            Case(
                name="SGD",
                executor="fused",
                kwargs={"maximize": None},
                params=(ParamSpec(shape="expanded", dtype="float32"), vector, vector),
                steps=((GradSpec(expanded_grad), GradSpec("normal"), GradSpec("normal")),),
                duplicate=True,
            )
        )


# -- Adam fused=True, a param listed twice, a step without a gradient -----------------------------
def _adam_big(fused: bool, duplicate: bool, steps: int) -> list[Tensor]:
    """The fuzz suite's 66,000-element float32 param after ``steps`` steps of lr=0.1 Adam
    (listed once or twice; the gradient is the param's own values), as each step left it."""
    from .fuzz_cases import GradSpec, ParamSpec
    from .fuzz_run import make_grad, make_param

    lib = momentopt if duplicate else torch.optim
    p = make_param(ParamSpec(shape="big", dtype="float32"))
    opt = lib.Adam([p, p] if duplicate else [p], lr=0.1, fused=fused)
    seen = []
    for _ in range(steps):
        p.grad = make_grad(GradSpec("normal"), p)
        for _ in range(1 if duplicate else 2):  # torch's loop steps a listed-twice param twice
            opt.step()
        seen.append(p.detach().clone())
    return seen


def test_fused_adam_duplicate_param_is_torchs_fused_kernel_twice() -> None:
    """momentopt's Adam(fused=True) on a param listed twice is bitwise torch's fused Adam
    stepping it twice per step; torch's loop rounds differently: at index 59908 the second
    update of step 2 is u = 0.0999999996 (exact from the same float32 state), whose float32
    neighbours are 0.0999999940 and 0.1000000015 (one ulp: 7.45e-9). The loop rounds u to the
    nearer, torch's fused kernel (another operation order; on this machine) to the other;
    w − u is exact (Sterbenz), so w = 0.00044 differs by at most that one ulp of u (256 ulps
    of w): rounding of a term of magnitude 0.1, not a defect."""
    for ours, theirs in zip(_adam_big(True, True, 2), _adam_big(True, False, 2), strict=True):
        assert torch.equal(ours, theirs)
    loop = _adam_big(False, False, 2)[-1]
    fused = _adam_big(True, False, 2)[-1]
    i = 59908
    assert abs(loop[i].item() - 0.00044090) < 1e-8
    assert abs(fused[i].item() - loop[i].item()) <= 2.0**-27  # one float32 ulp of u ≈ 0.1


def test_fuzz_harness_keeps_earlier_steps_magnitudes() -> None:
    """The fuzz suite's falsifying example for Adam/fused: step 2 cancels a value of 0.2 to
    0.00044 (accepted: the allowance counts the update's magnitude), and step 3 has no
    gradient, so nothing changes; the harness rejected at step 3 the values it accepted at
    step 2 (its allowance counted only step 3's magnitudes, 2·|w|). It now sums every step's
    magnitudes."""
    from .fuzz_cases import Case, GradSpec, ParamSpec
    from .fuzz_run import run_case

    run_case(
        Case(
            name="Adam",
            executor="fused",
            kwargs={"lr": 0.1},
            params=(ParamSpec(shape="big", dtype="float32"),),
            steps=((GradSpec("normal"),), (GradSpec("normal"),), (GradSpec("none"),)),
            duplicate=True,
        )
    )


# -- fused=True SGD: a non-bool flag and a later parameter that is not floating point -------------
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("maximize", [None, False])
@pytest.mark.parametrize("dtype", [torch.complex64, torch.int64])
def test_fused_sgd_refusals_in_torchs_order(
    dtype: torch.dtype, maximize: Any, sparse: bool
) -> None:
    """torch's SGD(fused=True) checks only the first parameter's dtype; a later one that is not
    floating point reaches ``torch._fused_sgd_``, whose argument parser refuses a non-bool
    maximize (TypeError) before its kernel refuses the dtype (NotImplementedError); a sparse
    gradient is refused before both (RuntimeError)."""

    def groups() -> list[Tensor]:
        return [torch.nn.Parameter(torch.ones(3)), torch.ones(3, dtype=dtype)]  # (no int grads)

    first = torch.ones(3).to_sparse() if sparse else torch.ones(3)
    grads = [first, _ones(3, dtype=dtype)]
    assert_same(stepped("SGD", groups, grads, lr=0.1, momentum=0.9, fused=True, maximize=maximize))


# -- default flags: a string hyperparameter torch's loop reads only when it needs it --------------
@pytest.mark.parametrize("duplicate", [False, True], ids=["once", "listed-twice"])
def test_string_dampening_is_read_when_torchs_loop_reads_it(duplicate: bool) -> None:
    """Fuzz finding (SGD, default flags, ``dampening='0.1'``): torch's loop starts the momentum
    buffer as the first gradient and reads ``dampening`` from the second step on, where
    ``1 - '0.1'`` raises TypeError. momentopt's default path had sent the first step to
    torch's fused kernel, whose argument conversion refused the string at step 1."""
    outcomes = []
    for cls in (torch.optim.SGD, momentopt.SGD):
        p = torch.nn.Parameter(torch.linspace(-1, 1, 5))
        opt = cls([p, p] if duplicate else [p], lr=0.1, momentum=0.9, dampening="0.1")
        steps: list[Any] = []
        for _ in range(2):
            p.grad = torch.ones(5)
            try:
                opt.step()
                steps.append(p.detach().clone())
            except TypeError as err:
                steps.append(str(err))
        outcomes.append(steps)
    (torch_first, torch_second), (ours_first, ours_second) = outcomes
    assert torch.equal(ours_first, torch_first)
    assert ours_second == torch_second == "unsupported operand type(s) for -: 'int' and 'str'"
