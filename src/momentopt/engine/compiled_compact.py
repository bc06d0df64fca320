"""The compiled step over compact state: decode, update and encode in one kernel.

The recorded step (:mod:`.tape`) is wrapped: its state inputs are decoded from their storage
(:mod:`.compact`), the recipe's ops run in the parameter's dtype, and every state the step
writes is encoded again before the kernel returns. Inductor fuses the three into one loop
over blocks of 256 elements: the full-precision state exists only in registers. Each
parameter is one call, on ``(blocks, 256)`` views; a parameter whose size is not a multiple
of 256, or that is not contiguous, is staged through zero-padded scratch buffers, and the
padding is kept out of the block maxima.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from . import compiled
from .batch import GroupTensors
from .compact import (
    BLOCK,
    decode_blocks,
    element_index,
    encode_blocks,
    num_blocks,
    state_salt,
    stochastic_bf16,
)
from .precision import ABSMAX, BF16, Format
from .tape import Tape, build_kernel
from .views import real_view

_compiled: dict[tuple[Any, ...], Callable[..., Any]] = {}

Layout = tuple[tuple[str, Format | None], ...]
"""Each state the kernel reads or writes, with its storage (None: full precision)."""


def _written(tape: Tape) -> list[str]:
    """The states the recorded step writes: those it updates in place and those it starts."""
    targets = {op[2] for op in tape.ops if op[2] is not None and op[1] == op[2]}
    read = tape.inputs[2:]
    updated = [n for n, v in zip(read, tape.input_vars[2:], strict=True) if v in targets]
    return sorted(set(updated) | set(tape.outputs))


def _outputs(tape: Tape, formats: dict[str, Format]) -> list[str]:
    """The states the kernel returns: compact ones it writes and full ones it starts (a full
    state it reads is updated in place)."""
    read = tape.inputs[2:]
    return [n for n in _written(tape) if n in formats or n not in read]


def build_compact_kernel(tape: Tape, layout: Layout, padded: bool) -> Callable[..., Any]:
    """``kernel(scalars, salts, n, param, grad, *stored) -> (states)`` on ``(blocks, 256)``
    tensors: ``stored`` holds, per state read (``tape.inputs`` order), its codes and absmax,
    its bfloat16 values, or its full values (updated in place); ``salts`` (int32) one per
    bf16 state returned; ``n`` the number of real elements (``padded``: the rest is padding).
    Returns :func:`_outputs`' states, encoded where compact (codes and absmax for int8)."""
    step = build_kernel(tape)
    read = tape.inputs[2:]
    formats = {name: fmt for name, fmt in layout if fmt is not None}
    outputs = _outputs(tape, formats)

    def kernel(
        scalars: Tensor, salts: Tensor, n: Tensor, param: Tensor, grad: Tensor, *stored: Tensor
    ) -> tuple[Tensor, ...]:
        full: list[Tensor] = []
        k = 0
        for name in read:
            fmt = formats.get(name)
            if fmt is not None and fmt.kind != BF16:
                full.append(decode_blocks(stored[k], stored[k + 1], fmt.signed).to(param.dtype))
                k += 2
            else:
                full.append(stored[k].to(param.dtype))
                k += 1
        created = step(scalars, param, grad, *full)
        values = dict(zip(read, full, strict=True))
        values.update(zip(sorted(tape.outputs), created, strict=True))
        index = element_index(param.shape, param.device)
        valid = index < n if padded else None
        out: list[Tensor] = []
        b = 0
        for name in outputs:
            fmt = formats.get(name)
            if fmt is None:
                out.append(values[name])
            elif fmt.kind == BF16:
                out.append(stochastic_bf16(values[name], salts[b], index))
                b += 1
            else:
                out.extend(encode_blocks(values[name], fmt.signed, valid))
        return tuple(out)

    return kernel


