"""docs/integrations.md's examples run, and examples/ddp_train.py runs under torchrun."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import momentopt

from ..helpers import assert_close_report
from . import dist_scenarios
from .common import TOL
from .spawn import run_distributed

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "integrations.md"


def _blocks() -> list[tuple[str, str]]:
    """(section title, code) for every ```python block, in order."""
    text = DOC.read_text()
    found = []
    for match in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M):
        titles = re.findall(r"^## (.+)$", text[: match.start()], flags=re.M)
        found.append((titles[-1] if titles else "intro", match.group(1)))
    return found


BLOCKS = _blocks()
LOCAL = [(title, code) for title, code in BLOCKS if not code.startswith("# distributed")]
DISTRIBUTED = [code for _, code in BLOCKS if code.startswith("# distributed")]


def test_doc_has_an_example_per_integration() -> None:
    titles = " ".join(title for title, _ in BLOCKS)
    for topic in (
        "schedulers",
        "Mixed precision",
        "compile",
        "weight averaging",
        "ZeroRedundancy",
        "FSDP2",
        "Lightning",
        "Hugging Face",
    ):
        assert topic in titles, topic
    assert "torchrun --standalone --nproc-per-node 2 examples/ddp_train.py" in DOC.read_text()


@pytest.mark.parametrize("title,code", LOCAL, ids=[title for title, _ in LOCAL])
def test_doc_example_runs(
    title: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("lightning", "transformers"):
        if re.search(rf"^import {module}", code, flags=re.M):
            pytest.importorskip(module)
    monkeypatch.chdir(tmp_path)
    if "torch.compile" not in code:
        exec(compile(code, str(DOC), "exec"), {"__name__": "__doc_example__"})
        return
    # Compiled (default backend, Inductor) and then eager from the same seed: same weights.
    torch._dynamo.reset()
    runs = []
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(torch, "compile", lambda fn=None, **kwargs: fn)
        torch.manual_seed(0)
        namespace: dict = {"__name__": "__doc_example__"}
        exec(compile(code, str(DOC), "exec"), namespace)
        runs.append([p.detach().clone() for p in namespace["model"].parameters()])
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0
    for i, (a, b) in enumerate(zip(*runs, strict=True)):
        assert_close_report(a, b, f"compiled vs eager, param {i}", **TOL)
    torch._dynamo.reset()


def test_doc_distributed_examples_run(tmp_path: Path) -> None:
    assert len(DISTRIBUTED) >= 2
    run_distributed(dist_scenarios.exec_blocks, DISTRIBUTED, str(tmp_path), timeout=90.0)
    assert (tmp_path / "checkpoints" / "step-3").is_dir()


def test_ddp_example_under_torchrun(tmp_path: Path) -> None:
    checkpoint = tmp_path / "ddp.pt"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(ROOT / "examples" / "ddp_train.py"),
        "--optimizer",
        "NAdam",
        "--epochs",
        "2",
        "--zero",
        "--save",
        str(checkpoint),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MOMENTOPT_EXECUTOR", None)
    proc = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and its workers
        out, _ = proc.communicate()
        pytest.fail(f"torchrun did not finish in 120 s:\n{out}")
    assert proc.returncode == 0, out
    assert "done: 2 processes, NAdam, replicas identical" in out, out
    saved = torch.load(checkpoint)
    model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    model.load_state_dict(saved["model"])
    opt = momentopt.NAdam(model.parameters(), lr=1e-2)
    opt.load_state_dict(saved["optimizer"])  # ZeRO's consolidated state is the plain layout
    assert len(opt.state) == 4 and all("mu_product" in s for s in opt.state.values())
