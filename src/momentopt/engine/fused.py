"""The fused executor: one memory pass per step, generated from the same rule code.

How a param group is run (after the tensors are grouped by device, dtype and scalar state,
as the multi-tensor executor groups them):

1. **torch's own fused kernel, where one computes exactly this recipe** (:data:`TORCH_KERNELS`,
   a table: recipe shape → ``torch._fused_adam_`` / ``_fused_adamw_`` / ``_fused_sgd_`` /
   ``_fused_adagrad_``). The table is data: an entry names the rule classes it stands for
   and how the group's keys map to the kernel's arguments; no math is restated. These
   kernels run at the memory-bandwidth floor on large tensors.
2. **otherwise, the recipe compiled**: :meth:`Recipe.run` is recorded on stand-in tensors
   (:mod:`.tape`); the tape's tensor ops become one function, compiled by ``torch.compile``
   (inductor) once per (tape structure, dtype, device) with dynamic shapes — so its cost
   does not grow with the number of tensors — and called with the step's scalars (lr,
   bias corrections, ...) as a float64 tensor computed once per step by the rule code
   itself: changing lr, betas or weight_decay never recompiles. Inductor's on-disk caches
   reuse the compiled code across processes.

In both cases tensors of at least :data:`BIG` elements (and contiguous) are updated where they
lie; smaller ones are packed into flat chunks of at most :data:`CHUNK` elements, updated in
one call per chunk and copied back — on many small tensors that replaces thousands of kernel
launches (and parallel regions) by a few, and the temporaries stay bounded by the chunk size.

When no compiler works, the group falls back to the multi-tensor executor with one warning.
"""

from __future__ import annotations

import os
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from ..rules.first_moment import BiasCorrectedAverage, Gradient, HeavyBall
from ..rules.gradient import Maximize, WeightDecay
from ..rules.schedule import InverseTimeDecay
from ..rules.second_moment import AccumulatedSquares, BiasCorrectedSquaredAverage, NoSecondMoment
from .bundle import Observer, real_view
from .recipe import Recipe
from .tape import Tape, TapeBundle, build_kernel

BIG = 1 << 16
"""Tensors with at least this many elements (and contiguous) are updated in place, one call
each; smaller ones are packed into chunks."""

CHUNK = 1 << 20
"""Most elements in one packed chunk of small tensors (bounds the temporaries)."""

COMPILE_MIN_NUMEL = int(os.environ.get("MOMENTOPT_COMPILE_MIN_NUMEL", 1 << 20))
"""With default flags, a group whose recipe needs compiling is compiled only if it has at
least this many elements; smaller groups run multi-tensor (a compile of seconds would not pay
for itself). ``fused=True`` always compiles."""


# -- torch's fused kernels, as data ---------------------------------------------------------
@dataclass(frozen=True)
class TorchKernel:
    """One of torch's fused optimizer kernels and the recipe shape it computes.

    Attributes:
        name: the ``torch`` function.
        first, second, gradient, schedule: the rule classes of the recipe it stands for.
        applies: whether it computes the recipe for a group's hyperparameters (and rules).
        states: the state tensors it takes, in order, for a group's hyperparameters.
        arguments: its keyword arguments from the group's hyperparameters.
        takes_steps: whether it takes the ``step`` tensors.
        lazy: a state created at the first step (torch's ``is_first_step`` protocol).
        state_lists: how many state lists it takes (absent ones are passed empty).
    """

    name: str
    first: type
    second: type
    gradient: tuple[type, ...]
    schedule: tuple[type, ...]
    applies: Callable[[Recipe, Mapping[str, Any]], bool]
    states: Callable[[Mapping[str, Any]], tuple[str, ...]]
    arguments: Callable[[Mapping[str, Any]], dict[str, Any]]
    takes_steps: bool = True
    lazy: str | None = None
    state_lists: int = 1

    def matches(self, recipe: Recipe, hp: Mapping[str, Any]) -> bool:
        return (
            type(recipe.first) is self.first
            and type(recipe.second) is self.second
            and tuple(type(r) for r in recipe.gradient) == self.gradient
            and tuple(type(r) for r in recipe.schedule) == self.schedule
            and self.applies(recipe, hp)
        )


def _decoupled(recipe: Recipe, hp: Mapping[str, Any]) -> bool:
    return any(isinstance(r, WeightDecay) and r.is_decoupled(hp) for r in recipe.gradient)


def _adam_states(hp: Mapping[str, Any]) -> tuple[str, ...]:
    return ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if hp.get("amsgrad") else ("exp_avg", "exp_avg_sq")


