"""The lineage's names, the registry (--optimizer), step-size matching and the shared lr grid."""

from __future__ import annotations

import math
import re

import pytest

import momentopt
from momentopt.lab import lrsearch
from momentopt.lab.optimizers import (
    MODERN_NAMES,
    NAMES,
    BadOptimizer,
    Registry,
    UnknownName,
    parse_optimizer,
    resolve,
    split_names,
    step_match,
)


def test_the_ten_names_exactly():
    assert NAMES == (
        "SGD",
        "Momentum",
        "Nesterov",
        "Adagrad",
        "Adadelta",
        "RMSprop",
        "Adam",
        "AMSGrad",
        "NAdam",
        "AdamW",
    )
    specs = {s.name: s for s in resolve(None)}
    assert specs["Momentum"].cls is momentopt.SGD and specs["Momentum"].kwargs == {"momentum": 0.9}
    assert specs["Nesterov"].kwargs == {"momentum": 0.9, "nesterov": True}
    assert specs["AMSGrad"].cls is momentopt.Adam and specs["AMSGrad"].kwargs == {"amsgrad": True}


def test_resolve_is_case_insensitive_and_rejects_unknown_names():
    assert [s.name for s in resolve(["adam", "SGD", "Adam"])] == ["Adam", "SGD"]
    with pytest.raises(UnknownName, match="unknown optimizer 'Yogi'.*AMSGrad.*--optimizer"):
        resolve(["Yogi"])
    assert split_names(" Adam, SGD ,") == ["Adam", "SGD"]
    assert split_names("all") is None and split_names(None) is None


def test_registry_adds_and_replaces_in_place():
    registry = Registry()
    registry.put(parse_optimizer('momentum=momentopt:SGD:{"momentum": 0.5}'))
    registry.put(parse_optimizer('Mine=momentopt:Adagrad:{"lr_decay": 0.01}'))
    # "momentum" replaced Momentum, in place
    assert registry.names == (*NAMES, "Adamax", "RAdam", "Muon+AdamW", *MODERN_NAMES, "Mine")
    spec = registry.find("MOMENTUM")
    assert spec is not None and spec.added and spec.kwargs == {"momentum": 0.5}
    assert spec.label() == 'Momentum (momentopt.algorithms.sgd.SGD, {"momentum": 0.5})'
    assert [s.name for s in registry.resolve(None)][-1] == "Mine"
    betas = parse_optimizer('B=momentopt:Adam:{"betas": [0.8, 0.9]}')
    assert betas.kwargs == {"betas": (0.8, 0.9)}  # JSON lists become tuples


@pytest.mark.parametrize(
    "text,message",
    [
        ("Momentum", "needs NAME=module:Class"),
        ("=momentopt:SGD", "needs NAME=module:Class"),
        ("X=momentopt", "needs NAME=module:Class"),
        ("a,b=momentopt:SGD", "bad NAME"),
        ("X=no_such_module_xyz:SGD", "cannot load no_such_module_xyz:SGD"),
        ("X=momentopt:NoSuchClass", "cannot load momentopt:NoSuchClass"),
        ("X=torch.optim:SGD", "not a momentopt optimizer class"),
        ("X=momentopt:SGD:{bad", "bad JSON"),
        ("X=momentopt:SGD:[0.9]", "must be an object"),
        ('X=momentopt:SGD:{"lr": 0.1}', "lr is the lab's to choose"),
        ('X=momentopt:SGD:{"momentum": -1}', "Invalid momentum value"),
        ('X=momentopt:SGD:{"betas": [0.9, 0.99]}', "unexpected keyword argument 'betas'"),
        ('X=momentopt:SGD:{"momentum": "abc"}', "momentum='abc': expected a number"),
        ('X=momentopt:Adam:{"betas": [0.9]}', "expected 2 numbers such as (0.9, 0.999)"),
    ],
)
def test_bad_optimizer_values(text, message):
    with pytest.raises(BadOptimizer, match=re.escape(message)):
        parse_optimizer(text)


