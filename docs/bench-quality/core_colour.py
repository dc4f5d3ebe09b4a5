"""Colour in the opaque core of finished toy-world runs, by four measures of over-saturation.

    python docs/bench-quality/core_colour.py RUN_FOLDER [RUN_FOLDER ...]

At the 16 held-out views (64x64), over the pixels whose coverage exceeds 0.95, it prints HSV
saturation (what `dreamer eval` reports as saturation_core), chroma (max - min of RGB, which a
dark colour cannot inflate as it can HSV's ratio), the share of pixels with a channel clipped
(<= 0.02 or >= 0.98) and the RMS difference from the truth where both are opaque; then the same
for the truth. It exists because HSV saturation sits near its ceiling of 1 for vivid objects
(docs/evaluation.md, the realistic world), so it cannot show guidance pushing them further.
"""
from __future__ import annotations

import sys

import torch

from dreamer.eval.metrics import heldout_cameras, object_renderer, saturation
from dreamer.evaluation import run_renderer
from dreamer.pipeline import load_system
from dreamer.runs import RunDir
from dreamer.toy.catalogue import toy_object


def clipped_share(px: torch.Tensor) -> float:
    """px (N, 3) colours on [0, 1] -> the share with a channel at or past 0.02 / 0.98."""
    return float(((px <= 0.02) | (px >= 0.98)).any(-1).float().mean())


def core_colour(rgb: torch.Tensor, coverage: torch.Tensor) -> dict:
    """rgb (B, H, W, 3) in [0, 1], coverage (B, H, W) -> the three colour measures over the opaque core."""
    px = rgb[coverage > 0.95]
    chroma = px.max(-1).values - px.min(-1).values
    return {"hsv": saturation(rgb, coverage, 0.95), "chroma": float(chroma.mean()), "clipped": clipped_share(px)}


def main(folders: list[str]) -> None:
    print("run | object | HSV saturation | chroma | clipped | RMSE to truth || truth: HSV | chroma | clipped")
    for folder in folders:
        run = RunDir(folder)
        cfg = run.config()
        cams = heldout_cameras(cfg.camera, 16, 64)
        rgb, cov = run_renderer(load_system(run, cfg))(cams)
        t_rgb, t_cov = object_renderer(toy_object(cfg.prior, cfg.prompt))(cams)
        mine, truth = core_colour(rgb, cov), core_colour(t_rgb, t_cov)
        both = (cov > 0.95) & (t_cov > 0.95)
        rmse = float(((rgb[both] - t_rgb[both]) ** 2).mean().sqrt())
        print(f"{folder} | {cfg.prompt} | {mine['hsv']:.3f} | {mine['chroma']:.3f} | {mine['clipped']:.3f} | "
              f"{rmse:.3f} || {truth['hsv']:.3f} | {truth['chroma']:.3f} | {truth['clipped']:.3f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
