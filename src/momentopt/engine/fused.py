"""The fused executor: one memory pass per step, generated from the same rule code.

How a param group is run (after the tensors are grouped by device, dtype and scalar state,
as the multi-tensor executor groups them):

1. **torch's own fused kernel, where one computes exactly this recipe** (:data:`TORCH_KERNELS`,
   a table: recipe shape → ``torch._fused_adam_`` / ``_fused_adamw_`` / ``_fused_sgd_`` /
   ``_fused_adagrad_``). The table is data: an entry names the rule classes it stands for
   and how the group's keys map to the kernel's arguments; no math is restated. These
   kernels run at the memory-bandwidth floor on large tensors. They are called on the
   tensors themselves; on the CPU, when a group has hundreds of tensors under :data:`BIG`
   elements, those go in a second call on one intra-op thread (the kernels open a parallel
   region per tensor, which costs more than a small tensor's update and stalls whenever a
   core is busy).
2. **otherwise, the recipe compiled**: :meth:`Recipe.run` is recorded on stand-in tensors
   (:mod:`.tape`); the tape's tensor ops become one function, compiled by ``torch.compile``
   (inductor) once per (tape structure, dtype, device) with dynamic shapes — so its cost
   does not grow with the number of tensors — and called with the step's scalars (lr,
   bias corrections, ...) as a float64 tensor computed once per step by the rule code
   itself: changing lr, betas or weight_decay never recompiles. Inductor's on-disk caches
   reuse the compiled code across processes. Tensors of at least :data:`BIG` elements (and
   contiguous) are updated where they lie, one call each; smaller ones are updated in
   chunks of at most :data:`CHUNK` elements whose state lives in flat buffers
   (:class:`~.packing.Chunk`): parameters and gradients are copied into a scratch buffer,
   one call updates the chunk, the parameters are copied back. A recorded step of a single
   op (plain SGD) is one memory pass already and runs multi-tensor, uncompiled.

When no compiler works, the group falls back to the multi-tensor executor with one warning.
"""

from __future__ import annotations

import contextlib
import numbers
import os
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..rules.first_moment import BiasCorrectedAverage, Gradient, HeavyBall
from ..rules.gradient import Maximize, WeightDecay
from ..rules.schedule import InverseTimeDecay
from ..rules.second_moment import AccumulatedSquares, BiasCorrectedSquaredAverage, NoSecondMoment
from .bundle import as_stored, real_view, real_views
from .executors import Step
from .packing import Chunk, scratch
from .recipe import Recipe
from .selection import default_unfused, flat_layout_split, fusable, is_dense
from .tape import Tape, TapeBundle, build_kernel

BIG = 1 << 16
"""Tensors with at least this many elements (and contiguous) are updated where they lie;
smaller ones are small (one thread for torch's kernels, packed chunks for compiled steps)."""

ONE_THREAD_MIN = 256
"""torch's kernels take the small tensors on one thread only when there are this many (a
thread-count switch costs about as much as a few hundred parallel regions)."""

