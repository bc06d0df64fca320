"""Differential fuzzing of the newer optimizers against their reference implementations
(hypothesis).

For each class and each of momentopt's executors, hypothesis draws a run: hyperparameters
within the ranges the reference accepts (edges included: β = 0, β near 1, no decay or strong
decay, warm-ups, Prodigy's ``slice_p``, ...), one to four parameters of odd shapes and memory
layouts (0-d, empty, a row of 257, 3-d, transposed, permuted, strided and offset views,
all-zero values; float32 and float64, sometimes mixed), one to three param groups with their
own hyperparameters, ``maximize``, and one to six steps of hand-set gradients (None, exact
zeros, ±1, tiny, huge, mixed signs over sixty decades, in layouts other than the
parameter's). momentopt and the reference take the same steps on the same tensors (the
reference descends the negated gradient where it has no ``maximize``); after every step the
parameters, and at the end every state tensor (keys, shapes, values) and the values kept in
the groups (Prodigy's estimate, schedule-free's counters), must agree — bit for bit, with the
exceptions :func:`allowed` states with their reasons.

References: ``lion_pytorch.Lion`` (lion-pytorch 0.2.5), ``adopt.ADOPT`` (torch-adopt 0.1.0),
``schedulefree.AdamWScheduleFree`` / ``SGDScheduleFree`` (schedulefree 1.4.1),
``prodigyopt.Prodigy`` (prodigyopt 1.1.2); AdEMAMix has no package: the paper's Algorithm 1
as tests/test_modern_ademamix.py writes it (float64).

Executors: ``per_tensor`` (``foreach=False``), ``multi_tensor`` (``foreach=True``) and
``compiled`` — the default flags, with the compile threshold lowered so that these small
groups take the compiled path, and its generated kernel run uncompiled (compiling each step
structure with inductor costs seconds to tens of seconds, which the budget below cannot pay;
tests/test_modern_paths.py replays kernels the same way). Where the plan does not compile a
step (a rule the tape cannot record), the default flags run what the plan says.

The run is derandomized (the same examples on every run and machine); budget
``MOMENTOPT_FUZZ_MODERN_EXAMPLES`` examples per class and executor (default 48: 13 s for the
18 configurations on a quiet two-core machine, about 30 s on a busy one);
``MOMENTOPT_FUZZ_SEED=<int>`` draws
other examples, e.g. ``MOMENTOPT_FUZZ_MODERN_EXAMPLES=500 MOMENTOPT_FUZZ_SEED=1``.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from adopt import ADOPT as ReferenceADOPT
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from lion_pytorch import Lion as ReferenceLion
from prodigyopt import Prodigy as ReferenceProdigy
from schedulefree import AdamWScheduleFree, SGDScheduleFree
from torch import Tensor, nn

import momentopt
from momentopt.engine import compiled

from .test_modern_ademamix import PaperAdEMAMix

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch._utils.is_compiling` is deprecated"),
    pytest.mark.filterwarnings("ignore:Use _accelerator_graph_capture_health_check"),
]

EXAMPLES = int(os.environ.get("MOMENTOPT_FUZZ_MODERN_EXAMPLES", "48"))
SEED = os.environ.get("MOMENTOPT_FUZZ_SEED")

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,  # a first step allocates and records; time is not what is tested
    derandomize=SEED is None,
    database=None,  # no example database: a failure prints its example
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One intra-op thread: the tensors are small, so more threads only synchronise (both
    sides run under the same setting; no comparison depends on it)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- what is drawn -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParamSpec:
    shape: str
    dtype: str
    values: str = "normal"
    seed: int = 0


@dataclass(frozen=True)
class GradSpec:
    values: str
    layout: str = "like"
    seed: int = 0


@dataclass(frozen=True)
class Case:
    """One run, as plain data (a falsifying example prints in a form that can be pasted
    back into :func:`run_case`)."""

    name: str
    executor: str
    kwargs: dict[str, Any]
    params: tuple[ParamSpec, ...]
    steps: tuple[tuple[GradSpec, ...], ...]
    groups: tuple[tuple[int, dict[str, Any]], ...] = ()  # (how many params, overrides) each
    maximize: bool = False
    switches: tuple[int, ...] = ()  # schedule-free: eval() and train() before these steps
    extra: dict[str, Any] = field(default_factory=dict)


SHAPES: dict[str, tuple[tuple[int, ...], Callable[[Tensor], Tensor]]] = {
    "vector": ((7,), lambda t: t),
    "matrix": ((3, 5), lambda t: t),
    "0d": ((), lambda t: t),
    "empty": ((0,), lambda t: t),
    "row257": ((1, 257), lambda t: t),
    "3d": ((2, 3, 4), lambda t: t),
    "transposed": ((5, 3), lambda t: t.t()),
    "permuted": ((2, 3, 4), lambda t: t.permute(2, 0, 1)),
    "strided": ((14,), lambda t: t[::2]),
    "strided2d": ((4, 10), lambda t: t[:, ::2]),
    "offset": ((12,), lambda t: t[5:]),
}
"""Shape of the allocated base tensor, and the view of it that is the parameter."""
PARAM_VALUES = ("normal", "zeros", "large", "small")
GRAD_VALUES = ("normal", "none", "zeros", "signs", "tiny", "huge", "mixed")
GRAD_LAYOUTS = ("like", "contiguous", "transposed", "strided")
EXECUTORS: dict[str, dict[str, Any]] = {
    "per_tensor": {"foreach": False},
    "multi_tensor": {"foreach": True},
    "compiled": {"foreach": None},
}

BETA = (0.0, 0.5, 0.9, 0.99, 0.999999)
DECAY = (0.0, 0.0, 1e-2, 0.1, 1.0)
HYPERPARAMETERS: dict[str, dict[str, tuple[Any, ...]]] = {
    "Lion": {
        "lr": (1e-4, 1e-3, 0.1, 1.0),
        "betas": ((0.9, 0.99), (0.0, 0.0), (0.5, 0.999999), (0.95, 0.98), (1.0, 1.0)),
        "weight_decay": DECAY,
        "decoupled_weight_decay": (False, True),
    },
    "ADOPT": {
        "lr": (1e-3, 0.1, 1.0),
        "betas": ((0.9, 0.9999), (0.0, 0.5), (0.5, 0.999999), (0.99, 0.9)),
        "eps": (1e-6, 1e-10, 1e-3, 1.0),
        "clip_lambda": ("default", None, "linear"),
        "weight_decay": DECAY,
        "decouple": (False, True),
    },
    "AdEMAMix": {
        "lr": (1e-3, 0.1, 1.0),
        "betas": ((0.9, 0.999, 0.9999), (0.0, 0.9, 0.999), (0.5, 0.5, 0.999999)),
        "alpha": (2.0, 0.0, 5.0),
        "beta3_warmup": (None, 1, 3, 10),
        "alpha_warmup": (None, 1, 4, 10),
        "eps": (1e-8, 1e-3, 1.0),
        "weight_decay": DECAY,
    },
    "ScheduleFreeAdamW": {
        "lr": (2.5e-3, 0.1, 1.0),
        "betas": ((0.9, 0.999), (0.1, 0.0), (0.5, 0.999999)),  # (β1 > 0: eval() divides)
        "eps": (1e-8, 1e-3, 1.0),
        "weight_decay": DECAY,
        "warmup_steps": (0, 1, 3, 10),
        "r": (0.0, 1.0, 2.0),
        "weight_lr_power": (2.0, 0.0, 1.0),
    },
    "ScheduleFreeSGD": {
        "lr": (1.0, 0.1, 1e-3),
        "momentum": (0.9, 0.5, 0.999999),
        "weight_decay": DECAY,
        "warmup_steps": (0, 1, 3, 10),
        "r": (0.0, 1.0, 2.0),
        "weight_lr_power": (2.0, 0.0, 1.0),
    },
    "Prodigy": {
        "lr": (1.0, 0.5, 2.0),
        "betas": ((0.9, 0.999), (0.0, 0.5), (0.5, 0.999999)),
        "beta3": (None, 0.0, 0.9),
        "eps": (1e-8, 1e-3),
        "weight_decay": DECAY,
        "decouple": (True, False),
        "use_bias_correction": (False, True),
        "safeguard_warmup": (False, True),
        "d0": (1e-6, 1e-3, 1.0),
        "d_coef": (1.0, 0.5, 2.0),
        "growth_rate": (float("inf"), 1.02),
        "slice_p": (1, 2, 3, 11),
    },
}
"""The values drawn for each argument: the reference accepts all of them."""
GROUP_KEYS: dict[str, tuple[str, ...]] = {
    "Lion": ("lr", "betas", "weight_decay"),
    "ADOPT": ("lr", "betas", "eps", "weight_decay"),
    "AdEMAMix": ("lr", "betas", "alpha", "eps"),  # (the paper's reference names decay "wd")
    "ScheduleFreeAdamW": ("lr", "betas", "eps", "weight_decay", "warmup_steps", "r"),
    "ScheduleFreeSGD": ("lr", "momentum", "weight_decay", "warmup_steps", "r"),
    "Prodigy": (
        *("weight_decay", "eps", "safeguard_warmup", "slice_p", "d0"),
        *("betas", "beta3", "decouple", "use_bias_correction", "d_coef", "growth_rate"),
    ),
}
"""Per-group overrides drawn for a second or third group (Prodigy's lr: the same or 0, the
only values prodigyopt takes; its shared values are read from the first group)."""


def default(name: str, key: str) -> Any:
    """The default of ``momentopt.<name>``'s argument ``key``."""
    return inspect.signature(getattr(momentopt, name)).parameters[key].default


