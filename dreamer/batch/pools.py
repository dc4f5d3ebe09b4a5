"""Where a batch's jobs run: a local pool of worker processes, or Ray tasks on a cluster.

Both take (spec, out) and return a concurrent.futures.Future of the job's outcome (worker.run_job),
so the runner does not care which one it has.
"""
from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ..atomic import write_text
from ..errors import UserError
from ..yamldata import clip

MARKER = ".dreamer-batch"  # written in DIR by the driver: a node that cannot see it has other storage


def cuda_devices() -> int:
    try:
        import torch  # start-up: only a pool asks
        return torch.cuda.device_count()
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0


class LocalPool:
    """`jobs` worker processes at a time, each `python -m dreamer.batch.worker` for one job. On a
    machine with GPUs each worker is pinned to one (CUDA_VISIBLE_DEVICES); on a CPU machine the
    cores are divided among the workers. A crashed worker fails its job, not the batch."""

    def __init__(self, jobs: int | None = None):
        gpus = cuda_devices()
        self.jobs = jobs or max(1, gpus)
        self.devices: queue.Queue = queue.Queue()
        for slot in range(self.jobs):
            self.devices.put(str(slot % gpus) if gpus else None)
        self.threads = max(1, (os.cpu_count() or 1) // self.jobs)
        self.executor = ThreadPoolExecutor(max_workers=self.jobs)
        self.describe = f"local pool of {self.jobs} worker{'s' * (self.jobs > 1)}" + (
            f", one GPU each ({gpus} GPUs)" if gpus else f", {self.threads} thread{'s' * (self.threads > 1)} each")

    def start(self) -> None:
        pass

    def submit(self, spec: dict, out: Path) -> Future:
        return self.executor.submit(self._run, spec, out)

    def _run(self, spec: dict, out: Path) -> dict:
        device = self.devices.get()
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "DREAMER_THREADS": str(self.threads),
               "DREAMER_PARENT_PID": str(os.getpid())}  # the worker ends with the batch (worker.exit_with_parent)
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
        try:
            proc = subprocess.run([sys.executable, "-m", "dreamer.batch.worker", json.dumps(spec), str(out)],
                                  capture_output=True, text=True, env=env, check=False)
        finally:
            self.devices.put(device)
        if proc.returncode == 0:
            return {"status": "done", "error": None}
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        last = lines[-1].removeprefix("dreamer: error: ") if lines else f"the worker exited with {proc.returncode}"
        if proc.returncode < 0:
            last = f"the worker was killed by signal {-proc.returncode}; rerun the batch to resume the job"
        return {"status": "failed", "error": last}

    def close(self) -> None:
        self.executor.shutdown(wait=True)


class RayPool:
    """One Ray task per job (1 GPU each on a cluster with GPUs, else 1 CPU), retried when its worker
    or node dies; the retry resumes the run from its last checkpoint. DIR must be storage every node
    sees. Ray's usage statistics are off and its dashboard too unless asked for."""

    def __init__(self, address: str | None, root: Path, dashboard: bool = False):
        """Checks only (Ray installed, the address answers): nothing starts before the batch's own checks."""
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # nothing leaves the cluster
        try:
            import ray
        except ImportError:
            raise UserError("--ray needs Ray, which is not installed; run `pip install 'ray==2.60.0'` "
                            "(or leave --ray out for the local pool)") from None
        if address not in ("auto", "local"):
            check_address(address)
        self.ray, self.address, self.dashboard = ray, address, dashboard
        self.root = Path(root).resolve()
        self.marker = str(self.root / MARKER)
        self.describe = f"Ray cluster ({address})"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_text(Path(self.marker), "a dreamer batch folder: every node running its jobs must see this file\n")
        ray = self.ray
        try:
            ray.init(address=None if self.address == "local" else self.address, include_dashboard=self.dashboard,
                     log_to_driver=False, logging_level="ERROR", configure_logging=False)
        except ConnectionError as exc:
            raise UserError(f"no Ray cluster answers at {clip(self.address)} ({clip(str(exc), 80)}); "
                            f"start one with `ray start --head` or pass --ray local") from None
        except ray.exceptions.AuthenticationError:
            raise UserError(f"the Ray cluster at {clip(self.address)} refused this client's token; set "
                            f"RAY_AUTH_MODE=token and the cluster's RAY_AUTH_TOKEN (or ~/.ray/auth_token)") from None
        resources = ray.cluster_resources()
        gpus = resources.get("GPU", 0)
        self.task = ray.remote(num_cpus=1, num_gpus=1 if gpus else 0, max_retries=3)(ray_job)
        self.describe = f"Ray cluster of {int(resources.get('CPU', 0))} CPUs and {int(gpus)} GPUs"

    def submit(self, spec: dict, out: Path) -> Future:
        return self.task.remote(spec, str(Path(out).resolve()), self.marker).future()

    def close(self) -> None:
        self.ray.shutdown()


def check_address(address: str, seconds: float = 5.0) -> None:
    """A host:port that does not answer fails in seconds (Ray itself would retry for minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray {clip(address)} is not an address; give host:port (e.g. 10.0.0.5:6379), auto or local")
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as exc:
        raise UserError(f"no Ray cluster answers at {clip(address)} ({exc.strerror or type(exc).__name__}); "
                        f"check the head node's address and port") from None


def ray_job(spec: dict, out: str, marker: str) -> dict:
    """A Ray task: the job in this worker process, after checking that this node sees DIR."""
    from .worker import run_job  # start-up: a task imports what it needs on its own node
    if not Path(marker).is_file():
        return {"status": "failed", "error": f"node {socket.gethostname()} cannot see {Path(marker).parent}: "
                                             f"the batch folder must be storage every node mounts"}
    if not os.access(Path(marker).parent, os.W_OK):
        return {"status": "failed", "error": f"node {socket.gethostname()} cannot write to {Path(marker).parent}"}
    return run_job(spec, out, threads=1)