CHUNK = 1 << 20
"""Most elements in one packed chunk of small tensors (bounds the scratch buffers)."""

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
        flags: the group keys it takes as bools (it refuses anything else, so with default
            flags a group holding another value there runs torch's default path instead).
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
    flags: tuple[str, ...] = ("maximize",)

    def takes_flags(self, hp: Mapping[str, Any]) -> bool:
        return all(isinstance(hp.get(k, False), bool) for k in self.flags)

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


def _number(value: Any) -> float:
    """A hyperparameter as the kernels take it; a string (which ``float`` would read) or
    anything else that is not a number raises TypeError, as torch's own step does."""
    if isinstance(value, Tensor | numbers.Real):
        return float(value)
    raise TypeError(f"a hyperparameter must be a number, got {type(value).__name__} {value!r}")


def _flag(value: Any) -> bool:
    """A flag as the kernels take it: a bool; anything else (``maximize=None``) raises
    TypeError, as torch's fused kernels do."""
    if isinstance(value, bool):
        return value
    raise TypeError(f"a flag must be a bool, got {type(value).__name__} {value!r}")


def _adam_arguments(hp: Mapping[str, Any]) -> dict[str, Any]:
    beta1, beta2 = hp["betas"]  # torch's step unpacks them: betas of another length raise
    return {
        "lr": _number(hp["lr"]), "beta1": _number(beta1), "beta2": _number(beta2),
        "weight_decay": _number(hp["weight_decay"]), "eps": _number(hp["eps"]),
        "amsgrad": _flag(hp.get("amsgrad", False)), "maximize": _flag(hp["maximize"]),
    }


def _adam_applies(decoupled: bool) -> Callable[[Recipe, Mapping[str, Any]], bool]:
    """Adam or AdamW, without AMSGrad: torch's kernel keeps ``max(v̂_max, v̂)`` without NaN
    (its max drops a NaN that ``torch.maximum`` keeps), so AMSGrad runs the recipe."""
    return lambda r, hp: _decoupled(r, hp) == decoupled and not hp.get("amsgrad", False)


_ADAM_FLAGS = ("amsgrad", "maximize")
_ADAM_RULES = dict(first=BiasCorrectedAverage, second=BiasCorrectedSquaredAverage,
                   gradient=(Maximize, WeightDecay), schedule=())

TORCH_KERNELS: tuple[TorchKernel, ...] = (
    TorchKernel("_fused_adam_", **_ADAM_RULES, states=_adam_states, arguments=_adam_arguments,
                applies=_adam_applies(decoupled=False), state_lists=3, flags=_ADAM_FLAGS),
    TorchKernel("_fused_adamw_", **_ADAM_RULES, states=_adam_states, arguments=_adam_arguments,
                applies=_adam_applies(decoupled=True), state_lists=3, flags=_ADAM_FLAGS),
    TorchKernel(
        "_fused_sgd_", first=HeavyBall, second=NoSecondMoment, gradient=(Maximize, WeightDecay),
        schedule=(), takes_steps=False, lazy="momentum_buffer", flags=("nesterov", "maximize"),
        # plain SGD is one foreach op already, and torch's kernel is slower at it
        applies=lambda r, hp: not _decoupled(r, hp) and (
            hp["momentum"] != 0 or hp["weight_decay"] != 0 or hp["maximize"]
        ),
        states=lambda hp: ("momentum_buffer",) if hp["momentum"] != 0 else (),
        arguments=lambda hp: {
            "weight_decay": _number(hp["weight_decay"]), "momentum": _number(hp["momentum"]),
            "lr": _number(hp["lr"]),
            "dampening": _number(hp["dampening"]) if hp["momentum"] != 0 else 0.0,  # unread
            "nesterov": _flag(hp["nesterov"]), "maximize": _flag(hp["maximize"]),
        },
    ),
    TorchKernel(
        "_fused_adagrad_", first=Gradient, second=AccumulatedSquares,
        gradient=(Maximize, WeightDecay), schedule=(InverseTimeDecay,),
        applies=lambda r, hp: not _decoupled(r, hp),
        states=lambda hp: ("sum",),
        arguments=lambda hp: {
            "lr": _number(hp["lr"]), "lr_decay": _number(hp["lr_decay"]),
            "weight_decay": _number(hp["weight_decay"]), "eps": _number(hp["eps"]),
            "maximize": _flag(hp["maximize"]),
        },
    ),
)
"""Recipe shape → torch fused kernel, tried in order (parity-tested in tests/test_fused.py)."""

FUSED_DTYPES = (torch.float32, torch.float64)
"""Real dtypes (of real views) that torch's kernels and the compiled step compute as torch's
default path does. float16/bfloat16 take torch's default path instead: the fused kernels
compute them in float32 (other numbers than torch's default loop), and on the CPU
``_fused_sgd_`` updates only the scalar tail of a float16/bfloat16 tensor."""


def _has_tensor_values(hp: Mapping[str, Any]) -> bool:
    """Whether a hyperparameter is a tensor (tensor lr, tensor betas)."""
    return any(
        isinstance(v, Tensor) or isinstance(v, tuple) and any(isinstance(x, Tensor) for x in v)
        for k, v in hp.items() if k != "params"
    )


def torch_kernel_for(recipe: Recipe, hp: Mapping[str, Any]) -> TorchKernel | None:
    """The entry of :data:`TORCH_KERNELS` that computes ``recipe`` for ``hp``, if any.

    None for tensor hyperparameters: torch's default path computes its scalars with them in
    their dtype (``1 − β2^t`` of a float32 β2 loses 1e-4 to cancellation), its kernels in
    float64; the recipe run by the other paths computes them as torch's default does."""
    if hp.get("capturable") or _has_tensor_values(hp):
        return None
    return next((k for k in TORCH_KERNELS if k.matches(recipe, hp)), None)


# -- compiling --------------------------------------------------------------------------------
class CompileUnavailable(RuntimeError):
    """No compiler works here (the fused executor then runs multi-tensor)."""


_compiled: dict[tuple[Any, ...], Callable[..., Any]] = {}
COMPILE_SECONDS: dict[str, float] = {}  # kernel description → seconds its first call took


def _compile(kernel: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.compile`` of one tape kernel (kept as a function so tests can replace it)."""
    return torch.compile(kernel, dynamic=True, fullgraph=True)


class CompileHealth:
    """What the compiled path has learnt in this process.

    Attributes:
        unavailable: why compiling does not work here at all (no working C++ compiler, a
            backend failure), or None; then every recipe runs multi-tensor.
        failed: kernel key → why that one step structure could not be compiled (Dynamo
            could not trace it); it runs multi-tensor, the others still compile.
        unrecordable: ids of recipes whose rule code the tape cannot record.
    Each of these is warned about once.
    """

    def __init__(self) -> None:
        self.unavailable: str | None = None
        self.failed: dict[tuple[Any, ...], str] = {}
        self.unrecordable: set[int] = set()

    def usable(self, key: tuple[Any, ...]) -> bool:
        return self.unavailable is None and key not in self.failed

    def compile_failed(self, key: tuple[Any, ...], err: Exception) -> None:
        reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        traced = isinstance(err, torch._dynamo.exc.TorchDynamoException) and not isinstance(
            err, torch._dynamo.exc.BackendCompilerFailed
        )
        if traced:  # this step structure only
            self.failed[key] = reason
            what = "this optimizer step"
        elif self.unavailable is None:
            self.unavailable = reason
            what = "any optimizer step"
        else:
            return
        warnings.warn(
            f"momentopt: the fused executor could not compile {what} ({reason}); running the "
            "multi-tensor executor instead. Results are the same; only speed differs.",
            RuntimeWarning,
            stacklevel=5,
        )

    def cannot_record(self, recipe: Recipe, err: Exception) -> None:
        if id(recipe) not in self.unrecordable:
            self.unrecordable.add(id(recipe))
            warnings.warn(
                f"momentopt: the fused executor cannot record this recipe's step ({err}); it "
                "runs multi-tensor, uncompiled.",
                RuntimeWarning,
                stacklevel=5,
            )


COMPILE_HEALTH = CompileHealth()


def compile_available() -> bool:
    """False once compiling failed in this process for a reason beyond one step structure."""
    return COMPILE_HEALTH.unavailable is None


def _kernel(tape: Tape, dtype: torch.dtype, device: torch.device) -> Callable[..., Any]:
    key = (tape.key, dtype, device.type)
    fn = _compiled.get(key)
    if fn is None:
        fn = _compile(build_kernel(tape))
        _compiled[key] = fn
    return fn


# -- the executor ------------------------------------------------------------------------------
Layout = tuple[list[int], list[tuple[list[int], Chunk]]]


def _split(views: Sequence[Tensor]) -> tuple[list[int], list[list[int]]]:
    """Indices of the big (updated in place) tensors and runs of the small ones."""
    big: list[int] = []
    chunks: list[list[int]] = []
    size = 0
    for i, v in enumerate(views):
        numel = v.numel()
        if numel >= BIG and v.is_contiguous():
            big.append(i)
            continue
        if not chunks or size + numel > CHUNK:
            chunks.append([])
            size = 0
        chunks[-1].append(i)
        size += numel
    return big, chunks


LAYOUTS_KEPT = 4
"""Layouts (sets of tensors stepping together) kept per param group; more appear when
gradients come and go, and the least recently used is dropped with its flat buffers."""


def _layout(step: Step, dtype: torch.dtype, device: torch.device) -> Layout:
    """The bucket's big tensors and its chunks of small ones, kept between steps."""
    layouts: OrderedDict[Any, Layout] = step.cache.setdefault("layouts", OrderedDict())
    key = (dtype, device, tuple(map(id, step.params)))
    layout = layouts.get(key)
    if layout is None or not all(c.holds([step.params[i] for i in idx]) for idx, c in layout[1]):
        big, runs = _split([real_view(p) for p in step.params])
        big.sort(key=lambda i: step.params[i].numel())
        layout = (big, [(idx, Chunk([step.params[i] for i in idx], dtype, device)) for idx in runs])
        layouts[key] = layout
    layouts.move_to_end(key)
    while len(layouts) > LAYOUTS_KEPT:
        layouts.popitem(last=False)
    return layout


class _Staged:
    """A chunk's parameters and gradients copied into the scratch buffers (real views)."""

    def __init__(self, step: Step, idx: list[int], chunk: Chunk) -> None:
        is_complex = chunk.is_complex
        self.params = real_views([step.params[i] for i in idx], is_complex)
        self.states = [step.states[i] for i in idx]
        n = max(chunk.numel, 2)  # sizes 0 and 1 would compile a second, specialized kernel
        p_buf = scratch(step.cache, "param", n, chunk.dtype, chunk.device)
        g_buf = scratch(step.cache, "grad", n, chunk.dtype, chunk.device)
        self.param_views = chunk.scratch_views(p_buf, "param")
        self.grad_views = chunk.scratch_views(g_buf, "grad")
        torch._foreach_copy_(self.param_views, self.params)
        torch._foreach_copy_(self.grad_views, real_views([step.grads[i] for i in idx], is_complex))
        self.param, self.grad = p_buf[:n], g_buf[:n]

    def write_back(self) -> None:
        torch._foreach_copy_(self.params, self.param_views)


def _big_state(s: dict[str, Any], name: str) -> Tensor:
    """A big tensor's state as a contiguous real view (made contiguous in the state if not)."""
    if not s[name].is_contiguous():
        s[name] = s[name].contiguous()
    return real_view(s[name])


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch's CPU kernels on one intra-op thread for a moment: its fused kernels open a
    parallel region per tensor, which costs more than a small tensor's update (and stalls
    when a core is busy)."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _run_torch_kernel(kernel: TorchKernel, step: Step, device: torch.device) -> list[int]:
    """torch's fused kernel on the bucket's own tensors (no copies): big tensors as one call,
    small ones (on the CPU) as another on one thread. Returns the positions of the tensors
    the kernel cannot take (:func:`~.selection.flat_layout_split`), left for another path."""
    hp, states = step.hp, step.states
    names = kernel.states(hp)
    first_step = bool(kernel.lazy and kernel.lazy in names and kernel.lazy not in states[0])
    lists = {n: [s[n] for s in states] for n in names if not (first_step and n == kernel.lazy)}
    fits, misfits = flat_layout_split(step.params, step.grads, list(lists.values()))
    if not fits:
        return misfits
    if first_step and step.found_inf is not None and bool(step.found_inf):
        return []  # a skipped first step creates no buffer (torch's would hold garbage)
    if first_step:  # the kernel's is_first_step protocol: it fills the new buffers
        created: list[Any] = [None] * len(step.params)  # misfits: made by their own path
        for i in fits:
            created[i] = states[i][kernel.lazy] = torch.empty_like(step.params[i])
        lists[kernel.lazy] = created  # type: ignore[index]
    fn = getattr(torch, kernel.name)
    options = {**kernel.arguments(hp), **({"is_first_step": first_step} if kernel.lazy else {})}
    if step.grad_scale is not None:
        options["grad_scale"] = step.grad_scale.to(device)
    if step.found_inf is not None:
        options["found_inf"] = step.found_inf.to(device)
    absent = [[] for _ in range(kernel.state_lists - len(names))]  # e.g. no max_exp_avg_sqs

    is_complex = step.params[0].is_complex()  # one dtype per bucket

    every = len(fits) == len(step.params)

    def pick(tensors: list[Tensor], members: Sequence[int]) -> list[Tensor]:
        picked = tensors if every and len(members) == len(tensors) else [tensors[i] for i in members]
        return real_views(picked, is_complex)

    def call(members: Sequence[int]) -> None:
        fn(
            pick(step.params, members),
            pick(step.grads, members),
            *[pick(lists[n], members) for n in names],
            *absent,
            *([[states[i]["step"] for i in members]] if kernel.takes_steps else []),
            **options,
        )

    big: list[int] = []
    small: list[int] = []
    if device.type == "cpu":
        for i in fits:
            (big if step.params[i].numel() >= BIG else small).append(i)
    if len(small) < ONE_THREAD_MIN:  # switching threads costs more than it saves
        call(fits)
        return misfits
    if big:
        call(big)
    with _one_thread():
        call(small)
    return misfits


def _run_compiled(tape: Tape, step: Step, layout: Layout, dtype: torch.dtype,
                  device: torch.device) -> None:
    fn = _kernel(tape, dtype, device)
    scalars = torch.tensor(tape.scalars, dtype=torch.float64, device=device)
    read = tape.inputs[2:]
    stored = sorted(tape.outputs)
    big, chunks = layout
    # smallest first: a call right after a long parallel region costs ~0.1 ms more
    for idx, chunk in chunks:
        staged = _Staged(step, idx, chunk)
        flats = chunk.flat_state(staged.states, read)
        result = fn(scalars, staged.param, staged.grad, *flats)
        for name, r in zip(stored, result, strict=True):
            chunk.flat_state(staged.states, [name])[0].copy_(r)
        staged.write_back()
    for i in big:
        p, s = step.params[i], step.states[i]
        real_p = real_view(p)
        inputs = [_big_state(s, n).view(-1) for n in read]
        result = fn(scalars, real_p.view(-1), real_view(step.grads[i]).reshape(-1), *inputs)
        for name, r in zip(stored, result, strict=True):
            s[name] = as_stored(p, r.view(real_p.shape))


def fused(step: Step, auto: bool = False) -> None:
    """Run the recipe with torch's fused kernel for it, or compiled; see the module doc.

    ``auto`` (default flags): compile only groups of at least :data:`COMPILE_MIN_NUMEL`
    elements; run multi-tensor otherwise, and wherever the fused way does not apply
    (sparse gradients, tensor subclasses, inside a ``torch.compile`` region, and tensors
    whose memory layout torch's kernels or the compiled step cannot take: see
    :func:`~.selection.flat_layout_split`).

    ``step.grad_scale`` / ``step.found_inf`` (set by ``torch.amp.GradScaler`` under
    ``fused=True``) act as in torch's fused optimizers: gradients are divided by the scale
    (in place), and a non-zero ``found_inf`` skips the update and leaves the step count as
    it was.
    """
    from .executors import EXECUTORS, buckets, multi_tensor, per_tensor, run_bucket

    if step.differentiable or torch.compiler.is_compiling() or not (auto or fusable(step.params)):
        if _unscale(step):  # auto: chosen for fusable params only
            multi_tensor(step)
        _uncount_skipped(step)
        return
    recipe, hp = step.recipe, step.hp
    kernel = torch_kernel_for(recipe, hp)
    if auto and kernel is not None and not kernel.takes_flags(hp):
        kernel = None  # torch's kernel would refuse (say) maximize=1, torch's default path not
    grouped, sparse = buckets(step)
    total: int | None = None
    for key, members in grouped.items():
        device, _, scalars, _ = key
        sub = step.subset(members) if len(members) != len(step.params) else step
        dtype = real_view(sub.params[0]).dtype
        if dtype not in FUSED_DTYPES:
            if _unscale(sub):
                EXECUTORS[default_unfused(sub.params)](sub)
            continue
        if kernel is not None and (
            device.type == "cpu" or device.type == "cuda" and kernel.name != "_fused_adagrad_"
        ):
            misfits = _run_torch_kernel(kernel, sub, device)
            if misfits and _unscale(sub := sub.subset(misfits)):
                run_bucket(sub, key)
            continue
        if not _unscale(sub):
            continue
        dense = all(map(Tensor.is_contiguous, sub.params))  # the usual case, in C
        loose = [] if dense else [i for i, p in enumerate(sub.params) if not is_dense(p)]
        if loose:  # expanded or gapped params: the compiled step's flat copies assume dense
            run_bucket(sub.subset(loose), key)
            if len(loose) == len(sub.params):
                continue
            sub = sub.subset(sorted(set(range(len(sub.params))) - set(loose)))
        tape = Tape()
        bundle = TapeBundle(tape, sub.states, step=scalars[0] if recipe.counts_steps else 0.0,
                            hp=hp, defaults=sub.defaults, params=sub.params)
        try:
            recipe.run(bundle)  # records the step (scalar-state updates deferred)
        except (TypeError, AttributeError) as err:  # an op the tape cannot record (own rule code)
            COMPILE_HEALTH.cannot_record(recipe, err)
            run_bucket(sub, key)
            continue
        if auto and total is None and len(tape.ops) > 1:
            total = sum(p.numel() for p in step.params)
        kernel_key = (tape.key, dtype, device.type)
        # one op is one memory pass already: nothing to fuse (plain SGD)
        if (len(tape.ops) <= 1 or not COMPILE_HEALTH.usable(kernel_key)
                or (auto and total < COMPILE_MIN_NUMEL)):  # type: ignore[operator]
            run_bucket(sub, key)
            continue
        try:
            _timed_run(tape, sub, dtype, device)
        except Exception as err:
            COMPILE_HEALTH.compile_failed(kernel_key, err)
            run_bucket(sub, key)
            continue
        bundle.commit(sub.scale_scalar_)
    if sparse:
        per_tensor(step.subset(sparse))
    _uncount_skipped(step)


def _unscale(step: Step) -> bool:
    """For a path without torch's kernel under AMP scaling: False if ``found_inf`` says to
    skip the update; otherwise divide the gradients by ``grad_scale`` in place (as torch's
    fused kernels do) and return True."""
    if step.found_inf is not None and bool(step.found_inf):
        return False
    if step.grad_scale is not None and step.grads:
        torch._foreach_div_(step.grads, step.grad_scale.reshape(()).to(step.grads[0].device))
    return True


def _uncount_skipped(step: Step) -> None:
    """``step -= found_inf`` for every counter this step advanced (torch's fused optimizers)."""
    if step.found_inf is None or not step.recipe.counts_steps:
        return
    counters = [s["step"] for s in step.states]
    if counters:
        torch._foreach_sub_(counters, [step.found_inf.to(c.device) for c in counters])


def _timed_run(tape: Tape, step: Step, dtype: torch.dtype, device: torch.device) -> None:
    key = (tape.key, dtype, device.type)
    first = key not in _compiled
    start = time.perf_counter()
    _run_compiled(tape, step, _layout(step, dtype, device), dtype, device)
    if first:
        seconds = time.perf_counter() - start
        COMPILE_SECONDS[f"{len(tape.ops)} ops, {dtype}, {device.type}"] = seconds
