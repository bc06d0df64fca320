"""``momentopt compare``: every seed algorithm on every scenario, fairly tuned, with a report.

Only argparse at import time: the command line registers this parser without the lab's extras;
running it checks for them and prints a one-line install hint if they are missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SCENARIO_NAMES = (
    "ravine",
    "rosenbrock",
    "saddle",
    "sparse",
    "effective-lr",
    "reddi",
    "weight-decay",
    "digits",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare",
        help="run the seed's claims as experiments and write a report",
        description=(
            "Run the built-in scenarios with the seed's algorithms (SGD, Momentum, Nesterov, "
            "Adagrad, Adadelta, RMSprop, Adam, AMSGrad, NAdam, AdamW), each tuned on the same "
            "lr grid over the plotted horizon, and write a report (index.html, summary.md, "
            "results.json, results.csv, plots/)."
        ),
    )
    p.add_argument(
        "--scenario",
        metavar="NAMES",
        help=f"comma-separated, from: {', '.join(SCENARIO_NAMES)} (default: all)",
    )
    p.add_argument(
        "--optimizers",
        metavar="NAMES",
        help="comma-separated seed algorithm names (default: all ten)",
    )
    p.add_argument(
        "--steps", type=int, help="steps per run for every scenario (default: each scenario's own)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of data, initial points and batches (default 0)"
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
        help="points of the shared lr grid 1e-4…10 (default 6)",
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
    from .optimizers import UnknownName, resolve, split_names
    from .scenarios import UnknownScenario
    from .scenarios import resolve as resolve_scenarios

    try:
        scenarios = resolve_scenarios(split_names(args.scenario))
        specs = resolve(split_names(args.optimizers))
    except (UnknownName, UnknownScenario) as error:
        return _fail(str(error))
    if not scenarios or not specs:
        return _fail("nothing to run: give at least one scenario and one optimizer")
    if args.steps is not None and args.steps < 1:
        return _fail(f"--steps must be >= 1, got {args.steps}")
    points = lrsearch.DEFAULT_POINTS if args.lr_points is None else args.lr_points
    if points < 1:
        return _fail(f"--lr-points must be >= 1, got {points}")
    if args.jobs is not None and args.jobs < 1:
        return _fail(f"--jobs must be >= 1, got {args.jobs}")

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from . import report
    from .runner import default_jobs, ranking, run_all

    console = Console(stderr=args.json, width=max(Console().width, 140))
    lrs = lrsearch.grid(points)
    jobs = args.jobs or default_jobs()
    console.print(
        f"[bold]momentopt compare[/]: {len(scenarios)} scenarios × {len(specs)} optimizers, "
        f"lr grid {lrs} (same for all), seed {args.seed}, {jobs} worker(s)"
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("runs", total=len(scenarios) * len(specs))

        def done(scenario: str, optimizer: str) -> None:
            progress.update(task, advance=1, description=f"{scenario}: {optimizer}")

        results = run_all(scenarios, specs, lrs, args.steps, args.seed, jobs=jobs, on_done=done)
        progress.update(task, description="writing the report")
        paths = report.write(results, Path(args.out), plots=not args.no_plots)

    claims = Table(title="Claims")
    for column in ("scenario", "verdict", "numbers"):
        claims.add_column(column, overflow="fold")
    for s in scenarios:
        v = results.verdicts[s.name]
        word = {True: "[green]holds[/]", False: "[red]does not hold[/]", None: "not checked"}[
            v.holds
        ]
        claims.add_row(s.name, word, v.text if len(v.text) < 300 else v.text[:297] + "…")
    console.print(claims)
    table = Table(title="Ranking (rank per scenario at the tuned lr; 1 = best)")
    table.add_column("optimizer")
    for s in scenarios:
        table.add_column(s.name, justify="right")
    table.add_column("mean rank", justify="right")
    for name, ranks, mean in ranking(results):
        table.add_row(name, *[str(ranks.get(s.name, "")) for s in scenarios], f"{mean:.2f}")
    console.print(table)
    console.print(
        f"report: {paths['html']} (and summary.md, results.json, results.csv) in {results.seconds:.0f} s"
    )
    if args.json:
        print(json.dumps(report.to_json(results)))
    return 0
