"""Starting Gaussians from a finished NeRF run: points where its density field is solid."""
from __future__ import annotations

import torch

from ..errors import UserError


@torch.no_grad()
def points_from_nerf_run(run_path: str, n: int, seed: int, resolution: int = 64):
    """n points jittered inside the voxels above the run's isosurface level, with its colours."""
    from ..export.mesh import auto_threshold, density_grid
    from ..pipeline import load_system
    from ..runs import RunDir
    run = RunDir.open(run_path)
    cfg = run.config()
    if cfg.geometry.type != "nerf" or cfg.geometry.color_channels != 3:
        raise UserError(f"{run_path} is not an RGB NeRF run; geometry.gaussians.init=nerf samples a NeRF's density")
    field = load_system(run, cfg).field
    r = cfg.geometry.radius
    grid = torch.from_numpy(density_grid(field.density, r, resolution))
    level = cfg.geometry.isosurface_threshold
    level = auto_threshold(grid.numpy(), 2 * r / (resolution - 1)) if level == "auto" else float(level)
    solid = (grid > level).nonzero().float()
    if len(solid) == 0:
        raise UserError(f"the NeRF in {run_path} has no solid voxels (level {level:.3g}); train it longer")
    g = torch.Generator().manual_seed(seed)
    pick = solid[torch.randint(len(solid), (n,), generator=g)]
    voxel = 2 * r / (resolution - 1)
    points = pick * voxel - r + (torch.rand(n, 3, generator=g) - 0.5) * voxel
    return points, field.display_albedo(points).clamp(0, 1)
