"""Silhouette IoU of a result against the toy ground truth at held-out cameras."""
from __future__ import annotations

import torch

from ..cameras import orbit
from ..toy.render import render_object


def silhouette_iou(pred: torch.Tensor, truth: torch.Tensor, threshold: float = 0.5) -> float:
    """IoU of two coverage maps (any shape), each binarized at `threshold`."""
    a, b = pred > threshold, truth > threshold
    union = (a | b).sum().item()
    return 1.0 if union == 0 else (a & b).sum().item() / union


def heldout_cameras(camera_cfg, n_views: int = 8, resolution: int = 64):
    """Uniform azimuths, offset by half a step from 0 so no view coincides with the preview views."""
    return orbit(n_views, camera_cfg.eval_elevation, camera_cfg.eval_distance, camera_cfg.eval_fovy,
                 resolution, start_azimuth=180.0 / n_views)


def toy_silhouette_iou(opacity_fn, toy_object, camera_cfg, n_views: int = 8, resolution: int = 64) -> float:
    """opacity_fn(cams) -> (B, H, W) coverage of the result."""
    cams = heldout_cameras(camera_cfg, n_views, resolution)
    _, truth = render_object(toy_object, cams, supersample=2)
    return silhouette_iou(opacity_fn(cams), truth)
