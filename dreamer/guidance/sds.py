"""SDS (DreamFusion): g = w(t) * (eps_cfg(x_t; y, t) - eps), the per-view mode-seeking direction."""
from __future__ import annotations

import torch

from .base import Guidance, injection_loss


class SDSGuidance(Guidance):
    name = "sds"
    nfe_per_sample = 2

    def gradient(self, x, emb_cond, emb_uncond, generator=None):
        t = self.sample_t(x.shape[0], generator).to(x.device)
        noise = torch.randn(x.shape, generator=generator).to(x)
        with torch.no_grad():
            x_t = self.add_noise(x.detach(), t, noise)
            eps = self.cfg_noise(x_t, t, emb_cond, emb_uncond, self.guidance_scale)
            g = self.finalize(self.weight(t).to(x) * (eps - noise))
        return g, t

    def __call__(self, x, emb_cond, emb_uncond, generator=None):
        g, t = self.gradient(x, emb_cond, emb_uncond, generator)
        return {"loss_sds": injection_loss(x, g), "grad_norm": g.norm().detach(),
                "t": t.float().mean(), "nfe": self.nfe_per_sample * x.shape[0]}
