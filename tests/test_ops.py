"""The op vocabulary (engine/ops.py): every entry, with every kind of operand and keyword it
takes, on every implementation generated from it, against the plain tensor op.

(a) plain tensors, one at a time — the reference; (b) TensorList (foreach), (c) the tape
replayed by its kernel, uncompiled, (e) AutogradSafe: bitwise equal to (a); (d) the tape
compiled by inductor: within a few ulps (see COMPILED_TOLERANCE). All ops of a dtype are
recorded on one tape, so the module compiles twice (float32, float64). Then: the table
covers every op the rules call, and the sparse implementation is torch.optim's sparse
Adagrad and SGD, bit for bit.
"""

from __future__ import annotations

import ast
import itertools
import pathlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import Tensor

import momentopt.rules
from momentopt.engine.autograd_safe import AutogradSafe
from momentopt.engine.ops import (
    EITHER,
    MASK,
    METHODS,
    NUMBER,
    TENSOR,
    TENSORWISE,
    VOCABULARY,
    Op,
)
from momentopt.engine.sparse_rows import Rows, SparseGrad
from momentopt.engine.tape import Tape, TapeTensor, build_kernel
from momentopt.engine.tensorlist import TensorList

DTYPES = (torch.float32, torch.float64)
SHAPES = ("1-d", "empty", "non-contiguous")
LENGTHS = {"1-d": 7, "empty": 0, "long": 1000}  # "long": the compiled kernel's input

NUMBERS = {"operand": 0.3, "alpha": -1.3, "value": 0.37}
"""The number given for an operand that may be a number, and for each keyword."""
COMPARISONS = ("gt", "lt", "eq")
"""Ops that compare: ``self`` equals the other operand at every third element (a number
rounded to ``self``'s dtype, as torch compares it)."""


# -- the cases: every entry × every kind of operand and keyword it allows -------------------------
@dataclass(frozen=True)
class Case:
    """One call of ``op``: a kind per operand ("tensor", "number", "0-d") and per keyword
    ("default": not given, "number", "0-d": a float64 0-d tensor)."""

    op: Op
    operands: tuple[str, ...]
    keywords: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        given = [f"{k}={kind}" for k, kind in self.keywords if kind != "default"]
        return f"{self.op.name}({', '.join([*self.operands, *given])})"


def _cases() -> list[Case]:
    cases = []
    for op in VOCABULARY:
        kinds = {EITHER: ("tensor", "number", "0-d"), NUMBER: ("number", "0-d")}
        operand_kinds = [kinds.get(kind, ("tensor",)) for kind in op.operands]
        keyword_kinds = [
            [(k, kind) for kind in ("default", "number", "0-d")] for k, _ in op.keywords
        ]
        for operands in itertools.product(*operand_kinds):
            numbers = {k for k, kind in zip(operands, op.operands, strict=True) if kind is NUMBER}
            if len(numbers) > 1:  # torch takes clamp's bounds both numbers or both tensors
                continue
            for keywords in itertools.product(*keyword_kinds):
                cases.append(Case(op, operands, tuple(keywords)))
    return cases


CASES = _cases()


def test_cases_cover_every_entry_and_kind() -> None:
    assert {c.op.name for c in CASES} == {op.name for op in VOCABULARY}
    assert str(CASES[0]) == "neg()"
    assert "add(number, alpha=0-d)" in map(str, CASES)
    assert "lerp_(tensor, 0-d)" in map(str, CASES)


def _tensor(
    shape: str, dtype: torch.dtype, gen: torch.Generator, *, low: float = 0.25, span: float = 1.5
) -> Tensor:
    """Positive values (``sqrt``, ``div``), or in [low, low + span)."""
    if shape == "non-contiguous":
        t = torch.rand(6, 5, dtype=dtype, generator=gen).t()
        assert not t.is_contiguous()
    else:
        t = torch.rand(LENGTHS[shape], dtype=dtype, generator=gen)
    return t * span + low


@dataclass
class Inputs:
    """One case's tensors for one shape and dtype (fresh copies for each implementation)."""

    this: Tensor
    operands: list[Any]  # Tensor (full), float, or a float64 0-d tensor
    keywords: dict[str, Any]  # float or float64 0-d tensor; absent: default


