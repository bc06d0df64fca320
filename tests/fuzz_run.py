"""Run one :class:`~tests.fuzz_cases.Case` on momentopt and on torch.optim and compare.

Three optimizers see the same inputs, built afresh for each from the case's specs:

* ``ours``: ``momentopt.<name>(…, **kwargs, **executor flags)``;
* ``same``: ``torch.optim.<name>`` with the very same kwargs (flags included) — the judge of
  validation: whatever it refuses at construction, momentopt refuses with the same exception
  type; at a step, momentopt refuses like it or goes on like ``ref`` (see
  :func:`assert_same_outcome`); it never runs torch's fused kernels on tensors that would
  make them overrun memory (:func:`overruns`);
* ``ref``: ``torch.optim.<name>`` with the executor flags dropped, torch's default path (its
  per-tensor for-loop on the CPU) — the judge of numbers, for every executor (torch's own
  fused kernels are wrong for some layouts; momentopt's must not be).

The outcome must agree at construction and at every step: the same exception type, or no
exception and the same numbers (params and gradients after every step, the state dict at the
end) within :func:`tolerance`.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from unittest import mock

import torch
from torch import Tensor

from .fuzz_cases import PAIRS, Case, GradSpec, ParamSpec, TensorValue, executor_flags
from .optimizer_table import OPTIMIZERS

# -- building tensors -------------------------------------------------------------------------
_SHAPES: dict[str, tuple[tuple[int, ...], Callable[[Tensor], Tensor]]] = {
    "vector": ((7,), lambda t: t),
    "matrix": ((3, 5), lambda t: t),
    "0d": ((), lambda t: t),
    "empty": ((0,), lambda t: t),
    "empty2d": ((3, 0), lambda t: t),
    "row257": ((1, 257), lambda t: t),
    "col257": ((257, 1), lambda t: t),
    "3d": ((2, 3, 4), lambda t: t),
    "transposed": ((5, 3), lambda t: t.t()),
    "slice": ((14,), lambda t: t[::2]),
    "slice2d": ((4, 10), lambda t: t[:, ::2]),
    "expanded": ((4, 1), lambda t: t.expand(4, 1000)),
    "big": ((66000,), lambda t: t),
}
"""Shape of the allocated base tensor, and the view of it that is the parameter."""


def _randn(shape: Sequence[int], dtype: torch.dtype, gen: torch.Generator) -> Tensor:
    """Standard normal values in ``dtype`` (drawn in float64/complex128, then rounded)."""
    wide = torch.complex128 if dtype.is_complex else torch.float64
    return torch.randn(tuple(shape), dtype=wide, generator=gen).to(dtype)


def make_param(spec: ParamSpec) -> Tensor:
    """The parameter a spec describes (a fresh tensor on every call, same values)."""
    gen = torch.Generator().manual_seed(spec.seed)
    shape, view = _SHAPES[spec.shape]
    base = _randn(shape, getattr(torch, spec.dtype), gen)
    if spec.kind == "parameter":
        return torch.nn.Parameter(view(base))
    if spec.kind == "plain":
        return view(base)
    assert spec.kind == "nonleaf", spec.kind
    return view(base.requires_grad_().clone())


def _special(dtype: torch.dtype) -> dict[str, float]:
    """Extreme values for ``dtype`` (rounded into it when the gradient is cast)."""
    fi = torch.finfo(dtype)
    return {"tiny": 1e-30, "huge": 1e30, "denormal": fi.smallest_normal / 4}


def grad_values(spec: GradSpec, param: Tensor) -> Tensor:
    """The gradient's values, contiguous, in the param's shape and dtype."""
    gen = torch.Generator().manual_seed(spec.seed)
    dtype, shape = param.dtype, tuple(param.shape)
    wide = torch.complex128 if dtype.is_complex else torch.float64
    special = _special(dtype)
    normal = torch.randn(shape, dtype=wide, generator=gen)
    kind = spec.values
    if kind == "normal":
        out = normal
    elif kind == "zeros":
        out = torch.zeros_like(normal)
    elif kind in special:
        out = normal * special[kind]
    elif kind in ("nan", "inf", "-inf"):
        out = torch.full_like(normal, float(kind))
    else:
        assert kind == "mixed", kind
        picks = (math.nan, math.inf, -math.inf, 0.0, 1e30, 1e-30, special["denormal"])
        which = torch.randint(0, 2 * len(picks), shape, generator=gen)
        out = normal.clone()
        for i, v in enumerate(picks):
            out[which == i] = v
    return out.to(dtype)


def _sparse(spec: GradSpec, param: Tensor) -> Tensor:
    """An uncoalesced sparse COO gradient (rows with duplicate indices)."""
    gen = torch.Generator().manual_seed(spec.seed)
    rows = param.shape[0]
    nnz = 2 * rows
    index = torch.randint(0, max(rows, 1), (1, nnz), generator=gen)
    wide = torch.complex128 if param.dtype.is_complex else torch.float64
    values = torch.randn((nnz, *param.shape[1:]), dtype=wide, generator=gen).to(param.dtype)
    grad = torch.sparse_coo_tensor(index, values, tuple(param.shape), check_invariants=True)
    assert not grad.is_coalesced()
    return grad


def make_grad(spec: GradSpec, param: Tensor) -> Tensor | None:
    """The gradient a spec describes for ``param``, in the spec's memory layout."""
    if spec.values == "none":
        return None
    if spec.values == "sparse":
        return _sparse(spec, param)
    values = grad_values(spec, param)
    shape, dim = tuple(param.shape), param.dim()
    layout = spec.layout
    if layout == "contiguous":
        return values.contiguous()
    if layout == "transposed" and dim >= 2:
        order = tuple(reversed(range(dim)))
        buf = torch.empty(tuple(reversed(shape)), dtype=param.dtype).permute(order)
        return buf.copy_(values)
    if layout == "strided" and dim >= 1:
        buf = torch.empty((*shape[:-1], 2 * shape[-1]), dtype=param.dtype)[..., ::2]
        return buf.copy_(values)
    if layout == "expanded" and dim >= 1:
        return values[:1].clone().expand(shape)
    return torch.empty_like(param, requires_grad=False).copy_(values.detach())


