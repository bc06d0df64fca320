"""Test helpers: torch's optimizer database, a small model and lock-step training."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.testing._internal.common_optimizers import optim_db

import momentopt

PAIRS = {
    "SGD": (torch.optim.SGD, momentopt.SGD),
    "Adagrad": (torch.optim.Adagrad, momentopt.Adagrad),
    "Adadelta": (torch.optim.Adadelta, momentopt.Adadelta),
    "RMSprop": (torch.optim.RMSprop, momentopt.RMSprop),
    "Adam": (torch.optim.Adam, momentopt.Adam),
    "AdamW": (torch.optim.AdamW, momentopt.AdamW),
    "NAdam": (torch.optim.NAdam, momentopt.NAdam),
}

ALGORITHMS = ("SGD", "Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW", "NAdam")
OPTIM_INFO = {info.optim_cls.__name__: info for info in optim_db if info.optim_cls.__name__ in ALGORITHMS}

# Fixed tolerances: float64 (judged against torch's float64 directly: there is no wider run
# to measure against), and float32 for the few tests that have no float64 run. float64: one
# rounding is 1.1e-16 relative; other (equally valid) op orders, compounded over a 30-step
# run and amplified by the suite's worst cancellation (RMSprop's centered √(V − ḡ²)), were
# measured at most 5e-15 of a tensor's largest value and 2.6e-12 relative on its smallest
# elements (AVX-512, AVX2 and the scalar default path alike; the largest share of this bound
# used is 6e-5). 1e-10 relative thus keeps four decades for other machines and still fails
# any real difference: a changed formula moves float64 numbers by 1e-8 relative or more.
TOLERANCES = {
    torch.float32: {"rtol": 1e-5, "atol": 1e-6},
    torch.complex64: {"rtol": 1e-5, "atol": 1e-6},
    torch.float64: {"rtol": 1e-10, "atol": 1e-12},
}

def optim_inputs(name: str, dtype: torch.dtype) -> list[Any]:
    """torch's own constructor inputs for ``name`` on the CPU."""
    return OPTIM_INFO[name].optim_inputs_func("cpu", dtype)


