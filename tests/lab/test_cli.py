"""momentopt compare / show: arguments, errors, the report's files and its schema."""

from __future__ import annotations

import base64
import csv
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from momentopt.cli import main
from momentopt.lab.optimizers import MODERN_NAMES
from momentopt.lab.report import verdict_rows
from momentopt.lab.scenarios import MODERN_ORDER, ORDER, SCENARIOS, VERDICTS

SMALL = [
    "compare",
    "--scenario",
    "saddle,weight-decay",
    "--optimizers",
    "SGD,Adagrad,Adam,AdamW",
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
        (["--scenario", "nope"], "(or a group: lineage, modern)"),
        (["--modern", "--scenario", "saddle"], "give --modern or --scenario, not both"),
        (["--optimizers", "Adam,Yogi"], "unknown optimizer 'Yogi'"),
        (["--steps", "0"], "--steps must be >= 1"),
        (["--lr-points", "0"], "--lr-points must be >= 1"),
        (["--seeds", "0"], "--seeds must be >= 1"),
        (["--jobs", "0"], "--jobs must be >= 1"),
        (["--scenario", ","], "nothing to run"),
        (["--optimizer", "Momentum"], "--optimizer needs NAME=module:Class"),
        (["--optimizer", "X=nowhere_xyz:A"], "cannot load nowhere_xyz:A"),
        (["--optimizer", "X=momentopt:SGD:{oops"], "bad JSON"),
        (["--optimizer", 'X=momentopt:SGD:{"momentum": "abc"}'], "expected a number, got 'abc'"),
        (["--optimizer", 'X=momentopt:SGD:{"momentum": -1}'], "Invalid momentum value: -1"),
    ],
)
def test_errors_exit_2_with_a_clear_message(args, message, capsys, tmp_path):
    code, out, err = run_cli(["compare", *args, "--out", str(tmp_path / "r")], capsys)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_bad_argument_type_is_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--steps", "many"])
    assert exit_info.value.code == 2


def test_report_files_and_schema(tmp_path, capsys):
    out_dir = tmp_path / "report"
    code, out, err = run_cli([*SMALL, "--out", str(out_dir)], capsys)
    assert code == 0, err
    assert "criterion" in out and "measured" in out and "Ranking" not in out
    html = (out_dir / "index.html").read_text()
    # the story: the sections of the claims run, in the lineage's order, with the recipe change
    assert html.index("AdaGrad: a learning rate per coordinate") < html.index("AdamW: weight")
    assert "before: SGD" in html and "V ← V + g²" in html and "← changed" in html
    assert "decoupled decay" in html  # AdamW's change, generated from its recipe
    assert "stated before the run" in html and "Why this criterion" in html
    assert html.count("data:image/png;base64,") >= 3  # self-contained: plots embedded
    start = html.index("data:image/png;base64,") + len("data:image/png;base64,")
    assert base64.b64decode(html[start : start + 64])[:4] == b"\x89PNG"
    assert (out_dir / "plots" / "saddle.png").stat().st_size > 1000
    assert (out_dir / "plots" / "saddle-tuned-paths.png").exists()
    data = json.loads((out_dir / "results.json").read_text())
    assert set(data["scenarios"]) == {"saddle", "weight-decay"}
    for name, entry in data["scenarios"].items():
        assert entry["claim"] == SCENARIOS[name].claim
        assert entry["criterion"] == " AND ".join(SCENARIOS[name].criteria)
        assert entry["verdict"] in VERDICTS
        assert [c["criterion"] for c in entry["checks"]] == list(SCENARIOS[name].criteria)
        assert all(
            c["status"] in ("pass", "partial", "fail", "not checked") for c in entry["checks"]
        )
        assert entry["figures"]
    assert set(data["scenarios"]["saddle"]["figures"]["escape_step"]) == {"SGD", "Adagrad"}
    assert data["settings"]["lr_grid"] == [0.0001, 10.0]
    assert data["settings"]["steps"] == {"saddle": 30, "weight-decay": 30}
    run = data["experiments"]["saddle"]["runs"]["Adam"]
    assert run["lr"] in (0.0001, 10.0) and len(run["curves"]["loss"][0]) == 30
    rows = list(csv.DictReader((out_dir / "results.csv").open()))
    assert {(r["experiment"], r["optimizer"]) for r in rows} == {
        (e, o) for e in ("saddle", "weight-decay") for o in ("SGD", "Adagrad", "Adam", "AdamW")
    }
    summary = (out_dir / "summary.md").read_text()
    assert "| step | scenario | criterion | measured | verdict |" in summary


def test_no_plots_and_json_on_stdout(tmp_path, capsys):
    out_dir = tmp_path / "r"
    code, out, err = run_cli(
        [*SMALL, "--no-plots", "--json", "--seed", "3", "--seeds", "2", "--out", str(out_dir)],
        capsys,
    )
    assert code == 0
    data = json.loads(out)  # the tables go to stderr with --json
    assert data["settings"]["seeds"] == [3, 4]
    assert not (out_dir / "plots").exists()
    assert "data:image/png" not in (out_dir / "index.html").read_text()


