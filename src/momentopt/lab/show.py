"""``momentopt show NAME``: an optimizer's four steps, generated from its recipe.

NAME is a seed name (SGD, Momentum, Nesterov, Adagrad, Adadelta, RMSprop, Adam, AMSGrad,
NAdam, AdamW), a momentopt class name, or ``module:Class`` for a composed optimizer. In
Python: ``opt.describe()`` on any momentopt optimizer, or :func:`render` for text.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "show",
        help="print an optimizer's four steps (from its recipe)",
        description="Print the four steps (gradient, ψ, φ, step, update) and hyperparameters.",
    )
    p.add_argument(
        "name", help="seed name (e.g. AMSGrad), class name (e.g. RMSprop) or module:Class"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a hyperparameter (Python literal), e.g. --set momentum=0.9",
    )
    p.set_defaults(func=main)


class UnknownOptimizer(LookupError):
    pass


def resolve(name: str) -> tuple[type, dict[str, Any]]:
    """(class, constructor kwargs) for a seed name, a momentopt class name or ``module:Class``."""
    import momentopt

    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as error:
            raise UnknownOptimizer(f"cannot load {name!r}: {error}") from None
        if not (isinstance(cls, type) and issubclass(cls, momentopt.RecipeOptimizer)):
            raise UnknownOptimizer(f"{name!r} is not a momentopt optimizer class")
        return cls, {}
    seeds = {
        "sgd": (momentopt.SGD, {}),
        "momentum": (momentopt.SGD, {"momentum": 0.9}),
        "nesterov": (momentopt.SGD, {"momentum": 0.9, "nesterov": True}),
        "amsgrad": (momentopt.Adam, {"amsgrad": True}),
    }
    classes = {
        n.lower(): getattr(momentopt, n)
        for n in (
            "Adagrad",
            "Adadelta",
            "RMSprop",
            "Adam",
            "NAdam",
            "AdamW",
            "Adamax",
            "RAdam",
            "SparseAdam",
            "LBFGS",
            "Rprop",
            "ASGD",
            "Adafactor",
            "Muon",
            "Lion",
            "ADOPT",
            "AdEMAMix",
            "ScheduleFreeAdamW",
            "ScheduleFreeSGD",
            "Prodigy",
        )
    }
    key = name.lower()
    if key in seeds:
        return seeds[key]
    if key in classes:
        return classes[key], {}
    choices = "SGD, Momentum, Nesterov, Adagrad, Adadelta, RMSprop, Adam, AMSGrad, NAdam, AdamW, Adamax, RAdam, SparseAdam, LBFGS, Rprop, ASGD, Adafactor, Muon, Lion, ADOPT, AdEMAMix, ScheduleFreeAdamW, ScheduleFreeSGD, Prodigy, or module:Class"
    raise UnknownOptimizer(f"unknown optimizer {name!r}; choose from {choices}")


def render(optimizer: Any, title: str | None = None) -> str:
    """The four steps of ``optimizer`` (a momentopt optimizer instance) as text."""
    group = optimizer.param_groups[0]
    title = title or type(optimizer).__name__
    hp = {k: v for k, v in group.items() if k != "params" and v is not None}
    lines = [title, "  hyperparameters: " + ", ".join(f"{k}={v}" for k, v in hp.items())]
    width = max(len(step) for step, _ in optimizer.describe())
    for step, formula in optimizer.describe():
        lines.append(f"  {step.ljust(width)}  {formula}")
    return "\n".join(lines)


def mismatch(key: str, value: Any, defaults: dict[str, Any]) -> str | None:
    """Why ``value`` cannot be hyperparameter ``key`` whose default is ``defaults[key]``: a
    number is expected where the default is a number, as many numbers where it is a tuple.
    None if it can, or if ``key`` is unknown or a flag (the constructor then decides)."""
    if key not in defaults or defaults[key] is None:
        return None
    default = defaults[key]

    def is_number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if isinstance(default, bool):
        return None  # flags: the constructor decides what it accepts
    if is_number(default):
        return None if is_number(value) else f"expected a number, got {value!r}"
    if isinstance(default, tuple):
        ok = (  # (None where the default has None: Adafactor's eps)
            isinstance(value, tuple)
            and len(value) == len(default)
            and all(
                is_number(v) or (v is None and d is None)
                for v, d in zip(value, default, strict=True)
            )
        )
        return None if ok else f"expected {len(default)} numbers such as {default}, got {value!r}"
    return None


def main(args: argparse.Namespace) -> int:
    import ast

    import torch

    try:
        cls, kwargs = resolve(args.name)
    except UnknownOptimizer as error:
        print(f"momentopt show: {error}", file=sys.stderr)
        return 2
    try:
        # a 1×1 matrix: Muon takes matrices only
        defaults = cls([torch.zeros(1, 1, requires_grad=True)], **kwargs).param_groups[0]
    except (TypeError, ValueError) as error:
        print(f"momentopt show: {error}", file=sys.stderr)
        return 2
    for item in args.set:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            print(f"momentopt show: --set needs KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        try:
            kwargs[key] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            print(
                f"momentopt show: --set {key}={value}: not a Python literal (a number, True, "
                "False, None or a tuple such as (0.9, 0.999))",
                file=sys.stderr,
            )
            return 2
        problem = mismatch(key, kwargs[key], defaults)
        if problem:
            print(f"momentopt show: --set {key}={value}: {problem}", file=sys.stderr)
            return 2
    try:
        optimizer = cls([torch.zeros(1, 1, requires_grad=True)], **kwargs)
    except (TypeError, ValueError) as error:
        print(f"momentopt show: {error}", file=sys.stderr)
        return 2
    title = args.name if ":" not in args.name else cls.__name__
    print(render(optimizer, title))
    return 0
