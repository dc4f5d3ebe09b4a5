"""ASD (asynchronous score distillation, ScaleDreamer): the frozen prior at a later timestep
stands in for the fake score. With one noise eps shared by both noisings,
  g = w(t) (eps_cfg(x_t; y_vd, t) - eps(x_t2; y_vd, t2)),  t2 = t + Delta_t,
  Delta_t = floor(r (t - t_min) u), u ~ U(0, 1) if plus_random else 1,
clamped so t2 stays below T. With r = 0 this is (s - 1) times CSD.
"""
from __future__ import annotations

import torch

from .base import Guidance


class ASDGuidance(Guidance):
    name = "asd"
    settings = ("asd",)

    def later_timestep(self, t: torch.Tensor, generator=None) -> torch.Tensor:
        c, T = self.cfg.asd, self.prior.num_timesteps
        u = torch.rand(t.shape, generator=generator).to(t.device) if c.plus_random else torch.ones(t.shape, device=t.device)
        span = (c.plus_ratio * (t - self.min_step).float()).clamp(min=0)
        span = torch.minimum(span, (T - 1 - t).float())
        return (t + torch.floor(span * u).long()).clamp(1, T - 1)

    def gradient(self, x, cond, generator=None):
        t = self.sample_t(x.shape[0], generator).to(x.device)
        noise = self.noise_like(x, generator)
        t2 = self.later_timestep(t, generator)  # drawn after the noise: t and eps follow SDS's stream
        x_t, x_t2 = self.add_noise(x, t, noise), self.add_noise(x, t2, noise)
        e_u, direction = self.cfg_direction(x_t, t, cond)
        fake = self.eps(x_t2, t2, cond.cond)
        return self.weight(t) * (e_u + self.guidance_scale * direction - fake), t
