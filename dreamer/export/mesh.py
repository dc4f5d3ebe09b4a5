"""From a density field to a closed, decimated, UV-unwrapped triangle mesh with smooth vertex
normals and a baked texture."""
from __future__ import annotations

from dataclasses import dataclass

import mcubes
import numpy as np
import torch
import trimesh
import xatlas
from scipy import ndimage

from ..errors import UserError
from .solid import clean_solid, surface_field
from .vertex_spacing import relative_tolerance, spaced_vertices


@dataclass
class TexturedMesh:
    vertices: np.ndarray  # (V, 3) float32, world units, +Y up, front +Z
    faces: np.ndarray  # (F, 3) int32, counter-clockwise seen from outside
    uvs: np.ndarray  # (V, 2) float32, origin bottom-left (OBJ convention)
    texture: np.ndarray  # (S, S, 3) uint8, row 0 = top (v = 1)
    normals: np.ndarray  # (V, 3) float32 unit vertex normals, equal on both sides of a UV seam

    def transformed(self, scale: float, offset) -> TexturedMesh:
        """The mesh scaled by `scale` (> 0) and then moved by `offset`: normals are unchanged."""
        vertices = (self.vertices * scale + np.asarray(offset, np.float32)).astype(np.float32)
        return TexturedMesh(vertices, self.faces, self.uvs, self.texture, self.normals)


@torch.no_grad()
def density_grid(density_fn, radius: float, resolution: int, chunk: int = 262144) -> np.ndarray:
    axis = torch.linspace(-radius, radius, resolution)
    pts = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    vals = torch.cat([density_fn(p) for p in pts.split(chunk)])
    return vals.reshape(resolution, resolution, resolution).float().numpy()


def auto_threshold(grid: np.ndarray, voxel: float) -> float:
    """The density level whose solid matches the field's own silhouettes.

    Along each axis the field has an opacity 1 - exp(-sum(sigma) * voxel) per line; a level's solid
    covers a line if any voxel on it exceeds the level. The chosen level maximizes the mean IoU of
    the two masks (opacity > 0.5 versus covered) over the three axes.
    """
    peak = float(grid.max())
    if peak <= 0:
        return 1.0
    opaque = [1 - np.exp(-grid.sum(axis) * voxel) > 0.5 for axis in range(3)]
    best, best_iou = peak / 2, -1.0
    for level in np.geomspace(peak * 1e-3, peak * 0.95, 48):
        solid = grid > level
        ious = []
        for axis in range(3):
            covered = solid.any(axis)
            union = (covered | opaque[axis]).sum()
            ious.append((covered & opaque[axis]).sum() / union if union else 0.0)
        if np.mean(ious) > best_iou:
            best, best_iou = float(level), float(np.mean(ious))
    return best


def extract_mesh(density_fn, radius: float, resolution: int, threshold, smoothing: float = 0.0) -> trimesh.Trimesh:
    """The closed surface of the cleaned solid (dreamer/export/solid.py) at `threshold` ("auto": see
    auto_threshold). `smoothing` (voxels) blurs the density first: a field made of thin layers
    (Gaussians) becomes one slab instead of a stack of flakes."""
    grid = density_grid(density_fn, radius, resolution)
    if not np.isfinite(grid).all():
        raise UserError("the density field holds NaN/Inf values; the run diverged, resume from an earlier checkpoint")
    if smoothing > 0:
        grid = ndimage.gaussian_filter(grid, smoothing, mode="constant")
    if threshold == "auto":
        threshold = auto_threshold(grid, 2 * radius / (resolution - 1))
    if grid.max() <= threshold:
        raise UserError(f"the density field never exceeds the isosurface threshold {threshold} "
                        f"(max {grid.max():.2f}); lower geometry.isosurface_threshold or train longer")
    field = surface_field(grid, threshold, clean_solid(grid > threshold))
    # A ring of empty voxels around the grid: the renderer sees nothing outside the ball, so a
    # surface that reaches the grid's edge is closed there instead of left open (or missing).
    verts, faces = mcubes.marching_cubes(np.pad(field, 1, constant_values=-np.abs(field).max()), 0.0)
    verts = (verts - 1) / (resolution - 1) * 2 * radius - radius
    mesh = trimesh.Trimesh(verts, faces, process=True)
    if mesh.volume < 0:  # keep faces wound outward whatever the marching-cubes convention
        mesh.invert()
    return mesh


def decimate(mesh: trimesh.Trimesh, faces: int) -> trimesh.Trimesh:
    """Quadric decimation to `faces`; the collapses can pinch off a sliver (two triangles back to
    back), so only the largest piece is kept. They can also fold the surface onto itself (an edge
    shared by four faces: measured on a resolution-64 mesh-stage car), so a closed manifold that
    would not stay one is kept undecimated: a larger file is better than a broken asset."""
    if len(mesh.faces) <= faces:
        return mesh
    decimated = largest_part(mesh.simplify_quadric_decimation(face_count=faces))
    # trimesh's watertight: every edge in exactly two faces (a fold's edge in four is not)
    return decimated if decimated.is_watertight or not mesh.is_watertight else mesh


def export_surface(mesh: trimesh.Trimesh, faces: int) -> trimesh.Trimesh:
    """The surface an export writes: decimated to `faces`, then with its vertices kept 1e-4 of its
    size apart, so a weld by distance in Blender or an engine leaves it closed (vertex_spacing.py)."""
    decimated = decimate(mesh, faces)
    return spaced_vertices(decimated, relative_tolerance(decimated))


