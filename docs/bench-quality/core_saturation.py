"""Mean HSV saturation of toy-prior runs at the 16 held-out views, over pixels with opacity above
0.5 (what `dreamer eval` reports) and above 0.95 (the opaque core, without the fuzzy edge).

    python docs/bench-quality/core_saturation.py RUN_DIR [RUN_DIR ...]
"""
from __future__ import annotations

import sys

import torch

from dreamer.evaluation import run_renderer
from dreamer.eval.metrics import heldout_cameras
from dreamer.pipeline import load_system
from dreamer.runs import RunDir


def main(paths: list[str]) -> None:
    torch.set_num_threads(1)
    for path in paths:
        run = RunDir(path)
        cfg = run.config()
        rgb, coverage = run_renderer(load_system(run, cfg))(heldout_cameras(cfg.camera, 16, 64))
        top, bottom = rgb.max(-1).values, rgb.min(-1).values
        saturation = (top - bottom) / top.clamp_min(1e-6)
        cells = "  ".join(f"opacity > {th}: {saturation[coverage > th].mean():.3f}" for th in (0.5, 0.95))
        print(f"{path}  {cells}")


if __name__ == "__main__":
    main(sys.argv[1:])
