"""Turntable videos (MP4 through imageio's ffmpeg; GIF as a fallback)."""
from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from ..atomic import atomic_path


def write_video(frames: list[np.ndarray], path: Path, fps: int) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".gif":
            imageio.mimsave(tmp, frames, duration=1000 / fps, loop=0)
        else:
            with imageio.get_writer(tmp, fps=fps, codec="libx264", quality=8, macro_block_size=16,
                                    ffmpeg_log_level="error", format="FFMPEG") as writer:
                for frame in frames:
                    writer.append_data(frame)
    return path
