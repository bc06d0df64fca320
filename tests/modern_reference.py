"""Lock-step runs of momentopt's newer optimizers beside their reference implementations.

Each comparison trains a small model (:class:`SmallNet`: linear, a transposed (non-contiguous)
weight, 1-D and 0-D parameters; two parameters missing their gradients on some steps) and a set of hand-made parameters with hand-set gradients (exact zeros, a gradient
whose strides differ from its parameter's, a parameter without gradient every fourth step),
for ``STEPS`` steps, momentopt's class and the reference side by side. float64 is judged
against the reference's float64 directly (``DEFAULT_TOLERANCES.direct``: 1e-10 relative, the
suite's reason); float32 through a float64 run of the reference (momentopt's error at most
4× the reference's own float32 error plus 4 ulps, ``DEFAULT_TOLERANCES.drift``), so another
order of equally exact operations passes on any CPU while a changed formula fails.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from .helpers import (
    assert_matches_torch,
    assert_models_match,
    make_inputs,
    train_together,
    widened,
)
from .optimizer_table import DEFAULT_TOLERANCES, Tolerances

STEPS = 30
Factory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
Hook = Callable[[int, Sequence[torch.optim.Optimizer]], None]
"""Called before each step's gradients with the step index and the optimizers (a switch of
mode, a change of lr); the same for every run."""


class SmallNet(nn.Module):
    """:class:`~tests.helpers.Net` without its convolution (which costs most of a run's time
    on a busy CPU): linear, a non-contiguous (transposed) weight, 1-D and 0-D parameters, with
    ``Net``'s names for the ones :func:`~tests.helpers.train_together` leaves without grad."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.fc = nn.Linear(40, 6, dtype=dtype)
        self.transposed = nn.Parameter(torch.randn(4, 6, dtype=dtype).t())  # non-contiguous
        self.scale = nn.Parameter(torch.randn(4, dtype=dtype))
        self.bias0 = nn.Parameter(torch.randn((), dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x.flatten(1)).tanh() @ self.transposed
        return h * self.scale + self.bias0


def _models(dtype: torch.dtype, n: int) -> list[nn.Module]:
    torch.manual_seed(0)
    base = SmallNet(torch.float32)
    return [widened(base) if dtype == torch.float64 else copy.deepcopy(base) for _ in range(n)]


def train_models(
    factories: Sequence[Factory], dtype: torch.dtype, steps: int = STEPS, hook: Hook | None = None
) -> list[tuple[nn.Module, torch.optim.Optimizer]]:
    """Each factory's optimizer on its own copy of one model, trained together on the same
    inputs (float64 runs: the float32 model and inputs widened, exactly)."""
    models = _models(dtype, len(factories))
    runs = [(m, f(m.parameters())) for m, f in zip(models, factories, strict=True)]
    xs = make_inputs(torch.float32, steps)
    for i in train_together(runs, [x.to(dtype) for x in xs]):
        if hook is not None and i + 1 < steps:
            hook(i + 1, [opt for _, opt in runs])
    return runs


def hand_params(dtype: torch.dtype) -> list[nn.Parameter]:
    """A transposed (non-contiguous) matrix, a vector, a 0-d parameter and a 3×4 matrix."""
    g = torch.Generator().manual_seed(2)
    values = [
        torch.randn(5, 6, generator=g).t(),
        torch.randn(7, generator=g),
        torch.randn((), generator=g),
        torch.randn(3, 4, generator=g),
    ]
    return [nn.Parameter(v.to(dtype)) for v in values]


def hand_gradients(steps: int) -> list[list[torch.Tensor | None]]:
    """float32 gradients for :func:`hand_params`, per step: about a tenth of the entries exactly
    zero, the last matrix's gradient transposed in memory (other strides than its parameter's),
    the 0-d parameter without a gradient every fourth step."""
    g = torch.Generator().manual_seed(3)
    out = []
    for step in range(steps):
        grads: list[torch.Tensor | None] = []
        for shape in ((6, 5), (7,), (), (3, 4)):
            x = torch.randn(shape, generator=g)
            x = x * (torch.rand(shape, generator=g) > 0.1)
            grads.append(x)
        grads[3] = grads[3].t().contiguous().t()  # type: ignore[union-attr]
        if step % 4 == 3:
            grads[2] = None
        out.append(grads)
    return out


def train_hand(
    factories: Sequence[Factory],
    dtype: torch.dtype,
    steps: int = STEPS,
    hook: Hook | None = None,
    negate: Sequence[bool] = (),
) -> list[tuple[list[nn.Parameter], torch.optim.Optimizer]]:
    """Each factory's optimizer on its own copy of :func:`hand_params`, stepped with the same
    hand-set gradients (negated for the runs ``negate`` marks: a reference without
    ``maximize`` beside momentopt's ``maximize=True``)."""
    runs = []
    for f in factories:
        params = hand_params(dtype)
        runs.append((params, f(params)))
    for step, grads in enumerate(hand_gradients(steps)):
        if hook is not None and step:
            hook(step, [opt for _, opt in runs])
        for k, (params, opt) in enumerate(runs):
            sign = -1.0 if k < len(negate) and negate[k] else 1.0
            for p, grad in zip(params, grads, strict=True):
                p.grad = None if grad is None else (sign * grad).to(dtype)
            opt.step()
    return runs


def assert_params_match(
    ours: Sequence[torch.Tensor],
    theirs: Sequence[torch.Tensor],
    reference: Sequence[torch.Tensor] | None,
    what: str,
    tolerances: Tolerances = DEFAULT_TOLERANCES,
) -> None:
    for i, (o, t) in enumerate(zip(ours, theirs, strict=True)):
        ref = None if reference is None else reference[i]
        assert_matches_torch(o, t, ref, f"{what} {i}", tolerances=tolerances)


def assert_states_match(
    ours: torch.optim.Optimizer,
    theirs: torch.optim.Optimizer,
    reference: torch.optim.Optimizer | None,
    *,
    keys: Callable[[str], str] = lambda k: k,
    tolerances: Tolerances = DEFAULT_TOLERANCES,
    exact: Sequence[str] = (),
) -> None:
    """Every parameter's state: the same keys (``keys`` maps ours to the reference's names)
    and values (``exact`` ones to the bit; numbers as numbers)."""
    ps, pt = _params(ours), _params(theirs)
    pr = _params(reference) if reference is not None else None
    for i, (po, p_t) in enumerate(zip(ps, pt, strict=True)):
        so, st = ours.state.get(po, {}), theirs.state.get(p_t, {})
        assert sorted(keys(k) for k in so) == sorted(k for k, v in st.items() if v is not None), (
            i,
            list(so),
            list(st),
        )
        for key, value in so.items():
            other = st[keys(key)]
            label = f"state {i}.{key}"
            if not isinstance(value, torch.Tensor) or not isinstance(other, torch.Tensor):
                assert float(value) == float(other), (label, value, other)
            elif key in exact:
                assert torch.equal(value.to(other.dtype), other), (label, value, other)
            else:
                ref = None if pr is None else reference.state[pr[i]][keys(key)]  # type: ignore[union-attr]
                assert_matches_torch(
                    value, other.to(value.dtype), ref, label, tolerances=tolerances
                )


def _params(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in opt.param_groups for p in group["params"]]


def compare(
    ours: Factory,
    theirs: Factory,
    *,
    steps: int = STEPS,
    hook: Hook | None = None,
    maximize: bool = False,
    state_keys: Callable[[str], str] = lambda k: k,
    exact_state: Sequence[str] = (),
    tolerances: Tolerances = DEFAULT_TOLERANCES,
    dtypes: Sequence[torch.dtype] = (torch.float64, torch.float32),
    model: bool = True,
    after: Callable[[Sequence[torch.optim.Optimizer]], None] | None = None,
) -> None:
    """momentopt's run (``ours``) against the reference's (``theirs``): parameters and state
    after ``steps`` steps, on the model (unless ``model=False``) and on the hand-made
    parameters, in float64 directly and in float32 through the reference's float64 run.
    ``maximize``: ours ascends, the reference descends on the negated gradients (hand-made
    parameters only). ``after`` runs on the optimizers before the comparison (``eval()``)."""
    for dtype in dtypes:
        wide = dtype == torch.float32
        hand = train_hand([ours, theirs], dtype, steps, hook, negate=(False, maximize))
        if wide:  # the float64 run of the reference, on the same numbers widened
            hand += train_hand([theirs], torch.float64, steps, hook, negate=(maximize,))
        if after is not None:
            after([opt for _, opt in hand])
        assert_params_match(
            hand[0][0], hand[1][0], hand[2][0] if wide else None, f"{dtype} hand param", tolerances
        )
        assert_states_match(
            hand[0][1],
            hand[1][1],
            hand[2][1] if wide else None,
            keys=state_keys,
            tolerances=tolerances,
            exact=exact_state,
        )
        if not model or maximize:
            continue
        runs = train_models([ours, theirs], dtype, steps, hook)
        if wide:
            runs += train_models([theirs], torch.float64, steps, hook)
        if after is not None:
            after([opt for _, opt in runs])
        assert_models_match(
            runs[0][0],
            runs[1][0],
            runs[2][0] if wide else None,
            f"{dtype} model param",
            tolerances=tolerances,
        )
        assert_states_match(
            runs[0][1],
            runs[1][1],
            runs[2][1] if wide else None,
            keys=state_keys,
            tolerances=tolerances,
            exact=exact_state,
        )


def executors_agree(
    make: Callable[..., torch.optim.Optimizer], kwargs: dict[str, Any], *, steps: int = 12
) -> None:
    """``make(params, **kwargs)`` on the per-tensor path (``foreach=False``) and the multi-tensor
    path (``foreach=True``), bit for bit, on the hand-made parameters in float32 and float64."""
    for dtype in (torch.float32, torch.float64):
        runs = train_hand(
            [
                lambda p: make(p, **kwargs, foreach=False),
                lambda p: make(p, **kwargs, foreach=True),
            ],
            dtype,
            steps,
        )
        for a, b in zip(runs[0][0], runs[1][0], strict=True):
            assert torch.equal(a, b), (dtype, kwargs, (a - b).abs().max())
