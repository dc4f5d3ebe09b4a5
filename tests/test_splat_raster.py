"""Our Gaussian rasterizer against the brute-force dense reference, closed forms and gsplat."""
import math

import pytest
import torch

from dreamer.cameras import make_cameras, opencv_cameras
from renderers import splat_raster as R

KEYS = ("means", "quats", "scales", "opacities", "colors")


def random_scene(n, seed, sh_degree=None):
    g = torch.Generator().manual_seed(seed)
    k = 3 if sh_degree is None else (sh_degree + 1) ** 2
    colors = torch.rand(n, 3, generator=g) if sh_degree is None else 0.5 * torch.randn(n, k, 3, generator=g)
    return {"means": 0.35 * torch.randn(n, 3, generator=g),
            "quats": torch.randn(n, 4, generator=g),
            "scales": 0.01 + 0.06 * torch.rand(n, 3, generator=g),
            "opacities": 0.05 + 0.94 * torch.rand(n, generator=g),
            "colors": colors}


def cameras(n, width, height, distance=2.0):
    az = torch.linspace(-180, 180, n + 1)[:-1] + 17.0
    cams = make_cameras(torch.full((n,), 20.0), az, torch.full((n,), distance), torch.full((n,), 40.0), height, width)
    return opencv_cameras(cams)


def render_and_grads(scene, viewmats, Ks, width, height, dense, **kw):
    params = {k: v.clone().requires_grad_() for k, v in scene.items()}
    img, alpha, meta = R.rasterization(*(params[k] for k in KEYS), viewmats, Ks, width, height,
                                       dense=dense, **kw)
    meta["means2d"].retain_grad()
    g = torch.Generator().manual_seed(7)
    loss = (img * torch.randn(img.shape, generator=g)).sum() + (alpha * torch.randn(alpha.shape, generator=g)).sum()
    loss.backward()
    grads = {k: params[k].grad for k in KEYS}
    grads["means2d"] = meta["means2d"].grad
    return img.detach(), alpha.detach(), grads