# -- building optimizers ----------------------------------------------------------------------
def build_value(value: Any) -> Any:
    """A kwarg with its :class:`TensorValue` s made into tensors (fresh ones on every call)."""
    if isinstance(value, TensorValue):
        return value.build()
    if isinstance(value, tuple):
        return tuple(build_value(v) for v in value)
    if isinstance(value, list):
        return [build_value(v) for v in value]
    return value


@dataclass
class Run:
    """One optimizer over its own copy of the case's parameters."""

    params: list[Tensor]
    opt: torch.optim.Optimizer | None = None
    error: Exception | None = None
    unsafe: bool = False  # torch's fused kernels, which must not see memory they overrun
    skipped: bool = False  # a step did not update every param (unsafe): it judges no more


def _truthy(spec: Any) -> bool:
    """Whether the value ``spec`` builds is true (False where it has no truth value)."""
    try:
        return bool(build_value(spec))
    except (RuntimeError, TypeError, ValueError):  # a tensor of several elements, say
        return False


def start(cls: type, case: Case, flags: dict[str, Any]) -> Run:
    """Build the params and the optimizer ``cls(groups, **case.kwargs, **flags)``."""
    params = [make_param(s) for s in case.params]
    if flags.get("differentiable") is False:  # torch's normal step takes leaves only
        params = [p if p.is_leaf else p.detach() for p in params]
    n_first = len(params) - case.second_group
    first = params[:n_first] + (params[:1] if case.duplicate else [])
    groups: list[Any] = first
    if case.second_group:
        overrides = build_value(case.group_overrides)
        if flags.get("differentiable") is False:  # the normal step for every group
            overrides = {k: v for k, v in overrides.items() if k != "differentiable"}
        second = {"params": params[n_first:], **overrides}
        groups = [{"params": first}, second]
    run = Run(params, unsafe=cls.__module__.startswith("torch") and bool(flags.get("fused")))
    kwargs = {k: build_value(v) for k, v in case.kwargs.items()}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run.opt = cls(groups, **{**kwargs, **flags})
    except Exception as err:  # noqa: BLE001 — the exception is the outcome compared
        run.error = err
    return run


def overruns(t: Tensor) -> bool:
    """Whether ``t.numel()`` elements from its first one run past its storage (an expanded
    tensor): torch's fused CPU kernels read and write them so, corrupting the heap."""
    if t.is_sparse or t.numel() == 0:
        return False
    end = (t.storage_offset() + t.numel()) * t.element_size()
    return end > t.untyped_storage().nbytes()


