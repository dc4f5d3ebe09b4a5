"""ISM (interval score matching, LucidDreamer) and TSM (trajectory score matching, Dreamer XL).

Both noise the render deterministically: x_s = DDIM-inversion of q_0(x, eps) from 0 up to
s = t - delta_t (null prompt), then one more inversion step from s to t.
  ISM: g = rho_t (eps_cfg(x_t, t; y | neg) - e(x_s, s; null))
  TSM: g = rho_t (eps_cfg(x_t, t; y | neg) - e(x_mu, mu; null)),  mu = round(s + (t - s) sqrt(1 - gamma^2)),
       x_mu on a second inversion path from the same x_s. gamma = 1 gives mu = s (ISM), gamma = 0 gives
       mu = t (the classifier-only term). Unlike the reference TSM code, the path to mu lands on mu even
       when t - s exceeds the inversion stride.
The weight rho_t = sqrt((1 - abar_t) / abar_t) comes from the recipe's weighting "rho"; the
reference's lambda (0.1) is loss.lambda_guidance.
"""
from __future__ import annotations

import math

import torch

from ..schedule import evaluate
from .base import Guidance


class ISMGuidance(Guidance):
    name = "ism"
    settings = ("interval",)

    def update_step(self, step):
        super().update_step(step)
        self.delta_t = int(evaluate(self.cfg.interval.delta_t, step))

    def inversion_eps(self, cond):
        """eps_fn driving the inversion: the null prompt, or reverse CFG e_null + w (e_neg - e_null)."""
        wi = self.cfg.interval.denoise_guidance_scale
        if wi == 1.0:
            return self.null_eps(cond)

        def reverse_cfg(x_t, t, rows):
            e_null, e_neg = self.eps_many(x_t, t, [cond.null[rows], cond.negative[rows]])
            return e_null + wi * (e_neg - e_null)
        return reverse_cfg

    def interval_path(self, x, t, cond, generator=None):
        """The deterministic noising shared by ISM and TSM: s = t - delta_t, x_s (x inverted from 0 to
        s), e(x_s, s), the inversion's eps_fn, and x_t, one more inversion step from s (the point
        their gradient is taken at)."""
        c = self.cfg.interval
        s = (t - self.delta_t).clamp(min=0)
        zero = torch.zeros_like(t)
        x0 = self.add_noise(x, zero, self.noise_like(x, generator, c.offset_noise))
        eps_fn = self.inversion_eps(cond)
        x_s = self.invert(x0, zero, s, eps_fn, c.inversion_stride)
        e_s = eps_fn(x_s, s, torch.ones_like(s, dtype=torch.bool))
        x_t = self.invert(x_s, s, t, eps_fn, c.inversion_stride, e_s)
        return s, x_s, e_s, eps_fn, x_t

    def noise_to(self, x, t, cond, generator=None):
        """x_t as ISM and TSM noise x (docs/bench-quality/noising_pull.py screens it)."""
        return self.interval_path(x, t, cond, generator)[-1]

    def gradient(self, x, cond, generator=None):
        t = self.sample_t(x.shape[0], generator).to(x.device)
        _, _, e_s, _, x_t = self.interval_path(x, t, cond, generator)
        return self.weight(t) * (self.guided_eps(x_t, t, cond) - e_s), t


def tsm_midpoint(s: torch.Tensor, t: torch.Tensor, gamma: float) -> torch.Tensor:
    return torch.round(s + (t - s).double() * math.sqrt(1 - gamma ** 2)).long()


class TSMGuidance(ISMGuidance):
    name = "tsm"
    settings = ("interval",)

    def gradient(self, x, cond, generator=None):
        t = self.sample_t(x.shape[0], generator).to(x.device)
        s, x_s, e_s, eps_fn, x_t = self.interval_path(x, t, cond, generator)
        mu = tsm_midpoint(s, t, self.cfg.interval.gamma)
        x_mu = self.invert(x_s, s, mu, eps_fn, self.cfg.interval.inversion_stride, e_s)
        e_mu = e_s.clone()
        moved = mu != s  # where mu == s the target is e(x_s, s): no second evaluation
        if bool(moved.any()):
            e_mu[moved] = eps_fn(x_mu[moved], mu[moved], moved)
        return self.weight(t) * (self.guided_eps(x_t, t, cond) - e_mu), t
