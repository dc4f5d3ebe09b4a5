"""Background models: what a ray that leaves the object sees."""
from __future__ import annotations

import torch
from torch import nn


class Background(nn.Module):
    """`solid`: a fixed colour. `mlp`: a small learned function of the ray direction."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("color", torch.tensor(cfg.color, dtype=torch.float32))
        self.mlp = None
        if cfg.type == "mlp":
            self.mlp = nn.Sequential(nn.Linear(3, 16), nn.ReLU(inplace=True), nn.Linear(16, 3))

    def forward(self, dirs: torch.Tensor, random_color: torch.Tensor | None = None) -> torch.Tensor:
        """dirs (..., 3) -> colour (..., 3). `random_color` (3,) replaces it (augmentation)."""
        if random_color is not None:
            return random_color.to(dirs).expand_as(dirs)
        if self.mlp is not None:
            return torch.sigmoid(self.mlp(dirs))
        return self.color.to(dirs).expand_as(dirs)
