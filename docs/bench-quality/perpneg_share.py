"""How much of the classifier-free direction does Perp-Neg's term remove at the back cameras?

    python docs/bench-quality/perpneg_share.py [VIEW_ODDS ...]    # realistic-world view words (default: 1 3)

A screening without training (docs/evaluation.md, the realistic world: Perp-Neg). At the Janus
score's five back cameras we take the true back view, noise it to t with fresh noise, and form the
parts of SDS's guided direction with Perp-Neg on (its recipe weights): d = e_c - e_u under the
cameras' azimuth-blended prompt, and Perp-Neg's term p = sum_i w_i perp(e_neg_i - e_u, d). It
prints |p| / |d| (how much the term changes the direction) and the cosine between the front
prompt's direction e_front - e_u and d (near 1: the "back view" prompt already points where the
front does, so the part of the front that Perp-Neg can remove, the part perpendicular to d, is
small). Means over DRAWS noise draws and the five cameras.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from dreamer.config import build_config
from dreamer.eval.janus import BACK_OFFSETS, _cams
from dreamer.guidance import build_guidance
from dreamer.priors.factory import build_prior
from dreamer.prompts import PromptProcessor
from dreamer.toy.render import render_object

ROOT = Path(__file__).resolve().parents[2]
STEPS = (200, 500, 800)
DRAWS = 6
OBJECTS = ("penguin", "rubber duck", "toy car", "snowman")


def norms(v: torch.Tensor) -> torch.Tensor:
    return v.flatten(1).norm(dim=1)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.flatten(1) * b.flatten(1)).sum(1) / (norms(a) * norms(b)).clamp_min(1e-12)


def screen(guidance, pp, cams, x0: torch.Tensor, t_value: int) -> tuple[float, float]:
    cond = pp(cams)
    front = pp.view("front").expand_as(cond.cond).contiguous()
    t = torch.full((x0.shape[0],), t_value)
    generator = torch.Generator().manual_seed(0)
    shares, cosines = [], []
    for _ in range(DRAWS):
        x_t = guidance.add_noise(x0, t, torch.randn(x0.shape, generator=generator))
        e_c, e_u, perp_term, (e_front,) = guidance.cfg_parts(x_t, t, cond, extra=[front])
        shares.append(norms(perp_term) / norms(e_c - e_u).clamp_min(1e-12))
        cosines.append(cosine(e_front - e_u, e_c - e_u))
    return float(torch.cat(shares).mean()), float(torch.cat(cosines).mean())


def main(view_odds: list[str]) -> None:
    torch.set_num_threads(1)
    print(f"|Perp-Neg term| / |e_c - e_u|, cos(front direction, e_c - e_u) at t = {', '.join(map(str, STEPS))}")
    for odds in view_odds:
        overrides = ["prior.world=realistic", f"prior.view_odds={float(odds)}", "guidance.perp_neg.enabled=true"]
        cfg = build_config(ROOT / "configs" / "sds-nerf.yaml", overrides)
        prior = build_prior(cfg.prior)
        guidance = build_guidance(cfg.guidance, prior, cfg.trainer.max_steps)
        c = cfg.camera
        cams = _cams([180.0 + o for o in BACK_OFFSETS], c.eval_elevation, c.eval_distance, c.eval_fovy, 64)
        for name in OBJECTS:
            obj = prior.catalogue.objects[prior.catalogue.resolve(name)[0]]
            x0 = render_object(obj, cams, supersample=2)[0].permute(0, 3, 1, 2) * 2 - 1
            pp = PromptProcessor(prior, f"a {name}", cfg.guidance, c)
            cells = [screen(guidance, pp, cams, x0, t) for t in STEPS]
            print(f"e^{odds:<4s} | {name:11s} | " + " | ".join(f"{s:.2f}, {k:+.2f}" for s, k in cells), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["1", "3"])
