"""What the test suite knows about each algorithm: one :class:`OptimizerCase` per class.

In the spirit of torch's ``OptimizerInfo`` (``torch/testing/_internal/common_optimizers.py``),
whose entry each row carries: the suites choose their algorithms, flags and special cases
from these rows instead of lists of their own. Every fact is stated, not derived, and a test
checks it against torch.optim (those about the constructor against momentopt's too):
test_signatures.py (keywords, implementation flags, tensor hyperparameters, fused kernels,
torch's optim_db entry), test_state_dict.py (state keys, eager and lazy state, what loading
fills in), test_sparse.py (sparse gradients) and test_differentiable.py (constant state).

The tolerances (:class:`Tolerances`) are the same for every algorithm today, by design (see
``Tolerances.drift``); each row carries them so that a test judging an algorithm reads them
from its row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import torch
from torch.testing._internal.common_optimizers import OptimizerInfo, optim_db

import momentopt

IMPLS = ("foreach", "fused", "capturable", "differentiable")
"""The implementation flags a constructor may have (torch's "global-cliquey" flags and
``capturable``)."""
MOMENTOPT_OPTIONS = {"cautious": False, "state_precision": None}
"""Keyword-only options every momentopt recipe optimizer adds after torch's signature, with
their defaults, which turn them off (``cautious``: tests/test_modern_cautious.py;
``state_precision``: tests/test_state_precision.py)."""
COMPILED = "compiled"
"""``OptimizerCase.fused_path`` of an algorithm torch has no fused kernel for: momentopt's
fused executor compiles its recipe."""
NOT_ELEMENTWISE = "multi-tensor"
"""``OptimizerCase.fused_path`` of an algorithm whose step is not elementwise (norms of each
tensor, a factored moment, a function of matrices): it is not compiled, and momentopt's
default path runs it multi-tensor (its plan says why)."""
SPARSE_ROWS = "per-tensor"
"""``OptimizerCase.fused_path`` of an algorithm that takes sparse gradients only (SparseAdam):
every path runs it one tensor at a time, on the rows the gradient holds (engine/sparse_rows.py)."""


# -- tolerances --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tolerance:
    """``|actual − expected| ≤ atol + rtol·|expected|``, and why these numbers."""

    rtol: float
    atol: float
    reason: str = field(compare=False)

    def kwargs(self) -> dict[str, float]:
        """As keyword arguments (``assert_close(a, b, **tol.kwargs())``)."""
        return {"rtol": self.rtol, "atol": self.atol}


@dataclass(frozen=True)
class DriftBound:
    """A float32 run's error against a float64 run may be ``k``·(torch's error) plus
    ``floor_ulps``·ε·max|float64|."""

    k: float
    floor_ulps: float
    reason: str = field(compare=False)


@dataclass(frozen=True)
class Tolerances:
    """How close momentopt's numbers must be to torch's (or to its own other paths)."""

    direct: Mapping[torch.dtype, Tolerance] = field(hash=False)
    """Judged against torch's numbers directly: float64 always; float32 and complex64 only
    in the few tests that have no float64 run."""
    drift: DriftBound
    """float32 and complex64 runs judged through a float64 run (tests.helpers
    ``assert_no_worse_than_torch``)."""
    exact_state: tuple[str, ...]
    """State keys equal to the last bit on every executor and CPU."""
    exact_state_reason: str = field(compare=False)
    layouts: Tolerance
    """float64 runs of one algorithm on parameters and gradients in other memory layouts
    (test_fused_layouts.py), against torch's for-loop on the same layouts."""
    normal_step: Tolerance
    """A float64 differentiable step against the normal step (test_differentiable.py)."""

    def by_dtype(self) -> dict[torch.dtype, dict[str, float]]:
        return {dtype: tol.kwargs() for dtype, tol in self.direct.items()}


