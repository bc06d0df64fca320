"""What each rank runs in the distributed tests (imported by spawned processes).

Every scenario runs all seven classes in one process group: spawning costs seconds.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

import momentopt
from momentopt.engine import tensorlist

from ..helpers import assert_close_report
from .common import ALGORITHMS, KWARGS, PAIRS, TOL, batches, loss_fn, tiny_model

STEPS = 4
GLOBAL_BATCH = 16


def _shard(x: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    return x.chunk(world_size)[rank]


def _single_process_reference(name: str, steps: int = STEPS, cls: type | None = None) -> nn.Module:
    """torch.optim (or ``cls``) on one process, on the combined batch of all ranks."""
    model = tiny_model()
    opt = (cls or PAIRS[name][0])(model.parameters(), **KWARGS[name])
    for x, y in batches(steps, GLOBAL_BATCH):
        opt.zero_grad()
        loss_fn(model, x, y).backward()
        opt.step()
    return model


def _train_local(model: nn.Module, opt: Any, rank: int, world_size: int, data: list[Any]) -> None:
    for x, y in data:
        opt.zero_grad()
        loss_fn(model, _shard(x, rank, world_size), _shard(y, rank, world_size)).backward()
        opt.step()


def _assert_same_on_all_ranks(tensors: list[torch.Tensor], what: str) -> None:
    for t in tensors:
        gathered = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, t.detach().contiguous())
        for other in gathered[1:]:
            assert torch.equal(gathered[0], other), f"{what}: ranks differ"


def _close(
    actual: list[torch.Tensor], expected: list[torch.Tensor], what: str, **tol: float
) -> None:
    for a, e in zip(actual, expected, strict=True):
        assert_close_report(a, e, what, **(tol or TOL))


# -- DistributedDataParallel --------------------------------------------------------------------
def ddp(rank: int, world_size: int) -> None:
    data = batches(STEPS, GLOBAL_BATCH)
    for name in ALGORITHMS:
        model = DDP(tiny_model())
        opt = PAIRS[name][1](model.parameters(), **KWARGS[name])
        _train_local(model, opt, rank, world_size, data)
        params = list(model.module.parameters())
        _assert_same_on_all_ranks(params, f"DDP {name}")
        _close(
            params, list(_single_process_reference(name).parameters()), f"DDP {name} vs one process"
        )


# -- ZeroRedundancyOptimizer --------------------------------------------------------------------
def zero(rank: int, world_size: int) -> None:
    from torch.distributed.optim import ZeroRedundancyOptimizer

    data = batches(2 * STEPS, GLOBAL_BATCH)
    for name in ALGORITHMS:
        cls = PAIRS[name][1]
        plain_model = DDP(tiny_model())
        plain = cls(plain_model.parameters(), **KWARGS[name])
        zero_model = DDP(tiny_model())
        zero_opt = ZeroRedundancyOptimizer(
            zero_model.parameters(), optimizer_class=cls, **KWARGS[name]
        )
        assert isinstance(zero_opt.optim, cls)
        owned = len(zero_opt.optim.param_groups[0]["params"])
        assert 0 < owned < len(list(zero_model.parameters())), "ZeRO did not shard the parameters"
        _train_local(plain_model, plain, rank, world_size, data[:STEPS])
        _train_local(zero_model, zero_opt, rank, world_size, data[:STEPS])
        _assert_same_on_all_ranks(list(zero_model.parameters()), f"ZeRO {name}")
        _close(
            list(zero_model.parameters()),
            list(plain_model.parameters()),
            f"ZeRO {name} vs DDP+{name}",
        )

        # consolidate the sharded state on rank 0; it is the plain optimizer's state_dict
        zero_opt.consolidate_state_dict(to=0)
        payload = [None]
        if rank == 0:
            sd = zero_opt.state_dict()
            plain_sd = plain.state_dict()
            assert set(sd["state"]) == set(plain_sd["state"]), name
            for k, s in plain_sd["state"].items():
                assert set(sd["state"][k]) == set(s), (name, k)
                for key, v in s.items():
                    if isinstance(v, torch.Tensor):
                        assert_close_report(
                            sd["state"][k][key], v, f"{name} state {k}.{key}", **TOL
                        )
                    else:
                        assert sd["state"][k][key] == v, (name, k, key)
            payload = [copy.deepcopy({"model": zero_model.module.state_dict(), "optim": sd})]
        dist.broadcast_object_list(payload, src=0)
        saved = payload[0]

        # reload into fresh objects and go on: the same as never stopping
        resumed_model = DDP(tiny_model(seed=7))
        resumed_model.module.load_state_dict(saved["model"])
        resumed = ZeroRedundancyOptimizer(
            resumed_model.parameters(), optimizer_class=cls, **KWARGS[name]
        )
        resumed.load_state_dict(saved["optim"])
        _train_local(resumed_model, resumed, rank, world_size, data[STEPS:])
        _train_local(zero_model, zero_opt, rank, world_size, data[STEPS:])
        _train_local(plain_model, plain, rank, world_size, data[STEPS:])
        for a, b in zip(resumed_model.parameters(), zero_model.parameters(), strict=True):
            assert torch.equal(a, b), f"ZeRO {name}: resumed run differs"
        _close(
            list(resumed_model.parameters()), list(plain_model.parameters()), f"ZeRO {name} resumed"
        )
    _zero_bad_configurations(rank)


def _zero_bad_configurations(rank: int) -> None:
    """Refused at construction with a clear error on every rank — nothing left waiting."""
    from torch.distributed.optim import ZeroRedundancyOptimizer

    params = list(tiny_model().parameters())
    cases: list[tuple[type, dict[str, Any], type[Exception], str]] = [
        (momentopt.Adam, {"overlap_with_ddp": True}, ValueError, "functional optimizer"),
        (momentopt.SGD, {"lr": 0.1, "nesterov": True}, ValueError, "Nesterov"),
        (momentopt.Adam, {"lr": -1.0}, ValueError, "Invalid learning rate"),
        (momentopt.Adam, {"momentum": 0.9}, TypeError, "momentum"),
        (momentopt.AdamW, {"betas": (0.9, 1.5)}, ValueError, "beta parameter"),
    ]
    for cls, kwargs, error, words in cases:
        try:
            ZeroRedundancyOptimizer(params, optimizer_class=cls, **kwargs)
        except error as e:
            assert words in str(e), (cls.__name__, kwargs, str(e))
        else:
            raise AssertionError(f"ZeroRedundancyOptimizer({cls.__name__}, {kwargs}) was accepted")
        dist.barrier()  # both ranks got here: no rank is stuck in a collective


# -- FSDP2 (fully_shard, DTensor parameters) ----------------------------------------------------
class _ForeachSpy:
    """Records the tensor types that reach momentopt's multi-tensor (``torch._foreach_*``) path."""

    def __init__(self) -> None:
        self.types: set[type] = set()
        self._original = tensorlist.TensorList.__init__

    def __enter__(self) -> _ForeachSpy:
        spy, original = self, self._original

        def init(tl: Any, tensors: Any) -> None:
            original(tl, tensors)
            spy.types.update(type(t) for t in tl.tensors)

        tensorlist.TensorList.__init__ = init  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: Any) -> None:
        tensorlist.TensorList.__init__ = self._original  # type: ignore[method-assign]


