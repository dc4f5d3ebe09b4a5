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

from dreamer.eval.janus import _cams, front_likeness
from dreamer.eval.metrics import gaussian_blur, object_renderer
from dreamer.evaluation import run_renderer
from dreamer.pipeline import load_system
from dreamer.runs import RunDir
from dreamer.toy.catalogue import toy_object


def scores(render_fn, truth_fn, camera) -> tuple[float, float]:
    """(side score, back score) of render_fn against truth_fn."""
    c = (camera.eval_elevation, camera.eval_distance, camera.eval_fovy, 64)
    side = torch.cat([front_likeness(render_fn, truth_fn, centre, *c) for centre in (90.0, 270.0)])
    return float(side.mean()), float(front_likeness(render_fn, truth_fn, 180.0, *c).mean())


def blurred(render_fn, sigma: float):
    """render_fn with its RGB blurred by a Gaussian of sigma pixels."""
    def render(cams):
        rgb, cov = render_fn(cams)
        x = gaussian_blur(rgb.permute(0, 3, 1, 2), sigma, radius=int(3 * sigma))
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
            side, back = scores(render_fn, truth_fn, cfg.camera)
            print(f"{folder} | {side:+.2f} | {back:+.2f}", flush=True)
            if cfg.prompt not in references:
                refs = (blurred(truth_fn, 2.0), azimuth_mean(truth_fn, cfg.camera))
                references[cfg.prompt] = [scores(f, truth_fn, cfg.camera) for f in refs]
    print("\nobject | truth blurred by 2 px: side / back | azimuth-mean blob: side / back")
    for prompt, ((bs, bb), (ms, mb)) in references.items():
        print(f"{prompt} | {bs:+.2f} / {bb:+.2f} | {ms:+.2f} / {mb:+.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
