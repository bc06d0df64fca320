"""The fused executor: parity with torch.optim, no recompiles on hyperparameter changes, and
the multi-tensor fallback when compiling is impossible.

Compiling is slow, so the compiled cases are few and small; compiled kernels are shared by
all tests of the process (the executor caches them by tape structure).
"""

from __future__ import annotations

import copy
import os
import warnings

import pytest
import torch

import momentopt
from momentopt.engine import compiled, torch_kernels

from .helpers import (
    PAIRS,
    WIDE,
    Net,
    assert_close_report,
    assert_matches_torch,
    assert_models_match,
    assert_state_dicts_close,
    assert_state_dicts_match,
    lockstep,
    make_inputs,
    train_together,
    widened,
)
from .optimizer_table import COMPILED, OPTIMIZERS, names

KERNEL_ALGOS = names(lambda case: case.fused_kernel is not None)  # torch has a fused kernel
COMPILED_ALGOS = names(lambda case: case.fused_path == COMPILED)  # these are compiled


def _run_pair(
    name: str,
    dtype: torch.dtype,
    kwargs: dict,
    ours_extra: dict,
    torch_extra: dict,
    steps: int = 30,
) -> None:
    """momentopt (``ours_extra`` flags) and torch.optim (``torch_extra``) in lock step, with
    torch's float64 run (``torch_extra``) as the reference for float32 and complex64."""
    case = OPTIMIZERS[name]
    torch_cls, ours_cls = case.pair
    torch.manual_seed(0)
    model_t = Net(dtype)
    model_o = copy.deepcopy(model_t)
    model_r = widened(model_t) if dtype in WIDE else None
    opt_t = torch_cls(model_t.parameters(), **copy.deepcopy({**kwargs, **torch_extra}))
    opt_o = ours_cls(model_o.parameters(), **copy.deepcopy({**kwargs, **ours_extra}))
    runs = [(model_t, opt_t), (model_o, opt_o)]
    if model_r is not None:
        opt_r = torch_cls(model_r.parameters(), **copy.deepcopy({**kwargs, **torch_extra}))
        runs.append((model_r, opt_r))
    for _ in train_together(runs, make_inputs(dtype, steps)):
        pass
    assert_models_match(model_o, model_t, model_r, tolerances=case.tolerances)
    assert_state_dicts_match(
        opt_o.state_dict(),
        opt_t.state_dict(),
        None if model_r is None else opt_r.state_dict(),
        tolerances=case.tolerances,
    )


def _kernel_cases():
    for name in KERNEL_ALGOS:
        for dtype in (torch.float32, torch.float64):
            for inp in OPTIMIZERS[name].inputs(dtype):
                yield pytest.param(
                    name, dtype, inp.kwargs, id=f"{name}-{str(dtype)[6:]}-{inp.desc}"
                )


@pytest.mark.parametrize("name,dtype,kwargs", list(_kernel_cases()))
def test_torch_kernel_parity(name, dtype, kwargs):
    """fused=True on both sides: torch's kernel through the recipe→kernel table."""
    kw = dict(kwargs)
    if isinstance(kw.get("lr"), torch.Tensor):
        kw["lr"] = kw["lr"].item()
    _run_pair(name, dtype, kw, {"fused": True}, {"fused": True})


@pytest.mark.parametrize("name", KERNEL_ALGOS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
def test_default_path_matches_torch_default(name, dtype):
    """Default flags (our fused table; complex as real views) against torch's default."""
    _run_pair(name, dtype, OPTIMIZERS[name].inputs(dtype)[-1].kwargs, {}, {})


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One thread: parallel regions on a busy 2-core machine stall (slow, not wrong)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="module")
def _simdlen():
    """``MOMENTOPT_TEST_SIMDLEN`` (e.g. 256, or 1 for scalar code) sets inductor's vector
    width for this module, to check the compiled path's numbers on another CPU's vector code
    on this one. (``ATEN_CPU_CAPABILITY=avx2``/``default`` does the same for torch's eager
    kernels and, while this is unset, for inductor too — but inductor's cache key (torch
    2.13) does not include that choice: give such runs their own TORCHINDUCTOR_CACHE_DIR, or
    cached kernels of the other width compute garbage or corrupt memory.)"""
    value = os.environ.get("MOMENTOPT_TEST_SIMDLEN")
    if not value:
        yield
        return
    import torch._inductor.config as inductor_config

    with inductor_config.patch({"cpp.simdlen": int(value)}):
        yield


