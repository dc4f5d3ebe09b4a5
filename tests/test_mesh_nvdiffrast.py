"""renderer.backend=nvdiffrast: the glue against a stand-in with nvdiffrast's documented semantics
(here, on the CPU), and the real nvdiffrast held to our PyTorch path (where CUDA and nvdiffrast are).

The stand-in is built from our own rasterizer, but it reads what nvdiffrast reads: clip-space
positions, pixel (i, j) sampling NDC ((2i + 1)/W - 1, (2j + 1)/H - 1) with row 0 at NDC y = -1,
triangles whose z/w leaves [-1, 1] clipped away; and it answers as nvdiffrast does: (u, v, z/w, id + 1)
with u weighting a triangle's first vertex. So it checks our side of the contract (the clip-space
mapping, the depth range, id and barycentric unpacking, broadcasting); only the CUDA test can
check nvdiffrast's side.
"""
import importlib.util

import pytest
import torch
import trimesh

from dreamer.cameras import make_cameras, opencv_cameras
from dreamer.config import BackgroundConfig
from renderers import mesh_raster as mr
from renderers.background import Background
from renderers.mesh import TorchRaster, check_backend, draw
from renderers.mesh_nvdiffrast import NvdiffrastRaster, clip_positions
from renderers.volume import ShadingSpec


class StandIn:
    """nvdiffrast.torch's four calls, as its documentation states them, on any device."""

    class RasterizeCudaContext:
        def __init__(self, device=None):
            self.device = device

    @staticmethod
    def _pixels(pos, height, width):
        w = pos[..., 3]
        return torch.stack([(pos[..., 0] / w + 1) * width / 2, (pos[..., 1] / w + 1) * height / 2, w], -1)

    @classmethod
    def rasterize(cls, ctx, pos, tri, resolution):
        assert pos.dtype == torch.float32 and tri.dtype == torch.int32 and pos.is_contiguous()
        height, width = resolution
        pix = cls._pixels(pos, height, width)
        ndc_z = pos[..., 2] / pos[..., 3]
        faces = tri.long()
        inside = ((ndc_z[:, faces] >= -1) & (ndc_z[:, faces] <= 1)).all(-1)  # (B, F): clipped otherwise
        assert inside.all(), "a triangle of a mesh in view left the depth range"
        tri_id = mr.visible_triangles(pix, faces, height, width)
        bary = mr.barycentrics(pix, faces, tri_id)
        z_over_w = (bary * ndc_z[torch.arange(len(pos))[:, None, None, None], faces[tri_id.clamp_min(0)]]).sum(-1)
        rast = torch.stack([bary[..., 0], bary[..., 1], z_over_w, (tri_id + 1).to(pos.dtype)], -1)
        return rast * (tri_id >= 0)[..., None], torch.zeros(0)

    @staticmethod
    def interpolate(attr, rast, tri):
        assert attr.dim() == 3 and attr.dtype == torch.float32
        tri_id = rast[..., 3].long() - 1
        u, v = rast[..., 0:1], rast[..., 1:2]
        b = torch.stack([u, v, 1 - u - v], -2)  # (B, H, W, 3, 1)
        corners = tri.long()[tri_id.clamp_min(0)]  # (B, H, W, 3)
        batch = torch.arange(rast.shape[0])[:, None, None, None] if attr.shape[0] > 1 else 0
        values = attr[batch, corners]  # (B, H, W, 3, C)
        return (b * values).sum(-2) * (tri_id >= 0)[..., None], torch.zeros(0)

    @classmethod
    def antialias(cls, color, rast, pos, tri):
        height, width = color.shape[1:3]
        return mr.antialias(color, cls._pixels(pos, height, width), tri.long(), rast[..., 3].long() - 1)