def _sharded(seed: int = 0) -> nn.Module:
    from torch.distributed.fsdp import fully_shard

    model = tiny_model(seed)
    fully_shard(model[0])
    fully_shard(model[2])
    fully_shard(model)
    return model


def fsdp2(rank: int, world_size: int) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor

    init_device_mesh("cpu", (world_size,))
    data = batches(STEPS, GLOBAL_BATCH)
    for name in ALGORITHMS:
        expected = [p.detach() for p in _single_process_reference(name).parameters()]
        for foreach in (False, True, None):
            model = _sharded()
            assert all(isinstance(p, DTensor) for p in model.parameters())
            opt = PAIRS[name][1](model.parameters(), foreach=foreach, **KWARGS[name])
            with _ForeachSpy() as spy:
                _train_local(model, opt, rank, world_size, data)
            what = f"FSDP2 {name} foreach={foreach}"
            if foreach is False:
                assert not spy.types, f"{what}: the for-loop was asked for, got foreach kernels"
            else:
                assert DTensor in spy.types, f"{what}: DTensors did not take the multi-tensor path"
            for p in model.parameters():
                for key, v in opt.state[p].items():
                    if torch.is_tensor(v) and v.dim() > 0:
                        assert isinstance(v, DTensor) and v.placements == p.placements, (what, key)
            _close([p.full_tensor() for p in model.parameters()], expected, what)


# -- distributed checkpoint ---------------------------------------------------------------------
def dcp_round_trip(rank: int, world_size: int, root: str) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )
    from torch.distributed.device_mesh import init_device_mesh

    init_device_mesh("cpu", (world_size,))
    data = batches(2 * STEPS, GLOBAL_BATCH)
    for name in ALGORITHMS:
        cls = PAIRS[name][1]
        path = str(Path(root) / name)
        model = _sharded()
        opt = cls(model.parameters(), **KWARGS[name])
        _train_local(model, opt, rank, world_size, data[:STEPS])
        dcp.save(
            {"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, opt)},
            checkpoint_id=path,
        )
        _train_local(model, opt, rank, world_size, data[STEPS:])

        resumed = _sharded(seed=5)
        resumed_opt = cls(resumed.parameters(), **KWARGS[name])
        sd = {
            "model": get_model_state_dict(resumed),
            "optim": get_optimizer_state_dict(resumed, resumed_opt),
        }
        dcp.load(sd, checkpoint_id=path)
        set_model_state_dict(resumed, sd["model"])
        set_optimizer_state_dict(resumed, resumed_opt, sd["optim"])
        _train_local(resumed, resumed_opt, rank, world_size, data[STEPS:])

        for a, b in zip(resumed.parameters(), model.parameters(), strict=True):
            assert torch.equal(a.full_tensor(), b.full_tensor()), f"DCP {name}: resumed run differs"
        for a, b in zip(resumed.parameters(), model.parameters(), strict=True):
            sa, sb = resumed_opt.state[a], opt.state[b]
            assert set(sa) == set(sb), name
            for key in sa:
                va, vb = sa[key], sb[key]
                va = va.full_tensor() if hasattr(va, "full_tensor") else va
                vb = vb.full_tensor() if hasattr(vb, "full_tensor") else vb
                assert torch.equal(va, vb), f"DCP {name}: state {key} differs"
        expected = _single_process_reference(name, 2 * STEPS)
        _close(
            [p.full_tensor() for p in resumed.parameters()],
            list(expected.parameters()),
            f"DCP {name}",
        )


# -- the documentation's distributed examples ---------------------------------------------------
def exec_blocks(rank: int, world_size: int, blocks: list[str], workdir: str) -> None:
    import os

    os.chdir(workdir)
    for code in blocks:
        exec(compile(code, "docs/integrations.md", "exec"), {"__name__": "__doc_example__"})
        dist.barrier()
