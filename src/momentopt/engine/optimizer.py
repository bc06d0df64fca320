"""The engine: one ``torch.optim.Optimizer`` subclass that runs any recipe.

Everything torch.optim users rely on — param groups, ``state_dict``/``load_state_dict``,
hooks, ``zero_grad``, closures, pickling — comes from ``torch.optim.Optimizer``; this class
adds the step (state creation, step counting, executor choice) and a checked, non-mutating
``load_state_dict``.
"""

from __future__ import annotations

import copy
import functools
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any, ClassVar

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.optim import Optimizer

from ..rules.contract import Scalars
from .batch import GroupTensors
from .compact_step import decoded, encode_back
from .executors import execute, multi_tensor, per_tensor
from .loading import check_state_dict, require_mapping
from .packing import advance_step_counts
from .plan import describe_plan, plan_step
from .precision import (
    GROUP_KEYS,
    advance_rounding,
    check_state_precision,
    convert,
    formats_for,
    initial_group_keys,
    is_compact_storage,
    storage_of,
    store,
    uses_bf16,
)
from .recipe import Recipe
from .selection import check_fused_param
from .state import scalar_dtype
from .torch_kernels import TorchKernel
from .views import Observer, TensorsView


def _squeezed(group: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """``group``, or a copy whose ``keys`` hold 1-element tensors as 0-d ones (tuples
    element-wise), as torch's step reads them."""

    def squeeze(v: Any) -> Any:
        if isinstance(v, tuple):
            return tuple(squeeze(x) for x in v)
        return v.squeeze() if isinstance(v, Tensor) and v.dim() != 0 else v

    def shaped(v: Any) -> bool:
        values = v if isinstance(v, tuple) else (v,)
        return any(isinstance(x, Tensor) and x.dim() != 0 for x in values)

    if not any(shaped(group.get(k)) for k in keys):
        return group
    return {**group, **{k: squeeze(group[k]) for k in keys if k in group}}


def _with(group: dict[str, Any], keys: tuple[str, ...], values: Mapping[str, Any]) -> Any:
    """The group as the rules see it: :func:`_squeezed`, with the group schedules' ``values``
    for this step."""
    group = _squeezed(group, keys)
    return {**group, **values} if values else group


def _repeat_layers(params: list[Tensor]) -> list[list[int]]:
    """Positions of ``params`` in passes that each hold a parameter once: the first
    occurrences, then the second ones, and so on (order kept within a pass)."""
    seen: dict[Tensor, int] = {}
    layers: list[list[int]] = []
    for i, p in enumerate(params):
        n = seen.get(p, 0)
        seen[p] = n + 1
        if n == len(layers):
            layers.append([])
        layers[n].append(i)
    return layers


class RecipeOptimizer(Optimizer):
    """An optimizer defined by a :class:`Recipe`; subclasses set ``recipe`` and validate.

    Which path runs each tensor follows torch's ``foreach``/``fused``/``differentiable``
    flags and then speed (:mod:`.plan`); :meth:`explain` shows the plan.
    """

    recipe: ClassVar[Recipe]
    torch_kernels: ClassVar[tuple[TorchKernel, ...]] = ()
    """torch's fused kernels that compute this recipe exactly (tried in order)."""

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        check_state_precision(defaults.get("state_precision"), self.recipe.state)
        if defaults.get("state_precision") is not None and defaults.get("differentiable"):
            raise ValueError(
                "state_precision needs differentiable=False: compact state cannot carry "
                "autograd's history"
            )
        super().__init__(params, defaults)
        if defaults.get("fused"):
            # torch.amp.GradScaler then hands over grad_scale/found_inf instead of unscaling
            self._step_supports_amp_scaling = True
        if self.recipe.eager_state:
            for group in self.param_groups:
                for p in group["params"]:
                    self.state[p].update(self._new_state(p, group))

    # -- step -------------------------------------------------------------------------------
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Perform one optimization step; returns ``closure()``'s loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # the flag as given: a non-bool raises TypeError here, as in torch
        with torch.set_grad_enabled(self.defaults.get("differentiable", False)):
            shared = self._reduce() if self.recipe.reduced is not None else {}
            if shared is not None:  # (None: the reduced scalar's "no step this time")
                for index, group in enumerate(self.param_groups):
                    self._step_group(index, group, shared)
        return loss

    def _reduce(self) -> dict[str, Any] | None:
        """The recipe's reduced scalar (:class:`~momentopt.rules.base.ReducedScalar`) for
        this step: its shared values, every parameter's share of its sums (each group, added
        in parameter order; then across processes where the parameters are shards), the new
        scalar. Returns the values the step's rules read, or None for no step (after the rule's
        ``skipped`` over every parameter). The state of a parameter's first step is made
        here."""
        rule, groups = self.recipe.reduced, self.param_groups
        shared = rule.begin(groups)  # type: ignore[union-attr]
        totals = [0.0] * rule.sums  # type: ignore[union-attr]
        for share in self._over_reduced(rule.contribute, shared):  # type: ignore[union-attr]
            for j, value in enumerate(share):
                totals[j] += value
        if rule.sharded(groups) and dist.is_available() and dist.is_initialized():  # type: ignore[union-attr]
            device = next(p.device for group in groups for p in group["params"])
            summed = torch.tensor(totals, dtype=torch.float64, device=device)
            dist.all_reduce(summed)
            totals = summed.tolist()
        result = rule.finish(groups, totals, shared)  # type: ignore[union-attr]
        if result is None:  # no step: what the parameters' state does all the same
            for _ in self._over_reduced(rule.skipped, shared):  # type: ignore[union-attr]
                pass
        return result

    def _over_reduced(
        self, fn: Callable[[TensorsView], Any], shared: Mapping[str, Any]
    ) -> Iterator[list[Any]]:
        """``fn(view)`` over every parameter with a gradient, one view per group, device and
        dtype (the state of a parameter's first step made here); yields each parameter's share
        of what ``fn`` returns (numbers, or per tensor of the view), in parameter order."""
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            self.check_step_group(group)
            states, created = self._states(group, params)
            for i in created:
                if states[i]:
                    self.state[params[i]] = states[i]
            kinds: dict[tuple[Any, Any], list[int]] = {}
            for i, p in enumerate(params):
                kinds.setdefault((p.device, p.dtype), []).append(i)
            shares: list[list[Any]] = [[] for _ in params]
            stored = self._batch_of_states(group, params, states)
            work = decoded(stored) if stored.compact else stored  # the rule reads full values
            states = work.states
            for members in kinds.values():
                view = TensorsView(
                    [params[i] for i in members],
                    [params[i].grad for i in members],  # type: ignore[misc]
                    [states[i] for i in members],
                    as_list=True,
                    t=0.0,
                    group={**group, **shared},
                )
                parts = fn(view) or ()
                for k, i in enumerate(members):
                    shares[i] = [x.values[k] if isinstance(x, Scalars) else x for x in parts]
            if stored.compact:
                encode_back(work, stored)
            yield from shares

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """torch's ``add_param_group``; a group's own ``state_precision`` is checked first,
        and compact state is refused for tensor subclasses (DTensor: its blocks would follow
        the sharding)."""
        if isinstance(param_group, Mapping) and "state_precision" in param_group:
            setting = param_group["state_precision"]
            check_state_precision(setting, self.recipe.state)
            if uses_bf16(setting) and "rounding_seed" not in param_group:
                param_group = {**initial_group_keys(setting), **param_group}
        setting = (
            param_group.get("state_precision", self.defaults.get("state_precision"))
            if isinstance(param_group, Mapping)
            else None
        )
        if setting is not None and not isinstance(
            param_group["params"], set
        ):  # (torch refuses a set)
            params = param_group["params"]
            params = [params] if isinstance(params, Tensor) else list(params)
            param_group = {**param_group, "params": params}
            subclass = next((p for p in params if type(p) not in (Tensor, nn.Parameter)), None)
            if subclass is not None:
                raise NotImplementedError(
                    f"state_precision={setting!r} does not support parameters of type "
                    f"{type(subclass).__name__} yet (DTensor/FSDP2 among them); use "
                    "state_precision=None for them"
                )
        super().add_param_group(param_group)

    def _step_group(self, index: int, group: dict[str, Any], shared: Mapping[str, Any]) -> None:
        values = {**shared, **self.recipe.advance_group(group)}  # once per step of the group
        advance_rounding(group)
        # torch's refusals at the start of a group's step come before it gathers the gradients:
        # a group whose parameters have none is refused too (betas of another length)
        self.check_step_group(group)
        params: list[Tensor] = []
        grads: list[Tensor] = []
        for p in group["params"]:
            if p.grad is not None:
                params.append(p)
                grads.append(p.grad)
        if not params:
            return
        if self._has_duplicates(group):
            self._step_repeated(index, group, params, grads, values)
            return
        self._step_params(index, group, params, grads, values)

    def _step_repeated(
        self,
        index: int,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        values: Mapping[str, Any],
    ) -> None:
        """A group that lists a parameter more than once, stepped as torch's loop steps it:
        every occurrence in order, one pass per repeat. torch gathers the state before its
        loop, so a state it creates during the step (a momentum buffer that starts as the first gradient) is created afresh by each
        occurrence, and the last one is kept."""
        lazy = self.recipe.state.created_in_step(group)
        missing = {p: [k for k in lazy if k not in self.state.get(p, {})] for p in params}
        for n, layer in enumerate(_repeat_layers(params)):
            for i in layer if n else ():
                for key in missing[params[i]]:
                    self.state[params[i]].pop(key, None)
            self._step_params(
                index, group, [params[i] for i in layer], [grads[i] for i in layer], values
            )

    def check_fused_params(self, group: Mapping[str, Any], params: list[Tensor]) -> None:
        """torch's refusal under ``fused=True`` of parameters that are not floating point or
        on a device without fused kernels (RuntimeError)."""
        for p in params:
            check_fused_param(p)

    squeezed_hyperparameters: ClassVar[tuple[str, ...]] = ("lr",)
    """Group keys whose 1-element tensors torch's step reads as 0-d ones (``_to_scalar``)."""

    def step_hyperparameters(
        self, group: Mapping[str, Any], params: list[Tensor]
    ) -> Mapping[str, Any]:
        """The hyperparameters the rules see for this step of ``params`` (those with a
        gradient): ``group``, or a copy with a value torch derives from the parameters."""
        return group

    foreach_differentiable: ClassVar[bool] = False
    """Whether torch's multi-tensor implementation runs with ``differentiable=True``
    (some torch.optim classes' do; the others refuse: "_foreach ops don't support autograd")."""

    def check_step_group(self, group: Mapping[str, Any]) -> None:
        """torch's refusals at the start of ``step()`` (before any state is made) of group
        settings its constructor let through; default: none."""

    def check_step_update(self, group: Mapping[str, Any]) -> None:
        """torch's refusals just before the update (after its capturable check) of group
        settings its constructor let through."""
        if group.get("differentiable") and group.get("foreach") and not self.foreach_differentiable:
            raise AssertionError("_foreach ops don't support autograd")

    def _has_duplicates(self, group: Mapping[str, Any]) -> bool:
        """Whether a parameter is listed twice in ``group`` (torch warns, and steps it twice);
        computed once per list of parameters."""
        listed = group["params"]
        cache = self._executor_cache(group)
        known = cache.get("duplicates")
        if known is None or known[0] is not listed or known[1] != len(listed):
            known = cache["duplicates"] = (listed, len(listed), len(set(listed)) != len(listed))
        return known[2]

    def _fused(self, group: Mapping[str, Any]) -> bool:
        """Whether ``group`` asks for torch's fused implementation (a "fused" key in a loaded
        group of an algorithm without one means nothing, as in torch)."""
        return (
            bool(group.get("fused"))
            and "fused" in self.defaults
            and not group.get("differentiable")
        )

    def _step_params(
        self,
        index: int,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        values: Mapping[str, Any],
    ) -> None:
        """One step of ``params`` (each listed once) with their ``grads``; ``values``: the
        group schedules' values for this step (:meth:`Recipe.advance_group`)."""
        if self.dense_grads_message is not None and not all(g.is_sparse for g in grads):
            raise RuntimeError(self.dense_grads_message)
        fused = self._fused(group)
        # refuse before anything (state included) changes, in torch's order: the params'
        # dtypes and devices, sparse gradients, then the kernels' flags
        if fused:
            self.check_fused_params(group, params)
        grad_scale, found_inf = self._amp_scaling(fused)
        if any(g.is_sparse for g in grads):
            self._check_sparse(group, fused)
            grads = [g.coalesce() if g.is_sparse else g for g in grads]
        if fused:
            self._check_fused_flags(group)
        states, created = self._states(group, params)
        self._check_capturable(group, params, states)
        self.check_step_update(group)
        batch = self._batch(group, params, grads, states, values, grad_scale, found_inf)
        if self._step_observer is not None:
            self._observe(index, batch)
        execute(batch, plan_step(batch, self.torch_kernels))
        for (
            i
        ) in created:  # keep what the step created; no empty entry (a stateless recipe), as torch
            if states[i]:
                self.state[params[i]] = states[i]
            elif params[i] in self.state:
                del self.state[params[i]]

    def _batch(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict[str, Any]],
        values: Mapping[str, Any],
        grad_scale: Tensor | None = None,
        found_inf: Tensor | None = None,
    ) -> GroupTensors:
        """The group's step as the paths see it; advances every step count by one."""
        cache = self._executor_cache(group)
        scalars = advance_step_counts(states, self.recipe.state.scalar_names, cache)
        # tensor hyperparameters stay tensors: the rules compute with them in their dtype, as
        # torch does (a float32 tensor beta gives float32 bias corrections)
        flags = group if "fused" in self.defaults else {**group, "fused": None}
        formats, salts = storage_of(self.recipe.state, group, params)
        return GroupTensors(
            self.recipe,
            params,
            grads,
            states,
            self.step_hyperparameters(_with(flags, self.squeezed_hyperparameters, values), params),
            differentiable=bool(group.get("differentiable", False)),
            scalars=scalars,
            cache=cache,
            grad_scale=grad_scale,
            found_inf=found_inf,
            formats=formats,
            salts=salts,
        )

    def explain(self) -> list[dict[str, Any]]:
        """The step plan for the parameters that have a gradient now, without stepping: one
        row per group and path, with the number of tensors and elements, device, dtype and
        why that path runs them (a torch kernel, ``foreach=False``, ...)."""
        rows: list[dict[str, Any]] = []
        reduced = self.recipe.reduced
        shared = reduced.begin(self.param_groups) if reduced is not None else {}
        for index, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            # copies, with the step count this step would have: recording the step reads it
            states = [dict(self.state.get(p) or self._new_state(p, group)) for p in params]
            for s in states:
                if "step" in s:
                    s["step"] = s["step"] + 1
            cache = self._executor_cache(group)
            advanced = dict(group)  # the group schedules' next values, the group unchanged
            values = {**shared, **self.recipe.advance_group(advanced)}
            flags = advanced if "fused" in self.defaults else {**advanced, "fused": None}
            batch = GroupTensors(
                self.recipe,
                params,
                grads,
                states,
                self.step_hyperparameters(
                    _with(flags, self.squeezed_hyperparameters, values), params
                ),
                differentiable=bool(group.get("differentiable", False)),
                cache=cache,
                formats=storage_of(self.recipe.state, group, params)[0],
            )
            rows += [
                {"group": index, **row}
                for row in describe_plan(batch, plan_step(batch, self.torch_kernels))
            ]
        return rows

    def over_states(self, group: Mapping[str, Any], fn: Callable[[Any], None]) -> None:
        """``fn(view)`` over the parameters of ``group`` that have state, outside a step: a
        switch of what the parameters hold (schedule-free's ``train()``/``eval()``). One view
        per device and dtype, multi-tensor; it has no gradient (``view.grad`` is the
        parameters) and no step count (``view.t`` is 0)."""
        kinds: dict[tuple[Any, Any], list[Tensor]] = {}
        for p in group["params"]:
            if self.state.get(p):
                kinds.setdefault((p.device, p.dtype), []).append(p)
        with torch.no_grad():
            for params in kinds.values():
                batch = self._batch_of_states(group, params)
                work = decoded(batch) if batch.compact else batch
                fn(TensorsView(params, params, work.states, as_list=True, t=0.0, group=group))
                if batch.compact:
                    encode_back(work, batch)

    def _batch_of_states(
        self,
        group: Mapping[str, Any],
        params: list[Tensor],
        states: list[dict[str, Any]] | None = None,
    ) -> GroupTensors:
        """The stored ``states`` of ``params`` (default: their state) as a batch outside a
        step, with their compact formats (rounding as at the group's current step)."""
        formats, salts = storage_of(self.recipe.state, group, params)
        states = [self.state[p] for p in params] if states is None else states
        return GroupTensors(
            self.recipe, params, params, states, group, formats=formats, salts=salts
        )

    def _check_fused_flags(self, group: Mapping[str, Any]) -> None:
        """torch's fused kernels take their flags as bools only (TypeError otherwise)."""
        for key in dict.fromkeys(f for kernel in self.torch_kernels for f in kernel.flags):
            if key in group and not isinstance(group[key], bool):
                raise TypeError(f"fused=True needs {key} to be a bool, got {group[key]!r}")

    def _amp_scaling(self, fused: bool) -> tuple[Tensor | None, Tensor | None]:
        """``grad_scale`` and ``found_inf`` as ``torch.amp.GradScaler`` sets them on an
        optimizer with ``_step_supports_amp_scaling`` (``fused=True``). As in torch, the
        other implementations of an algorithm that has a fused one refuse them; algorithms
        without one ignore them."""
        if "fused" not in self.defaults:
            return None, None
        grad_scale = getattr(self, "grad_scale", None)
        found_inf = getattr(self, "found_inf", None)
        if (grad_scale is not None or found_inf is not None) and not fused:
            err = AssertionError("Expected grad_scale and found_inf to be None")  # torch's text
            err.add_note("allowed: grad_scale and found_inf with fused=True only")
            raise err
        return grad_scale, found_inf

    def _observe(self, index: int, step: GroupTensors) -> None:
        """Show ``step`` to the step observer (:mod:`momentopt.diagnostics`) by running it on
        copies of its tensors, multi-tensor, watched; the real step then runs on its own path,
        unwatched, so observing never changes the numbers."""
        if step.found_inf is not None and bool(step.found_inf):
            return  # GradScaler skips this step
        grads = [g.clone() for g in step.grads]
        if step.grad_scale is not None and grads:
            torch._foreach_div_(grads, step.grad_scale.reshape(()).to(grads[0].device))
        copies = replace(
            step,
            params=[p.detach().clone() for p in step.params],
            grads=grads,
            states=[
                {k: v.detach().clone() if isinstance(v, Tensor) else v for k, v in s.items()}
                for s in step.states
            ],
            cache={},
            observer=functools.partial(self._step_observer, group=index),
            grad_scale=None,
            found_inf=None,
        )
        if copies.compact:  # (the copies' states: their compact storage, decoded)
            copies = decoded(copies)
        with torch.no_grad():
            (per_tensor if step.differentiable else multi_tensor)(copies)

    def _states(
        self, group: dict[str, Any], params: list[Tensor]
    ) -> tuple[list[dict[str, Any]], list[int]]:
        """The params' state dicts, new ones initialized (registered only after the step,
        if not empty), and the positions of the new ones (or of empty existing entries)."""
        # (an empty state means no lookups; Dynamo does not reliably guard that emptiness)
        known = bool(self.state) or torch.compiler.is_compiling()
        states = [self.state.get(p) for p in params] if known else [None] * len(params)
        created = [i for i, s in enumerate(states) if not s]
        for n, i in enumerate(created):
            states[i] = self._new_state(params[i], group)
            if n == 0 and not states[i] and self.recipe.state.keeps_nothing(group):
                # a recipe that keeps nothing for this group keeps nothing for any param
                for j in created[1:]:
                    states[j] = {}
                if not self.state:
                    return states, []  # type: ignore[return-value]  # nothing to keep or drop
                break
        return states, created  # type: ignore[return-value]

    def _executor_cache(self, group: dict[str, Any]) -> dict[Any, Any]:
        """Packings and scratch buffers the executors keep between steps, per param group
        (not part of the state dict; rebuilt after pickling)."""
        caches = self.__dict__.setdefault("_executor_caches", {})
        entry = caches.get(id(group))
        if entry is None or entry[0] is not group:
            live = {id(g) for g in self.param_groups}
            for key in [k for k in caches if k not in live]:  # groups replaced by a load
                del caches[key]
            entry = caches[id(group)] = (group, {})
        return entry[1]

    def describe(self, group: int = 0) -> list[tuple[str, str]]:
        """The four steps (gradient, φ, ψ, step, update) as (name, formula) pairs, generated
        from the recipe for ``param_groups[group]``'s hyperparameters."""
        return self.recipe.describe(self.param_groups[group])

    supports_sparse: ClassVar[bool] = False
    # torch's refusals of a sparse gradient: by the class (None: "<Name> does not support
    # sparse gradients") and by its fused implementation.
    sparse_message: ClassVar[str | None] = None
    fused_sparse_message: ClassVar[str] = "`fused` does not support sparse gradients"

    dense_grads_message: ClassVar[str | None] = None
    """torch's refusal of a dense gradient by a class that takes sparse gradients only (None:
    dense gradients are taken)."""

    sparse_densified_message: ClassVar[str] = (
        "add(sparse, dense) is not supported. Use add(dense, sparse) instead."
    )
    """torch's refusal of a sparse gradient that a rule would make dense (coupled decay)."""

    def _check_sparse(self, group: Mapping[str, Any], fused: bool) -> None:
        """Raise torch's error unless a sparse gradient can take a step under ``group``."""
        if not self.supports_sparse:
            raise RuntimeError(
                self.sparse_message or f"{type(self).__name__} does not support sparse gradients"
            )
        if fused:
            raise RuntimeError(self.fused_sparse_message)
        if self.recipe.densifying_rules(group):
            raise RuntimeError(self.sparse_densified_message)

    _step_observer: Observer | None = None  # set by momentopt.diagnostics; read-only access
    capturable_devices_include_xla: ClassVar[bool] = True
    capturable_subject: ClassVar[str | None] = None
    """torch's names of the tensors its capturable check refuses, where they are not the
    params, the scalar states and the step counts in that order ("params, mu_products and
    state_steps")."""
    scalars_on_param_device: ClassVar[bool] = False
    """torch keeps the scalar states on the parameter's device even without ``capturable``
    (else on the CPU)."""

    def _check_capturable(
        self, group: Mapping[str, Any], params: list[Tensor], states: list[dict[str, Any]]
    ) -> None:
        """torch's capturable contract: params and step counters on a graph-capturable device."""
        if not group.get("capturable", False) or torch.compiler.is_compiling():
            return
        devices = ["cuda", "xpu", "hpu", torch._C._get_privateuse1_backend_name()]
        if self.capturable_devices_include_xla:
            devices.append("xla")
        scalars = self.recipe.state.scalar_names
        # torch names every 0-d state it checks: "params, mu_products and state_steps".
        checked = ["params", *(f"{n}s" for n in scalars if n != "step"), "state_steps"]
        what = self.capturable_subject or ", ".join(checked[:-1]) + " and " + checked[-1]
        for p, s in zip(params, states, strict=True):
            on_device = all(
                not isinstance(s.get(n), Tensor) or s[n].device.type == p.device.type
                for n in scalars
            )
            if not (on_device and p.device.type in devices):
                raise AssertionError(
                    f"If capturable=True, {what} must be on supported devices: {devices}."
                )

    def _new_state(self, p: Tensor, group: Mapping[str, Any]) -> dict[str, Any]:
        """``p``'s state before its first step; its scalars (``step``) on ``p``'s device under
        ``capturable``/``fused``, else on the CPU, as torch keeps them."""
        fused = bool(group.get("fused", False))
        on_device = bool(group.get("capturable", False)) or fused or self.scalars_on_param_device
        state = self.recipe.state.new_state(
            p, group, self.defaults, scalar_dtype(fused), p.device if on_device else "cpu"
        )
        if group.get("state_precision") is not None:
            store(state, formats_for(self.recipe.state, group, p))
        return state

    # -- checkpoints ------------------------------------------------------------------------
    def __setstate__(self, state: dict[str, Any]) -> None:
        """Fill flags that older state_dicts lack and turn numeric 0-d states (``step``,
        running products) into tensors, as torch does."""
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in {**self.flag_defaults(), **self.kept_options()}.items():
                group.setdefault(key, value)
            on_device = bool(group.get("capturable", False) or group.get("fused", False))
            on_device = on_device or self.scalars_on_param_device
            for p in group["params"]:
                s = self.state.get(p)
                for name in self.recipe.state.scalar_names if s else ():
                    if name in s and not torch.is_tensor(s[name]):
                        s[name] = torch.tensor(
                            float(s[name]),
                            dtype=scalar_dtype(bool(group.get("fused", False))),
                            device=p.device if on_device else "cpu",
                        )

    @classmethod
    def flag_defaults(cls) -> dict[str, Any]:
        """Group keys filled in when a loaded state_dict predates them (torch's list)."""
        return {}

    kept_on_load: ClassVar[tuple[str, ...]] = ("cautious",)
    """Group keys of constructor options that a checkpoint written without them lacks
    (another library's, or one saved by an optimizer made without the option): loading keeps
    this optimizer's own value (``cautious=True``)."""

    def kept_options(self) -> dict[str, Any]:
        """The :attr:`kept_on_load` options this optimizer was made with, and their values."""
        kept = (*self.kept_on_load, *GROUP_KEYS)  # (and how the state is stored)
        return {k: self.defaults[k] for k in kept if k in self.defaults}

    @classmethod
    def read_defaults(cls) -> dict[str, Any]:
        """Group keys a loaded group may lack because torch's step reads them with a default
        (``group.get``), with that default; loading does not fill them in (the rules read them
        so too)."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load ``state_dict`` after checking it fits; on error nothing changes.

        Raises ``ValueError`` or ``TypeError`` naming the group, parameter and key for what
        the constructor would refuse and what does not fit (see :mod:`.loading`). The tensors
        are copied: training afterwards never writes into ``state_dict``.
        """
        # torch's order: pre-hooks first (on a shallow copy; one may return a new dict), so the
        # dict that is checked is the one that is loaded; then load with the hooks already run.
        require_mapping(state_dict)
        state_dict = state_dict.copy()
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = pre_hook(self, state_dict)
            if result is not None:
                state_dict = result
        check_state_dict(self, state_dict)
        owned = {
            **state_dict,
            "state": {
                k: {
                    n: v.clone() if isinstance(v, Tensor) else copy.deepcopy(v)
                    for n, v in s.items()
                }
                for k, s in state_dict["state"].items()
            },
            "param_groups": copy.deepcopy(state_dict["param_groups"]),
        }
        pre_hooks = self._optimizer_load_state_dict_pre_hooks
        self._optimizer_load_state_dict_pre_hooks = OrderedDict()
        # torch casts every state tensor but ``step`` to its parameter's dtype: 8-bit codes
        # and bfloat16 state go back in as they were saved
        compact = {
            index: {k: v for k, v in s.items() if is_compact_storage(k, v, s)}
            for index, s in owned["state"].items()
        }
        try:
            super().load_state_dict(owned)
        finally:
            self._optimizer_load_state_dict_pre_hooks = pre_hooks
        params = [p for group in self.param_groups for p in group["params"]]
        saved = [i for group in owned["param_groups"] for i in group["params"]]
        by_index = dict(zip(saved, params, strict=True))  # (torch's mapping)
        for index, entries in compact.items():
            p = by_index.get(index)
            if entries and p is not None:
                self.state[p].update({k: v.to(device=p.device) for k, v in entries.items()})
        for group in self.param_groups:  # the storage each group asks for (state_precision)
            for p in group["params"]:
                if self.state.get(p):
                    convert(self.state[p], self.recipe.state, group, p)
