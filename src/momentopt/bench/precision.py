"""``momentopt bench --memory``, per ``state_precision`` (issue 13): AdamW's state bytes per
parameter and step time for fp32, bf16 and int8 state, against torch's fused fp32 AdamW in
the same run; optionally bitsandbytes' and torchao's 8-bit AdamW beside them.

Every implementation runs round-robin in one process, the order rotated each round and the
caches flushed before every step (as :mod:`.cli`). Reported per implementation:

* **bytes/param**: the bytes of tensor state the optimizer keeps (codes, block absmax,
  ``step`` counters, code maps) over the number of parameters —
  :func:`momentopt.engine.precision.stored_bytes` for momentopt and torch; for the adapters
  the tensors inside their state subclasses (torchao keeps a tensor subclass whose
  ``element_size`` is float32's);
* **ms**: the median step time; **ratio**: the median over rounds of the step's time over
  torch fused fp32's in the same round, with its interquartile range;
* **GB/s**: the step's minimal traffic — parameters read and written, gradients read, every
  state byte read and written, ``3·P + 2·S`` bytes — over its time, against a bandwidth probe
  (``a += b``) measured each round;
* the first step's time (a compile, where the path compiles) and the peak memory one step
  allocates beyond what it frees (:func:`peak_memory`: torch's CPU profiler's allocation
  records in time order; a compact step allocates its new codes before the old ones go).

Targets (issue 13): int8 ≤ 2.1 and bf16 ≤ 4.1 bytes per parameter, and a step ≤ 1.0× torch's
fused fp32 AdamW, for a single 16M-element tensor (``one-big`` here) and the GPT-like set.

Run alone (sizes of the single tensor chosen freely)::

    python -m momentopt.bench.precision --numel 4194304,16777216 --rounds 15 --json out.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

import momentopt
from momentopt.engine.precision import stored_bytes

from .cli import WARMUP_STEPS, Flusher, _quartiles, gpt_like, peak_memory, plan_summary, probe

ADAMW: dict[str, Any] = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2}
"""The AdamW every implementation runs (torch's defaults, given explicitly: the adapters'
defaults may differ)."""

PRECISIONS: dict[str, str | None] = {"fp32": None, "bf16": "bf16", "int8": "int8"}
"""Row label → momentopt's ``state_precision``."""

REFERENCE = "torch fused fp32"
"""The implementation every ratio divides by."""

TARGET_BYTES: dict[str, float] = {"bf16": 4.1, "int8": 2.1}
"""Issue 13's bytes of state per parameter for Adam/AdamW, by precision."""

TARGET_RATIO = 1.0
"""Issue 13's step time of momentopt's bf16 and int8 AdamW over torch fused fp32's."""

ONE_BIG_NUMEL = 1 << 24
"""The single tensor of the ``one-big`` set: 16M elements, the issue's target size."""

QUICK_ONE_BIG_NUMEL = 1 << 20
"""``--quick``: still large enough for momentopt's compiled path (``COMPILE_MIN_NUMEL``)."""

SETS = ("one-big", "gpt-like")
"""The sets the precision rows run on (the issue's; many-small's tensors are all under the
4096-element threshold, so their state keeps full precision)."""

ADAPTER_SETS = ("one-big",)
"""Where the adapters run: torchao compiles its step once per parameter shape (the GPT-like
set has a dozen shapes, past torch.compile's recompile limit), so they are compared on single
tensors, as the issue states its figures."""


def _bitsandbytes(params: list[Tensor]) -> torch.optim.Optimizer:
    import bitsandbytes

    return bitsandbytes.optim.AdamW8bit(params, **ADAMW)


def _torchao(params: list[Tensor]) -> torch.optim.Optimizer:
    from torchao.optim import AdamW8bit

    return AdamW8bit(params, **ADAMW)


ADAPTERS: dict[str, tuple[str, Callable[[list[Tensor]], torch.optim.Optimizer]]] = {
    "bitsandbytes AdamW8bit": ("bitsandbytes", _bitsandbytes),
    "torchao AdamW8bit": ("torchao.optim", _torchao),
}
"""Optional implementations: name → (module they need, factory). Blocks of 256 elements with
a float32 absmax in both (their defaults), as momentopt's int8."""


def available_adapters(
    log: Callable[[str], None],
) -> dict[str, Callable[[list[Tensor]], torch.optim.Optimizer]]:
    """The adapters whose package imports here; each one that does not is skipped with a
    message saying why."""
    found = {}
    for name, (module, factory) in ADAPTERS.items():
        try:
            importlib.import_module(module)
        except Exception as err:  # missing, or built for another torch
            log(f"  {name}: skipped ({module} does not import: {type(err).__name__}: {err})")
            continue
        found[name] = factory
    return found


