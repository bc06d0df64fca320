"""``momentopt bench`` runs end to end (a tiny selection; speed itself is not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from momentopt.cli import main


def test_bench_quick_in_process(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "--quick",
            "--algos",
            "SGD,Adam",
            "--sets",
            "many-small",
            "--rounds",
            "2",
            "--memory",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [(r["config"], r["set"]) for r in rows] == [
        ("SGD", "many-small"),
        ("Adam", "many-small"),
    ]
    for r in rows:
        assert {"momentopt", "for-loop", "foreach", "fused"} <= set(r["ms"])
        assert r["ratio"] > 0 and r["probe_gbps"] > 0 and "peak_mib" in r
    captured = capsys.readouterr()
    assert "| Adam | many-small |" in captured.out
    assert "(2/2) Adam" in captured.err  # progress


def test_bench_module_entry_point_and_errors():
    proc = subprocess.run(
        [sys.executable, "-m", "momentopt", "bench", "--quick", "--algos", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "unknown config" in proc.stderr


def test_precision_rows_bytes_and_ratios(monkeypatch, capsys):
    """Issue 13's rows (state bytes per parameter and step time per state_precision, against
    torch's fused fp32 AdamW in the same rounds), here on a 16384-element tensor:
    multi-tensor path, no compile, a few seconds."""
    import torch

    from momentopt.bench import cli, precision

    numel = 4 * 4096
    monkeypatch.setattr(precision, "QUICK_ONE_BIG_NUMEL", numel)
    monkeypatch.setattr(precision, "ADAPTERS", {"absent": ("momentopt_no_such_module", None)})
    logged: list[str] = []
    found = precision.run_rows(
        ["many-small", "one-big"],  # (many-small is not a precision set: ignored)
        quick=True,
        rounds=2,
        flush=cli.Flusher(1),
        probe_bufs=(torch.zeros(1024), torch.zeros(1024)),
        log=logged.append,
    )
    rows = {r["impl"]: r for r in found}
    assert list(rows) == ["torch fused fp32", "momentopt fp32", "momentopt bf16", "momentopt int8"]
    assert {r["set"] for r in found} == {"one-big"} and {r["numel"] for r in found} == {numel}
    step = 4 / numel  # one float32 step counter per parameter
    blocks = 2 * (numel // 256) * 4 / numel  # two states, one float32 absmax per 256 elements
    assert rows["torch fused fp32"]["bytes_per_param"] == 8 + step
    assert rows["momentopt fp32"]["bytes_per_param"] == 8 + step
    assert rows["momentopt bf16"]["bytes_per_param"] == 4 + step
    assert rows["momentopt int8"]["bytes_per_param"] == 2 + blocks + step
    assert rows["torch fused fp32"]["ratio"] == 1.0  # the reference divides by itself
    for name in ("momentopt bf16", "momentopt int8"):
        r = rows[name]
        assert r["met_bytes"] is True and r["target_bytes"] in (2.1, 4.1)
        assert r["met_ratio"] == (r["ratio"] <= 1.0) and r["ratio"] > 0 and r["ms"] > 0
    table = precision.format_table(found)
    assert "| one-big | 0.0164M | momentopt int8 | 2.031 | ≤ 2.1 met |" in table
    assert any("absent: skipped (momentopt_no_such_module does not import" in m for m in logged)


def test_precision_bytes_count_the_stored_tensors():
    """The generic byte count (what the adapters are measured with) agrees with
    ``stored_bytes`` on momentopt's compact state."""
    import torch

    import momentopt
    from momentopt.bench.precision import state_bytes, tensor_bytes
    from momentopt.engine.precision import stored_bytes

    p = torch.nn.Parameter(torch.randn(5000))
    p.grad = torch.randn_like(p)
    opt = momentopt.AdamW([p], state_precision={"exp_avg": "int8", "exp_avg_sq": "bf16"})
    opt.step()
    generic = sum(tensor_bytes(v) for v in opt.state[p].values() if isinstance(v, torch.Tensor))
    assert state_bytes(opt) == stored_bytes(opt) == generic == 5000 + 2 * 5000 + 20 * 4 + 4


