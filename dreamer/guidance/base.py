"""What every score-distillation method shares (specs/guidance-sds-vsd-esd-csd-asd.md section 0).

Timestep sampling with schedules and HiFA sqrt annealing, the weighting w(t), classifier-free
guidance in the diffusers convention, the NaN/Inf guard, elementwise clipping, and the
gradient-injection loss L = 0.5 * sum((x - stopgrad(x - g))^2) / B, whose gradient is g / B.
"""
from __future__ import annotations

import math

import torch

from ..schedule import evaluate


def injection_loss(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Surrogate loss with dL/dx = g / B exactly (B = x.shape[0])."""
    target = (x - g).detach()
    return 0.5 * ((x - target) ** 2).sum() / x.shape[0]


class Guidance:
    name = "base"
    nfe_per_sample = 0  # UNet (prior) evaluations per sample and step

    def __init__(self, cfg, prior, max_steps: int):
        self.cfg, self.prior, self.max_steps = cfg, prior, max_steps
        self.abar = prior.alphas_cumprod.float()
        self.update_step(0)

    # -- schedules -----------------------------------------------------------------------------

    def update_step(self, step: int) -> None:
        c, T = self.cfg, self.prior.num_timesteps
        self.step = step
        self.guidance_scale = evaluate(c.guidance_scale, step)
        self.grad_clip = evaluate(c.grad_clip, step)
        lo, hi = evaluate(c.min_step_percent, step), evaluate(c.max_step_percent, step)
        if c.sqrt_anneal:  # HiFA: one deterministic t, decreasing with sqrt of progress
            p = lo + (hi - lo) * (1 - math.sqrt(min(step / max(self.max_steps, 1), 1.0)))
            lo = hi = p
        # + 1e-6: int(1000 * 0.64) would give 639 through floating-point error
        self.min_step, self.max_step = int(T * lo + 1e-6), int(T * hi + 1e-6)

    def sample_t(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Integer timesteps, one per sample, uniform on [min_step, max_step] inclusive."""
        return torch.randint(self.min_step, self.max_step + 1, (batch,), generator=generator)

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        abar = self.abar.to(t.device)[t]
        kind = self.cfg.weighting
        if kind == "sds":
            w = 1 - abar
        elif kind == "uniform":
            w = torch.ones_like(abar)
        elif kind == "fantasia3d":
            w = abar.sqrt() * (1 - abar)
        else:
            raise ValueError(f"unknown weighting {kind}")
        return w.reshape(-1, 1, 1, 1)

    # -- shared pieces -------------------------------------------------------------------------

    def add_noise(self, x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        abar = self.abar.to(x.device)[t].reshape(-1, 1, 1, 1)
        return abar.sqrt() * x + (1 - abar).sqrt() * noise

    def cfg_noise(self, x_t, t, emb_cond, emb_uncond, scale) -> torch.Tensor:
        """eps_u + s * (eps_c - eps_u), conditional and unconditional batched as 2B."""
        B = x_t.shape[0]
        eps = self.prior.predict_noise(torch.cat([x_t, x_t]), torch.cat([t, t]),
                                       torch.cat([emb_cond, emb_uncond]))
        eps_c, eps_u = eps[:B], eps[B:]
        return eps_u + scale * (eps_c - eps_u)

    def finalize(self, g: torch.Tensor) -> torch.Tensor:
        """NaN/Inf guard, then the elementwise clip (score debiasing) when one is set."""
        g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
        if self.grad_clip is not None:
            g = g.clamp(-self.grad_clip, self.grad_clip)
        return g

    def __call__(self, x: torch.Tensor, emb_cond: torch.Tensor, emb_uncond: torch.Tensor,
                 generator: torch.Generator | None = None) -> dict:
        """x: the renders in prior space (B, C, R, R), differentiable. Returns loss_<name> and stats."""
        raise NotImplementedError
