"""torch.optim.swa_utils: AveragedModel (SWA and EMA), SWALR and update_bn with momentopt."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import SWALR, AveragedModel, get_ema_multi_avg_fn, update_bn

from ..helpers import assert_close_report
from .common import ALGORITHMS, KWARGS, PAIRS, TOL, assert_params_close, batches, loss_fn, twin

STEPS = 10
SWA_START = 4


@pytest.mark.parametrize("average", ["swa", "ema"])
@pytest.mark.parametrize("name", ALGORITHMS)
def test_averaged_model_and_swalr(name: str, average: str) -> None:
    model_t, opt_t, model_o, opt_o = twin(name)
    kwargs = {"multi_avg_fn": get_ema_multi_avg_fn(0.8)} if average == "ema" else {}
    runs = []
    for model, opt in ((model_t, opt_t), (model_o, opt_o)):
        avg = AveragedModel(model, **kwargs)
        sched = SWALR(opt, swa_lr=KWARGS[name]["lr"] / 4, anneal_epochs=3, anneal_strategy="cos")
        runs.append((model, opt, avg, sched))
    for i, (x, y) in enumerate(batches(STEPS)):
        for model, opt, avg, sched in runs:
            opt.zero_grad()
            loss_fn(model, x, y).backward()
            opt.step()
            if i >= SWA_START:
                avg.update_parameters(model)
                sched.step()
        assert opt_o.param_groups[0]["lr"] == pytest.approx(opt_t.param_groups[0]["lr"], rel=1e-12)
        assert_params_close(model_t, model_o)
    (_, _, avg_t, _), (_, _, avg_o, _) = runs
    assert int(avg_o.n_averaged) == int(avg_t.n_averaged) == STEPS - SWA_START
    assert_params_close(avg_t.module, avg_o.module)
    assert not torch.equal(avg_o.module[0].weight, model_o[0].weight)  # it is an average


@pytest.mark.parametrize("name", ALGORITHMS)
def test_update_bn_after_swa(name: str) -> None:
    torch.manual_seed(0)  # no bias before BatchNorm: its gradient would be rounding noise
    net = nn.Sequential(nn.Linear(6, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    data = batches(6)
    results = []
    for cls in PAIRS[name]:
        model = copy.deepcopy(net)
        opt = cls(model.parameters(), **KWARGS[name])
        avg = AveragedModel(model)
        for x, y in data:
            opt.zero_grad()
            loss_fn(model, x, y).backward()
            opt.step()
            avg.update_parameters(model)
        update_bn([x for x, _ in data], avg)
        results.append(avg)
    assert_params_close(results[0], results[1])
    bn_t, bn_o = results[0].module[1], results[1].module[1]
    assert_close_report(bn_o.running_mean, bn_t.running_mean, "running_mean", **TOL)
    assert_close_report(bn_o.running_var, bn_t.running_var, "running_var", **TOL)
