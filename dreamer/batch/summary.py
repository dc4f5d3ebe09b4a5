"""A batch's table: one row per job from its run folder (status, step, wall time, the toy metrics
where there is ground truth, files, the failure's one line), as summary.csv and summary.md."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..atomic import write_text
from ..errors import UserError
from ..runs import run_progress
from ..yamldata import clip

BATCH_FILE = "batch.json"  # the batch's record of its jobs and their folders (written by the runner)
COLUMNS = ["job", "prompt", "status", "step", "wall_s", "silhouette_iou", "files", "error"]


def rows(outs: list[Path], outcomes: dict | None = None) -> list[dict]:
    outcomes = outcomes or {}
    table = []
    for out in outs:
        info, outcome = run_progress(out), outcomes.get(out, {})
        timings = info.get("timings") or {}
        status = info.get("status") or "waiting"
        if status in ("created", "running") and outcome:  # its worker is gone without a word
            status = outcome["status"]
        table.append({
            "job": out.name, "prompt": info.get("prompt", ""), "status": status,
            "step": f"{info.get('step', 0)}/{info.get('max_steps', '?')}" if info else "",
            "wall_s": round(sum(v for k, v in timings.items() if k.endswith("_seconds")), 1) if timings else "",
            "silhouette_iou": (info.get("metrics") or {}).get("silhouette_iou_8views", ""),
            "files": " ".join(info.get("files", [])),
            "error": (outcome.get("error") or info.get("error") or "") if status != "done" else ""})
    return table


def to_csv(table: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(table)
    return buf.getvalue()


def to_markdown(table: list[dict]) -> str:
    cell = lambda v: str(v).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(r[c]) for c in COLUMNS) + " |" for r in table]
    counts = {s: sum(r["status"] == s for r in table) for s in sorted({r["status"] for r in table})}
    return "\n".join(lines) + "\n\n" + ", ".join(f"{n} {s}" for s, n in counts.items()) + "\n"


def write_summary(root: Path, table: list[dict]) -> None:
    write_text(root / "summary.csv", to_csv(table))
    write_text(root / "summary.md", to_markdown(table))


def status(root: Path) -> str:
    """`dreamer batch status DIR`: the table of a batch folder as it is now."""
    try:
        record = json.loads((Path(root) / BATCH_FILE).read_text())
        folders = [Path(root) / job["folder"] for job in record["jobs"]]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{clip(root)} is not a batch folder (no readable {BATCH_FILE}); "
                        f"pass the --out of a `dreamer batch` command") from None
    return to_markdown(rows(folders))
