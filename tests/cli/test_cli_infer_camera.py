"""`posekit infer` on a 3-D model: the camera the user gives (--focal / --principal-point / --intrinsics) or the
model's own (its config's training camera) sets the root depth from the box, Z = sqrt(fx fy) x S / sqrt(box area)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from posekit.cli import main

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "configs" / "synth" / "posenet3d_hrnet.yaml"  # FOCAL_PER_WIDTH 1.15 and a fitted ROOT_BOX_SIZE
BOX = (40.0, 20.0, 50.0, 128.0)


def _box_size() -> float:
    from posekit.config import load_config

    return load_config(RECIPE, warn=False).BODY3D.ROOT_BOX_SIZE


def _infer(tmp_path: Path, name: str, *extra: str, config: Path = RECIPE) -> list[dict]:
    image = tmp_path / "person.jpg"
    if not image.exists():
        cv2.imwrite(str(image), np.full((160, 200, 3), 100, np.uint8))
    out = tmp_path / name
    assert main(["infer", "--config", str(config), "--random-weights", str(image), "--out", str(out), "--no-draw",
                 "--box", ",".join(str(v) for v in BOX), *extra]) == 0
    return json.loads((out / "keypoints.json").read_text())


def test_default_camera_is_the_models_training_camera(tmp_path, capsys):
    (entry,) = _infer(tmp_path, "default")
    f = 1.15 * 200  # the recipe's FOCAL_PER_WIDTH x the image width
    assert entry["root_depth"] == pytest.approx(f * _box_size() / np.sqrt(BOX[2] * BOX[3]), rel=1e-4)
    assert "training camera (f = 1.15 x image width)" in capsys.readouterr().err


def test_focal_principal_point_and_intrinsics_file(tmp_path, capsys):
    (given,) = _infer(tmp_path, "given", "--focal", "300,320", "--principal-point", "90,70")
    assert given["root_depth"] == pytest.approx(np.sqrt(300 * 320) * _box_size() / np.sqrt(BOX[2] * BOX[3]), rel=1e-4)
    cam = tmp_path / "cam.json"
    cam.write_text(json.dumps({"person.jpg": {"f": [300, 320], "c": [90, 70]}}))
    (from_file,) = _infer(tmp_path, "file", "--intrinsics", str(cam))
    assert from_file["root_depth"] == given["root_depth"]  # the same camera, found by the image file name
    capsys.readouterr()
    assert main(["infer", "--config", str(RECIPE), "--random-weights", str(tmp_path / "person.jpg"), "--out",
                 str(tmp_path / "bad"), "--focal=-3"]) == 1
    assert "the focal length must be > 0" in capsys.readouterr().err