NOT_STRIDED = (
    "Prodigy with coupled decay (decouple=False, weight_decay != 0) is not given gradients "
    "whose flattened view is strided: prodigyopt adds the decay into p.grad in place and takes "
    "the dot product of d's numerator on that strided vector, which BLAS rounds in another "
    "order than a contiguous one's; momentopt leaves p.grad as it is and computes g + λw as a "
    "new (contiguous) tensor, so the two estimates differ in rounding (a documented difference)"
)


def coupled_decay(name: str, kwargs: dict[str, Any], overrides: list[dict[str, Any]]) -> bool:
    """Whether some group of a Prodigy run takes coupled decay (see :data:`NOT_STRIDED`):
    ``decouple`` is the first group's, the decay each group's."""
    if name != "Prodigy" or kwargs.get("decouple", True):
        return False
    decays = [kwargs.get("weight_decay", 0), *(o.get("weight_decay") for o in overrides)]
    return any(d not in (None, 0) for d in decays)


@st.composite
def cases(draw: st.DrawFn, name: str, executor: str) -> Case:
    """A whole run of ``momentopt.<name>`` under ``executor``."""
    table = HYPERPARAMETERS[name]
    kwargs = {k: draw(st.sampled_from(v)) for k, v in table.items() if draw(st.booleans())}
    n = draw(st.integers(1, 4))
    common = draw(st.sampled_from(("float32", "float64")))
    mixed = draw(st.integers(0, 4)) == 0
    params = tuple(
        ParamSpec(
            draw(st.sampled_from(tuple(SHAPES))),
            draw(st.sampled_from(("float32", "float64"))) if mixed else common,
            draw(st.sampled_from(PARAM_VALUES)) if draw(st.integers(0, 3)) == 0 else "normal",
            draw(st.integers(0, 2**16)),
        )
        for _ in range(n)
    )
    sizes = [n]
    if n > 1 and draw(st.booleans()):
        cut = draw(st.integers(1, n - 1))
        sizes = [cut, n - cut]
        if n - cut > 1 and draw(st.booleans()):
            sizes = [cut, 1, n - cut - 1]
    groups = []
    for i, size in enumerate(sizes):
        overrides: dict[str, Any] = {}
        for key in GROUP_KEYS[name] if i else ():
            if draw(st.integers(0, 2)) == 0:
                options = table[key]
                if name == "Prodigy" and key == "betas":  # (β1 0 in every group or in none)
                    first = kwargs.get("betas", default(name, "betas"))[0] > 0
                    options = tuple(b for b in options if (b[0] > 0) == first)
                overrides[key] = draw(st.sampled_from(options))
        if i and name == "Prodigy" and draw(st.integers(0, 2)) == 0:
            overrides["lr"] = 0.0
        groups.append((size, overrides))
    n_steps = draw(st.integers(1, 6))
    layouts = GRAD_LAYOUTS
    if coupled_decay(name, kwargs, [o for _, o in groups]):
        layouts = tuple(x for x in GRAD_LAYOUTS if x != "strided")  # see NOT_STRIDED

    def grads() -> tuple[GradSpec, ...]:
        return tuple(
            GradSpec(
                draw(st.sampled_from(GRAD_VALUES)) if draw(st.booleans()) else "normal",
                draw(st.sampled_from(layouts)),
                draw(st.integers(0, 2**16)),
            )
            for _ in params
        )

    steps = [grads()]
    for _ in range(n_steps - 1):
        steps.append(steps[-1] if draw(st.integers(0, 3)) == 0 else grads())
    schedule_free = name.startswith("ScheduleFree")
    switches = (
        tuple(sorted(draw(st.sets(st.integers(1, n_steps - 1), max_size=2))))
        if schedule_free and n_steps > 1
        else ()
    )
    return Case(
        name=name,
        executor=executor,
        kwargs=kwargs,
        params=params,
        steps=tuple(steps),
        groups=tuple(groups),
        maximize=draw(st.integers(0, 3)) == 0,
        switches=switches,
    )