def _inputs(case: Case, shape: str, dtype: torch.dtype, seed: int) -> Inputs:
    gen = torch.Generator().manual_seed(seed)
    this = _tensor(shape, dtype, gen)
    if case.op.name in ("abs", "sign"):  # values of both signs (on positive ones, abs is the
        this = this - 1.0  # identity, and sign 1)
    operands: list[Any] = []
    for i, kind in enumerate(case.operands):
        lerp_weight = case.op.name == "lerp_" and i == 1
        if case.op.operands[i] is MASK:  # about half the elements, from the same values
            operands.append(_tensor(shape, dtype, gen) > 1.0)
        elif kind == "tensor":
            operands.append(
                _tensor(shape, dtype, gen, **({"low": 0.0, "span": 1.0} if lerp_weight else {}))
            )
        else:
            value = NUMBERS["operand"]
            operands.append(value if kind == "number" else torch.tensor(value, dtype=torch.float64))
    keywords = {
        k: NUMBERS[k] if kind == "number" else torch.tensor(NUMBERS[k], dtype=torch.float64)
        for k, kind in case.keywords
        if kind != "default"
    }
    if case.op.name in COMPARISONS:  # every third element equal to the other operand
        third = torch.arange(this.numel()).reshape(this.shape) % 3 == 0
        this = this.clone().copy_(torch.where(third, operands[0], this))  # (layout kept)
    return Inputs(this, operands, keywords)


def _all_inputs(dtype: torch.dtype, shape: str) -> list[Inputs]:
    return [_inputs(c, shape, dtype, seed=i) for i, c in enumerate(CASES)]


def call(op: Op, this: Any, operands: list[Any], keywords: dict[str, Any]) -> Any:
    """``op`` as a rule calls it."""
    if op.out:
        return getattr(torch, op.name)(this, *operands, out=this, **keywords)
    return getattr(this, op.name)(*operands, **keywords)


def reference(case: Case, inp: Inputs) -> tuple[Tensor, Tensor]:
    """(a): the op on plain tensors, scalars as torch's own API takes them (a keyword as a
    number, a 0-d operand in the tensor's dtype: torch's ``lerp`` takes no other). Returns
    (its result, ``self`` afterwards)."""
    this = inp.this.clone()
    operands = [
        a.to(this.dtype)
        if isinstance(a, Tensor) and a.dim() == 0
        else a.clone()
        if isinstance(a, Tensor)
        else a
        for a in inp.operands
    ]
    keywords = {k: v.item() if isinstance(v, Tensor) else v for k, v in inp.keywords.items()}
    return call(case.op, this, operands, keywords), this


def fused_scalar_alpha(case: Case) -> bool:
    """``add(number, alpha=a)``: torch's CPU kernel rounds ``number·a`` first in its scalar
    loop (fewer than 16 elements, or strided) and computes ``x + number·a`` in one rounding
    (an FMA) in its vectorized loop, so its own value depends on the layout. The tape's and
    AutogradSafe's tensor arithmetic (``addcmul``) is the vectorized loop's."""
    return (
        case.op.name.rstrip("_") == "add"
        and case.operands[0] != "tensor"
        and any(kind != "default" for _, kind in case.keywords)
    )


def vectorized_reference(case: Case, inp: Inputs) -> tuple[Tensor, Tensor]:
    """:func:`reference` as torch's vectorized loop computes it: on a contiguous copy padded
    to 64 more elements (for :func:`fused_scalar_alpha`, where ``self`` is the only tensor)."""
    flat = inp.this.flatten()
    padded = Inputs(torch.cat([flat, flat.new_ones(64)]), inp.operands, inp.keywords)
    result = reference(case, padded)[0][: flat.numel()].view(inp.this.shape)
    return result, result if case.op.inplace else inp.this


def assert_bitwise(actual: Tensor, expected: Tensor, what: str) -> None:
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, what
    if expected.dtype == torch.bool:  # a comparison's mask
        assert torch.equal(actual, expected), what
        return
    ints = {torch.float32: torch.int32, torch.float64: torch.int64}[expected.dtype]
    assert torch.equal(actual.contiguous().view(ints), expected.contiguous().view(ints)), what


def _expected(
    dtype: torch.dtype, shape: str, fused: Callable[[Case], bool] | None = None
) -> list[tuple[Tensor, Tensor]]:
    """The references; :func:`vectorized_reference` for the cases ``fused`` computes by
    tensor arithmetic where torch's own value depends on the layout."""
    return [
        vectorized_reference(c, inp) if fused and fused(c) else reference(c, inp)
        for c, inp in zip(CASES, _all_inputs(dtype, shape), strict=True)
    ]


