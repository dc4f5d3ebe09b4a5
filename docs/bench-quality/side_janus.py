"""Does a run show its front from the sides? The Janus score's test, moved to the side cameras.

    python docs/bench-quality/side_janus.py RUN_FOLDER [RUN_FOLDER ...]

docs/evaluation.md (the realistic world, "Seen from the sides"). The Janus score compares the
render at five back cameras (180 + {-30, ..., 30} degrees) with the true back and the true front.
Here the same comparison runs at 90 + o and 270 + o: the render against the true side view there
and against the true front view T(o) (or its mirror); (d_side - d_front) / (d_side + d_front),
averaged over the ten views. It prints, per run, that side score and the run's back score, then
two references per object: the truth blurred by 2 px (a blurred but right object) and the mean of
the truth's views over all azimuths (a blob with no preferred direction).
"""
from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

from dreamer.eval.janus import BACK_OFFSETS, _cams
from dreamer.eval.metrics import object_renderer
from dreamer.evaluation import run_renderer
from dreamer.pipeline import load_system
from dreamer.runs import RunDir
from dreamer.toy.catalogue import toy_object


def front_likeness(render_fn, truth_fn, camera, centre: float) -> float:
    """Mean over centre + BACK_OFFSETS of (d_true - d_front) / (d_true + d_front); T(o) is the front."""
    cams = lambda az: _cams(az, camera.eval_elevation, camera.eval_distance, camera.eval_fovy, 64)  # noqa: E731
    result = render_fn(cams([centre + o for o in BACK_OFFSETS]))[0]
    true = truth_fn(cams([centre + o for o in BACK_OFFSETS]))[0]
    front = truth_fn(cams(list(BACK_OFFSETS)))[0]
    mse = lambda a, b: ((a - b) ** 2).flatten(1).mean(1)  # noqa: E731
    d_true, d_front = mse(result, true), torch.minimum(mse(result, front), mse(result, front.flip(2)))
    return float(((d_true - d_front) / (d_true + d_front).clamp_min(1e-12)).mean())


def side_score(render_fn, truth_fn, camera) -> float:
    return 0.5 * sum(front_likeness(render_fn, truth_fn, camera, c) for c in (90.0, 270.0))


def blurred(render_fn, sigma: float):
    """render_fn with its RGB blurred by a Gaussian of sigma pixels."""
    r = int(3 * sigma)
    k = torch.exp(-torch.arange(-r, r + 1.0) ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).view(1, 1, 1, -1).repeat(3, 1, 1, 1)

    def render(cams):
        rgb, cov = render_fn(cams)
        x = F.conv2d(F.pad(rgb.permute(0, 3, 1, 2), (r, r, 0, 0), mode="replicate"), k, groups=3)
        x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.transpose(2, 3), groups=3)
        return x.permute(0, 2, 3, 1), cov
    return render


def azimuth_mean(truth_fn, camera):
    """A render_fn answering every camera with the mean of the truth's views over 36 azimuths."""
    cams = _cams([float(a) for a in range(0, 360, 10)], camera.eval_elevation, camera.eval_distance,
                 camera.eval_fovy, 64)
    mean = truth_fn(cams)[0].mean(0, keepdim=True)
    return lambda _: (mean, None)  # one image; the differences broadcast over the cameras


def main(folders: list[str]) -> None:
    print("run | side score | back score")
    references = {}
    with torch.no_grad():
        for folder in folders:
            run = RunDir(folder)
            cfg = run.config()
            truth_fn = object_renderer(toy_object(cfg.prior, cfg.prompt))
            render_fn = run_renderer(load_system(run, cfg))
            back = front_likeness(render_fn, truth_fn, cfg.camera, 180.0)
            print(f"{folder} | {side_score(render_fn, truth_fn, cfg.camera):+.2f} | {back:+.2f}", flush=True)
            if cfg.prompt not in references:
                refs = (blurred(truth_fn, 2.0), azimuth_mean(truth_fn, cfg.camera))
                references[cfg.prompt] = [(side_score(f, truth_fn, cfg.camera), front_likeness(f, truth_fn, cfg.camera, 180.0))
                                          for f in refs]
    print("\nobject | truth blurred by 2 px: side / back | azimuth-mean blob: side / back")
    for prompt, ((bs, bb), (ms, mb)) in references.items():
        print(f"{prompt} | {bs:+.2f} / {bb:+.2f} | {ms:+.2f} / {mb:+.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
