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