_FLOAT32_DIRECT = Tolerance(
    1e-5,
    1e-6,
    reason=(
        "For the few tests that have no float64 run (checkpoints moved between torch and ours, "
        "loaded-then-trained runs, the optimizer API suite) and for float32 updates whose op order "
        "differs from torch's (a transposed parameter runs multi-tensor where torch's fused kernel "
        "runs): op-order noise of float32 updates over a few steps."
    ),
)

DEFAULT_TOLERANCES = Tolerances(
    direct=MappingProxyType(
        {
            torch.float32: _FLOAT32_DIRECT,
            torch.complex64: _FLOAT32_DIRECT,
            torch.float64: Tolerance(
                1e-10,
                1e-12,
                reason=(
                    "float64 is judged against torch's float64 directly: there is no wider run to "
                    "measure against. One rounding is 1.1e-16 relative; other (equally valid) op orders, "
                    "compounded over a 30-step run and amplified by the suite's worst cancellation "
                    "(RMSprop's centered √(V − ḡ²)), were measured at most 5e-15 of a tensor's largest "
                    "value and 2.6e-12 relative on its smallest elements (AVX-512, AVX2 and the scalar "
                    "default path alike; the largest share of this bound used is 6e-5). 1e-10 relative "
                    "thus keeps four decades for other machines and still fails any real difference: a "
                    "changed formula moves float64 numbers by 1e-8 relative or more."
                ),
            ),
        }
    ),
    drift=DriftBound(
        4.0,
        4,
        reason=(
            "(K is ``k``, FLOOR_ULPS ``floor_ulps``.) float32 (and complex64) runs are compared through a float64 run of the same algorithm "
            "from the same weights and inputs (torch.optim on float64 copies: the reference). Each "
            "float32 run drifts from it by its own rounding: every op rounds, and training compounds "
            "and amplifies those roundings (a cancellation such as RMSprop's centered √(V − ḡ²) "
            "amplifies them a hundredfold on some CPUs and not on others: FMA in vector loops but "
            "not in scalar tails, another vector width, inductor's own op order). momentopt passes "
            "when its drift is no worse than K times torch's own drift, plus a floor of "
            "FLOOR_ULPS·ε·max|reference| (ε: float32's machine epsilon; 4–8 ulps of the largest "
            "value), for tensors torch happens to compute (almost) exactly, where K·0 would demand "
            "more than float32 can promise. Both quantities scale with the case's conditioning on "
            "every CPU, so no case needs a tolerance of its own. "
            "K: momentopt's and torch's runs are two equally valid float32 evaluations of one "
            "algorithm (op order and fusion differ), so their drifts are samples of the same size; "
            "where the ops are the same, the drifts are equal (ratio 1, the usual case: 88 % of the "
            "tensors compared). Measured over all 29 000 float32/complex64 tensors that test_parity, "
            "test_executors, test_fused, test_differentiable, test_sparse and test_packing compare, "
            "on AVX-512, AVX2 and the scalar default path (ATEN_CPU_CAPABILITY) and with inductor's "
            "simdlen 512, 256 and 1: the median of ours/torch is 1.0 and the largest factor needed "
            "beyond the floor is 1.76 (RMSprop complex64, maximize + weight_decay, whose square_avg "
            "grows to 1e10); with K = 4 the floor needed is at most 2.2ε·max|reference| (an "
            "inductor-compiled RMSprop state). K = 4 and FLOOR_ULPS = 4 leave twice that on both; a "
            "real defect is larger: an update off by 1e-6 relative (lr·(1 + 1e-6)) already fails 19 "
            "of test_parity's 47 float32 per-tensor cases (the former fixed rtol 1e-5 failed 3)."
        ),
    ),
    exact_state=("step", "mu_product"),
    exact_state_reason=(
        "0-d states torch computes as ``s += 1`` / ``s *= μ`` (μ a Python float), which momentopt "
        "computes with the same op on every executor: equal to the last bit on every CPU."
    ),
    layouts=Tolerance(
        1e-12,
        1e-13,
        reason=(
            "float64 op-order noise (the paths differ only in operation order, which moves float64 "
            "results by ~1e-16 relative); a layout mistake moves them by O(1)."
        ),
    ),
    normal_step=Tolerance(
        1e-12,
        1e-14,
        reason=(
            "The differentiable step and the normal step evaluate one formula in float64 with other "
            "ops (out-of-place, recorded by autograd): float64 rounding, far below any difference "
            "in the formula."
        ),
    ),
)


