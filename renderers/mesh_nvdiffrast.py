"""nvdiffrast as the mesh renderer's optional CUDA backend (renderer.backend=nvdiffrast).

nvdiffrast (NVlabs; Laine et al. 2020) is not a dependency: its licence, the NVIDIA Source Code
License, allows non-commercial use only, and it is not on PyPI under its own name (the
`diffrp-nvdiffrast` package carries it; its kernels build with the CUDA toolkit on first use). When it
is importable and the mesh is on CUDA, `NvdiffrastRaster` answers what renderers/mesh.py's
`TorchRaster` answers (which triangle each pixel sees, attributes there, camera depth, silhouette
antialiasing) with nvdiffrast's kernels; everything else in the draw stays ours.
tests/test_mesh_nvdiffrast.py holds it to the PyTorch path where CUDA is.

Conventions, from nvdiffrast's documentation: positions are in clip space (x, y, z, w); pixel (i, j)
samples NDC ((2i + 1)/W - 1, (2j + 1)/H - 1), row 0 at NDC y = -1; `rasterize` returns (u, v, z/w,
triangle id + 1) per pixel (0 where empty), and `interpolate` computes u a0 + v a1 + (1 - u - v) a2 with
perspective-correct (u, v). Our pixel coordinates (centres at +0.5, rows going down) therefore map to
NDC by 2p/size - 1 with no flip: nvdiffrast's row j is our row j. The y flip reverses every
triangle's winding on screen, which changes nothing: nothing is culled, and a silhouette edge (one
between a face turned to the camera and one turned away) stays one.
"""
from __future__ import annotations

import importlib

import torch

from dreamer.errors import UserError
from dreamer.yamldata import first_line

from .mesh_raster import NONE, project

INSTALL = ("install it (pip install diffrp-nvdiffrast, with the CUDA toolkit for its first build; its "
           "licence allows non-commercial use only) or set renderer.backend=torch")

_contexts: dict = {}  # (module, CUDA device index) -> rasterizer context: making one is slow


def nvdiffrast_missing(cuda: bool) -> str | None:
    """Why renderer.backend=nvdiffrast cannot train here (None: it can). Imports, builds nothing."""
    if not cuda:
        return "it needs a CUDA GPU"
    try:
        importlib.import_module("nvdiffrast.torch")
    except Exception as exc:  # noqa: BLE001 - a broken install raises whatever its import raises
        return f"nvdiffrast is not importable ({type(exc).__name__}: {first_line(exc)})"
    return None


def prepare_nvdiffrast(device: torch.device, say=None):
    """Before training: nvdiffrast builds its kernels on first use (minutes, then cached on disk), so
    make its context now, under a message, and turn a failed build into a one-line error. Returns
    nvdiffrast's torch module (None off CUDA)."""
    if device.type != "cuda":
        return None
    dr = importlib.import_module("nvdiffrast.torch")
    if say is not None:
        say("preparing nvdiffrast's CUDA kernels (the first build takes minutes; later runs use the cache)")
    try:
        _context(dr, device)
    except Exception as exc:  # noqa: BLE001 - a failed build raises whatever its compiler step raised
        raise UserError(f"renderer.backend=nvdiffrast but its kernels did not build ({type(exc).__name__}: "
                        f"{first_line(exc)}); {INSTALL}") from exc
    return dr


def _context(dr, device: torch.device):
    key = (id(dr), device.index if device.type == "cuda" else -1)
    if key not in _contexts:
        _contexts[key] = dr.RasterizeCudaContext(device=device)
    return _contexts[key]


def clip_positions(pix: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Projected vertices (B, V, 3: pixel x, pixel y, camera depth) -> clip space (B, V, 4).
    Depth maps to NDC z in [-1, 1] over this batch's own depth range (near and far at half the
    nearest and twice the farthest vertex), so the depth buffer's precision is spent on the mesh."""
    x, y, z = pix.unbind(-1)
    with torch.no_grad():
        near = 0.5 * z.amin().clamp_min(1e-4)
        far = 2.0 * z.amax().clamp_min(2.0 * near)
    a, b = (far + near) / (far - near), -2.0 * far * near / (far - near)
    return torch.stack([(2 * x / width - 1) * z, (2 * y / height - 1) * z, a * z + b, z], -1)


class NvdiffrastRaster:
    """One batch of cameras rasterized by nvdiffrast (`dr`: its torch module; tests pass another
    with the same semantics)."""

    def __init__(self, vertices, faces, viewmats, Ks, height: int, width: int, dr=None):
        self.dr = dr or importlib.import_module("nvdiffrast.torch")
        self.pix = project(vertices, viewmats, Ks)
        self.pos = clip_positions(self.pix, height, width).float().contiguous()
        self.tri = faces.int().contiguous()
        self.rast, _ = self.dr.rasterize(_context(self.dr, vertices.device), self.pos, self.tri, (height, width))
        self.tri_id = torch.where(self.rast[..., 3] > 0, self.rast[..., 3].long() - 1, NONE)

    def interpolate(self, attributes: torch.Tensor, faces: torch.Tensor | None = None) -> torch.Tensor:
        """Vertex attributes (V, C) -> (B, H, W, C) at the pixel centres (zeros where uncovered);
        `faces`: other indices with the same triangles (a UV layout's)."""
        tri = self.tri if faces is None else faces.int().contiguous()
        out, _ = self.dr.interpolate(attributes.float()[None].contiguous(), self.rast, tri)
        return out.to(attributes.dtype)

    def depth(self) -> torch.Tensor:
        """(B, H, W, 1) camera depth (0 where uncovered)."""
        z = self.pix[..., 2:].float().contiguous()  # per camera: (B, V, 1)
        out, _ = self.dr.interpolate(z, self.rast, self.tri)
        return out.to(self.pix.dtype) * (self.tri_id >= 0)[..., None]

    def antialias(self, image: torch.Tensor) -> torch.Tensor:
        return self.dr.antialias(image.float().contiguous(), self.rast, self.pos, self.tri).to(image.dtype)
