"""L-BFGS, a drop-in for ``torch.optim.LBFGS``: quasi-Newton steps from a history of
curvature pairs, with an optional strong-Wolfe line search.

L-BFGS is not a moment method and stands outside the four-step framework: it treats all
parameters as one vector ``x``, re-evaluates the objective through the closure several times
per ``step``, and its direction comes from the last ``m`` pairs ``(s, y)`` of parameter and
gradient changes (a matrix ``H ≈ ∇²f⁻¹`` applied to the whole gradient), not from elementwise
moments of the gradient. It is therefore its own ``torch.optim.Optimizer`` subclass beside the
recipe engine, with torch's constructor, state layout (one state, kept under the first
parameter) and numbers.

References: D. C. Liu and J. Nocedal, "On the limited memory BFGS method for large scale
optimization", Mathematical Programming 45 (1989); J. Nocedal and S. J. Wright, *Numerical
Optimization*, 2nd ed., Springer 2006 (Algorithm 7.4, the two-loop recursion; eq. 7.20, the
initial scaling; §3.5, the line search: :mod:`.line_search`).
"""

from __future__ import annotations

import copy
import numbers
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, NoReturn

import torch
from torch import Tensor
from torch.optim import Optimizer

from ..engine.loading import PREFIX, check_structure, constructor_defaults, require_mapping
from .hyperparameters import LR, Hyperparameter, HyperparameterTable
from .line_search import Number, strong_wolfe

HYPERPARAMETERS = HyperparameterTable(
    LR.of(1, since="<= 0.4"),
    Hyperparameter("max_iter", 20, since="<= 0.4"),
    Hyperparameter("max_eval", None, since="<= 0.4"),
    Hyperparameter("tolerance_grad", 1e-7, since="<= 0.4"),
    Hyperparameter("tolerance_change", 1e-9, since="<= 0.4"),
    Hyperparameter("history_size", 100, since="<= 0.4"),
    Hyperparameter("line_search_fn", None, since="<= 0.4"),
    checks=("lr",),
)
"""``torch.optim.LBFGS``'s hyperparameters; ``max_eval=None`` becomes ``max_iter * 5 // 4``."""

CURVATURE_THRESHOLD = 1e-10
"""A pair ``(s, y)`` enters the history only if ``y·s`` exceeds this (torch's constant): the
update keeps ``H`` positive definite only for ``y·s > 0``."""

ITERATION_STATE = ("d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad", "prev_loss")
"""The state torch writes at the end of every ``step`` that iterates, in its order."""

COUNTERS = ("func_evals", "n_iter")
STATE_KEYS = (*COUNTERS, "al", *ITERATION_STATE)
"""Every state key (``al``, the two-loop coefficients, appears on the second iteration)."""


