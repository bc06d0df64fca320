"""Mixed precision: torch.amp.GradScaler on the CPU and bf16 autocast, as with torch.optim."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from .common import ALGORITHMS, assert_params_close, batches, loss_fn, tiny_model, twin

STEPS = 8
BAD_STEPS = {2: float("inf"), 5: float("nan"), 6: float("-inf")}
FUSED = ("SGD", "Adagrad", "Adam", "AdamW")  # torch's CPU fused kernels


def _scaled_run(name: str, **overrides: Any) -> None:
    model_t, opt_t, model_o, opt_o = twin(name, **overrides)
    scalers = [torch.amp.GradScaler("cpu", init_scale=2.0**12, growth_interval=2) for _ in range(2)]
    for i, (x, y) in enumerate(batches(STEPS)):
        for model, opt, scaler in ((model_t, opt_t, scalers[0]), (model_o, opt_o, scalers[1])):
            opt.zero_grad()
            scaler.scale(loss_fn(model, x, y)).backward()
            if i in BAD_STEPS:
                model[0].weight.grad[0, 0] = BAD_STEPS[i]
            before = [p.detach().clone() for p in model.parameters()]
            scaler.step(opt)
            scaler.update()
            if i in BAD_STEPS:  # skipped: nothing moved
                for p, b in zip(model.parameters(), before, strict=True):
                    assert torch.equal(p, b)
        assert scalers[0].get_scale() == scalers[1].get_scale()
        assert scalers[0].state_dict() == scalers[1].state_dict()
        assert_params_close(model_t, model_o)
    assert scalers[1].get_scale() != 2.0**12  # it backed off and grew
    steps_t = {k: float(s["step"]) for k, s in opt_t.state_dict()["state"].items() if "step" in s}
    steps_o = {k: float(s["step"]) for k, s in opt_o.state_dict()["state"].items() if "step" in s}
    if steps_t and steps_o:
        assert steps_o == steps_t == dict.fromkeys(steps_t, float(STEPS - len(BAD_STEPS)))


@pytest.mark.parametrize("name", ALGORITHMS)
def test_grad_scaler_skips_and_rescales_like_torch(name: str) -> None:
    _scaled_run(name)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_grad_scaler_for_loop(name: str) -> None:
    _scaled_run(name, foreach=False)


@pytest.mark.parametrize("name", FUSED)
def test_grad_scaler_fused(name: str) -> None:
    _scaled_run(name, fused=True)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_bf16_autocast_training(name: str) -> None:
    model_t, opt_t, model_o, opt_o = twin(name)
    for x, y in batches(STEPS):
        for model, opt in ((model_t, opt_t), (model_o, opt_o)):
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(x)
                assert out.dtype == torch.bfloat16
            torch.nn.functional.mse_loss(out.float(), y).backward()
            assert model[0].weight.grad.dtype == torch.float32
            opt.step()
        assert_params_close(model_t, model_o)


@pytest.mark.parametrize("foreach", [False, True, None])
@pytest.mark.parametrize("name", ALGORITHMS)
def test_bf16_parameters(name: str, foreach: bool | None) -> None:
    """Parameters and state kept in bfloat16 (no master copy), as torch.optim allows."""
    model_t, opt_t, model_o, opt_o = twin(name, tiny_model(dtype=torch.bfloat16), foreach=foreach)
    for x, y in batches(STEPS):
        for model, opt in ((model_t, opt_t), (model_o, opt_o)):
            opt.zero_grad()
            loss_fn(model, x.bfloat16(), y.bfloat16()).backward()
            opt.step()
    for s in opt_o.state.values():
        for key, v in s.items():
            if torch.is_tensor(v) and v.dim() > 0:
                assert v.dtype == torch.bfloat16, key
    assert_params_close(model_t, model_o, rtol=1.6e-2, atol=1e-2)
