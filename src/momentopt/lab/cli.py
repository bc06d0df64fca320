"""``momentopt compare``: the lineage's claims as controlled experiments, with a report.

Only argparse at import time: the command line registers this parser without the lab's extras;
running it checks for them and prints a one-line install hint if they are missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SCENARIO_NAMES = (
    "sgd-ravine",
    "ravine",
    "rosenbrock",
    "nesterov",
    "sparse",
    "saddle",
    "effective-lr",
    "scale-change",
    "digits",
    "reddi",
    "nadam",
    "weight-decay",
)
"""The lineage's claims, the default (``scenarios.ORDER``; listed here so that the parser needs
no extra)."""
MODERN_SCENARIO_NAMES = tuple(
    f"{claim}-{problem}"
    for claim in ("lion", "adopt", "ademamix", "schedule-free", "prodigy", "cautious")
    for problem in ("digits", "quadratic")
)
"""The newer optimizers' claims against AdamW (``--modern``; ``scenarios.MODERN_ORDER``)."""
DEFAULT_SEEDS = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare",
        help="test the SGD → AdamW lineage's claims with controlled experiments; write a report",
        description=(
            "Walk the lineage SGD → Momentum → Nesterov → AdaGrad → AdaDelta → RMSprop → Adam "
            "(and AMSGrad) → NAdam → AdamW and test the claim made for each step: dynamics at "
            "matched step sizes, performance with every optimizer tuned on the same lr grid "
            "and budget. Each claim has a criterion fixed before the run; the report "
            "(index.html, summary.md, results.json, results.csv, plots/) prints it beside the "
            "measured figure and the verdict (holds / does not hold / mixed / not checked). "
            "With --modern: the newer optimizers' claims against AdamW instead."
        ),
    )
    p.add_argument(
        "--scenario",
        metavar="NAMES",
        help=f"comma-separated claims to test, from: {', '.join(SCENARIO_NAMES)} (the "
        f"lineage's, the default), {', '.join(MODERN_SCENARIO_NAMES)} (the newer optimizers'), "
        "or the groups 'lineage' and 'modern'",
    )
    p.add_argument(
        "--modern",
        action="store_true",
        help="test the newer optimizers (Lion, ADOPT, AdEMAMix, Schedule-Free, Prodigy, "
        "cautious AdamW) against AdamW on the digits network and a noisy quadratic, instead of "
        "the lineage (same as --scenario modern)",
    )
    p.add_argument(
        "--optimizers",
        metavar="NAMES",
        help="comma-separated optimizer names to run (default: every one the chosen claims' "
        "experiments run: the ten of the lineage, Adamax, RAdam and Muon+AdamW (digits only); "
        "with --modern AdamW, the newer ones and the cosine baselines; and any --optimizer)",
    )
    p.add_argument(
        "--optimizer",
        action="append",
        default=[],
        metavar="NAME=module:Class[:JSON]",
        help="add your optimizer (a momentopt class, e.g. made with momentopt.compose) under "
        "NAME, or replace the lineage's optimizer of that name; JSON: extra constructor keyword "
        "arguments, e.g. --optimizer 'Heavy=momentopt:SGD:{\"momentum\": 0.5}'. Repeatable",
    )
    p.add_argument(
        "--steps", type=int, help="steps per run for every experiment (default: each one's own)"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed of data, initial points and batches (default 0)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=DEFAULT_SEEDS,
        help=f"how many seeds (seed, seed+1, …) the noisy experiments run (default {DEFAULT_SEEDS})",
    )
    p.add_argument(
        "--out", default="momentopt-report", help="report folder (default ./momentopt-report)"
    )
    p.add_argument("--no-plots", action="store_true", help="skip the matplotlib figures")
    p.add_argument("--json", action="store_true", help="also print the results as JSON on stdout")
    p.add_argument(
        "--lr-points",
        type=int,
        default=None,
        help="points of the shared lr grid 1e-4…10 for the tuned runs (default 6; the "
        "--modern experiments add the midpoint between neighbours)",
    )
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: up to 2)")
    p.set_defaults(func=main)


