"""Test helper: draw a GLB as it reads back (through trimesh, an independent reader) by splatting
dense textured surface samples with a z-buffer, with dreamer's camera conventions."""
import numpy as np
import trimesh


def splat_glb(path, cams, n_points=400_000, placed=None):
    """Surface samples of a GLB drawn as points; `placed` (a Placement) is undone first, taking an
    export at its real-world size and pivot back to the field's units."""
    mesh = trimesh.load(path).to_geometry()
    pts, fidx = trimesh.sample.sample_surface(mesh, n_points, seed=0)
    bary = trimesh.triangles.points_to_barycentric(mesh.triangles[fidx], pts)
    uv = (mesh.visual.uv[mesh.faces[fidx]] * bary[..., None]).sum(1)
    tex = np.asarray(mesh.visual.material.baseColorTexture.convert("RGB"), np.float32) / 255
    S = tex.shape[0]
    if placed is not None:
        pts = (pts - np.asarray(placed.offset)) / placed.scale
    colour = tex[np.clip(((1 - uv[:, 1]) * S).astype(int), 0, S - 1), np.clip((uv[:, 0] * S).astype(int), 0, S - 1)]
    H, W = cams.height, cams.width
    rgb, mask = np.ones((len(cams), H, W, 3), np.float32), np.zeros((len(cams), H, W), bool)
    for b in range(len(cams)):
        w2c = np.linalg.inv(cams.c2w[b].numpy())
        pc = pts @ w2c[:3, :3].T + w2c[:3, 3]
        f = 0.5 * H / np.tan(np.radians(float(cams.fovy[b])) / 2)
        z = -pc[:, 2]
        u = (pc[:, 0] / z * f + W / 2).astype(int)
        v = (-pc[:, 1] / z * f + H / 2).astype(int)
        ok = (u >= 0) & (u < W) & (v >= 0) & (v < H) & (z > 0)
        order = np.argsort(-z[ok])  # far first, so nearer samples overwrite
        rgb[b, v[ok][order], u[ok][order]] = colour[ok][order]
        mask[b, v[ok][order], u[ok][order]] = True
    return rgb, mask