# -- building tensors and optimizers -------------------------------------------------------------
def _randn(shape: Sequence[int], dtype: torch.dtype, gen: torch.Generator) -> Tensor:
    """Standard normal values drawn in float64, then rounded to ``dtype``."""
    return torch.randn(tuple(shape), dtype=torch.float64, generator=gen).to(dtype)


def make_param(spec: ParamSpec) -> nn.Parameter:
    """The parameter ``spec`` describes (fresh on every call, same values and layout)."""
    gen = torch.Generator().manual_seed(spec.seed)
    shape, view = SHAPES[spec.shape]
    base = _randn(shape, getattr(torch, spec.dtype), gen)
    scale = {"normal": 1.0, "zeros": 0.0, "large": 1e4, "small": 1e-6}[spec.values]
    return nn.Parameter(view(base * scale))


DECADES = 30
"""Tiny and huge gradients are 10^±30 times normal ones (10^±15 for AdEMAMix: see
:data:`NARROW`)."""
NARROW = {"AdEMAMix": 15}
"""Classes whose reference overflows where momentopt does not, with the magnitudes their
gradients are drawn within: the paper's AdEMAMix divides ``v`` by ``1 − β2^t`` before the
root (``v/(1−β2^t)`` overflows float32 for ``|g|`` near 1e19), momentopt's (torch's Adam's
order) takes ``√v/√(1−β2^t)``; where the reference overflows it does not compute the paper's
numbers and cannot judge."""


