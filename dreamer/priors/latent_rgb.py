"""Stable Diffusion latents seen as colours without the VAE: a fixed linear map.

With prior.rgb_as_latents (Latent-NeRF) the radiance field's colours are 4-channel SD latents,
which people cannot look at. Previews, the turntable and the exported texture show them through
the widely used linear approximation of SD 1.x/2.x's decoder (4 latent channels -> RGB in [-1, 1],
from "Decoding latents to RGB without upscaling", Hugging Face forums), the same idea as
threestudio's sd-latent-adapter. It is an approximation (no detail below the latent's 8-pixel
cell, SDXL's latents are only roughly alike), so a latent asset's colours are a preview.
"""
from __future__ import annotations

import torch

LATENT_TO_RGB = torch.tensor([
    #   R       G       B
    [0.298, 0.207, 0.208],
    [0.187, 0.286, 0.173],
    [-0.158, 0.189, 0.264],
    [-0.184, -0.271, -0.473],
])


def latents_to_rgb(latents: torch.Tensor) -> torch.Tensor:
    """(..., 4) scaled SD latents -> (..., 3) colours in [0, 1]."""
    rgb = latents @ LATENT_TO_RGB.to(latents)
    return ((rgb + 1) / 2).clamp(0, 1)


def to_display_rgb(colour: torch.Tensor) -> torch.Tensor:
    """(..., 3) RGB unchanged; (..., 4) SD latents as their approximate RGB."""
    return latents_to_rgb(colour) if colour.shape[-1] == 4 else colour
