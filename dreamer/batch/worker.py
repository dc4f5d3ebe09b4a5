"""One job of a batch, made or continued in this process: the code `dreamer generate` and
`dreamer resume` run. The local pool starts it as `python -m dreamer.batch.worker SPEC OUT` (SPEC:
the job as JSON), so a crash stays in the job; a Ray task calls run_job in its worker."""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from ..errors import UserError
from ..runs import run_progress
from ..yamldata import first_line
from .jobs import job_config


def run_job(spec: dict, out: str, threads: int | None = None) -> dict:
    """Make the job's run folder at `out`, continue it if it was started, skip it if it is done.
    `threads`: torch's intra-op threads for this job (the pool divides the cores; not a config key,
    so a job's config.yaml is the same whichever pool ran it). With `evaluate_views` in the spec
    (`dreamer bench quality`), a finished run is also scored here (its metrics.json), so the scoring
    runs in the pool's workers side by side instead of one after another at the end. Returns its
    outcome: status (done or failed) and error (one line)."""
    from .. import pipeline  # start-up: torch loads only once a job runs
    from ..threads import choose  # start-up: imports torch
    if threads:
        choose(threads)
    status = run_progress(Path(out)).get("status")
    try:
        if status is None:
            pipeline.generate(job_config(spec), out, progress=False)
        elif status != "done":
            pipeline.resume(out, progress=False)
        if spec.get("evaluate_views"):
            _score(Path(out), int(spec["evaluate_views"]))
    except UserError as exc:
        return {"status": "failed", "error": first_line(exc, 300)}
    except Exception as exc:  # noqa: BLE001 - a job's failure is reported, never raised into the batch
        return {"status": "failed", "error": f"{type(exc).__name__}: {first_line(exc, 300)}"}
    return {"status": "done", "error": None}


def _score(out: Path, views: int) -> None:
    from ..evaluation import evaluate_run, stored_metrics  # start-up: only bench jobs score
    from ..runs import RunDir
    run = RunDir.open(out)
    if stored_metrics(run, views, 64) is None:
        evaluate_run(run, views)


def exit_with_parent(parent: int, interval: float = 1.0) -> threading.Thread:
    """End this process once `parent` is no longer its parent (it died and the worker was adopted), so
    a killed batch leaves no worker training on in a run folder that the rerun will resume. Polling,
    not prctl's parent-death signal: that one is Linux-only and fires when the spawning *thread* ends.
    Checkpoints are written atomically, so ending mid-save keeps the previous one."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(3)  # no cleanup to wait for: the run resumes from its last checkpoint
    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread


def main(argv: list[str]) -> int:
    parent = int(os.environ.get("DREAMER_PARENT_PID", "0"))
    if parent:  # started by the local pool
        exit_with_parent(parent)
    outcome = run_job(json.loads(argv[0]), argv[1], int(os.environ.get("DREAMER_THREADS", "0")) or None)
    if outcome["status"] != "done":
        print(f"dreamer: error: {outcome['error']}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