def test_one_step_runs_every_scenario(tmp_path, capsys):
    """Degenerate horizons must not crash a measurement or a figure."""
    args = ["compare", "--steps", "1", "--lr-points", "1", "--seeds", "1", "--jobs", "1"]
    code, out, err = run_cli(
        [*args, "--optimizers", "SGD,Adam", "--no-plots", "--json", "--out", str(tmp_path / "a")],
        capsys,
    )
    assert code == 0, err
    assert set(json.loads(out)["scenarios"]) == set(ORDER)  # the default: the lineage
    args += ["--scenario", "effective-lr", "--optimizers", "Adagrad,Adadelta"]
    code, _, err = run_cli([*args, "--out", str(tmp_path / "b")], capsys)
    assert code == 0, err
    assert (tmp_path / "b" / "plots" / "effective-lr.png").exists()


def test_replacing_momentum_by_sgd_flips_the_dynamics_verdicts(tmp_path, capsys):
    """The verdicts can fail: with plain SGD under the name Momentum (μ = 0, so its matched lr
    is SGD's), neither the ravine nor the Rosenbrock criteria can be met."""
    args = ["compare", "--scenario", "ravine,rosenbrock", "--optimizers", "SGD,Momentum"]
    args += ["--no-plots", "--json", "--jobs", "1"]
    code, out, _ = run_cli(
        [*args, "--optimizer", "Momentum=momentopt:SGD", "--out", str(tmp_path / "a")], capsys
    )
    assert code == 0
    swapped = json.loads(out)["scenarios"]
    assert swapped["ravine"]["verdict"] == "does not hold"
    assert swapped["rosenbrock"]["verdict"] == "does not hold"
    code, out, _ = run_cli([*args, "--out", str(tmp_path / "b")], capsys)
    real = json.loads(out)["scenarios"]
    assert real["ravine"]["verdict"] == real["rosenbrock"]["verdict"] == "holds"


