"""Test helpers: a small model, lock-step training and the comparisons with torch's numbers
(what each algorithm is and how close it must be: tests/optimizer_table.py)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from .optimizer_table import DEFAULT_TOLERANCES, OPTIMIZERS, OptimizerCase, Tolerances

# For test files that do not read tests/optimizer_table.py themselves (the suites do).
ALGORITHMS = tuple(OPTIMIZERS)
PAIRS = {name: case.pair for name, case in OPTIMIZERS.items()}
TOLERANCES = DEFAULT_TOLERANCES.by_dtype()


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


class MatrixNet(nn.Module):
    """:class:`Net` for an optimizer of matrices only (Muon): every parameter 2-D, with
    :class:`Net`'s names for the ones :func:`train_together` skips (``fc.bias``, ``bias0``), a
    non-contiguous (transposed) matrix, wide, tall, square and 1×1 matrices.

    Each shape once: momentopt orthogonalises same-shape matrices as one batch, whose bfloat16
    products round like torch's single ones except in rare elements, and a lock-step run
    would then amplify that into an unrelated difference; batches are judged step by step
    (tests/test_tensorwise.py), these runs bit for bit."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.w_in = nn.Parameter(torch.randn(12, 40, dtype=dtype) / 6)
        self.fc = nn.Linear(12, 4, dtype=dtype)
        self.fc.bias = nn.Parameter(torch.randn(1, 4, dtype=dtype))
        self.square = nn.Parameter(torch.randn(4, 4, dtype=dtype) / 2)
        self.tall = nn.Parameter(torch.randn(6, 4, dtype=dtype) / 2)
        self.transposed = nn.Parameter(torch.randn(6, 5, dtype=dtype).t())  # non-contiguous
        self.scale = nn.Parameter(torch.randn(1, 5, dtype=dtype))
        self.bias0 = nn.Parameter(torch.randn(1, 1, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = (x.flatten(1) @ self.w_in.t()).tanh()
        h = self.fc(h) @ self.square @ self.tall.t() @ self.transposed.t()
        return h * self.scale + self.bias0


def model_for(case: OptimizerCase, dtype: torch.dtype) -> nn.Module:
    """The suites' model for ``case``: :class:`Net`, or :class:`MatrixNet` for a class that
    takes matrices only (``only_matrices``), as torch's own tests give Muon its own."""
    return MatrixNet(dtype) if case.only_matrices else Net(dtype)


def taken(case: OptimizerCase, params: Any) -> list[torch.Tensor]:
    """The parameters of ``params`` that ``case``'s class takes: all of them, or the matrices
    (``only_matrices``: Muon), as torch's own tests give it."""
    return [p for p in params if p.dim() == 2] if case.only_matrices else list(params)


EXECUTOR_FLAGS = {"per_tensor": {"foreach": False}, "multi_tensor": {"foreach": True}}


def choose_executor(case: OptimizerCase, executor: str, monkeypatch: Any) -> dict[str, Any]:
    """The flags that run ``executor`` ("per_tensor" or "multi_tensor"): torch's ``foreach``,
    or for a class without it (Muon) ``MOMENTOPT_EXECUTOR``, set with ``monkeypatch``."""
    if case.supports("foreach"):
        return dict(EXECUTOR_FLAGS[executor])
    monkeypatch.setenv("MOMENTOPT_EXECUTOR", executor.replace("_", "-"))
    return {}


SPARSE_ONLY = tuple(cls for case in OPTIMIZERS.values() if case.sparse_only for cls in case.pair)
"""The classes that take sparse gradients only (the table's ``sparse_only``: SparseAdam)."""


def sparse_if_needed(opt: torch.optim.Optimizer, params: Iterable[torch.Tensor]) -> None:
    """``params``' gradients made sparse (``Tensor.to_sparse()``) when ``opt`` takes sparse
    gradients only, as torch's own tests give them to it."""
    if isinstance(opt, SPARSE_ONLY):
        for p in params:
            if p.grad is not None:
                p.grad = p.grad.to_sparse()


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


def train_together(
    runs: Sequence[tuple[nn.Module, torch.optim.Optimizer]], xs: list[torch.Tensor]
) -> Iterator[int]:
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
            sparse_if_needed(opt, model.parameters())
            opt.step()
        yield i


def clone_model(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)


def assert_state_dicts_close(a: dict[str, Any], b: dict[str, Any], **tol: float) -> None:
    """Same groups and state keys, values equal within ``tol`` (rtol, atol; default exact)."""
    rtol, atol = tol.get("rtol", 0.0), tol.get("atol", 0.0)
    assert a["param_groups"] == b["param_groups"] or _groups_close(
        a["param_groups"], b["param_groups"]
    )
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
        assert set(a) == set(b), set(a) ^ set(b)
        for key in a:
            va, vb = a[key], b[key]
            if isinstance(va, torch.Tensor) or isinstance(vb, torch.Tensor):
                torch.testing.assert_close(  # (its default message shows the numbers)
                    torch.as_tensor(va),
                    torch.as_tensor(vb),
                    msg=lambda m, i=i, k=key: f"group {i} {k}: {m}",
                )
            else:
                assert va == vb, (key, va, vb)
    return True


# -- numerics: how close momentopt's numbers must be to torch's ----------------------------------
#
# The bounds and the reasons for them: tests/optimizer_table.py (Tolerances, one per algorithm
# in its row; DEFAULT_TOLERANCES for runs of no single algorithm). float32 and complex64 are
# judged through a float64 run of torch (Tolerances.drift), float64 directly (.direct).
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
    assert same, (
        f"{what}: NaN/inf at other places ({int(a.isnan().sum())} vs {int(b.isnan().sum())} NaN)"
    )
    return a.isfinite()


def _abs_error(a: torch.Tensor, b: torch.Tensor, finite: torch.Tensor) -> torch.Tensor:
    return torch.where(finite, a - b, 0.0).abs()


def assert_close_report(
    actual: torch.Tensor, expected: torch.Tensor, what: str, *, rtol: float, atol: float
) -> None:
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


def assert_no_worse_than_torch(
    ours: torch.Tensor,
    theirs: torch.Tensor,
    reference: torch.Tensor,
    what: str,
    *,
    tolerances: Tolerances = DEFAULT_TOLERANCES,
) -> tuple[float, float]:
    """momentopt's float32 ``ours`` is no further from the float64 ``reference`` than
    ``k``·(torch's ``theirs`` distance) + ``floor_ulps``·ε·max |reference| (``k`` and
    ``floor_ulps``: ``tolerances.drift``, whose reason says why).

    Returns (our max |error|, torch's max |error|)."""
    k, floor_ulps = tolerances.drift.k, tolerances.drift.floor_ulps
    _check_like(ours, theirs, what)
    assert ours.shape == reference.shape, f"{what}: reference shape {tuple(reference.shape)}"
    o, t, r = _flat64(ours), _flat64(theirs), _flat64(reference)
    finite = _finite_both(o, t, what)
    if o.numel() == 0:
        return 0.0, 0.0
    err_o, err_t = _abs_error(o, r, finite), _abs_error(t, r, finite)
    worst = int(err_o.argmax())
    mine, torchs = err_o[worst].item(), err_t.max().item()
    floor = (
        floor_ulps * torch.finfo(ours.dtype).eps * torch.where(finite, r, 0.0).abs().max().item()
    )
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
"""Every (what, our error, torch's error, floor) measured in this process (to choose the
drift bound's ``k``)."""


def assert_matches_torch(
    ours: torch.Tensor,
    theirs: torch.Tensor,
    reference: torch.Tensor | None,
    what: str,
    *,
    tolerances: Tolerances = DEFAULT_TOLERANCES,
) -> None:
    """The check for one tensor of momentopt's against torch's: float32/complex64 through the
    float64 ``reference`` (:func:`assert_no_worse_than_torch`), float64 within
    ``tolerances.direct``."""
    if ours.dtype in WIDE:
        assert reference is not None, f"{what}: a {ours.dtype} comparison needs a float64 run"
        assert_no_worse_than_torch(ours, theirs, reference, what, tolerances=tolerances)
    else:
        assert_close_report(ours, theirs, what, **tolerances.direct[ours.dtype].kwargs())


def widened(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in float64 (complex128), the same values and strides."""
    wide = copy.deepcopy(model)
    for p in wide.parameters():
        p.data = p.data.to(WIDE.get(p.dtype, p.dtype))
    return wide


def assert_models_match(
    ours: nn.Module,
    theirs: nn.Module,
    reference: nn.Module | None,
    what: str = "param",
    *,
    tolerances: Tolerances = DEFAULT_TOLERANCES,
) -> None:
    """Every parameter through :func:`assert_matches_torch`."""
    refs = list(reference.parameters()) if reference is not None else None
    for i, ((name, pt), po) in enumerate(
        zip(theirs.named_parameters(), ours.parameters(), strict=True)
    ):
        assert_matches_torch(
            po, pt, None if refs is None else refs[i], f"{what} {name}", tolerances=tolerances
        )


def assert_state_dicts_match(
    ours: dict[str, Any],
    theirs: dict[str, Any],
    reference: dict[str, Any] | None,
    what: str = "state",
    *,
    tolerances: Tolerances = DEFAULT_TOLERANCES,
) -> None:
    """Same groups and state keys; ``tolerances.exact_state`` equal; every other state tensor
    through :func:`assert_matches_torch` (``reference``: the float64 run's state dict)."""
    assert ours["param_groups"] == theirs["param_groups"] or _groups_close(
        ours["param_groups"], theirs["param_groups"]
    )
    assert set(ours["state"]) == set(theirs["state"]), (set(ours["state"]), set(theirs["state"]))
    for index, state in ours["state"].items():
        other = theirs["state"][index]
        assert set(state) == set(other), (index, set(state), set(other))
        for key, value in state.items():
            label = f"{what} {index}.{key}"
            if not isinstance(value, torch.Tensor):
                assert value == other[key], (label, value, other[key])
            elif key in tolerances.exact_state:
                assert_close_report(value, other[key], label, rtol=0.0, atol=0.0)
            else:
                ref = None if reference is None else reference["state"][index][key]
                assert_matches_torch(value, other[key], ref, label, tolerances=tolerances)