class LBFGS(Optimizer):
    r"""L-BFGS, a drop-in for ``torch.optim.LBFGS``.

    Each ``step(closure)`` runs up to ``max_iter`` iterations on the parameters seen as one
    vector ``x`` (complex ones as their real views), with ``g = ∇f(x)``:

    .. math::
        d_k = -H_k g_k,\qquad x_{k+1} = x_k + t_k d_k,

    where ``H_k`` is the L-BFGS inverse-Hessian approximation from the last ``history_size``
    pairs ``s_i = x_{i+1} − x_i = t_i d_i``, ``y_i = g_{i+1} − g_i`` with ``y_i·s_i > 10⁻¹⁰``,
    applied by the two-loop recursion (Nocedal & Wright, Algorithm 7.4) with ``ρ_i = 1/(y_i·s_i)``
    and the initial matrix ``H⁰ = γ·I``, ``γ = y·s / y·y`` of the newest pair (eq. 7.20); the
    first iteration takes ``d = −g``. The step length ``t_k`` is ``lr`` (the first iteration
    ever: ``min(1, 1/‖g‖₁)·lr``) or, with ``line_search_fn="strong_wolfe"``, the result of a
    strong-Wolfe line search started there (:func:`.line_search.strong_wolfe`).

    A step stops when ``‖g‖∞ ≤ tolerance_grad``, ``g·d > −tolerance_change``, ``‖t·d‖∞ ≤
    tolerance_change`` or ``|Δf| < tolerance_change``, or after ``max_iter`` iterations or
    ``max_eval`` evaluations of the closure. Liu & Nocedal (1989); the details (when the
    closure is evaluated, the thresholds) follow torch.optim.LBFGS, after minFunc.

    Args:
        params: the parameters to optimize, in one group (L-BFGS has no per-group options)
        lr: learning rate (default: 1)
        max_iter: iterations per ``step`` (default: 20)
        max_eval: evaluations of the closure per ``step`` (default: ``max_iter * 5 // 4``)
        tolerance_grad: stop when the gradient's largest entry is at most this (default: 1e-7)
        tolerance_change: stop when the step, the change of the loss or the directional
            derivative is below this (default: 1e-9)
        history_size: curvature pairs kept (default: 100)
        line_search_fn: ``"strong_wolfe"`` or None (default: None)

    The state, as torch keeps it under the first parameter: ``func_evals`` and ``n_iter``
    (over all steps), the last direction ``d`` and step ``t``, the pairs (``old_dirs`` = y,
    ``old_stps`` = s, ``ro`` = ρ), ``H_diag`` = γ, ``prev_flat_grad``, ``prev_loss`` and the
    two-loop coefficients ``al``. Where torch's LBFGS fails on a gradient that cannot be
    viewed as flat (a parameter autograd gives non-contiguous strides, such as a transposed
    one), this one flattens it in the parameter's element order, as torch does every other.
    """

    hyperparameter_table: ClassVar[HyperparameterTable] = HYPERPARAMETERS

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
    ) -> None:
        table = self.hyperparameter_table
        defaults = table.defaults_from(locals())
        table.check_values(defaults)
        if max_eval is None:
            defaults["max_eval"] = max_iter * 5 // 4
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")

    @classmethod
    def check_hyperparameters(cls, group: Mapping[str, Any]) -> None:
        """Every check the constructor makes of ``group``'s values, with torch's messages."""
        cls.hyperparameter_table.check(group)

    # -- the parameters as one vector ---------------------------------------------------------
    @property
    def _params(self) -> list[Tensor]:
        return self.param_groups[0]["params"]

    def _flat_grad(self) -> Tensor:
        """The gradients as one vector (complex ones as real views, a missing one as zeros),
        in each parameter's element order."""
        pieces = []
        for p in self._params:
            if p.grad is None:
                piece = p.new_zeros(p.numel())
            elif p.grad.is_sparse:
                piece = p.grad.to_dense().reshape(-1)
            else:
                piece = p.grad.reshape(-1)
            if piece.is_complex():
                piece = torch.view_as_real(piece).reshape(-1)
            pieces.append(piece)
        return torch.cat(pieces, 0)

    def _move(self, t: Number, d: Tensor) -> None:
        """``x ← x + t·d``, ``d`` a flat vector."""
        offset = 0
        for p in self._params:
            real = torch.view_as_real(p) if p.is_complex() else p
            numel = real.numel()
            real.add_(d[offset : offset + numel].view_as(real), alpha=t)
            offset += numel

    def _evaluate_along(
        self, closure: Callable[[], Any], x: list[Tensor], d: Tensor
    ) -> Callable[[Number], tuple[float, Tensor]]:
        """``t ↦ (f(x + t·d), ∇f(x + t·d))``, leaving the parameters at ``x`` (their copies)."""

        def evaluate(t: Number) -> tuple[float, Tensor]:
            self._move(t, d)
            loss = float(closure())
            flat_grad = self._flat_grad()
            for p, saved in zip(self._params, x, strict=True):
                p.copy_(saved)
            return loss, flat_grad

        return evaluate

    # -- step -------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        """Run up to ``max_iter`` L-BFGS iterations; returns the closure's first loss.

        Args:
            closure: re-evaluates the model (zeroing and computing the gradients) and
                returns the loss; called with gradients enabled.
        """
        if len(self.param_groups) != 1:
            raise AssertionError(
                f"Expected exactly one param_group, but got {len(self.param_groups)}"
            )
        closure = torch.enable_grad()(closure)
        group = self.param_groups[0]
        lr = group["lr"]
        lr = lr.squeeze() if isinstance(lr, Tensor) and lr.dim() != 0 else lr
        max_iter, max_eval = group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        history_size, line_search_fn = group["history_size"], group["line_search_fn"]

        # one state for all parameters, under the first one (so that loading casts it)
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = closure()
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        flat_grad = self._flat_grad()
        optimal = flat_grad.abs().max() <= tolerance_grad
        if optimal:
            return orig_loss

        d, t = state.get("d"), state.get("t")
        old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        H_diag = state.get("H_diag")
        prev_flat_grad, prev_loss = state.get("prev_flat_grad"), state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1

            # -- direction: d = −H·g ------------------------------------------------------------
            if state["n_iter"] == 1:
                d = flat_grad.neg()
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                y = flat_grad.sub(prev_flat_grad)
                s = d.mul(t)
                ys = y.dot(s)
                if ys > CURVATURE_THRESHOLD:
                    if len(old_dirs) == history_size:  # forget the oldest pair
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / y.dot(y)  # γ = y·s / y·y
                if "al" not in state:
                    state["al"] = [None] * history_size
                d = _two_loop(flat_grad, old_dirs, old_stps, ro, H_diag, state["al"])

            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.clone(memory_format=torch.contiguous_format)
            else:
                prev_flat_grad.copy_(flat_grad)
            prev_loss = loss

            # -- step length --------------------------------------------------------------------
            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / flat_grad.abs().sum()) * lr
            else:
                t = lr
            gtd = flat_grad.dot(d)  # the directional derivative φ'(0)
            if gtd > -tolerance_change:
                break  # not a descent direction (to the tolerance)

            evals = 0
            if line_search_fn is not None:
                if line_search_fn != "strong_wolfe":
                    raise RuntimeError("only 'strong_wolfe' is supported")
                x = [p.clone(memory_format=torch.contiguous_format) for p in self._params]
                loss, flat_grad, t, evals = strong_wolfe(
                    self._evaluate_along(closure, x, d),
                    t,
                    d,
                    loss,
                    flat_grad,
                    gtd,
                    max_ls=max_eval - current_evals,
                )
                self._move(t, d)
                optimal = flat_grad.abs().max() <= tolerance_grad
            else:
                self._move(t, d)
                if n_iter != max_iter:  # the last iteration's point is evaluated by the next step
                    loss = float(closure())
                    flat_grad = self._flat_grad()
                    optimal = flat_grad.abs().max() <= tolerance_grad
                    evals = 1
            current_evals += evals
            state["func_evals"] += evals

            # -- stop? --------------------------------------------------------------------------
            if n_iter == max_iter or current_evals >= max_eval or optimal:
                break
            if d.mul(t).abs().max() <= tolerance_change:
                break  # the parameters hardly move
            if abs(loss - prev_loss) < tolerance_change:
                break  # the loss hardly changes

        state["d"] = d
        state["t"] = t
        state["old_dirs"] = old_dirs
        state["old_stps"] = old_stps
        state["ro"] = ro
        state["H_diag"] = H_diag
        state["prev_flat_grad"] = prev_flat_grad
        state["prev_loss"] = prev_loss
        return orig_loss

    # -- description ----------------------------------------------------------------------------
    def describe(self, group: int = 0) -> list[tuple[str, str]]:
        """What one iteration does, as (name, formula) pairs; L-BFGS has no φ or ψ."""
        hp = self.param_groups[group]
        if hp["line_search_fn"] is None:
            length = "t = lr (first iteration: min(1, 1/‖g‖₁)·lr)"
        else:
            length = (
                "t: strong-Wolfe line search (c1 = 1e-4, c2 = 0.9) from lr, cubic interpolation"
            )
        return [
            (
                "outside the framework",
                "quasi-Newton, not a moment method: no φ/ψ; each step(closure) runs up to "
                "max_iter iterations on all parameters as one vector x",
            ),
            ("gradient", "g ← ∇f(x)   (the closure re-evaluates f)"),
            (
                "curvature pairs",
                "s = t·d, y = g − g_prev, kept if y·s > 1e-10: the last history_size "
                "(old_stps, old_dirs, ro = 1/y·s)",
            ),
            ("direction", "d = −H·g by the two-loop recursion, H⁰ = γ·I, γ = y·s/y·y (H_diag)"),
            ("step length", length),
            ("update", "x ← x + t·d"),
            (
                "stop",
                "‖g‖∞ ≤ tolerance_grad; g·d, ‖t·d‖∞ or |Δf| below tolerance_change; "
                "max_iter iterations; max_eval evaluations",
            ),
        ]

    # -- checkpoints ----------------------------------------------------------------------------
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load ``state_dict`` after checking it fits; on error nothing changes.

        Raises ``ValueError`` or ``TypeError`` naming the key for what the constructor would
        refuse and what does not fit the parameters (see :func:`check_state_dict`). The
        tensors are copied: training afterwards never writes into ``state_dict``.
        """
        require_mapping(state_dict)
        state_dict = state_dict.copy()
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = pre_hook(self, state_dict)
            if result is not None:
                state_dict = result
        check_state_dict(self, state_dict)
        owned = {
            **state_dict,
            "state": copy.deepcopy(dict(state_dict["state"])),
            "param_groups": copy.deepcopy(state_dict["param_groups"]),
        }
        pre_hooks = self._optimizer_load_state_dict_pre_hooks
        self._optimizer_load_state_dict_pre_hooks = OrderedDict()
        try:
            super().load_state_dict(owned)
        finally:
            self._optimizer_load_state_dict_pre_hooks = pre_hooks


