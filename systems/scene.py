"""What a run optimizes, and the renders people see of it, without the training loop.

A run's state is its particles (one representation each; particle 0 is the asset) and its
background. TextTo3DSystem (text_to_3d.py) trains them under Lightning; `Scene` holds the same
modules under the same names, so a checkpoint's tensors load into either. Export and evaluation
load a Scene: importing Lightning takes seconds that a command which only draws need not pay.
"""
from __future__ import annotations

import torch
from torch import nn

from dreamer.priors.latent_rgb import to_display_rgb
from dreamer.representations import make_representation
from dreamer.representations.stored import PREFIX, upgrade_state_dict
from renderers.background import Background
from renderers.volume import ShadingSpec


def compute_device() -> torch.device:
    """Where runs train, and then export and evaluate: the GPU when there is one."""
    return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")


def assemble(module: nn.Module, cfg, restore: bool) -> None:
    """Give `module` a run's particles and background (`restore`: a checkpoint will fill them, so
    they read no previous run), and let it load checkpoints of older layouts."""
    # One representation per VSD/ESD particle (one otherwise), sharing one fake score in training.
    particles = [make_representation(cfg, k, restore) for k in range(cfg.guidance.particles)]
    setattr(module, PREFIX, nn.ModuleList(particles))
    module.background = Background(cfg.background, particles[0].color_channels, cfg.geometry.color_activation)
    module._register_load_state_dict_pre_hook(_upgrade_checkpoint)


class SceneQueries:
    """The renders of a module that `assemble` filled (a Scene, or the system while it trains)."""

    @property
    def representation(self):
        """Particle 0: the asset."""
        return self.particles[0]

    def render(self, cams, shading, randomized=False, generator=None, bg_color=None) -> list[dict]:
        """One render per particle, in particle order."""
        return [rep.render(self.background, cams, shading, randomized, generator, bg_color) for rep in self.particles]

    @torch.no_grad()
    def render_views(self, cams, mode: str = "shaded", particle: int = 0, bg_color=None) -> dict:
        """Renders for people (previews, turntable, evaluation), on the CPU: latent colours shown as RGB.
        `bg_color` replaces the learned background (evaluation composites on the truth's white)."""
        m = self.cfg.material
        rep = self.particles[particle]
        if rep.color_channels != 3:
            mode = "albedo"  # latents are not lit
        out = rep.render_chunked(self.background, cams, ShadingSpec(mode, m.ambient_light, m.diffuse_light), bg_color)
        out["rgb"] = to_display_rgb(out["rgb"])
        return {k: v.cpu() if torch.is_tensor(v) else v for k, v in out.items()}  # drawn on the device, read here


class Scene(SceneQueries, nn.Module):
    """A run's particles and background, to load from a checkpoint and draw."""

    def __init__(self, cfg, restore: bool = True):
        super().__init__()
        self.cfg = cfg
        assemble(self, cfg, restore)


def _upgrade_checkpoint(state_dict, prefix, *args):
    """Checkpoints of dreamer 0.1.0 (field.*, more_particles.*) load into today's layout."""
    upgraded = upgrade_state_dict(state_dict)
    if upgraded is not state_dict:
        state_dict.clear()
        state_dict.update(upgraded)