# -- (b) TensorList -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_tensorlist_is_the_plain_op(dtype: torch.dtype) -> None:
    """One foreach call per case over all the shapes at once."""
    per_shape = {s: _all_inputs(dtype, s) for s in SHAPES}
    expected = {s: _expected(dtype, s) for s in SHAPES}
    for i, case in enumerate(CASES):
        inputs = [per_shape[s][i] for s in SHAPES]
        this = TensorList([inp.this.clone() for inp in inputs])
        operands = [
            TensorList([inp.operands[j].clone() for inp in inputs])
            if kind == "tensor"
            else inputs[0].operands[j]
            for j, kind in enumerate(case.operands)
        ]
        result = call(case.op, this, operands, dict(inputs[0].keywords))
        assert isinstance(result, TensorList) and (result is this) == case.op.inplace
        for k, s in enumerate(SHAPES):
            want, want_self = expected[s][i]
            assert_bitwise(result.tensors[k], want, f"{case} {s}")
            assert_bitwise(this.tensors[k], want_self, f"{case} {s}: self")


# -- (c), (d) the tape, replayed and compiled -------------------------------------------------------
def _record() -> tuple[Tape, list[list[int]]]:
    """All cases on one tape (the structure does not depend on dtype or shape); for each
    case, the positions of its self and tensor operands among the kernel's inputs."""
    tape, positions = Tape(), []
    for i, (case, inp) in enumerate(zip(CASES, _all_inputs(torch.float64, "1-d"), strict=True)):
        this = tape.input(f"{i}")
        mine = [len(tape.inputs) - 1]
        operands: list[Any] = []
        for j, kind in enumerate(case.operands):
            if kind == "tensor":
                operands.append(tape.input(f"{i}.{j}"))
                mine.append(len(tape.inputs) - 1)
            else:
                operands.append(inp.operands[j])
        out = call(case.op, this, operands, dict(inp.keywords))
        assert isinstance(out, TapeTensor)
        tape.outputs[f"{i:03d}"] = out.var
        positions.append(mine)
    return tape, positions


def _run_kernel(
    kernel: Callable[..., Any],
    tape: Tape,
    positions: list[list[int]],
    inputs: list[Inputs],
    device: str = "cpu",
) -> tuple[list[Tensor], list[Tensor]]:
    """(the results, each case's self afterwards) of one call of ``kernel``."""
    args: list[Tensor] = []
    for inp in inputs:
        args.append(inp.this.clone())
        args.extend(a.clone() for a in inp.operands if isinstance(a, Tensor) and a.dim() != 0)
    assert len(args) == len(tape.inputs)
    scalars = torch.tensor(tape.scalars, dtype=torch.float64, device=device)
    results = kernel(scalars, *args)
    return list(results), [args[p[0]] for p in positions]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_tape_kernel_is_the_plain_op(dtype: torch.dtype, shape: str) -> None:
    tape, positions = _record()
    kernel = build_kernel(tape)
    results, selves = _run_kernel(kernel, tape, positions, _all_inputs(dtype, shape))
    for case, (want, want_self), got, got_self in zip(
        CASES, _expected(dtype, shape, fused_scalar_alpha), results, selves, strict=True
    ):
        assert_bitwise(got, want, f"{case}\n{kernel.source}")
        assert_bitwise(got_self, want_self, f"{case}: self")


COMPILED_TOLERANCE = {
    torch.float32: 16 * torch.finfo(torch.float32).eps,
    torch.float64: 16 * torch.finfo(torch.float64).eps,
}
"""Why the compiled kernel is not bitwise: inductor's C++ rounds a·b + c once or twice where
torch's kernels do the other (``add(alpha=)`` and ``addcmul`` are FMAs in torch's CPU
kernels), writes ``lerp`` as its own formula, and takes its vectorized ``sqrt`` from Sleef.
Each differs by about an ulp of the result (measured: at most 4·eps on these values, which are
below 5); cancellation in ``x + alpha·y`` (alpha < 0) makes a relative bound meaningless, so
the bound is absolute (atol), with as much rtol for larger values."""


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_compiled_tape_is_the_plain_op(dtype: torch.dtype) -> None:
    """One compile per dtype, one call, on 1-D tensors as the compiled path passes them (a
    0-element or strided input would compile a second, specialized kernel)."""
    tape, positions = _record()
    compiled = torch.compile(build_kernel(tape), dynamic=True, fullgraph=True)
    # 1000 elements: inductor's vectorized loop and its tail
    results, selves = _run_kernel(compiled, tape, positions, _all_inputs(dtype, "long"))
    tol = COMPILED_TOLERANCE[dtype]
    for case, (want, want_self), got, got_self in zip(
        CASES, _expected(dtype, "long"), results, selves, strict=True
    ):
        torch.testing.assert_close(got, want, rtol=tol, atol=tol, msg=str(case))
        torch.testing.assert_close(got_self, want_self, rtol=tol, atol=tol, msg=str(case))


