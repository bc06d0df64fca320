"""Checks that a state_dict fits an optimizer before anything of it is loaded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from .optimizer import RecipeOptimizer


def _fail(message: str) -> None:
    raise ValueError(f"cannot load optimizer state_dict: {message}")


def _describe(group_index: int, position: int, saved: Mapping[str, Any], index: Any) -> str:
    names = saved.get("param_names")
    name = f" '{names[position]}'" if names and position < len(names) else ""
    return f"parameter {index}{name} (group {group_index}, position {position})"


def expected_state(
    opt: RecipeOptimizer, param: Tensor, group: Mapping[str, Any]
) -> tuple[set[str], set[str]]:
    """The (required, optional) state keys of ``param`` once it has stepped under ``group``."""
    probe: dict[str, Any] = {}
    meta = torch.empty(param.shape, dtype=param.dtype, device="meta")
    step = torch.zeros((), device="meta") if opt.recipe.counts_steps else None
    opt.recipe.init_state(meta, group, probe, opt.defaults, step)
    return set(probe), set(opt.recipe.lazy_state(group))


def check_state_dict(opt: RecipeOptimizer, state_dict: Any) -> None:
    """Raise ``ValueError`` naming what does not fit; never changes ``opt`` or ``state_dict``."""
    if not isinstance(state_dict, Mapping) or not {"state", "param_groups"} <= set(state_dict):
        _fail("expected a mapping with keys 'state' and 'param_groups'")
    saved_groups = state_dict["param_groups"]
    if len(saved_groups) != len(opt.param_groups):
        _fail(
            f"it has {len(saved_groups)} parameter groups but the optimizer has "
            f"{len(opt.param_groups)} (loaded state dict has a different number of parameter groups)"
        )
    saved_state = state_dict["state"]
    known: set[Any] = set()
    for gi, (group, saved) in enumerate(zip(opt.param_groups, saved_groups, strict=True)):
        if len(saved["params"]) != len(group["params"]):
            _fail(
                f"group {gi} has {len(saved['params'])} parameters but the optimizer's group "
                f"has {len(group['params'])} (loaded state dict contains a parameter group "
                "that doesn't match the size of optimizer's group)"
            )
        # The loaded group is the saved one, completed by torch's defaults for flags it lacks
        # (as __setstate__ will do); the optimizer's current values never leak into it.
        merged = {**group, **opt.flag_defaults(), **{k: v for k, v in saved.items() if k != "params"}}
        for position, (index, param) in enumerate(zip(saved["params"], group["params"], strict=True)):
            known.add(index)
            state = saved_state.get(index)
            if not state:
                continue
            where = _describe(gi, position, saved, index)
            _check_param_state(opt, param, merged, state, where)
    unknown = [k for k in saved_state if k not in known]
    if unknown:
        _fail(f"state for parameter ids {unknown} that belong to no parameter group")


def _check_param_state(
    opt: RecipeOptimizer, param: Tensor, group: Mapping[str, Any], state: Mapping[str, Any], where: str
) -> None:
    required, optional = expected_state(opt, param, group)
    missing = sorted(required - set(state))
    if missing:
        _fail(f"{where}: state key(s) {missing} are missing (expected {sorted(required | optional)})")
    extra = sorted(set(state) - required - optional)
    if extra:
        _fail(f"{where}: unknown state key(s) {extra} (expected {sorted(required | optional)})")
    scalars = set(opt.recipe.scalar_state)
    for key, value in state.items():
        if key in scalars:
            if isinstance(value, Tensor) and value.numel() != 1:
                _fail(f"{where}: state '{key}' must hold one number, got shape {tuple(value.shape)}")
            continue
        if not isinstance(value, Tensor):
            _fail(f"{where}: state '{key}' must be a tensor, got {type(value).__name__}")
        if value.shape != param.shape:
            _fail(
                f"{where}: state '{key}' has shape {tuple(value.shape)} but the parameter has "
                f"shape {tuple(param.shape)}"
            )
