"""Does the prior, at a side camera, pull an end-on image toward the object's long side outline?

    python docs/bench-quality/side_pull.py [WORLD ...]    # WORLD: exact, or a realistic view_odds (default: exact 1)

A screening without training (docs/evaluation.md, the realistic world: "The long side outline").
A round blob shows an object's end-on width from every side. At the four held-out cameras nearest
the sides (azimuths 79, 101, 259, 281), we take the true end-on view (the cameras 11, 169, 191, 349:
the width a round blob shows) and, as a control, the true side view. Each is noised to t with fresh
noise and denoised by the guided estimate at SDS's recipe scale under the "side view" prompt. It
prints the estimate's silhouette width over the true side width (columns with a pixel more than 0.15
from white), a mean over DRAWS noise draws and the four cameras. A ratio that stays at the end-on
width means the prior accepts an end-on image at a side camera.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from dreamer.cameras import view_labels, view_prompt
from dreamer.config import build_config
from dreamer.eval.janus import _cams
from dreamer.guidance import build_guidance
from dreamer.guidance.base import Conditioning
from dreamer.priors.factory import build_prior
from dreamer.toy.render import render_object

ROOT = Path(__file__).resolve().parents[2]
STEPS = (100, 200, 400, 600, 800)
DRAWS = 6
SIDES, ENDS = [79.0, 101.0, 259.0, 281.0], [11.0, 169.0, 191.0, 349.0]  # held-out azimuths of `dreamer eval`


def width(image: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) on white -> the number of columns with an object pixel, per image."""
    return ((1 - image).abs().amax(-1) > 0.15).any(1).sum(1).float()


def world_overrides(world: str) -> list[str]:
    return ["prior.world=exact"] if world == "exact" else ["prior.world=realistic", f"prior.view_odds={float(world)}"]


def pull(guidance, cond, x0: torch.Tensor, true_width: torch.Tensor, t_value: int) -> float:
    """Mean width ratio of the guided estimate from x0 noised to t."""
    t = torch.full((x0.shape[0],), t_value)
    generator = torch.Generator().manual_seed(0)
    ratios = []
    for _ in range(DRAWS):
        x_t = guidance.add_noise(x0, t, torch.randn(x0.shape, generator=generator))
        e = guidance.guided_eps(x_t, t, cond)
        est = guidance.clean_estimate(x_t, t, e).clamp(-1, 1)
        ratios.append(float((width(((est + 1) / 2).permute(0, 2, 3, 1)) / true_width).mean()))
    return sum(ratios) / len(ratios)


def main(worlds: list[str]) -> None:
    torch.set_num_threads(1)
    print(f"estimate width / true side width at t = {', '.join(map(str, STEPS))} (start: its own ratio)")
    for world in worlds:
        cfg = build_config(ROOT / "configs" / "sds-nerf.yaml", world_overrides(world))
        prior = build_prior(cfg.prior)
        guidance = build_guidance(cfg.guidance, prior, cfg.trainer.max_steps)
        c = cfg.camera
        views = lambda azimuths: _cams(azimuths, c.eval_elevation, c.eval_distance, c.eval_fovy, 64)  # noqa: E731
        for name in ("toy car", "rubber duck"):
            obj = prior.catalogue.objects[prior.catalogue.resolve(name)[0]]
            side, end = (render_object(obj, views(a), supersample=2)[0] for a in (SIDES, ENDS))
            labels = view_labels([c.eval_elevation] * len(SIDES), SIDES)
            emb = prior.embed([view_prompt(f"a {name}", label) for label in labels])
            null = prior.embed([""] * len(SIDES))
            cond = Conditioning(cond=emb, null=null, negative=null, plain=emb, camera=torch.zeros(len(SIDES), 16))
            cells = []
            for start, image in (("end-on", end), ("side", side)):
                x0 = image.permute(0, 3, 1, 2) * 2 - 1
                ratios = [pull(guidance, cond, x0, width(side), t) for t in STEPS]
                own = float((width(image) / width(side)).mean())
                cells.append(f"from {start} ({own:.2f}): " + " / ".join(f"{r:.2f}" for r in ratios))
            print(f"{world:>6s} | {name:11s} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["exact", "1"])