def test_an_added_optimizer_joins_the_story(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_opts_lab.py").write_text(
        textwrap.dedent("""
        from momentopt import compose, rules
        AdaMomentum = compose(
            "AdaMomentum",
            first=rules.BiasCorrectedAverage(),
            second=rules.AccumulatedSquares(),
            lr=1e-2,
        )
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out_dir = tmp_path / "r"
    args = ["compare", "--scenario", "saddle", "--optimizers", "SGD,Adagrad,Mine", "--steps", "20"]
    args += ["--optimizer", "Mine=my_opts_lab:AdaMomentum", "--lr-points", "2", "--jobs", "1"]
    code, out, err = run_cli([*args, "--out", str(out_dir)], capsys)
    assert code == 0, err
    html = (out_dir / "index.html").read_text()
    assert "Your optimizers" in html and "Mine (my_opts_lab.AdaMomentum)" in html
    data = json.loads((out_dir / "results.json").read_text())
    assert "Mine" in data["experiments"]["saddle"]["runs"]
    assert data["settings"]["added_optimizers"] == {"Mine": "my_opts_lab:AdaMomentum"}


def test_an_optimizer_that_raises_is_a_clean_error(tmp_path, monkeypatch, capsys):
    (tmp_path / "broken_opts_lab.py").write_text(
        textwrap.dedent("""
        import momentopt
        class Broken(momentopt.SGD):
            def step(self, closure=None):
                raise RuntimeError("boom")
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["compare", "--scenario", "saddle", "--optimizers", "Broken", "--steps", "3"]
    args += ["--optimizer", "Broken=broken_opts_lab:Broken", "--jobs", "1", "--no-plots"]
    code, _, err = run_cli([*args, "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "Traceback" not in err
    assert "Broken failed on the saddle experiment: boom" in err


def test_beyond_the_lineage_on_digits_only(tmp_path, capsys):
    args = ["compare", "--scenario", "digits,saddle", "--steps", "3", "--lr-points", "2"]
    args += ["--optimizers", "SGD,Adagrad,Adam,Adamax,RAdam,Muon+AdamW", "--no-plots"]
    code, _, _ = run_cli([*args, "--jobs", "1", "--out", str(tmp_path / "r")], capsys)
    assert code == 0
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    assert set(data["experiments"]["digits"]["runs"]) == {
        "SGD",
        "Adagrad",
        "Adam",
        "Adamax",
        "RAdam",
        "Muon+AdamW",
    }
    assert set(data["experiments"]["saddle"]["runs"]) == {"SGD", "Adagrad", "Adam"}
    summary = (tmp_path / "r" / "summary.md").read_text()
    beyond = summary.split("## Beyond the lineage", 1)[1]
    assert "A real network" in beyond and "| Muon+AdamW | " in beyond and "| SGD | " in beyond
    assert "Beyond the lineage" in (tmp_path / "r" / "index.html").read_text()
    args = ["compare", "--scenario", "saddle", "--steps", "3", "--lr-points", "2", "--no-plots"]
    run_cli([*args, "--out", str(tmp_path / "s")], capsys)
    assert "Beyond the lineage" not in (tmp_path / "s" / "summary.md").read_text()


def test_modern_runs_the_newer_optimizers_claims(tmp_path, capsys):
    """--modern: the newer optimizers against AdamW, its own report (tiny budget here)."""
    out_dir = tmp_path / "m"
    args = ["compare", "--modern", "--steps", "12", "--lr-points", "2", "--seeds", "2"]
    code, out, err = run_cli(
        [*args, "--jobs", "1", "--json", "--no-plots", "--out", str(out_dir)], capsys
    )
    assert code == 0, err
    data = json.loads(out)
    assert list(data["scenarios"]) == list(MODERN_ORDER)
    assert set(data["experiments"]) == {"digits-final", "noisy-quadratic"}
    assert set(data["experiments"]["noisy-quadratic"]["runs"]) == {"AdamW", "Adam", *MODERN_NAMES}
    assert data["settings"]["lr_grid_refined"]["noisy-quadratic"] == [1e-4, 0.0316, 10.0]
    prodigy = data["experiments"]["digits-final"]["runs"]["Prodigy"]
    assert prodigy["default"]["lr"] == 1.0 and len(prodigy["default"]["metrics"]["final_loss"]) == 2
    assert all(v["verdict"] in VERDICTS for v in data["scenarios"].values())
    html = (out_dir / "index.html").read_text()
    assert "Beyond AdamW: the newer optimizers, tested" in html and "From SGD" not in html
    assert html.index("Lion: the sign of the momentum") < html.index("Prodigy: the step size")
    assert "before: AdamW" in html and "u ← sign(u)" in html  # Lion's change, from its recipe
    assert "Prodigy, untuned" in html and "(its default)" in html
    assert "half-decade points on digits-final, noisy-quadratic" in err
    one = ["compare", "--scenario", "prodigy-quadratic", "--steps", "12", "--lr-points", "2"]
    code, _, err = run_cli([*one, "--seeds", "2", "--out", str(tmp_path / "p")], capsys)
    assert code == 0, err
    assert (tmp_path / "p" / "plots" / "prodigy-quadratic.png").stat().st_size > 1000
    code, out, err = run_cli(
        [*args, "--scenario", "lion-quadratic", "--out", str(tmp_path / "x")], capsys
    )
    assert code == 2 and "not both" in err
    code, out, err = run_cli(
        ["compare", "--scenario", "modern,saddle", "--steps", "3", "--lr-points", "1"]
        + ["--seeds", "1", "--no-plots", "--json", "--out", str(tmp_path / "y")],
        capsys,
    )
    assert code == 0 and list(json.loads(out)["scenarios"])[0] == "saddle"


def test_parallel_workers_give_the_same_numbers(tmp_path, capsys):
    args = ["compare", "--scenario", "saddle", "--optimizers", "SGD,Adagrad", "--steps", "20"]
    args += ["--lr-points", "2", "--no-plots", "--json"]
    code1, out1, _ = run_cli([*args, "--jobs", "1", "--out", str(tmp_path / "a")], capsys)
    code2, out2, _ = run_cli([*args, "--jobs", "2", "--out", str(tmp_path / "b")], capsys)
    assert code1 == code2 == 0
    one, two = json.loads(out1), json.loads(out2)
    assert one["experiments"]["saddle"]["runs"] == two["experiments"]["saddle"]["runs"]


def test_compare_help_speaks_of_the_lineage():
    result = subprocess.run(
        [sys.executable, "-m", "momentopt", "compare", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    text = result.stdout
    for option in ("--scenario", "--optimizers", "--optimizer", "--steps", "--seed", "--seeds"):
        assert option in text
    assert "seed's claims" not in text and "lineage" in text
    assert "NAME=module:Class[:JSON]" in text


def test_docs_quote_the_default_runs_figures(default_runs):
    """docs/lab.md's verdict table is the default run's, row for row (regenerated here)."""
    scenarios = [SCENARIOS[name] for name in ORDER]
    verdicts = {s.name: s.verdict(default_runs[s.experiment]) for s in scenarios}
    docs = (Path(__file__).parents[2] / "docs" / "lab.md").read_text()
    for row in verdict_rows(scenarios, verdicts)[2:]:
        assert row in docs, f"docs/lab.md does not have the row\n{row}"
    quoted = re.findall(r"^\| \w+ \| `([\w-]+)` \|", docs, flags=re.M)
    assert quoted[: len(ORDER)] == list(ORDER)


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


@pytest.mark.parametrize(
    "value,message",
    [
        ("lr=abc", "--set lr=abc: not a Python literal"),
        ("lr='abc'", "--set lr='abc': expected a number, got 'abc'"),
        ("betas=(0.9,)", "expected 2 numbers such as (0.9, 0.999)"),
        ("lr", "--set needs KEY=VALUE"),
        ("momentum=-1", "Invalid momentum value: -1"),
        ("nope=1", "unexpected keyword argument 'nope'"),
    ],
)
def test_show_set_bad_values_exit_2(value, message, capsys):
    name = "Adam" if value.startswith("betas") else "SGD"
    code, out, err = run_cli(["show", name, "--set", value], capsys)
    assert code == 2 and message in err and "Traceback" not in err and out == ""


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
