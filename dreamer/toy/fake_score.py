"""The toy prior's fake score: the prior's own noise prediction plus a small camera-conditioned
residual network whose output layer starts at zero, so eps_psi == eps_phi before training.

It plays the part a LoRA on the UNet plays for a real prior (VSD, ESD, DSD): trained online on
the renders, it learns how the current 3D asset's views differ from what the prior expects.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def timestep_features(t: torch.Tensor, dim: int = 32, T: int = 1000) -> torch.Tensor:
    """Sinusoidal features of t / T, (B, dim)."""
    freqs = torch.exp(torch.arange(dim // 2, dtype=torch.float32) * (-math.log(1000.0) / (dim // 2)))
    angle = (t.float()[:, None] / T * 1000.0) * freqs[None]
    return torch.cat([angle.sin(), angle.cos()], -1)


class _Block(nn.Module):
    """conv -> add the (time, camera) embedding as a per-channel bias -> SiLU."""

    def __init__(self, c_in, c_out, emb_dim, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        self.bias = nn.Linear(emb_dim, c_out)

    def forward(self, x, emb):
        return nn.functional.silu(self.conv(x) + self.bias(emb)[:, :, None, None])


class ResidualFakeScore(nn.Module):
    """eps_psi(x_t; y, t, c) = eps_phi(x_t; y, t) + r(x_t, t, c), with r a two-level conv net."""

    def __init__(self, prior, width: int = 32, camera_dim: int = 16):
        super().__init__()
        self.prior = [prior]  # a list keeps the prior out of state_dict and parameters()
        ch = prior.channels
        emb = 4 * width
        self.time_mlp = nn.Sequential(nn.Linear(32, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.camera_mlp = nn.Sequential(nn.Linear(camera_dim, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.inp = _Block(ch + ch, width, emb)  # x_t and the prior's own prediction
        self.down1 = _Block(width, 2 * width, emb, stride=2)
        self.down2 = _Block(2 * width, 2 * width, emb, stride=2)
        self.up2 = _Block(4 * width, width, emb)
        self.up1 = _Block(2 * width, width, emb)
        self.out = nn.Conv2d(width, ch, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.evaluations = 0

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, emb: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
        self.evaluations += x_t.shape[0]
        with torch.no_grad():
            base = self.prior[0].predict_noise(x_t, t, emb)
        e = self.time_mlp(timestep_features(t.to(x_t.device))) + self.camera_mlp(camera.to(x_t))
        h0 = self.inp(torch.cat([x_t, base], 1), e)
        h1 = self.down1(h0, e)
        h2 = self.down2(h1, e)
        up = nn.functional.interpolate(h2, scale_factor=2.0, mode="nearest")
        u1 = self.up2(torch.cat([up, h1], 1), e)
        up = nn.functional.interpolate(u1, scale_factor=2.0, mode="nearest")
        u0 = self.up1(torch.cat([up, h0], 1), e)
        # The network corrects the denoised image x0: an x0 error d is an eps error -(a_t / s_t) d,
        # so the residual is small where the prior is nearly exact (large t) and large where its
        # nearest-reference guess is far from the renders (small t), at one output scale.
        abar = self.prior[0].alphas_cumprod.to(x_t)[t.long()].reshape(-1, 1, 1, 1)
        return base - (abar / (1 - abar)).sqrt() * self.out(u0)
