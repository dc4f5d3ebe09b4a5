"""Jobs for the web UI: a FIFO queue, one worker process at a time, state read from run folders.

The web server never trains: each job is a `dreamer generate` in a spawned process, so a crash,
a hang or a cancel kills that process and nothing else. Everything the UI shows (status, step,
it/s, ETA, the latest preview, the exported files) comes from the job's run folder, which the
worker writes exactly as the CLI does; a job's error is the worker's last line in `error.txt`.
"""
from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_path, write_text
from ..config import build_config
from ..errors import UserError
from ..runs import RunDir
from ..runs import run_progress as read_run_progress

ACTIVE = ("queued", "running")


@dataclass
class Job:
    id: int
    prompt: str
    out: Path
    config: dict  # the resolved recipe the worker runs (config.to_dict)
    status: str = "queued"  # queued | running | done | failed | cancelled
    error: str = ""
    submitted: float = field(default_factory=time.time)


def run_job(config: dict, out: str) -> None:
    """Worker process entry: one generate, as the CLI runs it; the error line goes to error.txt."""
    from ..pipeline import generate  # start-up: torch loads in the worker, not in the server
    _exit_with_parent()
    try:
        cfg = build_config(None, None, config)
        generate(cfg, out, progress=False)
    except BaseException as exc:  # noqa: BLE001 - reported to the UI, then the process exits non-zero
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        Path(out).mkdir(parents=True, exist_ok=True)
        write_text(Path(out) / "error.txt", f"{type(exc).__name__}: {first}\n" if not isinstance(exc, UserError)
                   else first + "\n")
        sys.exit(1)


def _exit_with_parent() -> None:
    """End this worker when the server that started it is gone, even after a kill -9 of the server
    (which no signal handler sees): the run then says "running" until the next server marks it."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)
    threading.Thread(target=watch, daemon=True, name="dreamer-parent-watch").start()


class JobQueue:
    def __init__(self, poll_seconds: float = 0.2):
        self.jobs: dict[int, Job] = {}
        self.pending: deque[int] = deque()
        self.current: Job | None = None
        self.process = None
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.poll = poll_seconds
        self.ctx = multiprocessing.get_context("spawn")  # no fork of a server with threads
        threading.Thread(target=self._loop, daemon=True, name="dreamer-jobs").start()

    def submit(self, prompt: str, out: Path, config: dict) -> Job:
        with self.lock:
            job = Job(next(self.ids), prompt, Path(out), config)
            self.jobs[job.id] = job
            self.pending.append(job.id)
        return job

    def position(self, job_id: int) -> int:
        """0 while running, k if k - 1 jobs wait before it, -1 when it is no longer queued."""
        with self.lock:
            if self.current and self.current.id == job_id:
                return 0
            return self.pending.index(job_id) + 1 if job_id in self.pending else -1

    def cancel(self, job_id: int) -> None:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or job.status not in ACTIVE:
                return
            if job_id in self.pending:
                self.pending.remove(job_id)
                job.status = "cancelled"
            elif self.current is job and self.process is not None:
                job.status = "cancelled"
                self.process.kill()
                self.process.join(timeout=10)
                mark_run(job.out, "cancelled", "cancelled from the web UI")

    def shutdown(self) -> None:
        """Stop the running worker and drop waiting jobs; the run folders say what happened."""
        with self.lock:
            for job_id in list(self.pending):
                self.jobs[job_id].status = "cancelled"
            self.pending.clear()
            if self.current is not None and self.process is not None and self.process.is_alive():
                self.current.status = "cancelled"
                self.process.kill()
                self.process.join(timeout=10)
                mark_run(self.current.out, "interrupted", "the web UI stopped; dreamer resume continues it")

    def _loop(self) -> None:
        while True:
            with self.lock:
                if self.current is not None and not self.process.is_alive():
                    self._finish(self.current, self.process.exitcode)
                    self.current = self.process = None
                if self.current is None and self.pending:
                    job = self.jobs[self.pending.popleft()]
                    job.status = "running"
                    self.process = self.ctx.Process(target=run_job, args=(job.config, str(job.out)), daemon=True)
                    self.process.start()
                    self.current = job
            time.sleep(self.poll)

    @staticmethod
    def _finish(job: Job, exitcode) -> None:
        if job.status == "cancelled":
            return
        error = job.out / "error.txt"
        if exitcode == 0:
            job.status = "done"
        else:
            job.status = "failed"
            job.error = error.read_text().strip() if error.is_file() else f"the worker stopped (exit code {exitcode})"
            mark_run(job.out, "failed", job.error)


def mark_run(out: Path, status: str, error: str) -> None:
    """Set a run folder's status unless it already ended (a job that dies cannot say so itself)."""
    try:
        run = RunDir.open(out)
        if run.state().get("status") in ("created", "running", "trained"):
            run.update_state(status=status, error=error)
    except UserError:  # no run folder yet: the worker stopped before writing it
        pass


def mark_stale_runs(root: Path) -> list[Path]:
    """Runs under root that say "created"/"running" but that no process holds (a killed server or
    worker) are marked "interrupted"; `dreamer resume` continues them. The run folder's lock, not
    run.json's pid, says whether a process still trains it: a pid can be reused after a reboot."""
    stale = []
    for folder, state in run_states(root):
        if state.get("status") not in ("created", "running", "trained"):
            continue
        try:
            with RunDir(folder).hold_if_free() as free:
                if free:
                    mark_run(folder, "interrupted", "its process stopped; dreamer resume continues it")
                    stale.append(folder)
        except OSError:  # a folder this server cannot write (its lock file cannot be made): not its to mark
            continue
    return stale


def run_states(root: Path):
    """(folder, run.json contents) of each readable run folder under root."""
    for state_file in root.glob("*/run.json"):
        try:
            yield state_file.parent, json.loads(state_file.read_text())
        except (OSError, ValueError):
            continue


def run_progress(out: Path) -> dict:
    """What a run folder says now: step, total, rate, ETA, latest preview and files."""
    info: dict = {"step": 0, "max_steps": 0, "steps_per_second": 0.0, "eta_seconds": None,
                  "preview": None, "files": []}
    info.update({k: v for k, v in read_run_progress(out).items()
                 if k in ("step", "max_steps", "steps_per_second", "eta_seconds", "files", "status", "stage")})
    # the newest preview, of this run or of a stage inside it (a mesh run's coarse stage)
    previews = [p for pattern in ("previews/step-*.png", "*/previews/step-*.png") for p in out.glob(pattern)]
    info["preview"] = str(max(previews, key=lambda p: p.stat().st_mtime_ns)) if previews else None
    return info


def obj_zip(out: Path) -> Path | None:
    """model-obj.zip: the OBJ with its material and texture, one download (made once, atomically)."""
    import zipfile

    target = out / "model-obj.zip"
    parts = [out / n for n in ("model.obj", "model.mtl", "model.png")]
    if target.is_file() or not all(p.is_file() for p in parts):
        return target if target.is_file() else None
    with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for p in parts:
            z.write(p, p.name)
    return target


def list_runs(root: Path, limit: int = 50) -> list[list]:
    """Past runs under root, newest first: [folder, prompt, status, step, silhouette IoU]."""
    rows = []
    for folder, state in run_states(root):
        iou = (state.get("metrics") or {}).get("silhouette_iou_8views")
        rows.append((state.get("created", 0), [folder.name, state.get("prompt", ""),
                                               state.get("status", ""), state.get("step", 0),
                                               "" if iou is None else f"{iou:.3f}"]))
    return [r for _, r in sorted(rows, key=lambda x: -x[0])[:limit]]
