"""DDIM samples (50 steps) from a trained toy denoiser: a row per front-distinct object (duck, snowman,
car, penguin), columns = no view word, front, side, back (two noise seeds each).

    python docs/bench-quality/toy_denoiser_samples.py WEIGHTS.safetensors OUT.png [CFG_SCALE]
"""
from __future__ import annotations

import sys

import torch
from PIL import Image

from dreamer.priors.base import sd_alphas_cumprod
from dreamer.toy.denoiser import load_denoiser

OBJECTS = ("rubber duck", "snowman", "toy car", "penguin")
WORDS = (None, "front", "side", "back")


def main() -> None:
    net, _ = load_denoiser(sys.argv[1])
    scale = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
    rows = [(net.objects.index(o), w) for o in OBJECTS for w in WORDS for _ in range(2)]
    cond = torch.stack([net.condition(o, w) for o, w in rows])
    null = net.condition(None, None).expand_as(cond)
    abar = sd_alphas_cumprod().float()
    steps = torch.linspace(999, 0, 50).long()
    x = torch.randn(len(rows), 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for i, t in enumerate(steps):
            tt = t.repeat(len(rows))
            e_u = net(x, tt, null)
            eps = e_u + scale * (net(x, tt, cond) - e_u)
            a = abar[t]
            x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)
            a_next = abar[steps[i + 1]] if i + 1 < len(steps) else torch.tensor(1.0)
            x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
    tiles = ((x0 + 1) * 127.5).round().byte().permute(0, 2, 3, 1).reshape(len(OBJECTS), 2 * len(WORDS), 64, 64, 3)
    grid = torch.cat([torch.cat(list(r), 1) for r in tiles], 0)
    Image.fromarray(grid.numpy()).save(sys.argv[2])


if __name__ == "__main__":
    main()
