"""The contract every 3D representation implements (NeRF, Gaussians; the mesh next).

The training loop, the job, export, evaluation and the UI see a representation only through this
class: they never ask which one it is. A representation owns its parameters and the renderer that
draws them, so it is one nn.Module whose state dict is its part of the checkpoint.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from ..errors import UserError
from ..export.mesh import TexturedMesh, textured_mesh_from_field
from ..export.placement import Placement
from ..schedule import evaluate


COARSE_FOLDER = "coarse"  # a chained stage's previous stage: a run folder inside its run folder


def check_one_rgb_particle(cfg, stage: str) -> None:
    """A stage that trains one representation with RGB colours (the mesh and texture stages)."""
    if cfg.guidance.particles != 1:
        raise UserError(f"the {stage} stage trains one particle; set guidance.particles=1")
    if cfg.geometry.color_channels != 3:
        raise UserError(f"the {stage} stage works in RGB; prior.rgb_as_latents needs --representation nerf")


def check_previous_run(key: str, path: str | None, what: str, hint: str = "") -> None:
    """A chained stage's geometry.<key>.init=run: `path` must be a run folder with a checkpoint."""
    if not path or not (Path(path) / "config.yaml").is_file():
        raise UserError(f"geometry.{key}.init=run needs geometry.{key}.init_path, a finished {what} run folder "
                        f"({path or 'not set'} is not one){hint}")
    if not (Path(path) / "checkpoints" / "last.ckpt").is_file():
        raise UserError(f"{path} has no checkpoint yet; run `dreamer resume {path}` first")


def coarse_folder(key: str, cfg) -> str:
    """A chained stage's geometry.<key>.init=coarse: its previous stage's run folder, inside its own."""
    if not cfg.out_dir:
        raise UserError(f"geometry.{key}.init=coarse runs inside a run folder; start it with dreamer generate")
    return str(Path(cfg.out_dir) / COARSE_FOLDER)


class Representation(nn.Module):
    name: ClassVar[str]  # the value of geometry.type that picks it
    color_channels: int = 3  # what it renders: 3 (RGB) or 4 (Stable Diffusion latents)

    def __init__(self, cfg, particle: int = 0):
        """`cfg` is the whole ExperimentConfig; particle k > 0 is another VSD/ESD particle."""
        super().__init__()
        self.cfg, self.particle = cfg, particle

    @classmethod
    def validate(cls, cfg) -> None:
        """Checks across config keys that need no heavy work (bad input fails before a run folder exists)."""

    @classmethod
    def previous_run(cls, cfg) -> str | None:
        """The run folder this one starts from (a stage chain), or None to start fresh."""
        return None

    @classmethod
    def skeleton(cls, cfg, particle: int = 0) -> "Representation":
        """One with the right structure, for a checkpoint to fill: it reads no other run or file."""
        return cls(cfg, particle)

    @classmethod
    def create_from(cls, cfg, previous: "Representation", particle: int = 0) -> "Representation":
        """A new representation initialized from a previous stage's trained one."""
        raise UserError(f"geometry.type={cls.name} cannot start from a {previous.name} run")

    # -- optimization ---------------------------------------------------------------------------------

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Name -> parameters stepped by the run's shared Adam at optimizer.lr_<name>."""
        return {}

    def separate_parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Name -> parameters that get an Adam of their own (at optimizer.lr_<name>), because this
        representation resizes them together with their optimizer state (densification)."""
        return {}

    def prepare_device(self, device: torch.device, say=None) -> None:
        """Before training on `device`: build or check the CUDA kernels a backend needs (with a line to
        `say`), so a failure or a fallback shows before step 0 rather than inside it."""

    def prepare_step(self, step: int, generator: torch.Generator) -> None:
        """Before the training render of `step` (e.g. refresh an occupancy grid)."""

    def render(self, background, cams, shading, randomized: bool = False, generator=None, bg_color=None) -> dict:
        """The one output dict of every renderer: rgb (B, H, W, C) composited on the background,
        opacity (B, H, W, 1), depth (B, H, W, 1), normal (B, H, W, 3), plus the representation's own
        extras (e.g. "orient", "meta") that only its regularizers and hooks read."""
        raise NotImplementedError

    @torch.no_grad()
    def render_chunked(self, background, cams, shading, bg_color=None) -> dict:
        """Renders of many views for people and metrics, without one huge graph: rgb, opacity, depth, normal."""
        raise NotImplementedError

    def regularizers(self, out: dict, step: int) -> torch.Tensor:
        """This representation's own loss terms on a training render, weights already applied."""
        return torch.zeros(())

    def before_backward(self, out: dict) -> None:
        """After the loss of the training render `out` is built, before backward."""

    def after_step(self, step: int, out: dict, optimizers: dict) -> None:
        """After a good optimizer step; `optimizers` maps separate_parameter_groups' names to their Adams."""

    def step_stats(self) -> dict:
        """Numbers for metrics.csv (their columns are listed in dreamer.callbacks.MetricsCSV)."""
        return {}

    # -- checkpoints and export --------------------------------------------------------------------------

    def checkpoint_extras(self) -> dict:
        """State that is not in the state dict (tensors and plain data only)."""
        return {}

    def load_checkpoint_extras(self, extras: dict) -> None:
        pass

    def to_mesh(self, export_cfg) -> TexturedMesh:
        """The asset as a textured triangle mesh, for model.glb / model.obj."""
        raise NotImplementedError

    def export_extras(self, folder: Path, formats: list[str], where: Placement) -> list[Path]:
        """Files beyond the mesh that `formats` asks for and this representation can write, placed
        as the mesh is (`where`: its height and pivot)."""
        return []