# -- (e) AutogradSafe -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_autograd_safe_is_the_plain_op(dtype: torch.dtype) -> None:
    """Every input requires grad (a 0-d scalar too, as a tensor lr does); the first tensor
    operand is an AutogradSafe, the second a plain tensor. The values are the plain op's,
    and the backward pass reaches every scalar tensor."""

    def grad_input(x: Any) -> Any:  # (a mask cannot require grad)
        return x.clone().requires_grad_(x.is_floating_point()) if isinstance(x, Tensor) else x

    def by_form(case: Case) -> bool:  # a scalar is a tensor: AutogradSafe's tensor arithmetic
        kinds = (*case.operands, *(kind for _, kind in case.keywords))
        return fused_scalar_alpha(case) and "0-d" in kinds

    for shape in SHAPES:
        for case, inp, (want, want_self) in zip(
            CASES, _all_inputs(dtype, shape), _expected(dtype, shape, by_form), strict=True
        ):
            this = AutogradSafe(grad_input(inp.this))
            operands = [grad_input(a) for a in inp.operands]
            if case.operands and case.operands[0] == "tensor":
                operands[0] = AutogradSafe(operands[0])
            keywords = {k: grad_input(v) for k, v in inp.keywords.items()}
            result = call(case.op, this, operands, keywords)
            assert isinstance(result, AutogradSafe) and (result is this) == case.op.inplace
            assert_bitwise(result.tensor.detach(), want, f"{case} {shape}")
            assert_bitwise(this.tensor.detach(), want_self, f"{case} {shape}: self")
            if not result.tensor.is_floating_point():  # a comparison: no gradient to reach
                continue
            result.tensor.sum().backward()
            scalars = [*keywords.values(), *operands]
            for x in scalars:
                if isinstance(x, Tensor) and x.dim() == 0:
                    assert x.grad is not None, f"{case}: no gradient reaches a scalar"


def _adam_like(m: Any, v: Any, p: Any, g: Any, lr: Any) -> Any:
    """An Adam step, as a rule writes it: in place."""
    m.lerp_(g, 0.1)
    d = v.mul_(0.999).addcmul_(g, g, value=0.001).sqrt().div_(0.3).add_(1e-8)
    return p.add_(m.div(d), alpha=-lr)


def test_autograd_safe_backward_through_an_in_place_chain() -> None:
    """The chain breaks autograd on plain tensors; on AutogradSafe it runs and gives the
    values and gradients of the chain written out of place (the same ops)."""
    gen = torch.Generator().manual_seed(1)
    m0, v0, p0, g0 = (torch.rand(5, generator=gen) + 0.1 for _ in range(4))

    def leaves() -> tuple[Tensor, ...]:
        return (
            *(x.clone().requires_grad_() for x in (m0, v0, p0, g0)),
            torch.tensor(0.01, dtype=torch.float64, requires_grad=True),
        )

    m, v, p, g, lr = leaves()
    with pytest.raises(RuntimeError, match="inplace"):
        _adam_like(m * 1, v * 1, p * 1, g, lr.item()).sum().backward()

    m, v, p, g, lr = leaves()
    out = _adam_like(AutogradSafe(m), AutogradSafe(v), AutogradSafe(p), AutogradSafe(g), lr)
    out.tensor.sum().backward()

    rm, rv, rp, rg, rlr = leaves()  # the same ops in the same order (gradients add up alike)
    new_m = rm.lerp(rg, 0.1)
    d = (rv * 0.999).addcmul(rg, rg, value=0.001).sqrt().div(0.3).add(1e-8)
    ref = rp.addcmul(new_m.div(d), (-rlr).to(torch.float32))
    ref.sum().backward()
    assert torch.equal(out.tensor, ref)
    for x, y in zip((m, v, p, g, lr), (rm, rv, rp, rg, rlr), strict=True):
        assert x.grad is not None and torch.equal(x.grad, y.grad)


