import json

import numpy as np
import pytest

from posekit.data.synth import generate
from posekit.errors import ConfigError


def test_max_yaw_keeps_bodies_facing_the_camera(tmp_path):
    generate(tmp_path, 12, max_subjects=2, seed=5, workers=1, max_yaw=45.0)
    data = json.loads((tmp_path / "annotations.json").read_text())
    assert data["info"]["max_yaw"] == 45.0
    # facing the camera (|yaw| <= 45 deg): the person's left shoulder/hip is on the image right (camera +x)
    for ann in data["annotations"]:
        k3 = np.asarray(ann["keypoints_3d"]).reshape(17, 3)
        assert k3[5, 0] > k3[6, 0] and k3[11, 0] > k3[12, 0]


def test_max_yaw_out_of_range_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="max_yaw"):
        generate(tmp_path, 1, workers=1, max_yaw=270.0)