def _two_loop(
    flat_grad: Tensor,
    old_dirs: Sequence[Tensor],
    old_stps: Sequence[Tensor],
    ro: Sequence[Tensor],
    H_diag: Number,
    al: list[Tensor | None],
) -> Tensor:
    r"""``−H·g`` by the two-loop recursion (Nocedal & Wright, Algorithm 7.4).

    .. math::
        q \leftarrow -g;\quad \text{for } i = m{-}1 \dots 0:\ \alpha_i = \rho_i\, s_i \cdot q,\
        q \leftarrow q - \alpha_i y_i;\quad r \leftarrow \gamma q;\quad
        \text{for } i = 0 \dots m{-}1:\ \beta_i = \rho_i\, y_i \cdot r,\
        r \leftarrow r + (\alpha_i - \beta_i)\, s_i

    ``al`` receives the ``α_i`` (torch keeps them in the state).
    """
    q = flat_grad.neg()
    for i in range(len(old_dirs) - 1, -1, -1):
        al[i] = old_stps[i].dot(q) * ro[i]
        q.add_(old_dirs[i], alpha=-al[i])
    r = torch.mul(q, H_diag)
    for i in range(len(old_dirs)):
        be_i = old_dirs[i].dot(r) * ro[i]
        r.add_(old_stps[i], alpha=al[i] - be_i)
    return r