def _scene(dtype=torch.float32, device="cpu"):
    s = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    box = trimesh.creation.box(extents=(0.3, 0.3, 0.3))
    box.apply_translation((0.35, 0.3, 0.25))  # a second body, partly in front of the sphere
    both = trimesh.util.concatenate([s, box])
    vertices = torch.tensor(both.vertices, dtype=dtype, device=device)
    faces = torch.tensor(both.faces, dtype=torch.long, device=device)
    cams = make_cameras([10.0, 35.0, -15.0], [0.0, 130.0, 250.0], [2.0, 2.2, 2.6], [40.0] * 3, 40, 48)
    return vertices, faces, cams


def _rasters(vertices, faces, cams, dr):
    viewmats, Ks = (t.to(vertices.device) for t in opencv_cameras(cams))
    ours = TorchRaster(vertices, faces, viewmats, Ks, cams.height, cams.width)
    theirs = NvdiffrastRaster(vertices, faces, viewmats, Ks, cams.height, cams.width, dr=dr)
    return ours, theirs


def test_clip_space_keeps_pixels_and_puts_the_mesh_inside_the_depth_range():
    pix = torch.tensor([[[0.5, 0.5, 1.0], [47.5, 39.5, 3.0], [24.0, 20.0, 2.0]]])
    clip = clip_positions(pix, 40, 48)
    ndc = clip[..., :3] / clip[..., 3:]
    assert torch.allclose((ndc[..., 0] + 1) * 48 / 2, pix[..., 0]) and torch.allclose((ndc[..., 1] + 1) * 40 / 2, pix[..., 1])
    assert torch.equal(clip[..., 3], pix[..., 2])
    assert (ndc[..., 2] > -1).all() and (ndc[..., 2] < 1).all()
    assert ndc[0, 0, 2] < ndc[0, 2, 2] < ndc[0, 1, 2]  # nearer is smaller, as the depth test wants


def test_the_glue_answers_what_our_rasterizer_answers():
    vertices, faces, cams = _scene()
    ours, theirs = _rasters(vertices, faces, cams, StandIn)
    assert torch.equal(ours.tri_id, theirs.tri_id) and (ours.tri_id >= 0).float().mean() > 0.2
    normals = torch.nn.functional.normalize(vertices, dim=-1)
    assert torch.allclose(ours.interpolate(normals), theirs.interpolate(normals), atol=1e-5)
    assert torch.allclose(ours.depth(), theirs.depth(), atol=1e-5)
    image = torch.rand(len(cams), cams.height, cams.width, 4)
    assert torch.allclose(ours.antialias(image), theirs.antialias(image), atol=1e-5)


def test_the_glue_passes_vertex_gradients_through():
    vertices, faces, cams = _scene()
    colours = torch.rand(len(vertices), 3)
    grads = []
    for use_stand_in in (False, True):
        v = vertices.clone().requires_grad_(True)
        ours, theirs = _rasters(v, faces, cams, StandIn)
        raster = theirs if use_stand_in else ours
        covered = (raster.tri_id >= 0)[..., None].float()
        image = raster.antialias(torch.cat([raster.interpolate(colours), covered], -1))
        (image * torch.linspace(0, 1, image.numel()).reshape(image.shape)).sum().backward()
        grads.append(v.grad)
    assert grads[0].abs().sum() > 0
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-3)  # float32 rounding of the round trip


@pytest.mark.skipif(not torch.cuda.is_available() or importlib.util.find_spec("nvdiffrast") is None,
                    reason="nvdiffrast's rasterizer needs CUDA and nvdiffrast installed")
