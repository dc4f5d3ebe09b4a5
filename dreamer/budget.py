"""Memory estimates of a run's biggest allocations, checked against the machine before anything runs.

A size typed by mistake (camera.width=[100000], export.resolution=100000) must be refused with its
estimate, not discovered as an out-of-memory kill hours into a run. The estimates are lower bounds
(one copy of the largest tensors, float32), so a size refused here could never have run.
"""
from __future__ import annotations

import os

from .errors import UserError

FLOAT = 4  # bytes


def machine_memory() -> int | None:
    """Physical memory of this machine in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"  # pragma: no cover


# Our volume renderer builds dense (rays, samples) tensors before it culls empty cells: times,
# jitter, points, mask, density, colour and weights, about 12 floats a sample.
SAMPLE_BYTES = 12 * FLOAT


def training_render(cfg) -> int:
    c = cfg.camera
    stages = range(max(len(c.height), len(c.width)))  # the sampler repeats a list's last size
    pixels = c.batch_size * max(c.height[min(i, len(c.height) - 1)] * c.width[min(i, len(c.width) - 1)]
                                for i in stages)
    if cfg.geometry.type == "gaussians":
        return pixels * 64 * FLOAT  # per-pixel compositing state over the tiles' Gaussians
    return pixels * cfg.renderer.num_samples_per_ray * SAMPLE_BYTES


def view_renders(cfg) -> int:
    """The turntable (or evaluation views) held in memory: colour, opacity, depth and normal per pixel."""
    frames = max(cfg.export.turntable_frames if cfg.export.turntable else 0, 16)
    pixels = cfg.camera.eval_resolution ** 2
    chunk = max(cfg.renderer.eval_chunk_size, pixels) * cfg.renderer.num_samples_per_ray * SAMPLE_BYTES
    return frames * pixels * 8 * FLOAT + (0 if cfg.geometry.type == "gaussians" else chunk)


def export_grid(e) -> int:
    return e.resolution ** 3 * FLOAT * 2  # the density grid and the marching-cubes copy


def texture(e) -> int:
    return e.texture_size ** 2 * 8 * FLOAT  # colour, surface point and mask per texel


def check_run(cfg) -> None:
    """Training and view renders; then the export."""
    check(training_render(cfg), "one training render (camera.batch_size x camera.width x camera.height)",
          "lower camera.width/height or camera.batch_size")
    check(view_renders(cfg), f"the evaluation and turntable views at {cfg.camera.eval_resolution}²",
          "lower camera.eval_resolution or export.turntable_frames")
    check_export(cfg.export)


def check_export(e) -> None:
    check(export_grid(e), f"the export grid at {e.resolution}³", "lower export.resolution")
    check(texture(e), f"a {e.texture_size}² texture", "lower export.texture_size")


def check(needed: int, what: str, fix: str, available: int | None = None) -> None:
    available = machine_memory() if available is None else available
    if available is not None and needed > available:
        raise UserError(f"{what} needs about {human(needed)} of memory and this machine has {human(available)}; {fix}")
