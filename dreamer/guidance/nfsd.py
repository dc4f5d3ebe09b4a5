"""NFSD (noise-free score distillation, Katzir et al.): distil the in-domain direction plus the
condition direction, never the sampled noise:
  delta_D = e_null                (t < threshold)     delta_D = e_null - e_neg   (t >= threshold)
  g = w(t) (delta_D + s (e_y - e_null)).
"""
from __future__ import annotations

import torch

from .base import Guidance


class NFSDGuidance(Guidance):
    name = "nfsd"
    settings = ("nfsd",)

    def gradient(self, x, cond, generator=None):
        t = self.sample_t(x.shape[0], generator).to(x.device)
        x_t = self.add_noise(x, t, self.noise_like(x, generator))
        e_y, e_null, perp_term, (e_neg,) = self.cfg_parts(x_t, t, cond, uncond=cond.null, extra=[cond.negative])
        late = (t >= self.cfg.nfsd.threshold).reshape(-1, *([1] * (x.dim() - 1)))
        domain = torch.where(late, e_null - e_neg, e_null)
        return self.weight(t) * (domain + self.guidance_scale * (e_y - e_null + perp_term)), t