def test_cuda_nvdiffrast_matches_the_torch_path():
    """The real nvdiffrast against our path on the same CUDA tensors: the same triangle at almost
    every pixel (ties at shared edges may differ), the same attributes and depth where the triangle
    agrees, a full draw within antialiasing's rounding, and vertex gradients pointing the same way."""
    import nvdiffrast.torch as dr
    vertices, faces, cams = _scene(device="cuda")
    ours, theirs = _rasters(vertices, faces, cams, dr)
    same = ours.tri_id == theirs.tri_id
    assert same.float().mean() > 0.995
    covered = same & (ours.tri_id >= 0)
    normals = torch.nn.functional.normalize(vertices, dim=-1)
    assert (ours.interpolate(normals) - theirs.interpolate(normals))[covered].abs().max() < 1e-3
    assert (ours.depth() - theirs.depth())[covered].abs().max() < 1e-3

    colours = torch.rand(1, 3, device="cuda")
    bg = Background(BackgroundConfig()).to("cuda")
    grads, images = [], []
    for backend in ("torch", "nvdiffrast"):
        v = vertices.clone().requires_grad_(True)
        out = draw(v, faces, lambda p: colours[:1].expand(len(p), 3) + 0.3 * p, bg, cams,
                   ShadingSpec("shaded"), backend=backend)
        (out["rgb"].mean(-1, keepdim=True) * out["opacity"]).sum().backward()
        grads.append(v.grad.flatten())
        images.append(torch.cat([out["rgb"], out["opacity"]], -1))
    assert (images[0] - images[1]).abs().mean() < 2e-3
    cosine = torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0)
    print(f"nvdiffrast vs torch: triangle agreement {same.float().mean():.4f}, image mean |diff| "
          f"{(images[0] - images[1]).abs().mean():.2e}, vertex-gradient cosine {cosine:.4f}")
    assert cosine > 0.9


def test_a_failed_nvdiffrast_build_stops_in_one_line_before_step_0(monkeypatch):
    import sys
    import types

    from dreamer.config import RendererConfig
    from dreamer.errors import UserError
    from renderers import mesh_nvdiffrast

    broken = types.ModuleType("nvdiffrast.torch")

    class RasterizeCudaContext:
        def __init__(self, device=None):
            raise RuntimeError("Error building extension 'nvdiffrast_plugin'\nninja: build stopped")
    broken.RasterizeCudaContext = RasterizeCudaContext
    monkeypatch.setitem(sys.modules, "nvdiffrast", types.ModuleType("nvdiffrast"))
    monkeypatch.setitem(sys.modules, "nvdiffrast.torch", broken)
    monkeypatch.setattr(mesh_nvdiffrast, "_contexts", {})
    check_backend(RendererConfig(backend="nvdiffrast"), cuda=True)  # importable: fine
    said = []
    with pytest.raises(UserError) as err:
        mesh_nvdiffrast.prepare_nvdiffrast(torch.device("cuda"), said.append)
    assert "preparing nvdiffrast's CUDA kernels" in said[0]
    message = str(err.value)
    assert "\n" not in message and "did not build (RuntimeError: Error building extension" in message
    assert "set renderer.backend=torch" in message


def test_off_cuda_a_mesh_run_made_with_nvdiffrast_draws_with_our_path():
    """An export or evaluation on a laptop of a run trained with nvdiffrast: the same image as ours."""
    vertices, faces, cams = _scene()
    bg = Background(BackgroundConfig())
    images = [draw(vertices, faces, lambda p: 0.5 + 0.3 * p, bg, cams, ShadingSpec("shaded"), backend=b)["rgb"]
              for b in ("torch", "nvdiffrast")]
    assert torch.equal(images[0], images[1])


def test_bench_raster_times_nvdiffrast_on_the_same_scenes():
    """`dreamer bench raster` on CUDA adds nvdiffrast's column; here the stand-in (our kernels behind
    nvdiffrast's calls) takes its place, so the column and its ratio are computed and printed."""
    from dreamer.bench import raster
    rows = raster.run(face_counts=(600,), sizes=(32,), repeats=1, dense_faces=200, say=lambda m: None,
                      nvdiffrast=StandIn)
    assert rows[0]["nvdiffrast_s"] > 0
    text = raster.table(rows)
    assert "| nvdiffrast | nvdiffrast vs ours |" in text.splitlines()[2] and "× faster |" in text.splitlines()[-1]
    assert "nvdiffrast" not in raster.table([{k: v for k, v in rows[0].items() if k != "nvdiffrast_s"}])
