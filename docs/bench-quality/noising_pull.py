"""Does ISM's deterministic noising weaken the realistic prior's pull to the front?

    python docs/bench-quality/noising_pull.py

A screening without training (docs/evaluation.md, the realistic world: "ISM and TSM are the least
Janus"). At the five Janus back cameras of each front-distinct object, the true back view is
noised to t in two ways: with fresh Gaussian noise (SDS and the other methods) and along ISM's
DDIM inversion (its recipe's interval, stride and offset noise; null prompt). From each x_t, the
guided estimate of the clean image (scale 7.5, the ISM recipe's, under the "back view" prompt)
is scored with the Janus score against the true back and front. Positive: the prior pulls the
true back toward the front. Means over DRAWS noise draws.
"""
from __future__ import annotations

from pathlib import Path

import torch

from dreamer.cameras import view_labels, view_prompt
from dreamer.config import build_config
from dreamer.eval.janus import BACK_OFFSETS, _cams, janus_score
from dreamer.guidance import build_guidance
from dreamer.guidance.base import Conditioning
from dreamer.priors.factory import build_prior
from dreamer.toy.render import render_object

ROOT = Path(__file__).resolve().parents[2]
STEPS = (200, 400, 600, 800)
DRAWS = 8


def noised(guidance, x0, t, cond, how, generator):
    """x_t from the clean x0: fresh noise, or ISM's own noising (its inversion to s = t - delta_t, then to t)."""
    if how == "fresh":
        return guidance.add_noise(x0, t, torch.randn(x0.shape, generator=generator))
    return guidance.noise_to(x0, t, cond, generator)


def main() -> None:
    cfg = build_config(ROOT / "configs" / "ism-nerf.yaml", ["prior.world=realistic"])
    prior = build_prior(cfg.prior)
    guidance = build_guidance(cfg.guidance, prior, cfg.trainer.max_steps)
    guidance.update_step(cfg.trainer.max_steps)  # after the warm-up: delta_t 80
    catalogue = prior.catalogue
    c = cfg.camera
    back = [180.0 + o for o in BACK_OFFSETS]
    n = len(back)
    print(f"Janus score of the guided estimate from the true back view (scale {guidance.guidance_scale:g}, "
          f"delta_t {guidance.delta_t}; {DRAWS} draws)")
    for name in ("penguin", "rubber duck", "toy car", "snowman"):
        index, _ = catalogue.resolve(name)
        obj = catalogue.objects[index]
        truth = lambda cams: render_object(obj, cams, supersample=2)  # noqa: E731
        rgb, _ = truth(_cams(back, c.eval_elevation, c.eval_distance, c.eval_fovy, 64))
        x0 = rgb.permute(0, 3, 1, 2) * 2 - 1
        labels = view_labels([c.eval_elevation] * n, back)
        emb = prior.embed([view_prompt(f"a {name}", label) for label in labels])
        null = prior.embed([""] * n)
        cond = Conditioning(cond=emb, null=null, negative=null, plain=emb, camera=torch.zeros(n, 16))
        for how in ("fresh", "ism"):
            cells = []
            for t_value in STEPS:
                t = torch.full((n,), t_value)
                generator = torch.Generator().manual_seed(0)
                scores = []
                for _ in range(DRAWS):
                    x_t = noised(guidance, x0, t, cond, how, generator)
                    e = guidance.guided_eps(x_t, t, cond)
                    est = guidance.clean_estimate(x_t, t, e).clamp(-1, 1)
                    image = ((est + 1) / 2).permute(0, 2, 3, 1)
                    scores.append(janus_score(lambda cams: (image, None), truth, c.eval_elevation,
                                              c.eval_distance, c.eval_fovy)["janus_score"])
                cells.append(f"t {t_value}: {sum(scores) / len(scores):+.2f}")
            print(f"{name:12s} {how:6s} " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
