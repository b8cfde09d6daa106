"""Intrinsics files for 3-D inference (`posekit infer --intrinsics`): one camera, per-image cameras, synth files."""

from __future__ import annotations

import json

import pytest

from posekit.camera import read_intrinsics
from posekit.errors import DataError


def _write(tmp_path, obj) -> str:
    path = tmp_path / "cam.json"
    path.write_text(json.dumps(obj))
    return str(path)


def test_one_camera_in_three_spellings(tmp_path):
    want = ((220.0, 230.0), (95.5, 90.0))
    assert read_intrinsics(_write(tmp_path, {"f": [220, 230], "c": [95.5, 90]})) == (want, {})
    assert read_intrinsics(_write(tmp_path, {"fx": 220, "fy": 230, "cx": 95.5, "cy": 90})) == (want, {})
    k = [[220, 0, 95.5], [0, 230, 90], [0, 0, 1]]
    assert read_intrinsics(_write(tmp_path, {"K": k})) == (want, {})
    assert read_intrinsics(_write(tmp_path, {"f": 500})) == (((500.0, 500.0), None), {})  # c: the image centre


def test_per_image_cameras_and_synth_annotations(tmp_path):
    one, table = read_intrinsics(_write(tmp_path, {"a/x.jpg": {"f": 300, "c": [1, 2]}, "y.jpg": {"fx": 400}}))
    assert one is None and table == {"x.jpg": ((300.0, 300.0), (1.0, 2.0)), "y.jpg": ((400.0, 400.0), None)}
    synth = {"images": [{"id": 1, "file_name": "000001.jpg"}], "annotations": [
        {"image_id": 1, "cam_intrinsics": {"f": [212.5, 212.5], "c": [95.5, 95.5]}}]}
    assert read_intrinsics(_write(tmp_path, synth)) == (None, {"000001.jpg": ((212.5, 212.5), (95.5, 95.5))})


@pytest.mark.parametrize("obj,match", [({"f": 0}, "must be > 0"), ({"f": [1, "x"]}, "expected f"),
                                       ([1, 2], "expected one camera"), ({"img.jpg": 3}, "expected an object")])
def test_bad_intrinsics_name_the_file(tmp_path, obj, match):
    with pytest.raises(DataError, match=match):
        read_intrinsics(_write(tmp_path, obj))