def grad_values(spec: GradSpec, param: Tensor, decades: int) -> Tensor:
    """The gradient's values, contiguous, in ``param``'s shape and dtype."""
    gen = torch.Generator().manual_seed(spec.seed)
    shape = tuple(param.shape)
    normal = torch.randn(shape, dtype=torch.float64, generator=gen)
    if spec.values == "zeros":
        out = torch.zeros_like(normal)
    elif spec.values == "signs":
        out = torch.where(normal >= 0, 1.0, -1.0).to(torch.float64)
    elif spec.values == "tiny":
        out = normal * 10.0**-decades
    elif spec.values == "huge":
        out = normal * 10.0**decades
    elif spec.values == "mixed":  # every sign, magnitudes from 10^-decades to 10^decades
        powers = torch.randint(-decades, decades + 1, shape, generator=gen).to(torch.float64)
        out = normal.sign() * 10.0**powers
    else:
        out = normal
    return out.to(param.dtype)


def make_grad(spec: GradSpec, param: Tensor, sign: float, decades: int) -> Tensor | None:
    """The gradient ``spec`` describes for ``param`` (times ``sign``), in its memory layout:
    ``like`` the parameter's strides, ``contiguous``, ``transposed`` (dims reversed in
    memory) or ``strided`` (every other element of a buffer)."""
    if spec.values == "none":
        return None
    values = sign * grad_values(spec, param, decades)
    shape, dim = tuple(param.shape), param.dim()
    if spec.layout == "contiguous":
        return values.contiguous()
    if spec.layout == "transposed" and dim >= 2:
        order = tuple(reversed(range(dim)))
        return torch.empty(tuple(reversed(shape)), dtype=param.dtype).permute(order).copy_(values)
    if spec.layout == "strided" and dim >= 1:
        buf = torch.empty((*shape[:-1], 2 * shape[-1]), dtype=param.dtype)[..., ::2]
        return buf.copy_(values)
    return torch.empty_like(param, requires_grad=False).copy_(values)