def _adam_arguments(hp: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "lr": float(hp["lr"]), "beta1": float(hp["betas"][0]), "beta2": float(hp["betas"][1]),
        "weight_decay": float(hp["weight_decay"]), "eps": float(hp["eps"]),
        "amsgrad": bool(hp.get("amsgrad", False)), "maximize": bool(hp["maximize"]),
    }


_ADAM_RULES = dict(first=BiasCorrectedAverage, second=BiasCorrectedSquaredAverage,
                   gradient=(Maximize, WeightDecay), schedule=())

TORCH_KERNELS: tuple[TorchKernel, ...] = (
    TorchKernel("_fused_adam_", **_ADAM_RULES, states=_adam_states, arguments=_adam_arguments,
                applies=lambda r, hp: not _decoupled(r, hp), state_lists=3),
    TorchKernel("_fused_adamw_", **_ADAM_RULES, states=_adam_states, arguments=_adam_arguments,
                applies=lambda r, hp: _decoupled(r, hp), state_lists=3),
    TorchKernel(
        "_fused_sgd_", first=HeavyBall, second=NoSecondMoment, gradient=(Maximize, WeightDecay),
        schedule=(), takes_steps=False, lazy="momentum_buffer",
        applies=lambda r, hp: not _decoupled(r, hp),
        states=lambda hp: ("momentum_buffer",) if hp["momentum"] != 0 else (),
        arguments=lambda hp: {
            "weight_decay": float(hp["weight_decay"]), "momentum": float(hp["momentum"]),
            "lr": float(hp["lr"]), "dampening": float(hp["dampening"]),
            "nesterov": bool(hp["nesterov"]), "maximize": bool(hp["maximize"]),
        },
    ),
    TorchKernel(
        "_fused_adagrad_", first=Gradient, second=AccumulatedSquares,
        gradient=(Maximize, WeightDecay), schedule=(InverseTimeDecay,),
        applies=lambda r, hp: not _decoupled(r, hp),
        states=lambda hp: ("sum",),
        arguments=lambda hp: {
            "lr": float(hp["lr"]), "lr_decay": float(hp["lr_decay"]),
            "weight_decay": float(hp["weight_decay"]), "eps": float(hp["eps"]),
            "maximize": bool(hp["maximize"]),
        },
    ),
)
"""Recipe shape → torch fused kernel, tried in order (parity-tested in tests/test_fused.py)."""

KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def torch_kernel_for(recipe: Recipe, hp: Mapping[str, Any]) -> TorchKernel | None:
    """The entry of :data:`TORCH_KERNELS` that computes ``recipe`` for ``hp``, if any."""
    if hp.get("capturable"):
        return None
    return next((k for k in TORCH_KERNELS if k.matches(recipe, hp)), None)


# -- compiling --------------------------------------------------------------------------------
class CompileUnavailable(RuntimeError):
    """No compiler works here (the fused executor then runs multi-tensor)."""


_compiled: dict[tuple[Any, ...], Callable[..., Any]] = {}
_broken: list[str] = []  # the reason compiling failed, once it has
COMPILE_SECONDS: dict[str, float] = {}  # kernel description → seconds its first call took


