"""Adamax, RAdam and SparseAdam beyond the table-driven suites: their rules composed anew,
RAdam's change of step structure on the compiled path, and SparseAdam's rows-only step
against torch's own, operation for operation."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import torch

import momentopt
from momentopt import rules
from momentopt.engine import compiled
from momentopt.rules.rectification import THRESHOLD, rectification, sma_lengths

from .helpers import assert_close_report


@pytest.fixture(autouse=True)
def _quiet_sparse_invariant_warning() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse invariant checks")
        yield


def _steps(opt: torch.optim.Optimizer, params: list[torch.Tensor], n: int, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        opt.step()


def _params(dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=dtype)) for s in ((5, 3), (7,))]


# -- the rules, composed anew ----------------------------------------------------------------------
def test_rectification_schedule_is_torchs_formula() -> None:
    """ρ_∞, ρ_t and r_t as Liu et al. define them; no rectification while ρ_t ≤ 5 (t ≤ 5 for
    β2 = 0.999: the first adapted step is the sixth)."""
    beta2 = 0.999
    rho_inf, rho_t = sma_lengths(beta2, 10.0)
    assert rho_inf == pytest.approx(1999.0)
    assert rho_t == pytest.approx(rho_inf - 2 * 10 * beta2**10 / (1 - beta2**10))
    adapted = [t for t in range(1, 12) if rectification(beta2, float(t)) is not None]
    assert adapted[0] == 6 and sma_lengths(beta2, 5.0)[1] <= THRESHOLD
    r = rectification(beta2, 10.0)
    assert r is not None and 0 < r < 1
    assert rectification(0.5, 100.0) is None  # ρ_∞ = 3: never adapted


@pytest.mark.parametrize(
    "name,composed",
    [
        (
            "Adamax",
            momentopt.compose(
                "MyAdamax",
                first=rules.BiasCorrectedAverage(),
                second=rules.InfinityNorm(),
                gradient=(rules.Maximize(), rules.WeightDecay()),
                lr=2e-3,
            ),
        ),
        (
            "RAdam",
            momentopt.compose(
                "MyRAdam",
                first=rules.BiasCorrectedAverage(),
                second=rules.RectifiedSquaredAverage(),
                gradient=(rules.Maximize(), rules.WeightDecay()),
                schedule=(rules.Rectification(),),
                lr=1e-3,
            ),
        ),
    ],
)
def test_composed_from_the_rules_is_the_drop_in(name: str, composed: type) -> None:
    """The new ψ and schedule rules, composed by a user, give torch's numbers (float64)."""
    kwargs = {"weight_decay": 0.1, "maximize": True}
    theirs, ours = _params(), _params()
    _steps(getattr(torch.optim, name)(theirs, **kwargs), theirs, 12)
    _steps(composed(ours, **kwargs), ours, 12)
    for o, t in zip(ours, theirs, strict=True):
        assert_close_report(o, t, name, rtol=1e-12, atol=1e-14)


def test_composed_lazy_average_with_bias_correction_schedule() -> None:
    """LazySquaredAverage + SecondMomentCorrection on dense gradients: Adam's step with ε
    outside the bias correction, ``α·√(1−β2^t)/(1−β1^t) · m/(√v + ε)``."""
    Composed = momentopt.compose(
        "EpsOutsideAdam",
        first=rules.BiasCorrectedAverage(),
        second=rules.LazySquaredAverage(),
        schedule=(rules.SecondMomentCorrection(),),
        lr=1e-2,
    )
    (p,) = [torch.nn.Parameter(torch.linspace(-1, 1, 6, dtype=torch.float64))]
    w, m, v = (
        p.detach().clone(),
        torch.zeros(6, dtype=torch.float64),
        torch.zeros(6, dtype=torch.float64),
    )
    opt = Composed([p], eps=1e-3)
    for t in range(1, 5):
        g = torch.cos(w * t)
        p.grad = g.clone()
        opt.step()
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w = w - 1e-2 * (1 - 0.999**t) ** 0.5 / (1 - 0.9**t) * m / (v.sqrt() + 1e-3)
    assert_close_report(p.detach(), w, "param", rtol=1e-12, atol=1e-15)


