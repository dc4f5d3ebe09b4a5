"""The voxel solid an exported mesh is the surface of: a field's artefacts removed first.

A trained field holds things no asset should: floaters (small disconnected blobs), sealed bubbles
inside the body, and thin tunnels where the field is weak. The rule, on the solid (voxels above the
isosurface level), in this order:
1. keep the largest face-connected piece (floaters and specks go);
2. close tunnels and notches narrower than CLOSE_VOXELS * 2 voxels (a morphological closing with
   a ball; a mug's handle, at 128 voxels across, is wider than this and stays);
3. fill every cavity the outside cannot reach (bubbles inside the body become solid);
4. keep the largest face-connected piece again (the closing may have joined or split pieces).
Face connectivity (not edge or corner) is what marching cubes needs to give one manifold surface.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

CLOSE_VOXELS = 2  # ball radius of the closing, in voxels


def largest_piece(solid: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(solid)  # face connectivity by default
    if count <= 1:
        return solid.copy()
    sizes = np.bincount(labels.ravel())[1:]
    return labels == 1 + int(np.argmax(sizes))


def ball(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None, None] ** 2 + r[None, :, None] ** 2 + r[None, None, :] ** 2) <= radius * radius


def clean_solid(solid: np.ndarray, close_voxels: int = CLOSE_VOXELS) -> np.ndarray:
    """The rule above on a boolean grid; the grid is padded so the closing never meets its edge."""
    solid = largest_piece(solid)
    if close_voxels > 0:
        pad = close_voxels + 1
        padded = np.pad(solid, pad)
        padded = ndimage.binary_closing(padded, structure=ball(close_voxels))
        solid = padded[pad:-pad, pad:-pad, pad:-pad] | solid
    solid = ndimage.binary_fill_holes(solid)
    return largest_piece(solid)


def surface_field(values: np.ndarray, level: float, solid: np.ndarray) -> np.ndarray:
    """values - level, changed only where the cleaned solid disagrees with it: a voxel the rule
    removed sits just outside the surface, one it added just inside. Elsewhere the field keeps its
    own values, so marching cubes still places vertices between voxels, not on them."""
    f = values.astype(np.float64) - level
    small = 1e-3 * max(float(np.abs(f).max()), 1e-12)
    f = np.where(solid & (f <= 0), small, f)
    return np.where(~solid & (f > 0), -small, f)
