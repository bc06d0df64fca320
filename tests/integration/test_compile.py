"""torch.compile of a whole training step (forward, backward, optimizer.step()) matches eager.

Compiling on the CPU is slow, so one compiled function steps all seven optimizers (Dynamo
traces each optimizer's step; the "eager" backend skips code generation). The default
Inductor backend (generated C++ kernels) runs on docs/integrations.md's compiled step, which
test_docs.py compares with eager execution.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from ..helpers import assert_close_report
from .common import ALGORITHMS, TOL, assert_params_close, batches, loss_fn, twin


@pytest.fixture(autouse=True)
def _fresh_dynamo() -> Iterator[None]:
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _counting_backend() -> tuple[Callable[..., Any], list[int]]:
    graphs: list[int] = []

    def backend(gm: torch.fx.GraphModule, example_inputs: Any) -> Callable[..., Any]:
        graphs.append(len(gm.graph.nodes))
        return gm.forward

    return backend, graphs


def test_compiled_step_matches_eager_all_classes() -> None:
    pairs = [twin(name) for name in ALGORITHMS]

    def train_step(x: torch.Tensor, y: torch.Tensor) -> None:
        for _, _, model, opt in pairs:
            opt.zero_grad()
            loss_fn(model, x, y).backward()
            opt.step()

    backend, graphs = _counting_backend()
    compiled = torch.compile(train_step, backend=backend)
    for x, y in batches(3):
        compiled(x, y)
        for model, opt, _, _ in pairs:  # torch.optim, eager
            opt.zero_grad()
            loss_fn(model, x, y).backward()
            opt.step()
        for name, (model_t, _, model_o, _) in zip(ALGORITHMS, pairs, strict=True):
            assert_params_close(model_t, model_o, msg=name)
    assert graphs, "Dynamo captured nothing: the step ran eagerly"
    for name, (_, opt_t, _, opt_o) in zip(ALGORITHMS, pairs, strict=True):
        st, so = opt_t.state_dict()["state"], opt_o.state_dict()["state"]
        assert set(st) == set(so), name
        for k in st:
            assert set(st[k]) == set(so[k]), name
            for key in st[k]:
                assert_close_report(so[k][key], st[k][key], f"{name} state {k}.{key}", **TOL)
