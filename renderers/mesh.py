"""Drawing a triangle mesh whose colour is a field queried at its surface points (the mesh stage).

Visibility, perspective-correct interpolation and edge antialiasing come from mesh_raster (pure
PyTorch, any device). Each covered pixel's 3D surface point is interpolated from the vertices and
the colour field answers there; shading uses the interpolated vertex normals. The background is
composited before antialiasing, so silhouette pixels blend the object into what is behind it and
vertex positions get gradients from the mask and the colour alike. Outputs are those of the other
renderers: rgb, opacity, depth, normal.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from dreamer.cameras import CameraBatch, get_rays, opencv_cameras
from dreamer.gather import gather_rows

from .mesh_raster import antialias, barycentrics, interpolate, interpolate_depth, project, visible_triangles
from .volume import ShadingSpec


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(V, 3) unit normals: the area-weighted sum of the faces around each vertex."""
    a, b, c = gather_rows(vertices, faces).unbind(-2)
    weighted = torch.cross(b - a, c - a, dim=-1)  # length = twice the area
    total = torch.zeros_like(vertices)
    for k in range(3):
        total = total.index_add(0, faces[:, k], weighted)
    return F.normalize(total, dim=-1)


def draw(vertices: torch.Tensor, faces: torch.Tensor, colour_fn, background, cams: CameraBatch,
         shading: ShadingSpec, bg_color=None, tile_size: int = 8, uv=None, normals=None) -> dict:
    """The mesh seen by `cams`; `colour_fn` maps surface points (N, 3) to colours (N, C), or, given
    `uv` = (uvs (U, 2), uv_faces (F, 3)), texture coordinates (N, 2). A UV-unwrapped mesh is drawn
    welded (faces index shared positions, so seams are not silhouettes) with its UVs on their own
    faces. `normals` (V, 3): vertex normals to shade with (default: area-weighted from the faces)."""
    device = vertices.device
    viewmats, Ks = (t.to(device) for t in opencv_cameras(cams))
    B, H, W = len(cams), cams.height, cams.width
    pix = project(vertices, viewmats, Ks)
    tri_id = visible_triangles(pix, faces, H, W, tile_size)
    bary = barycentrics(pix, faces, tri_id)
    covered = tri_id >= 0
    mask = covered[..., None].to(vertices.dtype)
    points = interpolate(vertices, faces, tri_id, bary)
    normals = vertex_normals(vertices, faces) if normals is None else normals
    normal = F.normalize(interpolate(normals, faces, tri_id, bary), dim=-1) * mask
    channels = background.channels
    colour = vertices.new_zeros((B, H, W, channels))
    if covered.any():
        if shading.mode == "textureless":
            colour = mask.expand(B, H, W, channels)
        else:
            where = points if uv is None else interpolate(uv[0], uv[1], tri_id, bary)
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
    image = antialias(image, pix, faces, tri_id)
    depth = interpolate_depth(pix, faces, tri_id, bary)
    return {"rgb": image[..., :-1], "opacity": image[..., -1:], "depth": depth, "normal": normal,
            "orient": vertices.new_zeros(0)}


@torch.no_grad()
def draw_chunked(vertices, faces, colour_fn, background, cams: CameraBatch, shading: ShadingSpec, bg_color=None,
                 views_per_chunk: int = 8, uv=None, normals=None) -> dict:
    """Renders of many views for people and metrics, a few views at a time."""
    outs = [draw(vertices, faces, colour_fn, background, cams.subset(slice(i, i + views_per_chunk)), shading, bg_color,
                 uv=uv, normals=normals)
            for i in range(0, len(cams), views_per_chunk)]
    return {k: torch.cat([o[k] for o in outs]) for k in ("rgb", "opacity", "depth", "normal")}
