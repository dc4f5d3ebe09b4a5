"""CSD (classifier score distillation) and CSM (classifier score matching, TV-3DG).

CSD keeps only the classifier direction of the score, in the reference code's general form
  g = w(t) (c_cond e_y + c_neg e_neg + c_null e_null + c_noise eps + c_perp PerpNegTerm)
(c_cond 1, c_null -1: the pure classifier score; c_cond s, c_neg 1 - s, c_noise -1: SDS).

CSM has no public code; this follows the spec's reconstruction from the paper: the classifier
direction s (e_y - e_null), evaluated at a deterministic noising of the render by DDIM inversion
from timestep 0 (driven by the null prompt) instead of at a random one.
"""
from __future__ import annotations

import torch

from ..schedule import evaluate
from .base import Guidance


class CSDGuidance(Guidance):
    name = "csd"
    settings = ("csd",)

    def coefficients(self) -> dict:
        keys = ("cond_scale", "negative_scale", "null_scale", "noise_scale", "perp_neg_scale")
        return {k: float(evaluate(getattr(self.cfg.csd, k), self.step)) for k in keys}

    def gradient(self, x, cond, generator=None):
        c = self.coefficients()
        t = self.sample_t(x.shape[0], generator).to(x.device)
        noise = self.noise_like(x, generator)
        x_t = self.add_noise(x, t, noise)
        e_y, e_neg, perp_term, (e_null,) = self.cfg_parts(x_t, t, cond, extra=[cond.null])
        g = (c["cond_scale"] * e_y + c["negative_scale"] * e_neg + c["null_scale"] * e_null
             + c["noise_scale"] * noise + c["perp_neg_scale"] * perp_term)
        g = self.weight(t) * g
        if self.cfg.csd.grad_normalize:
            g = g / (g.norm() + 1e-8)
        return g, t


class CSMGuidance(Guidance):
    name = "csm"
    settings = ("interval",)  # the inversion stride of its deterministic noising

    def gradient(self, x, cond, generator=None):
        t = self.sample_t(x.shape[0], generator).to(x.device)
        zero = torch.zeros_like(t)
        x_start = self.alpha(zero, x) * x  # the render at timestep 0, with no noise
        x_t = self.invert(x_start, zero, t, self.null_eps(cond), self.cfg.interval.inversion_stride)
        _, direction = self.cfg_direction(x_t, t, cond, uncond=cond.null)
        return self.weight(t) * self.guidance_scale * direction, t
