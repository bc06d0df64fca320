"""``state_precision``: how each state tensor is *stored* between steps — the parameter's
dtype (torch's behaviour), bfloat16 with stochastic rounding, or 8-bit blockwise codes
(:mod:`.compact`). The rules never see it: every path decodes the state, runs the recipe in
the parameter's dtype and encodes the result (the compiled path in one pass).

The choice is the group key ``state_precision``: ``"bf16"``, ``"int8"`` or a dict from state
key to ``None``/``"bf16"``/``"int8"``. A string applies to every *moment*: a state tensor of
the parameter's shape that does not start as a copy of the parameter (an iterate such as
schedule-free's ``z`` keeps full precision unless named in a dict; ASGD's ``ax`` starts at
zero, as torch's, and is stored like a moment); scalars
(``step``) and factored or reshaped states always keep theirs. A parameter of fewer than
:data:`MIN_NUMEL` elements (its whole size, not a shard's), a complex one, and bfloat16 for a
bfloat16/float16 parameter keep full precision too.

Stored layout (``optimizer.state[p]``, as ``state_dict()`` holds it), under torch's keys:

* ``"int8"``: ``state[k]`` = codes, the parameter's shape, ``torch.int8`` for a signed state
  and ``torch.uint8`` for a non-negative one (which one the rule's :class:`StateSpec` declares,
  ``signed``); ``state[k + "_absmax"]`` = float32, one per block of 256 elements;
* ``"bf16"``: ``state[k]`` = the values in ``torch.bfloat16``; the group keeps the rounding's
  ``rounding_seed`` (``torch.initial_seed()`` when made) and ``rounding_step`` (advanced once per
  step), so a resumed run rounds as the uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..rules.contract import Start, StateSpec
from .compact import (
    decode_int8,
    element_index,
    encode_int8,
    num_blocks,
    rounding_salt,
    stochastic_bf16,
)
from .state import StateLayout

BF16 = "bf16"
INT8 = "int8"
FORMATS = (BF16, INT8)
MIN_NUMEL = 4096
"""Parameters with fewer elements keep full-precision state (its size is negligible)."""
ABSMAX = "_absmax"
"""Suffix of the key holding an int8 state's per-block absmax."""
GROUP_KEYS = ("state_precision", "rounding_seed", "rounding_step")
"""Group keys this option adds (none when it is off)."""


@dataclass(frozen=True)
class Format:
    """How one state tensor is stored: ``kind`` :data:`INT8` or :data:`BF16`, ``signed`` from
    its declaration, ``slot`` its position in the recipe's state (salts its rounding)."""

    kind: str
    signed: bool
    slot: int


def _storable(spec: StateSpec) -> bool:
    """Whether the state is a tensor of its parameter's own shape (the only kind stored
    compact: scalars, factored and sampled states are small)."""
    return not spec.scalar and spec.shape is None and spec.every is None


def check_state_precision(value: Any, layout: StateLayout, where: str = "state_precision") -> None:
    """``ValueError`` naming the value or key unless ``value`` is None, a format, or a dict
    from state keys of this recipe's moments to None or a format."""
    allowed = "None, 'bf16', 'int8', or a dict from state key to one of these"
    if value is None or (isinstance(value, str) and value in FORMATS):
        return
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be {allowed}; got {value!r}")
    names = [s.name for s in layout.specs if _storable(s)]
    for key, kind in value.items():
        if key not in names:
            others = [s.name for s in layout.specs if s.name == key]
            why = "is a scalar or not shaped like the parameter" if others else "is not a state"
            raise ValueError(
                f"{where}: {key!r} {why} of this optimizer; its state tensors are {names}"
            )
        if not (kind is None or (isinstance(kind, str) and kind in FORMATS)):
            raise ValueError(f"{where}[{key!r}] must be None, 'bf16' or 'int8'; got {kind!r}")


def uses_bf16(value: Any) -> bool:
    """Whether the setting stores some state in bfloat16 (and so rounds stochastically)."""
    if isinstance(value, Mapping):
        return BF16 in value.values()
    return value == BF16