# -- the table itself ---------------------------------------------------------------------------------
def test_every_implementation_has_every_op() -> None:
    for op in VOCABULARY:
        assert op.foreach is None or callable(getattr(torch, op.foreach)), op.name
        assert hasattr(torch, op.name) if op.out else hasattr(Tensor, op.name), op.name
        assert set(op.operands) <= {EITHER, TENSOR, MASK, NUMBER}, op.name
    for kind in (TensorList, TapeTensor, AutogradSafe, SparseGrad, Rows):
        assert all(callable(getattr(kind, op.name, None)) for op in METHODS), kind


RULES = pathlib.Path(momentopt.rules.__file__).parent

NOT_TENSOR_METHODS = {
    "get",
    "items",
    "keys",
    "values",
    "join",
    "format",
    "lr",
    "direction",
    "formula",
    "finfo",
}
"""Methods the rules call on mappings and strings (group hyperparameters, formulas), on
other rules (a schedule's ``lr``, a wrapped first moment's ``direction`` and ``formula``) and
``torch.finfo`` (a dtype's constants); calls on ``self``, ``cls``, ``view`` (the rule, the
UpdateView) and ``super()`` are not collected, nor the bodies of functions of matrices
(``@matrix_function``: torch code on plain tensors, run through ``view.map_matrices``)."""


