"""Rendering 3D Gaussians: gsplat's CUDA rasterizer on a GPU, ours (splat_raster) everywhere else.

Both take the same raw parameters and cameras and return the same outputs, so training,
densification and export do not know which one ran. Gaussians carry their look in their colours
and are not lit: every shading mode renders albedo (validation keeps training renders unlit).
"""
from __future__ import annotations

import torch

from dreamer.cameras import CameraBatch, get_rays, opencv_cameras
from dreamer.errors import UserError

from . import splat_raster
from .volume import ShadingSpec


class GaussianRenderer(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg  # geometry.gaussians

    def update_occupancy(self, field, step: int, generator=None) -> None:
        """Nothing to update: Gaussians are culled per tile instead."""

    def use_gsplat(self, device: torch.device) -> bool:
        backend = self.cfg.backend
        if backend == "gsplat" and device.type != "cuda":
            raise UserError("geometry.gaussians.backend=gsplat needs a CUDA GPU; use backend=torch or auto here")
        chosen = backend == "gsplat" or (backend == "auto" and device.type == "cuda")
        if chosen:
            check_gsplat_kernels()
        return chosen

    def rasterize(self, field, cams: CameraBatch):
        a = field.activated()
        device = a["means"].device
        viewmats, Ks = (t.to(device) for t in opencv_cameras(cams))
        args = dict(viewmats=viewmats, Ks=Ks, width=cams.width, height=cams.height, sh_degree=field.sh_degree,
                    near_plane=self.cfg.near_plane, eps2d=self.cfg.eps2d, render_mode="RGB+ED",
                    rasterize_mode=self.cfg.rasterize_mode)
        if self.use_gsplat(device):
            import gsplat
            # packed=False matches the strategy's default and suits one object seen whole by every view
            return gsplat.rasterization(**a, **args, packed=False)
        return splat_raster.rasterization(**a, **args, tile_size=self.cfg.tile_size)

    def forward(self, field, background, cams: CameraBatch, shading: ShadingSpec,
                randomized: bool = False, generator=None, bg_color=None) -> dict:
        image, alpha, meta = self.rasterize(field, cams)
        rgb, depth = image[..., :-1], image[..., -1:]
        if background.mlp is not None:  # only a learned background looks at ray directions
            dirs = get_rays(cams)[1].reshape(-1, 3).to(rgb.device)
        else:
            dirs = rgb.new_zeros(rgb[..., 0].numel(), 3)
        bg = background(dirs, bg_color).reshape(rgb.shape)
        # Normals only for people (previews): from the depth map, which Gaussians have, smooth or not
        normal = torch.zeros_like(rgb) if torch.is_grad_enabled() else normals_from_depth(depth, cams)
        return {"rgb": rgb + (1 - alpha) * bg, "opacity": alpha, "depth": depth,
                "normal": normal, "orient": rgb.new_zeros(0), "meta": meta}

    @torch.no_grad()
    def render_chunked(self, field, background, cams: CameraBatch, shading: ShadingSpec, bg_color=None,
                       views_per_chunk: int = 8) -> dict:
        outs = [self(field, background, cams.subset(slice(i, i + views_per_chunk)), shading, bg_color=bg_color)
                for i in range(0, len(cams), views_per_chunk)]
        return {k: torch.cat([o[k] for o in outs]) for k in ("rgb", "opacity", "depth", "normal")}


def normals_from_depth(depth: torch.Tensor, cams: CameraBatch) -> torch.Tensor:
    """World-space unit normals (B, H, W, 3) of the surface the z-depth map describes, facing the camera."""
    origins, dirs = (t.to(depth.device) for t in get_rays(cams))
    forward = -cams.c2w[:, :3, 2].to(depth.device)[:, None, None, :]  # OpenGL cameras look down -z
    points = origins + dirs * depth / (dirs * forward).sum(-1, keepdim=True)
    dx = torch.nn.functional.pad((points[:, :, 2:] - points[:, :, :-2]).permute(0, 3, 1, 2), (1, 1, 0, 0),
                                 mode="replicate").permute(0, 2, 3, 1)
    dy = torch.nn.functional.pad((points[:, 2:] - points[:, :-2]).permute(0, 3, 1, 2), (0, 0, 1, 1),
                                 mode="replicate").permute(0, 2, 3, 1)
    normal = torch.nn.functional.normalize(torch.cross(dx, dy, dim=-1), dim=-1)
    facing = (normal * dirs).sum(-1, keepdim=True) > 0
    return torch.where(facing, -normal, normal)


_KERNELS_OK = False


def check_gsplat_kernels() -> None:
    """gsplat compiles its CUDA kernels on first import of its backend (minutes, once, cached);
    without a CUDA toolkit it leaves them out and every call would fail deep inside."""
    global _KERNELS_OK
    if _KERNELS_OK:
        return
    fix = "install the CUDA toolkit (nvcc) matching torch's CUDA, or set geometry.gaussians.backend=torch"
    try:
        from gsplat.cuda._backend import _C
    except (ImportError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"gsplat's CUDA kernels failed to build ({first}); {fix}") from None
    if _C is None:
        raise UserError(f"gsplat found no CUDA toolkit to build its kernels; {fix}")
    _KERNELS_OK = True
