"""The one stopwatch of the benchmarks."""
from __future__ import annotations

import statistics
import time

import torch


def median_seconds(fn, repeats: int, device=torch.device("cpu")) -> float:
    """Median wall time of `repeats` calls of fn after one untimed warm-up call (allocator, first-call
    overheads, kernel loading); on CUDA each call is timed to the end of its kernels."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
