"""How far does classifier-free guidance push the realistic prior's estimate out of the colour range?

    python docs/bench-quality/cfg_clipping.py [TEMPERATURE ...]

A screening without training, for the saturation target of #19 (docs/evaluation.md, the realistic
world). For each front-distinct object, the true views at the 16 held-out azimuths are noised to t
with fresh noise, and the guided estimate D_u + s (D_c - D_u) is formed under each view's prompt at
scales 3, 7.5 and 100. Printed, per posterior temperature (default: the world's 64):
  - the share of the opaque core's pixels the estimate clips (a channel <= 0.02 or >= 0.98 on
    [0, 1] colours), at t = 500, per object, at each scale;
  - the CFG share of the SDS gradient at t = 500, scale 3 (the diagnostics' formula, on true views
    instead of a run's renders).
The truth clips at most 5% of its core.
"""
from __future__ import annotations

import sys

import torch

from core_colour import clipped_share  # this folder's script (python puts it on the path)
from dreamer.cameras import view_labels, view_prompt
from dreamer.config import PriorConfig
from dreamer.eval.janus import _cams
from dreamer.priors.factory import build_prior
from dreamer.toy.render import render_object

SCALES = (3.0, 7.5, 100.0)
T = 500
OBJECTS = ("penguin", "rubber duck", "toy car", "snowman")


def core_clipped(image: torch.Tensor, core: torch.Tensor) -> float:
    """image (B, 3, H, W) on [-1, 1]; core (B, H, W) bool: core_colour.py's clipped share."""
    return clipped_share(((image + 1) / 2).permute(0, 2, 3, 1)[core])


def main(temperatures: list[float]) -> None:
    azimuths = [i * 22.5 for i in range(16)]
    labels = view_labels([15.0] * 16, azimuths)
    cams = _cams(azimuths, 15.0, 2.0, 40.0, 64)
    for temperature in temperatures:
        prior = build_prior(PriorConfig(world="realistic", posterior_temperature=temperature))
        catalogue = prior.catalogue
        null = prior.embed([""] * 16)
        cells, shares = [], []
        for name in OBJECTS:
            index, _ = catalogue.resolve(name)
            rgb, coverage = render_object(catalogue.objects[index], cams, supersample=2)
            x0 = rgb.permute(0, 3, 1, 2) * 2 - 1
            core = coverage > 0.95
            emb = prior.embed([view_prompt(f"a {name}", label) for label in labels])
            abar = prior.alphas_cumprod[T]
            t = torch.full((16,), T)
            g = torch.Generator().manual_seed(0)
            noise = torch.randn(x0.shape, generator=g)
            x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
            d_c, d_u = prior.denoise(x_t, t, emb), prior.denoise(x_t, t, null)
            per_scale = [core_clipped(d_u + s * (d_c - d_u), core) for s in SCALES]
            cells.append(f"{name} " + " / ".join(f"{v:.2f}" for v in per_scale))
            # in noise terms e = (x_t - sqrt(abar) D) / sqrt(1 - abar): the same share as the diagnostics'
            e_c, e_u = [(x_t - abar.sqrt() * d) / (1 - abar).sqrt() for d in (d_c, d_u)]
            e_cfg = e_u + 3.0 * (e_c - e_u)
            shares.append(float((3.0 * (e_c - e_u)).norm() / (e_cfg - noise).norm()))
        print(f"temperature {temperature:g}: clipped core at t {T}, scale 3 / 7.5 / 100: " + "; ".join(cells)
              + " | CFG share at scale 3: " + " / ".join(f"{v:.2f}" for v in shares), flush=True)


if __name__ == "__main__":
    main([float(v) for v in sys.argv[1:]] or [64.0])
