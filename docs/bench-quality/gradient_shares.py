"""How large two terms of a toy-prior run's guidance gradient are (the figures in docs/evaluation.md).

    python docs/bench-quality/gradient_shares.py RUN_DIR [RUN_DIR ...]

For each run, on renders of its own training cameras, at fixed timesteps t:
- CFG share: s |e_c - e_u| / |e_u + s (e_c - e_u) - noise|, the part of the SDS gradient that
  classifier-free guidance contributes; before training (the initial field) and at the end.
- For runs with a fake score (VSD, ESD, DSD): entropy share, 0.5 |e_psi(c) - e_psi(0)| /
  |e_cfg - e_psi(c)|, how much ESD's lambda = 0.5 camera-free mix changes VSD's gradient.
Norms are over the whole batch; each figure is the mean of 4 batches.
"""
from __future__ import annotations

import sys

import torch

from dreamer.priors.factory import build_prior
from dreamer.runs import RunDir
from systems.text_to_3d import TextTo3DSystem

TIMESTEPS = (200, 500, 800, 950, 980)
BATCHES = 4


def load(run: RunDir, cfg, prior, trained: bool) -> TextTo3DSystem:
    system = TextTo3DSystem(cfg, prior)
    if trained:
        state = torch.load(run.checkpoint, map_location="cpu", weights_only=False)
        system.load_state_dict(state["state_dict"])
    return system.eval()


@torch.no_grad()
def shares(system, prior, step: int) -> dict[int, dict[str, float]]:
    gd = system.guidance
    gd.update_step(step)
    g = torch.Generator().manual_seed(0)
    out = {}
    for t_val in TIMESTEPS:
        cfg_share, entropy_share = [], []
        for k in range(BATCHES):
            cams = system.sampler.sample(step + k)
            renders = system.render(cams, system.shading_for(step, g), randomized=False, generator=g)
            x = prior.encode(torch.cat([r["rgb"] for r in renders]))
            cond = system.prompts(cams).to(x.device)
            t = torch.full((x.shape[0],), t_val, dtype=torch.long)
            noise = torch.randn(x.shape, generator=g)
            x_t = gd.add_noise(x, t, noise)
            e_u, direction = gd.cfg_direction(x_t, t, cond)
            e_cfg = e_u + gd.guidance_scale * direction
            cfg_share.append(((gd.guidance_scale * direction).norm() / (e_cfg - noise).norm()).item())
            if hasattr(gd, "fake"):
                e_c = gd.fake(x_t, t, cond.plain, cond.camera)
                e_0 = gd.fake(x_t, t, cond.plain, torch.zeros_like(cond.camera))
                entropy_share.append((0.5 * (e_c - e_0).norm() / (e_cfg - e_c).norm()).item())
        out[t_val] = {"cfg": sum(cfg_share) / BATCHES}
        if entropy_share:
            out[t_val]["entropy"] = sum(entropy_share) / BATCHES
    return out


def main(paths: list[str]) -> None:
    torch.set_num_threads(1)
    for path in paths:
        run = RunDir(path)
        cfg = run.config()
        prior = build_prior(cfg.prior)
        print(f"{path} ({cfg.guidance.method}, guidance scale {cfg.guidance.guidance_scale})")
        for label, trained, step in (("initial", False, 0), ("final", True, cfg.trainer.max_steps - 1)):
            result = shares(load(run, cfg, prior, trained), prior, step)
            for key in ("cfg", "entropy"):
                if key in result[TIMESTEPS[0]]:
                    cells = "  ".join(f"t={t}: {result[t][key]:.3f}" for t in TIMESTEPS)
                    print(f"  {label:7s} {key} share  {cells}")


if __name__ == "__main__":
    main(sys.argv[1:])
