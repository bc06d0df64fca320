"""The report: index.html (PNG plots embedded), summary.md, results.json and results.csv."""

from __future__ import annotations

import base64
import csv
import html
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .runner import Results, ranking


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become strings ("inf", "nan")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _verdict_word(holds: bool | None) -> str:
    return {True: "holds", False: "does NOT hold", None: "not checked"}[holds]


def to_json(results: Results) -> dict[str, Any]:
    return _clean(
        {
            "settings": results.settings,
            "seconds": results.seconds,
            "scenarios": {
                s.name: {
                    **s.describe(),
                    "verdict": asdict(results.verdicts[s.name]),
                    "runs": {name: asdict(run) for name, run in results.runs[s.name].items()},
                }
                for s in results.scenarios
            },
            "ranking": [
                {"optimizer": n, "ranks": r, "mean_rank": m} for n, r, m in ranking(results)
            ],
        }
    )


def write_csv(results: Results, path: Path) -> None:
    metric_names = sorted(
        {k for runs in results.runs.values() for r in runs.values() for k in r.metrics}
    )
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["scenario", "optimizer", "lr", "lr_at_grid_edge", "score", *metric_names])
        for scenario, runs in results.runs.items():
            for run in runs.values():
                score = run.scores[run.grid.index(run.lr)]
                writer.writerow(
                    [
                        scenario,
                        run.optimizer,
                        run.lr,
                        run.edge,
                        score,
                        *[run.metrics.get(k, "") for k in metric_names],
                    ]
                )


def fairness_text(results: Results) -> str:
    s = results.settings
    steps = ", ".join(f"{k} {v}" for k, v in s["steps"].items())
    return (
        f"Every optimizer ran at every lr of the same grid {s['lr_grid']} over exactly the "
        f"horizon that is plotted ({steps} steps), seed {s['seed']}, no gradient clipping; "
        "the plotted run is the grid point with the best score (each scenario names its "
        "criterion). Budget per optimizer and scenario: "
        f"{len(s['lr_grid'])} runs × the horizon. Hyperparameters other than lr are "
        "torch.optim's defaults unless a scenario says otherwise."
    )


def summary_markdown(results: Results, images: dict[str, list[Path]]) -> str:
    lines = [
        "# momentopt compare — report",
        "",
        fairness_text(results),
        "",
        f"Wall time: {results.seconds:.1f} s.",
        "",
        "## Claims",
        "",
        "| scenario | claim | measure | verdict |",
        "|---|---|---|---|",
    ]
    for s in results.scenarios:
        v = results.verdicts[s.name]
        lines.append(
            f"| {s.name} | {s.claim} | {s.measure} | **{_verdict_word(v.holds)}**: {v.text} |"
        )
    lines += ["", "## Ranking (mean rank over scenarios, by each scenario's tuning score)", ""]
    names = [s.name for s in results.scenarios]
    lines.append("| optimizer | " + " | ".join(names) + " | mean rank |")
    lines.append("|---" * (len(names) + 2) + "|")
    for name, ranks, mean in ranking(results):
        lines.append(
            f"| {name} | " + " | ".join(str(ranks.get(n, "")) for n in names) + f" | {mean:.2f} |"
        )
    for s in results.scenarios:
        lines += [
            "",
            f"## {s.title} (`{s.name}`)",
            "",
            s.claim,
            "",
            f"Tuning criterion: {s.criterion}.",
            "",
        ]
        if s.optimizer_kwargs:
            lines += [f"Extra hyperparameters: {s.optimizer_kwargs}.", ""]
        metric_names = sorted({k for r in results.runs[s.name].values() for k in r.metrics})
        lines.append("| optimizer | chosen lr | " + " | ".join(metric_names) + " |")
        lines.append("|---" * (len(metric_names) + 2) + "|")
        for run in results.runs[s.name].values():
            lr = f"{run.lr:g}" + (" (grid edge)" if run.edge else "")
            lines.append(
                f"| {run.optimizer} | {lr} | "
                + " | ".join(_fmt(run.metrics[k]) for k in metric_names)
                + " |"
            )
        for image in images.get(s.name, []):
            lines += ["", f"![{image.stem}](plots/{image.name})"]
    return "\n".join(lines) + "\n"


def index_html(results: Results, images: dict[str, list[Path]]) -> str:
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>momentopt compare</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}"
        ".no{color:#b00;font-weight:bold}.yes{color:#070;font-weight:bold}img{max-width:100%}</style>",
        "</head><body><h1>momentopt compare</h1>",
        f"<p>{esc(fairness_text(results))}</p><p>Wall time: {results.seconds:.1f} s.</p>",
        "<h2>Claims</h2><table><tr><th>scenario</th><th>claim</th><th>verdict</th><th>numbers</th></tr>",
    ]
    for s in results.scenarios:
        v = results.verdicts[s.name]
        cls = {True: "yes", False: "no", None: ""}[v.holds]
        parts.append(
            f"<tr><td><a href='#{s.name}'>{esc(s.name)}</a></td><td>{esc(s.claim)}</td>"
            f"<td class='{cls}'>{_verdict_word(v.holds)}</td><td>{esc(v.text)}</td></tr>"
        )
    parts.append("</table><h2>Ranking</h2><table><tr><th>optimizer</th>")
    names = [s.name for s in results.scenarios]
    parts += [f"<th>{esc(n)}</th>" for n in names] + ["<th>mean rank</th></tr>"]
    for name, ranks, mean in ranking(results):
        cells = "".join(f"<td>{ranks.get(n, '')}</td>" for n in names)
        parts.append(f"<tr><td>{esc(name)}</td>{cells}<td>{mean:.2f}</td></tr>")
    parts.append("</table>")
    for s in results.scenarios:
        parts.append(f"<h2 id='{s.name}'>{esc(s.title)}</h2><p>{esc(s.claim)}</p>")
        parts.append(f"<p>Measure: {esc(s.measure)}. Tuning criterion: {esc(s.criterion)}.</p>")
        metric_names = sorted({k for r in results.runs[s.name].values() for k in r.metrics})
        parts.append("<table><tr><th>optimizer</th><th>chosen lr</th>")
        parts += [f"<th>{esc(k)}</th>" for k in metric_names] + ["</tr>"]
        for run in results.runs[s.name].values():
            lr = f"{run.lr:g}" + (" (grid edge)" if run.edge else "")
            cells = "".join(f"<td>{_fmt(run.metrics[k])}</td>" for k in metric_names)
            parts.append(f"<tr><td>{esc(run.optimizer)}</td><td>{lr}</td>{cells}</tr>")
        parts.append("</table>")
        for image in images.get(s.name, []):
            data = base64.b64encode(image.read_bytes()).decode()
            parts.append(f"<p><img alt='{esc(image.stem)}' src='data:image/png;base64,{data}'></p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write(results: Results, out: Path, plots: bool = True) -> dict[str, Path]:
    """Write the report into ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    images: dict[str, list[Path]] = {}
    if plots:
        from .plots import plot_scenario

        for s in results.scenarios:
            images[s.name] = plot_scenario(s, results.runs[s.name], out / "plots")
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
