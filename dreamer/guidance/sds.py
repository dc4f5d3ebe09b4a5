"""SDS (DreamFusion): g = w(t) * (eps_cfg(x_t; y, t) - eps), the per-view mode-seeking direction."""
from __future__ import annotations

from .base import Guidance


class SDSGuidance(Guidance):
    name = "sds"
    settings = ()

    def gradient(self, x, cond, generator=None):
        t = self.sample_t(x.shape[0], generator).to(x.device)
        noise = self.noise_like(x, generator)
        x_t = self.add_noise(x, t, noise)
        return self.weight(t) * (self.guided_eps(x_t, t, cond) - noise), t
