"""Compact state on the eager paths (per-tensor, multi-tensor): decode before the recipe runs,
encode after. The compiled path does the same inside its kernel (:mod:`.compiled_compact`).

Decoding allocates one full-precision tensor per compact state of the tensors being run;
the per-tensor path therefore runs one parameter at a time (at most one parameter's states
decoded at once), the multi-tensor path one bucket at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from torch import Tensor

from .batch import GroupTensors
from .compact import state_salt
from .precision import ABSMAX, decode, encode_into


def decoded(batch: GroupTensors) -> GroupTensors:
    """``batch`` with working state dicts: every compact state decoded into the parameter's
    (real) dtype, the other entries shared (scalar states are the same tensors)."""
    assert batch.formats is not None
    states = []
    for p, s, formats in zip(batch.params, batch.states, batch.formats, strict=True):
        work = {k: v for k, v in s.items() if not k.endswith(ABSMAX)} if formats else s
        for name, fmt in formats.items():
            if name in s:
                work[name] = decode(s, name, fmt, p.dtype)
        states.append(work)
    return replace(batch, states=states, formats=None, salts=None)


def encode_back(work: GroupTensors, batch: GroupTensors) -> None:
    """Store what the step left in ``work``'s states into ``batch``'s: compact states encoded
    (bf16 with the tensor's rounding salt), the others as they are (new entries included)."""
    assert batch.formats is not None and batch.salts is not None
    for w, s, formats, salt in zip(
        work.states, batch.states, batch.formats, batch.salts, strict=True
    ):
        if not formats:
            continue
        for name, value in w.items():
            fmt = formats.get(name)
            if fmt is None:
                s[name] = value
            elif isinstance(value, Tensor):
                encode_into(s, name, value, fmt, state_salt(salt, fmt.slot))


def run_decoded(
    batch: GroupTensors, run: Callable[[GroupTensors], Any], one_at_a_time: bool
) -> None:
    """``run`` the step of ``batch`` on decoded states, then encode them; tensor by tensor if
    ``one_at_a_time`` (bounding the decoded memory to one parameter's states)."""
    parts = [batch.subset([i]) for i in range(len(batch.params))] if one_at_a_time else [batch]
    for part in parts:
        if not part.compact:
            run(part)
            continue
        work = decoded(part)
        run(work)
        encode_back(work, part)