FUSED_KERNELS = tuple(
    sorted({k for case in OPTIMIZERS.values() if (k := case.fused_kernel) is not None})
)
"""torch's fused kernels (``torch.<name>``) that torch.optim's ``fused=True`` steps call."""


def _on_copies(kernel: Callable[..., Any]) -> Callable[..., Any]:
    """``kernel`` given a contiguous copy of every tensor that :func:`overruns` (in its tensor
    lists): its argument checks and its dtype and device checks see what they would see, its
    writes stay inside memory it owns."""

    def safe(*args: Any, **kwargs: Any) -> Any:
        def fix(a: Any) -> Any:
            if isinstance(a, (list, tuple)):
                return [t.contiguous() if isinstance(t, Tensor) and overruns(t) else t for t in a]
            return a

        return kernel(*(fix(a) for a in args), **kwargs)

    return safe


def _step_with_safe_kernels(opt: torch.optim.Optimizer) -> None:
    """torch's ``opt.step()`` with its fused kernels run on copies of the tensors they would
    overrun (:func:`_on_copies`): torch's outcome — the exception it raises, from its own
    checks in its own order — without the heap corruption. Where it raises nothing, the
    overrunning parameters were not updated: the run judges no numbers after it."""
    with contextlib.ExitStack() as stack:
        for name in FUSED_KERNELS:
            stack.enter_context(mock.patch.object(torch, name, _on_copies(getattr(torch, name))))
        opt.step()


def step(run: Run, grads: Sequence[GradSpec]) -> None:
    """Set the gradients and take one step; record an exception as the run's outcome.

    An ``unsafe`` run (torch's own fused kernels) gets gradients that :func:`overruns` as
    contiguous copies. Where a parameter that has a gradient overruns (the kernels see only
    those), the step runs torch's kernels on copies (:func:`_step_with_safe_kernels`): its
    exception, if any, is torch's outcome; if none, the run is skipped from then on (it
    judges no numbers, the overrunning parameters having not been updated)."""
    assert run.opt is not None
    if run.skipped:
        return
    try:
        for p, spec in zip(run.params, grads, strict=True):
            g = make_grad(spec, p)
            p.grad = g.contiguous() if run.unsafe and g is not None and overruns(g) else g
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if run.unsafe and any(overruns(p) for p in run.params if p.grad is not None):
                _step_with_safe_kernels(run.opt)
                run.skipped = True
            else:
                run.opt.step()
    except Exception as err:  # noqa: BLE001
        run.error = err


def describe(err: BaseException | None) -> str:
    return "no exception" if err is None else f"{type(err).__name__}: {str(err)[:300]}"


# -- comparing --------------------------------------------------------------------------------
K_ULPS = 12
"""Per step, momentopt may differ from the reference by ``K_ULPS`` units in the last place of
the storage dtype of the magnitudes involved (see :func:`tolerance`). Why not 0: momentopt's
default path and ``fused=True`` call torch's fused CPU kernels (SGD, Adagrad, Adam, AdamW) or
the compiled recipe, which evaluate the same formula in another order (and with FMA in the
vectorized loop) than torch's per-tensor loop: up to about one ulp per operation, and an update
takes up to about eleven (AMSGrad: two averages of three ops, the maximum, the root, the bias
correction, ε, the quotient, the step size and the sum; NAdam's two terms as many). The
earlier bound of 8 counted five or so operations, and a derandomised AMSGrad case exceeded it
by 16 % on one element of 66,000 (float32, compiled, three steps).
For float16/bfloat16, torch's loop rounds to the storage dtype after every operation where the
fused kernels compute in float32 and round once: again within about one storage ulp per
operation, inside the dtype's normal range. No bound here depends on the CPU's vector width."""


