"""Is a run as long from the side as its object? Silhouette widths at the side and end-on cameras.

    python docs/bench-quality/side_outline.py RUN_FOLDER [RUN_FOLDER ...]

docs/evaluation.md (the realistic world, "The long side outline"). At the 16 held-out cameras of
`dreamer eval`, the silhouette (coverage > 0.5) of the run and of the truth. Width is the number of
image columns the silhouette covers. Per run it prints, for the four cameras nearest the sides
(azimuths 79, 101, 259, 281) and the four nearest the front and back (11, 169, 191, 349): the
run's width over the truth's, and the silhouette IoU. An object longer than it is wide (the toy
car: 61 px from the side, 40 end-on) that came out round has a side ratio well under 1 and an
end-on ratio at or above 1.
"""
from __future__ import annotations

import sys

import torch

from dreamer.eval.metrics import heldout_cameras, object_renderer, silhouette_iou
from dreamer.evaluation import heldout_renders
from dreamer.runs import RunDir
from dreamer.toy.catalogue import toy_object

SIDES, ENDS = [3, 4, 11, 12], [0, 7, 8, 15]  # indices into the 16 held-out views


def widths_and_iou(coverage: torch.Tensor, truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(run width / true width, IoU) per view, of (B, H, W) coverages."""
    width = lambda c: (c > 0.5).any(1).sum(1).float()  # noqa: E731  columns with any covered pixel
    iou = torch.tensor([silhouette_iou(c, t) for c, t in zip(coverage, truth)])
    return width(coverage) / width(truth).clamp_min(1), iou


def main(folders: list[str]) -> None:
    print("run | object | side: width ratio / IoU | end-on: width ratio / IoU")
    torch.set_num_threads(1)
    for folder in folders:
        run = RunDir(folder)
        cfg = run.config()
        obj = toy_object(cfg.prior, cfg.prompt)
        with torch.no_grad():
            coverage = heldout_renders(run, 16, 64)["coverage"]
            _, truth = object_renderer(obj)(heldout_cameras(cfg.camera, 16, 64))
        ratio, iou = widths_and_iou(coverage, truth)
        side, end = (f"{float(ratio[i].mean()):.2f} / {float(iou[i].mean()):.2f}" for i in (SIDES, ENDS))
        print(f"{folder} | {obj.name} | {side} | {end}")


if __name__ == "__main__":
    main(sys.argv[1:])