def tensor_bytes(value: Tensor) -> int:
    """Bytes a state tensor holds: its storage, or the sum of the tensors inside a
    traceable tensor subclass (``__tensor_flatten__``: torchao's 8-bit state)."""
    if type(value) is not Tensor and hasattr(value, "__tensor_flatten__"):
        names, _ = value.__tensor_flatten__()
        return sum(tensor_bytes(getattr(value, n)) for n in names)
    return value.numel() * value.element_size()


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of tensor state ``optimizer`` keeps: :func:`stored_bytes` for momentopt and
    torch, the tensors inside subclasses for the adapters."""
    if isinstance(optimizer, momentopt.RecipeOptimizer):
        return stored_bytes(optimizer)
    return sum(
        tensor_bytes(v)
        for s in optimizer.state.values()
        for v in s.values()
        if isinstance(v, Tensor)
    )


def one_big(numel: int) -> list[Tensor]:
    """A single tensor of ``numel`` elements."""
    return [torch.randn(numel)]


def _with_grads(params: list[Tensor]) -> list[Tensor]:
    ps = [torch.nn.Parameter(p.clone()) for p in params]
    for p in ps:
        p.grad = torch.randn_like(p) * 1e-2
    return ps


def _momentopt(precision: str | None) -> Callable[[list[Tensor]], torch.optim.Optimizer]:
    def make(params: list[Tensor]) -> torch.optim.Optimizer:
        return momentopt.AdamW(params, **ADAMW, state_precision=precision)

    return make


def _torch_fused(params: list[Tensor]) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, **ADAMW, fused=True)


def implementations(
    adapters: dict[str, Callable[[list[Tensor]], torch.optim.Optimizer]],
) -> dict[str, tuple[str, Callable[[list[Tensor]], torch.optim.Optimizer]]]:
    """Row name → (precision label, factory): torch's reference, momentopt's precisions,
    then the adapters."""
    rows = {REFERENCE: ("fp32", _torch_fused)}
    for label, precision in PRECISIONS.items():
        rows[f"momentopt {label}"] = (label, _momentopt(precision))
    for name, factory in adapters.items():
        rows[name] = ("int8", factory)
    return rows


def bench_set(
    set_name: str,
    params: list[Tensor],
    rounds: int,
    *,
    adapters: dict[str, Callable[[list[Tensor]], torch.optim.Optimizer]],
    flush: Callable[[], None],
    probe_bufs: tuple[Tensor, Tensor],
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """One row per implementation on ``params`` (all timed in the same interleaved rounds)."""
    numel = sum(p.numel() for p in params)
    opts: dict[str, torch.optim.Optimizer] = {}
    labels: dict[str, str] = {}
    first_step_s: dict[str, float] = {}
    for name, (label, factory) in implementations(adapters).items():
        start = time.perf_counter()
        opt = factory(_with_grads(params))
        opt.step()  # state creation, and a compile where the path compiles
        first_step_s[name] = time.perf_counter() - start
        for _ in range(WARMUP_STEPS - 1):
            opt.step()
        opts[name], labels[name] = opt, label
    times: dict[str, list[float]] = {k: [] for k in opts}
    probes: list[float] = []
    order = list(opts)
    for r in range(rounds):
        for name in order[r % len(order) :] + order[: r % len(order)]:
            flush()
            t0 = time.perf_counter()
            opts[name].step()
            times[name].append(time.perf_counter() - t0)
        flush()
        probes.append(probe(*probe_bufs))
    bandwidth = statistics.median(probes)
    param_bytes = sum(p.numel() * p.element_size() for p in params)
    rows = []
    for name, opt in opts.items():
        ratios = [t / ref for t, ref in zip(times[name], times[REFERENCE], strict=True)]
        ms = statistics.median(times[name]) * 1e3
        nbytes = state_bytes(opt)
        traffic = 3 * param_bytes + 2 * nbytes
        label = labels[name]
        ours = name.startswith("momentopt") and label in TARGET_BYTES
        row: dict[str, Any] = {
            "set": set_name,
            "numel": numel,
            "tensors": len(params),
            "impl": name,
            "precision": label,
            "bytes_per_param": nbytes / numel,
            "ms": ms,
            "ratio": statistics.median(ratios),
            "ratio_iqr": _quartiles(ratios),
            "gbps": traffic / (ms / 1e3) / 1e9,
            "pct_probe": 100 * traffic / (ms / 1e3) / 1e9 / bandwidth,
            "probe_gbps": bandwidth,
            "first_step_s": first_step_s[name],
            "peak_mib": peak_memory(opt.step) / 2**20,
            "target_bytes": TARGET_BYTES[label] if ours else None,
            "target_ratio": TARGET_RATIO if ours else None,
            "plan": plan_summary(opt) if isinstance(opt, momentopt.RecipeOptimizer) else "",
        }
        if ours:
            row["met_bytes"] = row["bytes_per_param"] <= row["target_bytes"]
            row["met_ratio"] = row["ratio"] <= row["target_ratio"]
        rows.append(row)
        log(
            f"  {set_name:8s} {numel / 1e6:6.3g}M {name:24s} {row['bytes_per_param']:6.3f} B/param "
            f"{ms:8.2f} ms  ratio {row['ratio']:.3f} "
            f"[{row['ratio_iqr'][0]:.2f}–{row['ratio_iqr'][1]:.2f}]  "
            f"{row['gbps']:.1f} GB/s = {row['pct_probe']:.0f}% of probe  "
            f"first step {row['first_step_s']:.1f} s  peak {row['peak_mib']:.1f} MiB"
        )
    return rows


def run_rows(
    sets: Sequence[str],
    *,
    quick: bool,
    rounds: int,
    numels: Sequence[int] = (),
    adapters: bool = True,
    flush: Callable[[], None],
    probe_bufs: tuple[Tensor, Tensor],
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """The precision rows of ``sets`` (those of :data:`SETS`; others are ignored): ``one-big``
    once per size in ``numels`` (default :data:`ONE_BIG_NUMEL`, quick
    :data:`QUICK_ONE_BIG_NUMEL`)."""
    found = available_adapters(log) if adapters else {}
    sizes = list(numels) or [QUICK_ONE_BIG_NUMEL if quick else ONE_BIG_NUMEL]
    rows: list[dict[str, Any]] = []
    for set_name in [s for s in SETS if s in sets]:
        groups = [one_big(n) for n in sizes] if set_name == "one-big" else [gpt_like(quick)]
        for params in groups:
            log(
                f"[state_precision, {set_name}] {len(params)} tensors, "
                f"{sum(p.numel() for p in params) / 1e6:.1f}M params"
            )
            here = found if set_name in ADAPTER_SETS else {}
            rows += bench_set(
                set_name,
                params,
                rounds,
                adapters=here,
                flush=flush,
                probe_bufs=probe_bufs,
                log=log,
            )
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| set | params | implementation | bytes/param | target | ms | ratio to torch fused fp32 [IQR] | target | GB/s | % probe | first step s | peak MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        bytes_target = ratio_target = ""
        if r["target_bytes"] is not None:
            bytes_target = f"≤ {r['target_bytes']} {'met' if r['met_bytes'] else '**missed**'}"
            ratio_target = f"≤ {r['target_ratio']:.1f} {'met' if r['met_ratio'] else '**missed**'}"
        lines.append(
            f"| {r['set']} | {r['numel'] / 1e6:.3g}M | {r['impl']} | {r['bytes_per_param']:.3f} | "
            f"{bytes_target} | {r['ms']:.2f} | {r['ratio']:.3f} "
            f"[{r['ratio_iqr'][0]:.2f}–{r['ratio_iqr'][1]:.2f}] | {ratio_target} | "
            f"{r['gbps']:.1f} | {r['pct_probe']:.0f} | {r['first_step_s']:.1f} | "
            f"{r['peak_mib']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m momentopt.bench.precision``: the precision rows alone, sizes chosen."""
    parser = argparse.ArgumentParser(
        prog="python -m momentopt.bench.precision", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sets, 3 rounds")
    parser.add_argument("--sets", default=",".join(SETS), help=f"of {','.join(SETS)}")
    parser.add_argument(
        "--numel", help="comma-separated sizes of the one-big tensor (default 16777216)"
    )
    parser.add_argument("--rounds", type=int, help="timed rounds (default 15, quick 3)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--no-adapters", action="store_true", help="skip bitsandbytes/torchao")
    parser.add_argument("--json", metavar="PATH", help="write the rows as JSON")
    args = parser.parse_args(argv)
    sets = args.sets.split(",")
    unknown = [s for s in sets if s not in SETS]
    if unknown:
        print(f"unknown set: {unknown}; sets: {list(SETS)}", file=sys.stderr)
        return 2
    try:
        numels = [int(n) for n in args.numel.split(",")] if args.numel else []
    except ValueError:
        print(f"--numel must be comma-separated integers; got {args.numel!r}", file=sys.stderr)
        return 2
    if any(n < 1 for n in numels):
        print(f"--numel sizes must be >= 1; got {numels}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    rounds = args.rounds or (3 if args.quick else 15)
    n = (1 << 20) if args.quick else (1 << 25)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    log(
        f"momentopt bench (state_precision): {rounds} rounds, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}"
    )
    rows = run_rows(
        sets,
        quick=args.quick,
        rounds=rounds,
        numels=numels,
        adapters=not args.no_adapters,
        flush=Flusher(8 if args.quick else 64),
        probe_bufs=(torch.zeros(n), torch.zeros(n)),
        log=log,
    )
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "rounds": rounds, "rows": rows}, f, indent=1)
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