def _matrix_function_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside functions decorated ``@matrix_function``."""
    return {
        id(node)
        for f in ast.walk(tree)
        if isinstance(f, ast.FunctionDef)
        and any(ast.unparse(d).endswith("matrix_function") for d in f.decorator_list)
        for node in ast.walk(f)
    }


def _tensor_calls() -> dict[str, set[str]]:
    """Method name → the rule files calling it (``torch.f(...)`` as ``f``)."""
    calls: dict[str, set[str]] = {}
    for path in sorted(RULES.glob("*.py")):
        tree = ast.parse(path.read_text())
        plain = _matrix_function_nodes(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if id(node) in plain:
                continue
            receiver, name = node.func.value, node.func.attr
            if isinstance(receiver, ast.Name) and receiver.id in {"self", "cls", "view"}:
                continue
            if isinstance(receiver, ast.Call) and ast.unparse(receiver) == "super()":
                continue
            if isinstance(receiver, ast.Constant) or name in NOT_TENSOR_METHODS:
                continue
            calls.setdefault(name, set()).add(path.name)
    return calls


def test_the_table_covers_every_op_the_rules_use() -> None:
    calls = _tensor_calls()
    assert {"lerp_", "addcmul_", "maximum", "norm"} <= set(calls)  # the scan sees the rules' ops
    names = {op.name for op in VOCABULARY} | {op.name for op in TENSORWISE}
    missing = {name: files for name, files in calls.items() if name not in names}
    assert not missing, f"tensor ops the rules call that the vocabulary lacks: {missing}"


# -- sparse gradients -----------------------------------------------------------------------------
def _sparse_grads(dtype: torch.dtype, steps: int = 3) -> list[Tensor]:
    gen = torch.Generator().manual_seed(2)
    grads = []
    for rows in ([1, 4, 7], [0, 4], [2, 3, 7, 9])[:steps]:
        values = torch.randn(len(rows), 3, generator=gen, dtype=torch.float64).to(dtype)
        if dtype.is_complex:
            values = values + 1j * torch.randn(len(rows), 3, generator=gen).to(dtype)
        grads.append(
            torch.sparse_coo_tensor([rows], values, (10, 3), check_invariants=True).coalesce()
        )
    return grads


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64], ids=str)
def test_sparse_adagrad_is_torchs(dtype: torch.dtype, maximize: bool) -> None:
    lr, lr_decay, eps = 0.1, 0.01, 1e-10
    param = torch.randn(10, 3, generator=torch.Generator().manual_seed(3)).to(dtype)
    ref = torch.nn.Parameter(param.clone())
    opt = torch.optim.Adagrad(
        [ref],
        lr=lr,
        lr_decay=lr_decay,
        eps=eps,
        maximize=maximize,
        initial_accumulator_value=0.5,
        foreach=False,
    )
    total = torch.full_like(param, complex(0.5, 0.5) if dtype.is_complex else 0.5)  # torch's
    for t, grad in enumerate(_sparse_grads(dtype), start=1):
        ref.grad = grad.clone()
        opt.step()
        g = SparseGrad(grad)
        if maximize:
            g = g.neg()
        denom = Rows(total, g).addcmul_(g, g, value=1).sqrt().add_(eps)
        Rows(param, g).addcdiv_(g, denom, value=-lr / (1 + (t - 1) * lr_decay))
        assert torch.equal(param, ref.detach()) and torch.equal(total, opt.state[ref]["sum"])


@pytest.mark.parametrize(
    ("nesterov", "dampening", "maximize"),
    [(False, 0.0, False), (False, 0.3, True), (True, 0.0, False)],
)
def test_sparse_sgd_is_torchs(nesterov: bool, dampening: float, maximize: bool) -> None:
    lr, momentum = 0.1, 0.9
    param = torch.randn(10, 3, generator=torch.Generator().manual_seed(4))
    ref = torch.nn.Parameter(param.clone())
    opt = torch.optim.SGD(
        [ref],
        lr=lr,
        momentum=momentum,
        dampening=dampening,
        nesterov=nesterov,
        maximize=maximize,
        foreach=False,
    )
    buf: SparseGrad | None = None
    for grad in _sparse_grads(torch.float32):
        ref.grad = grad.clone()
        opt.step()
        g = SparseGrad(grad)
        if maximize:
            g = g.neg()
        if buf is None:
            buf = g.clone()
        else:
            buf.mul_(momentum).add_(g, alpha=1 - dampening)
        m = g.add(buf, alpha=momentum) if nesterov else buf
        Rows(param, g).add_(m, alpha=-lr)
        want = opt.state[ref]["momentum_buffer"]
        assert torch.equal(param, ref.detach())
        assert torch.equal(buf.tensor._indices(), want._indices())
        assert torch.equal(buf.tensor._values(), want._values())


def test_sparse_unsupported_ops_name_the_op() -> None:
    grad = _sparse_grads(torch.float32, steps=1)[0]
    g, dense = SparseGrad(grad), torch.zeros(10, 3)
    rows = Rows(dense, g)
    with pytest.raises(NotImplementedError, match="addcmul_"):  # torch's sparse backend's
        g.clone().addcmul_(g, g)
    with pytest.raises(RuntimeError, match=r"add\(sparse, dense\)"):  # torch's own refusal
        g.add(torch.ones(10, 3))
    with pytest.raises(TypeError, match="maximum"):
        torch.maximum(g, g, out=g)
    other = SparseGrad(_sparse_grads(torch.float32, steps=2)[1])
    with pytest.raises(TypeError, match="same entries"):
        rows.addcdiv_(g, other)
    assert torch.equal(dense, torch.zeros(10, 3))  # nothing was half-applied


def test_dense_ops_on_rows_are_torchs_dense_ops() -> None:
    """A dense momentum buffer met by a sparse gradient (torch's SGD): ``mul_`` scales all of
    it and ``add_`` of the sparse gradient writes its entries, as torch's dense ops do."""
    grad = _sparse_grads(torch.float32, steps=1)[0]
    buf = torch.randn(10, 3)
    expected = buf.clone().mul_(0.9).add_(grad, alpha=0.5)
    rows = Rows(buf, SparseGrad(grad))
    assert rows.mul_(0.9).add_(SparseGrad(grad), alpha=0.5) is rows
    assert torch.equal(buf, expected)


def test_implementations_refuse_ops_outside_the_vocabulary() -> None:
    tape = Tape()
    x = tape.input("x")
    a = AutogradSafe(torch.ones(3))
    tl = TensorList([torch.ones(3)])
    for value in (x, a, tl):
        with pytest.raises(TypeError, match="minimum"):
            torch.minimum(value, value, out=value)
        with pytest.raises(TypeError, match="add"):
            value.add(value, beta=2)  # type: ignore[union-attr]
    with pytest.raises(TypeError, match="addcmul"):
        x.addcmul(x, 2.0)  # a number where the op takes a tensor
    with pytest.raises(TypeError, match="addcmul"):
        tl.addcmul(tl, 2.0)