@pytest.fixture
def compile_everything(monkeypatch):
    monkeypatch.setattr(compiled, "COMPILE_MIN_NUMEL", 0)


def _compiled_cases():
    for name in COMPILED_ALGOS:
        for inp in OPTIMIZERS[name].inputs(torch.float32):
            yield pytest.param(
                name, torch.float32, inp.kwargs, inp.desc, id=f"{name}-float32-{inp.desc}"
            )
        yield pytest.param(name, torch.float64, {}, "default", id=f"{name}-float64-default")


@pytest.mark.parametrize("name,dtype,kwargs,desc", list(_compiled_cases()))
def test_compiled_parity(name, dtype, kwargs, desc, compile_everything):
    """Default flags with compiling forced on small groups, against torch's for-loop."""
    _run_pair(name, dtype, kwargs, {}, {}, steps=20)  # torch's CPU default: for-loop
    assert compiled.compile_available()


def test_compiled_adam_parity(compile_everything, monkeypatch):
    """The compiled path also reproduces a recipe that has a torch kernel (table emptied)."""
    monkeypatch.setattr(momentopt.Adam, "torch_kernels", ())
    _run_pair("Adam", torch.float32, {"amsgrad": True, "weight_decay": 0.1}, {}, {}, steps=20)


def test_composed_optimizer_compiles(compile_everything):
    """A composed recipe runs fused (compiled) and matches its multi-tensor run (the role
    torch.optim plays elsewhere; its float64 multi-tensor run is the reference)."""
    Composed = momentopt.compose(
        "Composed",
        first=momentopt.rules.HeavyBall(),
        second=momentopt.rules.SquaredAverage(),
        lr=1e-2,
    )
    torch.manual_seed(0)
    a = Net(torch.float32)
    b, wide = copy.deepcopy(a), widened(a)
    opt_a = Composed(a.parameters(), momentum=0.9)
    opt_b = Composed(b.parameters(), momentum=0.9, foreach=True)
    opt_wide = Composed(wide.parameters(), momentum=0.9, foreach=True)
    before = len(compiled._compiled)
    for _ in train_together(
        [(a, opt_a), (b, opt_b), (wide, opt_wide)], make_inputs(torch.float32, 8)
    ):
        pass
    assert len(compiled._compiled) > before  # it did compile (first step, then the steady step)
    assert_models_match(a, b, wide)
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    sb["param_groups"] = sa["param_groups"]  # (they differ in the foreach flag only)
    assert_state_dicts_match(sa, sb, opt_wide.state_dict())


def test_no_recompile_when_hyperparameters_change(compile_everything):
    """lr, alpha, eps, weight_decay and momentum changes are new data, not new programs."""
    from torch._dynamo.utils import counters

    p = torch.nn.Parameter(torch.randn(300))
    opt = momentopt.RMSprop([p], lr=1e-2, weight_decay=0.1, momentum=0.5, centered=True)
    for _ in range(2):
        p.grad = torch.randn(300)
        opt.step()
    graphs = counters["stats"]["unique_graphs"]
    kernels = len(compiled._compiled)
    schedule = [
        (1e-3, 0.9, 1e-6, 0.2, 0.7),
        (3e-4, 0.95, 1e-7, 0.05, 0.9),
        (1.0, 0.5, 1e-3, 1.0, 0.1),
    ]
    for lr, alpha, eps, decay, momentum in schedule:
        opt.param_groups[0].update(
            lr=lr, alpha=alpha, eps=eps, weight_decay=decay, momentum=momentum
        )
        p.grad = torch.randn(300)
        opt.step()
    assert counters["stats"]["unique_graphs"] == graphs
    assert len(compiled._compiled) == kernels


