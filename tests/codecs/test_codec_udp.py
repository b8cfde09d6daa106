"""UDP codecs ("udp", "udp_offset") against the official UDP-Pose (mmpose fork) fixtures and round trips."""

from __future__ import annotations

import numpy as np
import pytest

from posekit import codecs, geometry
from posekit.codecs import udp

COCO_PAIRS = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]


def coco_flip_index():
    idx = np.arange(17)
    for a, b in COCO_PAIRS:
        idx[a], idx[b] = b, a
    return idx


@pytest.fixture(scope="module")
def decode_inputs(reference_dir):
    return dict(np.load(reference_dir / "codecs" / "heatmaps_decode_inputs.npz"))


@pytest.fixture(scope="module")
def fix(reference_dir):
    return dict(np.load(reference_dir / "codecs" / "udp_decode.npz"))


def test_gaussian_and_combined_targets_match_official_exactly(reference_dir):
    d = dict(np.load(reference_dir / "codecs" / "udp_generate_target.npz"))
    gauss, comb = codecs.build("udp"), codecs.build("udp_offset")
    assert comb.out_channels == 51 and gauss.out_channels == 17
    for n in range(len(d["joints"])):
        enc = gauss.encode(d["joints"][n][:, :2], d["joints_vis"][n][:, 0])
        np.testing.assert_array_equal(enc["target"], d["gaussian_target"][n])
        np.testing.assert_array_equal(enc["target_weight"], d["gaussian_target_weight"][n])
    for n in range(len(d["combined_target"])):
        enc = comb.encode(d["joints"][n][:, :2], d["joints_vis"][n][:, 0])
        np.testing.assert_array_equal(enc["target"], d["combined_target"][n])
        np.testing.assert_array_equal(enc["target_weight"], d["combined_target_weight"][n])


@pytest.mark.parametrize("kernel", [11, 13])
def test_gaussian_decode_matches_official(fix, decode_inputs, kernel):
    hm, center, scale = decode_inputs["heatmaps"], decode_inputs["center"], decode_inputs["scale"]
    for n in range(hm.shape[0]):
        preds, maxvals = udp.keypoints_from_heatmaps(hm[n], center[n], scale[n], kernel=kernel)
        np.testing.assert_array_equal(preds, fix[f"gaussian_k{kernel}_preds"][n])
        np.testing.assert_array_equal(maxvals, fix[f"gaussian_k{kernel}_maxvals"][n])
        if kernel == 11:
            coords, _ = udp.get_max_preds(hm[n])
            np.testing.assert_array_equal(udp.post_dark_udp(coords, hm[n], 11), fix["gaussian_k11_heatmap_coords"][n])


def test_codec_decode_then_transform_preds_is_the_official_result(fix, decode_inputs):
    # batches of 2 as the fixture: the garbage Newton step of maxval<=0 maps reads the neighbouring map (official)
    codec = codecs.build("udp", num_keypoints=8)
    for n in range(decode_inputs["heatmaps"].shape[0]):
        kp, scores = codec.decode(decode_inputs["heatmaps"][n])
        img = geometry.transform_preds(kp, decode_inputs["center"][n], decode_inputs["scale"][n] * 200,
                                       codec.input_size, kind="udp")
        np.testing.assert_allclose(img.astype(np.float32), fix["gaussian_k11_preds"][n], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(scores, fix["gaussian_k11_maxvals"][n][..., 0])


def test_maxval_le_zero_gives_minus_one_before_the_newton_step():
    hm = np.zeros((1, 2, 64, 48), np.float32)
    hm[0, 0] = -1.0
    hm[0, 1, 10, 20] = 1.0
    coords, maxvals = udp.get_max_preds(hm)
    np.testing.assert_array_equal(coords[0, 0], [-1, -1])
    np.testing.assert_array_equal(coords[0, 1], [20, 10])


def test_combined_decode_batched_fixes_the_official_broadcast_crash(fix):
    """The fixture was made one sample at a time (official N>1 crashes); posekit decodes all 4 at once."""
    preds, maxvals = udp.keypoints_from_heatmaps(fix["combined_input"], fix["combined_center"], fix["combined_scale"],
                                                 kernel=7, target_type="CombinedTarget")
    np.testing.assert_array_equal(preds, fix["combined_k7_preds"])
    np.testing.assert_array_equal(maxvals, fix["combined_k7_maxvals"])
    codec = codecs.build("udp_offset", blur_kernel=7)
    kp, scores = codec.decode(fix["combined_input"])
    img = geometry.transform_preds(kp, fix["combined_center"], fix["combined_scale"] * 200, codec.input_size, "udp")
    np.testing.assert_allclose(img.astype(np.float32), fix["combined_k7_preds"], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(scores, fix["combined_k7_maxvals"][..., 0])


def test_flip_back_matches_official(reference_dir):
    d = dict(np.load(reference_dir / "codecs" / "udp_affine_flip.npz"))
    idx = coco_flip_index()
    np.testing.assert_array_equal(codecs.build("udp").flip_back(d["flip_gaussian_in"], idx), d["flip_gaussian_out"])
    np.testing.assert_array_equal(codecs.build("udp_offset").flip_back(d["flip_combined_in"], idx),
                                  d["flip_combined_out"])


def test_gaussian_round_trip_is_nearly_exact():
    codec = codecs.build("udp")
    kp = np.random.default_rng(4).uniform(16, 175, size=(10, 17, 2))
    kp[..., 1] *= 239 / 175
    dec, scores = codec.decode(np.stack([codec.encode(k)["target"] for k in kp]))
    err = np.linalg.norm(dec - kp, axis=-1)
    assert err.mean() < 0.05 and err.max() < 0.5


def test_combined_round_trip_without_blur_is_exact_and_official_blur_is_biased():
    """With a 1x1 'blur' the argmax + offset * radius returns the keypoint to float32 precision; the official
    kernel-11 (offsets) / 23 (response) blur shrinks the offsets (a known bias of the official decoder)."""
    kp = np.random.default_rng(5).uniform(40, 150, size=(6, 17, 2))
    kp[..., 1] *= 215 / 150
    exact = codecs.build("udp_offset", blur_kernel=0)  # cv2: kernel 0 -> 1x1 for offsets, 1x1 for the response
    out = np.stack([exact.encode(k)["target"] for k in kp])
    dec, _ = exact.decode(out)
    np.testing.assert_allclose(dec, kp, atol=1e-3)
    dec11, _ = codecs.build("udp_offset").decode(out)
    err = np.linalg.norm(dec11 - kp, axis=-1)
    assert 0.05 < err.mean() < 2.5


def test_flip_test_round_trip_is_pixel_aligned():
    for name in ("udp", "udp_offset"):
        codec = codecs.build(name, blur_kernel=0 if name == "udp_offset" else 11)
        kp = np.random.default_rng(6).uniform(30, 160, size=(3, 17, 2))
        flipped = kp[:, coco_flip_index()].copy()
        flipped[..., 0] = codec.input_size[0] - 1 - flipped[..., 0]
        out = np.stack([codec.encode(k)["target"] for k in flipped])
        dec, _ = codec.decode(codec.flip_back(out, coco_flip_index()))
        assert np.abs(dec - kp).max() < 0.1, name
