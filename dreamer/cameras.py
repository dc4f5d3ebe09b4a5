"""Cameras: the random training sampler, fixed evaluation orbits, rays and view labels.

Conventions (used everywhere in dreamer): world +Y is up and the object's front faces +Z.
A camera at elevation e, azimuth a (degrees) and distance d sits at
d * (cos e sin a, sin e, cos e cos a), so azimuth 0 looks at the front. Camera-to-world matrices
use the OpenGL camera frame (+X right, +Y up, looking down -Z).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

VIEW_LABELS = ("front", "side", "back", "overhead")


@dataclass
class CameraBatch:
    c2w: torch.Tensor  # (B, 4, 4)
    fovy: torch.Tensor  # (B,) degrees
    elevation: torch.Tensor  # (B,) degrees
    azimuth: torch.Tensor  # (B,) degrees in [-180, 180)
    distance: torch.Tensor  # (B,)
    light_pos: torch.Tensor  # (B, 3)
    height: int
    width: int

    def __len__(self) -> int:
        return self.c2w.shape[0]

    def subset(self, index: slice) -> "CameraBatch":
        return CameraBatch(**{k: (v[index] if torch.is_tensor(v) else v) for k, v in self.__dict__.items()})


def wrap_azimuth(azimuth: torch.Tensor) -> torch.Tensor:
    return (azimuth + 180.0) % 360.0 - 180.0


def camera_position(elevation, azimuth, distance) -> torch.Tensor:
    e, a = torch.deg2rad(elevation), torch.deg2rad(azimuth)
    return torch.stack([torch.cos(e) * torch.sin(a), torch.sin(e), torch.cos(e) * torch.cos(a)], -1) \
        * distance[..., None]


def look_at(eye: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Camera-to-world matrices (B, 4, 4) for cameras at `eye` looking at `target` (origin)."""
    target = torch.zeros_like(eye) if target is None else target
    forward = torch.nn.functional.normalize(target - eye, dim=-1)
    up = torch.tensor([0.0, 1.0, 0.0], dtype=eye.dtype).expand_as(eye)
    # Straight up or down: any horizontal "up" works; pick +Z so the frame stays defined.
    degenerate = (torch.cross(forward, up, dim=-1).norm(dim=-1) < 1e-6)[..., None]
    up = torch.where(degenerate, torch.tensor([0.0, 0.0, 1.0], dtype=eye.dtype).expand_as(eye), up)
    right = torch.nn.functional.normalize(torch.cross(forward, up, dim=-1), dim=-1)
    true_up = torch.cross(right, forward, dim=-1)
    c2w = torch.zeros(*eye.shape[:-1], 4, 4, dtype=eye.dtype)
    c2w[..., :3, 0], c2w[..., :3, 1], c2w[..., :3, 2], c2w[..., :3, 3] = right, true_up, -forward, eye
    c2w[..., 3, 3] = 1.0
    return c2w


def make_cameras(elevation, azimuth, distance, fovy, height, width, light_pos=None) -> CameraBatch:
    elevation, azimuth, distance, fovy = (torch.as_tensor(v, dtype=torch.float32) for v in
                                          (elevation, azimuth, distance, fovy))
    eye = camera_position(elevation, azimuth, distance)
    if light_pos is None:
        light_pos = eye.clone()
    return CameraBatch(look_at(eye), fovy, elevation, wrap_azimuth(azimuth), distance, light_pos,
                       int(height), int(width))


def orbit(n: int, elevation: float, distance: float, fovy: float, resolution: int,
          start_azimuth: float = 0.0) -> CameraBatch:
    """n cameras at uniform azimuths on one circle: evaluation views and turntable frames."""
    az = start_azimuth + torch.arange(n, dtype=torch.float32) * (360.0 / n)
    full = lambda v: torch.full((n,), float(v))  # noqa: E731
    return make_cameras(full(elevation), az, full(distance), full(fovy), resolution, resolution)


