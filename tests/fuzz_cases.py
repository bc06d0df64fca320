"""What the differential fuzz suite draws: plain-data descriptions of an optimizer run.

A :class:`Case` holds only numbers, strings and tuples, so the falsifying example hypothesis
prints can be pasted back into :func:`tests.fuzz_run.run_case` to reproduce a failure.
Tensors are built from these specs by :mod:`tests.fuzz_run`, afresh for every optimizer, so
that all sides see bitwise identical inputs in identical layouts.
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from hypothesis import strategies as st

from .optimizer_table import ALGORITHMS, OPTIMIZERS, names, supports

NAMES = ALGORITHMS
PAIRS: dict[str, tuple[type, type]] = {name: case.pair for name, case in OPTIMIZERS.items()}
FUSED_NAMES = names(supports("fused"))  # the classes torch has fused kernels for
SPARSE_NAMES = names(lambda case: case.sparse_grads)  # the classes that take sparse gradients
SPARSE_ONLY_NAMES = names(lambda case: case.sparse_only)  # ... and nothing else (SparseAdam)
EXECUTOR_FLAGS: dict[str, dict[str, Any]] = {
    "default": {},
    "per_tensor": {"foreach": False},
    "multi_tensor": {"foreach": True},
    "fused": {"fused": True},
}
FLAGLESS_NAMES = names(lambda case: not case.supports("foreach"))
"""Classes without torch's ``foreach`` flag (Muon): their per-tensor and multi-tensor runs are
chosen by ``MOMENTOPT_EXECUTOR`` (:func:`forced_executor`), not by flags."""


def executor_flags(case: Case) -> dict[str, Any]:
    """The flags ``case``'s executor passes to the constructors."""
    if case.name in FLAGLESS_NAMES and case.executor in ("per_tensor", "multi_tensor"):
        return dict(case.executor_extra)
    return {**EXECUTOR_FLAGS[case.executor], **case.executor_extra}


def forced_executor(name: str, executor: str) -> dict[str, str]:
    """The environment that runs ``executor`` for class ``name`` (empty but for the classes
    without a ``foreach`` flag)."""
    if name in FLAGLESS_NAMES and executor in ("per_tensor", "multi_tensor"):
        return {"MOMENTOPT_EXECUTOR": executor.replace("_", "-")}
    return {}


DTYPES = ("float32", "float64", "float16", "bfloat16", "complex64")


@dataclass(frozen=True)
class TensorValue:
    """A hyperparameter given as a tensor (tensor lr, tensor betas): values and shape."""

    values: tuple[float, ...]
    shape: tuple[int, ...] = ()
    dtype: str = "float32"

    def build(self) -> torch.Tensor:
        return torch.tensor(self.values, dtype=getattr(torch, self.dtype)).reshape(self.shape)


def t0(v: float, dtype: str = "float32") -> TensorValue:
    """A 0-d tensor hyperparameter."""
    return TensorValue((v,), (), dtype)


def t1(v: float) -> TensorValue:
    """A 1-element (shape (1,)) tensor hyperparameter."""
    return TensorValue((v,), (1,))


NAN, INF = math.nan, math.inf
WRONG_TYPES = ("0.1", None, [0.1])
"""Values of the wrong type for a number: a string, None, a list."""

