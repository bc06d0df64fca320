"""momentopt.Prodigy against prodigyopt 1.1.2's ``Prodigy`` (its reference implementation):
trajectories, state and the estimate kept in the groups (``d``, ``d_max``, ``d_numerator``,
``k``...) over a table of hyperparameters; param groups (one at lr 0); checkpoints both ways
(prodigyopt's 0-d ``p0`` of an all-zero parameter too); the checks; and ``d`` reduced across
processes when the parameters are shards."""

from __future__ import annotations

import inspect
import math
from typing import Any

import pytest
import torch
from prodigyopt import Prodigy as ReferenceProdigy
from torch import nn

import momentopt

from .integration.spawn import run_distributed
from .modern_reference import compare, executors_agree, hand_params, train_hand, train_models

ESTIMATE = ("d", "d_max", "d_numerator", "k", "d_denom", "d_hat")

CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "decoupled-decay": {"weight_decay": 0.1},
    "coupled-decay": {"weight_decay": 0.1, "decouple": False},
    "beta1-zero-bias-correction": {"betas": (0.0, 0.99), "use_bias_correction": True},
    "warmup-growth-coef": {"safeguard_warmup": True, "growth_rate": 1.05, "d_coef": 2.0},
    "beta3-d0-eps-lr": {"beta3": 0.9, "d0": 1e-4, "eps": 1e-6, "lr": 0.5},
}


def _same_estimate(opts: Any) -> None:
    """The groups' estimate as prodigyopt keeps it (float64 runs: within rounding)."""
    for key in ESTIMATE:
        ours, theirs = opts[0].param_groups[0][key], opts[1].param_groups[0][key]
        assert math.isclose(ours, theirs, rel_tol=1e-12), (key, ours, theirs)


@pytest.mark.parametrize("name", CONFIGS)
def test_matches_prodigyopt(name: str) -> None:
    kwargs = CONFIGS[name]
    compare(
        lambda p: momentopt.Prodigy(p, **kwargs),
        lambda p: ReferenceProdigy(p, **kwargs),
        exact_state=("step",),
        after=_same_estimate,
    )


# -- slice_p: the estimate's statistics on every slice_p-th entry, bit for bit --------------
SLICED: dict[str, dict[str, Any]] = {
    "defaults": {},
    "decoupled-decay": {"weight_decay": 0.1},
    "coupled-decay-warmup": {"weight_decay": 0.1, "decouple": False, "safeguard_warmup": True},
    "beta1-zero-bias-correction": {"betas": (0.0, 0.99), "use_bias_correction": True},
}


def _assert_bitwise(ours: torch.optim.Optimizer, theirs: torch.optim.Optimizer, what: str) -> None:
    """Parameters, every state (keys in order, shapes, values) and the groups' estimate to
    the bit: momentopt runs prodigyopt's operations on the same tensors, in its order."""
    pa = [p for group in ours.param_groups for p in group["params"]]
    pb = [p for group in theirs.param_groups for p in group["params"]]
    for i, (a, b) in enumerate(zip(pa, pb, strict=True)):
        assert torch.equal(a, b), (what, i, (a - b).abs().max())
        sa, sb = ours.state.get(a, {}), theirs.state.get(b, {})
        assert list(sa) == list(sb), (what, i, list(sa), list(sb))
        for key, value in sb.items():
            mine = sa[key]
            if key == "step":  # prodigyopt's is an int, momentopt's a 0-d tensor (torch's)
                assert float(mine) == value, (what, i, key)
                continue
            assert mine.shape == value.shape, (what, i, key, mine.shape, value.shape)
            assert mine.dtype == value.dtype and torch.equal(mine, value), (what, i, key)
    for ga, gb in zip(ours.param_groups, theirs.param_groups, strict=True):
        for key in ESTIMATE:
            assert ga[key] == gb[key], (what, key, ga[key], gb[key])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("slice_p", [1, 3, 11])