def formats_for(layout: StateLayout, group: Mapping[str, Any], param: Tensor) -> dict[str, Format]:
    """The compact formats of ``param``'s states under ``group`` (empty: all full precision)."""
    setting = group.get("state_precision")
    if setting is None or param.is_complex() or not param.is_floating_point():
        return {}
    if param.numel() < MIN_NUMEL:  # (a DTensor's numel is the whole parameter's)
        return {}
    formats: dict[str, Format] = {}
    for slot, spec in enumerate(layout.kept(group, param.shape)):
        if not _storable(spec):
            continue
        if isinstance(setting, Mapping):
            kind = setting.get(spec.name)
        else:
            kind = None if spec.start is Start.PARAM else setting
        if kind is None or (kind == BF16 and param.dtype in (torch.bfloat16, torch.float16)):
            continue
        formats[spec.name] = Format(kind, spec.signed, slot)
    return formats


def is_stored(value: Any, fmt: Format) -> bool:
    """Whether a state entry already holds ``fmt``'s storage."""
    if not isinstance(value, Tensor):
        return False
    if fmt.kind == INT8:
        return value.dtype == (torch.int8 if fmt.signed else torch.uint8)
    return value.dtype == torch.bfloat16


def decode(state: Mapping[str, Any], name: str, fmt: Format, dtype: torch.dtype) -> Tensor:
    """The full-precision value (``dtype``) of ``state[name]`` stored as ``fmt``."""
    value = state[name]
    if fmt.kind == INT8:
        return decode_int8(value, state[name + ABSMAX], dtype)
    return value.to(dtype)


def encode_into(
    state: dict[str, Any], name: str, value: Tensor, fmt: Format, salt: int | None
) -> None:
    """Store ``value`` into ``state[name]`` as ``fmt``; bf16 rounds stochastically with
    ``salt`` (None: to nearest, as when loading a full-precision checkpoint)."""
    if fmt.kind == INT8:
        state[name], state[name + ABSMAX] = encode_int8(value, fmt.signed)
        return
    if salt is None:
        state[name] = value.detach().to(torch.bfloat16, memory_format=torch.contiguous_format)
        return
    flat = value.detach().reshape(-1)
    state[name] = stochastic_bf16(flat, salt, element_index(flat.shape, flat.device))
    state[name] = state[name].view(value.shape)


def storage_of(
    layout: StateLayout, group: Mapping[str, Any], params: Sequence[Tensor]
) -> tuple[list[dict[str, Format]] | None, list[int] | None]:
    """Per parameter of ``group``, its compact formats and the salt of its stochastic
    rounding at the group's current step (each state adds its slot); (None, None) when the
    group stores everything in full precision."""
    if group.get("state_precision") is None:
        return None, None
    formats = [formats_for(layout, group, p) for p in params]
    if "rounding_seed" not in group:
        return formats, [0] * len(params)
    seed, step = int(group["rounding_seed"]), int(group["rounding_step"])
    where = {id(p): i for i, p in enumerate(group["params"])}
    return formats, [rounding_salt(seed, step, where[id(p)] << 8) for p in params]


def store(state: dict[str, Any], formats: Mapping[str, Format]) -> None:
    """Turn the full-precision entries of ``state`` that ``formats`` names into their compact
    storage (bf16: rounded to nearest)."""
    for name, fmt in formats.items():
        value = state.get(name)
        if isinstance(value, Tensor) and not is_stored(value, fmt):
            encode_into(state, name, value, fmt, None)


def _entry_to_full(state: dict[str, Any], name: str, param: Tensor) -> None:
    """Decode ``state[name]`` into ``param``'s dtype if it is compact, dropping its absmax."""
    value = state[name]
    if value.dtype in (torch.int8, torch.uint8) and name + ABSMAX in state:
        state[name] = decode(state, name, Format(INT8, value.dtype == torch.int8, 0), param.dtype)
    elif value.dtype == torch.bfloat16 and param.dtype != torch.bfloat16:
        state[name] = value.to(param.dtype)
    state.pop(name + ABSMAX, None)


def _storable_entries(state: Mapping[str, Any], layout: StateLayout) -> list[str]:
    return [s.name for s in layout.specs if _storable(s) and isinstance(state.get(s.name), Tensor)]


def to_full(state: dict[str, Any], layout: StateLayout, param: Tensor) -> None:
    """Decode every compact entry of ``state`` into ``param``'s dtype, dropping companions."""
    for name in _storable_entries(state, layout):
        _entry_to_full(state, name, param)