def _linear_clip(step: float) -> float:
    return 0.05 * step


def constructor_kwargs(case: Case) -> dict[str, Any]:
    """The drawn kwargs, ADOPT's ``clip_lambda`` made a function (``default``: left out)."""
    kwargs = dict(case.kwargs)
    clip = kwargs.pop("clip_lambda", "default")
    if clip != "default":
        kwargs["clip_lambda"] = _linear_clip if clip == "linear" else None
    return kwargs


REFERENCES: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "Lion": ReferenceLion,
    "ADOPT": ReferenceADOPT,
    "AdEMAMix": PaperAdEMAMix,
    "ScheduleFreeAdamW": lambda params, **kw: AdamWScheduleFree(params, **kw, foreach=False),
    "ScheduleFreeSGD": lambda params, **kw: SGDScheduleFree(params, **kw, foreach=False),
    "Prodigy": ReferenceProdigy,
}
"""The reference of each class (schedule-free: its per-parameter loop, the other
references' only CPU path)."""
NATIVE_MAXIMIZE = ("ADOPT",)
"""References with their own ``maximize``; the others descend the negated gradient."""


@dataclass
class Run:
    params: list[nn.Parameter]
    opt: torch.optim.Optimizer
    sign: float  # the gradients' sign this run is given


def start(case: Case, ours: bool) -> Run:
    """momentopt's run (``ours``) or the reference's, over fresh copies of the parameters."""
    params = [make_param(spec) for spec in case.params]
    groups: list[dict[str, Any]] = []
    at = 0
    for size, overrides in case.groups or ((len(params), {}),):
        groups.append({"params": params[at : at + size], **overrides})
        at += size
    kwargs = constructor_kwargs(case)
    sign = 1.0
    if ours:
        kwargs.update(EXECUTORS[case.executor], maximize=case.maximize)
        make: Callable[..., torch.optim.Optimizer] = getattr(momentopt, case.name)
    else:
        make = REFERENCES[case.name]
        if case.name in NATIVE_MAXIMIZE:
            kwargs["maximize"] = case.maximize
        elif case.maximize:
            sign = -1.0
    with contextlib.redirect_stdout(io.StringIO()):  # prodigyopt prints its decay mode
        opt = make(groups, **kwargs)
    if hasattr(opt, "train"):
        opt.train()
    return Run(params, opt, sign)


# -- comparing -----------------------------------------------------------------------------------
ULPS_PER_STEP = 16
"""AdEMAMix (see :func:`allowed`): ulps of the magnitudes involved per step."""


def allowed(case: Case, dtype: torch.dtype, scale: Tensor, steps: int) -> Tensor:
    """The difference allowed per element: 0 — bit for bit, momentopt computing each
    reference's operations in its order on every executor (the compiled path's kernel
    included) — but for AdEMAMix.

    AdEMAMix has no package; its reference is the paper's Algorithm 1 written out of place in
    its own order of operations (tests/test_modern_ademamix.py), so each operation may round
    differently: :data:`ULPS_PER_STEP` ulps of the dtype per step taken, of ``scale``, the
    magnitudes the value is computed from (:func:`ademamix_scales`) — an update takes about
    eight operations of at most one rounding each, and twice that is the margin; a difference
    of an earlier step is carried along, not damped, hence the factor of steps. Plus as many
    ulps of the smallest normal number (a result computed from subnormal numbers has lost its
    relative precision).
    """
    if case.name != "AdEMAMix":
        return torch.zeros_like(scale)
    fi = torch.finfo(dtype)
    return ULPS_PER_STEP * steps * fi.eps * (scale + fi.smallest_normal)


