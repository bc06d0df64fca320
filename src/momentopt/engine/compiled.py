"""The compiled path: a recipe's step recorded once and compiled into one memory pass.

:meth:`Recipe.run` is recorded on stand-in tensors (:class:`~.views.TapeView`, :mod:`.tape`);
the tape's tensor ops become one function, compiled by ``torch.compile`` (inductor) once per
(tape structure, dtype, device) with dynamic shapes — so its cost does not grow with the
number of tensors — and called with the step's scalars (lr, bias corrections, ...) as a
float64 tensor computed once per step by the rule code itself: changing lr, betas or
weight_decay never recompiles. Inductor's on-disk caches reuse the compiled code across
processes. Tensors of at least :data:`~.torch_kernels.BIG` elements (and contiguous) are
updated where they lie, one call each; smaller ones are updated in chunks of at most
:data:`CHUNK` elements whose state lives in flat buffers (:class:`~.packing.Chunk`):
parameters and gradients are copied into a scratch buffer, one call updates the chunk, the
parameters are copied back.
"""

from __future__ import annotations

import os
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .batch import GroupTensors
from .packing import Chunk, scratch
from .tape import Tape, build_kernel
from .torch_kernels import BIG
from .views import as_stored, real_view, real_views

CHUNK = 1 << 20
"""Most elements in one packed chunk of small tensors (bounds the scratch buffers)."""

COMPILE_MIN_NUMEL = int(os.environ.get("MOMENTOPT_COMPILE_MIN_NUMEL", 1 << 20))
"""With default flags, a group whose recipe needs compiling is compiled only if it has at
least this many elements; smaller groups run multi-tensor (a compile of seconds would not pay
for itself). ``fused=True`` always compiles."""

LAYOUTS_KEPT = 4
"""Layouts (sets of tensors stepping together) kept per param group; more appear when
gradients come and go, and the least recently used is dropped with its flat buffers."""

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

    def why_not(self, key: tuple[Any, ...]) -> str | None:
        """Why the step structure ``key`` cannot be compiled now, or None if it can."""
        return self.unavailable or self.failed.get(key)

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
            f"momentopt: could not compile {what} ({reason}); running the multi-tensor path "
            "instead. Results are the same; only speed differs.",
            RuntimeWarning,
            stacklevel=6,
        )

    def cannot_record(self, recipe: Any, err: Exception) -> None:
        if id(recipe) not in self.unrecordable:
            self.unrecordable.add(id(recipe))
            warnings.warn(
                f"momentopt: cannot record this recipe's step for compiling ({err}); it runs "
                "multi-tensor, uncompiled.",
                RuntimeWarning,
                stacklevel=6,
            )


COMPILE_HEALTH = CompileHealth()


def compile_available() -> bool:
    """False once compiling failed in this process for a reason beyond one step structure."""
    return COMPILE_HEALTH.unavailable is None


def kernel_key(tape: Tape, dtype: torch.dtype, device: torch.device) -> tuple[Any, ...]:
    return (tape.key, dtype, device.type)


def _kernel(tape: Tape, dtype: torch.dtype, device: torch.device) -> Callable[..., Any]:
    key = kernel_key(tape, dtype, device)
    fn = _compiled.get(key)
    if fn is None:
        fn = _compile(build_kernel(tape))
        _compiled[key] = fn
    return fn


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


def _layout(batch: GroupTensors, dtype: torch.dtype, device: torch.device) -> Layout:
    """The bucket's big tensors and its chunks of small ones, kept between steps."""
    layouts: OrderedDict[Any, Layout] = batch.cache.setdefault("layouts", OrderedDict())
    key = (dtype, device, tuple(map(id, batch.params)))
    layout = layouts.get(key)
    if layout is None or not all(c.holds([batch.params[i] for i in idx]) for idx, c in layout[1]):
        big, runs = _split([real_view(p) for p in batch.params])
        big.sort(key=lambda i: batch.params[i].numel())
        chunks = [(idx, Chunk([batch.params[i] for i in idx], dtype, device)) for idx in runs]
        layout = (big, chunks)
        layouts[key] = layout
    layouts.move_to_end(key)
    while len(layouts) > LAYOUTS_KEPT:
        layouts.popitem(last=False)
    return layout


class _Staged:
    """A chunk's parameters and gradients copied into the scratch buffers (real views)."""

    def __init__(self, batch: GroupTensors, idx: list[int], chunk: Chunk) -> None:
        is_complex = chunk.is_complex
        self.params = real_views([batch.params[i] for i in idx], is_complex)
        self.states = [batch.states[i] for i in idx]
        n = max(chunk.numel, 2)  # sizes 0 and 1 would compile a second, specialized kernel
        p_buf = scratch(batch.cache, "param", n, chunk.dtype, chunk.device)
        g_buf = scratch(batch.cache, "grad", n, chunk.dtype, chunk.device)
        self.param_views = chunk.scratch_views(p_buf, "param")
        self.grad_views = chunk.scratch_views(g_buf, "grad")
        torch._foreach_copy_(self.param_views, self.params)
        grads = real_views([batch.grads[i] for i in idx], is_complex)
        torch._foreach_copy_(self.grad_views, grads)
        self.param, self.grad = p_buf[:n], g_buf[:n]

    def write_back(self) -> None:
        torch._foreach_copy_(self.params, self.param_views)


def _big_state(s: dict[str, Any], name: str) -> Tensor:
    """A big tensor's state as a contiguous real view (made contiguous in the state if not)."""
    if not s[name].is_contiguous():
        s[name] = s[name].contiguous()
    return real_view(s[name])


def run_compiled(tape: Tape, batch: GroupTensors, dtype: torch.dtype, device: torch.device) -> None:
    """The compiled step of ``tape`` over the bucket ``batch`` (dense parameters)."""
    key = kernel_key(tape, dtype, device)
    first = key not in _compiled
    start = time.perf_counter()
    fn = _kernel(tape, dtype, device)
    big, chunks = _layout(batch, dtype, device)
    scalars = torch.tensor(tape.scalars, dtype=torch.float64, device=device)
    read = tape.inputs[2:]
    stored = sorted(tape.outputs)
    for idx, chunk in chunks:
        staged = _Staged(batch, idx, chunk)
        flats = chunk.flat_state(staged.states, read)
        result = fn(scalars, staged.param, staged.grad, *flats)
        for name, r in zip(stored, result, strict=True):
            chunk.flat_state(staged.states, [name])[0].copy_(r)
        staged.write_back()
    for i in big:
        p, s = batch.params[i], batch.states[i]
        real_p = real_view(p)
        inputs = [_big_state(s, n).view(-1) for n in read]
        result = fn(scalars, real_p.view(-1), real_view(batch.grads[i]).reshape(-1), *inputs)
        for name, r in zip(stored, result, strict=True):
            s[name] = as_stored(p, r.view(real_p.shape))
    if first:
        seconds = time.perf_counter() - start
        COMPILE_SECONDS[f"{len(tape.ops)} ops, {dtype}, {device.type}"] = seconds
