"""momentopt compare / show: arguments, errors, report files."""

from __future__ import annotations

import base64
import csv
import json
import subprocess
import sys
import textwrap

import pytest

from momentopt.cli import main

SMALL = [
    "compare",
    "--scenario",
    "saddle,reddi",
    "--optimizers",
    "SGD,Adam",
    "--steps",
    "30",
    "--lr-points",
    "2",
    "--jobs",
    "1",
]


def run_cli(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "args,message",
    [
        (["--scenario", "nope"], "unknown scenario 'nope'"),
        (["--optimizers", "Adam,Adamax"], "unknown optimizer 'Adamax'"),
        (["--steps", "0"], "--steps must be >= 1"),
        (["--lr-points", "0"], "--lr-points must be >= 1"),
        (["--scenario", ","], "nothing to run"),
    ],
)
def test_errors_exit_2_with_a_clear_message(args, message, capsys, tmp_path):
    code, out, err = run_cli(["compare", *args, "--out", str(tmp_path / "r")], capsys)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_bad_argument_type_is_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--steps", "many"])
    assert exit_info.value.code == 2


def test_report_files(tmp_path, capsys):
    out_dir = tmp_path / "report"
    code, out, err = run_cli([*SMALL, "--out", str(out_dir)], capsys)
    assert code == 0, err
    assert "Ranking" in out and "Claims" in out
    html = (out_dir / "index.html").read_text()
    assert html.count("data:image/png;base64,") >= 4  # self-contained: plots embedded
    start = html.index("data:image/png;base64,") + len("data:image/png;base64,")
    assert base64.b64decode(html[start : start + 64])[:4] == b"\x89PNG"
    assert (out_dir / "plots" / "saddle-trajectories.png").stat().st_size > 1000
    assert (out_dir / "plots" / "reddi.png").exists()
    summary = (out_dir / "summary.md").read_text()
    assert "same grid [0.0001, 10.0]" in summary and "no gradient clipping" in summary
    assert "| SGD |" in summary and "chosen lr" in summary
    data = json.loads((out_dir / "results.json").read_text())
    assert set(data["scenarios"]) == {"saddle", "reddi"}
    assert data["settings"]["lr_grid"] == [0.0001, 10.0]
    assert data["settings"]["steps"] == {"saddle": 30, "reddi": 30}
    run = data["scenarios"]["saddle"]["runs"]["Adam"]
    assert run["lr"] in (0.0001, 10.0) and len(run["curves"]["loss"]) == 30
    rows = list(csv.DictReader((out_dir / "results.csv").open()))
    assert {(r["scenario"], r["optimizer"]) for r in rows} == {
        (s, o) for s in ("saddle", "reddi") for o in ("SGD", "Adam")
    }
    assert all(float(r["lr"]) in (0.0001, 10.0) for r in rows)


def test_no_plots_and_json_on_stdout(tmp_path, capsys):
    out_dir = tmp_path / "r"
    code, out, err = run_cli(
        [*SMALL, "--no-plots", "--json", "--seed", "3", "--out", str(out_dir)], capsys
    )
    assert code == 0
    data = json.loads(out)  # the tables go to stderr with --json
    assert data["settings"]["seed"] == 3
    assert not (out_dir / "plots").exists()
    assert "data:image/png" not in (out_dir / "index.html").read_text()


def test_parallel_workers_give_the_same_numbers(tmp_path, capsys):
    args = [
        "compare",
        "--scenario",
        "saddle",
        "--optimizers",
        "SGD,Nesterov",
        "--steps",
        "20",
        "--lr-points",
        "2",
        "--no-plots",
        "--json",
    ]
    code1, out1, _ = run_cli([*args, "--jobs", "1", "--out", str(tmp_path / "a")], capsys)
    code2, out2, _ = run_cli([*args, "--jobs", "2", "--out", str(tmp_path / "b")], capsys)
    assert code1 == code2 == 0
    one, two = json.loads(out1), json.loads(out2)
    assert one["scenarios"]["saddle"]["runs"] == two["scenarios"]["saddle"]["runs"]


def test_python_m_momentopt_compare_help():
    result = subprocess.run(
        [sys.executable, "-m", "momentopt", "compare", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    for option in (
        "--scenario",
        "--optimizers",
        "--steps",
        "--seed",
        "--out",
        "--no-plots",
        "--json",
    ):
        assert option in result.stdout


# -- show ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,expected",
    [
        ("SGD", "m = g"),
        ("Momentum", "momentum=0.9"),
        ("Nesterov", "m = g + μ·b   (Nesterov)"),
        ("AMSGrad", "v̂ ← max(v̂, v)"),
        ("adagrad", "V ← V + g²"),
        ("Adadelta", "√(V + ε)"),
        ("RMSprop", "square_avg"),
        ("NAdam", "mu_product"),
        ("AdamW", "decoupled decay, λ=0.01"),
    ],
)
def test_show_builtin(name, expected, capsys):
    code, out, err = run_cli(["show", name], capsys)
    assert code == 0, err
    assert expected in out
    for step in (
        "1. gradient",
        "2. ψ (second moment)",
        "2. φ (first moment)",
        "3. step",
        "4. update",
    ):
        assert step in out


def test_show_is_generated_from_the_recipe(capsys):
    import torch

    import momentopt
    from momentopt.lab.show import render

    adam = momentopt.Adam([torch.zeros(1, requires_grad=True)], weight_decay=0.1)
    assert adam.describe() == adam.recipe.describe(adam.param_groups[0])
    assert "g ← g + λ·w   (coupled L2 decay, λ=0.1)" in render(adam)
    code, out, _ = run_cli(["show", "Adam", "--set", "weight_decay=0.1"], capsys)
    assert code == 0 and "coupled L2 decay, λ=0.1" in out


def test_show_composed_optimizer(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_opts.py").write_text(
        textwrap.dedent("""
        from momentopt import compose, rules
        AdaGradMomentum = compose(
            "AdaGradMomentum",
            first=rules.BiasCorrectedAverage(),
            second=rules.AccumulatedSquares(),
            gradient=(rules.Maximize(), rules.WeightDecay(decoupled=True)),
            lr=1e-2,
        )
        NotAnOptimizer = int
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, err = run_cli(["show", "my_opts:AdaGradMomentum"], capsys)
    assert code == 0, err
    assert "AdaGradMomentum" in out and "V ← V + g²   (sum)" in out and "exp_avg" in out
    code, _, err = run_cli(["show", "my_opts:NotAnOptimizer"], capsys)
    assert code == 2 and "not a momentopt optimizer" in err


@pytest.mark.parametrize("name", ["Foo", "no_such_module:X"])
def test_show_unknown_exits_2(name, capsys):
    code, out, err = run_cli(["show", name], capsys)
    assert code == 2 and "momentopt show:" in err and out == ""
