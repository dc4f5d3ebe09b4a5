"""What every score-distillation method shares (specs/guidance-*.md section 0).

Timestep sampling with schedules and HiFA sqrt annealing, the weighting w(t), classifier-free
guidance in the diffusers convention (with Perp-Neg when the conditioning carries it), the
NaN/Inf guard, elementwise clipping (score debiasing), TSM's pixel-wise clip, one deterministic
DDIM inversion, a count of prior evaluations, and the gradient-injection loss
L = 0.5 * sum((x - stopgrad(x - g))^2) / B, whose gradient is g / B.

A method implements `gradient(x, cond, generator) -> (g, t)`; the base turns g into the loss.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Optional

import torch

from .. import draws
from ..schedule import evaluate


def injection_loss(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Surrogate loss with dL/dx = g / B exactly (B = x.shape[0])."""
    target = (x - g).detach()
    return 0.5 * ((x - target) ** 2).sum() / x.shape[0]


def perp(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The part of a perpendicular to b, per sample (over all but the first dimension)."""
    dims = tuple(range(1, a.dim()))
    dot = (a * b).sum(dims, keepdim=True)
    return a - dot / (b * b).sum(dims, keepdim=True).clamp_min(1e-6) * b


def pixel_clip(grad: torch.Tensor, c: float) -> torch.Tensor:
    """Scale each pixel's gradient (last dim = channels) so its largest channel is at most c."""
    peak = grad.abs().amax(-1, keepdim=True)
    return grad * torch.where(peak > c, c / peak.clamp_min(1e-30), torch.ones_like(peak))


def batch_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """<a_i, b_i> per sample, shaped (B, 1, 1, 1) for broadcasting."""
    return (a * b).flatten(1).sum(1).reshape(-1, *([1] * (a.dim() - 1)))


@dataclass
class Conditioning:
    """Everything a method may condition on, one row per sample.

    `cond` is the view-dependent prompt (or Perp-Neg's azimuth blend); `negative` fills CFG's
    unconditional slot (it is `null` unless a negative prompt is set); `plain` is the prompt with
    no view suffix, which the fake score sees; `camera` is the flattened camera-to-world matrix.
    """
    cond: torch.Tensor
    null: torch.Tensor
    negative: torch.Tensor
    plain: torch.Tensor
    camera: torch.Tensor
    perp_neg_embeddings: Optional[torch.Tensor] = None  # (B, K, ...) the other views
    perp_neg_weights: Optional[torch.Tensor] = None  # (B, K), <= 0

    def __len__(self) -> int:
        return self.cond.shape[0]

    def to(self, device) -> "Conditioning":
        """Every tensor on `device` (the renders'): the camera sampler and prompt cache live on the CPU."""
        return Conditioning(**{f.name: (None if getattr(self, f.name) is None else getattr(self, f.name).to(device))
                               for f in fields(self)})

    def repeat(self, n: int) -> "Conditioning":
        """The same rows n times over (one block per particle)."""
        if n == 1:
            return self
        return Conditioning(**{f.name: (None if getattr(self, f.name) is None else torch.cat([getattr(self, f.name)] * n))
                               for f in fields(self)})


class Guidance(torch.nn.Module):
    name = "base"
    # The method's own sections of the guidance config (guidance.<section>), beside the keys every
    # method shares (scale, weighting, timesteps, clipping, prompts, Perp-Neg): what it reads, and
    # so all a recipe of it may set (tests/test_guidance_family.py holds both).
    settings: tuple[str, ...] = ()

    def __init__(self, cfg, prior, max_steps: int):
        super().__init__()
        self.cfg, self.prior, self.max_steps = cfg, prior, max_steps
        self.abar = prior.alphas_cumprod.double()  # cast per use: DDIM steps in float64 stay exact
        self._tables: dict = {}  # (name, device) -> a schedule table there
        self.evaluations = 0  # prior (UNet) evaluations, summed over samples, since the last call
        self.update_step(0)

    # -- schedules -----------------------------------------------------------------------------

    def update_step(self, step: int) -> None:
        c, T = self.cfg, self.prior.num_timesteps
        self.step = step
        self.guidance_scale = evaluate(c.guidance_scale, step)
        self.grad_clip = evaluate(c.grad_clip, step)
        self.pixel_clip = evaluate(c.pixel_clip, step)
        lo, hi = evaluate(c.min_step_percent, step), evaluate(c.max_step_percent, step)
        if c.sqrt_anneal:  # HiFA: one deterministic t, decreasing with sqrt of progress
            p = lo + (hi - lo) * (1 - math.sqrt(min(step / max(self.max_steps, 1), 1.0)))
            lo = hi = p
        # + 1e-6: int(1000 * 0.64) would give 639 through floating-point error
        self.min_step, self.max_step = int(T * lo + 1e-6), int(T * hi + 1e-6)

    def sample_t(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Integer timesteps, one per sample, uniform on [min_step, max_step] inclusive."""
        return torch.randint(self.min_step, self.max_step + 1, (batch,), generator=generator)

    # -- the noise schedule ----------------------------------------------------------------------

    def _table(self, name: str, device) -> torch.Tensor:
        """abar, sqrt(abar) or sqrt(1 - abar) on `device`, copied there once (not every call)."""
        key = (name, torch.device(device))
        if key not in self._tables:
            table = {"abar": self.abar, "alpha": self.abar.sqrt(), "sigma": (1 - self.abar).sqrt()}[name]
            self._tables[key] = table.to(device)
        return self._tables[key]

    def _at(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self._table(name, like.device)[t.long()].reshape(-1, *([1] * (like.dim() - 1))).to(like.dtype)

    def alpha(self, t, like):
        return self._at("alpha", t, like)

    def sigma(self, t, like):
        return self._at("sigma", t, like)

    def weight(self, t: torch.Tensor, kind: str | None = None) -> torch.Tensor:
        abar = self._table("abar", t.device)[t.long()]
        kind = kind or self.cfg.weighting
        if kind == "sds":
            w = 1 - abar
        elif kind == "uniform":
            w = torch.ones_like(abar)
        elif kind == "fantasia3d":
            w = abar.sqrt() * (1 - abar)
        elif kind == "rho":  # ISM/TSM: the VE noise level sigma_t / alpha_t
            w = ((1 - abar) / abar).sqrt()
        elif kind == "alpha":  # BSD
            w = abar.sqrt()
        else:
            raise ValueError(f"unknown weighting {kind}")
        return w.reshape(-1, 1, 1, 1).float()

    def add_noise(self, x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.alpha(t, x) * x + self.sigma(t, x) * noise

    def clean_estimate(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """The clean image x_t's noise prediction implies: (x_t - b_t e) / a_t."""
        return (x_t - self.sigma(t, x_t) * eps) / self.alpha(t, x_t)

    def ddim(self, x: torch.Tensor, t_from: torch.Tensor, t_to: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Deterministic DDIM map D_{i->k}(x; e) = a_k (x - b_i e) / a_i + b_k e (either direction)."""
        x0 = self.clean_estimate(x, t_from, eps)
        return self.alpha(t_to, x) * x0 + self.sigma(t_to, x) * eps

    def invert(self, x: torch.Tensor, t_from: torch.Tensor, t_to: torch.Tensor, eps_fn, stride: int,
               first_eps: torch.Tensor | None = None) -> torch.Tensor:
        """DDIM inversion from t_from up to t_to (per sample) in steps of at most `stride`, landing
        exactly on t_to. Each step uses eps_fn(x, t, rows) at its lower end (rows: which samples);
        `first_eps` may supply the first step's prediction when the caller already has it."""
        if stride < 1:
            raise ValueError(f"inversion stride must be at least 1, got {stride}")
        x, cur = x.clone(), t_from.clone()
        first = True
        while bool((cur < t_to).any()):
            active = cur < t_to
            nxt = torch.minimum(cur + stride, t_to)
            if first and first_eps is not None:
                e = first_eps[active]
            else:
                e = eps_fn(x[active], cur[active], active)
            x[active] = self.ddim(x[active], cur[active], nxt[active], e)
            cur, first = torch.where(active, nxt, cur), False
        return x

    def null_eps(self, cond: "Conditioning"):
        """eps_fn for `invert`: the null prompt's prediction."""
        return lambda x_, t_, rows: self.eps(x_, t_, cond.null[rows])

    # -- the prior -------------------------------------------------------------------------------

    def eps(self, x_t: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """The prior's noise prediction, counted in evaluations per sample."""
        self.evaluations += x_t.shape[0]
        return self.prior.predict_noise(x_t, t, emb)

    def eps_many(self, x_t, t, embs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Several conditions at the same (x_t, t), batched into one prior call."""
        n, B = len(embs), x_t.shape[0]
        out = self.eps(torch.cat([x_t] * n), torch.cat([t] * n), torch.cat(embs))
        return list(out.split(B))

    def cfg_parts(self, x_t, t, cond, uncond: torch.Tensor | None = None, extra: list | None = None):
        """Predictions for classifier-free guidance, batched into one prior call.

        Returns (e_cond, e_uncond, perp_term, extra predictions): CFG is
        e_uncond + s * (e_cond - e_uncond + perp_term), where perp_term is Perp-Neg's
        sum_i w_i perp(e_neg_i - e_uncond, e_cond - e_uncond) (zero without negative views).
        `uncond` defaults to the negative prompt; `extra` embeddings ride along at (x_t, t)."""
        uncond = cond.negative if uncond is None else uncond
        extra = list(extra or [])
        K = 0 if cond.perp_neg_embeddings is None else cond.perp_neg_embeddings.shape[1]
        embs = [cond.cond, uncond] + extra + [cond.perp_neg_embeddings[:, k] for k in range(K)]
        preds = self.eps_many(x_t, t, embs)
        e_c, e_u = preds[0], preds[1]
        perp_term = torch.zeros_like(e_c)
        for k in range(K):
            w = cond.perp_neg_weights[:, k].reshape(-1, *([1] * (x_t.dim() - 1))).to(x_t)
            perp_term = perp_term + w * perp(preds[2 + len(extra) + k] - e_u, e_c - e_u)
        return e_c, e_u, perp_term, preds[2:2 + len(extra)]

    def cfg_direction(self, x_t, t, cond, uncond=None):
        """(e_uncond, direction): the CFG prediction is e_uncond + s * direction."""
        e_c, e_u, perp_term, _ = self.cfg_parts(x_t, t, cond, uncond)
        return e_u, e_c - e_u + perp_term

    def guided_eps(self, x_t, t, cond, scale=None, uncond=None) -> torch.Tensor:
        """eps_u + s * direction (diffusers convention)."""
        e_u, direction = self.cfg_direction(x_t, t, cond, uncond)
        return e_u + (self.guidance_scale if scale is None else scale) * direction

    # -- the output ------------------------------------------------------------------------------

    def finalize(self, g: torch.Tensor) -> torch.Tensor:
        """NaN/Inf guard, then the elementwise clip (score debiasing) when one is set."""
        g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
        if self.grad_clip is not None:
            g = g.clamp(-self.grad_clip, self.grad_clip)
        return g

    def attach_image_hook(self, rgb: torch.Tensor) -> None:
        """TSM's pixel-wise gradient clip, on the total gradient reaching the rendered image."""
        if self.pixel_clip is not None and rgb.requires_grad:
            c = float(self.pixel_clip)
            rgb.register_hook(lambda grad: pixel_clip(grad, c))

    def after_backward(self) -> None:
        """After the step's backward, before its gradients are checked (a fake score unscales its own)."""

    def noise_like(self, x: torch.Tensor, generator, offset: float = 0.0) -> torch.Tensor:
        """Gaussian noise shaped like x; `offset` adds a per-sample, per-channel constant term."""
        noise = draws.randn(x.shape, generator, x)
        if offset:
            noise = noise + offset * draws.randn((x.shape[0], x.shape[1]) + (1,) * (x.dim() - 2), generator, x)
        return noise

    def gradient(self, x: torch.Tensor, cond: Conditioning, generator=None):
        """(g, t): the gradient for the renders x and the timesteps used. Runs without grad."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, cond: Conditioning, generator: torch.Generator | None = None) -> dict:
        """x: the renders in prior space (B, C, R, R), differentiable. Returns loss_guidance and stats."""
        self.evaluations = 0
        with torch.no_grad():
            g, t = self.gradient(x.detach(), cond, generator)
            # The loop skips (and counts) a step whose g was not finite; finalize's zeros only keep
            # the loss finite, they must not pass for a real gradient.
            finite = bool(torch.isfinite(g).all())
            g = self.finalize(g)
        return {"loss_guidance": injection_loss(x, g), "grad_norm": g.norm().detach(), "finite": finite,
                "t": t.float().mean(), "nfe": self.evaluations / x.shape[0]}
