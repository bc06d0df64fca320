"""``momentopt bench``: time ``step()`` of momentopt (default arguments) and torch.optim.

For every seed config and parameter set, momentopt's default path and torch.optim's for-loop,
foreach and fused (where torch has one) paths run interleaved round-robin in one process; each
round also measures a bandwidth probe (``a += b`` on 128 MiB arrays). Every step is preceded by a cache flush. Reported:
ms/step (median), the ratio to torch's best path (median of per-round ratios), effective GB/s
(the step's minimal traffic (3 + 2·states)·numel·bytes over its time), % of the in-run probe,
compile time (momentopt's first step, separately), and optionally peak memory of a step.
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

import momentopt

from .references import REFERENCE_CONFIGS, REFERENCE_SETS, REFERENCE_TARGET

# name → (momentopt class, torch class, kwargs, number of state tensors, torch has fused)
CONFIGS: dict[str, tuple[Any, Any, dict[str, Any], int, bool]] = {
    "SGD": (momentopt.SGD, torch.optim.SGD, {"lr": 1e-3}, 0, True),
    "momentum": (momentopt.SGD, torch.optim.SGD, {"lr": 1e-3, "momentum": 0.9}, 1, True),
    "nesterov": (
        momentopt.SGD,
        torch.optim.SGD,
        {"lr": 1e-3, "momentum": 0.9, "nesterov": True},
        1,
        True,
    ),
    "Adagrad": (momentopt.Adagrad, torch.optim.Adagrad, {}, 1, True),
    "Adadelta": (momentopt.Adadelta, torch.optim.Adadelta, {}, 2, False),
    "RMSprop": (momentopt.RMSprop, torch.optim.RMSprop, {}, 1, False),
    "centered": (momentopt.RMSprop, torch.optim.RMSprop, {"centered": True}, 2, False),
    "momentum-RMSprop": (momentopt.RMSprop, torch.optim.RMSprop, {"momentum": 0.9}, 2, False),
    "Adam": (momentopt.Adam, torch.optim.Adam, {}, 2, True),
    "AMSGrad": (momentopt.Adam, torch.optim.Adam, {"amsgrad": True}, 3, True),
    "AdamW": (momentopt.AdamW, torch.optim.AdamW, {}, 2, True),
    "NAdam": (momentopt.NAdam, torch.optim.NAdam, {}, 2, False),
    "Rprop": (momentopt.Rprop, torch.optim.Rprop, {}, 2, False),
    "ASGD": (momentopt.ASGD, torch.optim.ASGD, {}, 1, False),
    "Adamax": (momentopt.Adamax, torch.optim.Adamax, {}, 2, False),
    "RAdam": (momentopt.RAdam, torch.optim.RAdam, {}, 2, False),
    # (Adafactor's factors are small: its traffic is about one state's, a vector's variance)
    "Adafactor": (momentopt.Adafactor, torch.optim.Adafactor, {}, 1, False),
    "Muon": (momentopt.Muon, torch.optim.Muon, {}, 1, False),
}
ONLY_SETS: dict[str, tuple[str, ...]] = {"Muon": ("gpt-matrices",)}
"""The sets a config runs on, where not every default set (Muon takes matrices only)."""
TARGETS: dict[str, float] = {"Muon": 0.5}
"""The issue's target where it is not the rule of :func:`target` (Muon: one batched
Newton–Schulz per shape against torch's loop, ≤ 0.5)."""


WARMUP_STEPS = 6
"""Steps every path takes before the timed rounds: the first compiles momentopt's step (and
is reported); RAdam's adapted step begins at t = 6 (ρ_t > 5 with β2 = 0.999), a second step
structure (and kernel), so the rounds time the steady step."""


def gpt_like(quick: bool) -> list[torch.Tensor]:
    """~30M parameters in ~77 tensors: 50257×256 embedding and head, 6 blocks of width 256."""
    vocab, width, blocks = (5000, 128, 2) if quick else (50257, 256, 6)
    shapes: list[tuple[int, ...]] = [(vocab, width), (1024, width)]
    for _ in range(blocks):
        shapes += [
            (width,),
            (width,),
            (3 * width, width),
            (3 * width,),
            (width, width),
            (width,),
            (width,),
            (width,),
            (4 * width, width),
            (4 * width,),
            (width, 4 * width),
            (width,),
        ]
    shapes += [(width,), (width,), (vocab, width)]
    return [torch.randn(s) for s in shapes]


