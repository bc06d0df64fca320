"""The core imports with torch alone; the lab without its extras gives a one-line hint."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCK = textwrap.dedent("""
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("matplotlib", "rich", "sklearn"):
                raise ImportError(f"blocked: {name}")
    sys.meta_path.insert(0, Block())
    for name in ("matplotlib", "rich", "sklearn"):
        sys.modules[name] = None
""")


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True)


def test_core_imports_without_the_extras():
    result = run(
        textwrap.dedent("""
        import torch, momentopt
        from momentopt import diagnostics
        w = torch.zeros(2, requires_grad=True)
        opt = momentopt.Adam([w])
        with diagnostics.record(opt) as rec:
            w.sum().backward(); opt.step()
        assert len(rec.history) == 1
        assert not any(m.split(".")[0] in ("matplotlib", "rich", "sklearn") and sys.modules[m] is not None
                       for m in sys.modules)
        from momentopt.cli import main
        assert main(["show", "Nesterov"]) == 0  # show needs no extra
        print("ok")
    """)
    )
    assert result.returncode == 0, result.stderr
    assert "m = g + μ·b" in result.stdout
    assert result.stdout.strip().endswith("ok")


def test_compare_without_extras_prints_the_hint():
    result = run("from momentopt.cli import main; sys.exit(main(['compare']))")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'momentopt[lab]'" in lines[0]
