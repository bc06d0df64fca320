"""``momentopt.LBFGS`` against ``torch.optim.LBFGS``: numbers, errors, checkpoints, API.

LBFGS has no row in tests/optimizer_table.py, on purpose: the table-driven suites step without
a closure, run several executors (foreach, fused, compiled, differentiable), several param
groups, per-parameter state and tensors in any layout (their model has a transposed
parameter, whose gradient torch's LBFGS cannot flatten), none of which LBFGS has; it is driven
here by its own ``optim_db`` entry instead (``LBFGS_INFO``: its inputs and error inputs).

Numbers are compared for equality, to the last bit, in float32, float64 and complex64: momentopt
computes every quantity with the op torch uses, in its order and with its scalar types (Python
numbers or 0-d tensors), so on one machine both produce the same bits; and L-BFGS branches on
comparisons of these numbers (the line search's conditions, the curvature test, the stopping
tests), so a tolerance would not be meaningful: one last-bit difference can send the two runs
down other branches.
"""

from __future__ import annotations

import copy
import inspect
import io
import math
import pickle
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from torch.testing._internal.common_optimizers import optim_db

import momentopt
from momentopt.algorithms import line_search
from momentopt.algorithms.lbfgs import STATE_KEYS

(LBFGS_INFO,) = (info for info in optim_db if info.optim_cls is torch.optim.LBFGS)
DTYPES = (torch.float32, torch.float64, torch.complex64)
STEPS = 10
"""Lock-step steps of the parity runs, each up to ``max_iter`` (20) iterations."""


