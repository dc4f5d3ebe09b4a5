"""Densification behind the representation contract: oversized Gaussians are pruned (gsplat's
rule stays alive), and a checkpoint's state follows the Gaussians' device and dtype."""
import math

import torch

from dreamer.cameras import orbit
from dreamer.config import build_config
from dreamer.representations import make_representation
from renderers.background import Background
from renderers.volume import ShadingSpec


def gaussians(**densify):
    cfg = build_config(values={"geometry": {"type": "gaussians", "gaussians": {
        "num_points": 300, "densify": {"refine_start_iter": 10, "refine_every": 10, "grow_grad2d": 1e6,
                                       "grow_fraction": 0.0, **densify}}}})
    torch.manual_seed(0)
    return cfg, make_representation(cfg)


def one_step(cfg, rep, step):
    out = rep.render(Background(cfg.background), orbit(2, 15, 2.0, 40, 32), ShadingSpec("albedo"))
    rep.before_backward(out)
    out["rgb"].sum().backward()
    opts = {n: torch.optim.Adam([{"params": p, "lr": 0.0, "name": n}]) for n, p in rep.separate_parameter_groups().items()}
    for o in opts.values():
        o.step()
    rep.after_step(step, out, opts)


def test_oversized_gaussians_are_pruned_after_the_first_refinement():
    cfg, rep = gaussians()
    with torch.no_grad():
        rep.field.splats["scales"][:5] = math.log(0.5)  # 0.5 > prune_scale3d (0.1) x radius (1)
        rep.field.splats["opacities"][:5] = 3.0  # opaque: only their size can prune them
    one_step(cfg, rep, 20)
    assert rep.field.count <= 295
    assert float(rep.field.splats["scales"].exp().amax(-1).max()) <= 0.1 + 1e-6


def test_a_restored_state_follows_the_gaussians_dtype_and_device():
    cfg, rep = gaussians()
    one_step(cfg, rep, 5)  # before refinement: the state only gathers gradients
    saved = {k: v.double() if torch.is_tensor(v) and v.is_floating_point() else v
             for k, v in rep.checkpoint_extras()["densify_state"].items()}  # as if from another machine
    rep.load_checkpoint_extras({"densify_state": saved})
    one_step(cfg, rep, 6)
    floats = [v for v in rep.densifier.state.values() if torch.is_tensor(v) and v.is_floating_point()]
    assert floats and all(v.dtype == torch.float32 and v.device == rep.field.splats["means"].device for v in floats)


def test_all_finite_is_one_answer_for_many_tensors():
    from systems.text_to_3d import all_finite
    good = [torch.ones(3), torch.zeros(2, 2), torch.full((1,), 1e30)]
    assert all_finite(good) and all_finite([])
    for bad in (float("nan"), float("inf"), -float("inf")):
        tensors = [t.clone() for t in good]
        tensors[1][1, 0] = bad
        assert not all_finite(tensors)
