"""ModelSpec.from_dict: a hand-edited spec fails with an error naming the spec field, before any codec or network."""

from __future__ import annotations

import pytest
import torch

from posekit.cli import main
from posekit.errors import CheckpointError
from posekit.modelspec import ModelSpec, build_codec, read_spec, weights_file

GOOD = ModelSpec(name="hrnet_w16_tiny_128x96", zoo=True, input_size=(96, 128), heatmap_size=(24, 32), num_joints=17,
                 codec="dark", codec_cfg={"sigma": 2.0, "blur_kernel": 11, "shift_heatmap": True})


def test_round_trip_and_every_codec_default_passes():
    assert ModelSpec.from_dict(GOOD.to_dict()) == GOOD
    build_codec(GOOD)


@pytest.mark.parametrize("edit, message", [
    ({"codec_cfg": {"sigma": "abc"}}, r"codec_cfg.sigma is 'abc', expected a positive number"),
    ({"codec_cfg": {"sigma": float("nan")}}, r"codec_cfg.sigma is nan, expected a positive number"),
    ({"codec_cfg": {"sigma": -2}}, r"codec_cfg.sigma is -2"),
    ({"codec_cfg": {"blur_kernal": 11}}, r"codec_cfg.blur_kernal: not an option of codec 'dark' \(.*blur_kernel"),
    ({"codec_cfg": {"shift_heatmap": "yes"}}, r"codec_cfg.shift_heatmap is 'yes', expected true or false"),
    ({"codec_cfg": {"joint_weights": ["a"] * 17}}, r"codec_cfg.joint_weights .* expected a list of numbers"),
    ({"codec_cfg": {"num_keypoints": 16}}, r"codec_cfg.num_keypoints: not an option"),
    ({"codec_cfg": "sigma=2"}, r"'codec_cfg' must be a dict"),
    ({"codec": "gaussian"}, r"field 'codec' is 'gaussian', expected one of"),
    ({"input_size": ["abc", 128]}, r"field 'input_size' is \['abc', 128\], expected \[w, h\] positive integers"),
    ({"heatmap_size": [24]}, r"field 'heatmap_size'"),
    ({"num_joints": "17"}, r"field 'num_joints' is '17', expected a positive integer"),
    ({"color_rgb": "false"}, r"field 'color_rgb' is 'false', expected a bool"),
])
def test_hand_edited_spec_names_the_field(edit, message):
    d = {**GOOD.to_dict(), **edit}
    with pytest.raises(CheckpointError, match=r"^w.pth: model spec field ") as e:
        ModelSpec.from_dict(d, source="w.pth")
    assert e.match(message)


def test_cli_reports_the_field_of_a_weights_file(tmp_path, capsys):
    d = GOOD.to_dict()
    d["codec_cfg"]["sigma"] = "abc"
    obj = weights_file({}, GOOD)
    obj["spec"] = d
    torch.save(obj, tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match="codec_cfg.sigma"):
        read_spec(tmp_path / "w.pth")
    assert main(["export", "--weights", str(tmp_path / "w.pth"), "--out", str(tmp_path / "m.onnx")]) == 1
    assert "model spec field codec_cfg.sigma is 'abc'" in capsys.readouterr().err
