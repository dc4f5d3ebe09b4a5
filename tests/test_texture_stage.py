"""The texture stage's parts against known answers: the texel pyramid's samples and gradients, the
mesh it starts from (a field's export, drawn with the field's colours), texels learning a target
through renders, the export and the checkpoint giving back the same images."""
import copy

import pytest
import torch

from dreamer.cameras import orbit
from dreamer.config import build_config
from dreamer.errors import UserError
from dreamer.geometry.uv_texture import PyramidTexture, level_sizes
from dreamer.representations.texture import UVTexture
from renderers.background import Background
from renderers.mesh import draw
from renderers.volume import ShadingSpec
from test_mesh_stage import Ball

ALBEDO = ShadingSpec("albedo")


def texel_centres(size):
    i, j = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return torch.stack([(j + 0.5) / size, 1 - (i + 0.5) / size], -1).reshape(-1, 2)


def test_the_pyramid_is_its_image_at_texel_centres_and_spreads_a_pixels_gradient():
    assert level_sizes(128) == [128, 64, 32, 16] and level_sizes(8) == [8]
    torch.manual_seed(0)
    tex = PyramidTexture(64)
    for level in tex.levels:
        level.data.normal_()
    image = tex.image()
    assert torch.allclose(tex(texel_centres(64)).reshape(64, 64, 3), image, atol=1e-6)
    tex(torch.tensor([[0.3, 0.6]])).sum().backward()
    touched = [int((level.grad.abs().sum(0) > 0).sum()) for level in tex.levels]
    assert touched == [4, 4, 4]  # one bilinear sample per level: each level's 4 nearest texels
    start = torch.rand(64, 64, 3) * 0.9 + 0.05
    assert torch.allclose(PyramidTexture(64, start).image(), start, atol=1e-5)  # it begins as given


@pytest.fixture(scope="module")
def ball_stage():
    cfg = build_config(values={"geometry": {"type": "texture", "isosurface_threshold": 5.0,
                                            "texture": {"size": 128}},
                               "export": {"resolution": 48, "faces": 2000}})
    ball = Ball(cfg)
    return cfg, ball, UVTexture.create_from(cfg, ball)


def test_it_starts_as_the_previous_runs_export_drawn_with_its_colours(ball_stage):
    cfg, ball, tex = ball_stage
    cams = orbit(3, 20.0, 2.0, 40.0, 64)
    white = Background(cfg.background)
    with torch.no_grad():
        painted = tex.render(white, cams, ALBEDO)
        field = draw(tex.positions, tex.vmap[tex.faces], ball.display_albedo, white, cams, ALBEDO)
    assert torch.equal(painted["opacity"], field["opacity"])  # the same welded mesh
    inside = painted["opacity"][..., 0] > 0.999
    err = (painted["rgb"] - field["rgb"])[inside].abs().mean()
    assert float(err) < 0.005  # a 128² bake of a smooth field: measured 0.0007
    assert len(tex.positions) < len(tex.uvs)  # seams were split for the UVs, welded for drawing


