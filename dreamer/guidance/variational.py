"""VSD (ProlificDreamer) and ESD (entropic score distillation): the prior's CFG score minus the
score of the renders themselves, estimated by a fake score trained online on the renders.

  VSD: g = w(t) (eps_cfg(x_t; y_vd) - eps_psi^{s_l}),  eps_psi^{s_l} = e_0 + s_l (e_c - e_0)
  ESD: g = w(t) (eps_cfg(x_t; y_vd) - lambda e_0 - (1 - lambda) e_c)

with e_c = eps_psi(x_t; y, t, camera) and e_0 the same with the null (all-zero) camera. ESD is
VSD with s_l = 1 - lambda; both are written as e_c - m (e_c - e_0), so lambda = 0 is VSD with
s_l = 1 exactly, and the null-camera branch is only evaluated when m != 0.

The fake score trains every step on the detached renders with the denoising loss at its own
t' ~ U{0..T-1}, the camera zeroed with probability `camera_dropout` (spec section 2e).
"""
from __future__ import annotations

import torch

from ..schedule import evaluate
from .base import Guidance


class FakeScoreGuidance(Guidance):
    """The shared part of every method with a fake score: building, evaluating and training it."""

    def __init__(self, cfg, prior, max_steps):
        super().__init__(cfg, prior, max_steps)
        self.fake = prior.make_fake_score(cfg.fake_score)

    def fake_mix(self) -> float:
        """m in e_c - m (e_c - e_0)."""
        return 1.0 - float(evaluate(self.cfg.fake_score.guidance_scale_lora, self.step))

    def fake_eps(self, x_t, t, cond) -> torch.Tensor:
        m = self.fake_mix()
        camera = cond.camera
        if m == 0:
            return self.fake(x_t, t, cond.plain, camera)
        both = self.fake(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([cond.plain, cond.plain]),
                         torch.cat([camera, torch.zeros_like(camera)]))
        e_c, e_0 = both.split(x_t.shape[0])
        return e_c - m * (e_c - e_0)

    def fake_loss(self, x: torch.Tensor, cond, generator) -> torch.Tensor:
        """Denoising loss of the fake score on the detached renders."""
        x0 = x.detach()
        B, T = x0.shape[0], self.prior.num_timesteps
        t = torch.randint(0, T, (B,), generator=generator).to(x0.device)
        noise = self.noise_like(x0, generator)
        keep = (torch.rand(B, generator=generator) >= self.cfg.fake_score.camera_dropout).to(x0)
        camera = cond.camera * keep.reshape(-1, *([1] * (cond.camera.dim() - 1)))
        pred = self.fake(self.add_noise(x0, t, noise), t, cond.plain, camera)
        return ((pred - noise) ** 2).mean()

    def after_backward(self) -> None:
        unscale = getattr(self.fake, "after_backward", None)  # a LoRA fake score's loss scaling
        if unscale is not None:
            unscale()

    def forward(self, x, cond, generator=None):
        self.fake.evaluations = 0
        out = super().forward(x, cond, generator)
        if any(p.requires_grad for p in self.fake.parameters()):
            out["loss_fake_score"] = self.fake_loss(x, cond, generator)
        out["nfe"] = (self.evaluations + self.fake.evaluations) / x.shape[0]
        return out


class VSDGuidance(FakeScoreGuidance):
    name = "vsd"
    settings = ("fake_score",)

    def gradient(self, x, cond, generator=None):
        t = self.sample_t(x.shape[0], generator).to(x.device)
        x_t = self.add_noise(x, t, self.noise_like(x, generator))
        return self.weight(t) * (self.guided_eps(x_t, t, cond) - self.fake_eps(x_t, t, cond)), t


class ESDGuidance(VSDGuidance):
    name = "esd"
    settings = ("fake_score", "entropy_weight")

    def fake_mix(self) -> float:
        return float(evaluate(self.cfg.entropy_weight, self.step))