# -- checked loading ------------------------------------------------------------------------------
def _fail(message: str, error: type[Exception] = ValueError) -> NoReturn:
    raise error(PREFIX + message)


def _what(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    """A real Python number or a 1-element floating-point tensor."""
    if isinstance(value, Tensor):
        return value.numel() == 1 and value.is_floating_point()
    return _is_real(value)


def check_state_dict(opt: LBFGS, state_dict: Any) -> None:
    """Raise ``ValueError``/``TypeError`` unless ``state_dict`` fits ``opt``; never changes
    ``opt`` or ``state_dict``.

    Checked: the structure and sizes (as for every momentopt optimizer); the one group's
    hyperparameters (every key, the constructor's checks of ``lr``, numbers where numbers
    are used, ``history_size`` an int ≥ 1, ``line_search_fn`` None or ``"strong_wolfe"``); the
    state only under the first parameter, with torch's keys: ``func_evals``, ``n_iter`` ints
    ≥ 0, the iteration state all present or all absent (all None only before the first
    iteration), ``d`` and ``prev_flat_grad`` floating-point vectors of the parameters' total
    (real) size, the pairs as lists of such vectors, as many as ``ro`` and at most
    ``history_size``, ``al`` a list of ``history_size`` entries, numbers where numbers are
    kept.
    """
    saved_state, saved_groups = check_structure(opt, state_dict)
    group = saved_groups[0]
    _check_group(opt, {k: v for k, v in group.items() if k != "params"})
    first, *others = group["params"]
    for index in others:
        if saved_state.get(index):
            _fail(
                f"state[{index!r}]: LBFGS keeps its state under the first parameter only "
                f"(param_groups[0]['params'][0], id {first!r})"
            )
    state = saved_state.get(first)
    if state:
        _check_state(opt, group, state, f"state[{first!r}]")


def _check_group(opt: LBFGS, group: Mapping[str, Any]) -> None:
    where = "param_groups[0]"
    keys = constructor_defaults(opt)  # not torch's differentiable, which loading adds
    missing = [key for key in keys if key not in group]
    if missing:
        _fail(f"{where} lacks {missing} (LBFGS's group has {sorted(keys)})")
    lr = group["lr"]
    if not (
        _is_real(lr) or (isinstance(lr, Tensor) and not (lr.is_complex() or lr.dtype == torch.bool))
    ):
        _fail(f"{where}: 'lr' must be a number or a 1-element tensor, got {_what(lr)}", TypeError)
    try:
        opt.check_hyperparameters(group)
    except ValueError as err:
        _fail(f"{where}: {err}")
    for key in ("max_iter", "max_eval", "tolerance_grad", "tolerance_change"):
        value = group[key]
        if not _is_real(value):
            _fail(f"{where}: {key!r} must be a number, got {_what(value)}", TypeError)
        if value != value:
            _fail(f"{where}: {key!r} must not be NaN, got {value}")
    history_size = group["history_size"]
    if not _is_int(history_size):
        _fail(f"{where}: 'history_size' must be an int, got {_what(history_size)}", TypeError)
    if history_size < 1:
        _fail(f"{where}: 'history_size' must be >= 1, got {history_size}")
    line_search_fn = group["line_search_fn"]
    if line_search_fn is not None and not isinstance(line_search_fn, str):
        _fail(
            f"{where}: 'line_search_fn' must be None or 'strong_wolfe', got {_what(line_search_fn)}",
            TypeError,
        )
    if line_search_fn not in (None, "strong_wolfe"):
        _fail(f"{where}: 'line_search_fn' must be None or 'strong_wolfe', got {line_search_fn!r}")


def _flat_size(params: Sequence[Tensor]) -> int:
    """The length of the parameters as one real vector."""
    return sum(2 * p.numel() if p.is_complex() else p.numel() for p in params)


def _check_state(
    opt: LBFGS, group: Mapping[str, Any], state: Mapping[str, Any], where: str
) -> None:
    unknown = sorted(str(k) for k in state if k not in STATE_KEYS)
    if unknown:
        _fail(f"{where}: unknown state key(s) {unknown} (expected {list(STATE_KEYS)})")
    missing = [k for k in COUNTERS if k not in state]
    if missing:
        _fail(f"{where}: state key(s) {missing} are missing (LBFGS's state has {list(STATE_KEYS)})")
    for key in COUNTERS:
        if not _is_int(state[key]):
            _fail(f"{where}: state {key!r} must be an int, got {_what(state[key])}", TypeError)
        if state[key] < 0:
            _fail(f"{where}: state {key!r} must be >= 0, got {state[key]}")

    present = [k for k in ITERATION_STATE if k in state]
    if present and len(present) != len(ITERATION_STATE):
        absent = [k for k in ITERATION_STATE if k not in state]
        _fail(f"{where}: state has {present} but lacks {absent} (torch writes them together)")
    if not present or all(state[k] is None for k in present):
        if state["n_iter"] > 0:
            _fail(
                f"{where}: state 'n_iter' is {state['n_iter']} but there is no iteration state "
                f"{list(ITERATION_STATE)} to continue from"
            )
    else:
        _check_iteration_state(state, where, _flat_size(opt.param_groups[0]["params"]))
    history_size = group["history_size"]
    if "al" in state:
        al = state["al"]
        if not isinstance(al, list):
            _fail(f"{where}: state 'al' must be a list, got {_what(al)}", TypeError)
        if len(al) != history_size:
            _fail(f"{where}: state 'al' has {len(al)} entries, history_size is {history_size}")
        for i, value in enumerate(al):
            if value is not None and not _is_scalar(value):
                _fail(
                    f"{where}: state 'al'[{i}] must be None or one number, got {_what(value)}",
                    TypeError,
                )
    pairs = state.get("old_dirs")
    if pairs is not None and len(pairs) > history_size:
        _fail(f"{where}: state holds {len(pairs)} curvature pairs, history_size is {history_size}")


def _check_iteration_state(state: Mapping[str, Any], where: str, size: int) -> None:
    for key in ITERATION_STATE:
        if state[key] is None:
            _fail(f"{where}: state {key!r} is None but other iteration state is set")

    def vector(what: str, value: Any) -> None:
        if not isinstance(value, Tensor):
            _fail(f"{where}: {what} must be a tensor, got {_what(value)}", TypeError)
        if value.shape != (size,):
            _fail(
                f"{where}: {what} has shape {tuple(value.shape)}; the parameters as one real "
                f"vector have shape ({size},)"
            )
        if not value.is_floating_point():
            _fail(f"{where}: {what} has dtype {value.dtype}; it must be floating-point")

    def scalar(what: str, value: Any) -> None:
        if not _is_scalar(value):
            _fail(f"{where}: {what} must be one number, got {_what(value)}", TypeError)

    vector("state 'd'", state["d"])
    vector("state 'prev_flat_grad'", state["prev_flat_grad"])
    scalar("state 't'", state["t"])
    scalar("state 'H_diag'", state["H_diag"])
    scalar("state 'prev_loss'", state["prev_loss"])
    lists = {k: state[k] for k in ("old_dirs", "old_stps", "ro")}
    for key, value in lists.items():
        if not isinstance(value, list):
            _fail(f"{where}: state {key!r} must be a list, got {_what(value)}", TypeError)
    lengths = {k: len(v) for k, v in lists.items()}
    if len(set(lengths.values())) != 1:
        _fail(f"{where}: state 'old_dirs', 'old_stps' and 'ro' differ in length: {lengths}")
    for key in ("old_dirs", "old_stps"):
        for i, value in enumerate(lists[key]):
            vector(f"state {key!r}[{i}]", value)
    for i, value in enumerate(lists["ro"]):
        scalar(f"state 'ro'[{i}]", value)
