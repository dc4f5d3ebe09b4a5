"""`dreamer bench quality`: every method on several toy objects and seeds, scored by `dreamer eval`.

Each (method, object, seed) is one ordinary run folder under the output root
(<root>/<method>/<object>/seed<k>; <root>/<method>-<representation>/... when a representation is
named, so a mesh grid never resumes a NeRF run of the same name), made by `dreamer batch`'s runner
(a local pool of worker processes, or Ray tasks with --ray), so a crash stays in its run and a
killed bench continues where it stopped: finished runs are kept, started ones resume.
Then every run is evaluated and the results are written next to them:
  results.csv  one row per run;   summary.md  one row per method, with the command that made it,
  then method x object tables (a mean over objects hides effects that show on one object only);
  summary.png  the per-method means with the spread over runs as error bars.
"""
from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

from ..atomic import write_bytes, write_text
from ..batch.pools import LocalPool
from ..batch.runner import run_planned
from ..errors import UserError
from ..evaluation import evaluate
from ..runs import run_progress, slugify

METRICS = [("silhouette_iou", "IoU", ".3f"), ("psnr", "PSNR (dB)", ".2f"), ("chamfer", "Chamfer", ".4f"),
           ("janus_score", "Janus", "+.2f"), ("saturation_ratio", "saturation", ".2f"),
           ("sharpness_ratio", "sharpness", ".2f"), ("detail_match", "detail", "+.2f")]


def run_path(root: Path, method: str, obj: str, seed: int, representation: str | None = None) -> Path:
    return root / (f"{method}-{representation}" if representation else method) / slugify(obj) / f"seed{seed}"


def run(methods: list[str], objects: list[str], seeds: list[int], root: Path, steps: int | None = None,
        pool=None, overrides: list[str] | None = None, views: int = 16, command: str = "",
        say=print, representation: str | None = None) -> dict:
    """The grid on `pool` (default: a local pool of one worker), then `dreamer eval` of every finished run.
    `representation`: each method's recipe for it (configs/<method>-<representation>.yaml, e.g. a
    coarse NeRF then the mesh stage), as `dreamer generate --representation`; None: each method's default."""
    root = Path(root).resolve()
    shared = ["export.turntable=false"] + list(overrides or [])
    # Seed-major: a benchmark stopped half-way has every method on every object once.
    planned = [({"prompt": f"a {o}", "method": m, "representation": representation, "seed": s, "steps": steps,
                 "overrides": shared, "evaluate_views": views},
                run_path(root, m, o, s, representation)) for s in seeds for o in objects for m in methods]
    outcomes, _ = run_planned(planned, pool or LocalPool(1), say)
    failures = [f"{out}: {o['error']}" for out, o in outcomes.items() if o["status"] != "done"]
    finished = [str(out) for _, out in planned if run_progress(out).get("status") == "done"]
    if not finished:
        raise UserError(f"no run finished; first failure: {failures[0] if failures else 'none'}")
    # the workers scored their runs; this keeps those scores and makes the spreads (and scores any run
    # a worker could not, or one scored before it last changed)
    result = evaluate(finished, views=views, say=say, reuse=True)
    rows = result["runs"]
    summary = summarize(rows, methods)
    write_outputs(root, rows, summary, command, failures, objects, representation)
    return {"rows": rows, "summary": summary, "failures": failures}


def summarize(rows: list[dict], methods: list[str]) -> list[dict]:
    """Per method: mean and standard deviation over its runs of each metric (None values skipped),
    and the seed spread (silhouette disagreement) averaged over its objects."""
    out = []
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        entry = {"method": method, "runs": len(mine)}
        for key, _, _ in METRICS:
            vals = [r[key] for r in mine if r.get(key) is not None]
            entry[key] = statistics.mean(vals) if vals else None
            entry[key + "_std"] = statistics.pstdev(vals) if len(vals) > 1 else 0.0
        spreads = {r["prompt"]: r["spread"]["silhouette_disagreement"] for r in mine if r.get("spread")}
        entry["seed_spread"] = statistics.mean(spreads.values()) if spreads else None
        out.append(entry)
    return out


