"""H36M loaders on the real samples in ../shared/data/h36m (cameras, projection), the common 3DMPPE json layout
(round trip), and the synthetic 3-D humans written by posekit.data.synth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posekit.camera import project
from posekit.data.body3d import Body3DDataset
from posekit.data.h36m import (
    H36M_ACTIONS,
    H36M_SKELETON,
    add_thorax,
    h36m_common_json,
    load_h36m,
    load_h36m_mmpose,
    load_synth3d,
)
from posekit.errors import DataError
from posekit.evaluation.mpjpe import H36M_ACTIONS as EVAL_ACTIONS


@pytest.fixture(scope="module")
def h36m_records(data_dir):
    root = data_dir / "h36m" / "mmpose"
    return load_h36m_mmpose(root / "h36m_coco.json", root / "cameras.pkl", root), root


def test_real_samples_load_with_cameras_and_project_onto_their_2d_joints(h36m_records):
    recs, root = h36m_records
    assert len(recs) == 4 and all(r.joints_cam.shape == (18, 3) for r in recs)
    s = np.load(root / "test_h36m_body3d.npz")
    names = [str(n) for n in s["imgname"]]
    worst_dist = worst_pinhole = 0.0
    for r in recs:
        i = next(k for k, n in enumerate(names) if n.endswith(r.extra["file_name"]))
        # independent camera-space copy (mmpose's body3d npz, metres): our world -> camera transform agrees
        np.testing.assert_allclose(r.joints_cam[:17], s["S"][i][:, :3] * 1000.0, atol=1e-3)
        kp = r.extra["keypoints_2d"][:, :2]
        dist = np.linalg.norm(project(r.joints_cam[:17], r.f, r.c, r.extra["k"], r.extra["p"]) - kp, axis=1)
        pinhole = np.linalg.norm(r.joints_img[:17, :2] - kp, axis=1)
        worst_dist, worst_pinhole = max(worst_dist, dist.max()), max(worst_pinhole, pinhole.max())
        assert np.allclose(r.joints_img[:, 2], r.joints_cam[:, 2]) and r.root_depth == r.joints_cam[0, 2]
        np.testing.assert_allclose(r.joints_cam[17], (r.joints_cam[11] + r.joints_cam[14]) / 2)
    assert worst_dist < 1e-3  # measured 8.7e-5 px with the H36M distortion model
    assert worst_pinhole < 4.0  # 3DMPPE's pinhole projection: measured 3.38 px worst (distortion ignored)
    assert [H36M_ACTIONS[r.extra["action_id"]] for r in recs] == ["Directions", "SittingDown", "Greeting", "WalkDog"]
    assert H36M_ACTIONS == EVAL_ACTIONS


def test_h36m_index_1_is_the_right_hip(h36m_records):
    """The mmpose json names index 1 'left_hip'; geometry says right: (right - left) x up points backwards."""
    for r in h36m_records[0]:
        j = r.joints_cam
        up = j[8] - j[0]
        nose_forward = j[9] - (j[8] + j[10]) / 2
        for right, left in ((1, 4), (14, 11)):
            assert np.dot(np.cross(j[right] - j[left], up), nose_forward) < 0
    assert H36M_SKELETON.keypoints[1] == "r_hip" and H36M_SKELETON.keypoints[14] == "r_shoulder"


def test_real_crops_keep_the_person_inside(h36m_records):
    recs, _ = h36m_records
    ds = Body3DDataset(recs, H36M_SKELETON.flip_pairs, train=False)
    item = ds[0]
    assert item["image"].shape == (3, 256, 256) and item["have_depth"].item() == 1.0
    coord = item["coord"].numpy()
    assert item["vis"].min() == 1.0 and coord[:, :2].min() > 0 and coord[:, :2].max() < 64
    assert coord[0, 2] == pytest.approx(32.0)  # the root sits in the middle depth bin


def test_common_layout_round_trip(tmp_path, h36m_records):
    recs, _ = h36m_records
    for r in recs:
        r.extra["raw_bbox"] = [r.bbox[0] + r.bbox[2] * 0.1, r.bbox[1] + r.bbox[3] * 0.1, r.bbox[2] * 0.8,
                               r.bbox[3] * 0.8]
    files = h36m_common_json(recs)
    (tmp_path / "annotations").mkdir()
    for key, value in files.items():
        (tmp_path / "annotations" / f"Human36M_subject11_{key}.json").write_text(json.dumps(value))
    back = load_h36m(tmp_path, split="test", protocol=1)
    assert len(back) == len(recs)
    for a, b in zip(recs, back, strict=True):
        np.testing.assert_allclose(b.joints_cam, add_thorax(a.joints_cam[:17]), atol=1e-9)
        np.testing.assert_allclose(b.joints_img[:, :2], a.joints_img[:, :2], atol=1e-3)
        assert b.extra["action_id"] == a.extra["action_id"]
    assert load_h36m(tmp_path, split="test", protocol=1, sampling=128) != back  # every 128th frame: fewer
    with pytest.raises(DataError, match="Human36M_subject9_data.json"):
        load_h36m(tmp_path, split="test", protocol=2)


def test_synthetic_3d_humans_load_and_project(tmp_path):
    from posekit.data.synth import generate

    generate(tmp_path, 3, max_subjects=2, seed=3, workers=1, image_size=(160, 160))
    recs = load_synth3d(tmp_path / "annotations.json")
    assert recs and all(r.joints_cam.shape == (18, 3) and r.have_depth for r in recs)
    for r in recs:
        kp = r.extra["keypoints_2d"]
        lab = kp[:, 2] > 0
        err = np.linalg.norm(r.joints_img[:17][lab, :2] - kp[lab, :2], axis=1)
        assert err.max() < 0.05  # labels are rounded to 0.01 px / 0.01 mm
        np.testing.assert_allclose(r.root_cam, (r.joints_cam[11] + r.joints_cam[12]) / 2)


def test_posekit_synth_cli_writes_loadable_3d_splits(tmp_path, capsys):
    from posekit.cli import main

    for split, seed in (("train", 0), ("val", 1)):
        assert main(["synth", "--out", str(tmp_path / split), "--num-images", "2", "--max-subjects", "1",
                     "--seed", str(seed), "--size", "128x128", "--workers", "1", "--max-yaw", "30",
                     "--no-progress"]) == 0
    assert "synth3d" in capsys.readouterr().out
    info = json.loads((tmp_path / "train" / "annotations.json").read_text())["info"]
    assert info["max_yaw"] == 30.0 and info["seed"] == 0
    train, val = load_synth3d(tmp_path / "train" / "annotations.json"), load_synth3d(tmp_path / "val" /
                                                                                     "annotations.json")
    assert train and val and not np.allclose(train[0].joints_cam, val[0].joints_cam)


def _edited_synth(tmp_path, edit):
    from posekit.data.synth import generate

    generate(tmp_path, 2, max_subjects=1, seed=3, workers=1, image_size=(128, 128))
    path = tmp_path / "annotations.json"
    data = json.loads(path.read_text())
    edit(data["annotations"][1])
    path.write_text(json.dumps(data))  # NaN / Infinity literals, as Python writes them
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda a: a["cam_intrinsics"].update(f=[0.0, 0.0]), r"annotations\[1\] .*field 'cam_intrinsics': expected a focal "
                                                         r"length f .* > 0.*got f=\[0.0, 0.0\]"),
    (lambda a: a["cam_intrinsics"].update(c=[float("inf"), 5.0]), r"field 'cam_intrinsics'.*all finite"),
    (lambda a: a["cam_intrinsics"].update(f=[float("nan"), 500.0]), r"field 'cam_intrinsics'.*got f=\[nan, 500.0\]"),
    (lambda a: a.update(cam_intrinsics=[500.0, 64.0]), r"field 'cam_intrinsics': expected \{\"f\""),
    (lambda a: a["keypoints_3d"][5].__setitem__(2, float("nan")), r"annotations\[1\] .*field 'keypoints_3d': joint 5 "
                                                                  r"has a non-finite coordinate nan"),
])
def test_synthetic_3d_camera_and_joints_are_validated_at_load(tmp_path, edit, message):
    """f = 0 collapses every 2-D target onto one point and a NaN stops training: both named at load instead."""
    path = _edited_synth(tmp_path, edit)
    with pytest.raises(DataError, match=message) as e:
        load_synth3d(path)
    assert str(path) in str(e.value)


def test_h36m_layouts_validate_cameras_and_joints(tmp_path, h36m_records):
    recs, _ = h36m_records
    files = h36m_common_json(recs[:2])
    files["camera"]["2"]["f"] = [0.0, 1145.0]
    (tmp_path / "annotations").mkdir()
    for key, value in files.items():
        (tmp_path / "annotations" / f"Human36M_subject11_{key}.json").write_text(json.dumps(value))
    with pytest.raises(DataError, match=r"Human36M_subject11_camera.json: camera 2: expected a focal length"):
        load_h36m(tmp_path, split="test", protocol=1)
    files["camera"]["2"]["f"] = [1145.0, 1145.0]
    frames = next(iter(files["joint_3d"].values()))["1"]
    frames[next(iter(frames))][3][0] = float("nan")
    for key, value in files.items():
        (tmp_path / "annotations" / f"Human36M_subject11_{key}.json").write_text(json.dumps(value))
    with pytest.raises(DataError, match=r"Human36M_subject11_joint_3d.json: action \d+ subaction 1 frame \d+: joint 3 "
                                        r"has a non-finite"):
        load_h36m(tmp_path, split="test", protocol=1)