def tolerance(expected: Tensor, scale: Tensor, steps: int, scalar_eps: float = 0.0) -> Tensor:
    """Allowed absolute difference per element: ``K_ULPS`` ulps of ``scale``, the magnitudes
    the value was computed from summed over the ``steps`` taken so far (each step's rounding
    is relative to its own magnitudes, and a difference of an earlier step is carried along,
    not damped), plus ``K_ULPS`` ulps of the dtype's smallest normal number per step (a result
    computed from subnormal numbers has lost its relative precision).
    ``scalar_eps``: the machine epsilon torch's per-step scalars are rounded to when it is
    coarser than the tensor's (see :func:`scalar_eps`)."""
    fi = torch.finfo(expected.real.dtype if expected.is_complex() else expected.dtype)
    return K_ULPS * max(fi.eps, scalar_eps) * (scale + steps * fi.smallest_normal)


def scalar_eps(case: Case) -> float:
    """The coarsest machine epsilon among the case's tensor hyperparameters (0 if none).

    A deliberate deviation, pinned in test_fuzz_regressions.py: torch computes ``1 − lr·λ``,
    ``lr/(1 − β1^t)``, ... in a tensor hyperparameter's dtype (float32 for ``torch.tensor(
    0.01)``), momentopt in float64; for float64 parameters the two differ by float32
    rounding of those scalars."""
    found = [
        v
        for v in (*case.kwargs.values(), *case.group_overrides.values())
        for v in (v if isinstance(v, tuple) else (v,))
        if isinstance(v, TensorValue)
    ]
    return max((torch.finfo(getattr(torch, v.dtype)).eps for v in found), default=0.0)


def _real64(t: Tensor) -> Tensor:
    """``t`` as float64 values (complex as (real, imag) pairs, sparse as dense)."""
    t = t.detach()
    if t.is_sparse:
        t = t.coalesce().to_dense()
    return (torch.view_as_real(t.resolve_conj()) if t.is_complex() else t).to(torch.float64)


def _as_real_view_result(a: Tensor, e: Tensor) -> Tensor:
    """torch's complex result ``e`` (as (real, imag) pairs) where momentopt's ``a`` holds a
    non-finite number in a pair: a deliberate deviation (pinned in test_fuzz_regressions.py).
    momentopt updates a complex parameter as its real view; torch's complex arithmetic turns
    an infinite component into NaN in its partner (``inf·0``). Where a pair of ``a`` is not
    all finite, torch's NaNs in that pair are taken as ``a``'s values."""
    if a.dim() == 0 or a.shape[-1] != 2:
        return e
    pair_non_finite = (~a.isfinite()).any(dim=-1, keepdim=True).expand_as(a)
    return torch.where(pair_non_finite & e.isnan(), a, e)


def typical(t: Tensor) -> Tensor:
    """The median magnitude of ``t``'s finite values (0 if none): the size of the terms an
    element is computed from when they cancel in that element (an EMA of alternating
    gradients; NAdam's two momentum terms; a gradient plus weight decay)."""
    a = t.abs()
    finite = a[a.isfinite()]
    return finite.median() if finite.numel() else torch.zeros((), dtype=t.dtype)


def assert_close(
    actual: Tensor, expected: Tensor, scale: Tensor | None, steps: int, what: str, eps: float = 0.0
) -> None:
    """Same dtype and shape; NaN and ±inf at the same positions; finite values within
    :func:`tolerance` of ``scale``, the magnitudes summed over ``steps`` steps (default: the
    expected values' magnitude plus their :func:`typical` one, ``steps`` times). The message
    shows the numbers."""
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype}, torch {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, torch {expected.shape}"
    a, e = _real64(actual), _real64(expected)
    s = steps * (e.abs() + typical(e)) if scale is None else scale
    if actual.is_complex():
        e = _as_real_view_result(a, e)
    nan_a, nan_e = a.isnan(), e.isnan()
    assert torch.equal(nan_a, nan_e), (
        f"{what}: NaN at different positions: {int((nan_a != nan_e).sum())} of {a.numel()}; "
        f"first: actual {a[nan_a != nan_e][:4].tolist()} torch {e[nan_a != nan_e][:4].tolist()}"
    )
    inf_a, inf_e = a.isinf(), e.isinf()
    bad_inf = (inf_a != inf_e) | (inf_a & (a != e))
    assert not bad_inf.any(), (
        f"{what}: ±inf at different positions: {int(bad_inf.sum())} of {a.numel()}; "
        f"first: actual {a[bad_inf][:4].tolist()} torch {e[bad_inf][:4].tolist()}"
    )
    tol = tolerance(expected, s.nan_to_num(0.0, 0.0, 0.0), steps, eps)
    diff = (a - e).abs()
    bad = ~(nan_e | inf_e) & (diff > tol)
    if bad.any():
        i = int(torch.where(bad, diff - tol, -math.inf).flatten().argmax())
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {a.numel()} values differ beyond the tolerance; "
            f"worst at flat index {i} (of the real view): actual {a.flatten()[i].item()!r} "
            f"torch {e.flatten()[i].item()!r} (difference {diff.flatten()[i].item():.3g}, "
            f"allowed {tol.flatten()[i].item():.3g} = {K_ULPS} ulps of "
            f"{s.flatten()[i].item():.3g}, the magnitudes of {steps} steps)"
        )


