"""Rasterizing triangle meshes in pure PyTorch, on any device.

Three steps, as differentiable rasterizers split them:
1. Visibility (no gradient): which triangle is nearest at each pixel centre. Triangles are binned
   into square tiles by their screen bounding boxes; each (triangle, tile) pair tests only the
   tile's pixels, and a per-pixel minimum over (depth, triangle) keys keeps the nearest. Never
   every triangle against every pixel; `visible_triangles_dense` does exactly that, as the
   reference the tiled path is tested against.
2. Interpolation (differentiable): perspective-correct barycentrics of each pixel centre in its
   triangle, recomputed from the projected vertices, so attributes and vertex positions get
   gradients.
3. Antialiasing (differentiable): where a triangle's edge passes between two neighbouring pixel
   centres, the pixel on the far side of the crossing takes a share of the near side's colour
   proportional to how far past the midpoint the edge lies (the analytic scheme of Laine et al.
   2020, "Modular primitives for high-performance differentiable rendering", written here from
   the paper's description). Only silhouette edges count (a border edge, or one between a face
   turned to the camera and one turned away), as the paper's topology step does: an inner edge of
   the visible surface is no discontinuity. The crossing moves with the vertices, so silhouettes
   give vertex positions a gradient through the mask and the colour.

Cameras are OpenCV pinholes (world-to-camera `viewmats` (B, 4, 4), intrinsics `Ks` (B, 3, 3)), as
dreamer.cameras.opencv_cameras makes them. Triangles with a vertex behind the near plane are
dropped (no clipping): meshes here are seen whole, from outside.
"""
from __future__ import annotations

import torch

from dreamer.gather import gather_pairs, gather_rows

NONE = -1  # triangle id of an uncovered pixel


def project(vertices: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor) -> torch.Tensor:
    """(V, 3) world points -> (B, V, 3): pixel x, pixel y (pixel centres at +0.5) and camera depth."""
    cam = torch.einsum("bij,vj->bvi", viewmats[:, :3, :3], vertices) + viewmats[:, None, :3, 3]
    z = cam[..., 2]
    x = Ks[:, None, 0, 0] * cam[..., 0] / z + Ks[:, None, 0, 2]
    y = Ks[:, None, 1, 1] * cam[..., 1] / z + Ks[:, None, 1, 2]
    return torch.stack([x, y, z], -1)


