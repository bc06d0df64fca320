"""Packed state (engine/packing.py): 0-d state as views of one buffer per name, small tensors'
state as views of flat chunk buffers. Packing must be invisible: same numbers as torch.optim,
state dicts that load both ways, and user edits or loads of the state respected."""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch

import momentopt
from momentopt.engine import compiled

from .helpers import assert_matches_torch, assert_state_dicts_match

Run = tuple[list[torch.nn.Parameter], torch.optim.Optimizer]


def _params(
    seed: int = 0, n: int = 40, dtype: torch.dtype = torch.float32
) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(7,), (3, 5), (2, 3, 4), ()] * (n // 4)
    return [torch.nn.Parameter(torch.randn(s, generator=g).to(dtype)) for s in shapes]


def _grads(params: list[torch.nn.Parameter], step: int, every: int = 1) -> list:
    """Gradients for ``step``; with ``every`` > 1 some parameters get none on some steps."""
    g = torch.Generator().manual_seed(100 + step)
    return [
        torch.randn(p.shape, generator=g).to(p.dtype) if (i + step) % every == 0 else None
        for i, p in enumerate(params)
    ]


def _run(opt: torch.optim.Optimizer, params: list, steps: range, every: int = 1) -> None:
    for t in steps:
        for p, g in zip(params, _grads(params, t, every), strict=True):
            p.grad = g
        opt.step()


def _twins(ours_cls, torch_cls, ours_kw=None, torch_kw=None, **kw):
    a, b = _params(), _params()
    ours = ours_cls(a, **{**kw, **(ours_kw or {})})
    return a, ours, b, torch_cls(b, **{**kw, **(torch_kw or {})})


def _reference(torch_cls: type, **kw: Any) -> Run:
    """torch.optim on float64 copies of the same parameters (run it on the same steps): what
    the float32 runs' errors are measured against (helpers.K)."""
    params = _params(dtype=torch.float64)
    return params, torch_cls(params, **kw)


def _assert_same(
    a: list, opt_a: torch.optim.Optimizer, b: list, opt_b: torch.optim.Optimizer, reference: Run
) -> None:
    """``a`` (ours, or torch loaded from ours) matches torch's ``b`` through ``reference``."""
    for i, (pa, pb, pr) in enumerate(zip(a, b, reference[0], strict=True)):
        assert_matches_torch(pa, pb, pr, f"param {i}")
    assert_state_dicts_match(opt_a.state_dict(), opt_b.state_dict(), reference[1].state_dict())


def _storages(tensors) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in tensors}


def test_step_counters_are_views_of_one_buffer():
    params = _params()
    opt = momentopt.Adam(params)
    _run(opt, params, range(3))
    steps = [opt.state[p]["step"] for p in params]
    assert len(_storages(steps)) == 1
    assert all(float(s) == 3.0 for s in steps)


@pytest.mark.parametrize("every", [1, 3])
def test_packed_steps_match_torch_when_grads_come_and_go(every):
    a, opt_a, b, opt_b = _twins(momentopt.Adam, torch.optim.Adam, lr=1e-2, amsgrad=True)
    r, opt_r = reference = _reference(torch.optim.Adam, lr=1e-2, amsgrad=True)
    for opt, ps in ((opt_a, a), (opt_b, b), (opt_r, r)):
        _run(opt, ps, range(8), every)
    _assert_same(a, opt_a, b, opt_b, reference)


def test_packed_state_dict_saves_and_loads_into_torch():
    """Views of shared buffers survive torch.save and drive torch.optim correctly."""
    a, opt_a, b, opt_b = _twins(momentopt.Adam, torch.optim.Adam, lr=1e-2)
    _run(opt_a, a, range(3))
    _run(opt_b, b, range(3))
    buf = io.BytesIO()
    torch.save(opt_a.state_dict(), buf)
    buf.seek(0)
    c = [torch.nn.Parameter(p.detach().clone()) for p in a]
    opt_c = torch.optim.Adam(c, lr=1e-2)
    opt_c.load_state_dict(torch.load(buf))
    r, opt_r = reference = _reference(torch.optim.Adam, lr=1e-2)
    _run(opt_r, r, range(3))
    for opt, ps in ((opt_a, a), (opt_b, b), (opt_c, c), (opt_r, r)):
        _run(opt, ps, range(3, 6))
    _assert_same(c, opt_c, b, opt_b, reference)
    _assert_same(a, opt_a, b, opt_b, reference)