@pytest.mark.parametrize("name", SLICED)
def test_slice_p_matches_prodigyopt_bit_for_bit(
    name: str, slice_p: int, dtype: torch.dtype
) -> None:
    """``slice_p``: ``s`` and ``p0`` of ⌈n/slice_p⌉ entries (every slice_p-th of the flattened
    parameter; a 0-d parameter keeps one), ``d`` from those entries only — prodigyopt's
    numbers and state over 30 steps, on the hand-made parameters (a transposed one, a
    gradient of other strides, missing gradients) and on the model."""
    kwargs = {**SLICED[name], "slice_p": slice_p}
    factories = [
        lambda p: momentopt.Prodigy(p, **kwargs),
        lambda p: ReferenceProdigy(p, **kwargs),
    ]
    (_, ours), (_, theirs) = train_hand(factories, dtype)
    _assert_bitwise(ours, theirs, f"{name} hand")
    (_, ours), (_, theirs) = train_models(factories, dtype)
    _assert_bitwise(ours, theirs, f"{name} model")
    first = next(iter(ours.state.values()))
    assert first["s"].shape == first["p0"].shape


@pytest.mark.parametrize("foreach", [False, True])
def test_slice_p_on_each_executor(foreach: bool) -> None:
    """The sliced statistics on the per-tensor and multi-tensor paths: prodigyopt's, exactly."""
    kwargs = {"weight_decay": 0.1, "slice_p": 3}
    for dtype in (torch.float32, torch.float64):
        (_, ours), (_, theirs) = train_hand(
            [
                lambda p: momentopt.Prodigy(p, **kwargs, foreach=foreach),
                lambda p: ReferenceProdigy(p, **kwargs),
            ],
            dtype,
        )
        _assert_bitwise(ours, theirs, f"foreach={foreach} {dtype}")


@pytest.mark.parametrize("slice_p", [3, 11])
def test_slice_p_checkpoints_load_both_ways(slice_p: int) -> None:
    """A sliced checkpoint (prodigyopt's 0-d ``p0`` of an all-zero parameter too) loads into
    momentopt and momentopt's into prodigyopt; training goes on identically, state too."""
    kwargs = {"slice_p": slice_p, "weight_decay": 0.1}
    for dtype in (torch.float32, torch.float64):
        for first, second in (
            (ReferenceProdigy, momentopt.Prodigy),
            (momentopt.Prodigy, ReferenceProdigy),
        ):

            def make(params: Any, cls: type = first) -> torch.optim.Optimizer:
                with torch.no_grad():
                    params[1].zero_()  # an all-zero parameter
                return cls(params, **kwargs)

            (pa, a), (pb, b) = train_hand([make, make], dtype, 10)
            moved = [nn.Parameter(p.detach().clone()) for p in pb]
            c = second(moved, **kwargs)
            c.load_state_dict(b.state_dict())
            gen = torch.Generator().manual_seed(5)
            for _ in range(20):
                for p, q in zip(pa, moved, strict=True):
                    p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
                    q.grad = p.grad.clone()
                a.step()
                c.step()
            for p, q in zip(pa, moved, strict=True):
                assert torch.equal(p, q), (dtype, first.__module__)
            for p, q in zip(pa, moved, strict=True):  # the same statistics, sliced alike
                for key in ("s", "exp_avg", "exp_avg_sq"):
                    assert torch.equal(a.state[p][key], c.state[q][key]), key


def test_a_sliced_state_of_another_length_is_refused() -> None:
    p = nn.Parameter(torch.randn(10))
    opt = momentopt.Prodigy([p], slice_p=3)
    p.grad = torch.randn(10)
    opt.step()
    assert opt.state[p]["s"].shape == opt.state[p]["p0"].shape == (4,)
    saved = opt.state_dict()
    saved["state"][0]["s"] = torch.zeros(10)  # slice_p=1's length
    with pytest.raises(ValueError, match=r"'s' has shape \(10,\).*state has shape \(4,\)"):
        momentopt.Prodigy([nn.Parameter(torch.randn(10))], slice_p=3).load_state_dict(saved)


