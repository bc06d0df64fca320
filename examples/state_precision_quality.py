"""Training quality with compact optimizer state (``state_precision``, issue 13).

Two runs, each with AdamW's state in fp32 (``state_precision=None``), bf16 (stochastic
rounding), int8 (blockwise) and **bf16 rounded to nearest** — not a momentopt option: emulated
here (:class:`NearestBf16AdamW`) to show why the rounding matters — from the same initial
weights on the same mini-batches:

1. ``digits``: issue 13's run — an MLP 64-128-10 on scikit-learn's digits (ships offline),
   AdamW lr 1e-3, weight_decay 1e-2, batch 64, 600 steps, seed 0; final training loss on the
   whole training set and test accuracy. bitsandbytes' and torchao's ``AdamW8bit`` run beside
   them where installed.
2. ``charlm``: a small character-level transformer (bytes as characters; 2 blocks of width
   128, 4 heads, context 64) trained on the Python standard library's own ``.py`` sources
   (sorted, concatenated; the last 10 % held out), AdamW lr 1e-3, weight_decay 1e-2, batch 32;
   the training loss every step and the held-out loss every ``--eval-every`` steps, saved as a
   PNG of the curves.

Only tensors of at least 4096 elements store compact state (momentopt's threshold, also
bitsandbytes' and torchao's): the MLP's 64×128 weight, every matrix of the transformer.

Run: ``python examples/state_precision_quality.py`` (both; ``--part digits`` or ``charlm``;
``--png docs/state_precision_quality.png --json results.json``). ~1 minute for digits, a few
minutes per precision for charlm on one CPU core.
"""

from __future__ import annotations

import argparse
import glob
import importlib
import json
import os
import sys
import sysconfig
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

import momentopt
from momentopt.engine.precision import MIN_NUMEL

ADAMW: dict[str, Any] = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2}


class NearestBf16AdamW:
    """AdamW whose moments are stored in bfloat16 *rounded to nearest* (emulated): momentopt's
    fp32 AdamW, after which every ``exp_avg``/``exp_avg_sq`` of a parameter of at least
    ``MIN_NUMEL`` elements is rounded to the nearest bfloat16 in place. As with
    ``state_precision="bf16"``, the step runs in float32 from the stored (bf16) values and
    its new state is what gets rounded; only the rounding differs.

    With β₂ = 0.999, ``v ← v + (1−β₂)(g² − v)`` changes ``v`` by less than half a bfloat16
    ulp (2⁻⁹·v) whenever ``g² < 2.95·v``: rounded to nearest, ``v`` can never decrease and
    grows only on large gradients — the step size shrinks. Stochastic rounding keeps the
    expected value of every update (``E[round(x)] = x``)."""

    def __init__(self, params: Iterable[Tensor], **kwargs: Any) -> None:
        self.inner = momentopt.AdamW(params, **kwargs)
        self.lost_share = 0.0
        """Of the last step's ``exp_avg_sq`` entries (compact tensors) the update changed,
        the share that rounding to nearest put back to their old value."""

    def zero_grad(self) -> None:
        self.inner.zero_grad()

    @torch.no_grad()
    def step(self) -> None:
        compact = [p for p in self.inner.state if p.numel() >= MIN_NUMEL]
        before = {p: self.inner.state[p]["exp_avg_sq"].clone() for p in compact}
        self.inner.step()
        changed = lost = 0
        for param, state in self.inner.state.items():
            if param.numel() >= MIN_NUMEL:
                for key in ("exp_avg", "exp_avg_sq"):
                    updated = state[key].clone()
                    state[key].copy_(state[key].to(torch.bfloat16))
                    if key == "exp_avg_sq" and param in before:
                        moved = updated != before[param]
                        changed += int(moved.sum())
                        lost += int((moved & (state[key] == before[param])).sum())
        self.lost_share = lost / changed if changed else 0.0


Factory = Callable[[Iterable[Tensor]], Any]


def _momentopt(precision: str | None) -> Factory:
    return lambda params: momentopt.AdamW(params, **ADAMW, state_precision=precision)


def _adapter(module: str, attribute: str) -> Factory | None:
    try:
        cls = getattr(importlib.import_module(module), attribute)
    except Exception as err:  # not installed, or built for another torch
        print(f"{module}.{attribute}: skipped ({type(err).__name__}: {err})", file=sys.stderr)
        return None
    return lambda params: cls(params, **ADAMW)


def optimizers(adapters: bool) -> dict[str, Factory]:
    """Name → factory of every optimizer compared (the adapters where they import)."""
    runs: dict[str, Factory] = {
        "fp32": _momentopt(None),
        "bf16": _momentopt("bf16"),
        "int8": _momentopt("int8"),
        "bf16 nearest (emulated)": lambda params: NearestBf16AdamW(params, **ADAMW),
    }
    if adapters:
        for name, module in (("bitsandbytes", "bitsandbytes.optim"), ("torchao", "torchao.optim")):
            factory = _adapter(module, "AdamW8bit")
            if factory is not None:
                runs[f"{name} AdamW8bit"] = factory
    return runs