def get_rays(cams: CameraBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray origins and unit directions, each (B, H, W, 3), through pixel centres."""
    H, W = cams.height, cams.width
    focal = 0.5 * H / torch.tan(torch.deg2rad(cams.fovy) / 2)  # (B,)
    j, i = torch.meshgrid(torch.arange(H, dtype=torch.float32) + 0.5,
                          torch.arange(W, dtype=torch.float32) + 0.5, indexing="ij")
    x = (i - W / 2)[None] / focal[:, None, None]
    y = -(j - H / 2)[None] / focal[:, None, None]
    dirs_cam = torch.stack([x, y, -torch.ones_like(x)], -1)  # (B, H, W, 3)
    dirs = torch.einsum("bhwc,brc->bhwr", dirs_cam, cams.c2w[:, :3, :3].to(dirs_cam.dtype))
    dirs = torch.nn.functional.normalize(dirs, dim=-1)
    origins = cams.c2w[:, None, None, :3, 3].expand_as(dirs)
    return origins, dirs


def opencv_cameras(cams: CameraBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """World-to-camera matrices (B, 4, 4) in OpenCV axes (x right, y down, looking down +z) and
    pinhole intrinsics (B, 3, 3), the form gsplat takes; our c2w are OpenGL (y up, looking down -z)."""
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=cams.c2w.dtype))
    viewmats = torch.linalg.inv(cams.c2w @ flip)
    focal = 0.5 * cams.height / torch.tan(torch.deg2rad(cams.fovy) / 2)
    Ks = torch.zeros(len(cams), 3, 3, dtype=cams.c2w.dtype)
    Ks[:, 0, 0], Ks[:, 1, 1] = focal, focal
    Ks[:, 0, 2], Ks[:, 1, 2], Ks[:, 2, 2] = cams.width / 2, cams.height / 2, 1.0
    return viewmats, Ks


def view_labels(elevation, azimuth, front_threshold=45.0, back_threshold=45.0,
                overhead_threshold=60.0) -> list[str]:
    """front / side / back / overhead per camera, by the view-dependent prompting thresholds."""
    labels = []
    for e, a in zip(torch.as_tensor(elevation).flatten().tolist(),
                    wrap_azimuth(torch.as_tensor(azimuth, dtype=torch.float32)).flatten().tolist()):
        if e > overhead_threshold:
            labels.append("overhead")
        elif abs(a) < front_threshold:
            labels.append("front")
        elif abs(a) > 180.0 - back_threshold:
            labels.append("back")
        else:
            labels.append("side")
    return labels


def view_prompt(prompt: str, label: str) -> str:
    return f"{prompt}, {label} view"


class CameraSampler:
    """Random training cameras, a pure function of (seed, step) so a resumed run sees the same
    stream of cameras as an uninterrupted one."""

    def __init__(self, cfg, seed: int):
        self.cfg, self.seed = cfg, seed

    def resolution(self, step: int) -> tuple[int, int]:
        stage = sum(step >= m for m in self.cfg.resolution_milestones)
        pick = lambda v: int(v[min(stage, len(v) - 1)] if isinstance(v, list) else v)  # noqa: E731
        return pick(self.cfg.height), pick(self.cfg.width)

    def sample(self, step: int) -> CameraBatch:
        c, B = self.cfg, self.cfg.batch_size
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        u = lambda lo_hi, n=B: lo_hi[0] + (lo_hi[1] - lo_hi[0]) * torch.rand(n, generator=g)  # noqa: E731
        elevation = u(c.elevation_range)
        if c.batch_uniform_azimuth:  # one azimuth per equal slice of the range: stratified
            span = c.azimuth_range[1] - c.azimuth_range[0]
            azimuth = c.azimuth_range[0] + (torch.arange(B) + torch.rand(B, generator=g)) * span / B
        else:
            azimuth = u(c.azimuth_range)
        distance, fovy = u(c.distance_range), u(c.fovy_range)
        eye = camera_position(elevation, azimuth, distance)
        # DreamFusion-style light: near the camera direction, at its own distance.
        jitter = torch.randn(B, 3, generator=g) * 0.2
        light_dir = torch.nn.functional.normalize(eye / eye.norm(dim=-1, keepdim=True) + jitter, dim=-1)
        light_pos = light_dir * u(c.light_distance_range)[:, None]
        H, W = self.resolution(step)
        return CameraBatch(look_at(eye), fovy, elevation, wrap_azimuth(azimuth), distance,
                           light_pos, H, W)



def sphere_interval(origins: torch.Tensor, dirs: torch.Tensor, radius: float):
    """Entry and exit distances of unit-direction rays through a sphere at the origin, and a hit mask."""
    b = (origins * dirs).sum(-1)
    disc = b * b - ((origins * origins).sum(-1) - radius * radius)
    root = disc.clamp_min(0).sqrt()
    return (-b - root).clamp_min(0), -b + root, disc > 0
