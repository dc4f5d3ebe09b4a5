"""How Janus a run is at its own blur: the Janus score with the truth blurred as the run is.

    python docs/bench-quality/blur_matched_janus.py RUN_FOLDER [RUN_FOLDER ...]

docs/evaluation.md (the realistic world, "Janus at the runs' own blur"). The Janus score compares
the render at the five back cameras with the sharp true back and the sharp true front. A blurred
second face is far from both, so it scores near 0 however complete it is ("Why +0.3 is hard").
Here each run's blur is measured, then the score is taken again at that blur:
- sigma: the Gaussian (pixels at 64^2, from 0 to 5 in steps of 0.25) that brings the true FRONT
  views (azimuths 0 + {-30, ..., 30}) closest to the run's renders there, by mean squared RGB
  difference: the run's blur where it shows what it should;
- plain: the Janus score (dreamer eval's, recomputed);
- ideal: the plain score of a perfect second face at that blur, the true front view mirrored and
  blurred by sigma in place of every back view: what the plain score can reach at the run's blur;
- share: plain / ideal, the part of that reach the run attains;
- matched: the Janus score against the true back and front both blurred by sigma (the ideal scores
  +1, the truth blurred by sigma -1);
- best blur: the same with each reference at whichever blur of the grid brings it closest to the
  render, a check on matched that needs no fit at the front.
sigma takes up any difference at the front, not only blur: where it reaches 3 px or more the front
itself is wrong (a wrong outline), and ideal and share do not describe a blur.
"""
from __future__ import annotations

import sys

import torch

from dreamer.eval.janus import BACK_OFFSETS, _cams, likeness, mse, view_scores
from dreamer.eval.metrics import gaussian_blur, object_renderer
from dreamer.evaluation import run_renderer
from dreamer.pipeline import load_system
from dreamer.runs import RunDir
from dreamer.toy.catalogue import toy_object

SIGMAS = [0.25 * k for k in range(21)]


def blur(rgb: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, H, W, 3) blurred by a Gaussian of sigma pixels; sigma 0 leaves it as it is."""
    if sigma == 0:
        return rgb
    x = gaussian_blur(rgb.permute(0, 3, 1, 2), sigma, radius=max(1, int(3 * sigma + 0.5)))
    return x.permute(0, 2, 3, 1)


def janus(render: torch.Tensor, back: torch.Tensor, front: torch.Tensor) -> float:
    """The Janus score of back-camera renders against the true back and front views."""
    return float(view_scores(render, back, front).mean())


def janus_best_blur(render: torch.Tensor, back: torch.Tensor, front: torch.Tensor) -> float:
    """The Janus score with each reference at the blur (of SIGMAS) that brings it closest to the render."""
    d = lambda ref: torch.stack([mse(render, blur(ref, s)) for s in SIGMAS]).min(0).values  # noqa: E731
    return float(likeness(d(back), torch.minimum(d(front), d(front.flip(2)))).mean())


def scores(render_fn, truth_fn, camera) -> dict:
    c = (camera.eval_elevation, camera.eval_distance, camera.eval_fovy, 64)
    back_cams = _cams([180.0 + o for o in BACK_OFFSETS], *c)
    front_cams = _cams(list(BACK_OFFSETS), *c)
    r_back, r_front = render_fn(back_cams)[0], render_fn(front_cams)[0]
    t_back, t_front = truth_fn(back_cams)[0], truth_fn(front_cams)[0]
    fit = [float(mse(r_front, blur(t_front, s)).mean()) for s in SIGMAS]
    sigma = SIGMAS[min(range(len(SIGMAS)), key=fit.__getitem__)]
    plain = janus(r_back, t_back, t_front)
    ideal = janus(blur(t_front.flip(2), sigma), t_back, t_front)
    matched = janus(r_back, blur(t_back, sigma), blur(t_front, sigma))
    best = janus_best_blur(r_back, t_back, t_front)
    return {"sigma": sigma, "plain": plain, "ideal": ideal, "share": plain / ideal, "matched": matched,
            "best": best}


def main(folders: list[str]) -> None:
    print("run | sigma (px) | plain | ideal at sigma | share | matched | best blur")
    with torch.no_grad():
        for folder in folders:
            run = RunDir(folder)
            cfg = run.config()
            s = scores(run_renderer(load_system(run, cfg)), object_renderer(toy_object(cfg.prior, cfg.prompt)),
                       cfg.camera)
            print(f"{folder} | {s['sigma']:.2f} | {s['plain']:+.2f} | {s['ideal']:+.2f} | {s['share']:+.2f} "
                  f"| {s['matched']:+.2f} | {s['best']:+.2f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