def gpt_matrices(quick: bool) -> list[torch.Tensor]:
    """The GPT-like set's block matrices (3w×w, w×w, 4w×w, w×4w per block): what Muon
    optimizes in such a model (embeddings, head and vectors go to AdamW)."""
    return [t for t in gpt_like(quick)[2:-3] if t.dim() == 2]


def many_small(quick: bool) -> list[torch.Tensor]:
    return [torch.randn(1000) for _ in range(200 if quick else 2000)]


def one_big(quick: bool) -> list[torch.Tensor]:
    return [torch.randn(2_000_000 if quick else 50_000_000)]


SETS: dict[str, Callable[[bool], list[torch.Tensor]]] = {
    "gpt-like": gpt_like,
    "many-small": many_small,
    "one-big": one_big,
    "gpt-matrices": gpt_matrices,
}
DEFAULT_SETS = ("gpt-like", "many-small", "one-big")
"""The sets every config runs on by default (``gpt-matrices``: the configs that name it)."""


class Flusher:
    """Evicts the caches by writing a buffer larger than the last-level cache."""

    def __init__(self, mib: int = 64) -> None:
        self.buf = torch.empty(mib * (1 << 20) // 4)

    def __call__(self) -> None:
        self.buf.fill_(1.0)


def probe(a: torch.Tensor, b: torch.Tensor, passes: int = 3) -> float:
    """GB/s of ``a += b`` (two arrays read, one written back where it was read: the access
    pattern of an optimizer step, so no write-allocate traffic goes uncounted as it would for
    a copy into a fresh buffer), the best of ``passes``: on a shared machine a single pass
    often catches a busy moment."""
    best = float("inf")
    for _ in range(passes):
        start = time.perf_counter()
        a.add_(b)
        best = min(best, time.perf_counter() - start)
    return 3 * a.numel() * a.element_size() / best / 1e9


def _quartiles(values: list[float]) -> tuple[float, float]:
    """The 25th and 75th percentiles (the spread of the per-round ratios)."""
    if len(values) < 2:
        return (values[0], values[0])
    q = statistics.quantiles(values, n=4)
    return (q[0], q[2])


def target(config: str, set_name: str) -> float:
    """The issue's target ratio: ≤ 1.0 where torch has a fused kernel, ≤ 0.25 where it has
    none; on many-small (a test of per-tensor overhead) ≤ 1.0 for every config; ≤ 0.5 of
    the reference implementation's step for the newer optimizers."""
    if config in REFERENCE_CONFIGS:
        return REFERENCE_TARGET
    if config in TARGETS:
        return TARGETS[config]
    return 1.0 if CONFIGS[config][4] or set_name == "many-small" else 0.25


Maker = Callable[[list[torch.Tensor]], Any]


def _contenders(name: str) -> tuple[Maker, dict[str, Maker], int]:
    """How config ``name`` makes momentopt's optimizer, the paths it is timed against (torch's
    for-loop, foreach and fused where torch has them; or the reference implementation), and
    its number of state tensors."""
    if name in REFERENCE_CONFIGS:
        ref = REFERENCE_CONFIGS[name]
        return (
            lambda ps: ref.make(ref.ours, ps),
            {ref.package: lambda ps: ref.make(ref.reference, ps)},
            ref.states,
        )
    ours_cls, torch_cls, kw, n_states, has_fused = CONFIGS[name]
    flags: dict[str, dict[str, Any]] = {
        "for-loop": {"foreach": False},
        "foreach": {"foreach": True},
    }
    if "foreach" not in inspect.signature(torch_cls).parameters:  # one implementation (Muon)
        flags = {"for-loop": {}}
    if has_fused:
        flags["fused"] = {"fused": True}
    others = {path: _with_kwargs(torch_cls, {**kw, **f}) for path, f in flags.items()}
    return _with_kwargs(ours_cls, kw), others, n_states


def _with_kwargs(cls: Any, kw: dict[str, Any]) -> Maker:
    return lambda ps: cls(ps, **kw)


def _make(
    make: Maker, params: list[torch.Tensor], kw: dict[str, Any]
) -> tuple[Any, list[torch.Tensor]]:
    ps = [torch.nn.Parameter(p.clone()) for p in params]
    for p in ps:
        p.grad = torch.randn_like(p) * 1e-2
    return make(ps, **kw), ps


def plan_summary(opt: Any) -> str:
    """momentopt's step plan for ``opt`` in one line: each path with its tensor count and
    reason (``opt.explain()``)."""
    return "; ".join(f"{r['path']} ×{r['tensors']} ({r['reason']})" for r in opt.explain())


def peak_memory(step: Callable[[], None]) -> int:
    """Peak bytes allocated (net of frees) during one ``step``: the profiler's allocation and
    free records summed in time order. (Each op event's ``cpu_memory_usage`` also counts its
    children's allocations, and a free outside any op is charged to the enclosing op at its
    start: summing op events counts nested allocations two or three times.)"""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    records = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]"
    )
    current = peak = 0
    for _, nbytes in records:
        current += nbytes
        peak = max(peak, current)
    return peak


