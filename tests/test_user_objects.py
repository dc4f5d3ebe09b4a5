import pytest
import torch
import trimesh

from dreamer.cameras import orbit
from dreamer.errors import UserError
from dreamer.eval.metrics import silhouette_iou
from dreamer.toy.catalogue import Catalogue, Part, ToyObject
from dreamer.toy.render import render_object


@pytest.fixture()
def box_catalogue(tmp_path):
    # A z-up box (as Blender writes them), 0.6 x 0.4 x 1.0 with the long side up.
    trimesh.creation.box(extents=[0.6, 0.4, 1.0]).export(tmp_path / "box.glb")
    (tmp_path / "cat.yaml").write_text(
        "objects:\n  - name: tall box\n    aliases: [crate]\n    mesh: box.glb\n    colour: [0.2, 0.4, 0.9]\n    up: z\n")
    return tmp_path / "cat.yaml"


def test_mesh_object_matches_the_analytic_shape(box_catalogue):
    cat = Catalogue.with_extension(box_catalogue)
    obj = cat.objects[cat.resolve("a crate, side view")[0]]
    assert obj.name == "tall box"
    # Fitted to radius 0.75: half extents scale by 0.75 / |(0.3, 0.2, 0.5)|; z-up becomes y-up.
    s = 0.75 / torch.tensor([0.3, 0.5, 0.2]).norm()
    truth = ToyObject("ref", [], [Part("box", {"half": tuple((torch.tensor([0.3, 0.5, 0.2]) * s).tolist())},
                                       (0, 0, 0), (0.2, 0.4, 0.9))])
    cams = orbit(6, 20, 2.0, 40, 64)
    rgb, cover = render_object(obj, cams)
    _, cover_truth = render_object(truth, cams)
    assert silhouette_iou(cover, cover_truth) > 0.95
    hit = cover > 0.5
    assert (rgb[hit].mean(0) - torch.tensor([0.2, 0.4, 0.9]) * 0.9).abs().max() < 0.15
    p = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.9, 0.0]])
    assert obj.distance(p)[0] < -0.2 and obj.distance(p)[1] == pytest.approx(0.9 - 0.5 * s.item(), abs=0.03)


def test_catalogue_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        Catalogue.with_extension(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("objects:\n  - name: thing\n    mesh: nowhere.glb\n")
    with pytest.raises(UserError, match="nowhere.glb.*does not exist"):
        Catalogue.with_extension(tmp_path / "bad.yaml")
    (tmp_path / "dup.yaml").write_text("objects:\n  - name: donut\n    mesh: d.ply\n")
    trimesh.creation.icosphere().export(tmp_path / "d.ply")
    with pytest.raises(UserError, match="already in the catalogue"):
        Catalogue.with_extension(tmp_path / "dup.yaml")
    (tmp_path / "empty.yaml").write_text("objects: []\n")
    with pytest.raises(UserError, match="non-empty 'objects:'"):
        Catalogue.with_extension(tmp_path / "empty.yaml")
