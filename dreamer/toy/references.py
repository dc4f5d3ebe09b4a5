"""Reference renders of the catalogue: the toy prior's "training set", cached on disk.

Cameras are front-biased like photos on the internet: about half within 45 degrees of the front,
few from the back, a few from above. That bias is what makes real priors produce Janus objects.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm import tqdm

from ..atomic import cache_dir, write_with
from ..cameras import VIEW_LABELS, camera_position, make_cameras, view_labels
from .render import render_object

# Reference camera distribution: shared with the default training recipe (configs/base.yaml).
REF_DISTANCE = 2.0
REF_FOVY = 40.0
REF_ELEVATION = (-10.0, 45.0)
OVERHEAD_SHARE = 0.05
SECTOR_SHARES = {"front": 0.5, "side": 0.38, "back": 0.12}
FORMAT_VERSION = 2  # 2: coverage stored


@dataclass
class ReferenceSet:
    images: torch.Tensor  # (N, 3, R, R) in [-1, 1]
    object_ids: torch.Tensor  # (N,) index into the catalogue
    labels: torch.Tensor  # (N,) index into VIEW_LABELS
    elevation: torch.Tensor  # (N,)
    azimuth: torch.Tensor  # (N,)
    coverage: torch.Tensor  # (N, R, R) in [0, 1]: the object's silhouette, antialiased


def reference_cameras(n: int, resolution: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    u = lambda lo, hi, k=n: lo + (hi - lo) * torch.rand(k, generator=g)  # noqa: E731
    sector = torch.multinomial(torch.tensor(list(SECTOR_SHARES.values())), n, replacement=True, generator=g)
    mag = torch.where(sector == 0, u(0, 45), torch.where(sector == 1, u(45, 135), u(135, 180)))
    sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    azimuth = mag * sign
    overhead = torch.rand(n, generator=g) < OVERHEAD_SHARE
    elevation = torch.where(overhead, u(62, 85), u(*REF_ELEVATION))
    distance, fovy = torch.full((n,), REF_DISTANCE), torch.full((n,), REF_FOVY)
    eye = camera_position(elevation, azimuth, distance)
    jitter = torch.randn(n, 3, generator=g) * 0.2
    light = torch.nn.functional.normalize(eye / eye.norm(dim=-1, keepdim=True) + jitter, dim=-1)
    light = light * u(0.8, 1.5)[:, None]
    cams = make_cameras(elevation, azimuth, distance, fovy, resolution, resolution, light_pos=light)
    return cams


def build_object_references(obj, n: int, resolution: int, seed: int) -> ReferenceSet:
    cams = reference_cameras(n, resolution, seed)
    rgb, coverage = render_object(obj, cams, supersample=2)
    labels = torch.tensor([VIEW_LABELS.index(lb) for lb in view_labels(cams.elevation, cams.azimuth)])
    return ReferenceSet(rgb.permute(0, 3, 1, 2) * 2 - 1, torch.zeros(n, dtype=torch.long), labels,
                        cams.elevation, cams.azimuth, coverage.float())


def load_references(catalogue, n_per_object: int, resolution: int, progress=None) -> ReferenceSet:
    """All objects' references, from the cache or rendered now (and cached atomically)."""
    parts, missing = [], []
    for idx, obj in enumerate(catalogue.objects):
        key = f"v{FORMAT_VERSION}-{obj.fingerprint()}-{resolution}px-{n_per_object}.pt"
        path = cache_dir() / "toy-references" / key
        refs = None
        if path.exists():
            try:
                refs = ReferenceSet(**torch.load(path, weights_only=True))
            except Exception:  # a corrupt cache entry is rebuilt, never trusted
                refs = None
        parts.append(refs)
        if refs is None:
            missing.append((idx, obj, path))
    if missing and progress:
        progress(f"rendering the toy prior's reference views ({n_per_object} per object, "
                 f"{len(missing)} objects; cached for later runs)")
    for idx, obj, path in tqdm(missing, desc="toy references", unit="object", disable=not progress or not missing):
        refs = build_object_references(obj, n_per_object, resolution, seed=1000 + idx)
        write_with(path, lambda p, r=refs: torch.save(r.__dict__, p))
        parts[idx] = refs
    for idx, refs in enumerate(parts):
        refs.object_ids = torch.full_like(refs.object_ids, idx)
    return ReferenceSet(*(torch.cat([getattr(p, f) for p in parts]) for f in
                          ("images", "object_ids", "labels", "elevation", "azimuth", "coverage")))
