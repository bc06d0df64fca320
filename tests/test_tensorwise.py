"""Rules that are not elementwise: tensorwise ops (norms, means along dims, matrix products,
per-tensor numbers), state shaped and kept by the parameter's shape (Adafactor's factored
second moment), functions of matrices (Muon's Newton–Schulz, batched by shape), and what the
step plan says about them. The table-driven suites check Adafactor and Muon against torch on
torch's inputs; this file checks the mechanisms themselves and the cases those inputs miss."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import momentopt
from momentopt import rules
from momentopt.engine.tensorlist import TensorList
from momentopt.rules import Scalars, each

from .helpers import assert_close_report, assert_matches_torch, assert_state_dicts_close

EXACT = {"rtol": 0.0, "atol": 0.0}


def _tensors(shapes: list[tuple[int, ...]], seed: int = 0) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g) for s in shapes]


# -- per-tensor numbers ------------------------------------------------------------------------
def test_scalars_compute_as_python_per_tensor() -> None:
    s = Scalars([4.0, float("nan"), 0.25])
    half = s / 2 + 1
    assert half.values[0] == 3.0 and math.isnan(half.values[1]) and half.values[2] == 1.125
    assert (1 / s).values[0] == 0.25 and (s**0.5).values[2] == 0.5 and (-s).values[0] == -4.0
    # Python's max keeps its first argument unless the second is larger: NaN gives the floor
    assert each(max, 1e-3, s).values == (4.0, 1e-3, 0.25)
    assert each(max, 1e-3, 0.5) == 0.5  # plain numbers: plain Python
    with pytest.raises(ValueError, match="different lengths"):
        each(max, s, Scalars([1.0]))


SHAPES = [(3, 4), (5,), (), (2, 3, 4), (3, 4)]


def test_tensorwise_ops_on_a_list_are_the_ops_on_each_tensor() -> None:
    """Each tensorwise op, and a per-tensor number as an operand and as ``alpha=``, give on a
    TensorList what the per-tensor path computes, bit for bit."""
    ts = _tensors(SHAPES)
    tl = TensorList([t.clone() for t in ts])
    norms = tl.norm(2)
    assert all(torch.equal(a, t.norm(2)) for a, t in zip(norms.tensors, ts, strict=True))
    assert tl.norm(2).item().values == tuple(t.norm(2).item() for t in ts)
    assert tl.numel().values == tuple(t.numel() for t in ts)
    mats = TensorList([t for t in ts if t.dim() > 1])
    for dim in (-1, -2):
        got = mats.norm(dim=dim, keepdim=True)
        for a, t in zip(got.tensors, mats.tensors, strict=True):
            assert torch.equal(a, t.norm(dim=dim, keepdim=True))
        sizes = mats.size(dim)
        assert sizes.values == tuple(t.size(dim) for t in mats.tensors)
        means = got.mul_(got).div_(sizes)  # a Scalars operand: one number per tensor
        for a, t in zip(means.tensors, mats.tensors, strict=True):
            n = t.norm(dim=dim, keepdim=True)
            assert torch.equal(a, n.mul_(n).div_(t.size(dim)))
    rows = mats.mean(dim=-1, keepdim=True)
    cols = mats.mean(dim=-2, keepdim=True)
    outer = rows @ cols
    for o, r, c in zip(outer.tensors, rows.tensors, cols.tensors, strict=True):
        assert torch.equal(o, r @ c)
    # alpha= one per tensor: each tensor's own add_, in one rounding (as the per-tensor path)
    scales = Scalars([0.1, 0.2, 0.1, 0.4, 0.5])  # two share a value: one call for both
    others = _tensors(SHAPES, seed=1)
    tl.add_(TensorList(others), alpha=scales)
    for a, t, o, s in zip(tl.tensors, ts, others, scales.values, strict=True):
        assert torch.equal(a, t.clone().add_(o, alpha=s))


# -- state shaped by the parameter -------------------------------------------------------------
def test_factored_state_shapes_buckets_and_torch_layout() -> None:
    """row_var/col_var over the last two dims for 2+ dims, variance otherwise; matrices and
    vectors step in separate buckets; the state dict is torch's, key for key and shape for
    shape."""
    shapes = [(2, 3, 4), (5,), (), (4, 3)]
    ps = [nn.Parameter(t) for t in _tensors(shapes)]
    qs = [nn.Parameter(p.detach().clone()) for p in ps]
    ours, theirs = momentopt.Adafactor(ps, foreach=True), torch.optim.Adafactor(qs, foreach=True)
    for step in range(3):
        for p, q in zip(ps, qs, strict=True):
            p.grad = torch.cos(p.detach() * (step + 1))
            q.grad = p.grad.clone()
        ours.step()
        theirs.step()
    assert [row["tensors"] for row in ours.explain()] == [2, 2]  # matrices, then the others
    sd_o, sd_t = ours.state_dict(), theirs.state_dict()
    for i in range(len(shapes)):
        assert list(sd_o["state"][i]) == list(sd_t["state"][i])
        for key, value in sd_o["state"][i].items():
            assert value.shape == sd_t["state"][i][key].shape, (i, key)
    assert sd_o["state"][0]["row_var"].shape == (2, 3, 1)
    assert sd_o["state"][0]["col_var"].shape == (2, 1, 4)
    assert_state_dicts_close(sd_o, sd_t, rtol=1e-6, atol=1e-7)


def test_a_state_of_the_wrong_factored_shape_is_refused() -> None:
    p = nn.Parameter(torch.randn(4, 3))
    opt = momentopt.Adafactor([p])
    p.grad = torch.randn(4, 3)
    opt.step()
    sd = copy.deepcopy(opt.state_dict())
    sd["state"][0]["row_var"] = torch.zeros(4, 3)  # the parameter's shape, not the factor's
    with pytest.raises(ValueError, match=r"'row_var' has shape \(4, 3\).*state has shape \(4, 1\)"):
        opt.load_state_dict(sd)
    sd["state"][0]["row_var"] = torch.zeros(4, 1)
    sd["state"][0]["variance"] = torch.zeros(4, 3)  # a vector's state on a matrix
    with pytest.raises(ValueError, match="unknown state key"):
        opt.load_state_dict(sd)


def test_adafactor_eps1_none_is_the_first_parameters_dtype_for_the_group() -> None:
    """torch takes ε₁ = finfo(dtype).eps of the group's first parameter with a gradient, for
    every parameter (a float64 parameter after a float32 one gets float32's)."""
    dtypes = (torch.float32, torch.float64)
    runs = []
    for cls, kwargs in (
        (torch.optim.Adafactor, {}),
        (momentopt.Adafactor, {}),
        (momentopt.Adafactor, {"eps": (torch.finfo(torch.float64).eps, 1e-3)}),
    ):
        ps = [nn.Parameter(torch.linspace(1, 2, 6, dtype=d).view(3, 2)) for d in dtypes]
        opt = cls(ps, **kwargs)
        for p in ps:  # tiny gradients: ε₁ decides the denominator
            p.grad = torch.full_like(p, 1e-10)
        opt.step()
        runs.append(ps)
    theirs, ours, own_eps = runs
    for p, q in zip(ours, theirs, strict=True):
        assert_close_report(p, q, "param", rtol=1e-12, atol=0.0)
    assert not torch.allclose(own_eps[1], theirs[1], rtol=1e-6, atol=0.0)  # it matters


# -- functions of matrices: Muon's batched Newton–Schulz ---------------------------------------
NS_TOLERANCE = 8
"""Batched against torch's single-matrix Newton–Schulz: |ΔO| ≤ 8 bfloat16 ulps of the matrix's
largest entry (8·2⁻⁸·max|O|). Why: a batched bfloat16 product (``torch.baddbmm``) rounds as the
single one (``torch.addmm``) except in rare elements, by one bfloat16 ulp; the remaining
iterations (at most 5) spread and amplify that difference. Measured on an AVX-512 CPU over
4 800 matrices of shapes 2×5 to 16×16 (the rarest and worst cases): 28 matrices differ, by
at most 5.3 such units; none of 1 080 matrices of 8×32 to 192×64 differs."""


def _bfloat16_close(ours: Tensor, theirs: Tensor, what: str) -> None:
    scale = theirs.float().abs().max().item() * 2**-8
    assert_close_report(ours.float(), theirs.float(), what, rtol=0.0, atol=NS_TOLERANCE * scale)


GPT_LIKE = [(3 * 32, 32), (32, 32), (4 * 32, 32), (32, 4 * 32)]
"""The bench's GPT-like block matrices (3w×w, w×w, 4w×w, w×4w) at width 32 instead of 256."""


def test_batched_newton_schulz_is_torchs_per_matrix_within_bfloat16() -> None:
    """Six blocks' matrices of each GPT-like shape (and small ones, where the rare rounding
    differences show), orthogonalised as one batch per shape, against torch's function on
    each matrix; and a batch is each of its matrices alone through our own function."""
    coefficients = rules.orthogonal.NS_COEFFICIENTS
    ns = rules.newton_schulz(coefficients, 5, 1e-7)
    torchs = torch.optim._muon._zeropower_via_newtonschulz
    exact = total = 0
    for shape in [*GPT_LIKE, (4, 4), (16, 16)]:
        matrices = _tensors([shape] * 6, seed=shape[0])
        batch = ns(torch.stack(matrices))
        assert batch.dtype == torch.bfloat16 and batch.shape == (6, *shape)
        for k, m in enumerate(matrices):
            theirs = torchs(m, coefficients, 5, 1e-7)
            _bfloat16_close(batch[k], theirs, f"{shape} #{k}")
            assert torch.equal(ns(m), theirs)  # one matrix: torch's function, bit for bit
            exact += torch.equal(batch[k], theirs)
            total += 1
    assert exact >= total - 2  # rounding differences are rare, not the rule
    # orthogonal-ish: the singular values of NS(X) are near 1 (0.5–1.5, Jordan et al.)
    singular = torch.linalg.svdvals(ns(torch.randn(32, 64)).float())
    assert 0.5 < singular.min() and singular.max() < 1.5


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"nesterov": False, "adjust_lr_fn": "match_rms_adamw", "ns_steps": 3}],
    ids=["default", "variant"],
)
def test_muon_batches_each_shape_once_and_steps_like_torch(
    kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default path calls the function of matrices once per shape, with the stacked
    matrices; one step from the same state is torch's step within the bfloat16 bound
    (scaled by the adjusted learning rate), and the momentum buffers are torch's exactly."""
    calls: list[tuple[int, ...]] = []
    real = rules.orthogonal.newton_schulz

    def counted(*args: Any) -> Any:
        fn = real(*args)

        @rules.matrix_function
        def orthogonalize(x: Tensor) -> Tensor:
            calls.append(tuple(x.shape))
            return fn(x)

        return orthogonalize

    monkeypatch.setattr(rules.orthogonal, "newton_schulz", counted)
    shapes = [(8, 32)] * 3 + [(40, 6)] * 3 + [(16, 16)] * 2 + [(5, 7)]
    params = _tensors(shapes, seed=4)
    params[1] = params[1].t().contiguous().t()  # same values, transposed memory
    ps = [nn.Parameter(t.clone()) for t in params]
    qs = [nn.Parameter(t.clone()) for t in params]
    ours, theirs = momentopt.Muon(ps, **kwargs), torch.optim.Muon(qs, **kwargs)
    for p, q in zip(ps, qs, strict=True):
        p.grad = torch.sin(p.detach() * 3) + 0.1 * p.detach()
        q.grad = p.grad.clone()
        ours.state[p]["momentum_buffer"] = torch.randn_like(p)  # a state mid-training
        theirs.state[q]["momentum_buffer"] = ours.state[p]["momentum_buffer"].clone()
    ours.step()
    theirs.step()
    assert sorted(calls) == sorted([(3, 8, 32), (3, 40, 6), (2, 16, 16), (5, 7)])
    for i, (p, q) in enumerate(zip(ps, qs, strict=True)):
        a, b = q.shape
        fn = kwargs.get("adjust_lr_fn")
        adjusted = 1e-3 * (0.2 * math.sqrt(max(a, b)) if fn else math.sqrt(max(1, a / b)))
        bound = adjusted * NS_TOLERANCE * 1.5 * 2**-8  # |O| <= 1.5 (the iteration's range)
        assert_close_report(p, q, f"param {i}", rtol=0.0, atol=bound)
    assert_state_dicts_close(ours.state_dict(), theirs.state_dict(), **EXACT)
    (row,) = ours.explain()
    assert row["path"] == "multi-tensor" and row["tensors"] == len(ps)


def test_muon_step_time_refusals_change_nothing() -> None:
    """torch raises these in its loop after updating the earlier parameters' momentum; ours
    before anything changes, with torch's type and message."""
    p = nn.Parameter(torch.randn(3, 4))
    for change, error, message in (
        ({"ns_steps": 100}, ValueError, "Number of steps must be less than 100"),
        ({"ns_coefficients": (1.0, 2.0)}, ValueError, "exactly 3 values"),
    ):
        opt = momentopt.Muon([p])
        opt.param_groups[0].update(change)
        p.grad = torch.ones(3, 4)
        before = p.detach().clone()
        with pytest.raises(error, match=message):
            opt.step()
        assert torch.equal(p, before) and not opt.state


# -- the plan says why these recipes are not compiled --------------------------------------------
@pytest.mark.parametrize(
    ("cls", "uses"), [(momentopt.Adafactor, "norm"), (momentopt.Muon, "size")], ids=str
)
def test_the_plan_says_why_it_does_not_compile(cls: type, uses: str) -> None:
    p = nn.Parameter(torch.randn(1 << 11, 1 << 10))  # large enough to compile, were it elementwise
    p.grad = torch.randn_like(p)
    (row,) = cls([p]).explain()
    assert row["path"] == "multi-tensor"
    assert row["reason"].startswith(f"not compiled: the step uses {uses} (")


# -- the mechanisms from compose -----------------------------------------------------------------
def _composed_runs(cls: type, params: list[Tensor], **kwargs: Any) -> list[Any]:
    """The same training on every path (per-tensor, multi-tensor, default flags)."""
    runs = []
    for flags in ({"foreach": False}, {"foreach": True}, {}):
        ps = [nn.Parameter(t.clone()) for t in params]
        opt = cls(ps, **kwargs, **flags)
        for step in range(4):
            for p in ps:
                p.grad = torch.cos(p.detach() * (step + 1))
            opt.step()
        runs.append((ps, opt))
    return runs


def test_factored_second_moment_and_orthogonalised_momentum_compose() -> None:
    """Adafactor's ψ under heavy-ball momentum, and a heavy ball orthogonalised: classes from
    compose run on every path with the same numbers, and the plan says why not compiled."""
    FactoredMomentum = momentopt.compose(
        "FactoredMomentum",
        first=rules.HeavyBall(),
        second=rules.FactoredSquaredAverage(),
        schedule=(rules.RelativeStepSize(),),
        lr=1e-2,
        momentum=0.9,
    )
    OrthogonalHeavyBall = momentopt.compose(
        "OrthogonalHeavyBall",
        first=rules.Orthogonalized(rules.HeavyBall()),
        gradient=(rules.WeightDecay(decoupled=True),),
        lr=1e-2,
        momentum=0.9,
    )
    for cls, shapes in (
        (FactoredMomentum, [(4, 3), (5,), (2, 3, 4)]),
        (OrthogonalHeavyBall, [(4, 3), (4, 3), (3, 6)]),
    ):
        runs = _composed_runs(cls, _tensors(shapes, seed=7), weight_decay=0.1)
        for ps, _ in runs[1:]:
            for a, b in zip(ps, runs[0][0], strict=True):
                assert_close_report(a, b, cls.__name__, **EXACT)
        assert all(r["reason"].startswith("not compiled") for r in runs[2][1].explain())


def test_composed_eps_pair_is_checked_per_element() -> None:
    Factored = momentopt.compose("Factored", second=rules.FactoredSquaredAverage())
    with pytest.raises(ValueError, match="Invalid eps value: -1"):
        Factored([nn.Parameter(torch.randn(2, 2))], eps=(-1.0, 1e-3))
    Factored([nn.Parameter(torch.randn(2, 2))], eps=(None, 1e-3))


def test_adafactor_on_float64_matches_torchs_float64_closely() -> None:
    """float64 against torch's for-loop: the update ``g/max(√V̂, ε₁)`` (torch:
    ``g·rsqrt(max(V̂, ε₁²))``) rounds differently by an ulp; nothing larger."""
    shapes = [(6, 5), (7,), (2, 3, 4)]
    ps = [nn.Parameter(t.double()) for t in _tensors(shapes, seed=9)]
    qs = [nn.Parameter(p.detach().clone()) for p in ps]
    ours = momentopt.Adafactor(ps, weight_decay=0.1, foreach=False)
    theirs = torch.optim.Adafactor(qs, weight_decay=0.1, foreach=False)
    for step in range(20):
        for p, q in zip(ps, qs, strict=True):
            p.grad = torch.sin(p.detach() * (step + 1))
            q.grad = p.grad.clone()
        ours.step()
        theirs.step()
    for p, q in zip(ps, qs, strict=True):
        assert_matches_torch(p, q, None, "param")


def test_bench_runs_muon_on_the_gpt_like_matrices_only(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``momentopt bench``: Muon on the GPT-like set's block matrices (its only set by
    default), against torch's one implementation (the set shrunk to width 16 here)."""
    import json

    from momentopt.bench import cli
    from momentopt.cli import main

    monkeypatch.setattr(cli, "WARMUP_STEPS", 1)
    width = 16
    blocks = [(3 * width, width), (width,), (width, 4 * width)] * 2
    shapes = [(64, width), (64, width), *blocks, (width,), (width,), (64, width)]
    monkeypatch.setattr(cli, "gpt_like", lambda quick: [torch.randn(s) for s in shapes])
    out = tmp_path / "bench.json"
    args = ["bench", "--quick", "--algos", "Muon", "--rounds", "1", "--json", str(out)]
    assert main(args) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert (row["config"], row["set"], row["tensors"]) == ("Muon", "gpt-matrices", 4)
    assert set(row["ms"]) == {"momentopt", "for-loop"} and row["target"] == 0.5


@pytest.mark.parametrize("executor", ["per-tensor", "multi-tensor"])
@pytest.mark.parametrize("cls", [momentopt.Adafactor, momentopt.Muon], ids=str)
def test_diagnostics_of_per_tensor_step_sizes(
    cls: type, executor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recording leaves the numbers bitwise unchanged (Adafactor's update is written into its
    denominator: the recorder is shown ψ's denominator as ψ gave it), and the row reports the
    per-tensor step sizes (Adafactor's relative step, Muon's shape-adjusted lr) by their mean."""
    from momentopt import diagnostics

    monkeypatch.setenv("MOMENTOPT_EXECUTOR", executor)
    runs = []
    for watch in (False, True):
        ps = [nn.Parameter(t) for t in _tensors([(6, 4), (4, 6), (6, 4)], seed=11)]
        opt = cls(ps)
        rec = diagnostics.record(opt) if watch else None
        for step in range(3):
            for p in ps:
                p.grad = torch.cos(p.detach() * (step + 1))
            opt.step()
        if rec is not None:
            rec.close()
        runs.append((ps, opt, rec))
    (plain, plain_opt, _), (watched, watched_opt, rec) = runs
    for a, b in zip(plain, watched, strict=True):
        assert torch.equal(a, b)
    assert_state_dicts_close(watched_opt.state_dict(), plain_opt.state_dict(), **EXACT)
    row = rec.history[-1]
    assert row["lr_eff_q05"] <= row["lr_eff_q50"] <= row["lr_eff_q95"]
    assert math.isfinite(row["lr"]) and row["update_to_weight"] > 0
    if cls is momentopt.Muon:  # the mean of 1e-3·√max(1, A/B) over (6,4), (4,6), (6,4)
        expected = 1e-3 * (2 * math.sqrt(6 / 4) + 1) / 3
        assert row["lr"] == pytest.approx(expected, rel=1e-12)


def test_diagnostics_see_adafactors_denominator_before_the_update_is_written_into_it() -> None:
    """At t = 1, β̂₂ = 0: V̂ = g², the denominator is |g| = 0.5 and RMS(u) = 1 (no clipping), so
    the effective step α_t/√V̂ = max(ε₂, RMS(w))·min(α, 1)/|g| = 2·0.01/0.5 everywhere."""
    from momentopt import diagnostics

    p = nn.Parameter(torch.full((4,), 2.0))
    opt = momentopt.Adafactor([p])
    with diagnostics.record(opt) as rec:
        p.grad = torch.full((4,), 0.5)
        opt.step()
    row = rec.history[-1]
    assert row["lr_eff_q05"] == row["lr_eff_q95"] == pytest.approx(0.04, rel=1e-6)
