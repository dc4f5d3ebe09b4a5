"""Image metrics of a result against the toy ground truth at held-out cameras.

Every metric takes renders, so the same code scores a trained field, a toy object (the truth
scores itself perfectly) or a deliberately wrong object in the tests. Renders are (B, H, W, 3)
RGB in [0, 1] on a white background with (B, H, W) coverage, shaded with the camera's light.
"""
from __future__ import annotations

import math

import torch

from ..cameras import orbit
from ..toy.render import render_object


def silhouette_iou(pred: torch.Tensor, truth: torch.Tensor, threshold: float = 0.5) -> float:
    """IoU of two coverage maps (any shape), each binarized at `threshold`."""
    a, b = pred > threshold, truth > threshold
    union = (a | b).sum().item()
    return 1.0 if union == 0 else (a & b).sum().item() / union


def psnr(pred: torch.Tensor, truth: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of images in [0, 1] (one line: no dependency for it)."""
    mse = torch.mean((pred.float() - truth.float()) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def saturation(rgb: torch.Tensor, coverage: torch.Tensor, threshold: float = 0.5) -> float:
    """Mean HSV saturation (max - min) / max over covered pixels."""
    mx, mn = rgb.max(-1).values, rgb.min(-1).values
    s = torch.where(mx > 0, (mx - mn) / mx.clamp_min(1e-8), torch.zeros_like(mx))
    mask = coverage > threshold
    return float(s[mask].mean()) if mask.any() else 0.0


LUMA = (0.299, 0.587, 0.114)  # Rec. 601 luma weights


def sharpness(rgb: torch.Tensor, coverage: torch.Tensor, core: float = 0.95) -> float:
    """Interior detail: the RMS luminance difference between neighbouring pixels (right and down)
    where both lie in the opaque core (coverage > `core`). The silhouette's edge is left out, as IoU
    scores it; a blur lowers the figure, and so does a flat colour, while speckle noise raises it,
    so read it with PSNR."""
    lum = rgb.float() @ torch.tensor(LUMA)
    inside = coverage > core
    dx, in_x = lum[..., :, 1:] - lum[..., :, :-1], inside[..., :, 1:] & inside[..., :, :-1]
    dy, in_y = lum[..., 1:, :] - lum[..., :-1, :], inside[..., 1:, :] & inside[..., :-1, :]
    squares = torch.cat([dx[in_x] ** 2, dy[in_y] ** 2])
    return float(squares.mean().sqrt()) if squares.numel() else 0.0


DETAIL_SIGMA = 1.5  # pixels: the high-pass keeps what a Gaussian of this width blurs away
DETAIL_RADIUS = 4  # taps either side of the Gaussian's centre


def gaussian_blur(x: torch.Tensor, sigma: float = DETAIL_SIGMA, radius: int = DETAIL_RADIUS) -> torch.Tensor:
    """(B, C, H, W) blurred channel by channel by a separable Gaussian, edges replicated. Our own few
    lines: torchvision, which has one, is not a dependency, and scipy's would leave torch for numpy."""
    b, c, h, w = x.shape
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
    taps = taps / taps.sum()
    x = torch.nn.functional.pad(x.reshape(b * c, 1, h, w), (radius,) * 4, mode="replicate")
    x = torch.nn.functional.conv2d(x, taps.reshape(1, 1, 1, -1))
    return torch.nn.functional.conv2d(x, taps.reshape(1, 1, -1, 1)).reshape(b, c, h, w)


def detail_match(rgb: torch.Tensor, coverage: torch.Tensor, t_rgb: torch.Tensor, t_coverage: torch.Tensor,
                 core: float = 0.95) -> float:
    """How much of the truth's interior detail a render reproduces, with noise and misplaced detail
    counting against it: 2 <h, h_t> / (|h|^2 + |h_t|^2) = 1 - |h - h_t|^2 / (|h|^2 + |h_t|^2), with
    h the luminance's high-pass (minus its Gaussian blur), over the pixels whose blur reaches only
    pixels in both opaque cores. In [-1, 1]: 1 the truth's detail; 0 none (a flat render) or detail
    unrelated to the truth's (speckle); a blurred truth, whose high-pass is a damped copy, between.
    Bounded, unlike 1 - |h - h_t|^2 / |h_t|^2, so one speckled run cannot swamp a mean."""
    lum = lambda img: (img.float() @ torch.tensor(LUMA))[:, None]
    both = ((coverage > core) & (t_coverage > core)).float()[:, None]
    k = 2 * DETAIL_RADIUS + 1
    inner = -torch.nn.functional.max_pool2d(-both, k, 1, DETAIL_RADIUS) > 0.5  # eroded by the blur's reach
    high_pass = lambda y: (y - gaussian_blur(y))[inner]  # noqa: E731
    h, h_t = high_pass(lum(rgb)), high_pass(lum(t_rgb))
    energy = (h ** 2).sum() + (h_t ** 2).sum()
    return float(2 * (h * h_t).sum() / energy) if energy > 0 else 0.0


def heldout_cameras(camera_cfg, n_views: int = 8, resolution: int = 64):
    """Uniform azimuths, offset by half a step from 0 so no view coincides with the preview views."""
    return orbit(n_views, camera_cfg.eval_elevation, camera_cfg.eval_distance, camera_cfg.eval_fovy,
                 resolution, start_azimuth=180.0 / n_views)


def toy_silhouette_iou(opacity_fn, toy_object, camera_cfg, n_views: int = 8, resolution: int = 64) -> float:
    """opacity_fn(cams) -> (B, H, W) coverage of the result."""
    cams = heldout_cameras(camera_cfg, n_views, resolution)
    _, truth = render_object(toy_object, cams, supersample=2)
    return silhouette_iou(opacity_fn(cams), truth)


def object_renderer(obj, supersample: int = 2):
    """render_fn(cams) -> (rgb, coverage) of a toy object (or anything with distance/query)."""
    return lambda cams: render_object(obj, cams, supersample=supersample)


def image_metrics(render_fn, truth_fn, cams) -> dict:
    """Silhouette IoU, PSNR, saturation (of the covered pixels, relative to the truth, and of the
    opaque core alone), interior sharpness (relative to the truth) and how much of the truth's
    interior detail it reproduces, at `cams`."""
    rgb, cov = render_fn(cams)
    t_rgb, t_cov = truth_fn(cams)
    sat, t_sat = saturation(rgb, cov), saturation(t_rgb, t_cov)
    # Both saturations are kept: for a nearly grey object (the snowman) the ratio alone is unstable.
    # The opaque core (opacity > 0.95) leaves out a fuzzy edge's pale pixels, which can hide
    # over-saturation: large guidance scales push colour inside the object.
    return {"silhouette_iou": silhouette_iou(cov, t_cov), "psnr": psnr(rgb, t_rgb),
            "saturation": sat, "saturation_truth": t_sat, "saturation_ratio": sat / max(t_sat, 1e-8),
            "saturation_core": saturation(rgb, cov, 0.95), **_sharpness(rgb, cov, t_rgb, t_cov)}


def _sharpness(rgb, cov, t_rgb, t_cov) -> dict:
    sharp, t_sharp = sharpness(rgb, cov), sharpness(t_rgb, t_cov)
    return {"sharpness": sharp, "sharpness_truth": t_sharp, "sharpness_ratio": sharp / max(t_sharp, 1e-8),
            "detail_match": detail_match(rgb, cov, t_rgb, t_cov)}
