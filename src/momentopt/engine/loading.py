"""Checks that a state_dict fits an optimizer before anything of it is loaded.

:func:`check_state_dict` looks at all of it before anything changes, and never changes it:

* the structure: a dict whose ``state`` is a dict of dicts and whose ``param_groups`` is a
  list of dicts, each with a list of distinct parameter ids, as many as the optimizer has;
* each group, completed by torch's defaults for the flags it lacks (as loading will): every
  key the constructor sets, numbers where the constructor takes numbers, the constructor's own
  checks (the class's ``check_hyperparameters``, torch's messages) and no NaN;
* each parameter's state: the keys its recipe keeps for its shape; tensors of the parameter's
  shape (or the shape the state declares for it), of a floating-point dtype (or complex, for a
  complex parameter; torch casts them to the parameter's); ``step`` and the other counters
  one finite number (``step`` >= 0).

Errors are ``TypeError`` (a value of the wrong kind) or ``ValueError``, and name the group
index, the parameter and the key.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import torch
from torch import Tensor

from .precision import check_stored, companions

if TYPE_CHECKING:
    from .optimizer import RecipeOptimizer

PREFIX = "cannot load optimizer state_dict: "


def _fail(
    message: str, error: type[Exception] = ValueError, cause: Exception | None = None
) -> NoReturn:
    raise error(PREFIX + message) from cause


def _what(value: Any) -> str:
    """``value`` for an error message: its type, and its value or (a tensor's) shape and dtype."""
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def require_mapping(state_dict: Any) -> None:
    """Raise ``TypeError`` unless ``state_dict`` is a dict (a mapping)."""
    if not isinstance(state_dict, Mapping):
        _fail(
            f"expected a dict with keys 'state' and 'param_groups', got {_what(state_dict)}",
            TypeError,
        )


def check_state_dict(opt: RecipeOptimizer, state_dict: Any) -> None:
    """Raise ``ValueError``/``TypeError`` naming what does not fit; never changes ``opt`` or
    ``state_dict``."""
    saved_state, saved_groups = check_structure(opt, state_dict)
    groups = [loaded_group(opt, saved) for saved in saved_groups]
    for gi, group in enumerate(groups):
        check_group(opt, gi, group)
    for gi, (current, saved) in enumerate(zip(opt.param_groups, saved_groups, strict=True)):
        for position, (index, param) in enumerate(
            zip(saved["params"], current["params"], strict=True)
        ):
            state = saved_state.get(index)
            if state:  # no state, or an empty one: a parameter that has not stepped
                _check_param_state(
                    opt, param, groups[gi], state, _describe(gi, position, saved, index)
                )


# -- structure ---------------------------------------------------------------------------------
def check_structure(
    opt: torch.optim.Optimizer, state_dict: Any
) -> tuple[Mapping[Any, Any], Sequence[Any]]:
    """The ``state`` and ``param_groups`` of ``state_dict`` once its structure and its groups'
    sizes are checked against ``opt`` (the checks every optimizer's loading starts with)."""
    saved_state, saved_groups = _check_structure(state_dict)
    _check_sizes(opt, saved_groups)
    return saved_state, saved_groups


def _check_structure(state_dict: Any) -> tuple[Mapping[Any, Any], Sequence[Any]]:
    """The dict's ``state`` and ``param_groups`` once their types and ids are checked."""
    require_mapping(state_dict)
    if not {"state", "param_groups"} <= set(state_dict):
        _fail("expected a dict with keys 'state' and 'param_groups'")
    state, groups = state_dict["state"], state_dict["param_groups"]
    if not isinstance(state, Mapping):
        _fail(f"'state' must be a dict (parameter id -> state dict), got {_what(state)}", TypeError)
    if not _is_list(groups):
        _fail(f"'param_groups' must be a list of dicts, got {_what(groups)}", TypeError)
    for gi, group in enumerate(groups):
        _check_group_structure(gi, group)
    owners = _param_owners(groups)
    for index, entry in state.items():
        if index not in owners:
            unknown = [k for k in state if k not in owners]
            _fail(f"state for parameter ids {unknown} that belong to no parameter group")
        if not isinstance(entry, Mapping):
            _fail(
                f"state[{index!r}] must be a dict (state key -> value), got {_what(entry)}",
                TypeError,
            )
    return state, groups


def _check_group_structure(gi: int, group: Any) -> None:
    if not isinstance(group, Mapping):
        _fail(f"param_groups[{gi}] must be a dict, got {_what(group)}", TypeError)
    if "params" not in group:
        _fail(f"param_groups[{gi}] has no 'params' (the list of its parameter ids)")
    params = group["params"]
    if not _is_list(params):
        _fail(
            f"param_groups[{gi}]['params'] must be a list of parameter ids, got {_what(params)}",
            TypeError,
        )
    for position, index in enumerate(params):
        if not _hashable(index) or isinstance(index, (Tensor, float)):
            _fail(
                f"param_groups[{gi}]['params'][{position}] must be a parameter id (an int), "
                f"got {_what(index)}",
                TypeError,
            )


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _param_owners(groups: Sequence[Mapping[str, Any]]) -> dict[Any, int]:
    """Parameter id -> index of its group; raises if an id is listed twice."""
    owners: dict[Any, int] = {}
    for gi, group in enumerate(groups):
        for index in group["params"]:
            if index in owners:
                _fail(
                    f"parameter id {index!r} is listed twice (param_groups[{owners[index]}] and "
                    f"param_groups[{gi}])"
                )
            owners[index] = gi
    return owners


def _check_sizes(opt: torch.optim.Optimizer, saved_groups: Sequence[Mapping[str, Any]]) -> None:
    if len(saved_groups) != len(opt.param_groups):
        _fail(
            f"it has {len(saved_groups)} parameter groups but the optimizer has "
            f"{len(opt.param_groups)} (loaded state dict has a different number of parameter groups)"
        )
    for gi, (group, saved) in enumerate(zip(opt.param_groups, saved_groups, strict=True)):
        if len(saved["params"]) != len(group["params"]):
            _fail(
                f"param_groups[{gi}] has {len(saved['params'])} parameters but the optimizer's "
                f"group has {len(group['params'])} (loaded state dict contains a parameter group "
                "that doesn't match the size of optimizer's group)"
            )


def _describe(group_index: int, position: int, saved: Mapping[str, Any], index: Any) -> str:
    names = saved.get("param_names")
    name = f", '{names[position]}'" if _is_list(names) and position < len(names) else ""
    return f"state[{index!r}] (param_groups[{group_index}]['params'][{position}]{name})"


# -- hyperparameters ---------------------------------------------------------------------------
def loaded_group(opt: RecipeOptimizer, saved: Mapping[str, Any]) -> dict[str, Any]:
    """The group as loading makes it: the saved keys (not ``params``) over torch's defaults for
    the flags older state_dicts lack and the optimizer's kept options (and, to be checked, the
    defaults its step reads for keys that loading leaves out); the optimizer's current values
    of its other keys never leak into it."""
    saved = {k: v for k, v in saved.items() if k != "params"}
    return {**opt.read_defaults(), **opt.flag_defaults(), **opt.kept_options(), **saved}


ADDED_ON_LOAD = "differentiable"
"""The key torch's ``Optimizer.__setstate__`` (run by every ``load_state_dict``) puts into
``defaults`` alone (``defaults.setdefault("differentiable", False)``), never into a group: after
one load, the defaults of a class whose constructor has no such argument (Muon, Adafactor,
SparseAdam, LBFGS) hold a key that none of its groups, saved or loaded, holds."""


@functools.cache
def _constructor_takes(cls: type, name: str) -> bool:
    """Whether ``cls(...)`` has an argument ``name`` (or takes ``**kwargs``: a subclass's
    constructor that passes them on)."""
    parameters = inspect.signature(cls).parameters.values()
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in parameters)


