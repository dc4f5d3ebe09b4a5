"""Does the prior accept a two-faced object's views, and keep a true one's? A screening without training.

    python docs/bench-quality/janus_acceptance.py [OVERRIDE ...]     (e.g. prior.local_window=9 ...)

For each front-distinct object, at five side cameras (90 degrees +/- 30) and the five Janus back
cameras (180 +/- 30): render the true object and its two-faced fold (MirroredBack in janus_fixed_point.py),
noise each render to t, take the guided estimate of the clean image (the SDS recipe's scale, the
cameras' view prompts, realistic world plus OVERRIDEs) and score its likeness to the two-faced view
against the true one: (d_true - d_janus) / (d_true + d_janus), in [-1, 1]. From a two-faced start,
+1 keeps it and -1 takes it to the truth; from a true start, the same sign says where it is pulled.
Means over DRAWS noise draws.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from dreamer.cameras import view_labels, view_prompt
from dreamer.config import build_config
from dreamer.eval.janus import BACK_OFFSETS, _cams, likeness, mse
from dreamer.guidance import build_guidance
from dreamer.guidance.base import Conditioning
from dreamer.priors.factory import build_prior
from dreamer.toy.render import render_object

sys.path.insert(0, str(Path(__file__).parent))
from janus_fixed_point import MirroredBack  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STEPS = (200, 400, 600)
DRAWS = 2


def pulls(prior, guidance, name, true, janus, azimuths, elevation) -> list[float]:
    """Per t in STEPS, from each start (true, janus): the estimate's mean likeness to the two-faced view."""
    n = len(azimuths)
    emb = prior.embed([view_prompt(f"a {name}", label) for label in view_labels([elevation] * n, azimuths)])
    null = prior.embed([""] * n)
    cond = Conditioning(cond=emb, null=null, negative=null, plain=emb, camera=torch.zeros(n, 16))
    rows = []
    for start in (true, janus):
        x0 = start.permute(0, 3, 1, 2) * 2 - 1
        cells = []
        for t_value in STEPS:
            t, generator, scores = torch.full((n,), t_value), torch.Generator().manual_seed(0), []
            for _ in range(DRAWS):
                x_t = guidance.add_noise(x0, t, torch.randn(x0.shape, generator=generator))
                est = guidance.clean_estimate(x_t, t, guidance.guided_eps(x_t, t, cond)).clamp(-1, 1)
                image = ((est + 1) / 2).permute(0, 2, 3, 1)
                scores.append(float(likeness(mse(image, true), mse(image, janus)).mean()))
            cells.append(sum(scores) / len(scores))
        rows.append(cells)
    return rows


def main(overrides: list[str]) -> None:
    cfg = build_config(ROOT / "configs" / "sds-nerf.yaml", ["prior.world=realistic", *overrides])
    prior = build_prior(cfg.prior)
    guidance = build_guidance(cfg.guidance, prior, cfg.trainer.max_steps)
    c = cfg.camera
    setting = " ".join(overrides) or "the world as set"
    print(f"likeness to the two-faced view, t = {' / '.join(map(str, STEPS))} ({setting})")
    for name in ("penguin", "rubber duck", "toy car", "snowman"):
        obj = prior.catalogue.objects[prior.catalogue.resolve(name)[0]]
        for where, centre in (("side", 90.0), ("back", 180.0)):
            azimuths = [centre + o for o in BACK_OFFSETS]
            cams = _cams(azimuths, c.eval_elevation, c.eval_distance, c.eval_fovy, 64)
            true = render_object(obj, cams, supersample=2)[0]
            janus = render_object(MirroredBack(obj), cams, supersample=2)[0]
            rows = pulls(prior, guidance, name, true, janus, azimuths, c.eval_elevation)
            for start, cells in zip(("true", "two-faced"), rows):
                print(f"{name:12s} {where:4s} from {start:9s} " + " / ".join(f"{v:+.2f}" for v in cells), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