def test_no_recompile_when_adam_scalars_change(compile_everything, monkeypatch):
    monkeypatch.setattr(momentopt.Adam, "torch_kernels", ())
    from torch._dynamo.utils import counters

    p = torch.nn.Parameter(torch.randn(300))
    opt = momentopt.NAdam([p], lr=1e-2)
    p.grad = torch.randn(300)
    opt.step()
    p.grad = torch.randn(300)
    opt.step()
    graphs = counters["stats"]["unique_graphs"]
    for lr, betas in ((1e-4, (0.8, 0.99)), (5e-2, (0.5, 0.9))):
        opt.param_groups[0].update(lr=lr, betas=betas)
        p.grad = torch.randn(300)
        opt.step()
    assert counters["stats"]["unique_graphs"] == graphs


def test_fallback_warns_once_and_matches_multi_tensor(compile_everything, monkeypatch):
    def broken(kernel):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(compiled, "_compile", broken)
    monkeypatch.setattr(compiled, "_compiled", {})
    monkeypatch.setattr(compiled, "COMPILE_HEALTH", compiled.CompileHealth())
    torch.manual_seed(0)
    a = Net(torch.float32)
    b = copy.deepcopy(a)
    opt_a = momentopt.NAdam(a.parameters())  # default: fused, compile fails → multi-tensor
    opt_b = momentopt.NAdam(b.parameters(), foreach=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in lockstep(a, opt_a, b, opt_b, make_inputs(torch.float32, 6)):
            pass
        momentopt.RMSprop(a.parameters())  # a second optimizer: still no second warning
        for p in a.parameters():
            p.grad = torch.ones_like(p)
        momentopt.RMSprop(a.parameters()).step()
    ours = [w for w in caught if "momentopt" in str(w.message)]
    assert len(ours) == 1 and "multi-tensor" in str(ours[0].message)
    assert not compiled.compile_available()
    # the failed attempt left no trace: the same numbers as multi-tensor all along (NAdam's
    # mu_product included)
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    sb["param_groups"] = sa["param_groups"]  # (they differ in the foreach flag only)
    assert_state_dicts_close(sa, sb, rtol=0, atol=0)


def test_a_step_dynamo_cannot_trace_falls_back_alone(compile_everything, monkeypatch):
    """A tracing failure of one step structure (as Dynamo raised for some fuzzed inputs)
    sends that structure to multi-tensor with one warning; compiling goes on for others."""
    health = compiled.CompileHealth()
    monkeypatch.setattr(compiled, "COMPILE_HEALTH", health)
    monkeypatch.setattr(compiled, "_compiled", {})
    real = compiled._compile

    def refuse_nadam(kernel):
        if "mul_" in kernel.source and len(compiled._compiled) == 0:  # the first kernel only

            def untraceable(*args):
                raise torch._dynamo.exc.Unsupported("TypeError when making fake tensor call")

            return untraceable
        return real(kernel)

    monkeypatch.setattr(compiled, "_compile", refuse_nadam)
    torch.manual_seed(0)
    a = Net(torch.float32)
    b = copy.deepcopy(a)
    opt_a, opt_b = momentopt.NAdam(a.parameters()), momentopt.NAdam(b.parameters(), foreach=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in lockstep(a, opt_a, b, opt_b, make_inputs(torch.float32, 3)):
            pass
    assert [str(w.message) for w in caught if "momentopt" in str(w.message)] and len(
        health.failed
    ) == 1
    assert compiled.compile_available()
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    sb["param_groups"] = sa["param_groups"]
    assert_state_dicts_close(sa, sb, rtol=0, atol=0)
    c = Net(torch.float32)
    before = len(compiled._compiled)
    opt_c = momentopt.RMSprop(c.parameters())
    for p in c.parameters():
        p.grad = torch.ones_like(p)
    opt_c.step()
    assert len(compiled._compiled) > before  # another structure still compiles


def test_peak_memory_has_no_param_sized_temporaries():
    """Torch-kernel path on one big tensor: a step allocates nothing parameter-sized."""
    from momentopt.bench.cli import peak_memory

    p = torch.nn.Parameter(torch.randn(1 << 20))
    p.grad = torch.randn_like(p)
    opt = momentopt.AdamW([p])
    opt.step()
    assert peak_memory(opt.step) < p.numel() * p.element_size() // 4


def test_a_one_op_step_is_not_compiled(compile_everything):
    """Plain SGD is one foreach op, one memory pass already: nothing to compile."""
    before = len(compiled._compiled)
    p = torch.nn.Parameter(torch.ones(300))
    opt = momentopt.SGD([p], lr=0.5)
    p.grad = torch.full((300,), 2.0)
    opt.step()
    assert len(compiled._compiled) == before
    assert_close_report(p, torch.zeros(300), "param", rtol=0.0, atol=0.0)  # 1 − 0.5·2, exactly


class _SignDescent(momentopt.rules.FirstMoment):
    """A rule using a method the tape does not record (``sign``): w ← w − α·sign(g)."""

    def direction(self, b, g, denom):
        if isinstance(g, torch.Tensor):
            return [momentopt.rules.Term(g.sign())]
        len(g)  # a list of tensors has a length; the tape's stand-in has none (TypeError)
        return [momentopt.rules.Term(type(g)([t.sign() for t in g]))]

    def formula(self, group):
        return "m = sign(g)"


def test_unrecordable_rule_runs_uncompiled_with_one_warning(compile_everything):
    Sign = momentopt.compose("Sign", first=_SignDescent(), lr=0.5)
    p = torch.nn.Parameter(torch.zeros(300))
    opt = Sign([p])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            p.grad = torch.linspace(-1, 1, 300)
            opt.step()
    ours = [w for w in caught if "cannot record" in str(w.message)]
    assert len(ours) == 1
    assert compiled.compile_available()  # a rule's own code does not disable compiling
    expected = -torch.linspace(-1, 1, 300).sign()  # 0 − 0.5·s − 0.5·s, exactly
    assert_close_report(p, expected, "param", rtol=0.0, atol=0.0)


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
        ("Adam", {"lr": 0.01, "amsgrad": True}),
    ],
)
def test_many_small_tensors_on_one_thread_match_torch(name, kwargs):
    """Hundreds of small tensors go to torch's kernel on one thread, big ones on all."""
    torch_cls, ours_cls = PAIRS[name]
    g = torch.Generator().manual_seed(0)
    shapes = [(torch_kernels.BIG,)] + [(5, 7)] * (torch_kernels.ONE_THREAD_MIN + 10)
    a = [torch.nn.Parameter(torch.randn(s, generator=g)) for s in shapes]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    wide = [torch.nn.Parameter(p.detach().double()) for p in a]
    opt_a, opt_b, opt_wide = (
        ours_cls(a, **kwargs),
        torch_cls(b, **kwargs),
        torch_cls(wide, **kwargs),
    )
    module_threads = torch.get_num_threads()
    torch.set_num_threads(2)  # (this module runs on one thread) so that a switch happens
    try:
        for _ in range(3):
            for pa, pb, pw in zip(a, b, wide, strict=True):
                pa.grad = torch.randn(pa.shape, generator=g)
                pb.grad, pw.grad = pa.grad.clone(), pa.grad.double()
            opt_a.step()
            opt_b.step()
            assert torch.get_num_threads() == 2  # restored after the one-thread call
            opt_wide.step()
    finally:
        torch.set_num_threads(module_threads)
    for i, (pa, pb, pw) in enumerate(zip(a, b, wide, strict=True)):
        assert_matches_torch(pa, pb, pw, f"param {i}")