def largest_part(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The connected piece with the most faces."""
    parts = mesh.split(only_watertight=False)
    return max(parts, key=lambda m: len(m.faces)) if len(parts) > 1 else mesh


def unwrap(mesh: trimesh.Trimesh):
    """(vertices, faces, uvs, normals) with UV seams split; the normals are the welded mesh's
    (area-weighted face normals), so shading stays continuous across the seams."""
    vmapping, indices, uvs = xatlas.parametrize(mesh.vertices.astype(np.float32), mesh.faces.astype(np.uint32))
    normals = np.asarray(mesh.vertex_normals, np.float32)[vmapping]
    return mesh.vertices[vmapping].astype(np.float32), indices.astype(np.int32), uvs.astype(np.float32), normals


def _rasterize_uv(uvs: np.ndarray, faces: np.ndarray, size: int):
    """For each texel centre covered by a UV triangle: (texel rows, cols, face ids, barycentrics)."""
    px = np.stack([uvs[:, 0] * size, (1 - uvs[:, 1]) * size], -1)  # x = column, y = row
    tri = px[faces]  # (F, 3, 2)
    lo = np.floor(tri.min(1) - 0.5).astype(np.int64).clip(0, size - 1)
    hi = np.ceil(tri.max(1) - 0.5).astype(np.int64).clip(0, size - 1)
    extent = (hi - lo + 1).max(1)
    order = np.argsort(extent)
    rows, cols, fids, bary = [], [], [], []
    for chunk in np.array_split(order, max(1, len(order) // 2048)):
        k = int(extent[chunk].max())
        oy, ox = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
        cy = lo[chunk, 1][:, None] + oy.reshape(1, -1)
        cx = lo[chunk, 0][:, None] + ox.reshape(1, -1)
        p = np.stack([cx + 0.5, cy + 0.5], -1)  # texel centres (C, K, 2)
        a, b, c = (tri[chunk, i][:, None, :] for i in range(3))
        v0, v1, v2 = b - a, c - a, p - a
        d00, d01, d11 = (v0 * v0).sum(-1), (v0 * v1).sum(-1), (v1 * v1).sum(-1)
        d20, d21 = (v2 * v0).sum(-1), (v2 * v1).sum(-1)
        den = d00 * d11 - d01 * d01
        den = np.where(np.abs(den) < 1e-12, 1e-12, den)
        w1 = (d11 * d20 - d01 * d21) / den
        w2 = (d00 * d21 - d01 * d20) / den
        w0 = 1 - w1 - w2
        inside = (w0 >= -1e-4) & (w1 >= -1e-4) & (w2 >= -1e-4) & (cy <= hi[chunk, 1][:, None]) \
            & (cx <= hi[chunk, 0][:, None])
        ci, ki = np.nonzero(inside)
        rows.append(cy[ci, ki])
        cols.append(cx[ci, ki])
        fids.append(chunk[ci])
        bary.append(np.stack([w0[ci, ki], w1[ci, ki], w2[ci, ki]], -1))
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(fids), np.concatenate(bary)


def dilate(image: np.ndarray, filled: np.ndarray, iterations: int) -> np.ndarray:
    """Grow filled texels into empty ones so bilinear lookups at chart borders stay clean."""
    img, mask = image.astype(np.float32), filled.astype(np.float32)
    for _ in range(iterations):
        if mask.all():
            break
        acc, cnt = np.zeros_like(img), np.zeros_like(mask)
        for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)):
            acc += np.roll(img * mask[..., None], (dy, dx), (0, 1))
            cnt += np.roll(mask, (dy, dx), (0, 1))
        grow = (mask == 0) & (cnt > 0)
        img[grow] = acc[grow] / cnt[grow][:, None]
        mask = np.maximum(mask, grow.astype(np.float32))
    img[mask == 0] = img[mask > 0].mean(0) if (mask > 0).any() else 0.5
    return img


def bake_coverage(uvs: np.ndarray, faces: np.ndarray, size: int) -> np.ndarray:
    """(size, size) whether each texel centre lies in a UV triangle."""
    rows, cols, _, _ = _rasterize_uv(uvs, faces, size)
    filled = np.zeros((size, size), bool)
    filled[rows, cols] = True
    return filled


@torch.no_grad()
def bake_texture(vertices, faces, uvs, colour_fn, size: int) -> np.ndarray:
    rows, cols, fids, bary = _rasterize_uv(uvs, faces, size)
    points = (vertices[faces[fids]] * bary[..., None]).sum(1)
    colours = torch.cat([colour_fn(torch.from_numpy(p).float()) for p in np.array_split(points, max(1, len(points) // 65536))])
    image = np.zeros((size, size, 3), np.float32)
    filled = np.zeros((size, size), bool)
    image[rows, cols] = colours.clamp(0, 1).numpy()
    filled[rows, cols] = True
    image = dilate(image, filled, iterations=8)
    return (image.clip(0, 1) * 255 + 0.5).astype(np.uint8)


def textured_mesh_from_field(density_fn, colour_fn, radius: float, resolution: int, threshold: float,
                             faces: int, texture_size: int, smoothing: float = 0.0) -> TexturedMesh:
    mesh = export_surface(extract_mesh(density_fn, radius, resolution, threshold, smoothing), faces)
    vertices, tri, uvs, normals = unwrap(mesh)
    texture = bake_texture(vertices, tri, uvs, colour_fn, texture_size)
    if not (np.isfinite(vertices).all() and np.isfinite(uvs).all()):
        raise UserError("export produced non-finite vertices; the run diverged, resume from an earlier checkpoint")
    return TexturedMesh(vertices, tri, uvs, texture, normals)
