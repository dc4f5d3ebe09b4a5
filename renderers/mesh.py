"""Drawing a triangle mesh whose colour is a field queried at its surface points (the mesh stage).

Visibility, perspective-correct interpolation and edge antialiasing come from mesh_raster (pure
PyTorch, any device), or from nvdiffrast's kernels with backend="nvdiffrast" on CUDA
(mesh_nvdiffrast: the same questions answered, so the rest of the draw is shared). Each covered
pixel's 3D surface point is interpolated from the vertices and the colour field answers there;
shading uses the interpolated vertex normals. The background is composited before antialiasing,
so silhouette pixels blend the object into what is behind it and vertex positions get gradients
from the mask and the colour alike. Outputs are those of the other renderers: rgb, opacity, depth,
normal.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from dreamer.cameras import CameraBatch, get_rays, opencv_cameras
from dreamer.errors import UserError
from dreamer.gather import gather_rows

from .mesh_nvdiffrast import INSTALL, NvdiffrastRaster, nvdiffrast_missing
from .mesh_raster import antialias, barycentrics, interpolate, interpolate_depth, project, visible_triangles
from .volume import ShadingSpec


class TorchRaster:
    """One batch of cameras rasterized by our PyTorch path (the reference semantics)."""

    def __init__(self, vertices, faces, viewmats, Ks, height: int, width: int, tile_size: int = 8):
        self.faces = faces
        self.pix = project(vertices, viewmats, Ks)
        self.tri_id = visible_triangles(self.pix, faces, height, width, tile_size)
        self.bary = barycentrics(self.pix, faces, self.tri_id)

    def interpolate(self, attributes: torch.Tensor, faces: torch.Tensor | None = None) -> torch.Tensor:
        return interpolate(attributes, self.faces if faces is None else faces, self.tri_id, self.bary)

    def depth(self) -> torch.Tensor:
        return interpolate_depth(self.pix, self.faces, self.tri_id, self.bary)

    def antialias(self, image: torch.Tensor) -> torch.Tensor:
        return antialias(image, self.pix, self.faces, self.tri_id, self.bary)


def check_backend(cfg, cuda: bool) -> None:
    """Up-front check of renderer.backend for a mesh (raises UserError; builds nothing)."""
    if cfg.backend == "nerfacc":
        raise UserError("renderer.backend=nerfacc marches a NeRF's rays; a mesh is drawn with "
                        "renderer.backend=torch or nvdiffrast")
    if cfg.backend == "nvdiffrast":
        reason = nvdiffrast_missing(cuda)
        if reason:
            raise UserError(f"renderer.backend=nvdiffrast but {reason}; {INSTALL}")


def rasterizer(vertices, faces, cams: CameraBatch, backend: str = "torch", tile_size: int = 8):
    """The mesh rasterized for `cams`: nvdiffrast's when asked for and the mesh is on CUDA (renders
    for people off CUDA, such as an export on another machine, take our path, which draws the same)."""
    viewmats, Ks = (t.to(vertices.device) for t in opencv_cameras(cams))
    if backend == "nvdiffrast" and vertices.is_cuda:
        return NvdiffrastRaster(vertices, faces, viewmats, Ks, cams.height, cams.width)
    return TorchRaster(vertices, faces, viewmats, Ks, cams.height, cams.width, tile_size)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(V, 3) unit normals: the area-weighted sum of the faces around each vertex."""
    a, b, c = gather_rows(vertices, faces).unbind(-2)
    weighted = torch.cross(b - a, c - a, dim=-1)  # length = twice the area
    total = torch.zeros_like(vertices)
    for k in range(3):
        total = total.index_add(0, faces[:, k], weighted)
    return F.normalize(total, dim=-1)


def draw(vertices: torch.Tensor, faces: torch.Tensor, colour_fn, background, cams: CameraBatch,
         shading: ShadingSpec, bg_color=None, tile_size: int = 8, uv=None, normals=None,
         backend: str = "torch") -> dict:
    """The mesh seen by `cams`; `colour_fn` maps surface points (N, 3) to colours (N, C), or, given
    `uv` = (uvs (U, 2), uv_faces (F, 3)), texture coordinates (N, 2). A UV-unwrapped mesh is drawn
    welded (faces index shared positions, so seams are not silhouettes) with its UVs on their own
    faces. `normals` (V, 3): vertex normals to shade with (default: area-weighted from the faces).
    `backend`: torch or nvdiffrast (see `rasterizer`)."""
    device = vertices.device
    B, H, W = len(cams), cams.height, cams.width
    raster = rasterizer(vertices, faces, cams, backend, tile_size)
    covered = raster.tri_id >= 0
    mask = covered[..., None].to(vertices.dtype)
    points = raster.interpolate(vertices)
    normals = vertex_normals(vertices, faces) if normals is None else normals
    normal = F.normalize(raster.interpolate(normals), dim=-1) * mask
    channels = background.channels
    colour = vertices.new_zeros((B, H, W, channels))
    if covered.any():
        if shading.mode == "textureless":
            colour = mask.expand(B, H, W, channels)
        else:
            where = points if uv is None else raster.interpolate(uv[0], uv[1])
            colour = colour.index_put(torch.nonzero(covered, as_tuple=True), colour_fn(where[covered]))
        if shading.mode != "albedo":
            light = cams.light_pos.to(device)[:, None, None, :]
            lambert = (normal * F.normalize(light - points, dim=-1)).sum(-1, keepdim=True).clamp_min(0)
            colour = colour * (shading.ambient + shading.diffuse * lambert)
    if background.mlp is not None:  # only a learned background looks at ray directions
        dirs = get_rays(cams)[1].to(device)
    else:
        dirs = vertices.new_zeros((B, H, W, 3))
    bg = background(dirs, bg_color)
    image = torch.cat([torch.where(covered[..., None], colour, bg), mask], -1)
    image = raster.antialias(image)
    return {"rgb": image[..., :-1], "opacity": image[..., -1:], "depth": raster.depth(), "normal": normal,
            "orient": vertices.new_zeros(0)}


@torch.no_grad()
def draw_chunked(vertices, faces, colour_fn, background, cams: CameraBatch, shading: ShadingSpec, bg_color=None,
                 views_per_chunk: int = 8, uv=None, normals=None, backend: str = "torch") -> dict:
    """Renders of many views for people and metrics, a few views at a time."""
    outs = [draw(vertices, faces, colour_fn, background, cams.subset(slice(i, i + views_per_chunk)), shading, bg_color,
                 uv=uv, normals=normals, backend=backend)
            for i in range(0, len(cams), views_per_chunk)]
    return {k: torch.cat([o[k] for o in outs]) for k in ("rgb", "opacity", "depth", "normal")}
