"""BSD (balanced score distillation, PlacidDreamer): the min-norm (MGDA) convex combination of a
classifier direction g_c and a smoothing direction g_d, per sample:
  alpha* = clip(<g_d - g_c, g_d> / |g_d - g_c|^2, 0, 1),   d = alpha* g_c + (1 - alpha*) g_d
  standard: g_c = lambda_r (e_y - e_u), g_d = e_u,          g = w(t) d    (no -eps term; w = a_t in the recipe)
  auto:     g_c = e_y - e_u, g_d = 1.25 (e_u - eps),        g = |e_u - eps|_F b_t / 50 * d
With alpha* in (0, 1), <d, g_c> = <d, g_d> = |d|^2: d descends both objectives at once.
"""
from __future__ import annotations

import torch

from .base import Guidance, batch_dot


def min_norm_weight(g_c: torch.Tensor, g_d: torch.Tensor) -> torch.Tensor:
    """alpha* per sample (B, 1, ..., 1), in float64 for the ratio of two small numbers."""
    a, b = g_c.double(), g_d.double()
    diff = b - a
    alpha = batch_dot(diff, b) / batch_dot(diff, diff).clamp_min(1e-20)
    same = batch_dot(diff, diff) <= 1e-20  # g_c == g_d: any alpha gives the same point
    return torch.where(same, torch.ones_like(alpha), alpha.clamp(0, 1)).to(g_c.dtype)


class BSDGuidance(Guidance):
    name = "bsd"
    settings = ("bsd",)

    def gradient(self, x, cond, generator=None):
        c = self.cfg.bsd
        t = self.sample_t(x.shape[0], generator).to(x.device)
        noise = self.noise_like(x, generator, c.offset_noise)
        x_t = self.add_noise(x, t, noise)
        e_u, direction = self.cfg_direction(x_t, t, cond)
        if c.auto:
            g_c, g_d = direction, 1.25 * (e_u - noise)
            w = (e_u - noise).norm() * self.sigma(t, x) / 50
        else:
            g_c, g_d = c.balance_ratio * direction, e_u
            w = self.weight(t)  # guidance.weighting; the reference's is alpha: sqrt(abar_t)
        alpha = min_norm_weight(g_c, g_d)
        return w * (alpha * g_c + (1 - alpha) * g_d), t
