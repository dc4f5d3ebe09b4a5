"""Diffusion priors behind one interface (design.md section 3)."""
from .base import Prior, sd_alphas_cumprod  # noqa: F401