def test_step_match():
    specs = {s.name: s for s in resolve(None)}
    assert step_match(specs["SGD"]) == 1.0
    assert step_match(specs["Momentum"]) == pytest.approx(0.1)
    assert step_match(specs["Nesterov"]) == pytest.approx(0.1)
    assert step_match(specs["Adam"]) == 1.0 and step_match(specs["NAdam"]) == 1.0
    damped = parse_optimizer('D=momentopt:SGD:{"momentum": 0.9, "dampening": 0.5}')
    assert step_match(damped) == pytest.approx(0.2)  # buffer settles at (1−d)/(1−μ)·g
    rms = parse_optimizer('R=momentopt:RMSprop:{"momentum": 0.5}')
    assert step_match(rms) == pytest.approx(0.5)


def test_grid_is_shared_log_spaced_and_wide():
    assert lrsearch.grid() == [1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0]
    fine = lrsearch.grid(11)
    assert fine[0] == 1e-4 and fine[-1] == 10.0 and len(fine) == 11
    with pytest.raises(ValueError):
        lrsearch.grid(0)


def test_score_pick_and_edge():
    assert lrsearch.score([1.0, 3.0]) == 2.0
    assert lrsearch.score([1.0, math.nan]) == math.inf
    assert lrsearch.pick([math.inf, 2.0, 1.0, 1.0]) == 2
    assert lrsearch.at_edge(0, 6) and lrsearch.at_edge(5, 6) and not lrsearch.at_edge(3, 6)


def test_beyond_the_lineage_runs_the_digits_network_only():
    from momentopt.lab.scenarios import EXPERIMENTS

    registry = Registry()
    for name in ("Adamax", "RAdam", "Muon+AdamW"):
        spec = registry.find(name)
        assert spec is not None and not spec.added
        assert [e for e in EXPERIMENTS.values() if e.runs_with(spec)] == [EXPERIMENTS["digits"]]
    assert registry.find("Adamax").cls is momentopt.Adamax
    assert registry.find("RAdam").cls is momentopt.RAdam
    swapped = Registry()
    swapped.put(parse_optimizer("adamax=momentopt:Adamax"))  # a user's Adamax runs everything
    assert all(e.runs_with(swapped.find("Adamax")) for e in EXPERIMENTS.values() if not e.only)


def test_muon_adamw_is_muon_on_matrices_and_adamw_on_the_rest():
    import torch

    from momentopt.lab.optimizers import MuonAdamW

    torch.manual_seed(0)
    shapes = ((6, 4), (4,), (4, 3), (3,))
    tensors = [torch.randn(s) for s in shapes]
    mine = [t.clone().requires_grad_() for t in tensors]
    ref = [t.clone().requires_grad_() for t in tensors]
    opt = MuonAdamW([{"params": mine[:2], "lr": 0.1}, {"params": mine[2:], "lr": 0.01}])
    assert [[p.ndim for p in g["params"]] for g in opt.param_groups] == [[2], [2], [1], [1]]
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01, 0.1, 0.01]
    muon = momentopt.Muon(
        [{"params": [ref[0]], "lr": 0.1}, {"params": [ref[2]], "lr": 0.01}],
        adjust_lr_fn="match_rms_adamw",
    )
    adamw = momentopt.AdamW([{"params": [ref[1]], "lr": 0.1}, {"params": [ref[3]], "lr": 0.01}])
    for _ in range(3):
        grads = [torch.randn(s) for s in shapes]
        for ps in (mine, ref):
            for p, g in zip(ps, grads, strict=True):
                p.grad = g.clone()
        opt.step()
        muon.step()
        adamw.step()
        opt.zero_grad()
        assert all(p.grad is None for p in mine)
    for a, b, t in zip(mine, ref, tensors, strict=True):
        assert torch.equal(a, b) and not torch.equal(a, t)
    assert [step for step, _ in opt.describe()][0].startswith("Muon: ")
