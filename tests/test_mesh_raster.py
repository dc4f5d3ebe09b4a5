"""renderers/mesh_raster.py against hand counts, closed forms, the dense all-pairs reference and
finite differences."""
import math

import pytest
import torch
import trimesh

from dreamer.cameras import get_rays, make_cameras, opencv_cameras
from renderers import mesh_raster as mr


def icosphere(subdivisions=3, radius=0.5, dtype=torch.float32):
    s = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return torch.tensor(s.vertices, dtype=dtype), torch.tensor(s.faces, dtype=torch.long)


def test_one_triangle_coverage_and_barycentrics_by_hand():
    pix = torch.tensor([[[2.0, 1.0, 1.0], [12.0, 3.0, 1.0], [5.0, 13.0, 1.0]]])  # x, y, depth
    faces = torch.tensor([[0, 1, 2]])
    ids = mr.visible_triangles(pix, faces, 16, 16, tile_size=4)
    a, b, c = pix[0, :, :2].tolist()

    def cross(p, q, x, y):
        return (q[0] - p[0]) * (y - p[1]) - (q[1] - p[1]) * (x - p[0])
    expected = torch.tensor([[all(cross(p, q, i + 0.5, j + 0.5) >= 0 for p, q in ((a, b), (b, c), (c, a)))
                              for i in range(16)] for j in range(16)])
    assert torch.equal(ids[0] == 0, expected) and int(expected.sum()) == 58
    # pixel (x=5, y=6): centre (5.5, 6.5); barycentrics solve a*u + b*v + c*w = p, u + v + w = 1
    bary = mr.barycentrics(pix, faces, ids)[0, 6, 5]
    A = torch.tensor([[a[0], b[0], c[0]], [a[1], b[1], c[1]], [1.0, 1.0, 1.0]], dtype=torch.float64)
    by_hand = torch.linalg.solve(A, torch.tensor([5.5, 6.5, 1.0], dtype=torch.float64))
    assert torch.allclose(bary.double(), by_hand, atol=1e-6)


def test_uncovered_pixels_send_no_nan_to_the_vertices():
    # Pixel (0, 0)'s centre (0.5, 0.5) has barycentrics (-1/2, -1/2, 2) in this triangle, and with
    # depths (1, 1, 2) its perspective weights sum to exactly 0: an uncovered pixel that reads
    # triangle 0 there must still give the vertices finite gradients (the mesh stage skipped steps).
    pix = torch.tensor([[[2.5, 0.5, 1.0], [0.5, 2.5, 1.0], [1.0, 1.0, 2.0]]], requires_grad=True)
    faces = torch.tensor([[0, 1, 2]])
    ids = mr.visible_triangles(pix.detach(), faces, 4, 4, tile_size=4)
    assert ids[0, 0, 0] == mr.NONE and (ids >= 0).any()
    bary = mr.barycentrics(pix, faces, ids)
    (bary * torch.arange(1.0, 4.0)).sum().backward()
    assert torch.isfinite(pix.grad).all() and pix.grad.abs().sum() > 0
    assert torch.equal(bary[0, 0, 0], torch.zeros(3))


def test_tiles_find_exactly_the_triangles_the_dense_reference_finds():
    V, F = icosphere(3)
    cams = make_cameras([10.0, 30.0, -20.0], [0.0, 120.0, 250.0], [2.0, 2.0, 2.5], [40.0] * 3, 40, 48)
    pix = mr.project(V, *opencv_cameras(cams))
    assert torch.equal(mr.visible_triangles(pix, F, 40, 48, tile_size=8),
                       mr.visible_triangles_dense(pix, F, 40, 48))
    g = torch.Generator().manual_seed(0)  # a soup of overlapping triangles at random depths
    soup = torch.cat([torch.rand(1, 90, 2, generator=g) * 40, 1 + torch.rand(1, 90, 1, generator=g)], -1)
    faces = torch.arange(90).reshape(30, 3)
    assert torch.equal(mr.visible_triangles(soup, faces, 40, 40, tile_size=4),
                       mr.visible_triangles_dense(soup, faces, 40, 40))


def test_a_cubes_silhouette_has_the_projected_area():
    """A unit cube face-on from distance 3: its silhouette is the front face, a square of side
    f / 2.5 pixels. Pixel-centre coverage is off by up to about half the perimeter; the
    antialiased opacity is much closer."""
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    V, F = torch.tensor(box.vertices, dtype=torch.float32), torch.tensor(box.faces, dtype=torch.long)
    cams = make_cameras([0.0], [0.0], [3.0], [40.0], 64, 64)
    out = mr.rasterize(V, F, torch.ones(len(V), 1), *opencv_cameras(cams), 64, 64)
    side = 0.5 * 64 / math.tan(math.radians(20)) / 2.5
    covered, smooth = float((out["tri_id"] >= 0).sum()), float(out["opacity"].sum())
    assert abs(covered - side ** 2) < 2 * side
    assert abs(smooth - side ** 2) < 0.25 * side