# -- helpers -------------------------------------------------------------------------------------
class SmallNet(nn.Module):
    """Two linear layers, a 1-D and a 0-D parameter, all contiguous (see
    test_odd_strides_and_hand_set_grads for others). Linear layers only: each parity run
    evaluates the closure hundreds of times, and a convolution's backward pass is slow on a
    busy CPU."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.fc1 = nn.Linear(5, 6, dtype=dtype)
        self.fc2 = nn.Linear(6, 3, dtype=dtype)
        self.scale = nn.Parameter(torch.randn(3, dtype=dtype))
        self.bias0 = nn.Parameter(torch.randn((), dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        h = h if h.is_complex() else h.tanh()  # complex tanh has poles
        return self.fc2(h) * self.scale + self.bias0


def batch(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """One fixed batch (inputs, targets): L-BFGS minimizes one deterministic objective (its
    curvature pairs compare gradients of one function)."""
    g = torch.Generator().manual_seed(1)
    real = torch.float32 if dtype == torch.complex64 else dtype
    x, y = torch.randn(8, 5, generator=g, dtype=real), torch.randn(8, 3, generator=g, dtype=real)
    return x.to(dtype), y.to(dtype)


def net_closure(opt: torch.optim.Optimizer, model: SmallNet, i: int) -> Callable:
    """The squared error on the batch; the 0-D bias gets no gradient in step 2 (a missing
    gradient counts as zeros)."""
    x, y = batch(next(model.parameters()).dtype)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = ((model(x) - y).abs() ** 2).mean()
        loss.backward()
        if i == 2:
            model.bias0.grad = None
        return loss

    return closure


def assert_same(a: Any, b: Any, what: str = "state") -> None:
    """Equal to the last bit: tensors (dtype, shape, values, NaN where NaN), Python numbers
    (and their type), lists and dicts (and their key order)."""
    assert type(a) is type(b), (what, type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, (what, a, b)
        assert (
            torch.equal(a, b)
            or torch.equal(a.isnan(), b.isnan())
            and torch.equal(a.nan_to_num(), b.nan_to_num())
        ), (what, a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b), (what, list(a), list(b))
        for key in a:
            assert_same(a[key], b[key], f"{what}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), (what, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{what}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), (what, a, b)
    else:
        assert a == b, (what, a, b)


def assert_same_optimizers(ours: torch.optim.Optimizer, theirs: torch.optim.Optimizer) -> None:
    assert_same(ours.state_dict(), theirs.state_dict())


def assert_same_params(ours: nn.Module, theirs: nn.Module) -> None:
    for (name, po), pt in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        assert_same(po.detach(), pt.detach(), name)


def lockstep_net(
    kwargs: dict[str, Any], dtype: torch.dtype, steps: int = STEPS
) -> tuple[SmallNet, torch.optim.Optimizer, SmallNet, torch.optim.Optimizer, list[float]]:
    """Both optimizers trained ``steps`` steps on copies of one SmallNet; the losses returned."""
    model_t = SmallNet(dtype)
    model_o = copy.deepcopy(model_t)
    opt_t = torch.optim.LBFGS(model_t.parameters(), **copy.deepcopy(kwargs))
    opt_o = momentopt.LBFGS(model_o.parameters(), **copy.deepcopy(kwargs))
    losses = []
    for i in range(steps):
        loss_t = opt_t.step(net_closure(opt_t, model_t, i))
        loss_o = opt_o.step(net_closure(opt_o, model_o, i))
        assert_same(loss_o, loss_t, f"loss {i}")
        losses.append(loss_o.item())
    return model_o, opt_o, model_t, opt_t, losses


# -- signature, defaults, repr ---------------------------------------------------------------------
def test_signature_is_torchs() -> None:
    ours, theirs = (inspect.signature(c).parameters for c in (momentopt.LBFGS, torch.optim.LBFGS))
    assert list(ours) == list(theirs)
    for name in theirs:  # annotations: which ones take a tensor (params: any iterable)
        assert ours[name].kind == theirs[name].kind, name
        assert ours[name].default == theirs[name].default, name
        assert name == "params" or ("Tensor" in str(ours[name].annotation)) == (
            "Tensor" in str(theirs[name].annotation)
        ), name
    step_ours, step_theirs = (
        inspect.signature(c.step).parameters for c in (momentopt.LBFGS, torch.optim.LBFGS)
    )
    assert list(step_ours) == list(step_theirs) == ["self", "closure"]


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"max_iter": 7}, {"max_iter": 7, "max_eval": 3}, {"lr": torch.tensor([0.5])}]
    + [inp.kwargs for inp in LBFGS_INFO.optim_inputs_func("cpu", torch.float32)],
)
def test_defaults_and_repr_are_torchs(kwargs: dict[str, Any]) -> None:
    p = nn.Parameter(torch.randn(3))
    ours = momentopt.LBFGS([p], **copy.deepcopy(kwargs))
    theirs = torch.optim.LBFGS([p], **copy.deepcopy(kwargs))
    assert list(ours.defaults) == list(theirs.defaults)
    assert_same(ours.defaults, theirs.defaults)
    assert repr(ours) == repr(theirs)
    assert_same(ours.state_dict(), theirs.state_dict())


def test_table_matches_torchs_defaults() -> None:
    """The hyperparameter table's defaults are the signature's (``max_eval``: None)."""
    table = momentopt.LBFGS.hyperparameter_table
    signature = inspect.signature(torch.optim.LBFGS).parameters
    assert table.defaults() == {k: p.default for k, p in signature.items() if k != "params"}


def test_optim_db_entry_is_what_this_file_assumes() -> None:
    """The entry this file is driven by: closures, one group, complex parameters, no
    implementation flags, five inputs."""
    assert LBFGS_INFO.step_requires_closure
    assert not LBFGS_INFO.supports_param_groups
    assert LBFGS_INFO.supports_complex
    assert LBFGS_INFO.supported_impls == ()
    assert len(LBFGS_INFO.optim_inputs_func("cpu", torch.float32)) == 5


# -- numbers: torch's optim_db inputs, lock-step ----------------------------------------------------
def _db_cases() -> list[Any]:
    return [
        pytest.param(dtype, inp.kwargs, id=f"{str(dtype)[6:]}-{inp.desc.replace(' ', '_')}")
        for dtype in DTYPES
        for inp in LBFGS_INFO.optim_inputs_func("cpu", dtype)
    ]


@pytest.mark.parametrize("dtype,kwargs", _db_cases())
def test_optim_db_parity(dtype: torch.dtype, kwargs: dict[str, Any]) -> None:
    """10 lock-step steps of up to 20 iterations each on SmallNet: the losses, the
    parameters and the state dict (keys, their order, values and Python types) are torch's."""
    model_o, opt_o, model_t, opt_t, losses = lockstep_net(kwargs, dtype)
    assert_same_params(model_o, model_t)
    assert_same_optimizers(opt_o, opt_t)
    state = opt_o.state_dict()["state"][0]
    assert state["n_iter"] > STEPS  # it iterated within steps
    assert all(map(math.isfinite, losses)) and losses[-1] < losses[0]  # trained, no NaN


def test_tensor_lr_changed_in_place() -> None:
    """A tensor lr that a scheduler changes in place between steps."""
    model_o, opt_o, model_t, opt_t, _ = lockstep_net({"lr": torch.tensor(0.5)}, torch.float64, 2)
    for opt in (opt_o, opt_t):
        opt.param_groups[0]["lr"].mul_(0.1)
    for i in range(2, 4):
        opt_t.step(net_closure(opt_t, model_t, i))
        opt_o.step(net_closure(opt_o, model_o, i))
    assert_same_params(model_o, model_t)
    assert_same_optimizers(opt_o, opt_t)