# -- found by tests/test_fuzz_modern.py -------------------------------------------------------
def _strided(values: torch.Tensor) -> torch.Tensor:
    """``values`` in every other element of a buffer (a gradient whose flat view is strided)."""
    return torch.zeros(2 * values.numel(), dtype=values.dtype)[::2].view(values.shape).copy_(values)


@pytest.mark.parametrize("foreach", [False, True])
def test_maximize_is_the_reference_on_the_negated_gradient_in_any_layout(foreach: bool) -> None:
    """``maximize=True`` is prodigyopt descending ``−g`` bit for bit, also when ``g`` is a
    strided vector: d's dot product reads the gradient in its own layout (BLAS rounds a
    strided dot product otherwise than a contiguous one's), with the sign taken exactly."""
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(7, generator=gen)
    ours = nn.Parameter(start.clone())
    theirs = nn.Parameter(start.clone())
    a = momentopt.Prodigy([ours], maximize=True, foreach=foreach)
    b = ReferenceProdigy([theirs])
    for _ in range(6):
        g = torch.randn(7, generator=gen)
        ours.grad, theirs.grad = _strided(g), _strided(-g)
        a.step()
        b.step()
        assert torch.equal(ours, theirs)
        assert a.param_groups[0]["d"] == b.param_groups[0]["d"]


def test_decouple_is_the_first_groups() -> None:
    """prodigyopt reads ``decouple`` from the first group for every group (a later group's
    own value is not used): momentopt too, bit for bit."""

    def make(cls: type, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        return cls(
            [{"params": params[:2]}, {"params": params[2:], "decouple": False}],
            weight_decay=0.1,
        )

    (_, ours), (_, theirs) = train_hand(
        [lambda p: make(momentopt.Prodigy, p), lambda p: make(ReferenceProdigy, p)],
        torch.float64,
        12,
    )
    _assert_bitwise(ours, theirs, "decouple of the first group")


@pytest.mark.parametrize("foreach", [False, True])
def test_a_step_without_progress_still_decays_the_averages(foreach: bool) -> None:
    """With beta3 = 0 a step whose gradients are all zero leaves every ``s`` at 0: prodigyopt
    takes no step (params, ``step``, ``k`` unchanged) but its first loop has already decayed
    ``exp_avg`` and ``exp_avg_sq``; momentopt's reduced scalar does the same (``skipped``)."""
    kwargs = {"beta3": 0.0, "weight_decay": 0.1}  # (decoupled: zero gradients, s = 0)
    factories = [
        lambda p: momentopt.Prodigy(p, **kwargs, foreach=foreach),
        lambda p: ReferenceProdigy(p, **kwargs),
    ]
    runs = [(hand_params(torch.float64), None) for _ in factories]
    opts = [make(params) for make, (params, _) in zip(factories, runs, strict=True)]
    gen = torch.Generator().manual_seed(4)
    for step in range(8):
        grads = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in runs[0][0]]
        if step in (4, 5):
            grads = [torch.zeros_like(g) for g in grads]
        for (params, _), opt in zip(runs, opts, strict=True):
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
            opt.step()
        _assert_bitwise(opts[0], opts[1], f"step {step}")
    assert opts[0].param_groups[0]["k"] == 6  # two steps without progress


def test_a_group_of_another_beta1_kind_is_refused() -> None:
    """Every group steps with the first group's betas (prodigyopt's rule); a group whose β1 is
    0 where the first group's is not would keep other state than it steps with: refused where
    it is given, nothing added; other betas are taken (and ignored, as prodigyopt does)."""
    p, q = nn.Parameter(torch.randn(3)), nn.Parameter(torch.randn(2))
    with pytest.raises(ValueError, match=r"param_groups\[1\] has betas=\(0.0, 0.5\)"):
        momentopt.Prodigy([{"params": [p]}, {"params": [q], "betas": (0.0, 0.5)}])
    opt = momentopt.Prodigy([p])
    with pytest.raises(ValueError, match="β1 must be 0 in every group or in none"):
        opt.add_param_group({"params": [q], "betas": (0.0, 0.9)})
    assert len(opt.param_groups) == 1
    opt.add_param_group({"params": [q], "betas": (0.5, 0.9)})
    opt.param_groups[1]["betas"] = (0.0, 0.9)  # changed afterwards: refused by the step
    p.grad, q.grad = torch.randn(3), torch.randn(2)
    with pytest.raises(ValueError, match="β1 must be 0"):
        opt.step()
    assert not opt.state


