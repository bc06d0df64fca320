"""The newer optimizers on the compiled path and in ``momentopt show``.

The compiled path records a recipe's step on a tape and compiles the kernel generated from it.
Compiling each recipe with inductor costs about 20 s on a cold cache, so here the generated
kernel runs uncompiled (``compiled._compile`` replaced, as tests/test_ops.py replays tapes): it
checks what the compiled path adds to the rules — the recording, the kernel's source, the
flat buffers of small tensors, group values as per-step scalars — against the per-tensor path,
within float64 rounding (the kernel computes its scalars as 0-d float64 tensors, in one rounding
where the per-tensor path rounds a Python float)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import momentopt
from momentopt.engine import compiled
from momentopt.lab.show import render, resolve

from .modern_reference import hand_gradients, hand_params

CASES: dict[str, tuple[type, dict[str, Any]]] = {
    "Lion": (momentopt.Lion, {"lr": 1e-3, "weight_decay": 0.1}),
    "ADOPT": (momentopt.ADOPT, {"weight_decay": 0.1, "decouple": True}),
    "AdEMAMix": (momentopt.AdEMAMix, {"alpha_warmup": 5, "beta3_warmup": 5, "weight_decay": 0.1}),
    "ScheduleFreeAdamW": (momentopt.ScheduleFreeAdamW, {"foreach": None, "warmup_steps": 3}),
    "ScheduleFreeSGD": (momentopt.ScheduleFreeSGD, {"foreach": None, "weight_decay": 0.1}),
    "Prodigy": (momentopt.Prodigy, {"weight_decay": 0.1, "use_bias_correction": True}),
}


@pytest.mark.parametrize("name", CASES)
def test_compiled_kernel_is_the_per_tensor_step(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiled, "_compile", lambda kernel: kernel)
    monkeypatch.setattr(compiled, "_compiled", {})  # (no kernel of this test outlives it)
    cls, kwargs = CASES[name]
    runs, paths = [], set()
    for flags in ({"fused": True}, {"foreach": False}):
        params = hand_params(torch.float64)
        opt = cls(params, **{**kwargs, **flags})
        if hasattr(opt, "train"):
            opt.train()
        for grads in hand_gradients(12):
            for p, g in zip(params, grads, strict=True):
                p.grad = None if g is None else g.double()
            if "fused" in flags:
                paths |= {row["path"] for row in opt.explain()}
            opt.step()
        runs.append(params)
    assert "compiled" in paths, paths
    for a, b in zip(*runs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


SHOWN = {
    "Lion": "u ← sign(u)",
    "ADOPT": "clip(g/√V, c(t−1))",
    "AdEMAMix": "m = m₁/(1−β1^t) + α·m₂",
    "ScheduleFreeAdamW": "y ← y + c·(z − y)",
    "ScheduleFreeSGD": "z ← z − γ·ĝ",
    "Prodigy": "d ← min(max(d, d_coef·r/‖s‖₁), d·growth_rate)",
}


@pytest.mark.parametrize("name", SHOWN)
def test_momentopt_show_prints_the_steps(name: str) -> None:
    cls, kwargs = resolve(name)
    assert cls is getattr(momentopt, name)
    text = render(cls([torch.nn.Parameter(torch.randn(2))], **kwargs), name)
    assert SHOWN[name] in text, text


# -- docs/newer_optimizers.md: each mechanism composed from the public rules -------------------
DOC = Path(__file__).resolve().parents[1] / "docs" / "newer_optimizers.md"


def _training(opt: torch.optim.Optimizer) -> torch.optim.Optimizer:
    opt.train()  # type: ignore[attr-defined]
    return opt


NAMED: dict[str, Callable[[Any], torch.optim.Optimizer]] = {
    "MyLion": lambda p: momentopt.Lion(p),
    "CautiousAdamW": lambda p: momentopt.AdamW(p, weight_decay=1e-2, cautious=True),
    "MyAdEMAMix": lambda p: momentopt.AdEMAMix(p, alpha_warmup=100, beta3_warmup=100),
    "MyADOPT": lambda p: momentopt.ADOPT(p, clip_lambda=None),
    "MyScheduleFreeSGD": lambda p: _training(momentopt.ScheduleFreeSGD(p)),
    "MyProdigy": lambda p: momentopt.Prodigy(p),
}


def test_the_docs_compositions_are_the_named_classes() -> None:
    (code,) = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)
    namespace: dict[str, Any] = {"__name__": "newer_optimizers_doc"}
    exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 - the doc's own example
    assert set(NAMED) <= set(namespace)
    for name, named in NAMED.items():
        runs = []
        for make in (namespace[name], named):
            params = hand_params(torch.float64)
            opt = make(params)
            for grads in hand_gradients(12):
                for p, g in zip(params, grads, strict=True):
                    p.grad = None if g is None else g.double()
                opt.step()
            runs.append(params)
        for a, b in zip(*runs, strict=True):
            assert torch.equal(a, b), (name, (a - b).abs().max())


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (momentopt.Lion, {"weight_decay": 0.1}),
        (momentopt.ADOPT, {"weight_decay": 0.1, "decouple": True}),
        (momentopt.AdEMAMix, {"alpha_warmup": 5, "weight_decay": 0.1}),
    ],
    ids=["Lion", "ADOPT", "AdEMAMix"],
)
def test_differentiable_is_the_normal_step_under_autograd(
    cls: type, kwargs: dict[str, Any]
) -> None:
    """``differentiable=True`` (the classes that take it): the normal step's numbers, and the
    updated parameters carry autograd's history back to where they started."""
    runs = []
    for differentiable in (False, True):
        starts = [p.detach().requires_grad_(differentiable) for p in hand_params(torch.float64)]
        params = [s.clone() if differentiable else s for s in starts]  # (not leaves: in place)
        opt = cls(params, differentiable=differentiable, **kwargs)
        for grads in hand_gradients(8):
            for p, g in zip(params, grads, strict=True):
                p.grad = None if g is None else g.double()
            opt.step()
        runs.append(params)
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a, b.detach())
    assert all(p.grad_fn is not None for p in runs[1])
