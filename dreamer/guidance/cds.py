"""CDS (consistency distillation sampling, Consistent3D): SDS with the sampled noise replaced by
the prior's own prediction one probability-flow ODE step closer to the data.

One fixed noise eps* (drawn once from `noise_seed`) noises every view at every step:
x_t = q_t(x, eps*). A DDIM (Euler in VE coordinates) step with the CFG prediction e_t takes x_t to
x_n at t_n < t, and g = w(t) (e_t - e_n), e_n the CFG prediction at (x_n, t_n).
Timesteps are coarse to fine: t_n = t_start + (t_end - t_start) sqrt(k / K), clamped to
[t_min, t_max - end_gap], and t = t_n + U_int[end_gap, end_gap + perturb_factor), clamped.
"""
from __future__ import annotations

import math

import torch

from .base import Guidance


class CDSGuidance(Guidance):
    name = "cds"
    settings = ("cds",)

    def __init__(self, cfg, prior, max_steps):
        super().__init__(cfg, prior, max_steps)
        shape = (1, prior.channels, prior.resolution, prior.resolution)
        g = torch.Generator().manual_seed(cfg.cds.noise_seed)
        self.fixed_noise = torch.randn(shape, generator=g)  # a pure function of the seed: resume-safe

    def timesteps(self, batch: int, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.cfg.cds
        K = c.anneal_steps or self.max_steps
        frac = math.sqrt(min(self.step / max(K, 1), 1.0))
        t_n = int(round(c.t_start + (c.t_end - c.t_start) * frac))
        t_n = min(max(t_n, self.min_step), self.max_step - c.end_gap)
        gap = torch.randint(c.end_gap, c.end_gap + c.perturb_factor, (batch,), generator=generator)
        t = (t_n + gap).clamp(self.min_step, self.max_step)
        return t, torch.full((batch,), t_n, dtype=torch.long)

    def gradient(self, x, cond, generator=None):
        t, t_n = self.timesteps(x.shape[0], generator)
        t, t_n = t.to(x.device), t_n.to(x.device)
        x_t = self.add_noise(x, t, self.fixed_noise.to(x).expand_as(x))
        e_t = self.guided_eps(x_t, t, cond)
        x_n = self.ddim(x_t, t, t_n, e_t)
        e_n = self.guided_eps(x_n, t_n, cond)
        return self.weight(t) * (e_t - e_n), t