def update_scale(before: Tensor, after: Tensor) -> Tensor:
    """The magnitudes a step's result is computed from: the value before and after, the
    update, and the tensor's typical update (for updates whose terms cancel)."""
    b, a = _real64(before), _real64(after)
    update = a - b
    return b.abs() + a.abs() + update.abs() + typical(update)


def _values_equal(a: Any, b: Any) -> bool:
    """Hyperparameter equality: tensors by dtype, shape and values, NaN equal to NaN."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return (
            isinstance(a, Tensor)
            and isinstance(b, Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(a.isnan(), b.isnan())
            and torch.equal(a.nan_to_num(), b.nan_to_num())
        )
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(_values_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def assert_groups_equal(
    ours: Sequence[dict[str, Any]], torch_: Sequence[dict[str, Any]], what: str
) -> None:
    """Param groups with the same keys and hyperparameter values (``params`` aside)."""
    assert len(ours) == len(torch_), f"{what}: {len(ours)} param groups, torch {len(torch_)}"
    for i, (go, gt) in enumerate(zip(ours, torch_, strict=True)):
        assert set(go) == set(gt), f"{what}[{i}]: keys differ: {sorted(set(go) ^ set(gt))}"
        for key in gt:
            if key != "params":
                assert _values_equal(go[key], gt[key]), (
                    f"{what}[{i}][{key!r}]: {go[key]!r}, torch {gt[key]!r}"
                )


def assert_states_close(
    ours: dict[Any, Any], ref: dict[Any, Any], steps: int, eps: float = 0.0
) -> None:
    """The same state keys per parameter index; tensors of the same dtype, shape and sparsity
    with close values (:func:`assert_close`); other values equal."""
    assert set(ours) == set(ref), f"state: params {sorted(ours)}, torch {sorted(ref)}"
    for index, sr in ref.items():
        so = ours[index]
        assert set(so) == set(sr), f"state[{index}]: keys {sorted(so)}, torch {sorted(sr)}"
        for key, vr in sr.items():
            vo, what = so[key], f"state[{index}][{key!r}]"
            if isinstance(vr, Tensor):
                assert isinstance(vo, Tensor), f"{what}: {vo!r}, torch a tensor"
                assert vo.is_sparse == vr.is_sparse, f"{what}: sparse {vo.is_sparse}"
                assert_close(vo, vr, None, steps, what, eps)
            else:
                assert _values_equal(vo, vr), f"{what}: {vo!r}, torch {vr!r}"


# -- the differential run -----------------------------------------------------------------------
def assert_same_outcome(ours: Run, same: Run, ref: Run, when: str) -> bool:
    """Check momentopt's outcome at ``when``; True if every run went on without error.

    Where torch with default flags (``ref``) raises, momentopt raises: the same type, or the
    type torch raises with the case's flags (``same``: e.g. a validation by the fused path
    that comes first). Where only ``same`` raises, momentopt may raise its type or go on
    like ``ref``: torch's fused kernels refuse some inputs by accident (a param whose grad
    appears after the first step: ``_fused_sgd_`` TypeError), and where torch's fused path
    is wrong momentopt must be right; its numbers are then compared with ``ref``'s. Where
    ``same`` could not take the step (skipped), any exception type matches ``ref``'s.
    """
    judges = [r for r in (same, ref) if not r.skipped]
    raised = tuple(type(r.error) for r in judges if r.error is not None)
    torch_error = "; ".join(describe(r.error) for r in judges if r.error is not None)
    if ours.error is None:
        assert ref.error is None, f"{when}: torch raised {describe(ref.error)}; momentopt did not"
        same.skipped = same.skipped or same.error is not None  # it cannot judge what follows
        return True
    assert raised, f"{when}: momentopt raised {describe(ours.error)}; torch did not"
    if same.skipped and ref.error is not None:
        return False  # the type torch's fused path would raise first is not known here
    assert type(ours.error) in raised, (
        f"{when}: momentopt raised {describe(ours.error)}; torch {torch_error}"
    )
    return False


def assert_step_matches(
    case: Case, n: int, ours: Run, ref: Run, before: list[Tensor], earlier: list[Tensor]
) -> None:
    """After step ``n``: every param close to the reference's, every grad bitwise unchanged.
    ``earlier``: per param, the magnitudes of steps 1 … n−1 (:func:`update_scale`, summed);
    step ``n``'s are added. A step's rounding stays in the value after it, so the allowance
    never shrinks below what the earlier steps were allowed: a step with no gradient (no
    update, the value unchanged) must not reject a value that the step before accepted."""
    for i, (po, pr, pb) in enumerate(zip(ours.params, ref.params, before, strict=True)):
        scale = earlier[i] + update_scale(pb, pr)
        assert_close(po, pr, scale, n, f"step {n}: param {i} ({case.params[i]})", scalar_eps(case))
        if pr.grad is not None:
            assert po.grad is not None, f"step {n}: param {i}'s grad was removed"
            assert_close(po.grad, pr.grad, None, 0, f"step {n}: param {i}'s grad")


def matches_either(check: Callable[[Run], None], ref: Run, same: Run) -> None:
    """``check`` against torch's default path (``ref``), or else against torch run with the
    case's own flags (``same``): with ``fused=True`` or ``foreach=True`` torch's contract is
    that implementation's numbers, which differ from its default loop by its own op order
    (its fused Adam kernel and its loop drift apart by more than K_ULPS per step where an
    update cancels the weight). Raises the comparison with the default path if neither holds."""
    try:
        check(ref)
    except AssertionError:
        if same is ref or same.opt is None or same.skipped:  # a skipped run judges nothing
            raise
        try:
            check(same)
        except AssertionError:
            pass
        else:
            return
        raise


def run_case(case: Case) -> None:
    """Run ``case`` on momentopt and torch.optim; raise AssertionError on any disagreement."""
    torch_cls, ours_cls = PAIRS[case.name]
    flags = executor_flags(case)
    ours, same = start(ours_cls, case, flags), start(torch_cls, case, flags)
    if not assert_same_outcome(ours, same, same, "construction"):
        return
    # differentiable=True is judged against torch's normal step: a deliberate deviation
    # (README): torch's differentiable step computes its scalars from a float32 counter, and
    # momentopt's gives the normal step's numbers
    # (a group's differentiable may be any truthy value: torch's step then takes its
    # differentiable branch, as momentopt's does)
    differentiable = any(
        _truthy(value)
        for value in (case.kwargs.get("differentiable"), case.group_overrides.get("differentiable"))
    )
    plain = {"differentiable": False} if differentiable else {}
    ref = start(torch_cls, case, plain) if flags or plain else same
    assert ours.opt is not None and same.opt is not None
    assert ref.opt is not None, f"torch with default flags refused: {describe(ref.error)}"
    assert_groups_equal(ours.opt.param_groups, same.opt.param_groups, "param_groups")
    assert_groups_equal([ours.opt.defaults], [same.opt.defaults], "defaults")
    earlier: list[Tensor] = [torch.zeros(()) for _ in ref.params]  # magnitudes so far
    for n, grads in enumerate(case.steps, start=1):
        before = [p.detach().clone() for p in ref.params]
        for run in {id(r): r for r in (ours, same, ref)}.values():
            step(run, grads)
        if not assert_same_outcome(ours, same, ref, f"step {n}"):
            return
        matches_either(
            lambda judge: assert_step_matches(case, n, ours, judge, before, earlier), ref, same
        )
        earlier = [
            e + update_scale(b, p) for e, b, p in zip(earlier, before, ref.params, strict=True)
        ]
    matches_either(
        lambda judge: assert_states_close(
            ours.opt.state_dict()["state"],
            judge.opt.state_dict()["state"],
            len(case.steps),
            scalar_eps(case),
        ),
        ref,
        same,
    )
    assert_groups_equal(ours.opt.param_groups, same.opt.param_groups, "param_groups after steps")