def convert(
    state: dict[str, Any], layout: StateLayout, group: Mapping[str, Any], param: Tensor
) -> None:
    """Make ``state`` hold the storage ``group`` asks for (after a load, or a change of
    setting): an entry already in its format stays as it is; the others are decoded and, if
    ``group`` wants them compact, encoded."""
    formats = formats_for(layout, group, param)
    for name in _storable_entries(state, layout):
        fmt = formats.get(name)
        kept = fmt is not None and is_stored(state[name], fmt)
        if not (kept and (fmt.kind != INT8 or name + ABSMAX in state)):  # type: ignore[union-attr]
            _entry_to_full(state, name, param)
    store(state, formats)


def check_stored(where: str, state: Mapping[str, Any], key: str, param: Tensor) -> bool:
    """For loading: whether ``state[key]`` is 8-bit codes of a ``param``-shaped state (with
    their absmax; raises ``ValueError`` if that is missing or of the wrong size). bfloat16
    state is a floating-point state like any other (torch casts it to the parameter's dtype;
    an optimizer storing bf16 rounds it back)."""
    value = state[key]
    if not isinstance(value, Tensor):
        return False
    if value.dtype in (torch.int8, torch.uint8):
        absmax = state.get(key + ABSMAX)
        blocks = num_blocks(value.numel())
        if not isinstance(absmax, Tensor) or tuple(absmax.shape) != (blocks,):
            raise ValueError(
                f"{where}: 8-bit codes need {key + ABSMAX!r}, a tensor of {blocks} block maxima "
                f"(one per 256 elements); got {absmax!r:.80}"
            )
        if not absmax.is_floating_point():
            raise TypeError(f"{where}: {key + ABSMAX!r} must be floating point, got {absmax.dtype}")
        return True
    return False


def is_compact_storage(key: str, value: Any, state: Mapping[str, Any]) -> bool:
    """Whether the state entry ``key`` holds 8-bit codes with their absmax, or is that absmax
    (bfloat16 state survives torch's cast to the parameter's dtype: it is exact, and an
    optimizer storing bf16 rounds it back to the same values)."""
    if not isinstance(value, Tensor):
        return False
    if key.endswith(ABSMAX):
        return key[: -len(ABSMAX)] in state
    return value.dtype in (torch.int8, torch.uint8) and key + ABSMAX in state


def companions(state: Mapping[str, Any]) -> set[str]:
    """The companion keys (absmax) in ``state`` whose codes are there too."""
    return {k for k in state if k.endswith(ABSMAX) and k[: -len(ABSMAX)] in state}


def full_precision_state_dict(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """``optimizer.state_dict()`` with every compact state decoded into its parameter's dtype
    and the option's group keys removed: what the matching ``torch.optim`` class (or momentopt
    without ``state_precision``) loads."""
    layout: StateLayout = type(optimizer).recipe.state  # type: ignore[attr-defined]
    saved = optimizer.state_dict()
    params = [p for g in optimizer.param_groups for p in g["params"]]
    state: dict[Any, Any] = {}
    for index, entry in saved["state"].items():
        entry = dict(entry)
        to_full(entry, layout, params[index])
        state[index] = entry
    groups = [{k: v for k, v in g.items() if k not in GROUP_KEYS} for g in saved["param_groups"]]
    return {"state": state, "param_groups": groups}


def stored_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of tensor state the optimizer keeps (codes, absmax, scalars, everything)."""
    return sum(
        v.numel() * v.element_size()
        for s in optimizer.state.values()
        for v in s.values()
        if isinstance(v, Tensor)
    )


def advance_rounding(group: dict[str, Any]) -> None:
    """One more step of the group's stochastic rounding (a new salt for every state)."""
    if "rounding_step" in group:
        group["rounding_step"] = int(group["rounding_step"]) + 1


def initial_group_keys(value: Any) -> dict[str, Any]:
    """The group keys of ``state_precision=value`` (none for None)."""
    if value is None:
        return {}
    keys: dict[str, Any] = {"state_precision": value}
    if uses_bf16(value):
        keys.update(rounding_seed=torch.initial_seed() & 0x7FFFFFFF, rounding_step=0)
    return keys
