"""G-RMI disk + offset codec: no official code, so closed-form checks and round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posekit import codecs

FLIP = np.array([0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15])


@pytest.fixture()
def codec():
    return codecs.build("grmi_offset", input_size=(257, 353), heatmap_size=(33, 45), radius=25.0)


def test_target_is_a_disk_with_offsets_to_the_keypoint(codec):
    kp = np.full((17, 2), 100.0)
    kp[3] = [129.0, 201.0]  # heatmap (16.125, 25.125): stride (257-1)/(33-1) = 8
    enc = codec.encode(kp)
    t = enc["target"]
    assert t.shape == (51, 45, 33) and codec.out_channels == 51
    yy, xx = np.mgrid[0:45, 0:33]
    mu = np.array([129.0, 201.0]) / 8.0
    disk = (xx - mu[0]) ** 2 + (yy - mu[1]) ** 2 <= (25.0 / 8.0) ** 2
    np.testing.assert_array_equal(t[3], disk.astype(np.float32))
    np.testing.assert_allclose(t[17 + 3], np.where(disk, mu[0] - xx, 0), atol=1e-6)
    np.testing.assert_allclose(t[34 + 3], np.where(disk, mu[1] - yy, 0), atol=1e-6)
    np.testing.assert_array_equal(enc["target_weight"], np.ones((17, 1), np.float32))


def test_weights_zero_for_invisible_and_far_outside_joints(codec):
    kp = np.full((17, 2), 100.0)
    kp[0] = [-40.0, 100.0]  # disk (5 heatmap px left of the map, radius 3.1) fully outside
    kp[1] = [-10.0, 100.0]  # disk partly inside
    vis = np.ones(17)
    vis[2] = 0
    enc = codec.encode(kp, vis)
    w = enc["target_weight"][:, 0]
    assert w[0] == 0 and w[1] == 1 and w[2] == 0 and w[3] == 1
    assert enc["target"][0].sum() == 0 and enc["target"][2].sum() == 0 and enc["target"][1].sum() > 0


def test_round_trip_is_exact(codec):
    kp = np.random.default_rng(0).uniform(5, 250, size=(8, 17, 2))
    kp[..., 1] *= 348 / 250
    out = np.stack([codec.encode(k)["target"] for k in kp])
    dec, scores = codec.decode(torch.from_numpy(out))
    np.testing.assert_allclose(dec, kp, atol=1e-4)
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-1.0)), rtol=1e-6)  # sigmoid of the 1-valued disk


def test_decode_reads_the_offset_at_the_argmax_of_the_logits(codec):
    out = np.zeros((1, 51, 45, 33), np.float32)
    out[0, :17] = -5.0
    out[0, 4, 10, 20] = 3.0
    out[0, 17 + 4, 10, 20] = 0.4
    out[0, 34 + 4, 10, 20] = -0.3
    dec, scores = codec.decode(out)
    np.testing.assert_allclose(dec[0, 4], [20.4 * 8, 9.7 * 8], atol=1e-5)
    np.testing.assert_allclose(scores[0, 4], 1 / (1 + np.exp(-3.0)), rtol=1e-6)


def test_flip_back_swaps_pairs_and_negates_x_offsets(codec):
    kp = np.random.default_rng(1).uniform(30, 220, size=(2, 17, 2))
    flipped = kp[:, FLIP].copy()
    flipped[..., 0] = 257 - 1 - flipped[..., 0]
    out = np.stack([codec.encode(k)["target"] for k in flipped])
    back = codec.flip_back(out, FLIP)
    dec, _ = codec.decode(back)
    np.testing.assert_allclose(dec, kp, atol=1e-3)
    t_back = codec.flip_back(torch.from_numpy(out), FLIP)
    np.testing.assert_array_equal(t_back.numpy(), back)
