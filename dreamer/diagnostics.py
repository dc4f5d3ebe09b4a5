"""`dreamer eval --diagnostics`: how large two terms of a run's guidance gradient are, at fixed t.

On renders of the run's own training cameras, before training (the field its seed starts from)
and at its last step:
- cfg share: s |e_c - e_u| / |e_u + s (e_c - e_u) - noise|, the part of the SDS gradient that
  classifier-free guidance contributes (s: the run's guidance scale at that step);
- entropy share, for runs with a fake score (VSD, ESD, DSD): 0.5 |e_psi(c) - e_psi(0)| /
  |e_cfg - e_psi(c)|, how much ESD's lambda = 0.5 camera-free mix changes VSD's gradient.
Norms are over a whole batch; each figure is the mean over BATCHES batches, with fixed seeds.
"""
from __future__ import annotations

import torch

from .pipeline import load_checkpoint_state
from .priors.factory import build_prior
from .runs import RunDir

TIMESTEPS = (200, 500, 800)
BATCHES = 4


@torch.no_grad()
def shares_at(system, prior, step: int, timesteps=TIMESTEPS, batches: int = BATCHES) -> dict:
    """{t: {"cfg": share, "entropy": share (fake-score runs)}} for the system as it is."""
    gd = system.guidance
    gd.update_step(step)
    g = torch.Generator().manual_seed(0)
    out = {}
    for t_val in timesteps:
        cfg_share, entropy_share = [], []
        for k in range(batches):
            cams = system.sampler.sample(step + k)
            renders = system.render(cams, system.shading_for(step, g), randomized=False, generator=g)
            x = prior.encode(torch.cat([r["rgb"] for r in renders]))
            cond = system.prompts(cams).to(x.device)
            t = torch.full((x.shape[0],), t_val, dtype=torch.long, device=x.device)
            noise = torch.randn(x.shape, generator=g).to(x)
            x_t = gd.add_noise(x, t, noise)
            e_u, direction = gd.cfg_direction(x_t, t, cond)
            e_cfg = e_u + gd.guidance_scale * direction
            cfg_share.append(float((gd.guidance_scale * direction).norm() / (e_cfg - noise).norm()))
            if hasattr(gd, "fake"):
                e_c = gd.fake(x_t, t, cond.plain, cond.camera)
                e_0 = gd.fake(x_t, t, cond.plain, torch.zeros_like(cond.camera))
                entropy_share.append(float(0.5 * (e_c - e_0).norm() / (e_cfg - e_c).norm()))
        out[t_val] = {"cfg": round(sum(cfg_share) / batches, 4)}
        if entropy_share:
            out[t_val]["entropy"] = round(sum(entropy_share) / batches, 4)
    return out


def gradient_shares(run: RunDir) -> dict:
    """{"initial": shares_at(...), "final": shares_at(...)} of a finished run."""
    from systems.text_to_3d import TextTo3DSystem  # start-up: Lightning loads only when asked
    cfg = run.config()
    prior = build_prior(cfg.prior)
    torch.manual_seed(cfg.seed)
    fresh = TextTo3DSystem(cfg, prior).eval()
    result = {"initial": shares_at(fresh, prior, 0)}
    trained = TextTo3DSystem(cfg, prior, restore=True)
    trained.load_state_dict(load_checkpoint_state(run))
    result["final"] = shares_at(trained.eval(), prior, cfg.trainer.max_steps - 1)
    return result


def shares_table(path: str, shares: dict) -> str:
    lines = []
    for label in ("initial", "final"):
        for key in ("cfg", "entropy"):
            row = shares[label]
            if all(key in row[t] for t in row):
                cells = "  ".join(f"t={t}: {row[t][key]:.3f}" for t in row)
                lines.append(f"{path}  {label:7s} {key} share  {cells}")
    return "\n".join(lines)
