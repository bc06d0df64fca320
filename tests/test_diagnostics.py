"""momentopt.diagnostics: statistics read through the observer hook, never changing a step
(on any executor)."""

from __future__ import annotations

import copy
import csv
import math
import time

import pytest
import torch

import momentopt
from momentopt import diagnostics

CASES = [
    ("SGD", momentopt.SGD, {"lr": 0.1}),
    ("Momentum", momentopt.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
    ("Nesterov", momentopt.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("Adagrad", momentopt.Adagrad, {"lr": 0.1, "lr_decay": 0.01}),
    ("Adadelta", momentopt.Adadelta, {}),
    ("RMSprop", momentopt.RMSprop, {"momentum": 0.9, "centered": True}),
    ("Adam", momentopt.Adam, {"weight_decay": 0.1}),
    ("AMSGrad", momentopt.Adam, {"amsgrad": True}),
    ("NAdam", momentopt.NAdam, {}),
    ("AdamW", momentopt.AdamW, {"lr": 0.01}),
    ("Rprop", momentopt.Rprop, {"lr": 0.01}),
    ("ASGD", momentopt.ASGD, {"lr": 0.1, "t0": 2.0}),
]


def _train(cls, kwargs, flags, watch, steps=6):
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    data = torch.randn(steps, 8, 5)
    opt = cls(model.parameters(), **flags, **kwargs)
    rec = diagnostics.record(opt) if watch else None
    for x in data:
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
    if rec is not None:
        rec.close()
    return model, opt, rec


FLAGS = {
    "default": {},
    "per_tensor": {"foreach": False},
    "multi_tensor": {"foreach": True},
    "fused": {"fused": True},
}
FUSED = (momentopt.SGD, momentopt.Adagrad, momentopt.Adam, momentopt.AdamW)  # torch has fused


@pytest.mark.parametrize("executor", list(FLAGS))
@pytest.mark.parametrize("name,cls,kwargs", CASES, ids=[c[0] for c in CASES])
def test_recording_leaves_the_update_bitwise_identical(name, cls, kwargs, executor):
    """Every executor, default flags included (where torch's fused kernels run)."""
    if executor == "fused" and cls not in FUSED:
        pytest.skip(f"torch.optim.{cls.__name__} has no fused implementation")
    plain, plain_opt, _ = _train(cls, kwargs, FLAGS[executor], watch=False)
    watched, watched_opt, rec = _train(cls, kwargs, FLAGS[executor], watch=True)
    for a, b in zip(plain.parameters(), watched.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(plain_opt.state.values(), watched_opt.state.values(), strict=True):
        for key in a:
            assert torch.equal(torch.as_tensor(a[key]), torch.as_tensor(b[key])), key
    assert len(rec.history) == 6
    row = rec.history[-1]
    assert set(row) == {"step", "group", *diagnostics.Recorder.FIELDS}
    assert row["lr_eff_q05"] <= row["lr_eff_q50"] <= row["lr_eff_q95"]
    assert row["update_to_weight"] > 0
    assert -1.0 - 1e-9 <= row["cos_m_g"] <= 1.0 + 1e-9


def test_statistics_match_the_formulas():
    w = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    opt = momentopt.Adam([w], lr=0.1, betas=(0.5, 0.75), eps=1e-8)
    with diagnostics.record(opt) as rec:
        for _ in range(2):
            opt.zero_grad()
            (w * torch.tensor([1.0, 2.0, 1e-9])).sum().backward()
            opt.step()
    row = rec.history[-1]
    # two identical gradients: v = (1 − β2²)·g², v̂ = g²;  m̂ = g
    g = torch.tensor([1.0, 2.0, 1e-9], dtype=torch.float64)
    eff = 0.1 / (1 - 0.5**2) / (g.abs() * math.sqrt(1 - 0.75**2) / math.sqrt(1 - 0.75**2) + 1e-8)
    assert row["lr_eff_q50"] == pytest.approx(float(eff.median()), rel=1e-5)
    assert row["lr_eff_mean"] == pytest.approx(float(eff.mean()), rel=1e-5)
    assert row["cos_m_g"] == pytest.approx(1.0)
    assert row["eps_share"] == pytest.approx(1 / 3)  # the 1e-9 coordinate: √V < ε
    assert row["grad_norm"] == pytest.approx(float(g.norm()))


def test_sgd_effective_lr_is_the_lr_and_adagrad_decays():
    w = torch.zeros(4, requires_grad=True)
    sgd = momentopt.SGD([w], lr=0.3)
    with diagnostics.record(sgd) as rec:
        sgd.zero_grad()
        w.sum().backward()
        sgd.step()
    assert rec.history[0]["lr_eff_q50"] == pytest.approx(0.3)
    assert math.isnan(rec.history[0]["eps_share"])

    v = torch.zeros(4, requires_grad=True)
    ada = momentopt.Adagrad([v], lr=1.0)
    with diagnostics.record(ada) as rec:
        for _ in range(16):
            ada.zero_grad()
            v.sum().backward()
            ada.step()
    lrs = rec.series("lr_eff_q50")
    assert lrs[0] == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.25)  # α/√t


def test_every_groups_and_close():
    a = torch.zeros(2, requires_grad=True)
    b = torch.zeros(3, requires_grad=True)
    opt = momentopt.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    rec = diagnostics.record(opt, every=2)
    for _ in range(4):
        opt.zero_grad()
        (a.sum() + b.sum()).backward()
        opt.step()
    rec.close()
    assert [(r["step"], r["group"]) for r in rec.history] == [(1, 0), (1, 1), (3, 0), (3, 1)]
    assert rec.series("lr", group=1) == [0.5, 0.5]
    assert opt._step_observer is None
    opt.step()
    assert len(rec.history) == 4
    with pytest.raises(ValueError):
        diagnostics.record(opt, every=0)
    with pytest.raises(TypeError):
        diagnostics.record(torch.optim.SGD([a], lr=0.1))
    with diagnostics.record(opt), pytest.raises(RuntimeError):
        diagnostics.record(opt)


def test_csv_example(tmp_path):
    """The module docstring's CSV example, verbatim in spirit."""
    model = torch.nn.Linear(3, 1)
    opt = momentopt.Adam(model.parameters(), lr=1e-2)
    with diagnostics.record(opt) as rec:
        for _ in range(5):
            opt.zero_grad()
            model(torch.randn(4, 3)).pow(2).mean().backward()
            opt.step()
    path = tmp_path / "diagnostics.csv"
    rec.to_csv(path)
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 5
    assert list(rows[0]) == ["step", "group", *diagnostics.Recorder.FIELDS]
    assert float(rows[-1]["lr_eff_q95"]) >= float(rows[-1]["lr_eff_q05"]) > 0
    assert set(rec.latest()) == set(diagnostics.Recorder.FIELDS)


def test_sparse_gradients_are_skipped_not_broken():
    emb = torch.nn.Embedding(10, 3, sparse=True)
    opt = momentopt.Adagrad(emb.parameters(), lr=0.1)
    reference = copy.deepcopy(emb)
    ref_opt = momentopt.Adagrad(reference.parameters(), lr=0.1)
    idx = torch.tensor([1, 4])
    with diagnostics.record(opt) as rec:
        for module, o in ((emb, opt), (reference, ref_opt)):
            o.zero_grad()
            module(idx).sum().backward()
            o.step()
    assert torch.equal(emb.weight, reference.weight)
    assert rec.history == []


def test_cheap_when_off():
    """Off: the observer slot stays None; the step costs what it cost before recording."""
    w = torch.zeros(1000, requires_grad=True)
    opt = momentopt.Adam([w])
    with diagnostics.record(opt):
        pass
    assert opt._step_observer is None
    assert not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks
    w.grad = torch.ones_like(w)
    start = time.perf_counter()
    for _ in range(20):
        opt.step()
    assert time.perf_counter() - start < 5.0


def test_the_csv_example_script(tmp_path):
    import runpy
    from pathlib import Path

    script = Path(__file__).parents[1] / "examples" / "diagnostics_tensorboard_or_csv.py"
    train = runpy.run_path(str(script))["train"]
    history = train(str(tmp_path / "d.csv"), steps=5)
    rows = list(csv.DictReader((tmp_path / "d.csv").open()))
    assert len(rows) == len(history) == 5
    assert float(rows[0]["lr"]) == pytest.approx(3e-3)