def test_bitsandbytes_adapter_when_installed():
    """The optional adapter, where bitsandbytes imports (CI does not install it)."""
    import pytest
    import torch

    pytest.importorskip("bitsandbytes")
    from momentopt.bench import cli, precision

    rows = precision.bench_set(
        "one-big",
        [torch.randn(8192)],
        2,
        adapters={"bitsandbytes AdamW8bit": precision.ADAPTERS["bitsandbytes AdamW8bit"][1]},
        flush=cli.Flusher(1),
        probe_bufs=(torch.zeros(1024), torch.zeros(1024)),
        log=lambda _: None,
    )
    bnb = rows[-1]
    assert bnb["impl"] == "bitsandbytes AdamW8bit" and bnb["target_bytes"] is None
    # two states: uint8 codes, a float32 absmax per 256 elements, a 256-entry float32 code map
    assert bnb["bytes_per_param"] == 2 * (8192 + 8192 // 256 * 4 + 256 * 4) / 8192


def test_bench_times_a_newer_optimizer_against_its_reference(tmp_path):
    """The newer optimizers' configs run momentopt against the reference implementation
    (lion-pytorch here) with the issue's target of half its step time."""
    out = tmp_path / "bench.json"
    code = main(
        ["bench", "--quick", "--algos", "Lion", "--sets", "one-big", "--rounds", "2"]
        + ["--json", str(out)]
    )
    assert code == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert (row["config"], row["set"], row["torch_best"]) == ("Lion", "one-big", "lion-pytorch")
    assert set(row["ms"]) == {"momentopt", "lion-pytorch"} and row["target"] == 0.5
    assert row["ratio"] > 0


def test_the_bench_ademamix_loop_is_the_algorithm():
    """AdEMAMix has no package: the bench's per-parameter loop takes momentopt.AdEMAMix's
    steps (float64, within rounding: another order of the same operations)."""
    import torch

    import momentopt
    from momentopt.bench.references import LoopAdEMAMix

    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(5, 3, generator=gen, dtype=torch.float64) for _ in range(2)]
    ours = [torch.nn.Parameter(t.clone()) for t in start]
    loop = [torch.nn.Parameter(t.clone()) for t in start]
    kwargs = {"lr": 1e-2, "weight_decay": 0.1}
    a, b = momentopt.AdEMAMix(ours, **kwargs), LoopAdEMAMix(loop, **kwargs)
    for _ in range(10):
        for p, q in zip(ours, loop, strict=True):
            p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            q.grad = p.grad.clone()
        a.step()
        b.step()
    for p, q in zip(ours, loop, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


def test_precision_peak_memory_counts_each_allocation_once():
    """Peak bytes of a step from the profiler's allocation records: a 4 MiB tensor and a
    second one made from it are both alive at the peak (8 MiB), counted once each (an op
    event's cpu_memory_usage includes its children's: summing those counts them again)."""
    import torch

    from momentopt.bench.precision import peak_memory

    n = 1 << 20

    def step() -> None:
        a = torch.ones(n)
        (a + 1).sum()

    peak = peak_memory(step)
    assert 8 * 2**20 <= peak < 8 * 2**20 + 4096  # (+ the 0-d sum: bytes, not pages)


def test_bench_memory_adds_the_precision_rows(monkeypatch, tmp_path, capsys):
    """``momentopt bench --memory`` with AdamW selected prints and saves the state_precision
    rows after the config rows (a 16384-element one-big: seconds)."""
    from momentopt.bench import precision

    monkeypatch.setattr(precision, "QUICK_ONE_BIG_NUMEL", 4 * 4096)
    monkeypatch.setattr(precision, "ADAPTERS", {})
    out = tmp_path / "bench.json"
    argv = ["bench", "--quick", "--memory", "--algos", "AdamW", "--sets", "one-big"]
    assert main([*argv, "--rounds", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [r["config"] for r in result["rows"]] == ["AdamW"]
    assert [r["impl"] for r in result["precision_rows"]] == [
        "torch fused fp32",
        "momentopt fp32",
        "momentopt bf16",
        "momentopt int8",
    ]
    assert "| one-big | 0.0164M | momentopt bf16 | 4.000 | ≤ 4.1 met |" in capsys.readouterr().out
    assert main([*argv[:-4], "--algos", "Adam", "--sets", "one-big", "--rounds", "1"]) == 0
    assert "momentopt int8" not in capsys.readouterr().out  # (only with AdamW selected)
