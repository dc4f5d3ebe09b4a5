"""A UV texture whose texels are parameters, stored as a Laplacian-style pyramid.

A render of a few thousand pixels touches a few thousand texels of a 512² or 1024² texture, so
plain texels would be updated in a speckle of isolated dots. The colour at a UV point is instead
sigmoid(sum over levels of that level's bilinear sample): the coarse levels get a gradient from
every pixel, the finest one keeps the detail. The image it exports is the same sum at texel
centres (bilinear upsampling with half-texel centres is that sample), then the sigmoid.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

COARSEST = 16  # the smallest level's size: any render covers it densely


def is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def level_sizes(size: int) -> list[int]:
    """size, size/2, ... down to COARSEST (or size itself when it is smaller)."""
    sizes = [size]
    while sizes[-1] // 2 >= COARSEST:
        sizes.append(sizes[-1] // 2)
    return sizes


def uv_grid(uv: torch.Tensor) -> torch.Tensor:
    """UVs (origin bottom-left, row 0 of an image at v = 1) as grid_sample coordinates, (1, 1, N, 2)."""
    return torch.stack([uv[:, 0] * 2 - 1, 1 - uv[:, 1] * 2], -1)[None, None]


class PyramidTexture(nn.Module):
    def __init__(self, size: int, start: torch.Tensor | None = None):
        """`start`: (size, size, 3) colours in [0, 1] the texture begins as (row 0 = top), else grey."""
        super().__init__()
        sizes = level_sizes(size)
        self.levels = nn.ParameterList([nn.Parameter(torch.zeros(3, s, s)) for s in sizes])
        if start is not None:
            logits = torch.logit(start.float().clamp(1e-3, 1 - 1e-3)).permute(2, 0, 1)
            self.levels[0].data.copy_(logits)

    @property
    def size(self) -> int:
        return self.levels[0].shape[-1]

    def forward(self, uv: torch.Tensor) -> torch.Tensor:
        """(N, 2) UVs -> (N, 3) colours in (0, 1)."""
        grid = uv_grid(uv.to(self.levels[0].dtype))
        total = sum(F.grid_sample(level[None], grid, mode="bilinear", padding_mode="border",
                                  align_corners=False)[0, :, 0] for level in self.levels)
        return torch.sigmoid(total).t()

    @torch.no_grad()
    def image(self) -> torch.Tensor:
        """(size, size, 3) colours in (0, 1), row 0 = top: the texture as exported."""
        s = self.size
        total = sum(F.interpolate(level[None], size=(s, s), mode="bilinear", align_corners=False)[0]
                    for level in self.levels)
        return torch.sigmoid(total).permute(1, 2, 0)