def _compile(kernel: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.compile`` of one tape kernel (kept as a function so tests can replace it)."""
    return torch.compile(kernel, dynamic=True, fullgraph=True)


def compile_available() -> bool:
    """False once compiling failed in this process."""
    return not _broken


def _warn_fallback(reason: str) -> None:
    if not _broken:
        _broken.append(reason)
        warnings.warn(
            "momentopt: the fused executor could not compile the optimizer step "
            f"({reason}); running the multi-tensor executor instead. Results are the same; "
            "only speed differs.",
            RuntimeWarning,
            stacklevel=4,
        )


def _kernel(tape: Tape, dtype: torch.dtype, device: torch.device) -> Callable[..., Any]:
    key = (tape.key, dtype, device.type)
    fn = _compiled.get(key)
    if fn is None:
        fn = _compile(build_kernel(tape))
        _compiled[key] = fn
    return fn


# -- the executor ------------------------------------------------------------------------------
def _scalar_key(state: Mapping[str, Any], names: Sequence[str]) -> tuple[float, ...]:
    return tuple(float(state[name]) for name in names if name in state)


def _plain(t: Tensor) -> bool:
    return type(t) in (Tensor, torch.nn.Parameter) and t.layout == torch.strided


def fusable(params: Sequence[Tensor]) -> bool:
    """Whether the fused executor takes these tensors (plain dense tensors on CPU/CUDA)."""
    return all(_plain(p) and p.device.type in ("cpu", "cuda") for p in params)


def _split(tensors: Sequence[Sequence[Tensor]], n: int) -> tuple[list[int], list[list[int]]]:
    """Indices of the big (updated in place) tensors and chunks of the small ones."""
    big: list[int] = []
    chunks: list[list[int]] = []
    size = 0
    for i in range(n):
        numel = tensors[0][i].numel()
        if numel >= BIG and all(ts[i].is_contiguous() for ts in tensors):
            big.append(i)
            continue
        if not chunks or size + numel > CHUNK:
            chunks.append([])
            size = 0
        chunks[-1].append(i)
        size += numel
    return big, chunks


def _write_back(flat: Tensor, originals: list[Tensor]) -> None:
    torch._foreach_copy_(originals, list(_unflatten_dense_tensors(flat, originals)))


def _store(states: list[dict[str, Any]], params: list[Tensor], name: str, views: list[Tensor]) -> None:
    for p, s, v in zip(params, states, views, strict=True):
        s[name] = torch.view_as_complex(v) if torch.is_complex(p) else v


def _run_torch_kernel(kernel: TorchKernel, params: list[Tensor], grads: list[Tensor],
                      states: list[dict[str, Any]], hp: Mapping[str, Any]) -> None:
    names = kernel.states(hp)
    first_step = bool(kernel.lazy and kernel.lazy in names and kernel.lazy not in states[0])
    if first_step:
        _store(states, params, kernel.lazy, [torch.empty_like(g) for g in grads])
    ps = [real_view(p) for p in params]
    lists = [ps, grads] + [[real_view(s[n]) for s in states] for n in names]
    big, chunks = _split(lists, len(params))
    args: list[list[Tensor]] = [[lst[i] for i in big] for lst in lists]
    steps = [states[i]["step"] for i in big] if kernel.takes_steps else []
    packed: list[tuple[list[int], list[Tensor]]] = []
    for chunk in chunks:
        flats = [_flatten_dense_tensors([lst[i] for i in chunk]) for lst in lists]
        for arg, flat in zip(args, flats, strict=True):
            arg.append(flat)
        if kernel.takes_steps:
            steps.append(states[chunk[0]]["step"])
        packed.append((chunk, flats))
    extra = {"is_first_step": first_step} if kernel.lazy else {}
    args += [[] for _ in range(kernel.state_lists - len(names))]  # e.g. no max_exp_avg_sqs
    fn = getattr(torch, kernel.name)
    fn(*args, *([steps] if kernel.takes_steps else []), **kernel.arguments(hp), **extra)
    for chunk, flats in packed:
        # the gradient is only read (maximize negates on the fly): write back the rest
        for k, (lst, flat) in enumerate(zip(lists, flats, strict=True)):
            if k != 1:
                _write_back(flat, [lst[i] for i in chunk])


def _run_compiled(tape: Tape, params: list[Tensor], grads: list[Tensor],
                  states: list[dict[str, Any]]) -> None:
    ps = [real_view(p) for p in params]
    names = tape.inputs[2:]
    lists = [ps, grads] + [[real_view(s[n]) for s in states] for n in names]
    fn = _kernel(tape, ps[0].dtype, ps[0].device)
    scalars = torch.tensor(tape.scalars, dtype=torch.float64)
    stored = sorted(tape.outputs)
    outs: list[list[Tensor]] = [[None] * len(params) for _ in stored]  # type: ignore[list-item]
    big, chunks = _split(lists, len(params))
    mutated = _mutated_inputs(tape)
    for i in big:
        result = fn(scalars, *(lst[i].view(-1) for lst in lists))
        for k, r in enumerate(result):
            outs[k][i] = r.view(ps[i].shape)
    for chunk in chunks:
        members = [[lst[i] for i in chunk] for lst in lists]
        flats = [_flatten_dense_tensors(m) for m in members]
        if flats[0].numel() < 2:  # sizes 0 and 1 would compile a second, specialized kernel
            flats = [torch.cat([f, f.new_zeros(2 - f.numel())]) for f in flats]
        result = fn(scalars, *flats)
        for k, (m, flat) in enumerate(zip(members, flats, strict=True)):
            if k in mutated:
                _write_back(flat, m)
        for k, r in enumerate(result):
            for i, v in zip(chunk, _unflatten_dense_tensors(r, [ps[i] for i in chunk]), strict=True):
                outs[k][i] = torch.empty_like(grads[i]).copy_(v)
    for name, views in zip(stored, outs, strict=True):
        _store(states, params, name, views)


def _mutated_inputs(tape: Tape) -> set[int]:
    """Positions (in ``tape.inputs``) of the inputs the step writes to."""
    written = {target for name, _, target, _, _ in tape.ops if name.endswith("_") or name == "maximum_into"}
    return {i for i, var in enumerate(tape.input_vars) if var in written}


def fused(
    recipe: Recipe,
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    states: Sequence[dict[str, Any]],
    *,
    hp: Mapping[str, Any],
    defaults: Mapping[str, Any],
    differentiable: bool,
    observer: Observer | None = None,
    auto: bool = False,
) -> None:
    """Run the recipe with torch's fused kernel for it, or compiled; see the module doc.

    ``auto`` (default flags): compile only groups of at least :data:`COMPILE_MIN_NUMEL`
    elements; run multi-tensor otherwise, and wherever the fused way does not apply
    (sparse gradients, an observer, tensor subclasses, inside a ``torch.compile`` region).
    """
    from .executors import multi_tensor, per_tensor

    def fallback(members: Sequence[int]) -> None:
        multi_tensor(
            recipe, [params[i] for i in members], [grads[i] for i in members],
            [states[i] for i in members], hp=hp, defaults=defaults,
            differentiable=differentiable, observer=observer,
        )

    if (observer is not None or differentiable or torch.compiler.is_compiling()
            or not fusable(params)):
        fallback(range(len(params)))
        return
    kernel = torch_kernel_for(recipe, hp)
    lazy = recipe.lazy_state(hp)
    buckets: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    sparse: list[int] = []
    for i, (p, g, s) in enumerate(zip(params, grads, states, strict=True)):
        if g.is_sparse:
            sparse.append(i)
            continue
        view = real_view(p)
        buckets[(view.device, view.dtype, _scalar_key(s, recipe.scalar_state),
                  tuple(name in s for name in lazy))].append(i)
    total = sum(p.numel() for p in params)
    for (device, dtype, scalars, _), members in buckets.items():
        ps = [params[i] for i in members]
        gs = [real_view(grads[i]) for i in members]
        ss = [states[i] for i in members]
        if kernel is not None and dtype in KERNEL_DTYPES and device.type == "cpu" or (
            kernel is not None and device.type == "cuda" and dtype in KERNEL_DTYPES
            and kernel.name != "_fused_adagrad_"
        ):
            _run_torch_kernel(kernel, ps, gs, ss, hp)
            continue
        if _broken or (auto and total < COMPILE_MIN_NUMEL) or not dtype.is_floating_point:
            fallback(members)
            continue
        tape = Tape()
        bundle = TapeBundle(tape, ss, step=scalars[0] if recipe.counts_steps else 0.0, hp=hp,
                            defaults=defaults, params=ps)
        before = [{k: v.clone() for k, v in s.items() if isinstance(v, Tensor) and v.dim() == 0}
                  for s in ss] if recipe.scalar_state[1 if recipe.counts_steps else 0:] else None
        try:
            recipe.run(bundle)  # records the step; scalar state (mu_product) is updated here
            _timed_run(tape, ps, gs, ss, dtype, device)
        except Exception as err:  # noqa: BLE001 — any compiler failure means: fall back
            if before is not None:  # undo the scalar-state update the recording made
                for s, old in zip(ss, before, strict=True):
                    for k, v in old.items():
                        s[k].copy_(v)
            _warn_fallback(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            fallback(members)
    if sparse:
        per_tensor(
            recipe, [params[i] for i in sparse], [grads[i] for i in sparse],
            [states[i] for i in sparse], hp=hp, defaults=defaults,
            differentiable=differentiable, observer=observer,
        )


def _timed_run(tape: Tape, ps: list[Tensor], gs: list[Tensor], ss: list[dict[str, Any]],
               dtype: torch.dtype, device: torch.device) -> None:
    key = (tape.key, dtype, device.type)
    first = key not in _compiled
    start = time.perf_counter()
    _run_compiled(tape, ps, gs, ss)
    if first:
        COMPILE_SECONDS[f"{len(tape.ops)} ops, {dtype}, {device.type}"] = time.perf_counter() - start


def auto(*args: Any, **kwargs: Any) -> None:
    """The fused executor as the default choice (see :func:`fused`'s ``auto``)."""
    fused(*args, **kwargs, auto=True)