def test_maximize_and_the_multi_tensor_path() -> None:
    kwargs = {"weight_decay": 0.1}
    compare(
        lambda p: momentopt.Prodigy(p, **kwargs, maximize=True, foreach=True),
        lambda p: ReferenceProdigy(p, **kwargs),
        maximize=True,
        dtypes=(torch.float64,),
        after=_same_estimate,
    )


def test_groups_share_the_estimate_a_group_at_lr_0_only_decays() -> None:
    """One ``d`` for every group, from sums over all of them; a group at lr 0 adds nothing to
    them and keeps its moments, but still takes the step's decay (prodigyopt's global dlr)."""

    def groups(cls: type, params: Any) -> torch.optim.Optimizer:
        p = list(params)
        return cls(
            [{"params": p[:2]}, {"params": [p[2]], "lr": 0.0}, {"params": [p[3]]}],
            weight_decay=0.1,
        )

    compare(
        lambda p: groups(momentopt.Prodigy, p),
        lambda p: groups(ReferenceProdigy, p),
        dtypes=(torch.float64,),
        model=False,
        exact_state=("step",),
        after=lambda opts: [
            math.isclose(a[key], b[key], rel_tol=1e-12) or pytest.fail(key)
            for a, b in zip(opts[0].param_groups, opts[1].param_groups, strict=True)
            for key in ESTIMATE
        ],
    )
    p = [nn.Parameter(torch.randn(2)) for _ in range(2)]
    for cls in (ReferenceProdigy, momentopt.Prodigy):
        opt = cls([{"params": [p[0]]}, {"params": [p[1]], "lr": 0.5}])
        for q in p:
            q.grad = torch.randn(2)
        with pytest.raises(RuntimeError, match="different lr values in different parameter"):
            opt.step()


def test_no_step_until_a_gradient_is_not_zero() -> None:
    """While every ``s`` is 0 (zero gradients), prodigyopt steps nothing (nor ``k``)."""
    p = nn.Parameter(torch.randn(3))
    opt = momentopt.Prodigy([p])
    p.grad = torch.zeros(3)
    before = p.detach().clone()
    opt.step()
    assert torch.equal(p, before)
    assert opt.param_groups[0]["k"] == 0 and opt.state[p]["step"] == 0


def test_executors_bit_for_bit() -> None:
    executors_agree(momentopt.Prodigy, {"weight_decay": 0.1, "use_bias_correction": True})


def test_checkpoints_load_both_ways() -> None:
    """prodigyopt's checkpoint (its ``p0`` of an all-zero parameter a 0-d zero) loads into
    momentopt, and momentopt's into prodigyopt; training goes on identically."""
    kwargs = {"weight_decay": 0.1}
    for first, second in (
        (ReferenceProdigy, momentopt.Prodigy),
        (momentopt.Prodigy, ReferenceProdigy),
    ):

        def make(params: Any, cls: type = first) -> torch.optim.Optimizer:
            with torch.no_grad():
                params[1].zero_()  # an all-zero parameter
            return cls(params, **kwargs)

        (pa, a), (pb, b) = train_hand([make, make], torch.float64, 10)
        moved = [nn.Parameter(p.detach().clone()) for p in pb]
        c = second(moved, **kwargs)
        c.load_state_dict(b.state_dict())
        gen = torch.Generator().manual_seed(5)
        for _ in range(5):
            for p, q in zip(pa, moved, strict=True):
                p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
                q.grad = p.grad.clone()
            a.step()
            c.step()
        for p, q in zip(pa, moved, strict=True):
            assert torch.equal(p, q)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"d0": 0.0}, "Invalid d0 value: 0.0"),
        ({"lr": 0.0}, "Invalid learning rate: 0.0"),
        ({"eps": 0.0}, "Invalid epsilon value: 0.0"),
        ({"betas": (1.0, 0.999)}, "Invalid beta parameter at index 0: 1.0"),
        ({"betas": (0.9, -0.5)}, "Invalid beta parameter at index 1: -0.5"),
    ],
)
def test_invalid_hyperparameters(kwargs: dict[str, Any], match: str) -> None:
    p = nn.Parameter(torch.randn(3))
    for cls in (ReferenceProdigy, momentopt.Prodigy):
        with pytest.raises(ValueError, match=match):
            cls([p], **kwargs)


