"""Rendering 3D Gaussians: gsplat's CUDA rasterizer on a GPU, ours (splat_raster) everywhere else.

Both take the same raw parameters and cameras and return the same outputs, so training,
densification and export do not know which one ran. Gaussians carry their look in their colours
and are not lit: every shading mode renders albedo (validation keeps training renders unlit).
"""
from __future__ import annotations

import sys

import torch

from dreamer.cameras import CameraBatch, get_rays, opencv_cameras
from dreamer.errors import UserError

from . import splat_raster
from .cuda_kernels import kernels_missing
from .volume import ShadingSpec


class GaussianRenderer(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg  # geometry.gaussians
        self._warned = False  # the fallback warning, once

    def update_occupancy(self, field, step: int, generator=None) -> None:
        """Nothing to update: Gaussians are culled per tile instead."""

    @staticmethod
    def check_backend(cfg, cuda: bool) -> None:
        """Up-front check of geometry.gaussians.backend (no kernel build)."""
        if cfg.backend == "gsplat" and not cuda:
            raise UserError("geometry.gaussians.backend=gsplat needs a CUDA GPU; use backend=torch or auto here")

    def prepare(self, device: torch.device, say=None) -> None:
        """Before training: build gsplat's kernels under a message, fall back or fail now."""
        self.use_gsplat(device, training=True, say=say)

    def use_gsplat(self, device: torch.device, training: bool | None = None, say=None) -> bool:
        """gsplat on CUDA (backend gsplat, or auto); ours elsewhere. Renders for people off CUDA (an
        export on another machine) use ours, which draws the same image; training there cannot."""
        backend = self.cfg.backend
        if training is None:
            training = torch.is_grad_enabled()
        if backend == "torch" or device.type != "cuda":
            if backend == "gsplat" and training:
                self.check_backend(self.cfg, cuda=False)
            return False
        reason = kernels_missing("gsplat", say)
        if reason is None:
            return True
        if backend == "gsplat":
            raise UserError(f"geometry.gaussians.backend=gsplat but gsplat's CUDA kernels are unavailable: {reason}; "
                            f"install the CUDA toolkit (nvcc) matching torch's CUDA, or set backend=auto to use "
                            f"dreamer's rasterizer")
        if not self._warned:
            self._warned = True
            print(f"warning: gsplat's CUDA kernels are unavailable ({reason}); rendering Gaussians with dreamer's "
                  f"PyTorch rasterizer (slower). Set geometry.gaussians.backend=torch to silence this",
                  file=sys.stderr, flush=True)
        return False

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
