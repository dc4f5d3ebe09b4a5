"""How many torch threads a run computes with.

`threads=N` in the config sets N. `threads=0` (the default) used to mean torch's own choice, one
thread per core, and on a machine where other processes already hold the cores that is far slower
than fewer threads: OpenMP's threads wait on each other whenever one is descheduled. Measured on
this project's 2-core machine with two other runs holding both cores, a 40-step NeRF ran at
5.65 s/step with 2 threads and 0.45 s/step with 1. So `threads=0` now takes torch's choice less the
cores other work is using when the run starts (at least one). A batch worker's share of the cores
(`choose`) and an OMP_NUM_THREADS in the environment are choices too, and are kept.
"""
from __future__ import annotations

import os
import time

import torch

_chosen: int | None = None  # a batch worker's share of the cores, for the runs it makes
_torch_default: int | None = None  # torch's own choice, read once: a run's setting must not lower the next run's


def choose(threads: int) -> None:
    """Run this process's runs with `threads` threads unless their config says otherwise."""
    global _chosen
    _chosen = threads
    torch.set_num_threads(threads)


def torch_default() -> int:
    global _torch_default
    if _torch_default is None:
        _torch_default = torch.get_num_threads()
    return _torch_default


def machine_cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def busy_cores(reads: int = 5, pause: float = 0.02) -> float:
    """Runnable tasks other than this one, now: on Linux the median over a few reads of
    /proc/loadavg's running count (the one-minute average lags a minute behind a run that just
    ended or started); elsewhere the one-minute load average; 0 where neither exists."""
    try:
        counts = []
        for i in range(reads):
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]) - 1)  # less this reader
            if i + 1 < reads:
                time.sleep(pause)
        return float(sorted(counts)[len(counts) // 2])
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except (OSError, AttributeError):
            return 0.0


def idle_threads(default: int, cores: int, busy: float) -> int:
    """torch's default less the cores that `busy` runnable tasks hold, at least one."""
    return max(1, min(default, cores - int(round(busy))))


def run_threads(configured: int) -> tuple[int | None, str | None]:
    """(threads to set, or None to leave torch as it is; a line for the log when fewer threads than
    torch would use were taken because the machine is busy)."""
    if configured:
        return configured, None
    if _chosen:
        return _chosen, None
    if os.environ.get("OMP_NUM_THREADS"):
        return None, None  # torch follows it already
    default, cores, busy = torch_default(), machine_cores(), busy_cores()
    threads = idle_threads(default, cores, busy)
    if threads >= default:
        return threads, None
    return threads, (f"computing with {threads} of {default} threads: other processes are using "
                     f"{int(round(busy))} of {cores} cores (threads=N sets the count)")