@pytest.mark.parametrize(
    "slice_p, error",
    [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError), ("3", TypeError)],
)
def test_invalid_slice_p(slice_p: Any, error: type[Exception]) -> None:
    """prodigyopt takes any slice_p and fails at its first step (``[::0]``, ``[::1.5]``);
    momentopt refuses it where it is given, naming it; a group added with it (add_param_group
    checks nothing, as torch's) is refused by the step before anything changes."""
    p = nn.Parameter(torch.randn(3))
    with pytest.raises(error, match="Invalid slice_p value"):
        momentopt.Prodigy([p], slice_p=slice_p)
    opt = momentopt.Prodigy([p])
    q = nn.Parameter(torch.randn(2))
    opt.add_param_group({"params": [q], "slice_p": slice_p})
    p.grad, q.grad = torch.randn(3), torch.randn(2)
    before = [p.detach().clone(), q.detach().clone()]
    with pytest.raises(error, match="Invalid slice_p value"):
        opt.step()
    assert torch.equal(p, before[0]) and torch.equal(q, before[1])
    assert opt.param_groups[0]["k"] == 0 and not opt.state


def test_signature_group_keys_and_state() -> None:
    ours = inspect.signature(momentopt.Prodigy).parameters
    theirs = inspect.signature(ReferenceProdigy).parameters
    assert list(ours) == [*theirs, "maximize", "foreach", "fused", "cautious", "state_precision"]
    for key in theirs:
        assert ours[key].default == theirs[key].default, key
    p = nn.Parameter(torch.randn(2, 3))
    opt, ref = momentopt.Prodigy([p]), ReferenceProdigy([nn.Parameter(p.detach().clone())])
    assert list(opt.defaults) == [*ref.defaults, "maximize", "foreach", "fused"]
    p.grad = torch.randn(2, 3)
    opt.step()
    assert list(opt.state[p]) == ["step", "s", "p0", "exp_avg", "exp_avg_sq"]
    assert opt.state[p]["p0"].shape == (6,)


# -- across processes: shards of one parameter give the single process's d -------------------
STEPS = 8


def _full_run() -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    w = nn.Parameter(torch.randn(10, generator=g, dtype=torch.float64))
    opt = momentopt.Prodigy([w], weight_decay=0.1)
    for _ in range(STEPS):
        w.grad = torch.randn(10, generator=g, dtype=torch.float64)
        opt.step()
    return w.detach()


def sharded_prodigy(rank: int, world_size: int) -> None:
    """Each rank holds half of the vector (``fsdp_in_use``): its d is the whole vector's."""
    g = torch.Generator().manual_seed(7)
    full = torch.randn(10, generator=g, dtype=torch.float64)
    w = nn.Parameter(full.chunk(world_size)[rank].clone())
    opt = momentopt.Prodigy([w], weight_decay=0.1, fsdp_in_use=True)
    for _ in range(STEPS):
        w.grad = torch.randn(10, generator=g, dtype=torch.float64).chunk(world_size)[rank].clone()
        opt.step()
    expected = _full_run().chunk(world_size)[rank]
    torch.testing.assert_close(w.detach(), expected, rtol=1e-12, atol=1e-15)


def test_d_is_reduced_across_processes_for_shards() -> None:
    run_distributed(sharded_prodigy, timeout=60)