def assert_close(ours: Tensor, theirs: Tensor, limit: Tensor, what: str) -> None:
    """``ours`` is ``theirs``: the same shape and dtype, NaN where it is NaN, the same
    infinities, finite values within ``limit`` (per element, float64)."""
    assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
    assert ours.dtype == theirs.dtype, (what, ours.dtype, theirs.dtype)
    if torch.equal(ours, theirs) or ours.numel() == 0:
        return
    nan = theirs.isnan()
    assert torch.equal(ours.isnan(), nan), (what, "NaN where the reference has none or not")
    finite = theirs.isfinite()
    assert torch.equal(ours[~finite & ~nan], theirs[~finite & ~nan]), (what, "infinities")
    a, b = ours[finite].double(), theirs[finite].double()
    diff = (a - b).abs()
    bad = ~(diff <= limit.expand_as(theirs)[finite])
    assert not bad.any(), (
        f"{what}: {int(bad.sum())} of {b.numel()} values differ beyond the allowed "
        f"(first: ours {a[bad][0].item()!r}, reference {b[bad][0].item()!r}, allowed "
        f"{limit.expand_as(theirs)[finite][bad][0].item()!r})"
    )


def _finite_abs(t: Tensor) -> Tensor:
    """``|t|`` in float64, non-finite entries as 0 (compared as NaN or infinities instead)."""
    mag = t.detach().double().abs()
    return torch.where(mag.isfinite(), mag, 0.0)


@dataclass
class Scales:
    """The magnitudes AdEMAMix's values are computed from, per parameter (float64): ``grad``,
    the largest ``|g|`` of each element so far (its averages are convex combinations of
    them)."""

    grad: list[Tensor]

    def state(self, i: int, key: str, value: Tensor) -> Tensor:
        """An average of ``g`` (or of ``g²``: ``exp_avg_sq``) and its own magnitude."""
        g = self.grad[i] ** 2 if key == "exp_avg_sq" else self.grad[i]
        return g + _finite_abs(value)

    def param(self, i: int, before: Tensor, after: Tensor, opt: torch.optim.Optimizer) -> Tensor:
        """``w`` before and after, and ``lr·|u|`` bounded by the numerator's magnitudes over
        the denominator: ``lr·(G/(1−β1^t) + α·G)/(√(v/(1−β2^t)) + ε)`` (the reference's v)."""
        p = [q for group in opt.param_groups for q in group["params"]][i]
        group = next(g for g in opt.param_groups if any(q is p for q in g["params"]))
        state = opt.state.get(p, {})
        out = _finite_abs(before) + _finite_abs(after)
        if "exp_avg_sq" not in state:
            return out
        t = state["step"]
        beta1, beta2, _ = group["betas"]
        corrected = (1 - beta1**t) if beta1 != 0 else 1.0
        denom = (_finite_abs(state["exp_avg_sq"]) / (1 - beta2**t)).sqrt() + group["eps"]
        numerator = self.grad[i] / corrected + group["alpha"] * self.grad[i]
        return out + group["lr"] * numerator / denom


def compare_state(case: Case, ours: Run, theirs: Run, scales: Scales, steps: int) -> None:
    """Every state, as the reference keeps it (momentopt's ``step`` is torch's 0-d tensor;
    prodigyopt's ``p0`` of an all-zero parameter a 0-d zero, momentopt's those zeros)."""
    for i, (p, q) in enumerate(zip(ours.params, theirs.params, strict=True)):
        mine, ref = ours.opt.state.get(p, {}), theirs.opt.state.get(q, {})
        assert sorted(mine) == sorted(ref), (i, list(mine), list(ref))
        for key, value in ref.items():
            have = mine[key]
            if not isinstance(value, Tensor) or key == "step":
                assert float(have) == float(value), (i, key, have, value)
                continue
            if key == "p0" and value.dim() == 0 and have.dim() == 1:
                value = value.expand_as(have)
            scale = scales.state(i, key, value) if case.name == "AdEMAMix" else torch.zeros(())
            limit = allowed(case, value.dtype, scale, steps)
            assert_close(have, value, limit, f"state {i}.{key}")


GROUP_VALUES = {
    "Prodigy": ("d", "d_max", "d_numerator", "d_denom", "d_hat", "k"),
    "ScheduleFreeAdamW": ("k", "weight_sum", "lr_max", "scheduled_lr", "train_mode"),
    "ScheduleFreeSGD": ("k", "weight_sum", "lr_max", "scheduled_lr", "train_mode"),
}
"""Values the reference keeps in the groups (momentopt keeps them there too)."""


