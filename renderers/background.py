"""Background models: what a ray that leaves the object sees."""
from __future__ import annotations

import torch
from torch import nn


class Background(nn.Module):
    """`solid`: a fixed colour. `mlp`: a small learned function of the ray direction."""

    def __init__(self, cfg, channels: int = 3, activation: str = "sigmoid"):
        super().__init__()
        self.cfg, self.channels, self.activation = cfg, channels, activation
        self.register_buffer("color", torch.tensor(cfg.color, dtype=torch.float32))
        self.mlp = None
        if cfg.type == "mlp":
            self.mlp = nn.Sequential(nn.Linear(3, 16), nn.ReLU(inplace=True), nn.Linear(16, channels))

    def forward(self, dirs: torch.Tensor, random_color: torch.Tensor | None = None) -> torch.Tensor:
        """dirs (..., 3) -> colour (..., C), C the field's colour channels (3, or 4 for latents).
        `random_color` (C,) replaces it (augmentation)."""
        shape = (*dirs.shape[:-1], self.channels)
        if random_color is not None:
            return random_color.to(dirs).expand(shape)
        if self.mlp is not None:
            out = self.mlp(dirs)
            return torch.sigmoid(out) if self.activation == "sigmoid" else out
        return self.color.to(dirs).expand(shape)