def markdown(summary: list[dict], command: str) -> str:
    head = "| method | runs | " + " | ".join(label for _, label, _ in METRICS) + " | seed spread |"
    lines = [head, "|---|---:|" + "---:|" * (len(METRICS) + 1)]
    for e in summary:
        cells = ["-" if e[k] is None else f"{e[k]:{fmt}} ± {e[k + '_std']:{fmt.lstrip('+')}}" for k, _, fmt in METRICS]
        spread = "-" if e["seed_spread"] is None else f"{e['seed_spread']:.3f}"
        lines.append(f"| {e['method']} | {e['runs']} | " + " | ".join(cells) + f" | {spread} |")
    return f"Command: `{command}`\n\n" + "\n".join(lines) + "\n"


# Per-object tables: the metric, its label, its format; "seed_spread" is the spread's silhouette
# disagreement and "seed_rmse" its RGB RMSE, the same value in every run of a (method, object).
BY_OBJECT = [("janus_score", "Janus score", "+.2f"), ("saturation_ratio", "Saturation ratio", ".2f"),
             ("saturation_core", "Saturation of the opaque core (opacity > 0.95)", ".3f"),
             ("sharpness_ratio", "Sharpness ratio (interior detail against the truth's)", ".2f"),
             ("detail_match", "Detail match (the truth's interior detail reproduced; 1 all, 0 none)", "+.2f"),
             ("silhouette_iou", "Silhouette IoU", ".3f"), ("seed_spread", "Seed spread (1 - IoU between seeds)", ".3f"),
             ("seed_rmse", "Seed spread (RGB RMSE between seeds)", ".3f")]


def _cell_value(row: dict, key: str):
    spread = row.get("spread") or {}
    if key == "seed_spread":
        return spread.get("silhouette_disagreement")
    if key == "seed_rmse":
        return spread.get("rgb_rmse")
    return row.get(key)


def by_object(rows: list[dict], methods: list[str], objects: list[str], root: Path,
              representation: str | None = None) -> str:
    """One Markdown table per metric: a row per method, a column per object, each cell the mean
    over that pair's runs ("-" where the metric does not apply, e.g. a single seed's spread)."""
    out = []
    for key, label, fmt in BY_OBJECT:
        lines = [f"### {label}", "", "| method | " + " | ".join(objects) + " |", "|---|" + "---:|" * len(objects)]
        for method in methods:
            cells = []
            for obj in objects:
                folder = run_path(root, method, obj, 0, representation).parent  # this (method, object)'s runs
                vals = [_cell_value(r, key) for r in rows if Path(r["run"]).parent == folder]
                vals = [v for v in vals if v is not None]
                cells.append(f"{statistics.mean(vals):{fmt}}" if vals else "-")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
    return "\n## By object\n\n" + "\n\n".join(out) + "\n"


def write_outputs(root: Path, rows: list[dict], summary: list[dict], command: str, failures: list[str],
                  objects: list[str] | None = None, representation: str | None = None) -> None:
    fields = ["run", "method", "object", "seed", "prompt", "views"] + [k for k, _, _ in METRICS] + \
        ["saturation", "saturation_truth", "saturation_core", "sharpness", "sharpness_truth"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text(root / "results.csv", buf.getvalue())
    text = markdown(summary, command)
    if objects:
        text += by_object(rows, [e["method"] for e in summary], objects, root, representation)
    if failures:
        text += "\nFailed runs (not in the table):\n" + "\n".join(f"- {f}" for f in failures) + "\n"
    write_text(root / "summary.md", text)
    write_bytes(root / "summary.png", plot(summary))


def plot(summary: list[dict]) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.2 * len(METRICS), 3.2))
    names = [e["method"] for e in summary]
    for ax, (key, label, _) in zip(axes, METRICS):
        vals = [e[key] if e[key] is not None else 0.0 for e in summary]
        errs = [e[key + "_std"] for e in summary]
        ax.bar(range(len(names)), vals, yerr=errs, capsize=3, color="#4c72b0")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_title(label)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