def _fail(message: str) -> int:
    print(f"momentopt compare: {message}", file=sys.stderr)
    return 2


def main(args: argparse.Namespace) -> int:
    from . import extras_hint

    if extras_hint():
        return 2
    from . import lrsearch
    from .optimizers import BadOptimizer, Registry, UnknownName, parse_optimizer, split_names
    from .scenarios import UnknownScenario
    from .scenarios import resolve as resolve_scenarios

    if args.modern and args.scenario is not None:
        return _fail("give --modern or --scenario, not both (--modern is --scenario modern)")
    registry = Registry()
    try:
        for text in args.optimizer:
            registry.put(parse_optimizer(text))
        scenarios = resolve_scenarios(["modern"] if args.modern else split_names(args.scenario))
        names = split_names(args.optimizers)
        specs = registry.resolve(names)
    except (UnknownName, UnknownScenario, BadOptimizer) as error:
        return _fail(str(error))
    from .runner import experiments_for

    if names is None:  # all by default: leave out the built-ins no chosen experiment runs
        chosen = experiments_for(scenarios)
        specs = [spec for spec in specs if any(e.runs_with(spec) for e in chosen)]
    if not scenarios or not specs:
        return _fail("nothing to run: give at least one scenario and one optimizer")
    for option, value in (("--steps", args.steps), ("--lr-points", args.lr_points)):
        if value is not None and value < 1:
            return _fail(f"{option} must be >= 1, got {value}")
    for option, value in (("--seeds", args.seeds), ("--jobs", args.jobs)):
        if value is not None and value < 1:
            return _fail(f"{option} must be >= 1, got {value}")
    points = lrsearch.DEFAULT_POINTS if args.lr_points is None else args.lr_points

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from . import report
    from .runner import JobFailed, default_jobs, plan, run_all

    console = Console(stderr=args.json, width=max(Console().width, 150))
    lrs = lrsearch.grid(points)
    seeds = list(range(args.seed, args.seed + args.seeds))
    jobs = args.jobs or default_jobs()
    refined = [e.name for e in experiments_for(scenarios) if e.refine > 1]
    console.print(
        f"[bold]momentopt compare[/]: {len(scenarios)} claims, {len(specs)} optimizers, "
        f"lr grid {lrs} (same for all"
        + (f"; with its half-decade points on {', '.join(refined)}" if refined else "")
        + f"), seeds {seeds}, {jobs} worker(s)"
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("runs", total=len(plan(scenarios, specs, args.steps)))

        def done(experiment: str, optimizer: str) -> None:
            progress.update(task, advance=1, description=f"{experiment}: {optimizer}")

        try:
            results = run_all(
                scenarios,
                specs,
                lrs,
                args.steps,
                seeds,
                jobs=jobs,
                on_done=done,
                registry=registry.specs,
            )
        except JobFailed as error:
            progress.stop()
            return _fail(str(error))
        progress.update(task, description="writing the report")
        paths = report.write(results, Path(args.out), plots=not args.no_plots)

    colors = {"holds": "green", "does not hold": "red", "mixed": "yellow"}
    table = Table(title="Claims: criterion (fixed before the run) | measured | verdict")
    for column in ("step", "scenario", "criterion", "measured", "verdict"):
        table.add_column(column, overflow="fold")
    for s in scenarios:
        v = results.verdicts[s.name]
        word = f"[{colors[v.verdict]}]{v.verdict}[/]" if v.verdict in colors else v.verdict
        table.add_row(s.section, s.name, v.criterion, v.measured, word)
    console.print(table)
    console.print(
        f"report: {paths['html']} (and summary.md, results.json, results.csv) in "
        f"{results.seconds:.0f} s"
    )
    if args.json:
        print(json.dumps(report.to_json(results)))
    return 0