# Every constructor argument, as (usual values, edge values): the usual ones are mostly
# accepted by torch, the edge ones mostly refused (or accepted and numerically extreme).
LR = (
    (1e-3, 0.1, 1.0, 0.0, 1e-30, t0(0.05), t1(0.05), t0(0.02, "float64")),
    (-1e-3, NAN, INF, -INF, 1e30, TensorValue((0.1, 0.2), (2,)), *WRONG_TYPES),
)
NONNEG = ((0.0, 1e-2, 1.0, 1e-30), (-0.1, NAN, INF, -INF, 1e30, *WRONG_TYPES))
FRACTION = ((0.0, 0.5, 0.9, 1.0, 0.999999), (-0.1, 1.5, NAN, INF, 1e30, *WRONG_TYPES))
FLAG = ((False, True), (None, 1, "yes"))
BETAS = (
    (
        (0.9, 0.999),
        (0.0, 0.0),
        (0.999999, 0.999999),
        (0.5, 0.9),
        (t0(0.9), t0(0.999)),
        (t1(0.8), t1(0.99)),
    ),
    (
        (1.0, 0.999),
        (0.9, 1.0),
        (-0.1, 0.9),
        (NAN, 0.999),
        (0.9, NAN),
        (INF, 0.9),
        [0.9, 0.999],
        (t0(0.9), 0.999),
        (t0(1.0), t0(0.9)),
        (TensorValue((0.9, 0.8), (2,)), t0(0.9)),
        (0.9,),
        0.9,
        None,
        ("a", "b"),
        (0.9, 0.999, 0.5),
    ),
)
POOLS: dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]] = {
    "lr": LR,
    "momentum": ((0.0, 0.9, 1.0, 1e-30), (-0.5, 1.5, NAN, INF, 1e30, *WRONG_TYPES)),
    "dampening": ((0.0, 0.5, 1.0), (-1.0, 2.0, NAN, INF, *WRONG_TYPES)),
    "weight_decay": NONNEG,
    "eps": ((1e-8, 0.0, 1e-30, 1e-3, 1.0), (-1e-8, NAN, INF, 1e30, *WRONG_TYPES)),
    "lr_decay": ((0.0, 0.1, 1e-30), (-0.1, NAN, INF, 1e30, *WRONG_TYPES)),
    "initial_accumulator_value": ((0.0, 0.1, 1.0), (-0.1, NAN, INF, 1e30, *WRONG_TYPES)),
    "rho": FRACTION,
    "alpha": FRACTION,
    "momentum_decay": ((4e-3, 0.0, 1.0), (-0.1, NAN, INF, 1e30, *WRONG_TYPES)),
    "betas": BETAS,
    "etas": (
        ((0.5, 1.2), (0.1, 3.0), (0.999999, 1.000001)),
        ((1.0, 0.5), (0.5, 1.0), (0.0, 1.2), (NAN, 1.2), (0.5, INF), (0.5,), 0.5, None, ("a", "b")),
    ),
    "step_sizes": (
        ((1e-6, 50), (0.0, 1.0), (1e-3, 1e-3), (1e-30, 1e30)),
        ((50, 1e-6), (NAN, 50), (-1.0, 50), (None, 50), (1e-6, None), (1e-6,), None, ("a", 1)),
    ),
    "lambd": ((1e-4, 0.0, 0.1, 1.0), (-0.1, NAN, INF, 1e30, *WRONG_TYPES)),
    "t0": ((1e6, 0.0, 2.0, 100.0), (-1.0, NAN, INF, -INF, *WRONG_TYPES)),
    "beta2_decay": ((-0.8, -1.0, -0.5, 0.0), (0.5, NAN, -INF, *WRONG_TYPES)),
    "d": ((1.0, 1.5, 100.0), (0.5, NAN, INF, -1.0, *WRONG_TYPES)),
    "ns_coefficients": (
        ((3.4445, -4.775, 2.0315), (3.4, -4.7, 2.0), (1.5, -0.5, 0.0)),
        ((1.0, 2.0), (NAN, 1.0, 1.0), (INF, 0.0, 0.0), None, "abc"),
    ),
    "ns_steps": ((5, 1, 6, 0), (100, -1, 2.5, *WRONG_TYPES)),
    "adjust_lr_fn": ((None, "original", "match_rms_adamw"), ("arbitrary", 1, "")),
    **{
        flag: FLAG
        for flag in (
            "nesterov",
            "maximize",
            "amsgrad",
            "centered",
            "decoupled_weight_decay",
            "capturable",
            "differentiable",
        )
    },
}
TENSOR_VALUES: dict[str, tuple[Any, ...]] = {"weight_decay": (t0(0.01),)}
"""Usual tensor values of keys whose pool above has none, for the classes that take that key
as a tensor (the table's ``tensor_hyperparameters``: SGD's weight_decay)."""
EXECUTOR_KEYS = ("foreach", "fused")


