"""DSD (domain score distillation, DreamPolish). No public code exists; this implements the update
the spec derives from the paper's abstract, not a verified reproduction:
  g = w(t) [lam_c (e_y - e_null) + lam_v (eps_cfg(x_t; y) - eps_psi(x_t; y, t, c))]
a classifier (CSD-type) term plus a variational (VSD-type) term with the fake score of VSD.
lam_v = 0 is CSD; lam_c = 0 is VSD.
"""
from __future__ import annotations

from ..schedule import evaluate
from .variational import FakeScoreGuidance


class DSDGuidance(FakeScoreGuidance):
    name = "dsd"
    settings = ("dsd", "fake_score")

    def gradient(self, x, cond, generator=None):
        lam_c = float(evaluate(self.cfg.dsd.classifier_weight, self.step))
        lam_v = float(evaluate(self.cfg.dsd.variational_weight, self.step))
        t = self.sample_t(x.shape[0], generator).to(x.device)
        x_t = self.add_noise(x, t, self.noise_like(x, generator))
        e_u, direction = self.cfg_direction(x_t, t, cond)
        g = lam_c * direction
        if lam_v:
            g = g + lam_v * (e_u + self.guidance_scale * direction - self.fake_eps(x_t, t, cond))
        return self.weight(t) * g, t