def _kernel(
    tape: Tape, layout: Layout, padded: bool, dtype: torch.dtype, device: torch.device
) -> Callable[..., Any]:
    key = (tape.key, layout, padded, dtype, device.type)
    fn = _compiled.get(key)
    if fn is None:
        kernel = build_compact_kernel(tape, layout, padded)
        fn = _compiled[key] = compiled._compile(kernel)  # (one compile policy for both)
    return fn


def _static_block(t: Tensor) -> Tensor:
    """``t`` (``(blocks, 256)``) with its block size static for the compiler (only the number
    of blocks varies): the inner loop is then a fixed 256 elements, vectorized without tails."""
    torch._dynamo.mark_static(t, 1)
    return t


class _Blocks:
    """One parameter's tensors as ``(blocks, 256)``: views when the parameter is contiguous
    and whole blocks, else zero-padded copies (written back by :meth:`write_back`)."""

    def __init__(self, n: int, staged: bool) -> None:
        self.n, self.staged = n, staged
        self.copies: list[tuple[Tensor, Tensor]] = []

    def of(self, t: Tensor, write_back: bool = False) -> Tensor:
        if not self.staged:
            return _static_block(t.view(-1, BLOCK))
        padded = t.new_zeros(num_blocks(self.n) * BLOCK)
        padded[: self.n].view(t.shape).copy_(t)
        if write_back:
            self.copies.append((t, padded))
        return _static_block(padded.view(-1, BLOCK))

    def write_back(self) -> None:
        for t, padded in self.copies:
            t.copy_(padded[: self.n].view(t.shape))


def run_compiled_compact(
    tape: Tape, batch: GroupTensors, dtype: torch.dtype, device: torch.device
) -> None:
    """The compiled step of ``tape`` over ``batch``, one kernel call per parameter, its compact
    states decoded and encoded inside the kernel."""
    assert batch.formats is not None and batch.salts is not None
    scalars = torch.tensor(tape.scalars, dtype=torch.float64, device=device)
    read = tape.inputs[2:]
    for p, g, s, formats, salt in zip(
        batch.params, batch.grads, batch.states, batch.formats, batch.salts, strict=True
    ):
        names = sorted(set(read) | set(_written(tape)))
        layout: Layout = tuple((name, formats.get(name)) for name in names)
        p_real = real_view(p)
        n = p_real.numel()
        padded = n % BLOCK != 0
        blocks = _Blocks(n, padded or not p_real.is_contiguous())
        param = blocks.of(p_real, write_back=True)
        grad = blocks.of(real_view(g).contiguous())
        stored: list[Tensor] = []
        for name in read:
            fmt = formats.get(name)
            if fmt is None:
                stored.append(blocks.of(real_view(s[name]), write_back=True))
            else:
                stored.append(blocks.of(s[name]))
                if fmt.kind != BF16:
                    stored.append(s[name + ABSMAX])
        outputs = _outputs(tape, formats)
        bf16 = [
            state_salt(salt, formats[n].slot)
            for n in outputs
            if n in formats and formats[n].kind == BF16
        ]
        salts = torch.tensor(bf16 or [0], dtype=torch.int32, device=device)
        fn = _kernel(tape, layout, padded, dtype, device)
        out = fn(scalars, salts, torch.tensor(n, device=device), param, grad, *stored)
        blocks.write_back()
        _store(s, outputs, formats, out, n, p)


def _store(
    s: dict[str, Any],
    names: Sequence[str],
    formats: dict[str, Format],
    out: Sequence[Tensor],
    n: int,
    p: Tensor,
) -> None:
    """Keep the kernel's outputs as ``p``'s state entries (the parameter's shape)."""
    shape = real_view(p).shape
    k = 0
    for name in names:
        fmt = formats.get(name)
        value = out[k].reshape(-1)[:n]
        value = (value.clone() if n % BLOCK else value).view(shape)  # (no padding kept)
        if fmt is None or fmt.kind == BF16:
            s[name] = torch.view_as_complex(value) if fmt is None and p.is_complex() else value
            k += 1
        else:
            s[name], s[name + ABSMAX] = value, out[k + 1]
            k += 2