def test_a_spheres_depth_is_the_analytic_depth():
    V, F = icosphere(4)
    cams = make_cameras([15.0], [30.0], [2.0], [40.0], 64, 64)
    out = mr.rasterize(V, F, torch.zeros(len(V), 1), *opencv_cameras(cams), 64, 64)
    o, d = get_rays(cams)
    b, c = (o * d).sum(-1), (o * o).sum(-1) - 0.25
    disc = b * b - c
    t = -b - disc.clamp_min(0).sqrt()
    depth = t * (d * -cams.c2w[:, None, None, :3, 2]).sum(-1)  # along the camera axis
    inner = (out["tri_id"] >= 0) & (disc > 0.01)
    assert inner.sum() > 1000
    assert float((out["depth"][..., 0] - depth)[inner].abs().max()) < 0.005  # the facets' sag


def _triangle_image(vertices, antialias=True):
    faces = torch.tensor([[0, 1, 2]])
    cams = make_cameras([5.0], [10.0], [2.0], [40.0], 24, 24)
    viewmats, Ks = (x.double() for x in opencv_cameras(cams))
    colours = torch.tensor([[1.0, 0.2, 0.1], [0.1, 0.9, 0.3], [0.2, 0.3, 1.0]], dtype=torch.float64)
    if antialias:
        out = mr.rasterize(vertices, faces, colours, viewmats, Ks, 24, 24)
        return torch.cat([out["attributes"], out["opacity"]], -1)
    pix = mr.project(vertices, viewmats, Ks)
    ids = mr.visible_triangles(pix, faces, 24, 24)
    return torch.cat([mr.interpolate(colours, faces, ids, mr.barycentrics(pix, faces, ids)),
                      (ids >= 0)[..., None].double()], -1)


TRIANGLE = torch.tensor([[-0.3, -0.25, 0.0], [0.35, -0.2, 0.1], [0.0, 0.4, -0.1]], dtype=torch.float64)


@pytest.mark.parametrize("channels", [slice(0, 4), slice(3, 4)], ids=["colour and mask", "mask alone"])
def test_vertex_gradients_match_finite_differences_of_the_antialiased_image(channels):
    weights = torch.randn(1, 24, 24, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))[..., channels]
    loss = lambda v: (_triangle_image(v)[..., channels] * weights).sum()  # noqa: E731
    v = TRIANGLE.clone().requires_grad_()
    loss(v).backward()
    fd = torch.zeros_like(TRIANGLE)
    for i in range(3):
        for k in range(3):
            step = torch.zeros_like(TRIANGLE)
            step[i, k] = 1e-6
            fd[i, k] = (loss(TRIANGLE + step) - loss(TRIANGLE - step)) / 2e-6
    assert fd.abs().max() > 1.0  # the mask moves with the vertices
    assert torch.allclose(v.grad, fd, rtol=1e-5, atol=1e-6)


def test_antialiasing_with_the_draws_barycentrics_is_the_same_as_without():
    """rasterize hands its barycentrics to antialias instead of computing them again: same image, same
    vertex gradients (two overlapping spheres: silhouette and occlusion edges)."""
    a, F = icosphere(2, dtype=torch.float64)
    V = torch.cat([a, a * 0.6 + torch.tensor([0.3, 0.1, 0.4], dtype=torch.float64)])
    F = torch.cat([F, F + len(a)])
    colours = torch.rand(len(V), 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    viewmats, Ks = (x.double() for x in opencv_cameras(make_cameras([10.0, -5.0], [20.0, 200.0], [2.0, 2.2], [40.0, 40.0], 32, 32)))
    images, grads = [], []
    for reuse in (True, False):
        v = V.clone().requires_grad_()
        pix = mr.project(v, viewmats, Ks)
        ids = mr.visible_triangles(pix, F, 32, 32)
        bary = mr.barycentrics(pix, F, ids)
        image = torch.cat([mr.interpolate(colours, F, ids, bary), (ids >= 0)[..., None].double()], -1)
        out = mr.antialias(image, pix, F, ids, bary if reuse else None)
        images.append(out.detach())
        grads.append(torch.autograd.grad((out * out).sum(), v)[0])
    assert not torch.equal(images[0], image.detach())  # edges were blended
    assert torch.equal(images[0], images[1]) and torch.equal(grads[0], grads[1])


def test_without_antialiasing_the_mask_gives_vertices_no_gradient():
    v = TRIANGLE.clone().requires_grad_()
    mask = _triangle_image(v, antialias=False)[..., 3]
    grad = torch.autograd.grad(mask.sum(), v, allow_unused=True)[0]
    assert grad is None or not grad.any()  # the z-buffer alone is piecewise constant in the vertices


def test_bench_raster_times_ours_against_the_scaled_dense_reference():
    from dreamer.bench import raster
    rows = raster.run(face_counts=(600,), sizes=(32,), repeats=1, dense_faces=200, say=lambda m: None)
    assert len(rows) == 1 and 400 < rows[0]["faces"] < 900 and rows[0]["ours_s"] > 0
    assert rows[0]["dense_s"] > 0 and "| 32² |" in raster.table(rows)
