"""``fused=True`` under ``torch.amp.GradScaler``: ``grad_scale`` and ``found_inf`` as torch's
fused optimizers take them — gradients divided by the scale, and a found inf skipping the
whole update, step count included — on every path ``fused=True`` may take."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from .helpers import sparse_if_needed
from .optimizer_table import ALGORITHMS, OPTIMIZERS, names, supports

FUSED = names(supports("fused"))  # torch's fused CPU optimizers


def _fused_inputs() -> list[Any]:
    return [
        pytest.param(name, i, id=f"{name}-{i}")
        for name in FUSED
        for i, _ in enumerate(OPTIMIZERS[name].inputs(torch.float32))
    ]


def _kwargs(name: str, index: int) -> dict[str, Any]:
    return dict(OPTIMIZERS[name].inputs(torch.float32)[index].kwargs)


@pytest.mark.parametrize("no_grad_scale", [False, True])
@pytest.mark.parametrize("name,index", _fused_inputs())
def test_fused_does_not_step_if_found_inf(name: str, index: int, no_grad_scale: bool) -> None:
    """PyTorch's own test (test_optim.py, test_fused_does_not_step_if_foundinf) on ours."""
    params = [torch.ones(1) for _ in range(5)]
    before = [p.clone() for p in params]
    for p in params:
        p.grad = torch.ones_like(p)
    opt = OPTIMIZERS[name].ours_cls(params, fused=True, **_kwargs(name, index))
    opt.grad_scale = None if no_grad_scale else torch.ones(1)
    opt.found_inf = torch.ones(())
    opt.step()
    for p, b in zip(params, before, strict=True):
        assert torch.equal(p, b)
        if "step" in opt.state[p]:
            assert torch.equal(opt.state[p]["step"], torch.zeros(()))


LAYOUTS = {"matching": lambda: torch.randn(6, 8), "transposed": lambda: torch.randn(8, 6).t()}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name,index", _fused_inputs())
def test_grad_scale_unscales_like_torchs_fused(name: str, index: int, layout: str) -> None:
    """Scaled gradients with ``grad_scale`` give torch's fused numbers, and the gradients are
    left unscaled as torch's kernels leave them; a transposed parameter runs multi-tensor
    (torch's kernel would be wrong there), so it is compared with torch's default path on the
    unscaled gradients."""
    kwargs = _kwargs(name, index)
    case = OPTIMIZERS[name]
    torch_cls, ours = case.pair
    scale = torch.full((1,), 1024.0)
    results = []
    runs = (
        ("torch-fused", torch_cls, {"fused": True}, True),
        ("ours", ours, {"fused": True}, True),
        ("torch-default", torch_cls, {}, False),
    )
    for _, cls, flags, scaled in runs:
        torch.manual_seed(5)
        p = torch.nn.Parameter(LAYOUTS[layout]())
        opt = cls([p], **kwargs, **flags)
        for _ in range(3):
            g = torch.randn(6, 8)
            p.grad = g * scale if scaled else g
            if scaled:
                opt.grad_scale, opt.found_inf = scale, torch.zeros(())
            opt.step()
            if scaled:
                torch.testing.assert_close(p.grad, g, rtol=0, atol=0)  # unscaled in place
        results.append(p.detach().clone())
    reference = results[0] if layout == "matching" else results[2]
    # the same kernel on the same inputs: identical; else op-order noise of float32 updates
    direct = case.tolerances.direct[torch.float32].kwargs()
    tol = {"rtol": 0, "atol": 0} if layout == "matching" else direct
    torch.testing.assert_close(results[1], reference, **tol)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_scaling_attributes_without_fused_as_torch(name: str) -> None:
    """Algorithms with a fused implementation refuse them on their other paths (and Adafactor,
    which has none, on its paths); the others ignore them (torch never reads them there)."""
    fused = OPTIMIZERS[name].supports("fused") or OPTIMIZERS[name].refuses_amp_scaling
    outcomes = []
    for cls in OPTIMIZERS[name].pair:
        p = torch.nn.Parameter(torch.ones(1, 3))  # a matrix: Muon takes no other
        p.grad = torch.ones(1, 3)
        opt = cls([p], lr=0.1)
        sparse_if_needed(opt, [p])
        opt.found_inf = torch.ones(())
        try:
            opt.step()
            outcomes.append(("stepped", p.detach().clone()))
        except AssertionError as err:
            outcomes.append(("raised", str(err)))
    assert outcomes[0][0] == outcomes[1][0] == ("raised" if fused else "stepped")
    if fused:
        assert outcomes[0][1] == outcomes[1][1]
    else:
        torch.testing.assert_close(outcomes[1][1], outcomes[0][1])


def test_supports_amp_scaling_only_when_fused() -> None:
    p = torch.nn.Parameter(torch.ones(3))
    for name in FUSED:
        torch_cls, ours = OPTIMIZERS[name].pair
        for flags in ({}, {"fused": True}):
            assert getattr(ours([p], **flags), "_step_supports_amp_scaling", False) == getattr(
                torch_cls([p], **flags), "_step_supports_amp_scaling", False
            )