@pytest.mark.parametrize("mode", ["classic", "antialiased"])
@pytest.mark.parametrize("case", [
    dict(n=400, width=48, height=40, cams=2, sh_degree=None, render_mode="RGB+ED"),
    dict(n=300, width=37, height=29, cams=3, sh_degree=2, render_mode="RGB+D"),  # sizes not multiples of tiles
])
def test_tiles_match_the_dense_reference(mode, case):
    scene = random_scene(case["n"], seed=case["n"], sh_degree=case["sh_degree"])
    viewmats, Ks = cameras(case["cams"], case["width"], case["height"])
    bg = torch.rand(case["cams"], 3, generator=torch.Generator().manual_seed(3))
    kw = dict(sh_degree=case["sh_degree"], backgrounds=bg, render_mode=case["render_mode"], rasterize_mode=mode)
    ours = render_and_grads(scene, viewmats, Ks, case["width"], case["height"], dense=False, **kw)
    ref = render_and_grads(scene, viewmats, Ks, case["width"], case["height"], dense=True, **kw)
    assert ref[1].max() > 0.5  # the scene covers part of the image
    torch.testing.assert_close(ours[0], ref[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours[1], ref[1], rtol=1e-5, atol=1e-5)
    for key in ref[2]:
        scale = ref[2][key].abs().max()
        assert scale > 0, key
        torch.testing.assert_close(ours[2][key] / scale, ref[2][key] / scale, rtol=0, atol=2e-5, msg=key)


@pytest.mark.parametrize("tile_size", [1, 4, 16])
def test_tile_size_does_not_change_the_image(tile_size):
    scene = random_scene(200, seed=1)
    viewmats, Ks = cameras(1, 40, 40)
    ref, _, _ = R.rasterization(*(scene[k] for k in KEYS), viewmats, Ks, 40, 40, dense=True)
    ours, _, _ = R.rasterization(*(scene[k] for k in KEYS), viewmats, Ks, 40, 40, tile_size=tile_size)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def single_gaussian_facing_camera(opacity, scale, distance=2.0, size=33, fovy=40.0):
    viewmats, Ks = cameras(1, size, size, distance)
    centre = torch.linalg.inv(viewmats)[0, :3, 3]
    mean = torch.zeros(1, 3)
    return {"means": mean, "quats": torch.tensor([[1.0, 0, 0, 0]]), "scales": torch.full((1, 3), scale),
            "opacities": torch.tensor([opacity]), "colors": torch.tensor([[1.0, 0.0, 0.0]])}, viewmats, Ks, \
        float((centre - mean[0]).norm())


def test_single_gaussian_matches_the_ewa_closed_form():
    """An isotropic Gaussian of scale s at depth z: a 2D Gaussian of variance (f s / z)^2 + eps2d."""
    size, scale, opacity = 33, 0.05, 0.8
    scene, viewmats, Ks, z = single_gaussian_facing_camera(opacity, scale, size=size)
    img, alpha, meta = R.rasterization(*(scene[k] for k in KEYS), viewmats, Ks, size, size,
                                       backgrounds=torch.ones(1, 3))
    f = float(Ks[0, 0, 0])
    var = (f * scale / z) ** 2 + 0.3
    c = size / 2  # the projected centre
    for (row, col) in [(16, 16), (16, 19), (12, 16), (20, 21)]:
        r2 = (col + 0.5 - c) ** 2 + (row + 0.5 - c) ** 2
        a = opacity * math.exp(-0.5 * r2 / var)
        expect_alpha = a if a >= 1 / 255 else 0.0
        assert alpha[0, row, col, 0].item() == pytest.approx(expect_alpha, abs=1e-5)
        # red over a white background
        assert img[0, row, col].tolist() == pytest.approx([1.0, 1 - expect_alpha, 1 - expect_alpha], abs=1e-5)
    assert meta["radii"][0, 0].tolist() == [math.ceil(3.33 * math.sqrt(var))] * 2


def test_compositing_stops_like_gsplat():
    """Three near-opaque Gaussians on one axis: alpha 0.999 each. After the first, T = 1e-3; the
    second would bring it to 1e-6 <= 1e-4, so the pixel stops there and only the first counts."""
    viewmats, Ks = cameras(1, 9, 9)
    eye = torch.linalg.inv(viewmats)[0, :3, 3]
    towards = -eye / eye.norm()
    means = torch.stack([eye + towards * d for d in (1.5, 2.0, 2.5)])
    scene = {"means": means, "quats": torch.tensor([[1.0, 0, 0, 0]]).repeat(3, 1),
             "scales": torch.full((3, 3), 0.2), "opacities": torch.ones(3),
             "colors": torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])}
    for dense in (False, True):
        img, alpha, _ = R.rasterization(*(scene[k] for k in KEYS), viewmats, Ks, 9, 9, dense=dense)
        centre = img[0, 4, 4]
        assert alpha[0, 4, 4, 0].item() == pytest.approx(0.999, abs=2e-4)
        assert centre[0].item() == pytest.approx(alpha[0, 4, 4, 0].item(), abs=1e-6)
        assert centre[1].item() == 0.0 and centre[2].item() == 0.0


def test_gaussians_behind_the_camera_or_off_screen_are_culled():
    viewmats, Ks = cameras(1, 32, 32)
    eye = torch.linalg.inv(viewmats)[0, :3, 3]
    means = torch.stack([eye * 1.5, torch.tensor([40.0, 0.0, 0.0]), torch.zeros(3)])  # behind, far off, visible
    scene = {"means": means, "quats": torch.tensor([[1.0, 0, 0, 0]]).repeat(3, 1),
             "scales": torch.full((3, 3), 0.05), "opacities": torch.full((3,), 0.9), "colors": torch.rand(3, 3)}
    _, alpha, meta = R.rasterization(*(scene[k] for k in KEYS), viewmats, Ks, 32, 32)
    assert (meta["radii"][0, :2] == 0).all() and (meta["radii"][0, 2] > 0).all()
    assert alpha.max() > 0.5


