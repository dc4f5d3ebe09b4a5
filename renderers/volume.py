"""Volume rendering of a radiance field (pure PyTorch; the reference path).

Samples lie at a fixed step inside the bounding sphere, jittered during training; samples in
empty occupancy cells are dropped before the field is queried, so the cost follows the occupied
volume, not the full ray count times samples. Compositing uses nerfacc's dense helper, which runs
on any device. Shading is deferred: one normal per covered ray, at its expected surface point.
With renderer.backend=nerfacc on a CUDA GPU, nerfacc's kernels march the same occupancy grid and
composite packed samples instead; the PyTorch path is the reference it is tested against.
"""
from __future__ import annotations

from dataclasses import dataclass

import nerfacc
import torch

from dreamer import draws
from dreamer.cameras import CameraBatch, get_rays, sphere_interval
from dreamer.errors import UserError
from .cuda_kernels import kernels_missing
from .occupancy import OccupancyGrid

@dataclass
class ShadingSpec:
    mode: str  # albedo | shaded | textureless
    ambient: float = 0.3
    diffuse: float = 0.7


class VolumeRenderer(torch.nn.Module):
    def __init__(self, cfg, radius: float):
        super().__init__()
        self.cfg, self.radius = cfg, radius
        self.step_size = 2 * radius / cfg.num_samples_per_ray
        self.grid = OccupancyGrid(radius, cfg.occupancy_resolution, cfg.occupancy_threshold, self.step_size)
        # nerfacc's marcher over self.grid per device, kept in a dict so it stays out of checkpoints.
        self._estimators: dict = {}

    def update_occupancy(self, field, step: int, generator=None) -> None:
        if step >= self.cfg.occupancy_warmup_steps and step % self.cfg.occupancy_update_every == 0:
            self.grid.update(field.density, generator)

    def forward(self, field, background, cams: CameraBatch, shading: ShadingSpec,
                randomized: bool = False, generator=None, bg_color=None) -> dict:
        origins, dirs = get_rays(cams)
        B, H, W, _ = dirs.shape
        device = next(field.parameters()).device
        o, d = origins.reshape(-1, 3).to(device), dirs.reshape(-1, 3).to(device)
        light = cams.light_pos.to(device)[:, None, :].expand(B, H * W, 3).reshape(-1, 3)
        out = self._render_rays(field, o, d, light, shading, randomized, generator)
        bg = background(d, bg_color)
        rgb = out["rgb"] + (1 - out["opacity"]) * bg
        result = {"rgb": rgb, "opacity": out["opacity"], "depth": out["depth"], "normal": out["normal"]}
        result = {k: v.reshape(B, H, W, -1) for k, v in result.items()}
        result["orient"] = out.get("orient", torch.zeros(0, device=device))
        return result

    @staticmethod
    def check_backend(cfg, cuda: bool) -> None:
        """Up-front check of renderer.backend (no kernel build)."""
        if cfg.backend == "nvdiffrast":
            raise UserError("renderer.backend=nvdiffrast draws meshes (--representation mesh, dreamer refine or "
                            "dreamer texture); a NeRF uses renderer.backend=torch or nerfacc")
        if cfg.backend == "nerfacc" and not cuda:
            raise UserError("renderer.backend=nerfacc needs a CUDA GPU; use renderer.backend=torch on this machine")

    def prepare(self, device: torch.device, say=None) -> None:
        """Before training: build nerfacc's kernels under a message, or fail now."""
        self.use_nerfacc(device, training=True, say=say)

    def use_nerfacc(self, device, training: bool | None = None, say=None) -> bool:
        """nerfacc's marcher when renderer.backend asks and the rays are on CUDA. Renders for people
        off CUDA (an export on another machine) take the PyTorch path, which draws the same image."""
        if self.cfg.backend != "nerfacc":
            return False
        if training is None:
            training = torch.is_grad_enabled()
        if device.type != "cuda":
            if training:
                self.check_backend(self.cfg, cuda=False)
            return False
        reason = kernels_missing("nerfacc", say)
        if reason:
            raise UserError(f"renderer.backend=nerfacc but nerfacc's CUDA kernels are unavailable: {reason}; install "
                            f"the CUDA toolkit (nvcc) matching torch's CUDA, or set renderer.backend=torch")
        return True

    def _render_rays(self, field, o, d, light, shading, randomized, generator):
        if self.use_nerfacc(o.device):
            out = self._nerfacc_rays(field, o, d, randomized)
        else:
            out = self._torch_rays(field, o, d, randomized, generator)
        if shading.mode == "textureless":
            out["rgb"] = out["opacity"].expand(-1, out["rgb"].shape[-1])
        if shading.mode != "albedo" or not torch.is_grad_enabled():
            self._deferred_shading(field, o, d, light, shading, out)
        return out

    def _nerfacc_rays(self, field, o, d, randomized):
        """CUDA path: nerfacc marches the same occupancy grid (its kernels skip empty cells and
        stop early), then composites packed samples."""
        if o.device not in self._estimators:
            r = self.radius
            self._estimators[o.device] = nerfacc.OccGridEstimator([-r, -r, -r, r, r, r], self.grid.res).to(o.device)
        est = self._estimators[o.device]
        est.binaries = self.grid.occupied[None].to(o.device)
        t0, t1, hits = sphere_interval(o, d, self.radius)
        t1 = torch.where(hits, t1, t0)

        def sigma_fn(t_starts, t_ends, ray_indices):
            pts = o[ray_indices] + d[ray_indices] * ((t_starts + t_ends) / 2)[:, None]
            return field.density(pts)
        ray_idx, t_starts, t_ends = est.sampling(o, d, sigma_fn=sigma_fn, t_min=t0, t_max=t1,
                                                 render_step_size=self.step_size, stratified=randomized)
        N = o.shape[0]
        mid = (t_starts + t_ends) / 2
        sigma, albedo = field.query(o[ray_idx] + d[ray_idx] * mid[:, None])
        weights, _, _ = nerfacc.render_weight_from_density(t_starts, t_ends, sigma, ray_indices=ray_idx, n_rays=N)
        acc = lambda v: nerfacc.accumulate_along_rays(weights, v, ray_indices=ray_idx, n_rays=N)  # noqa: E731
        opacity = acc(None)
        return {"opacity": opacity, "depth": acc(mid[:, None]), "rgb": acc(albedo),
                "normal": torch.zeros((N, 3), device=o.device, dtype=o.dtype)}

    def _torch_rays(self, field, o, d, randomized, generator):
        N, S = o.shape[0], self.cfg.num_samples_per_ray
        t0, t1, hits = sphere_interval(o, d, self.radius)
        jitter = draws.rand((N, S), generator, o) if randomized else o.new_full((N, S), 0.5)
        t_start = t0[:, None] + (torch.arange(S, device=o.device)[None] + jitter - 0.5) * self.step_size
        t_start = t_start.clamp_min(0)
        t_end = t_start + self.step_size
        mid = (t_start + t_end) / 2
        pts = o[:, None] + d[:, None] * mid[..., None]
        keep = hits[:, None] & (mid < t1[:, None]) & self.grid.query(pts)
        idx = keep.nonzero(as_tuple=True)
        sigma = torch.zeros((N, S), device=o.device, dtype=o.dtype)
        channels = getattr(field, "color_channels", 3)
        albedo = torch.zeros((N, S, channels), device=o.device, dtype=o.dtype)
        if idx[0].numel():
            s, a = field.query(pts[idx])
            sigma = sigma.index_put(idx, s)
            albedo = albedo.index_put(idx, a)
        weights, _, _ = nerfacc.render_weight_from_density(t_start, t_end, sigma)
        opacity = weights.sum(-1, keepdim=True)
        depth = (weights * mid).sum(-1, keepdim=True)
        rgb = (weights[..., None] * albedo).sum(1)
        return {"opacity": opacity, "depth": depth, "normal": torch.zeros((N, 3), device=o.device, dtype=o.dtype),
                "rgb": rgb}

    @staticmethod
    def _deferred_shading(field, o, d, light, shading, out):
        """Shade each ray once, at its expected surface point, instead of at every sample.

        The normal there is -grad(sigma) by finite differences (6 field queries per covered ray
        rather than per sample), and gradients still reach the density through it; this is what
        makes shaded passes affordable on a CPU.
        """
        opacity = out["opacity"][:, 0]
        rays = (opacity > 1e-2).nonzero().squeeze(-1)
        if rays.numel() == 0:
            return
        surface = o[rays] + d[rays] * (out["depth"][rays] / opacity[rays, None])
        normal = field.normals(surface)
        out["normal"] = out["normal"].index_put((rays,), normal * opacity[rays, None])
        out["orient"] = opacity[rays] * (normal * d[rays]).sum(-1).clamp_min(0) ** 2
        if shading.mode != "albedo":
            light_dir = torch.nn.functional.normalize(light[rays] - surface, dim=-1)
            lambert = (normal * light_dir).sum(-1, keepdim=True).clamp_min(0)
            factor = torch.ones_like(out["rgb"]).index_put((rays,), shading.ambient + shading.diffuse * lambert)
            out["rgb"] = out["rgb"] * factor

    @torch.no_grad()
    def render_chunked(self, field, background, cams: CameraBatch, shading: ShadingSpec, bg_color=None) -> dict:
        """Evaluation renders of many views without building one huge graph."""
        outs = []
        per_image = cams.height * cams.width
        n_img = max(1, self.cfg.eval_chunk_size // per_image)
        for i in range(0, len(cams), n_img):
            outs.append(self(field, background, cams.subset(slice(i, i + n_img)), shading, bg_color=bg_color))
        return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}