@functools.cache
def hyperparameters(name: str) -> tuple[str, ...]:
    """The constructor's arguments of ``torch.optim.<name>`` (read with inspect), except
    ``params`` and the executor flags (set by the executor under test)."""
    sig = inspect.signature(PAIRS[name][0])
    names = tuple(n for n in sig.parameters if n not in ("params", *EXECUTOR_KEYS))
    unknown = [n for n in names if n not in POOLS]
    assert not unknown, f"no value pool for torch.optim.{name}'s arguments {unknown}"
    return names


CLASS_POOLS: dict[tuple[str, str], tuple[tuple[Any, ...], tuple[Any, ...]]] = {
    ("Adafactor", "eps"): (
        ((None, 1e-3), (1e-30, 1e-3), (0.0, 0.0), (None, 1.0)),
        ((-1e-30, 1e-3), (None, -1.0), (NAN, 1e-3), (None, NAN), (1e-3,), 1e-3, None),
    ),
}
"""Pools of a key that one class takes in another form (Adafactor's ``eps``: ``(ε₁, ε₂)``)."""


def pool(name: str, key: str) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """(usual, edge) values of ``key`` for class ``name``."""
    usual, edge = CLASS_POOLS.get((name, key), POOLS[key])
    if key in TENSOR_VALUES and key in OPTIMIZERS[name].tensor_hyperparameters:
        usual = (*usual, *TENSOR_VALUES[key])
    return usual, edge


SHAPES = (
    "vector",
    "matrix",
    "0d",
    "empty",
    "empty2d",
    "row257",
    "col257",
    "3d",
    "transposed",
    "slice",
    "slice2d",
    "expanded",
    "big",
)
"""Parameter layouts (see :func:`tests.fuzz_run.make_param`); ``big`` is above momentopt's
65536-element limit for its small-tensor paths."""
PARAM_KINDS = ("parameter", "plain", "nonleaf")
"""``nn.Parameter``; a tensor that does not require grad (what ``differentiable=True``
steps); a non-leaf tensor (refused by torch unless differentiable)."""
NON_FINITE = ("nan", "inf", "-inf", "mixed", "huge")
GRAD_VALUES = (
    "normal",
    "none",
    "zeros",
    "tiny",
    "huge",
    "denormal",
    "nan",
    "inf",
    "-inf",
    "mixed",
    "sparse",
)
GRAD_LAYOUTS = ("like", "contiguous", "transposed", "strided", "expanded")
"""``like`` is ``empty_like(param)``'s strides; the others differ from the param's where the
shape allows it (a transposed/permuted buffer, a strided slice of a bigger one, a broadcast)."""


@dataclass(frozen=True)
class ParamSpec:
    shape: str
    dtype: str
    kind: str = "parameter"
    seed: int = 0


@dataclass(frozen=True)
class GradSpec:
    values: str
    layout: str = "like"
    seed: int = 0


@dataclass(frozen=True)
class Case:
    """One run: the class, the executor, constructor kwargs, params (one or two groups, the
    second with its own overrides) and the gradients of each step (one per param)."""

    name: str
    executor: str
    kwargs: dict[str, Any]
    params: tuple[ParamSpec, ...]
    steps: tuple[tuple[GradSpec, ...], ...]
    second_group: int = 0  # params[-second_group:] form a second group, if > 0
    group_overrides: dict[str, Any] = field(default_factory=dict)
    duplicate: bool = False  # the first param is listed twice in the first group
    executor_extra: dict[str, Any] = field(default_factory=dict)  # e.g. foreach with fused


