"""The Janus score: does the result show a front where its back should be?

For an object with a distinct front (front at azimuth 0), take back cameras at azimuths
180 + {-30, -15, 0, 15, 30} degrees. At each, compare the result's render R with
  - the true back view T(az), and
  - the true front view T(az - 180), also mirrored left-right (a face grown on the back, seen from
    behind, is the front view mirrored),
by the mean squared RGB difference on a white background: d_back = mse(R, T(az)),
d_front = min(mse(R, T(az - 180)), mse(R, mirror(T(az - 180)))). The view's score is
(d_back - d_front) / (d_back + d_front), in [-1, 1]; the Janus score is its mean over the views.
  -1: every back view is the true back (no Janus); +1: every back view is a true front (a face on
  the back, or the object turned round); around 0: neither (a blur, or a different object).
"""
from __future__ import annotations

import torch

from ..cameras import make_cameras

BACK_OFFSETS = (-30.0, -15.0, 0.0, 15.0, 30.0)


def _cams(azimuths, elevation, distance, fovy, resolution):
    n = len(azimuths)
    full = lambda v: torch.full((n,), float(v))
    return make_cameras(full(elevation), torch.tensor(azimuths, dtype=torch.float32), full(distance), full(fovy),
                        resolution, resolution)


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared difference per view of (B, H, W, 3) images."""
    return ((a - b) ** 2).flatten(1).mean(1)


def likeness(d_true: torch.Tensor, d_front: torch.Tensor) -> torch.Tensor:
    """(d_true - d_front) / (d_true + d_front): -1 the true view, +1 the front, 0 neither."""
    return (d_true - d_front) / (d_true + d_front).clamp_min(1e-12)


def view_scores(result: torch.Tensor, t_true: torch.Tensor, t_front: torch.Tensor) -> torch.Tensor:
    """Per view: likeness of the render's distances from the true view and from the nearer of the
    true front view and its mirror."""
    return likeness(mse(result, t_true), torch.minimum(mse(result, t_front), mse(result, t_front.flip(2))))


def front_likeness(render_fn, truth_fn, centre: float, elevation: float, distance: float, fovy: float,
                   resolution: int = 64) -> torch.Tensor:
    """view_scores at azimuths centre + BACK_OFFSETS, against the true view there and the true front
    view T(offset). At centre 180 these are the Janus score's views."""
    cams = _cams([centre + o for o in BACK_OFFSETS], elevation, distance, fovy, resolution)
    # Each camera carries its light (at the eye), so a face on the back, seen and lit from behind,
    # is shaded as the true face seen and lit from the front.
    front_cams = _cams(list(BACK_OFFSETS), elevation, distance, fovy, resolution)
    return view_scores(render_fn(cams)[0], truth_fn(cams)[0], truth_fn(front_cams)[0])


def janus_score(render_fn, truth_fn, elevation: float, distance: float, fovy: float,
                resolution: int = 64) -> dict:
    """render_fn / truth_fn: cams -> (rgb (B, H, W, 3), coverage). Returns the score and its per-view terms."""
    views = front_likeness(render_fn, truth_fn, 180.0, elevation, distance, fovy, resolution)
    return {"janus_score": float(views.mean()), "janus_views": [round(float(v), 4) for v in views]}
