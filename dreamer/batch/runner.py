"""`dreamer batch`: run every job of a batch on a pool, resumably, with one progress bar, then
write the summary. Rerunning the same command skips done jobs and resumes started ones.

DIR/batch.json records the jobs and their folders: `dreamer batch status DIR` reads it, and a
second batch with other jobs is refused in the same DIR (its folders would be mixed up).
"""
from __future__ import annotations

import json
import time
from concurrent.futures import FIRST_COMPLETED, wait
from pathlib import Path

from tqdm import tqdm

from ..atomic import write_text
from ..errors import UserError
from ..runs import check_output_dir, run_progress
from ..yamldata import clip
from .jobs import Job, folder_name
from .summary import BATCH_FILE, rows, write_summary


def plan(jobs: list[Job], root: Path) -> list[tuple[dict, Path]]:
    """(spec, run folder) of every job; DIR/batch.json written, or checked against an earlier batch."""
    planned = [(job.spec(), root / folder_name(i, job)) for i, job in enumerate(jobs)]
    record = {"jobs": [{"folder": out.name, **spec} for spec, out in planned]}
    path = root / BATCH_FILE
    if path.is_file():
        try:
            earlier = json.loads(path.read_text())
        except ValueError:
            earlier = None
        if earlier != record:
            raise UserError(f"{clip(root)} holds another batch (its {BATCH_FILE} lists other jobs); "
                            f"pass another --out, or the JOBS file and options that made it")
    else:
        if root.exists() and any(root.iterdir()):
            raise UserError(f"{clip(root)} is not empty and holds no batch; pass a new or empty folder to --out")
        check_output_dir(root)
        root.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(record, indent=1))
    return planned


def run_batch(jobs: list[Job], root: Path, pool, say=print) -> list[dict]:
    """`dreamer batch`: every job not done yet, on `pool`; returns the summary rows (also written to DIR)."""
    root = Path(root).resolve()  # run folders name the same path on every node and from any directory
    planned = plan(jobs, root)
    outcomes, seconds = run_planned(planned, pool, say)
    table = rows([out for _, out in planned], outcomes)
    write_summary(root, table)
    done = sum(r["status"] == "done" for r in table)
    say(f"{done} of {len(table)} jobs done in {seconds / 60:.1f} min; "
        f"summary: {root / 'summary.md'}, {root / 'summary.csv'}")
    return table


def run_planned(planned: list[tuple[dict, Path]], pool, say=print) -> tuple[dict, float]:
    """The runner itself (also `dreamer bench quality`'s): (spec, run folder) pairs, skipping done
    ones and resuming started ones. Returns each job's outcome by folder, and the wall seconds."""
    todo = [(spec, out) for spec, out in planned if run_progress(out).get("status") != "done"]
    started, outcomes = time.time(), {}
    if todo:
        pool.start()
    say(f"{len(planned)} jobs, {len(planned) - len(todo)} already done; running on a {pool.describe}")
    try:
        futures = {pool.submit(spec, out): out for spec, out in todo}
        _watch(futures, outcomes, len(planned), len(planned) - len(todo))
    finally:
        pool.close()
    return outcomes, time.time() - started


def _watch(futures: dict, outcomes: dict, total: int, already: int) -> None:
    """One bar over jobs: done/running/failed, tqdm's ETA from the finished ones, running jobs' steps."""
    failed = 0
    with tqdm(total=total, initial=already, desc="jobs", unit="job", dynamic_ncols=True) as bar:
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=2.0, return_when=FIRST_COMPLETED)
            for fut in finished:
                out = futures[fut]
                outcomes[out] = _outcome(fut)
                failed += outcomes[out]["status"] != "done"
                bar.update(1)
            running = [futures[f] for f in pending if f.running() or _started(futures[f])]
            steps = ", ".join(_step(out) for out in sorted(running)[:4])
            bar.set_postfix_str(f"done {bar.n - failed}, running {len(running)}, failed {failed}"
                                + (f" | {steps}" if steps else ""), refresh=True)


def _outcome(fut) -> dict:
    try:
        return fut.result()
    except Exception as exc:  # noqa: BLE001 - a pool that lost a job (Ray gave up its retries)
        return {"status": "failed", "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300]}"}


def _started(out: Path) -> bool:
    return run_progress(out).get("status") in ("created", "running")


def _step(out: Path) -> str:
    info = run_progress(out)
    return f"{out.name[:3]} step {info.get('step', 0)}/{info.get('max_steps', '?')}"
