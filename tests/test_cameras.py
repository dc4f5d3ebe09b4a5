import torch

from dreamer.cameras import CameraSampler, get_rays, make_cameras, view_labels
from dreamer.config import CameraConfig


def test_view_labels_thresholds():
    labels = view_labels([0, 0, 0, 0, 70], [0, 44, 90, 170, 180])
    assert labels == ["front", "front", "side", "back", "overhead"]


def test_camera_frame_and_center_ray():
    cams = make_cameras([30.0], [60.0], [2.0], [40.0], 9, 9)
    R = cams.c2w[0, :3, :3]
    assert torch.allclose(R.T @ R, torch.eye(3), atol=1e-6)
    o, d = get_rays(cams)
    center = d[0, 4, 4]
    assert torch.allclose(o[0, 4, 4] + center * 2.0, torch.zeros(3), atol=1e-5)  # looks at the origin
    assert cams.c2w[0, 1, 1] > 0  # image up has a positive world-Y component


def test_front_camera_sits_on_plus_z():
    cams = make_cameras([0.0], [0.0], [2.0], [40.0], 4, 4)
    assert torch.allclose(cams.c2w[0, :3, 3], torch.tensor([0.0, 0.0, 2.0]), atol=1e-6)


def test_sampler_is_a_function_of_step_and_stratified():
    cfg = CameraConfig(batch_size=4, elevation_range=[-10, 45])
    a, b = CameraSampler(cfg, 0).sample(17), CameraSampler(cfg, 0).sample(17)
    assert torch.equal(a.c2w, b.c2w)
    az = (a.azimuth + 180) % 360
    assert sorted((az // 90).long().tolist()) == [0, 1, 2, 3]  # one per quarter
    assert ((a.elevation >= -10) & (a.elevation <= 45)).all()


def test_resolution_milestones():
    cfg = CameraConfig(width=[32, 64], height=[32, 64], resolution_milestones=[100])
    s = CameraSampler(cfg, 0)
    assert s.resolution(99) == (32, 32) and s.resolution(100) == (64, 64)
