"""The prior interface every guidance method sees, and Stable Diffusion's noise schedule."""
from __future__ import annotations

import abc

import torch


def sd_alphas_cumprod(num_timesteps: int = 1000, beta_start: float = 0.00085,
                      beta_end: float = 0.012) -> torch.Tensor:
    """abar_t for Stable Diffusion's scaled-linear betas (float64, length T)."""
    betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, num_timesteps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def v_to_eps(x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Epsilon from a v-prediction: with v = a_t eps - s_t x0 and x_t = a_t x0 + s_t eps,
    eps = s_t x_t + a_t v."""
    abar = alphas_cumprod.to(x_t.device)[t.long()].reshape(-1, *([1] * (x_t.dim() - 1))).to(x_t.dtype)
    return (1 - abar).sqrt() * x_t + abar.sqrt() * v


def cast_inputs(kwargs: dict, device, dtype) -> dict:
    """UNet keyword inputs (tensors, also inside nested dicts such as SDXL's added_cond_kwargs)
    moved to the UNet's device and dtype."""
    return {k: cast_inputs(v, device, dtype) if isinstance(v, dict) else v.to(device, dtype)
            for k, v in kwargs.items()}


class Prior(abc.ABC):
    """A diffusion model as guidance sees it.

    x lives in the prior's space: (B, C, R, R), pixels in [-1, 1] or latents. Noising follows
    x_t = sqrt(abar_t) x + sqrt(1 - abar_t) eps with `alphas_cumprod` (T,).
    """

    space: str  # "pixel" or "latent"
    resolution: int
    channels: int
    alphas_cumprod: torch.Tensor

    @property
    def num_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    @abc.abstractmethod
    def check_prompt(self, prompt: str) -> None:
        """Raise UserError if this prior cannot condition on `prompt`."""

    @abc.abstractmethod
    def encode(self, rgb: torch.Tensor) -> torch.Tensor:
        """Renders (B, H, W, 3) in [0, 1] -> x (B, C, R, R); differentiable."""

    @abc.abstractmethod
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """x -> images (B, R, R, 3) in [0, 1]."""

    @abc.abstractmethod
    def embed(self, prompts: list[str]) -> torch.Tensor:
        """Conditioning for each prompt, stacked on dim 0; "" is the unconditional prompt."""

    @abc.abstractmethod
    def predict_noise(self, x_t: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Noise prediction eps(x_t; emb, t) for each sample; t is (B,) integer timesteps."""

    def make_fake_score(self, cfg) -> "torch.nn.Module":
        """A trainable score of the renders for VSD-type methods: module(x_t, t, emb, camera) -> eps,
        equal to predict_noise before training, counting its evaluations in `.evaluations`."""
        raise NotImplementedError(f"{type(self).__name__} has no fake score")
