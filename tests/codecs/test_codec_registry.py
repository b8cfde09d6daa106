"""posekit.codecs.build / names and the attributes every codec exposes to the data pipeline and the engine."""

from __future__ import annotations

import numpy as np
import pytest

from posekit import codecs
from posekit.errors import ConfigError

EXPECTED = {  # name: (affine, channels per joint, official flip shift)
    "msra": ("standard", 1, True),
    "dark": ("dark", 1, False),
    "udp": ("udp", 1, False),
    "udp_offset": ("udp", 3, False),
    "grmi_offset": ("udp", 3, False),
    "integral": ("standard", 1, True),
    "beta_soft_argmax": ("standard", 1, True),
}


# Codecs of the other systems (their own tests check them against their fixtures): PRTR coordinates, AE
# whole-image targets + grouping, CC-SSL's bearpaw heatmaps, the 3-D soft-argmax coordinates.
OTHER_SYSTEMS = ["coord", "ae", "bearpaw", "body3d"]


def test_names_lists_every_codec_in_order():
    assert sorted(codecs.names()) == sorted([*EXPECTED, *OTHER_SYSTEMS])
    assert codecs.names()[:len(EXPECTED)] == list(EXPECTED)  # the heatmap codecs first, in a fixed order


@pytest.mark.parametrize("name", list(EXPECTED))
def test_codec_attributes_and_shapes(name):
    affine, cpj, shift = EXPECTED[name]
    c = codecs.build(name, input_size=(192, 256), heatmap_size=(48, 64), num_keypoints=5, sigma=2)
    assert (c.name, c.affine, c.shift_heatmap) == (name, affine, shift)
    assert c.input_size == (192, 256) and c.heatmap_size == (48, 64) and c.num_keypoints == 5
    assert c.out_channels == 5 * cpj
    kp = np.random.default_rng(0).uniform(30, 160, size=(5, 2)).astype(np.float32)
    enc = c.encode(kp, np.array([1, 1, 0, 1, 1], np.float32))
    assert enc["target_weight"].shape == (5, 1) and enc["target_weight"].dtype == np.float32
    assert enc["target_weight"][2, 0] == 0
    assert enc["target"].dtype == np.float32
    out = np.stack([c.perfect_outputs(kp)] * 3)
    assert out.shape == (3, c.out_channels, 64, 48)
    coords, scores = c.decode(out)
    assert coords.shape == (3, 5, 2) and scores.shape == (3, 5)
    np.testing.assert_allclose(coords[0], coords[2])


def test_build_errors_name_the_problem():
    with pytest.raises(ConfigError, match="unknown codec 'gauss'"):
        codecs.build("gauss")
    with pytest.raises(ConfigError, match="bad configuration"):
        codecs.build("msra", kernel_size=3)
    with pytest.raises(ConfigError, match="joint_weights"):
        codecs.build("msra", num_keypoints=3, joint_weights=[1, 2])
