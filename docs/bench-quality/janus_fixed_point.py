"""Is a two-faced object where SDS settles, or only somewhere it passes? Start a run from it and see.

    python docs/bench-quality/janus_fixed_point.py OBJECT START [OVERRIDE ...]

START is `true` (the object itself) or `janus` (its front mirrored onto its back: what a perfect
second face looks like). The run's field is first fitted to START at the recipe's training
cameras (FIT_STEPS steps of Adam on the squared RGB error, on white, albedo and lit renders in
turn), then trained with the SDS recipe as usual (a fresh optimizer and schedules from step 0;
OVERRIDEs as on the command line, e.g. prior.world=realistic). It prints the Janus score and
silhouette IoU after the fit and after the run. If both starts end where a run from the usual blob
ends, that end is SDS's own; if each start stays where it began, the path from the blob decides
how Janus a run gets. About 4 minutes a run on one CPU core.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from dreamer.config import build_config
from dreamer.eval.janus import janus_score
from dreamer.eval.metrics import heldout_cameras, object_renderer, silhouette_iou
from dreamer.evaluation import run_renderer
from dreamer.pipeline import build_system
from dreamer.toy.catalogue import toy_object
from dreamer.toy.render import render_object
from renderers.volume import ShadingSpec
from systems.trainer import fit, make_trainer

ROOT = Path(__file__).resolve().parents[2]
FIT_STEPS = 600
WHITE = torch.ones(3)


class MirroredBack:
    """The object with its front half mirrored onto its back (front is +z): a perfect second face."""

    def __init__(self, obj):
        self.obj = obj

    def _fold(self, points):
        return torch.cat([points[:, :2], points[:, 2:].abs()], 1)

    def distance(self, points):
        return self.obj.distance(self._fold(points))

    def query(self, points):
        return self.obj.query(self._fold(points))


def fit_to(system, target, steps: int) -> float:
    """Fit the run's field to `target` at the training cameras, albedo and lit renders in turn (SDS
    sees both, the Janus score the lit ones); the last step's RMSE."""
    m = system.cfg.material
    groups = [{"params": p, "lr": system._lr(n, 0)} for n, p in system._groups().items() if n != "fake_score"]
    adam = torch.optim.Adam(groups, betas=tuple(system.cfg.optimizer.betas), eps=system.cfg.optimizer.eps)
    for step in range(steps):
        g = torch.Generator().manual_seed(step)
        for rep in system.particles:
            rep.prepare_step(step, g)
        cams = system.sampler.sample(step)
        ambient, diffuse = (1.0, 0.0) if step % 2 == 0 else (m.ambient_light, m.diffuse_light)
        mode = "albedo" if step % 2 == 0 else "shaded"
        rgb = system.render(cams, ShadingSpec(mode, ambient, diffuse), bg_color=WHITE)[0]["rgb"]
        with torch.no_grad():
            want, _ = render_object(target, cams, ambient=ambient, diffuse=diffuse)
        loss = ((rgb - want) ** 2).mean()
        adam.zero_grad(set_to_none=True)
        loss.backward()
        adam.step()
    return float(loss.detach()) ** 0.5


def scores(system, cfg, obj) -> str:
    render_fn, truth_fn = run_renderer(system), object_renderer(obj)
    cams = heldout_cameras(cfg.camera, 16, 64)
    iou = silhouette_iou(render_fn(cams)[1], truth_fn(cams)[1])
    c = cfg.camera
    janus = janus_score(render_fn, truth_fn, c.eval_elevation, c.eval_distance, c.eval_fovy, 64)["janus_score"]
    return f"Janus {janus:+.2f}, IoU {iou:.3f}"


def main(name: str, start: str, overrides: list[str]) -> None:
    torch.set_num_threads(1)
    cfg = build_config(ROOT / "configs" / "sds-nerf.yaml", [f"prompt=a {name}", *overrides])
    obj = toy_object(cfg.prior, cfg.prompt)
    torch.manual_seed(cfg.seed)
    system = build_system(cfg)
    rmse = fit_to(system, MirroredBack(obj) if start == "janus" else obj, FIT_STEPS)
    print(f"{name}, from {start}: fitted (RMSE {rmse:.3f}): {scores(system, cfg, obj)}", flush=True)
    fit(make_trainer(cfg.trainer.max_steps), system)
    print(f"{name}, from {start}: after {cfg.trainer.max_steps} SDS steps: {scores(system, cfg, obj)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