def constructor_defaults(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """The group keys ``opt``'s constructor sets, with their defaults: ``opt.defaults`` less
    :data:`ADDED_ON_LOAD` where the constructor does not take it. A loaded group must hold
    these (after the flags torch fills in); torch itself checks none of them."""
    if ADDED_ON_LOAD in opt.defaults and not _constructor_takes(type(opt), ADDED_ON_LOAD):
        return {k: v for k, v in opt.defaults.items() if k != ADDED_ON_LOAD}
    return dict(opt.defaults)


def check_group(opt: RecipeOptimizer, gi: int, group: Mapping[str, Any]) -> None:
    """Raise unless ``group`` (``param_groups[gi]`` as loaded) passes the constructor's checks:
    every key it sets, of the kind of its default, in range (the class's
    ``check_hyperparameters``), and no NaN. Keys the constructor does not set (``initial_lr``
    and the like from LR schedulers) are not looked at."""
    keys = constructor_defaults(opt)
    missing = [key for key in keys if key not in group]
    if missing:
        _fail(
            f"param_groups[{gi}] lacks {missing} ({type(opt).__name__}'s groups have "
            f"{sorted(keys)})"
        )
    for key, default in keys.items():
        _check_kind(gi, key, group[key], default)
    _run_constructor_checks(opt, gi, group)
    for key, default in keys.items():
        if _kind(key, default) in ("number", "numbers") and _has_nan(group[key]):
            _fail(f"param_groups[{gi}]: {key!r} must not be NaN, got {group[key]}")


FLAGS_DEFAULT_NONE = ("foreach", "fused")
"""torch's implementation flags whose default is None; any other key whose default is None
(Muon's ``adjust_lr_fn``) holds what the constructor's own checks allow."""


def _kind(key: str, default: Any) -> str | None:
    """What a group key holds, judged from the constructor's default (None: anything)."""
    if isinstance(default, bool) or (default is None and key in FLAGS_DEFAULT_NONE):
        return "flag"
    if _is_list(default):
        return "numbers"
    if isinstance(default, (numbers.Real, Tensor)):
        return "number"
    return None


def _is_number(value: Any) -> bool:
    """A real number, or a 1-element real tensor (torch takes tensor ``lr``, ``betas``)."""
    if isinstance(value, Tensor):
        return value.numel() == 1 and not (value.is_complex() or value.dtype == torch.bool)
    return isinstance(value, numbers.Real)


def _check_kind(gi: int, key: str, value: Any, default: Any) -> None:
    kind, where = _kind(key, default), f"param_groups[{gi}]: {key!r}"
    if kind == "flag" and not (value is None or isinstance(value, numbers.Integral)):
        _fail(f"{where} must be True, False or None, got {_what(value)}", TypeError)
    if kind == "number" and not _is_number(value):
        _fail(f"{where} must be a number or a 1-element tensor, got {_what(value)}", TypeError)
    if kind == "numbers" and not (  # None where the constructor allows it (Adafactor's eps)
        _is_list(value)
        and len(value) == len(default)
        and all(_is_number(v) or v is None for v in value)
    ):
        _fail(f"{where} must be {len(default)} numbers, got {_what(value)}", TypeError)


def _run_constructor_checks(opt: RecipeOptimizer, gi: int, group: Mapping[str, Any]) -> None:
    """The class's ``check_hyperparameters`` (if it has one) on ``group``; its error again,
    prefixed by the group index and followed by its notes (the allowed range) unless the
    message says them already."""
    check = getattr(type(opt), "check_hyperparameters", None)
    if check is None:
        return
    try:
        check(group)
    except (TypeError, ValueError, RuntimeError) as err:
        notes = "; ".join(n for n in getattr(err, "__notes__", ()) if n not in str(err))
        detail = f"{err} ({notes})" if notes else str(err)
        _fail(
            f"param_groups[{gi}]: {detail}",
            TypeError if isinstance(err, TypeError) else ValueError,
            err,
        )


def _has_nan(value: Any) -> bool:
    if _is_list(value):
        return any(_has_nan(v) for v in value)
    if isinstance(value, Tensor):
        return bool(value.isnan().any())
    return isinstance(value, numbers.Real) and math.isnan(value)


# -- state -------------------------------------------------------------------------------------
def expected_state(
    opt: RecipeOptimizer, param: Tensor, group: Mapping[str, Any]
) -> tuple[set[str], set[str]]:
    """The (required, optional) state keys of ``param`` once it has stepped under ``group``."""
    return opt.recipe.state.expected(group, param.shape)


def _check_param_state(
    opt: RecipeOptimizer,
    param: Tensor,
    group: Mapping[str, Any],
    state: Mapping[str, Any],
    where: str,
) -> None:
    required, optional = expected_state(opt, param, group)
    missing = sorted(required - set(state))
    if missing:
        _fail(
            f"{where}: state key(s) {missing} are missing (expected {sorted(required | optional)})"
        )
    absmax = companions(state)  # int8 state's block maxima (state_precision)
    extra = sorted(set(state) - required - optional - absmax)
    if extra:
        _fail(f"{where}: unknown state key(s) {extra} (expected {sorted(required | optional)})")
    scalars = set(opt.recipe.state.scalar_names)
    for key, value in state.items():
        if key in absmax:
            continue
        if key not in scalars and _is_compact(f"{where}: state {key!r}", state, key, param):
            _check_buffer(f"{where}: state {key!r}", value, param, tuple(param.shape), compact=True)
            continue
        if key in scalars:
            _check_counter(f"{where}: state {key!r}", value)
            if key == "step" and not float(value) >= 0:
                _fail(f"{where}: state 'step' must be >= 0, got {float(value)}")
        else:
            shape = opt.recipe.state.shape_of(key, param.shape, group)
            _check_buffer(f"{where}: state {key!r}", value, param, shape)


def _is_compact(where: str, state: Mapping[str, Any], key: str, param: Tensor) -> bool:
    """Whether ``state[key]`` is compact storage (:func:`~.precision.check_stored`)."""
    try:
        return check_stored(where, state, key, param)
    except (TypeError, ValueError) as err:
        _fail(str(err), type(err), err)


def _check_counter(where: str, value: Any) -> None:
    """One finite number: a floating-point tensor of one element, or a Python number (which
    ``__setstate__`` turns into a tensor, as torch does for its older checkpoints)."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            _fail(f"{where} must hold one number, got shape {tuple(value.shape)}")
        if not value.is_floating_point():
            _fail(f"{where} must be a floating-point tensor, got dtype {value.dtype}", TypeError)
    elif not (isinstance(value, numbers.Real) and not isinstance(value, bool)):
        _fail(f"{where} must be a number or a 1-element tensor, got {_what(value)}", TypeError)
    if not math.isfinite(float(value)):
        _fail(f"{where} must be finite, got {float(value)}")


def _check_buffer(
    where: str, value: Any, param: Tensor, shape: tuple[int, ...], compact: bool = False
) -> None:
    """A tensor of ``shape`` (the state's shape for ``param``: usually ``param``'s own);
    floating-point (complex too, for a complex ``param``) where ``param`` is, since torch casts
    it to ``param``'s dtype — or, ``compact``, 8-bit codes (``state_precision``)."""
    if not isinstance(value, Tensor):
        _fail(f"{where} must be a tensor, got {type(value).__name__}", TypeError)
    if tuple(value.shape) != shape:
        kept = "" if shape == tuple(param.shape) else f" (its state has shape {shape})"
        _fail(
            f"{where} has shape {tuple(value.shape)} but the parameter has shape "
            f"{tuple(param.shape)}{kept}"
        )
    if (param.is_floating_point() or param.is_complex()) and not compact:
        allowed = value.is_floating_point() or (value.is_complex() and param.is_complex())
        if not allowed:
            kinds = "floating-point or complex" if param.is_complex() else "floating-point"
            _fail(f"{where} has dtype {value.dtype}; a {param.dtype} parameter's state is {kinds}")
