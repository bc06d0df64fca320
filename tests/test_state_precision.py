"""``state_precision`` (momentopt/engine/precision.py, compact.py): state stored as 8-bit
blockwise codes or bfloat16 with stochastic rounding, for every recipe optimizer.

The reference semantics: a step with compact state is the full-precision step of the decoded
state, whose new state is then encoded. So one step from a compact state must give the very
parameters a full-precision optimizer loaded with the decoded state gives, and the codes of
encoding that optimizer's new state (bf16: one of the two bfloat16 neighbours of it).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import momentopt
from momentopt.engine.compact import (
    BLOCK,
    element_index,
    encode_int8,
    rounding_salt,
    stochastic_bf16,
)
from momentopt.engine.precision import MIN_NUMEL, full_precision_state_dict, stored_bytes

from .optimizer_table import OPTIMIZERS

# -- the table ---------------------------------------------------------------------------------
CASES: dict[str, tuple[Callable[..., torch.optim.Optimizer], dict[str, Any]]] = {
    "SGD": (momentopt.SGD, {"lr": 0.01, "momentum": 0.9}),
    "Adagrad": (momentopt.Adagrad, {"lr": 0.05, "initial_accumulator_value": 0.1}),
    "Adadelta": (momentopt.Adadelta, {"lr": 1.0}),
    "RMSprop": (momentopt.RMSprop, {"lr": 0.01, "momentum": 0.9, "centered": True}),
    "Adam": (momentopt.Adam, {"lr": 0.01, "amsgrad": True}),
    "AdamW": (momentopt.AdamW, {"lr": 0.01}),
    "NAdam": (momentopt.NAdam, {"lr": 0.01}),
    "RAdam": (momentopt.RAdam, {"lr": 0.01}),
    "Adamax": (momentopt.Adamax, {"lr": 0.01}),
    "ASGD": (momentopt.ASGD, {"lr": 0.01}),
    "Rprop": (momentopt.Rprop, {"lr": 0.01}),
    "Adafactor": (momentopt.Adafactor, {"lr": 0.01}),
    "Muon": (momentopt.Muon, {"lr": 0.01}),
    "SparseAdam": (momentopt.SparseAdam, {"lr": 0.01}),
    "Lion": (momentopt.Lion, {"lr": 1e-3, "weight_decay": 0.1}),
    "ADOPT": (momentopt.ADOPT, {"lr": 0.01}),
    "AdEMAMix": (momentopt.AdEMAMix, {"lr": 0.01}),
    "ScheduleFreeAdamW": (momentopt.ScheduleFreeAdamW, {"lr": 0.01}),
    "ScheduleFreeSGD": (momentopt.ScheduleFreeSGD, {"lr": 0.1}),
    "Prodigy": (momentopt.Prodigy, {"lr": 1.0}),
}
"""Every recipe optimizer, with the options that make it keep all its states."""

SIGNED = {"momentum_buffer", "exp_avg", "grad_avg", "prev", "exp_avg_fast", "exp_avg_slow", "ax"}
NON_NEGATIVE = {
    "exp_avg_sq",
    "max_exp_avg_sq",
    "sum",
    "square_avg",
    "acc_delta",
    "exp_inf",
    "step_size",
    "variance",
}
ITERATES = {"z"}
"""States that start as a copy of the parameter: full precision under a string setting (ASGD's
average ``ax`` starts at zero, as torch's, and is stored like a moment)."""
SMALL = {"step", "eta", "mu", "mu_product", "row_var", "col_var", "s", "p0"}
"""Scalars and states not shaped like their parameter (factored, sampled): never compact."""

PRECISIONS = ("int8", "bf16")


def test_every_optimizer_is_in_the_table() -> None:
    assert set(OPTIMIZERS) - {"LBFGS"} <= set(CASES)  # (LBFGS is no recipe; see its docs)


def _params(name: str, dtype: torch.dtype = torch.float32) -> list[nn.Parameter]:
    """A compact-sized matrix (72·64 = 4608 elements, whole blocks), a vector of 5000 (a
    partial last block; Adafactor's unfactored variance) and a small tensor (full precision)."""
    g = torch.Generator().manual_seed(0)
    shapes = [(72, 64), (80, 64)] if name == "Muon" else [(72, 64), (5000,), (10,)]
    return [nn.Parameter(torch.randn(s, generator=g, dtype=dtype)) for s in shapes]


def _set_grads(name: str, params: list[nn.Parameter], step: int) -> None:
    g = torch.Generator().manual_seed(100 + step)
    for p in params:
        grad = torch.randn(p.shape, generator=g, dtype=p.dtype) * (1 + step)
        if name == "SparseAdam":
            rows = torch.zeros(p.shape[0], dtype=torch.bool)
            rows[torch.randperm(p.shape[0], generator=g)[: max(1, p.shape[0] // 3)]] = True
            grad = (grad * rows.view(-1, *[1] * (p.dim() - 1))).to_sparse()
        p.grad = grad


def _make(name: str, params: list[nn.Parameter], **options: Any) -> torch.optim.Optimizer:
    cls, kwargs = CASES[name]
    opt = cls(params, **kwargs, **options)
    if hasattr(opt, "train"):  # (schedule-free steps in train mode only)
        opt.train()
    return opt


def _train(name: str, steps: int, **options: Any) -> tuple[list[nn.Parameter], Any]:
    params = _params(name)
    opt = _make(name, params, **options)
    for step in range(steps):
        _set_grads(name, params, step)
        opt.step()
    return params, opt


def _copy_params(params: list[nn.Parameter]) -> list[nn.Parameter]:
    return [nn.Parameter(p.detach().clone()) for p in params]


@pytest.fixture
def executor(monkeypatch: pytest.MonkeyPatch) -> str:
    """The reference path (the multi-tensor path is judged against it bit for bit, the
    compiled one within a code: below)."""
    monkeypatch.setenv("MOMENTOPT_EXECUTOR", "per-tensor")
    return "per-tensor"


# -- the reference semantics -------------------------------------------------------------------
def _bf16_neighbours(value: Tensor) -> tuple[Tensor, Tensor]:
    """The bfloat16 values just below and above each float32 ``value`` in magnitude (equal
    where ``value`` is one)."""
    bits = value.float().view(torch.int32).to(torch.int64)
    down = (bits & ~0xFFFF).to(torch.int32).view(torch.float32)
    up = ((bits & ~0xFFFF) + 0x10000).to(torch.int32).view(torch.float32)
    exact = (bits & 0xFFFF) == 0
    return down, torch.where(exact, down, up)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_step_is_the_full_precision_step_of_the_decoded_state(
    name: str, precision: str, executor: str
) -> None:
    params, compact = _train(name, 3, state_precision=precision)
    copies = _copy_params(params)
    full = _make(name, copies)
    full.load_state_dict(full_precision_state_dict(compact))
    _set_grads(name, params, 3)
    _set_grads(name, copies, 3)
    compact.step()
    full.step()
    for p, q in zip(params, copies, strict=True):
        assert torch.equal(p, q), "the update must be the decoded state's, bit for bit"
    for p, q in zip(params, copies, strict=True):
        stored, reference = compact.state[p], full.state[q]
        for key, value in reference.items():
            if not isinstance(value, Tensor) or key in SMALL or p.numel() < MIN_NUMEL:
                assert torch.equal(stored[key], value), key
            elif key in ITERATES:
                assert stored[key].dtype == p.dtype and torch.equal(stored[key], value), key
            elif precision == "int8":
                codes, absmax = encode_int8(value, key in SIGNED)
                assert torch.equal(stored[key], codes), key
                assert torch.equal(stored[key + "_absmax"], absmax), key
            else:
                down, up = _bf16_neighbours(value)
                got = stored[key].float()
                assert stored[key].dtype == torch.bfloat16, key
                assert bool(((got == down) | (got == up) | value.isnan()).all()), key


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_storage_follows_the_declared_sign_and_size(name: str, precision: str) -> None:
    params, opt = _train(name, 2, state_precision=precision)
    for p in params:
        for key, value in opt.state[p].items():
            if key.endswith("_absmax") or not isinstance(value, Tensor):
                continue
            assert key in SIGNED | NON_NEGATIVE | ITERATES | SMALL, f"unclassified state {key}"
            if p.numel() < MIN_NUMEL or key in ITERATES | SMALL:
                assert value.dtype in (p.dtype, torch.float32), key  # (step: float32)
                continue
            bytes_per_element = value.element_size()
            if precision == "int8":
                expected = torch.int8 if key in SIGNED else torch.uint8
                assert value.dtype == expected, key
                absmax = opt.state[p][key + "_absmax"]
                assert absmax.shape == (math.ceil(p.numel() / BLOCK),)
                bytes_per_element += absmax.numel() * absmax.element_size() / p.numel()
                assert bytes_per_element <= 1.05, key
            else:
                assert value.dtype == torch.bfloat16 and bytes_per_element == 2, key
            assert value.shape == p.shape, key


@pytest.mark.parametrize(("precision", "limit"), [("int8", 2.1), ("bf16", 4.1), (None, 8.1)])
@pytest.mark.parametrize("cls", [momentopt.Adam, momentopt.AdamW])
def test_adam_state_bytes_per_parameter(cls: type, precision: str | None, limit: float) -> None:
    """The issue's targets: int8 ≤ 2.1 and bf16 ≤ 4.1 bytes of state per parameter (fp32: 8)."""
    w = nn.Parameter(torch.randn(1 << 18))
    opt = cls([w], state_precision=precision, foreach=False)
    w.grad = torch.randn_like(w)
    opt.step()
    per_parameter = stored_bytes(opt) / w.numel()
    assert per_parameter <= limit
    assert per_parameter > limit - 0.2  # (the state is really there)


# -- the paths agree ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CASES))
def test_multi_tensor_is_per_tensor_bit_for_bit(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    results = []
    for executor in ("per-tensor", "multi-tensor"):
        monkeypatch.setenv("MOMENTOPT_EXECUTOR", executor)
        for precision in PRECISIONS:
            params, opt = _train(name, 4, state_precision=precision)
            results.append((params, opt))
    for (p1, o1), (p2, o2) in zip(results[:2], results[2:], strict=True):
        for a, b in zip(p1, p2, strict=True):
            assert torch.equal(a, b)
            for key in o1.state[a]:
                assert torch.equal(o1.state[a][key], o2.state[b][key]), key


@pytest.mark.parametrize(
    ("name", "precision"), [("AdamW", "int8"), ("AdamW", "bf16"), ("SGD", "int8")]
)
def test_compiled_step_decodes_updates_encodes_as_the_reference(
    name: str, precision: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One step from the same compact state on the compiled path (decode, update and encode
    in one kernel) and per-tensor. The update is float32 arithmetic in another op order (FMA),
    a few ulps apart; an encoding may then land on the neighbouring code (int8) or the other
    bfloat16 neighbour (bf16), never further."""
    params, opt = _train(name, 3, state_precision=precision)
    saved = opt.state_dict()
    runs = []
    for executor in ("fused", "per-tensor"):
        monkeypatch.setenv("MOMENTOPT_EXECUTOR", executor)
        copies = _copy_params(params)
        other = _make(name, copies, state_precision=precision)
        other.load_state_dict(saved)
        _set_grads(name, copies, 3)
        if executor == "fused":
            assert {row["path"] for row in other.explain()} >= {"compiled"}
        other.step()
        runs.append((copies, other))
    (compiled, opt_c), (reference, opt_r) = runs
    for a, b in zip(compiled, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
        for key, value in opt_r.state[b].items():
            got = opt_c.state[a][key]
            if key.endswith("_absmax"):
                torch.testing.assert_close(got, value, rtol=1e-5, atol=0)
            elif value.dtype in (torch.int8, torch.uint8):
                assert (got.int() - value.int()).abs().max() <= 1, key
            elif value.dtype == torch.bfloat16:
                ulp = value.float().abs() * 2**-7
                assert bool(((got.float() - value.float()).abs() <= ulp + 1e-30).all()), key
            else:
                torch.testing.assert_close(got, value, rtol=1e-6, atol=1e-7)


# -- checkpoints -------------------------------------------------------------------------------
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("name", ["AdamW", "SGD", "RMSprop", "Lion"])
def test_checkpoint_resumes_bit_identically(name: str, precision: str, executor: str) -> None:
    params, opt = _train(name, 3, state_precision=precision)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    copies = _copy_params(params)
    resumed = _make(name, copies, state_precision=precision)
    resumed.load_state_dict(loaded)
    for step in range(3, 6):
        _set_grads(name, params, step)
        _set_grads(name, copies, step)
        opt.step()
        resumed.step()
    for a, b in zip(params, copies, strict=True):
        assert torch.equal(a, b)
        for key, value in opt.state[a].items():
            assert torch.equal(value, resumed.state[b][key]), key


def test_full_precision_state_dict_loads_into_torch_and_back() -> None:
    params, opt = _train("AdamW", 4, state_precision="int8")
    plain = full_precision_state_dict(opt)
    copies = _copy_params(params)
    theirs = torch.optim.AdamW(copies, lr=0.01)
    theirs.load_state_dict(plain)
    big = params[0]
    decoded = theirs.state[copies[0]]["exp_avg"]
    assert decoded.dtype == torch.float32 and decoded.shape == big.shape
    codes, _ = encode_int8(decoded, signed=True)
    assert torch.equal(codes, opt.state[big]["exp_avg"])
    assert "state_precision" not in theirs.param_groups[0]
    # and torch's checkpoint into an int8 optimizer: quantized on load
    back = momentopt.AdamW(_copy_params(params), lr=0.01, state_precision="int8")
    back.load_state_dict(theirs.state_dict())
    state = back.state[back.param_groups[0]["params"][0]]
    assert state["exp_avg"].dtype == torch.int8 and state["exp_avg_sq"].dtype == torch.uint8
    assert torch.equal(state["exp_avg"], opt.state[big]["exp_avg"])
    assert back.param_groups[0]["state_precision"] == "int8"


def test_a_torch_checkpoint_trains_on_in_bf16() -> None:
    params = _params("Adam")
    theirs = torch.optim.Adam(params, lr=0.01)
    _set_grads("Adam", params, 0)
    theirs.step()
    ours = momentopt.Adam(_copy_params(params), lr=0.01, state_precision="bf16")
    ours.load_state_dict(theirs.state_dict())
    state = ours.state[ours.param_groups[0]["params"][0]]
    assert state["exp_avg"].dtype == torch.bfloat16
    expected = theirs.state[params[0]]["exp_avg"].to(torch.bfloat16)  # (to nearest on load)
    assert torch.equal(state["exp_avg"], expected)


# -- the settings ------------------------------------------------------------------------------
def test_a_dict_chooses_per_state_and_can_name_an_iterate() -> None:
    params = _params("ScheduleFreeAdamW")
    opt = momentopt.ScheduleFreeAdamW(params, state_precision={"exp_avg_sq": "int8", "z": "bf16"})
    opt.train()
    _set_grads("ScheduleFreeAdamW", params, 0)
    opt.step()
    state = opt.state[params[0]]
    assert state["exp_avg_sq"].dtype == torch.uint8 and state["z"].dtype == torch.bfloat16
    plain = momentopt.ScheduleFreeAdamW(_params("ScheduleFreeAdamW"), state_precision="int8")
    plain.train()
    p = plain.param_groups[0]["params"][0]
    p.grad = torch.ones_like(p)
    plain.step()
    assert plain.state[p]["z"].dtype == torch.float32  # an iterate: full precision by default


def test_compose_takes_state_precision() -> None:
    Momentum = momentopt.compose("Momentum", first=momentopt.rules.HeavyBall(), lr=0.1)
    w = nn.Parameter(torch.randn(MIN_NUMEL))
    opt = Momentum([w], momentum=0.9, state_precision="int8")
    w.grad = torch.randn_like(w)
    opt.step()
    assert opt.state[w]["momentum_buffer"].dtype == torch.int8


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("int4", "state_precision must be None, 'bf16', 'int8'"),
        ({"exp_avg": "fp8"}, r"state_precision\['exp_avg'\] must be None, 'bf16' or 'int8'"),
        ({"momentum": "int8"}, "'momentum' is not a state"),
        ({"step": "int8"}, "'step' is a scalar or not shaped like the parameter"),
        (8, "state_precision must be None"),
    ],
)
def test_invalid_settings_are_refused_when_made(value: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        momentopt.Adam([nn.Parameter(torch.zeros(3))], state_precision=value)


def test_a_group_added_later_is_checked_too() -> None:
    opt = momentopt.Adam([nn.Parameter(torch.zeros(3))], state_precision="int8")
    with pytest.raises(ValueError, match="'exp_avg_sqq' is not a state"):
        opt.add_param_group(
            {"params": [nn.Parameter(torch.zeros(3))], "state_precision": {"exp_avg_sqq": "int8"}}
        )
    assert len(opt.param_groups) == 1


def test_differentiable_is_refused() -> None:
    with pytest.raises(ValueError, match="state_precision needs differentiable=False"):
        momentopt.Adam([nn.Parameter(torch.zeros(3))], differentiable=True, state_precision="bf16")


def test_a_bad_checkpoint_changes_nothing() -> None:
    params, opt = _train("Adam", 2, state_precision="int8")
    saved = opt.state_dict()
    broken = {**saved, "state": {k: dict(v) for k, v in saved["state"].items()}}
    del broken["state"][0]["exp_avg_absmax"]
    before = {k: v.clone() for k, v in opt.state[params[0]].items()}
    with pytest.raises(ValueError, match="exp_avg_absmax"):
        opt.load_state_dict(broken)
    for key, value in before.items():
        assert torch.equal(opt.state[params[0]][key], value)


def test_small_and_complex_parameters_keep_full_precision() -> None:
    small = nn.Parameter(torch.randn(MIN_NUMEL - 1))
    complex_param = nn.Parameter(torch.randn(MIN_NUMEL, dtype=torch.complex64))
    opt = momentopt.Adam([small, complex_param], state_precision="int8")
    small.grad, complex_param.grad = torch.randn_like(small), torch.randn_like(complex_param)
    opt.step()
    assert opt.state[small]["exp_avg"].dtype == torch.float32
    assert opt.state[complex_param]["exp_avg"].dtype == torch.complex64


# -- stochastic rounding -----------------------------------------------------------------------
def test_stochastic_rounding_is_unbiased() -> None:
    """Each of n copies of x rounds up with probability p = (x − down)/(up − down); the mean
    of the rounded values is x within 6 standard errors (the hash is fixed, so this either
    always passes or never)."""
    n = 1 << 16
    for x in (1.0 + 2**-9, -3.3, 1e-20, 12345.678):
        values = torch.full((n,), x)
        rounded = stochastic_bf16(values, 12345, element_index((n,), "cpu")).float()
        down, up = _bf16_neighbours(torch.tensor([x]))
        p = (x - down.item()) / (up.item() - down.item()) if up != down else 0.0
        standard_error = abs(up.item() - down.item()) * math.sqrt(p * (1 - p) / n)
        assert abs(rounded.mean().item() - x) <= 6 * standard_error + 1e-12 * abs(x)
        assert bool(((rounded == down) | (rounded == up)).all())


def test_stochastic_rounding_keeps_what_rounding_to_nearest_loses() -> None:
    """A momentum of β = 0.999 fed a constant gradient 1 from m = 0.5: round-to-nearest in
    bfloat16 stalls (each increment (1−β)(1−m) < half an ulp of m); stochastic rounding follows
    the float32 average."""
    beta, steps = 0.999, 2000
    exact = torch.tensor(0.5)
    nearest = torch.tensor(0.5, dtype=torch.bfloat16)
    stochastic = torch.full((256,), 0.5, dtype=torch.bfloat16)
    for step in range(steps):
        exact = exact * beta + (1 - beta)
        nearest = (nearest.float() * beta + (1 - beta)).to(torch.bfloat16)
        new = stochastic.float() * beta + (1 - beta)
        stochastic = stochastic_bf16(new, rounding_salt(0, step, 0), element_index((256,), "cpu"))
    assert nearest.item() == 0.5  # stalled
    assert abs(stochastic.float().mean().item() - exact.item()) < 0.01
    assert exact.item() > 0.9


def test_rounding_is_reproducible_for_a_seed() -> None:
    def run(seed: int) -> Tensor:
        torch.manual_seed(seed)
        params, _ = _train("AdamW", 3, state_precision="bf16")
        return params[0].detach()

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


# -- quality: the digits run -----------------------------------------------------------
def _digits_run(precision: str | None) -> tuple[float, float]:
    """The issue's run: MLP 64-128-10, AdamW lr 1e-3, weight decay 1e-2, batch 64, 600 steps,
    fixed seed; returns (final training loss over the training set, test accuracy)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = momentopt.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2, state_precision=precision)
    batches = torch.Generator().manual_seed(0)
    for _ in range(600):
        index = torch.randint(0, len(x_train), (64,), generator=batches)
        loss = nn.functional.cross_entropy(model(x_train[index]), y_train[index])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        train_loss = nn.functional.cross_entropy(model(x_train), y_train).item()
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    return train_loss, accuracy


def test_digits_quality_matches_full_precision() -> None:
    """The issue's quality target: int8 and bf16 final training loss within 2% (+0.005) of
    fp32's, test accuracy within one point."""
    loss32, accuracy32 = _digits_run(None)
    for precision in PRECISIONS:
        loss, accuracy = _digits_run(precision)
        assert loss <= loss32 * 1.02 + 0.005, (precision, loss, loss32)
        assert abs(accuracy - accuracy32) <= 0.01, (precision, accuracy, accuracy32)


def test_tensor_subclasses_are_refused_when_made() -> None:
    """Compact blocks of a DTensor shard would follow the device mesh: not supported yet."""

    class Subclass(torch.Tensor):
        pass

    param = torch.zeros(MIN_NUMEL).as_subclass(Subclass).requires_grad_()
    with pytest.raises(NotImplementedError, match="does not support parameters of type Subclass"):
        momentopt.Adam([param], state_precision="int8")
    momentopt.Adam([param])  # (without it: as torch)
