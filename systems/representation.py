"""The 3D representation a run optimizes: a field (its parameters) and the renderer that draws it."""
from __future__ import annotations

from dreamer.geometry.gaussians import KEYS as GAUSSIAN_KEYS
from dreamer.geometry.gaussians import GaussianField
from dreamer.geometry.nerf import NeRFField
from renderers.gaussian import GaussianRenderer
from renderers.volume import VolumeRenderer

__all__ = ["GAUSSIAN_KEYS", "make_representation"]


def make_representation(cfg, particle: int = 0):
    """(field, renderer) for geometry.type; particle k > 0 is another VSD/ESD particle."""
    if cfg.geometry.type == "gaussians":
        return GaussianField(cfg.geometry, seed=cfg.seed * 1000 + particle), GaussianRenderer(cfg.geometry.gaussians)
    return NeRFField(cfg.geometry), VolumeRenderer(cfg.renderer, cfg.geometry.radius)