class FieldRepresentation(Representation):
    """A representation that is a density field with a colour (NeRF, Gaussians as kernel sums):
    `self.field` answers density(points) and display_albedo(points); `self.renderer` draws it."""

    field: nn.Module
    renderer: nn.Module
    mesh_smoothing = 0.0  # voxels of blur on the density before the mesh is extracted

    def prepare_device(self, device, say=None) -> None:
        self.renderer.prepare(device, say)

    def render(self, background, cams, shading, randomized=False, generator=None, bg_color=None) -> dict:
        return self.renderer(self.field, background, cams, shading, randomized, generator, bg_color)

    @torch.no_grad()
    def render_chunked(self, background, cams, shading, bg_color=None) -> dict:
        return self.renderer.render_chunked(self.field, background, cams, shading, bg_color)

    def density(self, points: torch.Tensor) -> torch.Tensor:
        return self.field.density(points)

    def display_albedo(self, points: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] at points (latent colours through their linear RGB map)."""
        return self.field.display_albedo(points)

    def regularizers(self, out, step) -> torch.Tensor:
        """Opacity terms every field shares: sparsity (a soft L1) and opaqueness (binary entropy)."""
        c, total = self.cfg.loss, torch.zeros(())
        opacity = out["opacity"].clamp(1e-5, 1 - 1e-5)
        lam = evaluate(c.lambda_sparsity, step)
        if lam:
            total = total + lam * (opacity ** 2 + 0.01).sqrt().mean()
        lam = evaluate(c.lambda_opaque, step)
        if lam:
            total = total - lam * (opacity * opacity.log() + (1 - opacity) * (1 - opacity).log()).mean()
        return total

    @torch.no_grad()
    def to_mesh(self, export_cfg) -> TexturedMesh:
        """The closed surface of the cleaned solid above geometry.isosurface_threshold, baked albedo."""
        g, e = self.cfg.geometry, export_cfg
        device = next(self.parameters()).device  # query the field where it trained; move only values
        density = lambda p: self.density(p.to(device)).float().cpu()  # noqa: E731
        albedo = lambda p: self.display_albedo(p.to(device)).float().cpu()  # noqa: E731
        return textured_mesh_from_field(density, albedo, g.radius, e.resolution,
                                        g.isosurface_threshold, e.faces, e.texture_size, self.mesh_smoothing)
