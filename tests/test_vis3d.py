"""3-D skeleton pictures: shape, content, errors; writes out/test-artifacts/h36m_skeleton3d.png to look at."""

from __future__ import annotations

import numpy as np
import pytest

from posekit.errors import DataError
from posekit.skeletons import get as get_skeleton
from posekit.vis.skeleton3d import skeleton_3d_image, write_skeleton_3d


def test_skeleton_picture_of_a_real_h36m_pose(data_dir, out_dir):
    from posekit.data.h36m import load_h36m_mmpose

    root = data_dir / "h36m" / "mmpose"
    rec = load_h36m_mmpose(root / "h36m_coco.json", root / "cameras.pkl", root)[0]
    sk = get_skeleton("h36m")
    noisy = rec.joints_cam + np.random.default_rng(0).normal(scale=30, size=rec.joints_cam.shape)
    img = skeleton_3d_image([rec.joints_cam, noisy], sk, labels=["GT", "GT + 30 mm noise"], root=0,
                            size=(400, 360), title=rec.extra["file_name"])
    assert img.shape == (360, 400, 3) and img.dtype == np.uint8 and img.std() > 5
    assert write_skeleton_3d(out_dir / "h36m_skeleton3d.png", rec.joints_cam, sk, root=0).is_file()
    with pytest.raises(DataError, match="expected"):
        skeleton_3d_image(np.zeros((17, 3)), sk)