class Net(nn.Module):
    """Conv, linear, a non-contiguous (transposed) weight, 1-D and 0-D parameters."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, dtype=dtype)
        self.fc = nn.Linear(12, 4, dtype=dtype)
        self.transposed = nn.Parameter(torch.randn(4, 5, dtype=dtype).t())  # non-contiguous
        self.scale = nn.Parameter(torch.randn(5, dtype=dtype))
        self.bias0 = nn.Parameter(torch.randn((), dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        h = (h if h.is_complex() else h.tanh()).flatten(1)[:, :12]  # complex tanh has poles
        h = self.fc(h) @ self.transposed.t()
        return h * self.scale + self.bias0


def loss_of(out: torch.Tensor) -> torch.Tensor:
    return (out.abs() ** 2).mean() if out.is_complex() else (out**2).mean()


def make_inputs(dtype: torch.dtype, steps: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    real = torch.float32 if dtype == torch.complex64 else dtype
    xs = [torch.randn(3, 2, 5, 4, generator=g, dtype=real) for _ in range(steps)]
    return [x.to(dtype) for x in xs]


def lockstep(
    model_a: nn.Module,
    opt_a: torch.optim.Optimizer,
    model_b: nn.Module,
    opt_b: torch.optim.Optimizer,
    xs: list[torch.Tensor],
    *,
    check: Callable[[int], None] | None = None,
) -> Iterator[int]:
    """Train both models on the same inputs; the 0-D bias misses its grad every third step
    and ``fc.bias`` gets no grad on steps 5–9."""
    yield from train_together([(model_a, opt_a), (model_b, opt_b)], xs)


def train_together(runs: Sequence[tuple[nn.Module, torch.optim.Optimizer]],
                   xs: list[torch.Tensor]) -> Iterator[int]:
    """:func:`lockstep` for any number of (model, optimizer) runs; each model gets the inputs
    in its own dtype (a float64 reference run: the float32 inputs widened, exactly)."""
    for i, x in enumerate(xs):
        for model, opt in runs:
            opt.zero_grad()
            loss = loss_of(model(x.to(next(model.parameters()).dtype)))
            loss.backward()
            if i % 3 == 2:
                model.bias0.grad = None
            if 5 <= i < 10:
                model.fc.bias.grad = None
            opt.step()
        yield i


def clone_model(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)


def assert_state_dicts_close(a: dict[str, Any], b: dict[str, Any], **tol: float) -> None:
    """Same groups and state keys, values equal within ``tol`` (rtol, atol; default exact)."""
    rtol, atol = tol.get("rtol", 0.0), tol.get("atol", 0.0)
    assert a["param_groups"] == b["param_groups"] or _groups_close(a["param_groups"], b["param_groups"])
    assert set(a["state"]) == set(b["state"])
    for k in a["state"]:
        sa, sb = a["state"][k], b["state"][k]
        assert set(sa) == set(sb), (k, set(sa), set(sb))
        for key in sa:
            va, vb = sa[key], sb[key]
            if isinstance(va, torch.Tensor):
                assert va.device == vb.device, (k, key, va.device, vb.device)
                assert_close_report(va, vb, f"state {k}.{key}", rtol=rtol, atol=atol)
            else:
                assert va == vb


def _groups_close(ga: list[dict[str, Any]], gb: list[dict[str, Any]]) -> bool:
    """Param groups equal key by key (tensor hyperparameters by value)."""
    for i, (a, b) in enumerate(zip(ga, gb, strict=True)):
        assert set(a) == set(b), (set(a) ^ set(b))
        for key in a:
            va, vb = a[key], b[key]
            if isinstance(va, torch.Tensor) or isinstance(vb, torch.Tensor):
                torch.testing.assert_close(  # (its default message shows the numbers)
                    torch.as_tensor(va), torch.as_tensor(vb), msg=lambda m, i=i, k=key: f"group {i} {k}: {m}")
            else:
                assert va == vb, (key, va, vb)
    return True


# -- numerics: how close momentopt's numbers must be to torch's ----------------------------------
#
# float32 (and complex64) runs are compared through a float64 run of the same algorithm from
# the same weights and inputs (torch.optim on float64 copies: ``reference``). Each float32 run
# drifts from it by its own rounding: every op rounds, and training compounds and amplifies
# those roundings (a cancellation such as RMSprop's centered √(V − ḡ²) amplifies them a
# hundredfold on some CPUs and not on others: FMA in vector loops but not in scalar tails,
# another vector width, inductor's own op order). momentopt passes when its drift is no worse
# than K times torch's own drift, plus a floor of FLOOR_ULPS·ε·max|reference| (ε: float32's
# machine epsilon; 4–8 ulps of the largest value), for tensors torch happens to compute
# (almost) exactly, where K·0 would demand more than float32 can promise. Both quantities
# scale with the case's conditioning on every CPU, so no case needs a tolerance of its own.
#
# K: momentopt's and torch's runs are two equally valid float32 evaluations of one algorithm
# (op order and fusion differ), so their drifts are samples of the same size; where the ops
# are the same, the drifts are equal (ratio 1, the usual case: 88 % of the tensors compared).
# Measured over all 29 000 float32/complex64 tensors that test_parity, test_executors,
# test_fused, test_differentiable, test_sparse and test_packing compare, on AVX-512, AVX2 and
# the scalar default path (ATEN_CPU_CAPABILITY) and with inductor's simdlen 512, 256 and 1:
# the median of ours/torch is 1.0 and the largest factor needed beyond the floor is 1.76
# (RMSprop complex64, maximize + weight_decay, whose square_avg grows to 1e10); with K = 4
# the floor needed is at most 2.2ε·max|reference| (an inductor-compiled RMSprop state). K = 4
# and FLOOR_ULPS = 4 leave twice that on both; a real defect is larger: an update off by
# 1e-6 relative (lr·(1 + 1e-6)) already fails 19 of test_parity's 47 float32 per-tensor
# cases (the former fixed rtol 1e-5 failed 3).
K = 4.0
FLOOR_ULPS = 4
WIDE = {torch.float32: torch.float64, torch.complex64: torch.complex128}


def _flat64(t: torch.Tensor) -> torch.Tensor:
    """``t`` as a float64 vector (complex as (real, imag) pairs), detached."""
    t = t.detach()
    if t.is_sparse:
        t = t.to_dense()
    if t.is_complex():
        t = torch.view_as_real(t)
    return t.to(torch.float64).reshape(-1)


def _describe(t: torch.Tensor, index: int, **values: torch.Tensor) -> str:
    """The values at ``index`` of the flat (real-view, for complex ``t``) tensors."""
    shown = ", ".join(f"{name} {v[index].item():.9g}" for name, v in values.items())
    return f"at {'real-view ' if t.is_complex() else ''}flat index {index}: {shown}"


def _check_like(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, (
        f"{what}: {actual.dtype} {tuple(actual.shape)} vs {expected.dtype} {tuple(expected.shape)}"
    )


def _finite_both(a: torch.Tensor, b: torch.Tensor, what: str) -> torch.Tensor:
    """The mask of entries finite in both; NaN and ±inf must be at the same places."""
    same = bool((a.isnan() == b.isnan()).all()) and bool((a.isinf() == b.isinf()).all())
    same = same and bool((a[a.isinf()] == b[b.isinf()]).all())
    assert same, f"{what}: NaN/inf at other places ({int(a.isnan().sum())} vs {int(b.isnan().sum())} NaN)"
    return a.isfinite()


def _abs_error(a: torch.Tensor, b: torch.Tensor, finite: torch.Tensor) -> torch.Tensor:
    return torch.where(finite, a - b, 0.0).abs()


def assert_close_report(actual: torch.Tensor, expected: torch.Tensor, what: str, *,
                        rtol: float, atol: float) -> None:
    """``|actual − expected| ≤ atol + rtol·|expected|`` elementwise (same dtype and shape, NaN
    and inf at the same places); the failure shows the worst element and the counts."""
    _check_like(actual, expected, what)
    a, e = _flat64(actual), _flat64(expected)
    finite = _finite_both(a, e, what)
    diff = _abs_error(a, e, finite)
    excess = torch.where(finite, diff - (atol + rtol * e.abs()), 0.0)
    if a.numel() == 0 or excess.max() <= 0:
        return
    worst = int(excess.argmax())
    relative = torch.where(finite, diff / e.abs(), 0.0)
    raise AssertionError(
        f"{what}: {int((excess > 0).sum())} of {a.numel()} elements differ by more than "
        f"atol {atol:g} + rtol {rtol:g}·|expected|; max |diff| {diff.max().item():.3g}, "
        f"max |diff|/|expected| {relative.max().item():.3g}; "
        + _describe(actual, worst, actual=a, expected=e)
    )


def assert_no_worse_than_torch(ours: torch.Tensor, theirs: torch.Tensor, reference: torch.Tensor,
                               what: str, *, k: float = K,
                               floor_ulps: float = FLOOR_ULPS) -> tuple[float, float]:
    """momentopt's float32 ``ours`` is no further from the float64 ``reference`` than
    ``k``·(torch's ``theirs`` distance) + ``floor_ulps``·ε·max |reference| (see K).

    Returns (our max |error|, torch's max |error|)."""
    _check_like(ours, theirs, what)
    assert ours.shape == reference.shape, f"{what}: reference shape {tuple(reference.shape)}"
    o, t, r = _flat64(ours), _flat64(theirs), _flat64(reference)
    finite = _finite_both(o, t, what)
    if o.numel() == 0:
        return 0.0, 0.0
    err_o, err_t = _abs_error(o, r, finite), _abs_error(t, r, finite)
    worst = int(err_o.argmax())
    mine, torchs = err_o[worst].item(), err_t.max().item()
    floor = floor_ulps * torch.finfo(ours.dtype).eps * torch.where(finite, r, 0.0).abs().max().item()
    bound = k * torchs + floor
    RATIOS.append((what, mine, torchs, floor))
    if mine > bound:
        raise AssertionError(
            f"{what}: momentopt's max |error| vs the float64 run {mine:.3g} exceeds the bound "
            f"{bound:.3g} = {k:g} × torch's max |error| {torchs:.3g} + floor {floor:.3g} "
            f"({floor_ulps:g}ε·max|float64|); " + _describe(ours, worst, ours=o, torch=t, float64=r)
        )
    return mine, torchs


RATIOS: list[tuple[str, float, float, float]] = []
"""Every (what, our error, torch's error, floor) measured in this process (to choose K)."""


def assert_matches_torch(ours: torch.Tensor, theirs: torch.Tensor, reference: torch.Tensor | None,
                         what: str) -> None:
    """The check for one tensor of momentopt's against torch's: float32/complex64 through the
    float64 ``reference`` (:func:`assert_no_worse_than_torch`), float64 within TOLERANCES."""
    if ours.dtype in WIDE:
        assert reference is not None, f"{what}: a {ours.dtype} comparison needs a float64 run"
        assert_no_worse_than_torch(ours, theirs, reference, what)
    else:
        assert_close_report(ours, theirs, what, **TOLERANCES[ours.dtype])


def widened(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in float64 (complex128), the same values and strides."""
    wide = copy.deepcopy(model)
    for p in wide.parameters():
        p.data = p.data.to(WIDE.get(p.dtype, p.dtype))
    return wide


def assert_models_match(ours: nn.Module, theirs: nn.Module, reference: nn.Module | None,
                        what: str = "param") -> None:
    """Every parameter through :func:`assert_matches_torch`."""
    refs = list(reference.parameters()) if reference is not None else None
    for i, ((name, pt), po) in enumerate(zip(theirs.named_parameters(), ours.parameters(), strict=True)):
        assert_matches_torch(po, pt, None if refs is None else refs[i], f"{what} {name}")


EXACT_STATE = ("step", "mu_product")
"""0-d states torch computes as ``s += 1`` / ``s *= μ`` (μ a Python float), which momentopt
computes with the same op on every executor: equal to the last bit on every CPU."""


def assert_state_dicts_match(ours: dict[str, Any], theirs: dict[str, Any],
                             reference: dict[str, Any] | None, what: str = "state") -> None:
    """Same groups and state keys; EXACT_STATE equal; every other state tensor through
    :func:`assert_matches_torch` (``reference``: the float64 run's state dict)."""
    assert ours["param_groups"] == theirs["param_groups"] or _groups_close(
        ours["param_groups"], theirs["param_groups"])
    assert set(ours["state"]) == set(theirs["state"]), (set(ours["state"]), set(theirs["state"]))
    for index, state in ours["state"].items():
        other = theirs["state"][index]
        assert set(state) == set(other), (index, set(state), set(other))
        for key, value in state.items():
            label = f"{what} {index}.{key}"
            if not isinstance(value, torch.Tensor):
                assert value == other[key], (label, value, other[key])
            elif key in EXACT_STATE:
                assert_close_report(value, other[key], label, rtol=0.0, atol=0.0)
            else:
                ref = None if reference is None else reference["state"][index][key]
                assert_matches_torch(value, other[key], ref, label)
