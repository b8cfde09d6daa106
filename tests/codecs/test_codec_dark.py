"""DARK codec against the official DarkPose fixtures (unbiased targets, blur, Taylor decode, flip) and round trips."""

from __future__ import annotations

import numpy as np
import pytest

from posekit import codecs, geometry
from posekit.codecs import dark

COCO_PAIRS = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]


def coco_flip_index():
    idx = np.arange(17)
    for a, b in COCO_PAIRS:
        idx[a], idx[b] = b, a
    return idx


@pytest.fixture(scope="module")
def decode_inputs(reference_dir):
    return dict(np.load(reference_dir / "codecs" / "heatmaps_decode_inputs.npz"))


def test_unbiased_target_matches_official_exactly(reference_dir):
    d = dict(np.load(reference_dir / "codecs" / "dark_generate_target.npz"))
    for n in range(len(d["joints_heatmap"])):  # cases 12/13 are the weight boundary cases
        target, weight = dark.generate_target_unbiased(d["joints_heatmap"][n], d["joints_vis"][n][:, 0])
        np.testing.assert_array_equal(target, d["target"][n])
        np.testing.assert_array_equal(weight, d["target_weight"][n])


def test_pipeline_through_geometry_and_codec_matches_official(reference_dir):
    """Image joints -> dark affine to the INPUT crop -> codec.encode (input px -> heatmap px) == official pipe."""
    d = dict(np.load(reference_dir / "codecs" / "dark_generate_target.npz"))
    codec = codecs.build("dark")
    for n in range(len(d["pipe_center"])):
        size = d["pipe_scale"][n] * 200
        m = geometry.affine_matrix(d["pipe_center"][n], size, d["pipe_rot"][n], codec.input_size, kind="dark")
        joints = geometry.apply_affine(d["pipe_joints_image"][n][:, :2], m)
        np.testing.assert_allclose(codec.input_to_heatmap(joints), d["pipe_joints_heatmap"][n][:, :2], atol=1e-9)
        enc = codec.encode(joints, d["pipe_joints_vis"][n][:, 0])
        np.testing.assert_allclose(enc["target"], d["pipe_target"][n], rtol=0, atol=1e-6)
        np.testing.assert_array_equal(enc["target_weight"], d["pipe_target_weight"][n])


def test_gaussian_blur_matches_official(reference_dir, decode_inputs):
    f = dict(np.load(reference_dir / "codecs" / "dark_decode.npz"))
    for i, n in enumerate((2, 3)):
        hm = decode_inputs["heatmaps"][n].copy()
        out = dark.gaussian_blur(hm, 11)
        np.testing.assert_array_equal(hm, decode_inputs["heatmaps"][n])  # input left untouched
        np.testing.assert_allclose(out, f["blurred_batches_2_3"][i], rtol=0, atol=1e-7, equal_nan=True)


def test_zero_map_blur_is_nan_but_decodes_to_zero():
    hm = np.zeros((1, 2, 64, 48), np.float32)
    hm[0, 1, 30, 20] = 1.0
    assert np.isnan(dark.gaussian_blur(hm)[0, 0]).all()
    coords, maxvals = dark.dark_heatmap_coords(hm)
    np.testing.assert_array_equal(coords[0, 0], [0, 0])
    np.testing.assert_allclose(coords[0, 1], [20, 30], atol=1e-5)


def test_heatmap_coords_and_final_preds_match_official(reference_dir, decode_inputs):
    f = dict(np.load(reference_dir / "codecs" / "dark_decode.npz"))
    hm, center, scale = decode_inputs["heatmaps"], decode_inputs["center"], decode_inputs["scale"]
    for n in range(hm.shape[0]):
        coords, maxvals = dark.dark_heatmap_coords(hm[n], 11)
        np.testing.assert_allclose(coords, f["heatmap_coords"][n], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(maxvals, f["maxvals"][n])
        preds, _ = dark.get_final_preds(hm[n], center[n], scale[n], 11)
        np.testing.assert_allclose(preds, f["final_preds"][n], rtol=0, atol=1e-5)


def test_codec_decode_then_transform_preds_is_the_official_result(reference_dir, decode_inputs):
    f = dict(np.load(reference_dir / "codecs" / "dark_decode.npz"))
    codec = codecs.build("dark", num_keypoints=8)
    kp, scores = codec.decode(decode_inputs["heatmaps"].reshape(40, 8, 64, 48))
    img = geometry.transform_preds(kp, decode_inputs["center"].reshape(40, 2),
                                   decode_inputs["scale"].reshape(40, 2) * 200, codec.input_size, kind="dark")
    np.testing.assert_allclose(img.astype(np.float32), f["final_preds"].reshape(40, 8, 2), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(scores, f["maxvals"].reshape(40, 8))


def test_flip_back_matches_official_without_shift(reference_dir):
    d = dict(np.load(reference_dir / "codecs" / "dark_flip.npz"))
    codec = codecs.build("dark")
    assert codec.shift_heatmap is False and codec.affine == "dark"
    np.testing.assert_array_equal(codec.flip_back(d["flip_in"], coco_flip_index()), d["flip_back"])


def test_round_trip_is_nearly_exact_inside_the_map():
    """Unbiased Gaussian -> blur -> log -> Taylor recovers the sub-pixel position (error << 1 px)."""
    codec = codecs.build("dark")
    kp = np.random.default_rng(2).uniform(16, 175, size=(10, 17, 2))
    kp[..., 1] *= 239 / 175
    out = np.stack([codec.encode(k)["target"] for k in kp])
    dec, scores = codec.decode(out)
    err = np.linalg.norm(dec - kp, axis=-1)
    assert err.mean() < 0.01 and err.max() < 0.1
    assert np.all(scores > 0.9)


def test_flip_test_round_trip_is_pixel_aligned():
    """DarkPose flip: the encoding of mirrored keypoints (x -> W-1-x), flipped back, decodes to the original."""
    codec = codecs.build("dark")
    kp = np.random.default_rng(3).uniform(20, 170, size=(4, 17, 2))
    flipped = kp[:, coco_flip_index()].copy()
    flipped[..., 0] = codec.input_size[0] - 1 - flipped[..., 0]
    out = np.stack([codec.encode(k)["target"] for k in flipped])
    dec, _ = codec.decode(codec.flip_back(out, coco_flip_index()))
    assert np.abs(dec - kp).max() < 0.1