# -- RAdam's step structure changes at t = 6 ----------------------------------------------------------
def test_radam_compiled_path_records_each_structure(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled path records the step every time and keys kernels by its structure: the
    un-adapted steps (t ≤ 5) and the adapted ones are two kernels, neither reused for the
    other (the kernels run uncompiled here: what is tested is the keying)."""
    monkeypatch.setattr(compiled, "COMPILE_MIN_NUMEL", 0)
    monkeypatch.setattr(compiled, "_compile", lambda kernel: kernel)
    monkeypatch.setattr(compiled, "_compiled", {})
    theirs, ours = _params(), _params()
    opt_t, opt_o = torch.optim.RAdam(theirs), momentopt.RAdam(ours)
    ops, kernels = [], []
    for step in range(8):
        for p_t, p_o in zip(theirs, ours, strict=True):
            g = torch.sin(p_t.detach() * (step + 1))
            p_t.grad, p_o.grad = g.clone(), g.clone()
        (row,) = opt_o.explain()
        assert row["path"] == "compiled"
        ops.append(row["reason"])
        opt_t.step()
        opt_o.step()
        kernels.append(len(compiled._compiled))
    assert ops[:5] == ["recipe compiled: 4 ops in one pass"] * 5
    assert ops[5:] == ["recipe compiled: 6 ops in one pass"] * 3
    assert kernels == [1] * 5 + [2] * 3
    for o, t in zip(ours, theirs, strict=True):
        assert_close_report(o, t, "param", rtol=1e-12, atol=1e-14)


# -- SparseAdam: torch's step, rows only ----------------------------------------------------------------
def _sparse_grad(rows: list[int], gen: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    values = torch.randn(len(rows), 3, generator=gen, dtype=dtype)
    return torch.sparse_coo_tensor([rows], values, (10, 3))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("kwargs", [{}, {"maximize": True, "betas": (0.5, 0.6), "lr": 0.1}])
def test_sparse_adam_moments_bitwise_and_rows_only(
    dtype: torch.dtype, kwargs: dict[str, Any]
) -> None:
    """Each step from torch's state: the moments equal torch's to the last bit (the same
    operations at the same entries: ``(g − m)·(1−β1)`` added), rows without a gradient keep
    their moments undecayed and their weights, and the weights are torch's up to the
    rounding of the update's last multiply-add (torch scales the quotient, then adds it;
    momentopt adds it with the scale, which torch's kernel may fuse: an ulp of the sum)."""
    gen = torch.Generator().manual_seed(3)
    start = torch.randn(10, 3, generator=gen, dtype=dtype)
    p_t, p_o = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    opt_t = torch.optim.SparseAdam([p_t], **copy.deepcopy(kwargs))
    opt_o = momentopt.SparseAdam([p_o], **copy.deepcopy(kwargs))
    eps = torch.finfo(dtype).eps
    for rows in ([1, 4, 4, 7], [0, 4], [2, 3, 7, 9], []):
        grad = _sparse_grad(rows, gen, dtype)
        before = {k: v.clone() for k, v in opt_o.state.get(p_o, {}).items()}
        p_t.grad, p_o.grad = grad.clone(), grad.clone()
        w_before = p_o.detach().clone()
        opt_t.step()
        opt_o.step()
        st, so = opt_t.state[p_t], opt_o.state[p_o]
        untouched = [r for r in range(10) if r not in rows]
        assert torch.equal(p_o.detach()[untouched], w_before[untouched])
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(so[key], st[key]), key
            if before:
                assert torch.equal(so[key][untouched], before[key][untouched]), key
        assert int(so["step"]) == st["step"]
        update = (p_t.detach() - w_before).abs()
        bound = eps * (p_t.detach().abs() + update)  # an ulp of the sum or the update
        assert ((p_o.detach() - p_t.detach()).abs() <= bound).all()
        p_o.data.copy_(p_t.data)  # each step from torch's weights


def test_sparse_adam_refuses_dense_gradients_before_any_change() -> None:
    p = torch.nn.Parameter(torch.ones(4, 2))
    q = torch.nn.Parameter(torch.ones(3, 2))
    opt = momentopt.SparseAdam([p, q])
    p.grad = torch.ones(4, 2).to_sparse()
    q.grad = torch.ones(3, 2)
    with pytest.raises(RuntimeError, match="SparseAdam does not support dense gradients"):
        opt.step()
    assert not opt.state and torch.equal(p.detach(), torch.ones(4, 2))


def test_sparse_adam_checkpoints_move_both_ways() -> None:
    """torch's state_dict (``step`` a Python int) trains on in ours and ours in torch's, with
    the same numbers; ours is saved in torch's layout."""
    gen = torch.Generator().manual_seed(4)
    start = torch.randn(10, 3, generator=gen)
    grads = [_sparse_grad(r, gen, torch.float32) for r in ([1, 2], [2, 5, 9], [0, 1], [7])]
    runs = []
    for first, second in (
        (torch.optim.SparseAdam, momentopt.SparseAdam),
        (momentopt.SparseAdam, torch.optim.SparseAdam),
        (torch.optim.SparseAdam, torch.optim.SparseAdam),
    ):
        p = torch.nn.Parameter(start.clone())
        opt = first([p], lr=0.05)
        for g in grads[:2]:
            p.grad = g.clone()
            opt.step()
        saved = opt.state_dict()
        assert type(saved["state"][0]["step"]) is int
        p2 = torch.nn.Parameter(p.detach().clone())
        opt2 = second([p2], lr=0.05)
        opt2.load_state_dict(copy.deepcopy(saved))
        for g in grads[2:]:
            p2.grad = g.clone()
            opt2.step()
        runs.append((p2.detach(), opt2.state_dict()))
    reference = runs[2]
    for weights, state in runs[:2]:
        assert_close_report(weights, reference[0], "param", rtol=1e-6, atol=1e-7)
        assert state["state"][0]["step"] == 4 and type(state["state"][0]["step"]) is int
        assert state["param_groups"] == reference[1]["param_groups"]