def test_torch_state_dict_loads_and_is_packed_again():
    a, opt_a, b, opt_b = _twins(momentopt.NAdam, torch.optim.NAdam, lr=1e-2)
    _run(opt_b, b, range(3))
    for pa, pb in zip(a, b, strict=True):
        pa.data.copy_(pb.data)
    opt_a.load_state_dict(opt_b.state_dict())
    r, opt_r = reference = _reference(torch.optim.NAdam, lr=1e-2)
    _run(opt_r, r, range(3))
    for opt, ps in ((opt_a, a), (opt_b, b), (opt_r, r)):
        _run(opt, ps, range(3, 6))
    _assert_same(a, opt_a, b, opt_b, reference)
    assert len(_storages(opt_a.state[p]["mu_product"] for p in a)) == 1
    assert not _storages(opt_b.state[p]["step"] for p in b) & _storages(
        opt_a.state[p]["step"] for p in a
    )  # loading copied: training ours never writes into torch's tensors


@pytest.fixture
def compile_everything(monkeypatch):
    monkeypatch.setattr(compiled, "COMPILE_MIN_NUMEL", 0)


def test_small_tensors_state_lives_in_one_flat_buffer(compile_everything):
    params = _params()
    opt = momentopt.RMSprop(params, lr=1e-2)
    _run(opt, params, range(2))
    assert len(_storages(opt.state[p]["square_avg"] for p in params)) == 1


@pytest.mark.parametrize("every", [1, 3])
def test_compiled_chunks_match_torch_when_grads_come_and_go(every, compile_everything):
    a, opt_a, b, opt_b = _twins(momentopt.NAdam, torch.optim.NAdam, lr=1e-2)
    r, opt_r = reference = _reference(torch.optim.NAdam, lr=1e-2)
    for opt, ps in ((opt_a, a), (opt_b, b), (opt_r, r)):
        _run(opt, ps, range(8), every)
    _assert_same(a, opt_a, b, opt_b, reference)


def test_a_replaced_state_entry_is_used(compile_everything):
    """A user who swaps in a new state tensor gets it used (the chunk is packed again)."""
    a, opt_a, b, opt_b = _twins(momentopt.RMSprop, torch.optim.RMSprop, lr=1e-2)
    r, opt_r = reference = _reference(torch.optim.RMSprop, lr=1e-2)
    runs = ((opt_a, a), (opt_b, b), (opt_r, r))
    for opt, ps in runs:
        _run(opt, ps, range(2))
        opt.state[ps[5]]["square_avg"] = torch.full_like(ps[5], 0.25)
        opt.state[ps[6]]["square_avg"].fill_(0.5)  # in place: a view, changed where it lies
        _run(opt, ps, range(2, 4))
    _assert_same(a, opt_a, b, opt_b, reference)


def test_load_state_dict_copies_into_new_buffers(compile_everything):
    """After a load our state holds copies; a held state_dict is never written by steps."""
    params = _params()
    opt = momentopt.RMSprop(params, lr=1e-2)
    _run(opt, params, range(2))
    saved = opt.state_dict()
    frozen = {k: {n: v.clone() for n, v in s.items()} for k, s in saved["state"].items()}
    opt.load_state_dict(saved)
    _run(opt, params, range(2, 4))
    for k, s in saved["state"].items():
        for n, v in s.items():
            assert torch.equal(v, frozen[k][n]), (k, n)


def test_layouts_kept_are_bounded_when_grads_come_and_go(compile_everything):
    """Each new set of stepping tensors is a new layout; old ones (and their flat buffers)
    are dropped, so memory does not grow with the number of patterns seen."""
    params = _params()
    opt = momentopt.RMSprop(params, lr=1e-2)
    _run(opt, params, range(12), every=5)  # 5 patterns, then again
    caches = [cache for _, cache in opt._executor_caches.values()]
    assert all(len(c["layouts"]) <= compiled.LAYOUTS_KEPT for c in caches if "layouts" in c)