# -- the table ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class OptimizerCase:
    """One algorithm: torch.optim's class, momentopt's drop-in, and what the tests rely on."""

    name: str
    torch_cls: type[torch.optim.Optimizer]
    ours_cls: type[torch.optim.Optimizer]
    info: OptimizerInfo = field(repr=False, compare=False)
    """torch's optim_db entry (its optimizer inputs and error inputs)."""
    hyperparameters: tuple[str, ...]
    """torch's constructor arguments after ``params``, in order, less the IMPLS flags."""
    impls: frozenset[str]
    """Which of IMPLS the constructor has."""
    fused_path: str
    """What ``fused=True`` (and momentopt's default path) runs: torch's kernel's name,
    COMPILED or NOT_ELEMENTWISE."""
    sparse_grads: bool
    """Trains on sparse gradients (nn.Embedding(sparse=True)); else refuses them."""
    complex_params: bool
    tensor_hyperparameters: frozenset[str]
    """Hyperparameters torch's signature types ``float | Tensor`` (betas: each element)."""
    state_keys: tuple[str, ...]
    """Every per-parameter state key (with every option on), in torch's order."""
    eager_state: bool = False
    """torch creates the state in the constructor (so a loaded dict must hold all of it)."""
    lazy_state: bool = False
    """A state entry lacking a key is legal: torch makes the buffer on the next step."""
    load_defaults: frozenset[str] = frozenset()
    """Group keys torch's ``__setstate__`` fills in when a loaded group lacks them."""
    differentiable_constants: tuple[str, ...] = ()
    """State torch refuses to take requiring grad in differentiable mode."""
    sparse_only: bool = False
    """Takes sparse gradients only, and refuses dense ones (torch's ``only_supports_sparse_grads``:
    SparseAdam): the suites give it their models' gradients made sparse (``Tensor.to_sparse()``,
    as torch's own tests do), and leave it out where dense gradients are the subject."""
    no_derivative_through: tuple[str, ...] = ()
    """State torch's differentiable step reads as a number (``.item()``) or only through a
    sign or a branch: no derivative flows through its value, and finite differences see a
    step function, so gradcheck holds it constant (as it holds ``step``)."""
    only_matrices: bool = False
    """torch's constructor takes 2-D parameters only (Muon): the suites give it a model of
    matrices (tests.helpers.MatrixNet), as torch's own tests give it its own."""
    refuses_amp_scaling: bool = False
    """torch's step refuses GradScaler's ``grad_scale``/``found_inf`` though the class has no
    fused implementation (Adafactor: "Grad scaling should occur outside of optimizer.step()")."""
    torch_foreach_differs: str = ""
    """Why torch's ``foreach=True`` computes other numbers than its for-loop (empty: it does
    not). momentopt gives the for-loop's numbers on every path (a deliberate deviation), so
    the suites judge its ``foreach=True`` runs by torch's for-loop (:meth:`judge_kwargs`)."""
    tolerances: Tolerances = DEFAULT_TOLERANCES

    @property
    def pair(self) -> tuple[type[torch.optim.Optimizer], type[torch.optim.Optimizer]]:
        return self.torch_cls, self.ours_cls

    @property
    def fused_kernel(self) -> str | None:
        """torch's fused kernel's name (``torch.<name>``), or None where the path compiles."""
        return (
            None if self.fused_path in (COMPILED, NOT_ELEMENTWISE, SPARSE_ROWS) else self.fused_path
        )

    @property
    def counts_steps(self) -> bool:
        """Keeps a ``step`` count in its state."""
        return "step" in self.state_keys

    def supports(self, impl: str) -> bool:
        assert impl in IMPLS, impl
        return impl in self.impls

    def takes(self, *keywords: str) -> bool:
        """The constructor has every one of ``keywords``."""
        return all(k in self.hyperparameters or k in self.impls for k in keywords)

    def inputs(self, dtype: torch.dtype, device: str = "cpu") -> list[Any]:
        """torch's own constructor inputs (``OptimizerInput``) for ``device``."""
        return self.info.optim_inputs_func(device, dtype)

    def judge_kwargs(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """torch's kwargs for the run that judges momentopt's run with ``kwargs``: the same,
        but ``foreach=False`` for ``foreach=True`` where :attr:`torch_foreach_differs`."""
        if self.torch_foreach_differs and kwargs.get("foreach"):
            return {**kwargs, "foreach": False}
        return dict(kwargs)

    def error_inputs(self, dtype: torch.dtype, device: str = "cpu") -> list[Any]:
        """torch's own error inputs (``ErrorOptimizerInput``) for ``device``."""
        return self.info.optim_error_inputs_func(device, dtype)


def _info(cls: type) -> OptimizerInfo:
    (info,) = (i for i in optim_db if i.optim_cls is cls)
    return info


def _case(name: str, **facts: Any) -> OptimizerCase:
    torch_cls = getattr(torch.optim, name)
    return OptimizerCase(
        name=name,
        torch_cls=torch_cls,
        ours_cls=getattr(momentopt, name),
        info=_info(torch_cls),
        **facts,
    )


_ADAM_STATE = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")

_ROWS = (
    _case(
        "SGD",
        hyperparameters=("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize"),
        impls=frozenset({"foreach", "differentiable", "fused"}),
        fused_path="_fused_sgd_",
        sparse_grads=True,
        complex_params=True,
        tensor_hyperparameters=frozenset({"lr", "weight_decay"}),
        state_keys=("momentum_buffer",),
        lazy_state=True,
        load_defaults=frozenset({"nesterov", "maximize", "foreach", "differentiable", "fused"}),
    ),
    _case(
        "Adagrad",
        hyperparameters=(
            "lr",
            "lr_decay",
            "weight_decay",
            "initial_accumulator_value",
            "eps",
            "maximize",
        ),
        impls=frozenset({"foreach", "differentiable", "fused"}),
        fused_path="_fused_adagrad_",
        sparse_grads=True,
        complex_params=True,
        tensor_hyperparameters=frozenset({"lr"}),
        state_keys=("step", "sum"),
        eager_state=True,
        load_defaults=frozenset({"foreach", "maximize", "differentiable", "fused"}),
    ),
    _case(
        "Adadelta",
        hyperparameters=("lr", "rho", "eps", "weight_decay", "maximize"),
        impls=frozenset({"foreach", "capturable", "differentiable"}),
        fused_path=COMPILED,
        sparse_grads=False,
        complex_params=True,
        tensor_hyperparameters=frozenset({"lr"}),
        state_keys=("step", "square_avg", "acc_delta"),
        load_defaults=frozenset({"foreach", "maximize", "differentiable", "capturable"}),
    ),
    _case(
        "RMSprop",
        hyperparameters=("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize"),
        impls=frozenset({"foreach", "capturable", "differentiable"}),
        fused_path=COMPILED,
        sparse_grads=False,
        complex_params=True,
        tensor_hyperparameters=frozenset({"lr"}),
        state_keys=("step", "square_avg", "grad_avg", "momentum_buffer"),
        load_defaults=frozenset(
            {"momentum", "centered", "foreach", "maximize", "differentiable", "capturable"}
        ),
    ),
    _case(
        "Adam",
        hyperparameters=(
            "lr",
            "betas",
            "eps",
            "weight_decay",
            "amsgrad",
            "maximize",
            "decoupled_weight_decay",
        ),
        impls=frozenset({"foreach", "capturable", "differentiable", "fused"}),
        fused_path="_fused_adam_",
        sparse_grads=False,
        complex_params=True,
        tensor_hyperparameters=frozenset({"lr", "betas"}),
        state_keys=_ADAM_STATE,
        load_defaults=frozenset(
            {
                "amsgrad",
                "maximize",
                "foreach",
                "capturable",
                "differentiable",
                "decoupled_weight_decay",
                "fused",
            }
        ),
        differentiable_constants=("step",),
    ),
    _case(
        "AdamW",
        hyperparameters=("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"),
        impls=frozenset({"foreach", "capturable", "differentiable", "fused"}),
        fused_path="_fused_adamw_",
        sparse_grads=False,
        complex_params=True,
        tensor_hyperparameters=frozenset({"lr", "betas"}),
        state_keys=_ADAM_STATE,
        # torch's AdamW is an Adam with decoupled decay: Adam's __setstate__ fills in its keys
        load_defaults=frozenset(
            {
                "amsgrad",
                "maximize",
                "foreach",
                "capturable",
                "differentiable",
                "decoupled_weight_decay",
                "fused",
            }
        ),
        differentiable_constants=("step",),
    ),
    _case(
        "NAdam",
        hyperparameters=(
            "lr",
            "betas",
            "eps",
            "weight_decay",
            "momentum_decay",
            "decoupled_weight_decay",
            "maximize",
        ),
        impls=frozenset({"foreach", "capturable", "differentiable"}),
        fused_path=COMPILED,
        sparse_grads=False,
        complex_params=True,
        tensor_hyperparameters=frozenset({"lr"}),
        state_keys=("step", "mu_product", "exp_avg", "exp_avg_sq"),
        load_defaults=frozenset(
            {"maximize", "foreach", "capturable", "differentiable", "decoupled_weight_decay"}
        ),
    ),
    _case(
        "Adamax",
        hyperparameters=("lr", "betas", "eps", "weight_decay", "maximize"),
        impls=frozenset({"foreach", "capturable", "differentiable"}),
        fused_path=COMPILED,
        sparse_grads=False,
        complex_params=True,
        tensor_hyperparameters=frozenset({"lr"}),
        state_keys=("step", "exp_avg", "exp_inf"),
        load_defaults=frozenset({"foreach", "maximize", "differentiable", "capturable"}),
    ),
    _case(
        "RAdam",
        hyperparameters=(
            "lr",
            "betas",
            "eps",
            "weight_decay",
            "decoupled_weight_decay",
            "maximize",
        ),
        impls=frozenset({"foreach", "capturable", "differentiable"}),
        fused_path=COMPILED,
        sparse_grads=False,
        complex_params=True,
        tensor_hyperparameters=frozenset({"lr"}),
        state_keys=("step", "exp_avg", "exp_avg_sq"),
        load_defaults=frozenset(
            {"foreach", "maximize", "differentiable", "decoupled_weight_decay", "capturable"}
        ),
    ),
    _case(
        "SparseAdam",
        hyperparameters=("lr", "betas", "eps", "maximize"),
        impls=frozenset(),
        fused_path=SPARSE_ROWS,
        sparse_grads=True,
        complex_params=False,
        tensor_hyperparameters=frozenset({"lr"}),
        state_keys=("step", "exp_avg", "exp_avg_sq"),
        sparse_only=True,
    ),
    _case(
        "Rprop",
        hyperparameters=("lr", "etas", "step_sizes", "maximize"),
        impls=frozenset({"foreach", "capturable", "differentiable"}),
        fused_path=COMPILED,
        sparse_grads=False,
        complex_params=True,
        tensor_hyperparameters=frozenset({"lr"}),
        state_keys=("step", "prev", "step_size"),
        load_defaults=frozenset({"foreach", "maximize", "differentiable", "capturable"}),
        no_derivative_through=("prev",),  # sign(g·prev)
    ),
    _case(
        "ASGD",
        hyperparameters=("lr", "lambd", "alpha", "t0", "weight_decay", "maximize"),
        impls=frozenset({"foreach", "capturable", "differentiable"}),
        fused_path=COMPILED,
        sparse_grads=False,
        complex_params=True,
        tensor_hyperparameters=frozenset({"lr"}),
        state_keys=("step", "eta", "mu", "ax"),
        load_defaults=frozenset({"foreach", "maximize", "differentiable", "capturable"}),
        no_derivative_through=("eta", "mu"),  # .item(); μ = 1 chooses w̄ ← w
        torch_foreach_differs=(
            "torch's multi-tensor ASGD computes η = α/(1 + λ·α·t)^p from its float32 step "
            "counter in float32 (its for-loop in float64 from the count's value, then rounds "
            "once) and folds the decay into the gradient, w − η·(g + λ·w), where its for-loop "
            "computes w·(1 − λ·η) − η·g: η differs by an ulp of float32 at some steps (float64 "
            "weights by 5e-8 relative over 30 steps), float32 weights by 1e-5 relative (1 − λ·η "
            "rounded to float32 keeps λ·η = 1e-6 to 3 %)"
        ),
        tolerances=replace(
            DEFAULT_TOLERANCES,
            exact_state=("step", "eta", "mu"),
            exact_state_reason=(
                "0-d states: ``step`` (s += 1), and η and μ, which torch's for-loop computes "
                "as Python numbers from the count's value and copies in (``torch.as_tensor``): "
                "momentopt computes them with the same formula and copy on every executor, "
                "so they are equal to the last bit on every CPU."
            ),
        ),
    ),
    _case(
        "Adafactor",
        hyperparameters=("lr", "beta2_decay", "eps", "d", "weight_decay", "maximize"),
        impls=frozenset({"foreach"}),
        fused_path=NOT_ELEMENTWISE,
        sparse_grads=False,
        complex_params=False,
        tensor_hyperparameters=frozenset({"lr"}),
        # row_var and col_var for parameters of 2+ dimensions, variance for the others
        state_keys=("step", "row_var", "col_var", "variance"),
        load_defaults=frozenset({"foreach"}),
        refuses_amp_scaling=True,
    ),
    _case(
        "Muon",
        hyperparameters=(
            "lr",
            "weight_decay",
            "momentum",
            "nesterov",
            "ns_coefficients",
            "eps",
            "ns_steps",
            "adjust_lr_fn",
        ),
        impls=frozenset(),
        fused_path=NOT_ELEMENTWISE,
        sparse_grads=False,
        complex_params=False,
        tensor_hyperparameters=frozenset(),
        state_keys=("momentum_buffer",),
        lazy_state=True,
        only_matrices=True,
    ),
)

OPTIMIZERS: Mapping[str, OptimizerCase] = MappingProxyType({row.name: row for row in _ROWS})
"""Every algorithm, by name, in the suite's order."""
ALGORITHMS: tuple[str, ...] = tuple(OPTIMIZERS)

Predicate = Callable[[OptimizerCase], bool]


def every(case: OptimizerCase) -> bool:
    return True


def takes(*keywords: str) -> Predicate:
    """The algorithms whose constructor has every one of ``keywords``."""
    return lambda case: case.takes(*keywords)


def supports(impl: str) -> Predicate:
    """The algorithms with the implementation flag ``impl``."""
    return lambda case: case.supports(impl)


def keeps(state_key: str) -> Predicate:
    """The algorithms with per-parameter state ``state_key``."""
    return lambda case: state_key in case.state_keys


def names(where: Predicate = every) -> tuple[str, ...]:
    """The names of the algorithms ``where`` holds for, in table order."""
    return tuple(name for name, case in OPTIMIZERS.items() if where(case))
