"""threads=0: torch's thread count less the cores other processes use (dreamer/threads.py)."""
from __future__ import annotations

import torch

from dreamer import threads


def test_idle_threads_takes_what_other_work_leaves():
    assert threads.idle_threads(default=2, cores=2, busy=0) == 2
    assert threads.idle_threads(default=2, cores=2, busy=1.4) == 1
    assert threads.idle_threads(default=2, cores=2, busy=3) == 1  # at least one
    assert threads.idle_threads(default=8, cores=16, busy=4) == 8  # never above torch's own choice
    assert threads.idle_threads(default=8, cores=16, busy=10) == 6


def test_run_threads_keeps_every_explicit_choice(monkeypatch):
    monkeypatch.setattr(threads, "busy_cores", lambda: 1.0)
    monkeypatch.setattr(threads, "machine_cores", lambda: 2)
    monkeypatch.setattr(threads, "_torch_default", 2)
    monkeypatch.setattr(threads, "_chosen", None)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    count, why = threads.run_threads(0)
    assert count == 1 and "1 of 2 threads" in why and "1 of 2 cores" in why
    assert threads.run_threads(3) == (3, None)  # the config's threads=N
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.run_threads(0) == (None, None)  # torch follows the environment already
    monkeypatch.delenv("OMP_NUM_THREADS")
    before = torch.get_num_threads()
    try:
        threads.choose(1)  # a batch worker's share
        assert threads.run_threads(0) == (1, None) and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    monkeypatch.setattr(threads, "busy_cores", lambda: 0.0)
    monkeypatch.setattr(threads, "_chosen", None)
    assert threads.run_threads(0) == (2, None)  # an idle machine: torch's own count, nothing to say


def test_busy_cores_reads_this_machine():
    busy = threads.busy_cores(reads=3, pause=0.0)
    assert busy >= 0 and busy == int(busy)  # a count of runnable tasks (Linux)