def _edges(tri: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Edge functions (..., 3) of points (px, py) against triangles tri (..., 3, 2): w_k is twice
    the signed area of the sub-triangle opposite vertex k, so w / sum(w) are barycentrics."""
    a, b, c = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]

    def edge(p, q):
        return (q[..., 0] - p[..., 0]) * (py - p[..., 1]) - (q[..., 1] - p[..., 1]) * (px - p[..., 0])
    return torch.stack([edge(b, c), edge(c, a), edge(a, b)], -1)


def _depth_keys(tri: torch.Tensor, z: torch.Tensor, ids: torch.Tensor, px, py):
    """Coverage of pixel centres by triangles, and an int64 key per covered test that orders by
    perspective-correct depth first, then triangle id (so ties resolve the same everywhere)."""
    w = _edges(tri, px, py)
    area = w.sum(-1)
    inside = ((w >= 0).all(-1) | (w <= 0).all(-1)) & (area.abs() > 1e-12)
    b = w / torch.where(area == 0, torch.ones_like(area), area)[..., None]
    depth = 1.0 / (b / z).sum(-1)  # z interpolates as 1/z in screen space
    # positive float32 bit patterns sort as the floats do
    bits = depth.float().clamp_min(0).view(torch.int32).to(torch.int64)
    return inside & (depth > 0), (bits << 32) | ids


def _screen(pix: torch.Tensor, faces: torch.Tensor, near: float):
    """Per camera: triangles' screen corners (B, F, 3, 2), depths (B, F, 3) and which are usable."""
    tri = pix[:, faces]  # (B, F, 3, 3)
    return tri[..., :2], tri[..., 2], (tri[..., 2] > near).all(-1)


@torch.no_grad()
def visible_triangles(pix: torch.Tensor, faces: torch.Tensor, height: int, width: int,
                      tile_size: int = 8, near: float = 1e-3, max_tests: int = 1 << 24) -> torch.Tensor:
    """(B, H, W) id of the nearest triangle at each pixel centre (NONE where uncovered)."""
    B, device = pix.shape[0], pix.device
    tri, z, ok = _screen(pix.detach(), faces, near)
    tw, th = -(-width // tile_size), -(-height // tile_size)
    out = torch.full((B, height * width), torch.iinfo(torch.int64).max, dtype=torch.int64, device=device)
    lo, hi = tri.amin(-2), tri.amax(-2)  # (B, F, 2) screen bounding boxes
    # tiles whose pixel centres the box can reach
    t0 = ((lo - 0.5) / tile_size).floor().clamp_min(0).long()
    t1 = torch.minimum(((hi - 0.5) / tile_size).floor().long(), torch.tensor([tw - 1, th - 1], device=device))
    n = ((t1 - t0 + 1).clamp_min(0).prod(-1)) * ok  # tiles per triangle (B, F)
    ar = torch.arange(tile_size, device=device)
    for b in range(B):
        ids = torch.nonzero(n[b] > 0).flatten()
        if ids.numel() == 0:
            continue
        counts = n[b, ids]
        owner = torch.repeat_interleave(ids, counts)  # one row per (triangle, tile)
        local = torch.arange(len(owner), device=device) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        span = (t1[b, owner, 0] - t0[b, owner, 0] + 1)
        tx = t0[b, owner, 0] + local % span
        ty = t0[b, owner, 1] + local // span
        per_chunk = max(1, max_tests // (tile_size * tile_size))
        for s in range(0, len(owner), per_chunk):
            o, x0, y0 = owner[s:s + per_chunk], tx[s:s + per_chunk] * tile_size, ty[s:s + per_chunk] * tile_size
            px = (x0[:, None, None] + ar[None, None, :]).expand(-1, tile_size, tile_size)
            py = (y0[:, None, None] + ar[None, :, None]).expand(-1, tile_size, tile_size)
            valid = (px < width) & (py < height)
            inside, key = _depth_keys(tri[b, o][:, None, None], z[b, o][:, None, None], o[:, None, None],
                                      px + 0.5, py + 0.5)
            hit = inside & valid
            out[b].scatter_reduce_(0, (py * width + px)[hit], key[hit], "amin")
    ids = out & 0xFFFFFFFF
    return torch.where(out == torch.iinfo(torch.int64).max, NONE, ids).reshape(B, height, width)


@torch.no_grad()
def visible_triangles_dense(pix: torch.Tensor, faces: torch.Tensor, height: int, width: int,
                            near: float = 1e-3, max_tests: int = 1 << 24) -> torch.Tensor:
    """The same as visible_triangles, testing every triangle against every pixel (the reference)."""
    B, device = pix.shape[0], pix.device
    tri, z, ok = _screen(pix.detach(), faces, near)
    jj, ii = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    px, py = ii.reshape(-1).float() + 0.5, jj.reshape(-1).float() + 0.5
    best = torch.full((B, height * width), torch.iinfo(torch.int64).max, dtype=torch.int64, device=device)
    ids = torch.arange(len(faces), device=device)
    chunk = max(1, max_tests // (height * width))  # faces per pass, each tested at every pixel
    for b in range(B):
        for s in range(0, len(faces), chunk):
            f = ids[s:s + chunk][ok[b, s:s + chunk]]
            inside, key = _depth_keys(tri[b, f][:, None], z[b, f][:, None], f[:, None], px[None], py[None])
            key = torch.where(inside, key, torch.iinfo(torch.int64).max)
            best[b] = torch.minimum(best[b], key.amin(0))
    out = best & 0xFFFFFFFF
    return torch.where(best == torch.iinfo(torch.int64).max, NONE, out).reshape(B, height, width)


def barycentrics(pix: torch.Tensor, faces: torch.Tensor, tri_id: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) perspective-correct barycentrics of each pixel centre in its triangle (zeros
    where uncovered), differentiable with respect to the projected vertices `pix`."""
    B, H, W = tri_id.shape
    device = pix.device
    jj, ii = torch.meshgrid(torch.arange(H, device=device), torch.arange(W, device=device), indexing="ij")
    covered = tri_id >= 0
    safe = tri_id.clamp_min(0)
    batch = torch.arange(B, device=device)[:, None, None, None].expand(B, H, W, 3)
    corners = gather_pairs(pix, batch, faces[safe])  # (B, H, W, 3, 3)
    w = _edges(corners[..., :2], (ii + 0.5).to(pix.dtype), (jj + 0.5).to(pix.dtype))
    # An uncovered pixel reads triangle 0 from outside it, where the perspective weights can sum to
    # 0; masking the result afterwards would still send 0 * inf = NaN back to the vertices. (A covered
    # pixel's triangle has a nonzero area: visibility drops degenerate ones.)
    w = torch.where(covered[..., None], w, torch.ones_like(w))
    b = w / w.sum(-1, keepdim=True)
    pc = b / corners[..., 2]  # perspective correction: weights over 1/z, renormalized
    pc = pc / pc.sum(-1, keepdim=True)
    return torch.where(covered[..., None], pc, torch.zeros_like(pc))


def interpolate(attributes: torch.Tensor, faces: torch.Tensor, tri_id: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
    """Vertex attributes (V, C) -> (B, H, W, C) at the pixel centres (zeros where uncovered)."""
    values = gather_rows(attributes, faces[tri_id.clamp_min(0)])  # (B, H, W, 3, C)
    return (bary[..., None] * values).sum(-2)


def interpolate_depth(pix: torch.Tensor, faces: torch.Tensor, tri_id: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 1) camera depth at the pixel centres (0 where uncovered), differentiable."""
    B, H, W = tri_id.shape
    batch = torch.arange(B, device=pix.device)[:, None, None, None].expand(B, H, W, 3)
    z = gather_pairs(pix, batch, faces[tri_id.clamp_min(0)])[..., 2]
    return (bary * z).sum(-1, keepdim=True) * (tri_id >= 0)[..., None]


def antialias(image: torch.Tensor, pix: torch.Tensor, faces: torch.Tensor, tri_id: torch.Tensor,
              bary: torch.Tensor | None = None) -> torch.Tensor:
    """Blend across silhouette and occlusion edges (see the module docstring). `image` (B, H, W, C)
    includes every channel to antialias (colour, and opacity for the mask). `bary`: the draw's
    barycentrics, if it has them (else computed again, to order the pixels by depth)."""
    out = image
    depth = _pixel_depth(pix, faces, tri_id, bary)
    silhouette = _silhouette_edges(pix, faces)
    for axis in (2, 1):  # horizontal neighbours, then vertical ones
        out = out + _edge_deltas(image, pix, faces, tri_id, depth, silhouette, axis)
    return out


def opposite_faces(faces: torch.Tensor) -> torch.Tensor:
    """(F, 3): the face across the edge opposite each corner (the edge joining the other two), NONE
    on a border edge."""
    a, b = faces[:, [1, 2, 0]].reshape(-1), faces[:, [2, 0, 1]].reshape(-1)
    n = int(faces.max()) + 1 if len(faces) else 1
    key = torch.minimum(a, b) * n + torch.maximum(a, b)
    order = torch.argsort(key, stable=True)
    same = key[order][1:] == key[order][:-1]
    first, second = order[:-1][same], order[1:][same]
    out = torch.full_like(key, NONE)
    out[first], out[second] = second // 3, first // 3
    return out.reshape(-1, 3)


@torch.no_grad()
def _silhouette_edges(pix: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(B, F, 3) whether the edge opposite each corner is a silhouette in that view: a border edge,
    or one whose two faces turn different ways on screen (one seen from the front, one from the back).
    Only these edges are antialiased: an edge inside the visible surface is no discontinuity."""
    tri = pix[:, faces][..., :2]  # (B, F, 3, 2)
    e1, e2 = tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0]
    facing = (e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]) > 0  # (B, F)
    across = opposite_faces(faces)
    other = facing[:, across.clamp_min(0)]  # (B, F, 3)
    return (across < 0) | (other != facing[..., None])


def _pixel_depth(pix, faces, tri_id, bary=None) -> torch.Tensor:
    """Camera depth at each pixel centre, +inf where uncovered (no gradient: it only orders)."""
    with torch.no_grad():
        bary = barycentrics(pix.detach(), faces, tri_id) if bary is None else bary.detach()
        z = (bary * pix.detach()[torch.arange(pix.shape[0], device=pix.device)[:, None, None, None],
                                 faces[tri_id.clamp_min(0)]][..., 2]).sum(-1)
        return torch.where(tri_id >= 0, z, torch.full_like(z, float("inf")))


def _edge_deltas(image, pix, faces, tri_id, depth, silhouette, axis: int) -> torch.Tensor:
    """Colour changes from the pixel pairs (p, p + 1 along `axis`) that an edge separates."""
    B, H, W, C = image.shape
    n = tri_id.shape[axis]
    first = tri_id.narrow(axis, 0, n - 1)
    second = tri_id.narrow(axis, 1, n - 1)
    differ = (first != second) & ((first >= 0) | (second >= 0))
    if not differ.any():
        return torch.zeros_like(image)
    d1, d2 = depth.narrow(axis, 0, n - 1), depth.narrow(axis, 1, n - 1)
    front_is_first = d1 <= d2
    idx = torch.nonzero(differ)  # (K, 3): b, row, col of the first pixel
    b, r, c = idx.unbind(-1)
    f_first = front_is_first[b, r, c]
    r2, c2 = (r, c + 1) if axis == 2 else (r + 1, c)
    front_tri = torch.where(f_first, first[b, r, c], second[b, r, c])
    # pixel centres of the front pixel and of the other one
    fx = torch.where(f_first, c, c2).to(pix.dtype) + 0.5
    fy = torch.where(f_first, r, r2).to(pix.dtype) + 0.5
    ox = torch.where(f_first, c2, c).to(pix.dtype) + 0.5
    oy = torch.where(f_first, r2, r).to(pix.dtype) + 0.5
    corners = gather_pairs(pix, b[:, None].expand(-1, 3), faces[front_tri])[..., :2]  # (K, 3, 2), with gradient
    e_f = _edges(corners, fx, fy)  # (K, 3)
    e_o = _edges(corners, ox, oy)
    sign = torch.sign(e_f.sum(-1, keepdim=True)).detach()  # orientation: inside is where sign*e >= 0
    e_f, e_o = e_f * sign, e_o * sign
    leaves = (e_f >= 0) & (e_o < 0)  # this edge is crossed going from the front pixel to the other
    s = e_f / (e_f - e_o).where(leaves, torch.ones_like(e_o))  # crossing, 0 at the front pixel, 1 at the other
    s = torch.where(leaves, s, torch.full_like(s, 2.0))
    s_min, k = s.min(-1)
    # Use the pair only if its axis is the one more across the edge (no double counting).
    a_idx = torch.tensor([[1, 2], [2, 0], [0, 1]], device=pix.device)[k]  # the crossed edge's endpoints
    p0 = corners[torch.arange(len(k)), a_idx[:, 0]]
    p1 = corners[torch.arange(len(k)), a_idx[:, 1]]
    dx, dy = (p1 - p0).detach().unbind(-1)
    across = (dy.abs() >= dx.abs()) if axis == 2 else (dx.abs() > dy.abs())
    # ... and only where the crossed edge is a silhouette (an inner edge of the front surface would
    # take coverage from a pixel that is fully covered).
    use = (s_min <= 1) & across & silhouette[b, front_tri, k]
    alpha = (s_min - 0.5).where(use, torch.zeros_like(s_min))
    # Gathers and scatters over flat pixel indices, in index order: a pixel is in several pairs.
    flat = image.reshape(-1, C)
    at = lambda rows, cols: (b * H + rows) * W + cols  # noqa: E731
    first_colour, second_colour = gather_rows(flat, at(r, c)), gather_rows(flat, at(r2, c2))
    front_colour = torch.where(f_first[:, None], first_colour, second_colour)
    other_colour = torch.where(f_first[:, None], second_colour, first_colour)
    # alpha > 0: the front surface reaches past the midpoint into the other pixel; alpha < 0: it
    # stops short of the midpoint and the front pixel is only partly covered.
    delta_other = alpha.clamp_min(0)[:, None] * (front_colour - other_colour)
    delta_front = (-alpha).clamp_min(0)[:, None] * (other_colour - front_colour)
    other_at = at(torch.where(f_first, r2, r), torch.where(f_first, c2, c))
    front_at = at(torch.where(f_first, r, r2), torch.where(f_first, c, c2))
    out = torch.zeros_like(flat).index_add(0, torch.cat([other_at, front_at]), torch.cat([delta_other, delta_front]))
    return out.reshape(image.shape)


def face_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(F, 3) unit normals, by the right-hand rule of each face's vertex order."""
    a, b, c = gather_rows(vertices, faces).unbind(-2)
    return torch.nn.functional.normalize(torch.cross(b - a, c - a, dim=-1), dim=-1)


def rasterize(vertices: torch.Tensor, faces: torch.Tensor, attributes: torch.Tensor, viewmats: torch.Tensor,
              Ks: torch.Tensor, height: int, width: int, tile_size: int = 8) -> dict:
    """The mesh seen by B cameras, as the other renderers' outputs are shaped:
    attributes (B, H, W, C) and opacity (B, H, W, 1), both antialiased; depth (B, H, W, 1), the
    camera depth (0 where uncovered); normal (B, H, W, 3), the world face normal (0 where
    uncovered); tri_id (B, H, W) (NONE where uncovered). Vertex positions get gradients from the
    interpolation and, at edges, from the antialiasing; attributes from both."""
    pix = project(vertices, viewmats, Ks)
    tri_id = visible_triangles(pix, faces, height, width, tile_size)
    bary = barycentrics(pix, faces, tri_id)
    covered = (tri_id >= 0)[..., None].to(attributes.dtype)
    values = torch.cat([interpolate(attributes, faces, tri_id, bary), covered], -1)
    values = antialias(values, pix, faces, tri_id, bary)
    depth = interpolate_depth(pix, faces, tri_id, bary)
    normal = face_normals(vertices, faces)[tri_id.clamp_min(0)] * covered
    return {"attributes": values[..., :-1], "opacity": values[..., -1:], "depth": depth * covered,
            "normal": normal, "tri_id": tri_id}
