"""The report: index.html (the story, PNG plots embedded), summary.md, results.json, results.csv.

results.json, per scenario: ``claim``, ``criterion`` (the pre-stated text), ``verdict`` (one of
"holds", "does not hold", "mixed", "not checked"), ``checks`` (each criterion with what was
measured and pass / partial / fail / not checked) and ``figures`` (the numbers the verdict
used). The schema is documented in docs/lab.md.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import story
from .optimizers import BEYOND
from .runner import Results
from .scenarios import EXPERIMENTS, FAILS, HOLDS, MIXED, ORDER, Run, Scenario, Verdict
from .scenarios.base import mean, spread

SCHEMA_VERSION = 2


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become strings ("inf", "nan"), tuples lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def scenario_json(results: Results, s: Scenario) -> dict[str, Any]:
    v = results.verdicts[s.name]
    return {
        **s.describe(),
        "criterion": v.criterion or " AND ".join(s.criteria),
        "verdict": v.verdict,
        "checks": [asdict(c) for c in v.checks],
        "measured": v.measured,
        "figures": v.figures,
        "note": v.note,
    }


def to_json(results: Results) -> dict[str, Any]:
    return _clean(
        {
            "schema": SCHEMA_VERSION,
            "settings": results.settings,
            "seconds": results.seconds,
            "scenarios": {s.name: scenario_json(results, s) for s in results.scenarios},
            "experiments": {
                name: {
                    **EXPERIMENTS[name].describe(),
                    "runs": {n: asdict(r) for n, r in runs.items()},
                }
                for name, runs in results.runs.items()
            },
        }
    )


def write_csv(results: Results, path: Path) -> None:
    """One row per (experiment, optimizer) at the tuned lr: metrics as mean over seeds."""
    metric_names = sorted(
        {k for runs in results.runs.values() for r in runs.values() for k in r.metrics}
    )
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["experiment", "optimizer", "tuned_lr", "lr_at_grid_edge", "seeds", *metric_names]
        )
        for experiment, runs in results.runs.items():
            for run in runs.values():
                writer.writerow(
                    [
                        experiment,
                        run.optimizer,
                        run.lr,
                        run.edge,
                        len(run.seeds),
                        *[run.metric(k) if k in run.metrics else "" for k in metric_names],
                    ]
                )


def settings_text(results: Results) -> str:
    s = results.settings
    steps = ", ".join(f"{k} {v}" for k, v in s["steps"].items())
    seeds = ", ".join(str(v) for v in s["seeds"])
    refined = "".join(
        f" On {name} the grid has its half-decade points too: {grid}."
        for name, grid in s.get("lr_grid_refined", {}).items()
    )
    return (
        f"Tuned runs: every optimizer ran at every lr of the same grid {s['lr_grid']} over exactly "
        f"the horizon that is plotted ({steps} steps) and kept the lr with the best score "
        "(each experiment states its score; on noisy problems averaged over the seeds "
        f"{seeds}); no gradient clipping; hyperparameters other than lr are torch.optim's "
        "defaults unless an experiment says otherwise."
        + (
            " Matched runs: the optimizers a claim compares run at ladders of step sizes fixed "
            "in advance, momentum methods at lr·(1−μ) so that their steady step equals SGD's "
            "at lr."
            if any(EXPERIMENTS[name].ladders for name in s["steps"])
            else ""
        )
        + refined
    )


VERDICT_CLASS = {HOLDS: "holds", FAILS: "fails", MIXED: "mixed"}


def _badge(word: str) -> str:
    return f"<span class='badge {VERDICT_CLASS.get(word, 'unchecked')}'>{html.escape(word)}</span>"


STATUS_MARK = {"pass": "✔ met", "partial": "◐ in part", "fail": "✘ not met", "not checked": "–"}

CSS = """
body{font-family:system-ui,sans-serif;max-width:1180px;margin:auto;padding:1em 2em;line-height:1.45;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2.2em}
h3{margin-top:1.6em} table{border-collapse:collapse;font-size:13px;margin:.6em 0}
td,th{border:1px solid #ccc;padding:4px 7px;vertical-align:top;text-align:left}
th{background:#f3f3f3} .badge{font-weight:bold;padding:1px 7px;border-radius:4px;white-space:nowrap}
.holds{background:#d8f0d8;color:#075b07} .fails{background:#f7d7d7;color:#8a0000}
.mixed{background:#fbeec5;color:#6b4e00} .unchecked{background:#e5e5e5;color:#444}
tr.changed td{background:#fff7d6} td.formula{font-family:ui-monospace,monospace;font-size:12px}
.problem{border-left:4px solid #c33;padding-left:.7em} .change{border-left:4px solid #36c;padding-left:.7em}
.note{color:#555;font-size:14px} img{max-width:100%;border:1px solid #eee;margin:.5em 0}
.pass{color:#075b07;white-space:nowrap} .fail{color:#8a0000;white-space:nowrap}
.partial{color:#6b4e00;white-space:nowrap} nav a{margin-right:.8em} ol{margin:0;padding-left:1.2em}
.intro{border:1px solid #ddd;background:#f7f7fb;padding:.6em 1em;margin-top:2.5em}
"""


def _recipe_table(section: story.Section, results: Results, esc: Callable[[str], str]) -> str:
    _, now, previous = next(t for t in story.sections_for(results.registry) if t[0] is section)
    if now is None:
        return ""
    rows = story.changes(now, previous)
    if previous is None:
        head = f"<tr><th>step</th><th>{esc(now.label())}</th></tr>"
        body = "".join(
            f"<tr><td>{esc(step)}</td><td class='formula'>{esc(after)}</td></tr>"
            for step, _, after, _ in rows
        )
    else:
        head = (
            f"<tr><th>step</th><th>before: {esc(previous.name)}</th>"
            f"<th>now: {esc(now.label())}</th></tr>"
        )
        body = "".join(
            f"<tr class='{'changed' if changed else ''}'><td>{esc(step)}"
            f"{' <b>← changed</b>' if changed else ''}</td>"
            f"<td class='formula'>{esc(before or '')}</td><td class='formula'>{esc(after)}</td></tr>"
            for step, before, after, changed in rows
        )
    return (
        "<p>Generated from the recipes (as <code>momentopt show</code> prints them); highlighted "
        f"rows are what this step changes.</p><table>{head}{body}</table>"
    )


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f"<p><img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'></p>"


def _scenario_html(results: Results, s: Scenario, images: dict[str, list[Path]]) -> str:
    esc = html.escape
    v = results.verdicts[s.name]
    e = EXPERIMENTS[s.experiment]
    parts = [
        f"<h3 id='{s.name}'>Claim: {esc(s.title)} {_badge(v.verdict)}</h3>",
        f"<p><b>The claim.</b> {esc(s.claim)}</p>",
        f"<p><b>The experiment</b> (<code>{esc(s.name)}</code>, {esc(s.kind)}). {esc(e.setup)}",
    ]
    if s.ladder is not None:
        parts.append(f" Matched step sizes: {esc(e.ladders[s.ladder].note)}.")
    parts.append("</p>")
    for image in images.get(s.name, []):
        parts.append(_image(image, s.title))
    parts.append(
        "<table><tr><th>criterion (stated before the run)</th><th>measured</th><th>met?</th></tr>"
    )
    for c in v.checks:
        parts.append(
            f"<tr><td>{esc(c.criterion)}</td><td>{esc(c.measured)}</td>"
            f"<td class='{c.status.replace(' ', '-')}'>{STATUS_MARK.get(c.status, c.status)}</td></tr>"
        )
    parts.append("</table>")
    parts.append(f"<p><b>Why this criterion.</b> {esc(s.reason)}</p>")
    parts.append(
        f"<p><b>Verdict:</b> {_badge(v.verdict)} — {esc(_verdict_sentence(v.verdict))}</p>"
    )
    if v.note:
        parts.append(f"<p class='note'>{esc(v.note)}</p>")
    return "\n".join(parts)


def _verdict_sentence(word: str) -> str:
    return {
        HOLDS: "every criterion was met.",
        FAILS: "no criterion was met.",
        MIXED: "some criteria were met, some not (or only for part of the ladder or the seeds).",
    }.get(word, "the optimizers it compares were not run.")


def _tuned_table(results: Results, experiment: str, esc: Callable[[str], str]) -> str:
    runs = results.runs[experiment]
    if not runs:
        return ""
    hidden = {"diverged_at"}
    metric_names = [
        k for k in dict.fromkeys(k for r in runs.values() for k in r.metrics) if k not in hidden
    ]
    e = EXPERIMENTS[experiment]
    seeds = len(next(iter(runs.values())).seeds)
    head = "".join(f"<th>{esc(k)}</th>" for k in metric_names)
    rows = []

    def cells(metrics: dict[str, list[float]]) -> str:
        return "".join(
            f"<td>{esc(spread(metrics[k])) if k in metrics else ''}</td>" for k in metric_names
        )

    for run in runs.values():
        lr = f"{run.lr:g}" + (" (grid edge)" if run.edge else "")
        rows.append(f"<tr><td>{esc(run.optimizer)}</td><td>{lr}</td>{cells(run.metrics)}</tr>")
        if run.default:
            rows.append(
                f"<tr><td>{esc(run.optimizer)}, untuned</td><td>{run.default['lr']:g} "
                f"(its default)</td>{cells(run.default['metrics'])}</tr>"
            )
    how = (
        "at torch's default lr (not tuned); <i>score</i>: the mean loss over the run"
        if not e.tuned
        else f"at the lr of the grid with the best score; <i>score</i>: {esc(e.criterion)}"
    )
    spread_note = f"; mean over {seeds} seeds (min–max)" if seeds > 1 else ""
    return (
        f"<p>Each optimizer {how}{spread_note}.</p>"
        f"<table><tr><th>optimizer</th><th>lr</th>{head}</tr>{''.join(rows)}</table>"
    )


BEYOND_TEXT = (
    "Not part of the story, and no claim is tested on them: optimizers beyond the lineage, run "
    "where a scenario fits them under the same budget as the others (the shared lr grid, the "
    "same seeds, steps and tuning criterion). Adamax and RAdam are Adam's variants (the "
    "infinity norm for V; a rectified warm-up of the adaptive step); Muon+AdamW is Muon on the "
    "2-D weight matrices and AdamW on the biases, stepping together at one tuned lr (Muon with "
    "adjust_lr_fn='match_rms_adamw', so that one lr suits both; torch's defaults otherwise, "
    "weight decay included)."
)


def beyond(results: Results) -> dict[str, list[str]]:
    """Experiment → the optimizers beyond the lineage (Adamax, RAdam, Muon+AdamW) that ran it,
    unless a user's optimizer replaced them."""
    builtin = {s.name for s in BEYOND}
    names = {s.name for s in results.specs if s.name in builtin and not s.added}
    out = {e: [n for n in runs if n in names] for e, runs in results.runs.items()}
    return {e: ns for e, ns in out.items() if ns}


def beyond_rows(results: Results, experiment: str) -> list[str]:
    """Markdown rows: every optimizer's tuned run on ``experiment``, best score first."""
    runs = sorted(results.runs[experiment].values(), key=lambda r: r.metric("score"))
    rows = ["| optimizer | lr | score | test accuracy |", "|---|---|---|---|"]
    for r in runs:
        lr = f"{r.lr:g}" + (" (grid edge)" if r.edge else "")
        acc = spread([100 * a for a in r.metrics["test_acc"]], ".1f")
        rows.append(f"| {r.optimizer} | {lr} | {spread(r.metrics['score'])} | {acc} % |")
    return rows


def final_rows(runs: dict[str, Run]) -> list[str]:
    """Markdown rows for an experiment of the newer optimizers: every optimizer's final loss at
    its tuned lr and, where run, untuned at its default lr; lowest first (docs/lab.md quotes
    them; a test regenerates them)."""
    entries = []
    for r in runs.values():
        lr = f"{r.lr:g}" + (" (grid edge)" if r.edge else "")
        entries.append((r.metric("final_loss"), r.optimizer, lr, r.metrics))
        if r.default:
            metrics = r.default["metrics"]
            entries.append(
                (mean(metrics["final_loss"]), r.optimizer, f"{r.default['lr']:g}, untuned", metrics)
            )
    digits = any("test_acc" in e[3] for e in entries)
    rows = [
        "| optimizer | lr | final loss | test accuracy |"
        if digits
        else "| optimizer | lr | final loss |"
    ]
    rows.append("|---|---|---|---|" if digits else "|---|---|---|")
    for _, name, lr, metrics in sorted(entries, key=lambda e: e[0]):
        row = f"| {name} | {lr} | {spread(metrics['final_loss'])} |"
        if digits:
            row += f" {spread([100 * a for a in metrics['test_acc']], '.1f')} % |"
        rows.append(row)
    return rows


TITLE = "From SGD to AdamW, tested"
MODERN_TITLE = "Beyond AdamW: the newer optimizers, tested"


def index_html(results: Results, images: dict[str, list[Path]]) -> str:
    esc = html.escape
    by_section: dict[str, list[Scenario]] = {}
    for s in results.scenarios:
        by_section.setdefault(s.section, []).append(s)
    title = TITLE if any(s.name in ORDER for s in results.scenarios) else MODERN_TITLE
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>momentopt compare: {esc(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        "<p>Every optimizer here is the same four steps — (1) the gradient g, (2) a first moment "
        "m = φ(g₁…g_t) and a second moment V = ψ(g₁…g_t), (3) the step η = α·m/√V, (4) the "
        "update w ← w − η — and each step of the lineage changes φ or ψ to fix a problem of the "
        "one before. "
        + (
            "This report walks the lineage in order. "
            if title == TITLE
            else "This report takes the newer optimizers one by one, each against AdamW. "
        )
        + "For each step it states the problem, shows what changes in the recipe, and tests "
        "the claim made for it with an experiment designed to show it, a criterion written "
        "down before the run, and the number measured.</p>",
        "<p><b>How to read a verdict.</b> <i>holds</i>: every criterion was met; <i>does not "
        "hold</i>: none was; <i>mixed</i>: some were, or only at some of the step sizes or "
        "seeds; <i>not checked</i>: the optimizers compared were not run. Claims about "
        "<i>dynamics</i> (zig-zag, valley travel, look-ahead, overshoot) are tested at "
        "<i>matched step sizes</i> — momentum at lr·(1−μ) against SGD at lr, the comparison the "
        "papers make — so that a difference is the method's, not a bigger step's; the "
        "<i>tuned</i> runs (each optimizer at its best lr of one shared grid) are shown "
        "separately. Claims about performance are judged on tuned runs, over several seeds "
        "where the data are random.</p>",
        f"<p class='note'>{esc(settings_text(results))} Wall time {results.seconds:.0f} s.</p>",
        "<nav>" + "".join(f"<a href='#step-{esc(k)}'>{esc(k)}</a>" for k in by_section) + "</nav>",
        "<h2>The verdicts at a glance</h2><table><tr><th>step</th><th>claim</th>"
        "<th>criterion</th><th>measured</th><th>verdict</th></tr>",
    ]
    for s in results.scenarios:
        v = results.verdicts[s.name]
        criteria = "".join(f"<li>{esc(c.criterion)}</li>" for c in v.checks)
        measured = "".join(
            f"<li>{esc(c.measured)} <span class='{c.status.replace(' ', '-')}'>"
            f"{STATUS_MARK.get(c.status, c.status)}</span></li>"
            for c in v.checks
        )
        parts.append(
            f"<tr><td>{esc(s.section)}</td><td><a href='#{s.name}'>{esc(s.title)}</a></td>"
            f"<td><ol>{criteria}</ol></td><td><ol>{measured}</ol></td>"
            f"<td>{_badge(v.verdict)}</td></tr>"
        )
    parts.append("</table>")
    number = 0
    for section in story.ALL_SECTIONS:
        if section.key not in by_section:
            continue
        number += 1
        if section.intro:
            parts.append(f"<p class='intro'>{esc(section.intro)}</p>")
        parts.append(f"<h2 id='step-{esc(section.key)}'>{number}. {esc(section.title)}</h2>")
        parts.append(f"<p class='problem'><b>The problem.</b> {esc(section.problem)}</p>")
        parts.append(
            f"<p class='change'><b>What changes.</b> {esc(section.change)} "
            f"<i>({esc(section.source)})</i></p>"
        )
        parts.append(_recipe_table(section, results, esc))
        for s in by_section[section.key]:
            parts.append(_scenario_html(results, s, images))
    extra = beyond(results)
    if extra:
        parts.append(f"<h2 id='beyond'>Beyond the lineage</h2><p>{esc(BEYOND_TEXT)}</p>")
        for experiment, names in extra.items():
            parts.append(f"<h3>{esc(EXPERIMENTS[experiment].title)}: {esc(', '.join(names))}</h3>")
            parts.append(_tuned_table(results, experiment, esc))
    added = [spec for spec in results.specs if spec.added]
    if added:
        parts.append("<h2>Your optimizers</h2>")
        for spec in added:
            rows = "".join(
                f"<tr><td>{esc(step)}</td><td class='formula'>{esc(formula)}</td></tr>"
                for step, formula in story.recipe(spec)
            )
            parts.append(f"<h3>{esc(spec.label())}</h3><table>{rows}</table>")
    parts.append("<h2>Appendix: the tuned runs of every experiment</h2>")
    for experiment in results.runs:
        e = EXPERIMENTS[experiment]
        parts.append(
            f"<h3 id='experiment-{esc(experiment)}'>{esc(e.title)}</h3><p>{esc(e.setup)}</p>"
        )
        parts.append(_tuned_table(results, experiment, esc))
        for image in images.get(f"experiment:{experiment}", []):
            parts.append(_image(image, e.title))
    parts.append("</body></html>")
    return "\n".join(parts)


MD_MARK = {"pass": "met", "partial": "met in part", "fail": "NOT met", "not checked": "not checked"}


def _md(text: str) -> str:
    """Text for a Markdown table cell (a ``|`` would end the cell)."""
    return text.replace("|", "\\|")


def verdict_rows(scenarios: list[Scenario], verdicts: dict[str, Verdict]) -> list[str]:
    """The verdict table in Markdown: one row per scenario, one numbered line per criterion
    (docs/lab.md quotes these rows; a test regenerates them)."""
    rows = ["| step | scenario | criterion | measured | verdict |", "|---|---|---|---|---|"]
    for s in scenarios:
        v = verdicts[s.name]
        criteria = "<br>".join(f"({i}) {_md(c.criterion)}" for i, c in enumerate(v.checks, 1))
        measured = "<br>".join(
            f"({i}) {_md(c.measured)} — {MD_MARK.get(c.status, c.status)}"
            for i, c in enumerate(v.checks, 1)
        )
        rows.append(f"| {s.section} | `{s.name}` | {criteria} | {measured} | **{v.verdict}** |")
    return rows


def summary_markdown(results: Results, images: dict[str, list[Path]]) -> str:
    title = TITLE if any(s.name in ORDER for s in results.scenarios) else MODERN_TITLE
    lines = [
        f"# momentopt compare — {title[0].lower() + title[1:]}",
        "",
        settings_text(results),
        "",
        f"Wall time: {results.seconds:.0f} s.",
        "",
        "## Verdicts",
        "",
        *verdict_rows(results.scenarios, results.verdicts),
    ]
    for section in story.ALL_SECTIONS:
        scenarios = [s for s in results.scenarios if s.section == section.key]
        if not scenarios:
            continue
        if section.intro:
            lines += ["", section.intro]
        lines += ["", f"## {section.title}", "", f"*Problem.* {section.problem}", ""]
        lines += [f"*What changes.* {section.change} ({section.source})", ""]
        for s in scenarios:
            v = results.verdicts[s.name]
            lines += [f"### {s.title} (`{s.name}`): **{v.verdict}**", "", s.claim, ""]
            lines += [f"Experiment: {EXPERIMENTS[s.experiment].setup}", ""]
            for c in v.checks:
                lines.append(f"- criterion: {c.criterion} — measured: {c.measured} — {c.status}")
            lines += ["", f"Why: {s.reason}", ""]
            if v.note:
                lines += [v.note, ""]
            lines += [f"![{s.name}](plots/{p.name})" for p in images.get(s.name, [])]
    extra = beyond(results)
    if extra:
        lines += ["", "## Beyond the lineage", "", BEYOND_TEXT]
        for experiment, names in extra.items():
            lines += ["", f"### {EXPERIMENTS[experiment].title}: {', '.join(names)}", ""]
            lines += [f"Score: {EXPERIMENTS[experiment].criterion}; mean (min–max) over seeds.", ""]
            lines += beyond_rows(results, experiment)
    modern = [e for e in results.runs if EXPERIMENTS[e].at_default]
    if modern:
        lines += ["", "## The newer optimizers' final losses", ""]
        for experiment in modern:
            e = EXPERIMENTS[experiment]
            lines += [f"### {e.title}", "", f"Final loss: {e.criterion}; mean (min–max).", ""]
            lines += final_rows(results.runs[experiment]) + [""]
    return "\n".join(lines) + "\n"


def write(results: Results, out: Path, plots: bool = True) -> dict[str, Path]:
    """Write the report into ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    images: dict[str, list[Path]] = {}
    if plots:
        from .plots import plot_experiment, plot_scenario

        folder = out / "plots"
        for s in results.scenarios:
            images[s.name] = plot_scenario(s, results.runs[s.experiment], folder)
        for experiment, runs in results.runs.items():
            images[f"experiment:{experiment}"] = plot_experiment(experiment, runs, folder)
    paths = {
        "json": out / "results.json",
        "csv": out / "results.csv",
        "summary": out / "summary.md",
        "html": out / "index.html",
    }
    paths["json"].write_text(json.dumps(to_json(results), indent=1))
    write_csv(results, paths["csv"])
    paths["summary"].write_text(summary_markdown(results, images))
    paths["html"].write_text(index_html(results, images))
    return paths