def test_default_strategy_grows_and_prunes_on_our_meta():
    """gsplat's DefaultStrategy reads means2d's grad, radii and the image size from our meta."""
    from gsplat.strategy import DefaultStrategy
    scene = random_scene(300, seed=5)
    raw = {"means": scene["means"], "quats": scene["quats"], "scales": scene["scales"].log(),
           "opacities": torch.logit(scene["opacities"]), "colors": scene["colors"]}
    raw["opacities"][:20] = -10.0  # transparent: pruned
    params = torch.nn.ParameterDict({k: torch.nn.Parameter(v.clone()) for k, v in raw.items()})
    opts = {k: torch.optim.Adam([{"params": [p], "lr": 1e-3, "name": k}]) for k, p in params.items()}
    strategy = DefaultStrategy(refine_start_iter=0, refine_every=1, grow_grad2d=1e-9, verbose=False)
    strategy.check_sanity(params, opts)
    state = strategy.initialize_state(scene_scale=1.0)
    viewmats, Ks = cameras(2, 32, 32)
    img, _, meta = R.rasterization(params["means"], params["quats"], params["scales"].exp(),
                                       torch.sigmoid(params["opacities"]), params["colors"], viewmats, Ks, 32, 32)
    strategy.step_pre_backward(params, opts, state, 1, meta)
    img.sum().backward()
    seen = int(((meta["radii"] > 0).all(-1).any(0) & (torch.sigmoid(params["opacities"]) > 0.005)).sum())
    for o in opts.values():
        o.step()
    strategy.step_post_backward(params, opts, state, 2, meta, packed=False)
    assert len(params["means"]) == 300 - 20 + seen  # every visible one grew; the transparent ones went
    assert all(o.param_groups[0]["params"][0] is params[k] for k, o in opts.items())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="gsplat's rasterizer needs CUDA")
@pytest.mark.parametrize("mode", ["classic", "antialiased"])
def test_ours_matches_gsplat_on_cuda(mode):
    import gsplat
    scene = random_scene(2000, seed=11, sh_degree=1)
    viewmats, Ks = cameras(2, 64, 48)
    kw = dict(sh_degree=1, backgrounds=torch.rand(2, 3), render_mode="RGB+ED", rasterize_mode=mode)
    ours = render_and_grads(scene, viewmats, Ks, 64, 48, dense=False, **kw)

    params = {k: v.cuda().requires_grad_() for k, v in scene.items()}
    img, alpha, meta = gsplat.rasterization(*(params[k] for k in KEYS), viewmats.cuda(), Ks.cuda(), 64, 48,
                                            packed=False, **{k: (v.cuda() if torch.is_tensor(v) else v)
                                                             for k, v in kw.items()})
    meta["means2d"].retain_grad()
    g = torch.Generator().manual_seed(7)
    loss = (img * torch.randn(img.shape, generator=g).cuda()).sum() + \
        (alpha * torch.randn(alpha.shape, generator=g).cuda()).sum()
    loss.backward()
    torch.testing.assert_close(img.detach().cpu(), ours[0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(alpha.detach().cpu(), ours[1], rtol=1e-4, atol=1e-4)
    for key in KEYS:
        scale = ours[2][key].abs().max()
        torch.testing.assert_close(params[key].grad.cpu() / scale, ours[2][key] / scale, rtol=0, atol=1e-3, msg=key)


def test_normals_from_depth_of_a_plane_face_the_camera():
    """A flat wall of Gaussians facing +z seen from the front: every covered pixel's normal is +z."""
    from renderers.gaussian import normals_from_depth
    g = torch.linspace(-0.6, 0.6, 40)
    xy = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    n = len(xy)
    scene = {"means": torch.cat([xy, torch.zeros(n, 1)], 1), "quats": torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
             "scales": torch.tensor([[0.03, 0.03, 0.003]]).repeat(n, 1), "opacities": torch.full((n,), 0.9),
             "colors": torch.rand(n, 3)}
    cams = make_cameras([0.0], [0.0], [2.0], [40.0], 24, 24)
    viewmats, Ks = opencv_cameras(cams)
    img, alpha, _ = R.rasterization(*(scene[k] for k in KEYS), viewmats, Ks, 24, 24, render_mode="RGB+ED")
    normal = normals_from_depth(img[..., -1:], cams)
    covered = alpha[..., 0] > 0.99
    assert covered.sum() > 100
    assert torch.allclose(normal[covered], torch.tensor([0.0, 0.0, 1.0]).expand(int(covered.sum()), 3), atol=1e-3)