def _choice(draw: st.DrawFn, options: tuple[Any, ...], usual: int) -> Any:
    """One of ``options``: one of the first ``usual`` two times in three, otherwise any
    (uniformly). Hypothesis shrinks towards the usual ones."""
    roll = draw(st.integers(0, 3 * len(options) - 1))
    if roll < 2 * len(options):
        return options[roll % usual]
    return options[roll - 2 * len(options)]


@st.composite
def kwargs_for(draw: st.DrawFn, name: str, *, keep: float = 0.4) -> dict[str, Any]:
    """Constructor kwargs: each argument omitted (most often), a usual value or, rarely, an
    edge value. ``keep`` is about the share of arguments that are given."""
    out: dict[str, Any] = {}
    for key in hyperparameters(name):
        roll = draw(st.integers(0, 19))
        if roll < round(20 * (1 - keep)):
            continue
        usual, edge = pool(name, key)
        out[key] = draw(st.sampled_from(usual if roll < 19 else edge))
    return out


@st.composite
def param_specs(draw: st.DrawFn, name: str) -> tuple[ParamSpec, ...]:
    """One to four params; usually one dtype for all, sometimes mixed."""
    count = draw(st.integers(1, 4))
    common = _choice(draw, DTYPES, 2)
    mixed = draw(st.integers(0, 5)) == 0
    specs = []
    for _ in range(count):
        dtype = draw(st.sampled_from(DTYPES)) if mixed else common
        shape = _choice(draw, SHAPES, 2)
        kind = _choice(draw, PARAM_KINDS, 1)
        specs.append(ParamSpec(shape, dtype, kind, draw(st.integers(0, 2**16))))
    return tuple(specs)


@st.composite
def grad_spec(draw: st.DrawFn, name: str, param: ParamSpec) -> GradSpec:
    values = _choice(draw, GRAD_VALUES, 1)
    if values == "sparse" and (name not in SPARSE_NAMES or param.shape == "0d"):
        values = "normal"
    if values == "normal" and name in SPARSE_ONLY_NAMES and param.shape != "0d":
        values = "sparse"  # what it takes; the other values are dense gradients it refuses
    if param.dtype == "complex64" and values in NON_FINITE:
        # a deliberate deviation, pinned in test_fuzz_regressions.py: momentopt updates a
        # complex parameter as its real view, where torch's complex arithmetic turns an
        # infinite or NaN component (given, or reached by overflow) into NaN in the other
        # one (inf·0)
        values = "normal"
    layout = _choice(draw, GRAD_LAYOUTS, 1)
    return GradSpec(values, layout, draw(st.integers(0, 2**16)))


@st.composite
def cases(draw: st.DrawFn, name: str, executor: str) -> Case:
    """A whole run for ``momentopt.<name>`` under ``executor``."""
    kwargs = draw(kwargs_for(name))
    params = draw(param_specs(name))
    n_steps = draw(st.integers(1, 4))
    steps = [tuple(draw(grad_spec(name, p)) for p in params)]
    for _ in range(n_steps - 1):
        same = draw(st.booleans())  # the same gradients again, or new ones
        steps.append(steps[-1] if same else tuple(draw(grad_spec(name, p)) for p in params))
    second = draw(st.integers(0, len(params) - 1)) if draw(st.integers(0, 3)) == 0 else 0
    overrides = draw(kwargs_for(name, keep=0.2)) if second else {}
    extra: dict[str, Any] = {}
    if executor == "fused" and draw(st.integers(0, 9)) == 0:
        extra = {"foreach": draw(st.sampled_from((False, True)))}
    return Case(
        name=name,
        executor=executor,
        kwargs=kwargs,
        params=params,
        steps=tuple(steps),
        second_group=second,
        group_overrides=overrides,
        duplicate=draw(st.integers(0, 29)) == 0,
        executor_extra=extra,
    )
