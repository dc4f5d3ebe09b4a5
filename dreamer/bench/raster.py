"""`dreamer bench raster`: our tile-binned mesh rasterizer against the dense all-pairs reference.

The scene is a UV sphere of radius 0.5 with about the asked number of faces, seen from the
training orbit (distance 2.0, fovy 40 degrees, elevation 15). One timing is the forward pass
(projection, visibility, interpolation, antialiasing of 3 colour channels and the mask) plus the
backward of a random linear loss on the image. The dense reference shares everything but the
visibility step, which tests every face against every pixel; its cost is linear in the faces, so
it is timed on the first `dense_faces` faces and scaled (the table says so). On CUDA with
nvdiffrast installed, nvdiffrast's kernels join the table for the same steps (renderers/mesh_nvdiffrast.py's
`NvdiffrastRaster`: rasterize, interpolate, antialias, then the same backward).
"""
from __future__ import annotations

import math

import torch
import trimesh

from renderers import mesh_raster as mr
from renderers.mesh_nvdiffrast import NvdiffrastRaster

from ..cameras import make_cameras, opencv_cameras
from .timing import median_seconds


def sphere(faces: int):
    n = max(3, round(math.sqrt(faces / 7.3)))  # trimesh's UV sphere has about 7.3 n^2 faces
    s = trimesh.creation.uv_sphere(radius=0.5, count=[n, 2 * n])
    return torch.tensor(s.vertices, dtype=torch.float32), torch.tensor(s.faces, dtype=torch.long)


def _backward(image: torch.Tensor) -> None:
    weights = torch.randn(image.shape, generator=torch.Generator().manual_seed(0)).to(image.device)
    (image * weights).sum().backward()


def _forward_backward(vertices, faces, colours, viewmats, Ks, size: int) -> None:
    v = vertices.clone().requires_grad_()
    out = mr.rasterize(v, faces, colours, viewmats, Ks, size, size)
    _backward(torch.cat([out["attributes"], out["opacity"]], -1))


def _nvdiffrast_forward_backward(vertices, faces, colours, viewmats, Ks, size: int, dr) -> None:
    v = vertices.clone().requires_grad_()
    raster = NvdiffrastRaster(v, faces, viewmats, Ks, size, size, dr=dr)
    covered = (raster.tri_id >= 0)[..., None].to(v.dtype)
    _backward(raster.antialias(torch.cat([raster.interpolate(colours), covered], -1)))


def run(face_counts=(10000, 50000), sizes=(128, 512), repeats: int = 3, dense_faces: int = 2000,
        say=print, device: str = "cpu", nvdiffrast=None) -> list[dict]:
    """Seconds per forward + backward for each face count and size; `nvdiffrast`: its torch module,
    timed on the same scenes as well (CUDA only, or a stand-in with its semantics in tests)."""
    rows, device = [], torch.device(device)
    for size in sizes:
        viewmats, Ks = (t.to(device) for t in opencv_cameras(make_cameras([15.0], [30.0], [2.0], [40.0], size, size)))
        for count in face_counts:
            vertices, faces = (t.to(device) for t in sphere(count))
            colours = torch.rand(len(vertices), 3, generator=torch.Generator().manual_seed(1)).to(device)
            scene = (vertices, faces, colours, viewmats, Ks, size)
            ours = median_seconds(lambda: _forward_backward(*scene), repeats, device)
            pix = mr.project(vertices, viewmats, Ks)
            tiled_vis = median_seconds(lambda: mr.visible_triangles(pix, faces, size, size), repeats, device)
            part = faces[:min(dense_faces, len(faces))]
            dense_vis = median_seconds(lambda: mr.visible_triangles_dense(pix, part, size, size), 1, device)
            dense_vis *= len(faces) / len(part)
            dense = ours - tiled_vis + dense_vis
            row = {"faces": len(faces), "size": size, "ours_s": ours, "dense_s": dense, "speedup": dense / ours,
                   "dense": f"visibility timed on {len(part):,} faces, scaled"}
            line = f"{len(faces):7d} faces {size:4d}px  ours {ours:7.3f} s  dense {dense:8.1f} s  x{row['speedup']:.0f}"
            if nvdiffrast is not None:
                row["nvdiffrast_s"] = median_seconds(lambda: _nvdiffrast_forward_backward(*scene, nvdiffrast),
                                                     repeats, device)
                line += f"  nvdiffrast {row['nvdiffrast_s']:.4f} s"
            say(line)
            rows.append(row)
    return rows


def table(rows: list[dict], device: str = "cpu") -> str:
    where = (torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda")
             else f"{torch.get_num_threads()} threads")
    nv = any("nvdiffrast_s" in r for r in rows)
    lines = [f"Mesh rasterization, forward + backward, 1 camera, tiles 8 px, {where} ({torch.__version__})", "",
             "| faces | image | ours (tile-binned) | dense all-pairs | speed-up | dense timing |"
             + (" nvdiffrast | nvdiffrast vs ours |" if nv else ""),
             "|---:|---:|---:|---:|---:|---|" + ("---:|---:|" if nv else "")]
    for r in rows:
        line = (f"| {r['faces']:,} | {r['size']}² | {r['ours_s']:.3f} s | {r['dense_s']:.1f} s | "
                f"{r['speedup']:.0f}× | {r['dense']} |")
        if nv:
            line += f" {r['nvdiffrast_s']:.4f} s | {r['ours_s'] / r['nvdiffrast_s']:.1f}× faster |"
        lines.append(line)
    return "\n".join(lines)