# -- numbers: line search, history, stopping tests -------------------------------------------------
def rosenbrock(w: torch.Tensor) -> torch.Tensor:
    """The Rosenbrock function of consecutive pairs, a narrow curved valley."""
    return (100 * (w[1:] - w[:-1] ** 2) ** 2 + (1 - w[:-1]) ** 2).sum()


def run_function(
    cls: type[torch.optim.Optimizer],
    f: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    kwargs: dict[str, Any],
    steps: int,
) -> tuple[torch.Tensor, torch.optim.Optimizer, list[torch.Tensor]]:
    w = nn.Parameter(start.clone())
    opt = cls([w], **kwargs)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = f(w)
        loss.backward()
        return loss

    losses = [opt.step(closure) for _ in range(steps)]
    return w, opt, losses


FUNCTIONS = {
    "rosenbrock": (rosenbrock, torch.tensor([-1.5, 2.0, -0.5, 1.2, 0.3], dtype=torch.float64)),
    "quadratic": (
        lambda w: (torch.arange(1.0, 7.0, dtype=w.dtype) * w**2).sum(),
        torch.linspace(-2, 3, 6, dtype=torch.float64),
    ),
}
SCENARIOS = {
    # name: (function, kwargs, steps)
    "strong_wolfe": ("rosenbrock", {"line_search_fn": "strong_wolfe"}, 6),
    "strong_wolfe_short_steps": ("quadratic", {"line_search_fn": "strong_wolfe", "lr": 1e-3}, 3),
    "strong_wolfe_long_steps": ("rosenbrock", {"line_search_fn": "strong_wolfe", "lr": 30.0}, 4),
    "fixed_step": ("rosenbrock", {"lr": 0.05}, 6),
    "tensor_lr_of_shape_1": ("rosenbrock", {"lr": torch.tensor([0.05])}, 2),
    "history_wraps": ("rosenbrock", {"history_size": 2, "line_search_fn": "strong_wolfe"}, 6),
    "history_wraps_fixed_step": ("rosenbrock", {"history_size": 3, "lr": 0.1}, 5),
    "one_iteration_per_step": ("rosenbrock", {"max_iter": 1, "line_search_fn": "strong_wolfe"}, 8),
    "few_evaluations": ("rosenbrock", {"max_eval": 4, "line_search_fn": "strong_wolfe"}, 5),
    "converges": ("quadratic", {"line_search_fn": "strong_wolfe"}, 3),
    "converges_fixed_step": ("quadratic", {"lr": 0.1}, 4),
    "loose_tolerance_change": ("quadratic", {"tolerance_change": 1e-2, "lr": 0.1}, 3),
    "loose_tolerance_grad": ("rosenbrock", {"tolerance_grad": 10.0, "lr": 0.01}, 3),
}


@pytest.mark.parametrize("dtype", (torch.float32, torch.float64), ids=("float32", "float64"))
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenarios(scenario: str, dtype: torch.dtype) -> None:
    """Line search on and off, history shorter than the run, small budgets and each stopping
    test, on functions where they matter: everything equals torch's."""
    name, kwargs, steps = SCENARIOS[scenario]
    f, start = FUNCTIONS[name]
    start = start.to(dtype)
    w_o, opt_o, losses_o = run_function(momentopt.LBFGS, f, start, kwargs, steps)
    w_t, opt_t, losses_t = run_function(torch.optim.LBFGS, f, start, kwargs, steps)
    assert_same(losses_o, losses_t, "losses")
    assert_same(w_o.detach(), w_t.detach(), "w")
    assert_same_optimizers(opt_o, opt_t)
    state = opt_o.state[w_o]
    if "history_size" in kwargs:
        assert len(state["old_dirs"]) == kwargs["history_size"]  # full: the oldest dropped
        assert len(state["al"]) == kwargs["history_size"]


