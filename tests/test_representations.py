"""Every registered representation keeps the contract (dreamer/representations/base.py) the loop,
the job, export and evaluation rely on; stages chain through create_from; old checkpoints load."""
from __future__ import annotations

import pytest
import torch

from dreamer.cameras import orbit
from dreamer.config import build_config
from dreamer.export.mesh import TexturedMesh
from dreamer.representations import REPRESENTATIONS, make_representation
from dreamer.representations.gaussians import Gaussians
from dreamer.representations.nerf import NeRF
from dreamer.representations.stored import upgrade_state_dict
from dreamer.representations.texture import UVTexture
from renderers.background import Background
from renderers.volume import ShadingSpec

SMALL = {"renderer": {"num_samples_per_ray": 24},
         "geometry": {"gaussians": {"num_points": 300}, "mesh": {"init": "sphere", "resolution": 16},
                      "texture": {"size": 32}},
         "export": {"resolution": 24, "faces": 500, "texture_size": 32}}


def small_config(name: str):
    return build_config(values={**SMALL, "geometry": {**SMALL["geometry"], "type": name}})


def fresh(cfg, restore: bool = False):
    """make_representation, except that the texture stage always starts from a run: here a sphere's mesh stage."""
    if cfg.geometry.type == "texture" and not restore:
        sphere = build_config(values={**SMALL, "geometry": {**SMALL["geometry"], "type": "mesh"}})
        return UVTexture.create_from(cfg, make_representation(sphere))
    return make_representation(cfg, restore=restore)


@pytest.mark.parametrize("name", list(REPRESENTATIONS))
def test_a_representation_keeps_the_contract(name):
    cfg = small_config(name)
    torch.manual_seed(0)
    rep = fresh(cfg)
    assert rep.name == name and rep.color_channels == 3
    groups = {**rep.parameter_groups(), **rep.separate_parameter_groups()}
    assert groups and set(rep.parameter_groups()).isdisjoint(rep.separate_parameter_groups())
    assert all(hasattr(cfg.optimizer, f"lr_{group}") for group in groups)  # each group has its learning rate
    owned = {id(p) for p in rep.parameters()}
    assert {id(p) for params in groups.values() for p in params} == owned  # every parameter is optimized once

    background, cams = Background(cfg.background), orbit(2, 15, 2.0, 40, 16)
    rep.prepare_step(0, torch.Generator().manual_seed(0))
    out = rep.render(background, cams, ShadingSpec("albedo"), randomized=True, generator=torch.Generator().manual_seed(0))
    shapes = {"rgb": (2, 16, 16, 3), "opacity": (2, 16, 16, 1), "depth": (2, 16, 16, 1), "normal": (2, 16, 16, 3)}
    assert {k: tuple(out[k].shape) for k in shapes} == shapes
    loss = out["rgb"].mean() + rep.regularizers(out, 0)
    rep.before_backward(out)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in rep.parameters())
    views = rep.render_chunked(background, cams, ShadingSpec("shaded"))
    assert {k: tuple(views[k].shape) for k in shapes} == shapes and not views["rgb"].requires_grad
    assert 0 <= float(views["opacity"].min()) and float(views["opacity"].max()) <= 1 + 1e-5

    mesh = rep.to_mesh(cfg.export)
    assert isinstance(mesh, TexturedMesh) and len(mesh.faces) > 0
    assert mesh.texture.shape == (32, 32, 3)


@pytest.mark.parametrize("name", list(REPRESENTATIONS))
def test_one_seed_gives_the_same_gradients_bit_for_bit(name):
    """Reproducible runs on the CPU: two backward passes of one render agree to the last bit with
    two threads (before dreamer/gather.py the demo's runs drifted apart after 26 steps)."""
    cfg = build_config(values={"geometry": {"type": name, "mesh": {"init": "sphere"}}})
    torch.manual_seed(0)
    rep = fresh(cfg)
    background, cams = Background(cfg.background), orbit(1, 15, 2.0, 40, 64)
    weight = torch.randn(1, 64, 64, 3, generator=torch.Generator().manual_seed(1))
    before, grads = torch.get_num_threads(), []
    torch.set_num_threads(2)
    try:
        for _ in range(4):
            rep.zero_grad(set_to_none=True)
            out = rep.render(background, cams, ShadingSpec("shaded"), randomized=True,
                             generator=torch.Generator().manual_seed(0))
            (out["rgb"] * weight).sum().backward()
            grads.append([p.grad.clone() for p in rep.parameters() if p.grad is not None])
    finally:
        torch.set_num_threads(before)
    assert grads[0] and all(torch.equal(a, b) for run in grads[1:] for a, b in zip(grads[0], run))


@pytest.mark.parametrize("name", list(REPRESENTATIONS))
def test_a_skeleton_filled_from_a_state_dict_renders_the_same(name):
    """What load_representation and `dreamer export` do: structure first, then the checkpoint's tensors."""
    cfg = small_config(name)
    torch.manual_seed(1)
    trained = fresh(cfg)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.01 * torch.randn_like(p))
    extras = trained.checkpoint_extras()
    restored = fresh(cfg, restore=True)
    restored.load_state_dict(trained.state_dict())
    restored.load_checkpoint_extras(extras)
    background, cams = Background(cfg.background), orbit(2, 15, 2.0, 40, 16)
    a = trained.render_chunked(background, cams, ShadingSpec("shaded"))
    b = restored.render_chunked(background, cams, ShadingSpec("shaded"))
    assert torch.equal(a["rgb"], b["rgb"]) and torch.equal(a["opacity"], b["opacity"])


def test_gaussians_created_from_a_nerf_sit_in_its_solid():
    """The stage chain: Gaussians.create_from(a NeRF) puts every point where the NeRF is dense."""
    cfg = small_config("gaussians")
    torch.manual_seed(0)
    nerf = NeRF(small_config("nerf"))  # the blob prior: solid inside radius ~0.5
    gaussians = Gaussians.create_from(cfg, nerf)
    means = gaussians.field.splats["means"].detach()
    assert gaussians.field.count == 300
    with torch.no_grad():
        inside, anywhere = nerf.density(means), nerf.density(2 * torch.rand(300, 3) - 1)
    assert inside.median() > 5 * anywhere.median()
    with pytest.raises(Exception, match="cannot start from"):
        NeRF.create_from(small_config("nerf"), gaussians)


def test_a_checkpoint_of_dreamer_0_1_0_is_renamed_into_the_particles_layout():
    old = {"field.encoding.embeddings": 1, "renderer.grid.occupied": 2, "more_particles.0.field.x": 3,
           "background.color": 4, "guidance.fake.w": 5}
    assert upgrade_state_dict(old) == {"particles.0.field.encoding.embeddings": 1, "particles.0.renderer.grid.occupied": 2,
                                       "particles.1.field.x": 3, "background.color": 4, "guidance.fake.w": 5}
    new = {"particles.0.field.a": 1}
    assert upgrade_state_dict(new) is new
