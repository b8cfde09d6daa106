"""The 3-D codec `body3d`: built by name like every codec, the official target maps, and what a 3-D model built
without weights runs with (`posekit infer --random-weights`)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from posekit import codecs, models
from posekit.codecs.body3d import Body3DCoder


def test_built_by_name_with_the_zoo_entrys_options():
    e = models.entry("posenet3d_res18_128x128")
    c = codecs.build(e.codec, input_size=e.input_size, heatmap_size=e.heatmap_size, num_keypoints=18, **e.codec_cfg)
    assert isinstance(c, Body3DCoder) and c.name == "body3d" and "body3d" in codecs.names()
    assert (c.input_size, c.output_size, c.depth_dim, c.bbox_3d_depth) == ((128, 128), (32, 32), 32, 2000.0)
    assert c.aspect_ratio == 1.0 and c.out_channels == 18 * 32


def test_encode_is_the_official_target_map_and_decode_inverts_it():
    c = Body3DCoder(input_size=(96, 128), heatmap_size=(24, 32), num_keypoints=3, depth_dim=32)
    kp = np.array([[10.0, 20.0, -500.0], [95.5, 0.0, 999.0], [50.0, 130.0, 0.0]])  # last: below the crop
    enc = c.encode(kp, np.array([1, 1, 1]))
    # official: x / in_w * out_w, y likewise, depth d -> (d / 1000 + 1) / 2 * depth_dim
    want = np.array([[10 / 96 * 24, 20 / 128 * 32, 0.25 * 32], [95.5 / 96 * 24, 0.0, (1.999 / 2) * 32],
                     [50 / 96 * 24, 130 / 128 * 32, 16.0]], np.float32)
    np.testing.assert_allclose(enc["target"], want, rtol=1e-6)
    assert enc["target_weight"][:, 0].tolist() == [1.0, 1.0, 0.0]
    xy, scores = c.decode(enc["target"][None])
    np.testing.assert_allclose(xy[0], kp[:, :2], rtol=1e-5, atol=1e-4)
    assert scores.shape == (1, 3) and (scores == 1).all()


@pytest.mark.slow
def test_infer_runs_a_3d_model_built_without_weights(tmp_path: Path):
    from posekit.cli import main
    from posekit.inference import PoseEstimator

    est = PoseEstimator("posenet3d_res18_128x128", backend="torch")
    assert isinstance(est.codec, Body3DCoder) and est.codec.depth_dim == est.model.depth_dim
    image = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "photo.png"), image)
    assert main(["infer", "--model", "posenet3d_res18_128x128", "--random-weights", str(tmp_path / "photo.png"),
                 "--box", "20,10,100,100", "--out", str(tmp_path / "out")]) == 0
    entries = json.loads((tmp_path / "out" / "keypoints.json").read_text())
    assert len(entries) == 1 and len(entries[0]["keypoints"]) == 18 * 3
    assert (tmp_path / "out" / "photo_3d.png").is_file()  # the camera-space skeleton beside the 2-D drawing
