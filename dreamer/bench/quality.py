"""`dreamer bench quality`: every method on several toy objects and seeds, scored by `dreamer eval`.

Each (method, object, seed) is one ordinary run folder under the output root
(<root>/<method>/<object>/seed<k>), made by `dreamer generate` in a subprocess, so a crash stays in
its run and a killed bench continues where it stopped: finished runs are kept, started ones resume.
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
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from ..atomic import write_bytes, write_text
from ..errors import UserError
from ..evaluation import evaluate
from ..runs import slugify

METRICS = [("silhouette_iou", "IoU", ".3f"), ("psnr", "PSNR (dB)", ".2f"), ("chamfer", "Chamfer", ".4f"),
           ("janus_score", "Janus", "+.2f"), ("saturation_ratio", "saturation", ".2f")]


def run_path(root: Path, method: str, obj: str, seed: int) -> Path:
    return root / method / slugify(obj) / f"seed{seed}"


def _status(path: Path) -> str | None:
    try:
        return json.loads((path / "run.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


def _command(path: Path, method: str, obj: str, seed: int, steps: int | None, overrides: list[str]) -> list[str]:
    status = _status(path)
    if status == "done":
        return []
    base = [sys.executable, "-m", "dreamer.cli"]
    if status is not None:  # started before: continue it to its final step
        return base + ["resume", str(path)]
    cmd = base + ["generate", f"a {obj}", "--method", method, "--seed", str(seed), "--out", str(path)]
    if steps:
        cmd += ["--steps", str(steps)]
    return cmd + ["export.turntable=false"] + overrides


def _run_all(jobs_list, jobs: int, say) -> list[str]:
    """Run the commands `jobs` at a time; returns the failures (one line each)."""
    failures, started, done = [], time.time(), 0
    todo = [j for j in jobs_list if j[1]]
    if not todo:
        return failures

    def one(job):
        path, cmd = job
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        return path, proc

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for fut in as_completed([pool.submit(one, j) for j in todo]):
            path, proc = fut.result()
            done += 1
            elapsed = time.time() - started
            eta = elapsed / done * (len(todo) - done)
            state = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
            say(f"[{done}/{len(todo)}] {path}: {state}; {elapsed / 60:.1f} min so far, about {eta / 60:.1f} min left")
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                failures.append(f"{path}: {last}")
    return failures


def run(methods: list[str], objects: list[str], seeds: list[int], root: Path, steps: int | None = None,
        jobs: int = 1, overrides: list[str] | None = None, views: int = 16, command: str = "",
        say=print) -> dict:
    overrides = list(overrides or [])
    if jobs > 1:
        overrides.append("threads=1")  # parallel runs on few cores: one thread each avoids oversubscription
    # Seed-major: a benchmark stopped half-way has every method on every object once.
    planned = [(m, o, s) for s in seeds for o in objects for m in methods]
    jobs_list = [(run_path(root, m, o, s), _command(run_path(root, m, o, s), m, o, s, steps, overrides))
                 for m, o, s in planned]
    say(f"{len(planned)} runs planned, {sum(1 for _, c in jobs_list if not c)} already done")
    failures = _run_all(jobs_list, jobs, say)
    finished = [str(p) for p, _ in jobs_list if _status(p) == "done"]
    if not finished:
        raise UserError(f"no run finished; first failure: {failures[0] if failures else 'none'}")
    result = evaluate(finished, views=views, say=say)
    rows = result["runs"]
    summary = summarize(rows, methods)
    write_outputs(root, rows, summary, command, failures, objects)
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
             ("silhouette_iou", "Silhouette IoU", ".3f"), ("seed_spread", "Seed spread (1 - IoU between seeds)", ".3f"),
             ("seed_rmse", "Seed spread (RGB RMSE between seeds)", ".3f")]


def _cell_value(row: dict, key: str):
    spread = row.get("spread") or {}
    if key == "seed_spread":
        return spread.get("silhouette_disagreement")
    if key == "seed_rmse":
        return spread.get("rgb_rmse")
    return row.get(key)


def by_object(rows: list[dict], methods: list[str], objects: list[str], root: Path) -> str:
    """One Markdown table per metric: a row per method, a column per object, each cell the mean
    over that pair's runs ("-" where the metric does not apply, e.g. a single seed's spread)."""
    out = []
    for key, label, fmt in BY_OBJECT:
        lines = [f"### {label}", "", "| method | " + " | ".join(objects) + " |", "|---|" + "---:|" * len(objects)]
        for method in methods:
            cells = []
            for obj in objects:
                folder = run_path(root, method, obj, 0).parent  # the runs of this (method, object)
                vals = [_cell_value(r, key) for r in rows if Path(r["run"]).parent == folder]
                vals = [v for v in vals if v is not None]
                cells.append(f"{statistics.mean(vals):{fmt}}" if vals else "-")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
    return "\n## By object\n\n" + "\n\n".join(out) + "\n"


def write_outputs(root: Path, rows: list[dict], summary: list[dict], command: str, failures: list[str],
                  objects: list[str] | None = None) -> None:
    fields = ["run", "method", "object", "seed", "prompt", "views"] + [k for k, _, _ in METRICS] + \
        ["saturation", "saturation_truth"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text(root / "results.csv", buf.getvalue())
    text = markdown(summary, command)
    if objects:
        text += by_object(rows, [e["method"] for e in summary], objects, root)
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
