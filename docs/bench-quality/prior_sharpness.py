"""How sharply does the toy prior give back a true view at low noise, in each world?

    python docs/bench-quality/prior_sharpness.py

For each front-distinct object, the true views at the 16 held-out azimuths (elevation 15, 64x64)
are noised to t and denoised under their view prompt. It prints the estimate's RMS difference from
the clean view (on [0, 1] colours), and the Gaussian blur, among SIGMAS, of the clean view that is
nearest to the estimate. It separates the prior's own blur from the optimization's
(docs/evaluation.md, the realistic world: "The blur is the optimization's").
"""
from __future__ import annotations

import torch

from dreamer.cameras import view_labels, view_prompt
from dreamer.eval.janus import _cams
from dreamer.eval.metrics import gaussian_blur
from dreamer.config import PriorConfig
from dreamer.priors.factory import build_prior
from dreamer.toy.render import render_object

SIGMAS = (0.01, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)  # pixels; 0.01 is the clean view
STEPS = (20, 50, 100, 200, 400)


def blurred(x: torch.Tensor, sigma: float) -> torch.Tensor:
    return gaussian_blur(x, sigma, radius=int(3 * sigma) + 1)


def main() -> None:
    torch.manual_seed(0)
    priors = {world: build_prior(PriorConfig(world=world)) for world in ("exact", "realistic")}  # config defaults
    catalogue = priors["exact"].catalogue
    azimuths = [i * 22.5 for i in range(16)]
    labels = view_labels([15.0] * 16, azimuths)
    for name in ("penguin", "rubber duck", "toy car", "snowman"):
        index, _ = catalogue.resolve(name)
        rgb, _ = render_object(catalogue.objects[index], _cams(azimuths, 15.0, 2.0, 40.0, 64), supersample=2)
        x0 = rgb.permute(0, 3, 1, 2) * 2 - 1
        blurs = torch.stack([blurred(x0, s) for s in SIGMAS])
        for world, prior in priors.items():
            emb = prior.embed([view_prompt(f"a {name}", label) for label in labels])
            cells = []
            for t in STEPS:
                abar = prior.alphas_cumprod[t]
                x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * torch.randn_like(x0)
                d = prior.denoise(x_t, torch.full((16,), t), emb)
                rmse = float(((d - x0) ** 2).mean().sqrt()) / 2
                nearest = SIGMAS[int(((blurs - d[None]) ** 2).flatten(1).mean(1).argmin())]
                cells.append(f"t {t}: {rmse:.3f}, sigma {nearest:g}")
            print(f"{name:12s} {world:9s} " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