def fit(tex, params, cams, background, target, steps=60):
    opt = torch.optim.Adam(tex.parameters() if params is None else params, lr=0.1)
    for _ in range(steps):
        loss = ((tex.render(background, cams, ALBEDO)["rgb"] - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return tex


def test_texels_learn_a_target_seen_from_other_views_and_export_what_they_learned(ball_stage):
    cfg, ball, start = ball_stage
    seen, unseen = orbit(4, 15.0, 2.0, 40.0, 32), orbit(3, 35.0, 2.0, 40.0, 128)
    white = Background(cfg.background)
    faces = start.vmap[start.faces]
    with torch.no_grad():  # the target: the ball painted with the opposite colours
        target = [draw(start.positions, faces, lambda p: 1 - ball.display_albedo(p), white, cams, ALBEDO)["rgb"]
                  for cams in (seen, unseen)]

    def error(tex):
        with torch.no_grad():
            return float(((tex.render(white, unseen, ALBEDO)["rgb"] - target[1]) ** 2).mean())
    tex = fit(copy.deepcopy(start), None, seen, white, target[0])
    finest = copy.deepcopy(start)
    fit(finest, [finest.texture.levels[0]], seen, white, target[0])
    # 32² renders touch few of the 128² texels: the pyramid carries what they learned to the rest.
    # Measured: 0.033 at the start, 0.0023 with the pyramid, 0.024 with the finest level alone.
    assert error(tex) < 0.15 * error(start) and error(finest) > 3 * error(tex)
    # The export draws what the stage learned (8-bit texels, chart borders dilated): measured 0.0004.
    again = UVTexture(cfg, start=tex.to_mesh(cfg.export))
    with torch.no_grad():
        a, b = tex.render(white, unseen, ALBEDO)["rgb"], again.render(white, unseen, ALBEDO)["rgb"]
    assert float((a - b).abs().mean()) < 0.003
    # A checkpoint fills a skeleton of another size and mesh.
    skeleton = UVTexture.skeleton(cfg)
    skeleton.load_state_dict(tex.state_dict())
    with torch.no_grad():
        assert torch.equal(skeleton.render(white, unseen, ALBEDO)["rgb"], a)


def test_texture_stage_inputs_fail_in_one_line(tmp_path):
    for values, words in [({"init": "run"}, "init_path"), ({"init": "run", "init_path": str(tmp_path)}, "not one"),
                          ({"size": 300}, "power of two")]:
        cfg = build_config(values={"geometry": {"type": "texture", "texture": values}})
        with pytest.raises(UserError, match=words):
            UVTexture.validate(cfg)
    with pytest.raises(UserError, match="8192"):
        build_config(values={"geometry": {"type": "texture", "texture": {"size": 16384}}})


def test_generate_chains_the_texture_stage_after_its_previous_stages(tmp_path):
    """--representation texture: Gaussians then texture (DreamGaussian's path) by default;
    --coarse mesh makes three stages, each a run folder inside the next."""
    from dreamer.recipes import generate_config
    from dreamer.stages import chain, stage_labels
    cfg, path = generate_config("a rubber duck", representation="texture")
    assert path.name == "sds-texture.yaml" and [c.geometry.type for c in chain(cfg)] == ["gaussians", "texture"]
    cfg, _ = generate_config("a rubber duck", representation="texture", overrides=["geometry.texture.coarse=mesh"])
    cfg.out_dir = str(tmp_path / "run")
    stages = chain(cfg)
    assert [c.geometry.type for c in stages] == ["nerf", "mesh", "texture"]
    assert stage_labels(cfg) == ["stage 1/3 nerf", "stage 2/3 mesh", "stage 3/3 texture"]
    assert [c.out_dir for c in stages] == [str(tmp_path / "run" / "coarse" / "coarse"), str(tmp_path / "run" / "coarse"),
                                           cfg.out_dir]
    nerf, mesh = stages[0].geometry, stages[1].geometry  # the mesh stage carries its NeRF's colour network
    assert mesh.pos_encoding == nerf.pos_encoding and mesh.radius == nerf.radius
    # every stage's steps can be set: geometry.mesh.* of a texture run goes to its mesh stage
    cfg, _ = generate_config("a rubber duck", representation="texture", steps=10, overrides=[
        "geometry.texture.coarse=mesh", "geometry.texture.coarse_steps=20", "geometry.mesh.coarse_steps=40",
        "geometry.mesh.fit_steps=50"])
    stages = chain(cfg)
    assert [c.trainer.max_steps for c in stages] == [40, 20, 10] and stages[1].geometry.mesh.fit_steps == 50
    assert stages[1].geometry.mesh.resolution == 32 and stages[1].geometry.mesh.init == "coarse"


def test_dreamer_texture_starts_from_the_run_it_is_given(tmp_path):
    """`dreamer texture RUN` textures RUN's mesh, never a previous stage of its own (the recipe's default)."""
    from dreamer.stages import chain, next_stage_config
    run = tmp_path / "duck"
    run.mkdir()
    (run / "config.yaml").write_text("prompt: a rubber duck\ngeometry:\n  type: mesh\n")
    (run / "run.json").write_text('{"status": "done", "step": 300}')
    cfg, recipe = next_stage_config(str(run), "texture", None, 50, ["geometry.texture.size=256"])
    t = cfg.geometry.texture
    assert recipe.name == "sds-texture.yaml" and cfg.trainer.max_steps == 50 and t.size == 256
    assert (t.init, t.init_path) == ("run", str(run.resolve())) and len(chain(cfg)) == 1
