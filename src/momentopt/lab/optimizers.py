"""The optimizers the lab runs: the lineage's ten by name, three beyond it (Adamax, RAdam and
Muon with AdamW, on the digits network only), the newer ones compared with AdamW (Lion, ADOPT,
AdEMAMix, Schedule-Free AdamW and SGD, Prodigy, cautious AdamW, and the cosine-scheduled
baselines, on the comparison's two experiments only), plus any the user adds or swaps in.

``--optimizer NAME=module:Class[:JSON]`` adds ``Class`` (a momentopt optimizer class, e.g. one
made with :func:`momentopt.compose`) under ``NAME`` with the JSON object as extra constructor
keyword arguments; a NAME that is already in the registry (case-insensitive) is *replaced*,
so ``--optimizer Momentum=momentopt:SGD`` runs plain SGD wherever the story uses Momentum.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

import momentopt

from .schedules import AdamWCosine, MomentumCosine
from .show import mismatch


@dataclass(frozen=True)
class Spec:
    """One optimizer: a momentopt class and the keyword arguments that make it this one.

    ``added`` marks an optimizer that came from ``--optimizer`` rather than the lineage;
    ``experiments``, if set, are the only experiments it runs (the optimizers beyond the
    lineage run where a scenario fits them, not in the lineage's own tests); ``per_copy``
    gives every copy of a problem an optimizer of its own (for one whose step reads a number
    reduced over all its parameters, as Prodigy's ``d``: see ``scenarios.base.PerCopy``).
    """

    name: str
    cls: type
    kwargs: dict[str, Any] = field(default_factory=dict)
    added: bool = False
    experiments: tuple[str, ...] = ()
    per_copy: bool = False

    def build(self, param_groups: Any, **overrides: Any) -> Any:
        return self.cls(param_groups, **{**self.kwargs, **overrides})

    def group(self) -> dict[str, Any]:
        """The hyperparameters of a param group built with this spec (the class's defaults
        plus ``kwargs``)."""
        opt = self.build([torch.zeros(1, requires_grad=True)])
        return {k: v for k, v in opt.param_groups[0].items() if k != "params"}

    def label(self) -> str:
        """``Name`` or ``Name (module.Class, kwargs)`` for an added or replaced one."""
        if not self.added:
            return self.name
        extra = f", {json.dumps(self.kwargs)}" if self.kwargs else ""
        return f"{self.name} ({self.cls.__module__}.{self.cls.__name__}{extra})"


def couples_parameters(cls: type) -> bool:
    """Whether ``cls``'s step reads a number reduced over all the parameters it holds (its
    recipe's ``reduced`` slot, as Prodigy's ``d``): then copies of a problem sharing one
    optimizer would not be independent runs, and each gets its own."""
    recipe = getattr(cls, "recipe", None)
    return getattr(recipe, "reduced", None) is not None


LINEAGE: tuple[Spec, ...] = (
    Spec("SGD", momentopt.SGD),
    Spec("Momentum", momentopt.SGD, {"momentum": 0.9}),
    Spec("Nesterov", momentopt.SGD, {"momentum": 0.9, "nesterov": True}),
    Spec("Adagrad", momentopt.Adagrad),
    Spec("Adadelta", momentopt.Adadelta),
    Spec("RMSprop", momentopt.RMSprop),
    Spec("Adam", momentopt.Adam),
    Spec("AMSGrad", momentopt.Adam, {"amsgrad": True}),
    Spec("NAdam", momentopt.NAdam),
    Spec("AdamW", momentopt.AdamW),
)
"""The seed explainer's algorithms, in the order of the story (AMSGrad is Adam's fix)."""

NAMES: tuple[str, ...] = tuple(spec.name for spec in LINEAGE)


class Stepping:
    """Several optimizers (``parts``) stepping together as one: their param groups, one
    ``zero_grad`` and one ``step``."""

    parts: list[Any]

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [group for opt in self.parts for group in opt.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.parts:
            opt.zero_grad(set_to_none)

    def step(self) -> None:
        for opt in self.parts:
            opt.step()


class MuonAdamW(Stepping):
    """Muon on the 2-D weight matrices, AdamW on every other parameter, stepping together.

    This is how Muon is run in practice: it orthogonalises a matrix's momentum, so it is
    defined for matrices only, and its users hand biases (and other non-matrix parameters) to
    AdamW (Jordan et al. 2024, "Muon: an optimizer for hidden layers"). Each param group is
    split in two that keep its lr, so the lab's one tuned lr drives both; Muon uses
    ``adjust_lr_fn="match_rms_adamw"`` (Liu et al. 2025, "Muon is scalable for LLM
    training": its update scaled to AdamW's RMS, 0.2·√max(A, B)) precisely so that one lr
    suits both halves. Everything else is torch's defaults (Muon: momentum 0.95, Nesterov,
    weight_decay 0.1; AdamW: weight_decay 0.01). A lab helper, not a library optimizer.
    """

    def __init__(self, params: Any, lr: float = 1e-3) -> None:
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        matrices, others = [], []
        for group in groups:
            tensors = list(group["params"])
            for part, keep in ((matrices, True), (others, False)):
                chosen = [p for p in tensors if (p.ndim == 2) == keep]
                if chosen:
                    part.append({**group, "params": chosen})
        self.muon = (
            momentopt.Muon(matrices, lr=lr, adjust_lr_fn="match_rms_adamw") if matrices else None
        )
        self.adamw = momentopt.AdamW(others, lr=lr) if others else None
        self.parts = [opt for opt in (self.muon, self.adamw) if opt is not None]

    def describe(self) -> list[tuple[str, str]]:
        return [
            (f"{type(opt).__name__}: {step}", formula)
            for opt in self.parts
            for step, formula in opt.describe()
        ]


BEYOND: tuple[Spec, ...] = (
    Spec("Adamax", momentopt.Adamax, experiments=("digits",)),
    Spec("RAdam", momentopt.RAdam, experiments=("digits",)),
    Spec("Muon+AdamW", MuonAdamW, experiments=("digits",)),
)
"""Optimizers beyond the lineage, run under the same tuning budget where a scenario fits them
(no claim is tested on them): Adam's variants Adamax (Kingma & Ba 2015, §7.1) and RAdam (Liu
et al. 2020), and Muon with AdamW, on the digits network."""


MODERN_EXPERIMENTS: tuple[str, ...] = ("digits-final", "noisy-quadratic")

MODERN: tuple[Spec, ...] = (
    Spec("AdamW+cosine", AdamWCosine, experiments=MODERN_EXPERIMENTS),
    Spec("Momentum+cosine", MomentumCosine, experiments=MODERN_EXPERIMENTS),
    Spec("Lion", momentopt.Lion, experiments=MODERN_EXPERIMENTS),
    Spec("ADOPT", momentopt.ADOPT, experiments=MODERN_EXPERIMENTS),
    Spec("AdEMAMix", momentopt.AdEMAMix, experiments=MODERN_EXPERIMENTS),
    Spec("ScheduleFreeAdamW", momentopt.ScheduleFreeAdamW, experiments=MODERN_EXPERIMENTS),
    Spec("ScheduleFreeSGD", momentopt.ScheduleFreeSGD, experiments=MODERN_EXPERIMENTS),
    Spec(
        "Prodigy",
        momentopt.Prodigy,
        experiments=MODERN_EXPERIMENTS,
        per_copy=couples_parameters(momentopt.Prodigy),
    ),
    Spec("CautiousAdamW", momentopt.AdamW, {"cautious": True}, experiments=MODERN_EXPERIMENTS),
)
"""The newer optimizers, each at its package's defaults but for the lr (tuned, or its default
where a claim says so), and the scheduled baselines Schedule-Free is measured against
(:mod:`.schedules`); they run the comparison with AdamW only (``momentopt compare --modern``).
Prodigy gets an optimizer per copy: its ``d`` is one number for all the parameters it holds."""

MODERN_NAMES: tuple[str, ...] = tuple(spec.name for spec in MODERN)


class UnknownName(ValueError):
    """A name that is not among the choices; the message lists the choices."""


class BadOptimizer(ValueError):
    """An ``--optimizer`` value that cannot be used; the message says why."""


class Registry:
    """Optimizers by name: the lineage, those beyond it, then additions; a replaced name keeps
    its place."""

    def __init__(self, specs: Iterable[Spec] = LINEAGE + BEYOND + MODERN) -> None:
        self.specs: dict[str, Spec] = {spec.name: spec for spec in specs}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.specs)

    def find(self, name: str) -> Spec | None:
        lower = name.strip().lower()
        return next((s for n, s in self.specs.items() if n.lower() == lower), None)

    def put(self, spec: Spec) -> None:
        """Add ``spec``, or replace the spec of the same name (case-insensitive; the
        replacement takes the registry's spelling, which the claims name)."""
        old = self.find(spec.name)
        if old is None:
            self.specs[spec.name] = spec
        else:
            self.specs[old.name] = replace(spec, name=old.name)

    def resolve(self, names: Iterable[str] | None) -> list[Spec]:
        """Specs for ``names`` (case-insensitive); None → all, with every added one."""
        if names is None:
            return list(self.specs.values())
        specs: list[Spec] = []
        for name in names:
            spec = self.find(name)
            if spec is None:
                raise UnknownName(
                    f"unknown optimizer {name!r}; choose from {', '.join(self.names)} "
                    "(or add one with --optimizer NAME=module:Class)"
                )
            if spec not in specs:
                specs.append(spec)
        return specs


def resolve(names: Iterable[str] | None) -> list[Spec]:
    """Built-in specs for ``names`` (case-insensitive; None → all: the lineage in the story's
    order, then those beyond it, then the newer ones)."""
    return Registry().resolve(names)


def parse_optimizer(text: str) -> Spec:
    """``NAME=module:Class[:JSON]`` → a :class:`Spec`, checked by building it once.

    Raises :class:`BadOptimizer` with a message for the command line.
    """
    name, sep, target = text.partition("=")
    name = name.strip()
    usage = f"--optimizer needs NAME=module:Class[:JSON], got {text!r}"
    if not sep or not name or not target:
        raise BadOptimizer(usage)
    if "," in name or not name.isprintable():
        raise BadOptimizer(f"--optimizer: bad NAME {name!r} (no commas)")
    module_name, sep, rest = target.partition(":")
    if not sep or not module_name:
        raise BadOptimizer(usage)
    class_name, _, raw_kwargs = rest.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as error:
        raise BadOptimizer(
            f"--optimizer {name}: cannot load {module_name}:{class_name}: {error}"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, momentopt.RecipeOptimizer)):
        raise BadOptimizer(
            f"--optimizer {name}: {module_name}:{class_name} is not a momentopt optimizer class "
            "(make one with momentopt.compose)"
        )
    kwargs: dict[str, Any] = {}
    if raw_kwargs:
        try:
            kwargs = json.loads(raw_kwargs)
        except json.JSONDecodeError as error:
            raise BadOptimizer(f"--optimizer {name}: bad JSON {raw_kwargs!r}: {error}") from None
        if not isinstance(kwargs, dict):
            raise BadOptimizer(
                f"--optimizer {name}: the JSON must be an object of constructor keyword "
                f'arguments, e.g. {{"momentum": 0.9}}, got {raw_kwargs!r}'
            )
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    if "lr" in kwargs:
        raise BadOptimizer(f"--optimizer {name}: lr is the lab's to choose (it tunes it); drop it")
    spec = Spec(name, cls, kwargs, added=True, per_copy=couples_parameters(cls))
    try:
        defaults = Spec(name, cls).group()
    except (TypeError, ValueError, RuntimeError) as error:
        raise BadOptimizer(f"--optimizer {name}: {cls.__name__}() fails: {error}") from None
    for key, value in kwargs.items():
        problem = mismatch(key, value, defaults)
        if problem:
            raise BadOptimizer(f"--optimizer {name}: {key}={value!r}: {problem}")
    try:
        spec.group()
    except (TypeError, ValueError, RuntimeError) as error:
        raise BadOptimizer(
            f"--optimizer {name}: {cls.__name__}(**{kwargs}) fails: {error}"
        ) from None
    return spec


def step_match(spec: Spec) -> float:
    """The factor that matches ``spec``'s step size to plain SGD's at the same lr.

    A heavy-ball buffer ``b ← μ·b + (1−d)·g`` settles at ``(1−d)/(1−μ)·g`` under a constant
    gradient, so heavy ball at ``lr·(1−μ)/(1−d)`` takes SGD's step at ``lr`` once it is up to
    speed (the comparison of Polyak 1964 and Sutskever et al. 2013). Methods without a
    ``momentum`` hyperparameter (Adam's family averages with weights summing to one) get 1.
    """
    group = spec.group()
    mu = float(group.get("momentum") or 0.0)
    dampening = float(group.get("dampening") or 0.0)
    if mu <= 0.0 or dampening >= 1.0:
        return 1.0
    return (1.0 - mu) / (1.0 - dampening)


def split_names(text: str | None) -> list[str] | None:
    """``"Adam,SGD"`` → ``["Adam", "SGD"]``; None or "all" → None."""
    if text is None or text.strip().lower() == "all":
        return None
    return [part for part in (p.strip() for p in text.split(",")) if part]