def bench_one(
    name: str,
    set_name: str,
    params: list[torch.Tensor],
    rounds: int,
    *,
    memory: bool,
    flush: Flusher,
    probe_bufs: tuple[torch.Tensor, torch.Tensor],
    log: Callable[[str], None],
) -> dict[str, Any]:
    ours_make, others, n_states = _contenders(name)
    paths: dict[str, tuple[Any, list[torch.Tensor]]] = {}
    start = time.perf_counter()
    paths["momentopt"] = _make(ours_make, params, {})
    paths["momentopt"][0].step()  # first step: compile (if any) and state creation
    compile_s = time.perf_counter() - start
    for _ in range(WARMUP_STEPS - 1):
        paths["momentopt"][0].step()
    plan = plan_summary(paths["momentopt"][0])
    torch_paths = list(others)
    for path, make in others.items():
        paths[path] = _make(make, params, {})
        for _ in range(WARMUP_STEPS):
            paths[path][0].step()
    times: dict[str, list[float]] = {k: [] for k in paths}
    probes: list[float] = []
    order = list(paths)
    for r in range(rounds):
        for path in order[r % len(order) :] + order[: r % len(order)]:  # rotated: no path
            opt = paths[path][0]  # always runs first after the probe
            flush()
            t0 = time.perf_counter()
            opt.step()
            times[path].append(time.perf_counter() - t0)
        flush()
        probes.append(probe(*probe_bufs))
    numel = sum(p.numel() for p in params)
    traffic = (3 + 2 * n_states) * numel * 4
    torch_best = min(torch_paths, key=lambda k: statistics.median(times[k]))
    ratios = [o / min(times[k][i] for k in torch_paths) for i, o in enumerate(times["momentopt"])]
    ours = statistics.median(times["momentopt"])
    bw = statistics.median(probes)
    row: dict[str, Any] = {
        "config": name,
        "set": set_name,
        "numel": numel,
        "tensors": len(params),
        "ms": {k: statistics.median(v) * 1e3 for k, v in times.items()},
        "torch_best": torch_best,
        "ratio": statistics.median(ratios),
        "ratio_iqr": _quartiles(ratios),
        "gbps": traffic / ours / 1e9,
        "probe_gbps": bw,
        "pct_probe": 100 * traffic / ours / 1e9 / bw,
        "first_step_s": compile_s,
        "target": target(name, set_name),
        "plan": plan,
    }
    row["met"] = row["ratio"] <= row["target"]
    if memory:
        row["peak_mib"] = {}
        for path in ("momentopt", torch_best):
            opt = paths[path][0]
            row["peak_mib"][path] = peak_memory(opt.step) / 2**20
    del paths
    ms = row["ms"]
    log(
        f"  {name:17s} {set_name:10s} momentopt {ms['momentopt']:8.2f} ms  torch best "
        f"({torch_best}) {ms[torch_best]:8.2f} ms  ratio {row['ratio']:.3f} "
        f"[{row['ratio_iqr'][0]:.2f}–{row['ratio_iqr'][1]:.2f}] "
        f"(target ≤ {row['target']:.2f}, {'met' if row['met'] else 'MISSED'})  "
        f"{row['gbps']:.1f} GB/s = {row['pct_probe']:.0f}% of probe  first step {compile_s:.1f} s"
        f"\n    plan: {plan}"
    )
    return row


def _runs_on(config: str, set_name: str, *, requested: bool) -> bool:
    """Whether ``config`` runs on ``set_name``: a config's own sets only, where it names them;
    else the default sets (the newer optimizers: the sets of their target), or any set asked
    for."""
    if config in ONLY_SETS:
        return set_name in ONLY_SETS[config]
    if config in REFERENCE_CONFIGS and not requested:
        return set_name in REFERENCE_SETS
    return requested or set_name in DEFAULT_SETS


