"""3D Gaussians: gsplat's parameters, drawn by gsplat on CUDA or our rasterizer elsewhere, grown and
pruned during training by gsplat's DefaultStrategy (densify.py)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserError
from ..export.mesh import auto_threshold, density_grid
from ..export.splats import write_splat, write_splats_ply
from ..geometry.gaussians import KEYS, GaussianField
from renderers.gaussian import GaussianRenderer

from .base import FieldRepresentation, Representation
from .densify import Densifier


class Gaussians(FieldRepresentation):
    name = "gaussians"
    # The kernel sum of a trained run is layers of flat splats: blurred by two voxels they merge
    # into one slab, whose surface is one closed sheet instead of a stack of see-through flakes.
    mesh_smoothing = 2.0

    def __init__(self, cfg, particle: int = 0, start: tuple | None = None):
        """`start`: (points, colours) to place the Gaussians at instead of geometry.gaussians.init."""
        super().__init__(cfg, particle)
        self.field = GaussianField(cfg.geometry, seed=self.seed(cfg, particle), start=start)
        self.renderer = GaussianRenderer(cfg.geometry.gaussians)
        self.densifier = Densifier(cfg)

    @staticmethod
    def seed(cfg, particle: int) -> int:
        return cfg.seed * 1000 + particle

    @classmethod
    def validate(cls, cfg) -> None:
        g = cfg.geometry.gaussians
        if g.init in ("nerf", "ply"):
            want = "a finished NeRF run folder" if g.init == "nerf" else "a 3DGS .ply file"
            if not g.init_path or not Path(g.init_path).exists():
                raise UserError(f"geometry.gaussians.init={g.init} needs geometry.gaussians.init_path: {want} "
                                f"({g.init_path or 'not set'} does not exist)")
        if cfg.guidance.particles != 1:
            raise UserError("Gaussians train one particle; set guidance.particles=1 or use --representation nerf")
        if cfg.geometry.color_channels != 3:
            raise UserError("Gaussians carry RGB colours; prior.rgb_as_latents needs --representation nerf")
        GaussianRenderer.check_backend(g, cuda=torch.cuda.is_available())

    @classmethod
    def previous_run(cls, cfg) -> str | None:
        g = cfg.geometry.gaussians
        return g.init_path if g.init == "nerf" else None

    @classmethod
    def skeleton(cls, cfg, particle: int = 0) -> "Gaussians":
        """One Gaussian: the checkpoint's tensors resize it (GaussianField._resize_to_checkpoint)."""
        return cls(cfg, particle, start=(torch.zeros(1, 3), torch.full((1, 3), 0.5)))

    @classmethod
    def create_from(cls, cfg, previous: Representation, particle: int = 0) -> "Gaussians":
        """Gaussians placed in the solid voxels of a previous field, with its colours."""
        if not isinstance(previous, FieldRepresentation) or previous.color_channels != 3:
            raise UserError(f"Gaussians start from a run with an RGB density field, not a {previous.name} run "
                            f"with {previous.color_channels} colour channels")
        start = solid_points(previous, cfg.geometry.gaussians.num_points, cls.seed(cfg, particle))
        return cls(cfg, particle, start=start)

    # -- optimization: one Adam per gsplat key, because densification resizes them ------------------------

    def separate_parameter_groups(self) -> dict:
        return {k: [self.field.splats[k]] for k in KEYS}

    def before_backward(self, out) -> None:
        self.densifier.before_backward(out["meta"])

    def after_step(self, step, out, optimizers) -> None:
        self.densifier.after_step(self.field, optimizers, step, out["meta"])

    def step_stats(self) -> dict:
        return {"gaussians": self.field.count}

    def checkpoint_extras(self) -> dict:
        return {"densify_state": self.densifier.state}

    def load_checkpoint_extras(self, extras) -> None:
        if "densify_state" in extras:
            self.densifier.restore(extras["densify_state"])

    def export_extras(self, folder, formats, where) -> list[Path]:
        written = []
        if "ply" in formats:
            write_splats_ply(self.field.splats, folder / "splats.ply", where)
            written.append(folder / "splats.ply")
        if "splat" in formats:
            write_splat(self.field.splats, folder / "splats.splat", where)
            written.append(folder / "splats.splat")
        return written


@torch.no_grad()
def solid_points(previous: FieldRepresentation, n: int, seed: int, resolution: int = 64):
    """n points jittered inside the voxels above the previous field's isosurface level, with its colours."""
    r = previous.cfg.geometry.radius
    grid = torch.from_numpy(density_grid(previous.density, r, resolution))
    level = previous.cfg.geometry.isosurface_threshold
    level = auto_threshold(grid.numpy(), 2 * r / (resolution - 1)) if level == "auto" else float(level)
    solid = (grid > level).nonzero().float()
    if len(solid) == 0:
        raise UserError(f"the previous run's field has no solid voxels (level {level:.3g}); train it longer")
    g = torch.Generator().manual_seed(seed)
    pick = solid[torch.randint(len(solid), (n,), generator=g)]
    voxel = 2 * r / (resolution - 1)
    points = pick * voxel - r + (torch.rand(n, 3, generator=g) - 0.5) * voxel
    return points, previous.display_albedo(points).clamp(0, 1)
