"""A prior with an exact score, for closed-form tests of the guidance methods.

Each prompt "m,v" is the Gaussian N(m, v I); the empty prompt is the unconditional N(0, 2.25)
(specs/guidance-sds-vsd-esd-csd-asd.md section 7). Its noise prediction is exact:
eps*(x_t) = sigma_t (x_t - alpha_t m) / (alpha_t^2 v + sigma_t^2); v = 0 is a point mass.
"""
from __future__ import annotations

import torch

from dreamer.priors.base import Prior, sd_alphas_cumprod


def gaussian_eps(x_t, t, mean, var, abar_table):
    abar = abar_table.to(x_t)[t.long()].reshape(-1, *([1] * (x_t.dim() - 1)))
    a, s = abar.sqrt(), (1 - abar).sqrt()
    return s * (x_t - a * mean) / (a * a * var + s * s)


class GaussianPrior(Prior):
    space, channels = "pixel", 1

    def __init__(self, resolution: int = 1, uncond=(0.0, 2.25), fake_factory=None):
        self.resolution, self.uncond, self.fake_factory = resolution, uncond, fake_factory
        self.alphas_cumprod = sd_alphas_cumprod().float()

    def check_prompt(self, prompt):
        pass

    def encode(self, rgb):
        return rgb

    def decode(self, x):
        return x

    def embed(self, prompts):
        rows = [tuple(float(v) for v in p.split(",")) if p else self.uncond for p in prompts]
        return torch.tensor(rows, dtype=torch.float32)

    def predict_noise(self, x_t, t, emb):
        shape = (-1,) + (1,) * (x_t.dim() - 1)
        return gaussian_eps(x_t, t, emb[:, 0].reshape(shape).to(x_t), emb[:, 1].reshape(shape).to(x_t),
                            self.alphas_cumprod)

    def make_fake_score(self, cfg):
        return self.fake_factory() if self.fake_factory else ZeroResidual(self)


class ZeroResidual(torch.nn.Module):
    """A fake score equal to the prior's conditional prediction (an untrained fake)."""

    def __init__(self, prior):
        super().__init__()
        self.prior, self.evaluations = [prior], 0

    def forward(self, x_t, t, emb, camera):
        self.evaluations += x_t.shape[0]
        return self.prior[0].predict_noise(x_t, t, emb)


class GeneratorFake(torch.nn.Module):
    """The exact fake score of a 1-D generator x = m + S z whose camera is z (spec section 7).

    With the null (zero) camera: the score of the marginal N(m, S^2) ("perfect LoRA").
    With camera z: a point mass at m + S z, if `conditional`; else the marginal again."""

    def __init__(self, generator, abar_table, conditional: bool):
        super().__init__()
        self.generator, self.abar, self.conditional, self.evaluations = generator, abar_table, conditional, 0

    def forward(self, x_t, t, emb, camera):
        self.evaluations += x_t.shape[0]
        m, S = (p.detach() for p in self.generator)
        marginal = gaussian_eps(x_t, t, m, S * S, self.abar)
        if not self.conditional:
            return marginal
        z = camera[:, :1].reshape(-1, 1, 1, 1).to(x_t)
        point = gaussian_eps(x_t, t, m + S * z, torch.zeros(()), self.abar)
        null = (camera == 0).all(-1).reshape(-1, 1, 1, 1)
        return torch.where(null, marginal, point)