# -- 1. digits -----------------------------------------------------------------------------------


def digits_run(make: Factory, steps: int = 600) -> dict[str, float]:
    """Issue 13's digits run (the setup of tests/test_state_precision.py): final training
    loss on the whole training set, test accuracy, seconds."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = make(model.parameters())
    batches = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        index = torch.randint(0, len(x_train), (64,), generator=batches)
        loss = F.cross_entropy(model(x_train[index]), y_train[index])
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        train_loss = F.cross_entropy(model(x_train), y_train).item()
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    return {"train_loss": train_loss, "test_accuracy": accuracy, "seconds": seconds}


# -- 2. a character-level transformer on the standard library -----------------------------------


def stdlib_text() -> tuple[bytes, str]:
    """The standard library's top-level ``.py`` files, sorted by name and concatenated, and a
    description of where they came from (their content depends on the Python version)."""
    directory = sysconfig.get_paths()["stdlib"]
    files = sorted(glob.glob(os.path.join(directory, "*.py")))
    text = b"".join(open(f, "rb").read() for f in files)
    return text, f"{len(files)} files of {directory} (Python {sys.version.split()[0]})"


class Block(nn.Module):
    """Pre-norm transformer block: causal self-attention and a 4× MLP."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def forward(self, x: Tensor) -> Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, c // self.heads).unbind(2)
        attended = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
        )
        x = x + self.proj(attended.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp(self.norm2(x))


class CharTransformer(nn.Module):
    """A byte-level GPT: 256 symbols, learned positions, ``depth`` blocks, an untied head."""

    def __init__(self, context: int, width: int = 128, depth: int = 2, heads: int = 4) -> None:
        super().__init__()
        self.embed, self.position = nn.Embedding(256, width), nn.Embedding(context, width)
        self.blocks = nn.Sequential(*(Block(width, heads) for _ in range(depth)))
        self.norm, self.head = nn.LayerNorm(width), nn.Linear(width, 256)

    def forward(self, tokens: Tensor) -> Tensor:
        positions = torch.arange(tokens.shape[1])
        return self.head(self.norm(self.blocks(self.embed(tokens) + self.position(positions))))


def _batch(data: Tensor, starts: Tensor, context: int) -> tuple[Tensor, Tensor]:
    windows = torch.stack([data[s : s + context + 1] for s in starts.tolist()])
    return windows[:, :-1], windows[:, 1:]


def charlm_run(
    make: Factory,
    data: Tensor,
    *,
    steps: int,
    eval_every: int,
    context: int = 64,
    batch: int = 32,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Train from seed 0 on the first 90 % of ``data``; the training loss of every step and
    the held-out loss (8 fixed batches from the last 10 %) every ``eval_every`` steps."""
    split = int(0.9 * len(data))
    train, held_out = data[:split], data[split:]
    torch.manual_seed(0)
    model = CharTransformer(context)
    opt = make(model.parameters())
    batches = torch.Generator().manual_seed(0)
    val_starts = torch.randint(0, len(held_out) - context - 1, (8, batch), generator=batches)
    val_batches = [_batch(held_out, s, context) for s in val_starts]

    def held_out_loss() -> float:
        with torch.no_grad():
            losses = [F.cross_entropy(model(x).flatten(0, 1), y.flatten()) for x, y in val_batches]
        return torch.stack(losses).mean().item()

    train_losses: list[float] = []
    evals: list[tuple[int, float]] = [(0, held_out_loss())]
    lost_shares: list[tuple[int, float]] = []
    start = time.perf_counter()
    for step in range(1, steps + 1):
        x, y = _batch(
            train, torch.randint(0, split - context - 1, (batch,), generator=batches), context
        )
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        train_losses.append(loss.item())
        if step % eval_every == 0 or step == steps:
            evals.append((step, held_out_loss()))
            if isinstance(opt, NearestBf16AdamW):
                lost_shares.append((step, opt.lost_share))
            log(
                f"    step {step}: train {sum(train_losses[-eval_every:]) / len(train_losses[-eval_every:]):.4f}  held-out {evals[-1][1]:.4f}"
            )
    return {
        "train_losses": train_losses,
        "held_out": evals,
        "final_train_loss": sum(train_losses[-eval_every:]) / len(train_losses[-eval_every:]),
        "final_held_out_loss": evals[-1][1],
        "lost_exp_avg_sq_updates": lost_shares,
        "seconds": time.perf_counter() - start,
        "parameters": sum(p.numel() for p in model.parameters()),
        "compact_parameters": sum(p.numel() for p in model.parameters() if p.numel() >= MIN_NUMEL),
    }


def _moving_average(values: list[float], window: int) -> list[float]:
    kernel = torch.ones(1, 1, window) / window
    return torch.conv1d(torch.tensor(values).view(1, 1, -1), kernel).flatten().tolist()


def plot(results: dict[str, dict[str, Any]], path: str, title: str, smooth: int) -> None:
    """Training loss (moving average over ``smooth`` steps), held-out loss, and each run's
    training loss minus fp32's on the same batches (moving average over ``2·smooth``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 4.5))
    base = results["fp32"]["train_losses"]
    for name, r in results.items():
        losses = r["train_losses"]
        left.plot(range(smooth, len(losses) + 1), _moving_average(losses, smooth), label=name, lw=1)
        steps, values = zip(*r["held_out"], strict=True)
        middle.plot(steps, values, marker="o", ms=3, label=name, lw=1)
        gap = [a - b for a, b in zip(losses, base, strict=True)]
        right.plot(range(2 * smooth, len(gap) + 1), _moving_average(gap, 2 * smooth), label=name)
    low = min(min(v for _, v in r["held_out"]) for r in results.values())
    left.set(xlabel="step", ylabel=f"training loss (mean of {smooth} steps)", title="training")
    middle.set(xlabel="step", ylabel="held-out loss", title="held out (last 10 % of the text)")
    right.set(
        xlabel="step",
        ylabel=f"training loss − fp32's (mean of {2 * smooth} steps)",
        title="difference from fp32 (same batches)",
    )
    for ax in (left, middle):
        ax.set_ylim(low - 0.1, low + 1.2)
    right.axhline(0, color="black", lw=0.6)
    for ax in (left, middle, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("digits", "charlm", "all"), default="all")
    parser.add_argument("--steps", type=int, default=1000, help="charlm steps (default 1000)")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--no-adapters", action="store_true", help="skip bitsandbytes/torchao")
    parser.add_argument("--png", default="docs/state_precision_quality.png")
    parser.add_argument("--json", help="write every number (curves included) as JSON")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    results: dict[str, Any] = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    if args.part in ("digits", "all"):
        log("digits: MLP 64-128-10, AdamW lr 1e-3, wd 1e-2, batch 64, 600 steps, seed 0")
        digits = {}
        for name, make in optimizers(adapters=not args.no_adapters).items():
            digits[name] = digits_run(make)
            log(f"  {name}: {digits[name]}")
        fp32 = digits["fp32"]
        print("| AdamW state | final training loss | vs fp32 | test accuracy | vs fp32 | seconds |")
        print("|---|---|---|---|---|---|")
        for name, r in digits.items():
            print(
                f"| {name} | {r['train_loss']:.4f} | {r['train_loss'] / fp32['train_loss'] - 1:+.1%} "
                f"| {r['test_accuracy']:.2%} | {100 * (r['test_accuracy'] - fp32['test_accuracy']):+.2f} pt "
                f"| {r['seconds']:.1f} |"
            )
        results["digits"] = digits
    if args.part in ("charlm", "all"):
        text, source = stdlib_text()
        data = torch.frombuffer(bytearray(text), dtype=torch.uint8).long()
        log(f"charlm: {len(text) / 1e6:.2f} MB from {source}, {args.steps} steps")
        charlm = {}
        runs = optimizers(adapters=False)
        for name, make in runs.items():
            log(f"  {name}")
            charlm[name] = charlm_run(
                make, data, steps=args.steps, eval_every=args.eval_every, log=log
            )
        first = next(iter(charlm.values()))
        print(
            f"\ncharlm: {first['parameters']} parameters ({first['compact_parameters']} in tensors "
            f"of >= {MIN_NUMEL} elements), {args.steps} steps of 32×64 bytes, {source}"
        )
        print(
            f"| AdamW state | final training loss (last {args.eval_every} steps) "
            "| held-out loss | vs fp32 | seconds |"
        )
        print("|---|---|---|---|---|")
        base = charlm["fp32"]["final_held_out_loss"]
        for name, r in charlm.items():
            print(
                f"| {name} | {r['final_train_loss']:.4f} | {r['final_held_out_loss']:.4f} | "
                f"{r['final_held_out_loss'] / base - 1:+.1%} | {r['seconds']:.0f} |"
            )
            if r["lost_exp_avg_sq_updates"]:
                shares = ", ".join(f"{t}: {v:.0%}" for t, v in r["lost_exp_avg_sq_updates"])
                print(f"\n{name}: exp_avg_sq updates rounded away (step: share) {shares}")
        title = (
            f"Byte-level transformer ({first['parameters'] / 1e3:.0f}k params) on the Python "
            f"{sys.version.split()[0]} standard library, AdamW lr 1e-3, state per precision"
        )
        plot(charlm, args.png, title, smooth=min(50, args.steps))
        results["charlm"] = charlm
        results["charlm_source"] = source
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f)
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
