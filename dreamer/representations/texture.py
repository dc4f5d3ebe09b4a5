"""The texture stage: a finished run's exported mesh at fixed geometry, with a UV atlas whose texels
are parameters optimized against the prior (DreamGaussian's and Magic3D's last step).

It starts from any run with a mesh (a mesh stage, a NeRF or Gaussians: its previous stage in
coarse/, or a finished run, `dreamer texture`): that run's own export
(largest piece, decimated to export.faces, xatlas UVs, its colour baked in at the texture's size)
fixes the geometry and the texture's first values. The mesh is drawn welded (seams are not
silhouettes to the antialiasing) and coloured through its UVs; it exports as it is, with the
optimized texture dilated across the chart borders.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from ..errors import UserError
from ..export.mesh import TexturedMesh, bake_coverage, dilate
from ..geometry.uv_texture import PyramidTexture, is_power_of_two
from renderers.mesh import check_backend, draw, draw_chunked
from renderers.mesh_nvdiffrast import prepare_nvdiffrast

from .base import Representation, check_one_rgb_particle, check_previous_run, coarse_folder

SIZE_ON_GPU, SIZE_ON_CPU = 1024, 512


def texture_size(cfg) -> int:
    """geometry.texture.size, with auto resolved for the machine the run starts on."""
    size = cfg.geometry.texture.size
    if size == "auto":
        return SIZE_ON_GPU if torch.cuda.is_available() else SIZE_ON_CPU
    return int(size)


class UVTexture(Representation):
    name = "texture"

    def __init__(self, cfg, particle: int = 0, start: TexturedMesh | None = None):
        super().__init__(cfg, particle)
        if start is None:  # a skeleton: the checkpoint's tensors resize it (_resize_to_checkpoint)
            start = TexturedMesh(np.zeros((3, 3), np.float32), np.array([[0, 1, 2]], np.int32),
                                 np.zeros((3, 2), np.float32), np.zeros((16, 16, 3), np.uint8),
                                 np.zeros((3, 3), np.float32))
        # Seam vertices are exact copies, so the unique positions are the welded mesh.
        positions, vmap = np.unique(start.vertices, axis=0, return_inverse=True)
        normals = np.zeros_like(positions)
        normals[vmap.reshape(-1)] = start.normals
        self.register_buffer("positions", torch.from_numpy(positions).float())
        self.register_buffer("normals", torch.from_numpy(normals).float())
        self.register_buffer("vmap", torch.from_numpy(vmap.reshape(-1)).long())
        self.register_buffer("uvs", torch.from_numpy(start.uvs).float())
        self.register_buffer("faces", torch.from_numpy(start.faces).long())  # into uvs (the split mesh)
        self.texture = PyramidTexture(start.texture.shape[0], torch.from_numpy(start.texture).float() / 255)
        self.color_channels = 3
        self._register_load_state_dict_pre_hook(self._resize_to_checkpoint)

    def _resize_to_checkpoint(self, state_dict, prefix, *args, **kwargs):
        """The mesh and the texture's size come from the run it started from: take the checkpoint's shapes."""
        for name in ("positions", "normals", "vmap", "uvs", "faces"):
            value = state_dict.get(prefix + name)
            if value is not None and value.shape != getattr(self, name).shape:
                setattr(self, name, torch.empty_like(value, device=getattr(self, name).device))
        level = state_dict.get(prefix + "texture.levels.0")
        if level is not None and level.shape[-1] != self.texture.size:
            self.texture = PyramidTexture(level.shape[-1]).to(self.positions.device)

    # -- the contract -----------------------------------------------------------------------------

    @classmethod
    def validate(cls, cfg) -> None:
        t = cfg.geometry.texture
        check_one_rgb_particle(cfg, "texture")
        check_backend(cfg.renderer, cuda=torch.cuda.is_available())
        if t.size != "auto" and not (float(t.size).is_integer() and is_power_of_two(int(t.size))):
            raise UserError(f"geometry.texture.size must be a power of two (256, 512, 1024, ...) or auto, got {t.size}")
        if t.init == "run":
            check_previous_run("texture", t.init_path, "mesh, NeRF or Gaussian", "; dreamer texture RUN_DIR sets it")

    @classmethod
    def previous_run(cls, cfg) -> str | None:
        t = cfg.geometry.texture
        if t.init == "run":
            return t.init_path
        return coarse_folder("texture", cfg)

    @classmethod
    def skeleton(cls, cfg, particle: int = 0) -> "UVTexture":
        return cls(cfg, particle)

    @classmethod
    def create_from(cls, cfg, previous: Representation, particle: int = 0) -> "UVTexture":
        """The previous run's export at this stage's export.faces, its colour baked at the texture's size."""
        if previous.color_channels != 3:
            raise UserError(f"the texture stage starts from a run with RGB colours, not {previous.color_channels} "
                            f"channels")
        export = copy.deepcopy(cfg.export)
        export.texture_size = texture_size(cfg)
        return cls(cfg, particle, start=previous.to_mesh(export))

    def parameter_groups(self) -> dict:
        return {"texture": list(self.texture.parameters())}

    def prepare_device(self, device, say=None) -> None:
        if self.cfg.renderer.backend == "nvdiffrast":
            prepare_nvdiffrast(device, say)

    def render(self, background, cams, shading, randomized=False, generator=None, bg_color=None) -> dict:
        return draw(self.positions, self.vmap[self.faces], self.texture, background, cams, shading, bg_color,
                    uv=(self.uvs, self.faces), normals=self.normals, backend=self.cfg.renderer.backend)

    @torch.no_grad()
    def render_chunked(self, background, cams, shading, bg_color=None) -> dict:
        return draw_chunked(self.positions, self.vmap[self.faces], self.texture, background, cams, shading,
                            bg_color, uv=(self.uvs, self.faces), normals=self.normals,
                            backend=self.cfg.renderer.backend)

    @torch.no_grad()
    def to_mesh(self, export_cfg) -> TexturedMesh:
        """The mesh as it is, with the optimized texture; texels outside every UV triangle take
        their nearest charts' colours so bilinear lookups at chart borders stay clean."""
        uvs, faces = self.uvs.cpu().numpy(), self.faces.cpu().numpy().astype(np.int32)
        image = self.texture.image().float().cpu().numpy()
        image = dilate(image, bake_coverage(uvs, faces, self.texture.size), iterations=8)
        texture = (image.clip(0, 1) * 255 + 0.5).astype(np.uint8)
        vmap = self.vmap.cpu().numpy()
        return TexturedMesh(self.positions.cpu().numpy()[vmap], faces, uvs, texture,
                            self.normals.cpu().numpy()[vmap])