def compare_groups(case: Case, ours: Run, theirs: Run) -> None:
    """The values of :data:`GROUP_VALUES`, exactly (NaN where the reference's is NaN)."""
    for a, b in zip(ours.opt.param_groups, theirs.opt.param_groups, strict=True):
        for key in GROUP_VALUES.get(case.name, ()):
            if key not in b:
                assert key not in a, key
                continue
            x, y = float(a[key]), float(b[key])
            assert x == y or (x != x and y != y), (key, x, y)


def step_error(opt: torch.optim.Optimizer) -> type[Exception] | None:
    """One step; the type of the exception it raised, if any. A scalar of the step that
    overflows the parameters' dtype is refused by torch's ops (RuntimeError "value cannot be
    converted to type float without overflow"): Prodigy's ``d`` after a huge gradient, in
    float32, in prodigyopt's step as in momentopt's."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt.step()
    except Exception as err:  # noqa: BLE001 - the exception is the outcome compared
        return type(err)
    return None


def run_case(case: Case) -> None:
    """Both runs, step by step (the parameters after each), then their state and groups."""
    ours, theirs = start(case, True), start(case, False)
    scales = Scales([torch.zeros(p.shape, dtype=torch.float64) for p in theirs.params])
    for n, grads in enumerate(case.steps, start=1):
        if n - 1 in case.switches:
            for run in (ours, theirs):
                run.opt.eval()  # type: ignore[attr-defined]
                run.opt.train()  # type: ignore[attr-defined]
        before = [p.detach().clone() for p in theirs.params]
        errors: list[type[Exception] | None] = []
        for run in (ours, theirs):
            for p, spec in zip(run.params, grads, strict=True):
                p.grad = make_grad(spec, p, run.sign, NARROW.get(case.name, DECADES))
            errors.append(step_error(run.opt))
        assert errors[0] is errors[1], f"step {n}: momentopt {errors[0]}, reference {errors[1]}"
        if errors[0] is not None:
            return  # (both refused the step alike; what each left behind is not compared)
        for i, q in enumerate(theirs.params):
            if q.grad is not None:
                scales.grad[i] = torch.maximum(scales.grad[i], _finite_abs(q.grad))
        for i, (p, q, b) in enumerate(zip(ours.params, theirs.params, before, strict=True)):
            ademamix = case.name == "AdEMAMix"
            scale = scales.param(i, b, q, theirs.opt) if ademamix else torch.zeros(())
            limit = allowed(case, q.dtype, scale, n)
            assert_close(p.detach(), q.detach(), limit, f"step {n}: param {i}")
    if case.name.startswith("ScheduleFree"):  # (bit for bit: no scale needed)
        for run in (ours, theirs):
            run.opt.eval()  # type: ignore[attr-defined]
        for i, (p, q) in enumerate(zip(ours.params, theirs.params, strict=True)):
            assert_close(p.detach(), q.detach(), torch.zeros(()), f"eval {i}")
    compare_state(case, ours, theirs, scales, len(case.steps))
    compare_groups(case, ours, theirs)


# -- the test ------------------------------------------------------------------------------------
def _seeded(test: Callable[..., Any]) -> Callable[..., Any]:
    return seed(int(SEED))(test) if SEED is not None else test


@pytest.fixture
def _compiled_uncompiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled path for groups of any size, its kernels run as generated (uncompiled),
    none of them kept beyond the test."""
    monkeypatch.setattr(compiled, "COMPILE_MIN_NUMEL", 0)
    monkeypatch.setattr(compiled, "_compile", lambda kernel: kernel)
    monkeypatch.setattr(compiled, "_compiled", {})


@pytest.mark.usefixtures("_compiled_uncompiled")
@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("name", HYPERPARAMETERS)
@FUZZ_SETTINGS
@_seeded
@given(data=st.data())
def test_matches_reference(name: str, executor: str, data: st.DataObject) -> None:
    """momentopt.<name> on ``executor`` takes the reference's steps."""
    run_case(data.draw(cases(name, executor), label="case"))
