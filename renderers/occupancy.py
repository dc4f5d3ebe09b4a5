"""A dense occupancy grid over the bounding cube, so ray samples skip empty space.

Each cell keeps a running max of the field's density (decayed each update, as in Instant-NGP);
a cell is occupied when a sample of its density would have alpha above the threshold, dilated by
one cell so a surface that grows into a neighbour is still sampled.
"""
from __future__ import annotations

import torch

from dreamer import draws


class OccupancyGrid(torch.nn.Module):
    def __init__(self, radius: float, resolution: int, threshold_alpha: float, step_size: float,
                 decay: float = 0.95):
        super().__init__()
        self.radius, self.res, self.decay = radius, resolution, decay
        self.sigma_threshold = -torch.log1p(torch.tensor(-threshold_alpha)).item() / step_size
        self.register_buffer("density", torch.full((resolution,) * 3, float("inf")))
        self.register_buffer("occupied", torch.ones((resolution,) * 3, dtype=torch.bool))
        centers = (torch.stack(torch.meshgrid(*[torch.arange(resolution)] * 3, indexing="ij"), -1) + 0.5)
        self.register_buffer("centers", (centers / resolution * 2 - 1) * radius, persistent=False)

    @torch.no_grad()
    def update(self, density_fn, generator: torch.Generator | None = None) -> None:
        cell = 2 * self.radius / self.res
        jitter = (draws.rand(self.centers.shape, generator, self.centers) - 0.5) * cell
        pts = (self.centers + jitter).reshape(-1, 3)
        sigma = torch.cat([density_fn(chunk) for chunk in pts.split(65536)]).reshape(self.density.shape)
        inside = self.centers.norm(dim=-1) < self.radius + cell
        sigma = torch.where(inside, sigma, torch.zeros_like(sigma))
        prev = torch.where(torch.isinf(self.density), torch.zeros_like(self.density), self.density)
        self.density.copy_(torch.maximum(prev * self.decay, sigma))
        occ = (self.density > self.sigma_threshold).float()
        occ = torch.nn.functional.max_pool3d(occ[None, None], 3, stride=1, padding=1)[0, 0] > 0
        self.occupied.copy_(occ)

    def query(self, points: torch.Tensor) -> torch.Tensor:
        """Boolean occupancy of the cells holding `points` (..., 3)."""
        idx = ((points / self.radius + 1) / 2 * self.res).long().clamp(0, self.res - 1)
        return self.occupied[idx[..., 0], idx[..., 1], idx[..., 2]]

    def occupied_fraction(self) -> float:
        return self.occupied.float().mean().item()