def run(args: argparse.Namespace) -> int:
    known = [*CONFIGS, *REFERENCE_CONFIGS]
    algos = args.algos.split(",") if args.algos else known
    sets = args.sets.split(",") if args.sets else list(SETS)
    unknown = [a for a in algos if a not in known] + [s for s in sets if s not in SETS]
    if unknown:
        print(
            f"unknown config or set: {unknown}; configs: {known}; sets: {list(SETS)}",
            file=sys.stderr,
        )
        return 2
    missing = [a for a in algos if a in REFERENCE_CONFIGS and not REFERENCE_CONFIGS[a].available()]
    if missing:  # (the reference packages come with the test extra)
        print(f"skipping {missing}: their reference package is not installed", file=sys.stderr)
        algos = [a for a in algos if a not in missing]
    runs = [(s, a) for s in sets for a in algos if _runs_on(a, s, requested=bool(args.sets))]
    if args.threads:
        torch.set_num_threads(args.threads)
    rounds = args.rounds or (3 if args.quick else 15)
    flush = Flusher(8 if args.quick else 64)
    n = (1 << 20) if args.quick else (1 << 25)
    probe_bufs = (torch.zeros(n), torch.zeros(n))

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    log(
        f"momentopt bench: {len(algos)} configs × {len(sets)} sets, {rounds} rounds, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    if args.quick:
        log(
            "--quick: small sets that fit in the caches, 3 rounds — a smoke test of the bench, "
            "not a measurement of the targets (run without --quick for those)"
        )
    rows = []
    total = len(runs)
    for set_name in sets:
        names = [a for s, a in runs if s == set_name]
        if not names:
            continue
        params = SETS[set_name](args.quick)
        log(
            f"[{set_name}] {len(params)} tensors, {sum(p.numel() for p in params) / 1e6:.1f}M params"
        )
        for name in names:
            log(f"  ({len(rows) + 1}/{total}) {name} ...")
            rows.append(
                bench_one(
                    name,
                    set_name,
                    params,
                    rounds,
                    memory=args.memory,
                    flush=flush,
                    probe_bufs=probe_bufs,
                    log=log,
                )
            )
    precision_rows: list[dict[str, Any]] = []
    if args.memory and "AdamW" in algos:  # state bytes and step time per state_precision
        from . import precision

        precision_rows = precision.run_rows(
            sets, quick=args.quick, rounds=rounds, flush=flush, probe_bufs=probe_bufs, log=log
        )
    from ..engine import compiled

    result = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "quick": args.quick,
        "rounds": rounds,
        "rows": rows,
        "precision_rows": precision_rows,
        "compile_seconds": dict(compiled.COMPILE_SECONDS),
    }
    print(format_table(rows))
    if precision_rows:
        print(precision.format_table(precision_rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        log(f"wrote {args.json}")
    return 0


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| config | set | momentopt ms | torch best | torch ms | ratio [IQR] | target | GB/s | % probe | first step s | momentopt's plan |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['set']} | {r['ms']['momentopt']:.2f} | {r['torch_best']} | "
            f"{r['ms'][r['torch_best']]:.2f} | {r['ratio']:.3f} [{r['ratio_iqr'][0]:.2f}–{r['ratio_iqr'][1]:.2f}] "
            f"| ≤ {r['target']:.2f} "
            f"{'met' if r['met'] else '**missed**'} | {r['gbps']:.1f} | {r['pct_probe']:.0f} | "
            f"{r['first_step_s']:.1f} | {r['plan']} |"
            + (
                f" peak MiB ours {r['peak_mib']['momentopt']:.1f} / torch {r['peak_mib'][r['torch_best']]:.1f} |"
                if "peak_mib" in r
                else ""
            )
        )
    return "\n".join(lines)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "bench", help="time step() against torch.optim's paths", description=__doc__
    )
    p.add_argument(
        "--quick", action="store_true", help="small sets, 3 rounds (well under a minute)"
    )
    p.add_argument(
        "--algos",
        help=f"comma-separated configs (default all): {','.join([*CONFIGS, *REFERENCE_CONFIGS])}",
    )
    p.add_argument("--sets", help=f"comma-separated parameter sets (default all): {','.join(SETS)}")
    p.add_argument("--rounds", type=int, help="timed rounds (default 15, quick 3)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument(
        "--memory",
        action="store_true",
        help="also measure peak memory of one step, and AdamW's state bytes and step time "
        "per state_precision on one-big (16M) and gpt-like (bench/precision.py)",
    )
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.set_defaults(func=run)