def test_line_search_phases_are_exercised(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scenarios above take every road of the line search: extrapolation (a cubic over
    given bounds), zoom (a cubic over the bracket), the zoom's moves away from the bracket's
    ends, and a budget that runs out."""
    calls: list[bool] = []
    original = line_search.cubic_minimizer

    def spy(*args: Any, bounds: Any = None) -> Any:
        calls.append(bounds is not None)
        return original(*args, bounds=bounds)

    monkeypatch.setattr(line_search, "cubic_minimizer", spy)
    for scenario in ("strong_wolfe_short_steps", "strong_wolfe_long_steps"):
        name, kwargs, steps = SCENARIOS[scenario]
        f, start = FUNCTIONS[name]
        run_function(momentopt.LBFGS, f, start, kwargs, steps)
    assert any(calls) and not all(calls), "extrapolation and zoom"


def test_stops_early_when_converged() -> None:
    """The stopping tests end a step before max_iter (the quadratic converges in a few
    iterations), and a step at the optimum evaluates the closure once and keeps no more."""
    f, start = FUNCTIONS["quadratic"]
    _, opt, _ = run_function(momentopt.LBFGS, f, start, {"line_search_fn": "strong_wolfe"}, 1)
    assert opt.state_dict()["state"][0]["n_iter"] < 20
    w_o, opt_o, _ = run_function(momentopt.LBFGS, f, torch.zeros(6, dtype=torch.float64), {}, 2)
    w_t, opt_t, _ = run_function(torch.optim.LBFGS, f, torch.zeros(6, dtype=torch.float64), {}, 2)
    assert opt_o.state_dict()["state"][0] == {"func_evals": 2, "n_iter": 0}
    assert_same_optimizers(opt_o, opt_t)


def test_no_iterations() -> None:
    """max_iter=0: one evaluation, and the iteration state is written as None (torch's)."""
    f, start = FUNCTIONS["rosenbrock"]
    w_o, opt_o, _ = run_function(momentopt.LBFGS, f, start, {"max_iter": 0}, 2)
    w_t, opt_t, _ = run_function(torch.optim.LBFGS, f, start, {"max_iter": 0}, 2)
    assert_same_optimizers(opt_o, opt_t)
    assert opt_o.state[w_o]["d"] is None
    # and it goes on from there when iterations are allowed again
    for opt in (opt_o, opt_t):
        opt.param_groups[0]["max_iter"] = 3
    for w, opt in ((w_o, opt_o), (w_t, opt_t)):

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = f(w)
            loss.backward()
            return loss

        opt.step(closure)
    assert_same(w_o.detach(), w_t.detach(), "w")
    assert_same_optimizers(opt_o, opt_t)


# -- parameters and gradients in other forms -------------------------------------------------------
def _quartic(w: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss ``Σ c·w² + w⁴/4`` and its gradient, both computed from a contiguous copy of ``w``
    (elementwise, so the gradient's values do not depend on any layout)."""
    flat = w.detach().contiguous()
    loss = (c * flat**2 + flat**4 / 4).sum()
    return loss, 2 * c * flat + flat**3


@pytest.mark.parametrize("line_search_fn", (None, "strong_wolfe"))
def test_odd_strides_and_hand_set_grads(line_search_fn: str | None) -> None:
    """A transposed parameter (whose gradient keeps its strides: torch's LBFGS cannot view it
    as flat and raises), a strided slice with a hand-set non-contiguous gradient, and a
    parameter without a gradient: momentopt's numbers are torch's on contiguous copies."""
    g = torch.Generator().manual_seed(3)
    shapes = [(4, 5), (3, 6), (2,)]
    values = [torch.randn(*s, generator=g, dtype=torch.float64) for s in shapes]
    coefs = [torch.rand(*s, generator=g, dtype=torch.float64) + 0.1 for s in shapes]
    transposed = nn.Parameter(values[0].t().contiguous().t())  # strides (1, 4)
    strided = torch.randn(3, 12, dtype=torch.float64)[:, ::2].detach()
    strided.copy_(values[1])
    strided.requires_grad_()
    unused = nn.Parameter(values[2].clone())
    ours = [transposed, strided, unused]
    theirs = [nn.Parameter(v.clone()) for v in values]
    assert not ours[0].is_contiguous() and not ours[1].is_contiguous()

    def closure_for(params: list[torch.Tensor], odd: bool) -> Callable[[], torch.Tensor]:
        def closure() -> torch.Tensor:
            total = torch.zeros((), dtype=torch.float64)
            for p, c in zip(params[:2], coefs[:2], strict=True):
                loss, grad = _quartic(p, c)
                total = total + loss
                p.grad = grad.t().contiguous().t() if odd else grad  # other strides than p's
            params[2].grad = None
            return total

        return closure

    kwargs = {"line_search_fn": line_search_fn, "history_size": 4}
    opt_o = momentopt.LBFGS(ours, **kwargs)
    opt_t = torch.optim.LBFGS(theirs, **kwargs)
    for _ in range(3):
        assert_same(opt_o.step(closure_for(ours, True)), opt_t.step(closure_for(theirs, False)))
    for po, pt in zip(ours, theirs, strict=True):
        assert_same(po.detach().contiguous(), pt.detach())
    assert_same_optimizers(opt_o, opt_t)
    assert opt_o.state[ours[0]]["n_iter"] > 3

    (w,) = params = [nn.Parameter(values[0].t().contiguous().t())]
    rejected = torch.optim.LBFGS(params)

    def autograd_closure() -> torch.Tensor:
        rejected.zero_grad()
        loss = (w**2).sum()
        loss.backward()
        assert w.grad.stride() == w.stride() == (1, 4)
        return loss

    with pytest.raises(RuntimeError, match="view size is not compatible"):
        rejected.step(autograd_closure)


def test_sparse_gradients() -> None:
    """A sparse gradient (an embedding's) is taken as its dense form, as torch does."""

    def make() -> nn.Module:
        torch.manual_seed(5)
        return nn.Sequential(nn.Embedding(10, 3, sparse=True), nn.Flatten(), nn.Linear(6, 1))

    idx = torch.tensor([[1, 4], [4, 7], [2, 2]])
    runs = []
    for cls in (momentopt.LBFGS, torch.optim.LBFGS):
        model = make()
        opt = cls(model.parameters(), line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = (model(idx) ** 2).mean()
            loss.backward()
            return loss

        for _ in range(3):
            opt.step(closure)
        assert model[0].weight.grad.is_sparse
        runs.append((model, opt))
    assert_same_params(runs[0][0], runs[1][0])
    assert_same_optimizers(runs[0][1], runs[1][1])


# -- errors ----------------------------------------------------------------------------------------
def _error_cases() -> list[Any]:
    return [
        pytest.param(i, id=f"{i}-{err.optimizer_error_input.desc.replace(' ', '_')}")
        for i, err in enumerate(LBFGS_INFO.optim_error_inputs_func("cpu", torch.float32))
    ]


@pytest.mark.parametrize("index", _error_cases())
def test_optim_db_error_inputs(index: int) -> None:
    """torch's error inputs for LBFGS raise (or warn) the type torch names, matching its regex."""
    err = LBFGS_INFO.optim_error_inputs_func("cpu", torch.float32)[index]
    inp = err.optimizer_error_input
    params = inp.params if inp.params is not None else [nn.Parameter(torch.randn(2, 3))]
    context = pytest.warns if issubclass(err.error_type, Warning) else pytest.raises
    with context(err.error_type, match=err.error_regex):
        momentopt.LBFGS(params, **inp.kwargs)


def _outcome(make: Callable[[type], Any], cls: type) -> tuple[type, str] | None:
    try:
        make(cls)
    except Exception as err:  # noqa: BLE001 — whatever torch raises: compared with ours
        return type(err), str(err)
    return None


def _construct(*args: Any, **kwargs: Any) -> Callable[[type], Any]:
    return lambda cls: cls([nn.Parameter(torch.ones(3))], *args, **kwargs)


def _step(
    kwargs: dict[str, Any],
    closure: Callable[[torch.Tensor], Any] | None = lambda w: (w**2).sum(),
    prepare: Callable[[torch.optim.Optimizer], None] = lambda opt: None,
) -> Callable[[type], Any]:
    def make(cls: type) -> Any:
        w = nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
        opt = cls([w], **kwargs)
        prepare(opt)
        if closure is None:
            return opt.step()

        def run() -> Any:
            opt.zero_grad()
            loss = closure(w)
            if isinstance(loss, torch.Tensor) and loss.requires_grad:
                loss.sum().backward()
            return loss

        opt.step(run)
        opt.step(run)
        return opt.state_dict()

    return make


BAD = {
    "negative lr": _construct(lr=-0.1),
    "NaN lr": _construct(lr=float("nan")),
    "tensor lr of two elements": _construct(lr=torch.tensor([0.1, 0.2])),
    "string lr": _construct(lr="0.1"),
    "max_iter not a number": _construct(max_iter="3"),
    "two param groups": lambda cls: cls(
        [{"params": [nn.Parameter(torch.ones(2))]}, {"params": [nn.Parameter(torch.ones(2))]}]
    ),
    "empty params": lambda cls: cls([]),
    "step without closure": _step({}, closure=None),
    "bad line_search_fn": _step({"line_search_fn": "backtracking"}),
    "closure returns None": _step({}, closure=lambda w: None),
    "closure returns a vector": _step({}, closure=lambda w: w * 2),
    "added param group": _step(
        {}, prepare=lambda opt: opt.add_param_group({"params": [nn.Parameter(torch.ones(2))]})
    ),
    "no evaluation budget for the line search": _step(
        {"max_eval": 0, "line_search_fn": "strong_wolfe"}
    ),
    "history_size 0": _step({"history_size": 0}),
}


@pytest.mark.parametrize("case", BAD)
def test_errors_are_torchs(case: str) -> None:
    """Bad input, at construction or at the step: torch's exception type and message (or no
    error where torch has none)."""
    ours, theirs = (_outcome(BAD[case], cls) for cls in (momentopt.LBFGS, torch.optim.LBFGS))
    assert ours == theirs
    assert theirs is not None


def test_bad_line_search_fn_fails_where_torchs_does() -> None:
    """torch refuses a line_search_fn other than 'strong_wolfe' only when its step reaches the
    line search, after the first evaluation; the state then is torch's."""
    runs = []
    for cls in (momentopt.LBFGS, torch.optim.LBFGS):
        w = nn.Parameter(torch.tensor([1.0, -2.0]))
        opt = cls([w], line_search_fn="backtracking")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = (w**2).sum()
            loss.backward()
            return loss

        with pytest.raises(RuntimeError, match="only 'strong_wolfe' is supported"):
            opt.step(closure)
        runs.append((w, opt))
    (w_o, opt_o), (w_t, opt_t) = runs
    assert_same(w_o.detach(), w_t.detach())
    assert_same_optimizers(opt_o, opt_t)


# -- checkpoints -----------------------------------------------------------------------------------
def _roundtrip(state_dict: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("direction", ("torch_to_ours", "ours_to_torch"))
@pytest.mark.parametrize("line_search_fn", (None, "strong_wolfe"))
def test_checkpoints_move_both_ways(direction: str, line_search_fn: str | None) -> None:
    """A checkpoint saved by one class (through torch.save and torch.load(weights_only=True))
    loads into the other, and training goes on identically to the run that saved it."""
    kwargs = {"line_search_fn": line_search_fn, "history_size": 5}
    first, then = (
        (torch.optim.LBFGS, momentopt.LBFGS)
        if direction == "torch_to_ours"
        else (momentopt.LBFGS, torch.optim.LBFGS)
    )
    model = SmallNet(torch.float32)
    opt = first(model.parameters(), lr=0.1, max_iter=4, **kwargs)
    for i in range(3):
        opt.step(net_closure(opt, model, i))
    other_model = copy.deepcopy(model)
    other = then(other_model.parameters(), lr=0.1, max_iter=4, **kwargs)
    other.load_state_dict(_roundtrip(opt.state_dict()))
    assert_same_optimizers(other, opt)
    for i in range(3, 6):
        opt.step(net_closure(opt, model, i))
        other.step(net_closure(other, other_model, i))
    assert_same_params(other_model, model)
    assert_same_optimizers(other, opt)


def test_loading_copies_the_tensors() -> None:
    """Training after a load never writes into the loaded dict (torch's writes into
    ``prev_flat_grad``)."""
    _, opt, _ = run_function(momentopt.LBFGS, *FUNCTIONS["rosenbrock"], {"max_iter": 3}, 2)
    saved = copy.deepcopy(opt.state_dict())
    loaded = copy.deepcopy(saved)
    w = opt.param_groups[0]["params"][0]
    opt.load_state_dict(loaded)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = rosenbrock(w)
        loss.backward()
        return loss

    opt.step(closure)
    assert_same(loaded, saved)


def test_deepcopy_and_pickle() -> None:
    """A copy (deepcopy, pickle) of a model and its optimizer trains as the original does
    (torch's LBFGS loses its ``_params`` in a copy and cannot step)."""
    model_o, opt_o, _, _, _ = lockstep_net({"history_size": 4, "lr": 0.1}, torch.float64, 2)
    copies = [copy.deepcopy((model_o, opt_o)), pickle.loads(pickle.dumps((model_o, opt_o)))]
    for model, opt in [(model_o, opt_o), *copies]:
        for i in range(2, 4):
            opt.step(net_closure(opt, model, i))
    for model, opt in copies:
        assert_same_params(model, model_o)
        assert_same_optimizers(opt, opt_o)


def test_hooks_and_zero_grad() -> None:
    """Step pre/post hooks run once per step (around all its iterations), state_dict and
    load_state_dict hooks run, zero_grad clears the gradients."""
    model = SmallNet(torch.float32)
    opt = momentopt.LBFGS(model.parameters(), max_iter=4)
    seen: list[str] = []
    opt.register_step_pre_hook(lambda o, args, kwargs: seen.append("pre"))
    opt.register_step_post_hook(lambda o, args, kwargs: seen.append("post"))
    opt.register_state_dict_post_hook(lambda o, sd: seen.append("state_dict") or sd)
    opt.register_load_state_dict_pre_hook(lambda o, sd: seen.append("load") or sd)
    opt.step(net_closure(opt, model, 0))
    opt.load_state_dict(opt.state_dict())
    assert seen == ["pre", "post", "state_dict", "load"]
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


# -- checked loading -------------------------------------------------------------------------------
def _trained_state_dict() -> tuple[momentopt.LBFGS, dict[str, Any]]:
    """An optimizer over two parameters that has iterated (full history of 3 pairs)."""
    a = nn.Parameter(torch.tensor([1.5, -0.5, 2.0], dtype=torch.float64))
    b = nn.Parameter(torch.tensor([[0.3, -1.0]], dtype=torch.float64))
    opt = momentopt.LBFGS([a, b], history_size=3, lr=0.1)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = rosenbrock(torch.cat([a, b.flatten()]))
        loss.backward()
        return loss

    opt.step(closure)
    assert len(opt.state[a]["old_dirs"]) == 3
    return opt, copy.deepcopy(opt.state_dict())


def _group(**changes: Any) -> Callable[[dict], None]:
    def change(sd: dict) -> None:
        sd["param_groups"][0].update(changes)

    return change


def _state(key: str, value: Any) -> Callable[[dict], None]:
    def change(sd: dict) -> None:
        sd["state"][0][key] = value

    return change


def _drop_state(*keys: str) -> Callable[[dict], None]:
    def change(sd: dict) -> None:
        for key in keys:
            del sd["state"][0][key]

    return change


def _fewer_pairs_allowed(sd: dict) -> None:
    """history_size 2 (and ``al`` of 2 entries) beside 3 pairs."""
    sd["param_groups"][0]["history_size"] = 2
    sd["state"][0]["al"].pop()


BAD_STATE_DICTS: dict[str, tuple[Callable[[dict], Any], type, str]] = {
    "two groups": (
        lambda sd: sd["param_groups"].append({**sd["param_groups"][0], "params": [7]}),
        ValueError,
        "parameter groups",
    ),
    "group lacks a key": (
        lambda sd: sd["param_groups"][0].pop("history_size"),
        ValueError,
        "history_size",
    ),
    "negative lr": (_group(lr=-1.0), ValueError, "Invalid learning rate"),
    "lr a string": (_group(lr="1"), TypeError, "'lr'"),
    "NaN lr": (_group(lr=math.nan), ValueError, "Invalid learning rate: nan"),
    "tensor lr of two": (_group(lr=torch.ones(2)), ValueError, "Tensor lr must be 1-element"),
    "max_iter a string": (_group(max_iter="20"), TypeError, "'max_iter'"),
    "max_eval a tensor": (_group(max_eval=torch.tensor(3)), TypeError, "'max_eval'"),
    "NaN tolerance_grad": (_group(tolerance_grad=math.nan), ValueError, "'tolerance_grad'"),
    "history_size a float": (_group(history_size=3.0), TypeError, "'history_size'"),
    "history_size 0": (_group(history_size=0), ValueError, "'history_size'"),
    "unknown line_search_fn": (_group(line_search_fn="armijo"), ValueError, "'line_search_fn'"),
    "line_search_fn a number": (_group(line_search_fn=1), TypeError, "'line_search_fn'"),
    "unknown state key": (_state("momentum", 1), ValueError, "momentum"),
    "no func_evals": (_drop_state("func_evals"), ValueError, "func_evals"),
    "n_iter a float": (_state("n_iter", 2.0), TypeError, "'n_iter'"),
    "negative n_iter": (_state("n_iter", -1), ValueError, "'n_iter'"),
    "part of the iteration state": (_drop_state("prev_flat_grad"), ValueError, "prev_flat_grad"),
    "n_iter without iteration state": (
        _drop_state(
            "d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad", "prev_loss"
        ),
        ValueError,
        "'n_iter'",
    ),
    "d of another length": (_state("d", torch.zeros(4, dtype=torch.float64)), ValueError, "'d'"),
    "d of integers": (_state("d", torch.zeros(5, dtype=torch.int64)), ValueError, "'d'"),
    "d a list": (_state("d", [0.0] * 5), TypeError, "'d'"),
    "d None beside set state": (_state("d", None), ValueError, "'d'"),
    "t a string": (_state("t", "0.1"), TypeError, "'t'"),
    "H_diag a vector": (_state("H_diag", torch.ones(2)), TypeError, "'H_diag'"),
    "prev_loss None": (_state("prev_loss", None), ValueError, "'prev_loss'"),
    "pairs of other lengths": (
        lambda sd: sd["state"][0]["ro"].pop(),
        ValueError,
        "differ in length",
    ),
    "a pair of another length": (
        lambda sd: sd["state"][0]["old_stps"].__setitem__(1, torch.zeros(2)),
        ValueError,
        "'old_stps'\\[1\\]",
    ),
    "ro entry a string": (
        lambda sd: sd["state"][0]["ro"].__setitem__(0, "x"),
        TypeError,
        "'ro'\\[0\\]",
    ),
    "old_dirs a tuple": (
        lambda sd: sd["state"][0].__setitem__("old_dirs", tuple(sd["state"][0]["old_dirs"])),
        TypeError,
        "'old_dirs'",
    ),
    "al of another length": (
        lambda sd: sd["state"][0]["al"].append(None),
        ValueError,
        "'al'",
    ),
    "al entry a vector": (
        lambda sd: sd["state"][0]["al"].__setitem__(0, torch.zeros(5)),
        TypeError,
        "'al'\\[0\\]",
    ),
    "more pairs than history_size": (_fewer_pairs_allowed, ValueError, "curvature pairs"),
    "state under another parameter": (
        lambda sd: sd["state"].__setitem__(1, {"func_evals": 1, "n_iter": 0}),
        ValueError,
        "first parameter",
    ),
    "state not a dict": (lambda sd: sd.__setitem__("state", [1]), TypeError, "'state'"),
}


@pytest.mark.parametrize("case", BAD_STATE_DICTS)
def test_load_state_dict_refuses_what_does_not_fit(case: str) -> None:
    """A clear TypeError/ValueError naming the key; neither the optimizer nor the dict
    changes."""
    opt, good = _trained_state_dict()
    change, error, match = BAD_STATE_DICTS[case]
    bad = copy.deepcopy(good)
    change(bad)
    given = copy.deepcopy(bad)
    with pytest.raises(error, match=match):
        opt.load_state_dict(bad)
    assert_same(opt.state_dict(), good)
    assert_same(bad, given)


@pytest.mark.parametrize(
    "kwargs,steps",
    [({}, 0), ({"max_iter": 0}, 1), ({"tolerance_grad": 1e9}, 1), ({}, 2), ({"max_iter": 1}, 1)],
)
def test_load_state_dict_takes_every_state_torch_writes(kwargs: dict[str, Any], steps: int) -> None:
    """Fresh, only evaluated (at the optimum), not iterated (None state), one iteration (no
    ``al``), many: each of torch's states loads, and equals torch's after loading."""
    w_t, opt_t, _ = run_function(torch.optim.LBFGS, *FUNCTIONS["rosenbrock"], kwargs, steps)
    opt_o = momentopt.LBFGS([nn.Parameter(w_t.detach().clone())], **kwargs)
    opt_o.load_state_dict(_roundtrip(opt_t.state_dict()))
    assert_same_optimizers(opt_o, opt_t)
    assert set(opt_o.state_dict()["state"].get(0, {})) <= set(STATE_KEYS)


def test_load_state_dict_takes_unusual_groups() -> None:
    """What torch's constructor takes loads: a 1-element tensor lr, a huge evaluation budget,
    float iteration counts, keys a scheduler adds."""
    opt, good = _trained_state_dict()
    sd = copy.deepcopy(good)
    lr = torch.tensor([0.05], dtype=torch.float64)
    sd["param_groups"][0].update(lr=lr, max_eval=10**30, max_iter=4.0, initial_lr=0.1)
    opt.load_state_dict(sd)
    group = opt.param_groups[0]
    assert group["max_eval"] == 10**30 and group["initial_lr"] == 0.1
    assert torch.equal(group["lr"], lr) and group["lr"] is not lr  # copied


# -- momentopt show ----------------------------------------------------------------------------------
@pytest.mark.parametrize("line_search_fn", (None, "strong_wolfe"))
def test_describe_says_it_stands_outside_the_framework(line_search_fn: str | None) -> None:
    """``describe()`` (what ``momentopt show LBFGS`` prints) names no φ/ψ and says why."""
    opt = momentopt.LBFGS([nn.Parameter(torch.zeros(1))], line_search_fn=line_search_fn)
    steps = dict(opt.describe())
    assert "not a moment method" in steps["outside the framework"]
    assert not any("φ (" in name or "ψ (" in name for name in steps)
    assert ("strong-Wolfe" in steps["step length"]) == (line_search_fn is not None)


def test_momentopt_show_lbfgs() -> None:
    """``momentopt show LBFGS`` finds the class and prints its description."""
    from momentopt.lab import show

    cls, kwargs = show.resolve("LBFGS")
    assert cls is momentopt.LBFGS and kwargs == {}
    text = show.render(cls([torch.zeros(1, requires_grad=True)]))
    assert "outside the framework" in text and "history_size=100" in text
