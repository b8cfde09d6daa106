"""MSRA Gaussian codec against the official HRNet fixtures (generate_target, decode, flip) and round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posekit import codecs, geometry
from posekit.codecs import msra

COCO_PAIRS = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]
MPII_PAIRS = [[0, 5], [1, 4], [2, 3], [10, 15], [11, 14], [12, 13]]


def flip_index(pairs, k):
    idx = np.arange(k)
    for a, b in pairs:
        idx[a], idx[b] = b, a
    return idx


@pytest.fixture(scope="module")
def decode_inputs(reference_dir):
    return dict(np.load(reference_dir / "codecs" / "heatmaps_decode_inputs.npz"))


def test_generate_target_matches_official_exactly(reference_dir):
    d = dict(np.load(reference_dir / "codecs" / "hrnet_generate_target.npz"))
    codec = codecs.build("msra")
    for n in range(len(d["joints"])):
        enc = codec.encode(d["joints"][n][:, :2], d["joints_vis"][n][:, 0])
        np.testing.assert_array_equal(enc["target"], d["target"][n])
        np.testing.assert_array_equal(enc["target_weight"], d["target_weight"][n])
        assert enc["target"].dtype == np.float32 and enc["target_weight"].shape == (17, 1)


def test_joint_weights_multiply_the_target_weight(reference_dir):
    d = dict(np.load(reference_dir / "codecs" / "hrnet_generate_target.npz"))
    jw = np.linspace(0.5, 1.5, 17)
    enc = codecs.build("msra", joint_weights=jw).encode(d["joints"][0][:, :2], d["joints_vis"][0][:, 0])
    np.testing.assert_allclose(enc["target_weight"][:, 0], d["target_weight"][0][:, 0] * jw, rtol=1e-6)


def test_get_max_preds_and_final_preds_match_official(reference_dir, decode_inputs):
    f = dict(np.load(reference_dir / "codecs" / "hrnet_decode.npz"))
    hm, center, scale = decode_inputs["heatmaps"], decode_inputs["center"], decode_inputs["scale"]
    for n in range(hm.shape[0]):
        preds, maxvals = msra.get_max_preds(hm[n])
        np.testing.assert_array_equal(preds, f["max_preds"][n])
        np.testing.assert_array_equal(maxvals, f["maxvals"][n])
        post, mv = msra.get_final_preds(hm[n], center[n], scale[n], post_process=True)
        np.testing.assert_array_equal(post, f["final_preds_post"][n])
        np.testing.assert_array_equal(mv, f["final_maxvals"][n])
        nopost, _ = msra.get_final_preds(hm[n], center[n], scale[n], post_process=False)
        np.testing.assert_array_equal(nopost, f["final_preds_nopost"][n])


@pytest.mark.parametrize("post_process", [True, False])
def test_codec_decode_then_transform_preds_is_the_official_result(reference_dir, decode_inputs, post_process):
    """The real pipeline path: codec.decode (input px) -> geometry.transform_preds(input_size) == official."""
    f = dict(np.load(reference_dir / "codecs" / "hrnet_decode.npz"))
    ref = f["final_preds_post" if post_process else "final_preds_nopost"]
    codec = codecs.build("msra", num_keypoints=8, post_process=post_process)
    hm = decode_inputs["heatmaps"].reshape(40, 8, 64, 48)
    kp, scores = codec.decode(torch.from_numpy(hm))  # torch input accepted
    img = geometry.transform_preds(kp, decode_inputs["center"].reshape(40, 2),
                                   decode_inputs["scale"].reshape(40, 2) * 200, codec.input_size, kind=codec.affine)
    np.testing.assert_allclose(img.astype(np.float32), ref.reshape(40, 8, 2), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(scores, f["final_maxvals"].reshape(40, 8))


def test_argmax_ties_take_the_first_flat_index():
    hm = np.zeros((1, 1, 8, 6), np.float32)
    hm[0, 0, 2, 4] = hm[0, 0, 5, 1] = hm[0, 0, 2, 5] = 1.0
    preds, _ = msra.get_max_preds(hm)
    np.testing.assert_array_equal(preds[0, 0], [4, 2])


def test_flip_back_matches_official_incl_shift_and_mpii(reference_dir):
    d = dict(np.load(reference_dir / "codecs" / "hrnet_flip.npz"))
    codec = codecs.build("msra")
    idx = flip_index(COCO_PAIRS, 17)
    np.testing.assert_array_equal(codecs.base.flip_channels(d["flip_in"], idx), d["flip_back"])
    np.testing.assert_array_equal(codec.flip_back(d["flip_in"], idx), d["flip_back_shifted"])
    got = codec.flip_back(torch.from_numpy(d["flip_in"]), torch.as_tensor(idx).tolist())
    assert isinstance(got, torch.Tensor)
    np.testing.assert_array_equal(got.numpy(), d["flip_back_shifted"])
    mpii = codecs.build("msra", num_keypoints=16)
    mpii.shift_heatmap = False
    np.testing.assert_array_equal(mpii.flip_back(d["flip_in_mpii"], flip_index(MPII_PAIRS, 16)), d["flip_back_mpii"])


def test_round_trip_error_is_the_quantisation_of_the_integer_centre():
    """MSRA targets are centred on int(x/4 + 0.5); decoding returns exactly that centre (x4): error <= 2 px/axis."""
    codec = codecs.build("msra")
    rng = np.random.default_rng(1)
    kp = rng.uniform(8, 180, size=(20, 17, 2))
    out = np.stack([codec.encode(k)["target"] for k in kp])
    dec, scores = codec.decode(out)
    expect = np.trunc(kp / 4 + 0.5) * 4
    np.testing.assert_allclose(dec, expect, atol=1e-9)
    assert np.all(np.abs(dec - kp) <= 2.0) and np.all(scores == 1.0)


def test_quarter_offset_moves_towards_the_higher_neighbour():
    hm = np.zeros((1, 2, 10, 10), np.float32)
    hm[0, 0, 5, 5], hm[0, 0, 5, 6], hm[0, 0, 4, 5] = 1.0, 0.5, 0.2  # right and up neighbours higher
    hm[0, 1, 0, 5] = 1.0  # on the border row: no offset
    coords, _ = msra.get_max_preds(hm)
    out = msra.quarter_offset(coords, hm)
    np.testing.assert_array_equal(out[0, 0], [5.25, 4.75])
    np.testing.assert_array_equal(out[0, 1], [5.0, 0.0])


def test_decode_rejects_wrong_shapes():
    from posekit.errors import DataError

    with pytest.raises(DataError, match="expected"):
        codecs.build("msra").decode(np.zeros((1, 16, 64, 48), np.float32))
    with pytest.raises(DataError, match="keypoints"):
        codecs.build("msra").encode(np.zeros((16, 2)))
