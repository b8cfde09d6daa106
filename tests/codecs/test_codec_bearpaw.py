"""bearpaw conventions (CC-SSL): every function against codecs/ccssl_bearpaw.npz (official outputs), exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import posekit.codecs
from posekit.codecs import bearpaw as B
from posekit.losses import build_loss


@pytest.fixture(scope="module")
def ref(reference_dir):
    return np.load(reference_dir / "codecs/ccssl_bearpaw.npz")


def _eq(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    nan = np.isnan(b)
    assert a.shape == b.shape
    np.testing.assert_array_equal(np.where(nan, 0, a), np.where(nan, 0, b))


def test_get_preds_and_final_preds(ref):
    _eq(B.get_preds(ref["hm"]), ref["get_preds"])
    _eq(B.final_preds(ref["hm"], ref["hm_center"], ref["hm_scale"], [64, 64]), ref["final_preds"])


def test_transform_get_transform_transform_preds(ref):
    for i in range(len(ref["tf_pt"])):
        args = (ref["tf_center"][i], ref["tf_scale"][i], ref["tf_res"][i])
        _eq(B.transform(ref["tf_pt"][i], *args, bool(ref["tf_invert"][i]), ref["tf_rot"][i]), ref["tf_out"][i])
        np.testing.assert_allclose(B.get_transform(*args, ref["tf_rot"][i]), ref["tf_mat"][i], rtol=0, atol=1e-12)
    for i in range(len(ref["tp_coords"])):
        _eq(B.transform_preds(ref["tp_coords"][i], ref["tp_center"][i], ref["tp_scale"][i], [64, 64]), ref["tp_out"][i])


def test_draw_labelmap_and_gaussian(ref):
    for p, want, flag in zip(ref["dl_params"], ref["dl_maps"], ref["dl_vis"]):
        x, y, sigma, kind, h, w = p
        sigma = int(sigma) if sigma == int(sigma) else float(sigma)
        m, vis = B.draw_labelmap(np.zeros((int(h), int(w)), np.float32), (x, y), sigma,
                                 "Gaussian" if kind == 0 else "Cauchy")
        padded = np.full((64, 64), np.nan, np.float32)
        padded[: int(h), : int(w)] = m
        _eq(padded, want)
        assert vis == flag
    _eq(B.gaussian((7, 7), 1), ref["gaussian_7x7_sigma1"])


def test_dataset_targets_and_pseudo_label_maps(ref):
    for i in range(len(ref["tg_pts"])):
        t, w, tp = B.encode_joints(ref["tg_pts"][i], ref["tg_center"][i], ref["tg_scale"][i], ref["tg_rot"][i], 64)
        _eq(t, ref["tg_target"][i])
        _eq(w, ref["tg_target_weight"][i])
        _eq(tp, ref["tg_tpts"][i])
    for i in range(len(ref["k2h_kpts"])):
        _eq(B.kpts_to_heatmap(ref["k2h_kpts"][i]), ref["k2h_target"][i])


def test_flips_and_colour_normalisation(ref):
    _eq(B.flip_back(ref["flip_back_in"]), ref["flip_back_real_animal"])
    _eq(B.shufflelr(ref["shufflelr_in"], 256), ref["shufflelr_width256"])
    out = B.fliplr(ref["fliplr_in"])
    assert out.dtype == np.float64
    _eq(out, ref["fliplr_out"])
    _eq(B.color_normalize(ref["color_normalize_in"], ref["pc_mean"], ref["pc_std"]), ref["color_normalize_out"])


def test_joints_mse_equals_posekit_mse(ref):
    """CC-SSL JointsMSELoss(use_target_weight) / num_keypoints: posekit's MSE is the same for num_keypoints = K."""
    args = [torch.from_numpy(ref[k]) for k in ("mse_output", "mse_target", "mse_target_weight")]
    for use_tw, key in ((True, "mse_tw_nk18"), (False, "mse_notw_nk18")):
        assert float(build_loss("mse", use_tw)(*args)) == pytest.approx(float(ref[key]), rel=1e-6)
    assert float(build_loss("mse", True)(*args)) * 18 / 10 == pytest.approx(float(ref["mse_tw_nk10"]), rel=1e-6)


def test_codec_encodes_like_the_official_identity_crop_and_decodes_final_preds(ref):
    codec = posekit.codecs.build("bearpaw", input_size=(256, 256), heatmap_size=(64, 64), num_keypoints=18)
    kpts = ref["k2h_kpts"][0]
    # official pseudo-label maps of 1-based final_preds points == the codec's encoding of the 0-based points
    one_based = np.trunc(kpts[:, :2]).astype(np.float64)  # int32 truncation, as kpts_to_heatmap
    enc = codec.encode(one_based - 1, np.ones(18))
    want = B.kpts_to_heatmap(kpts)
    drawn = enc["target_weight"][:, 0] > 0
    _eq(enc["target"][drawn], want[drawn])
    coords, scores = codec.decode(ref["hm"][:1])
    _eq(coords[0] + 1, B.final_preds(ref["hm"][:1], [[128, 128]], [1.28], [64, 64])[0])
    _eq(scores[0], ref["hm"][0].reshape(18, -1).max(1))


def test_codec_round_trip_on_integer_grid():
    codec = B.BearpawCodec((128, 128), (32, 32), num_keypoints=3)
    pts = np.array([[40.0, 60.0], [8.0, 100.0], [120.0, 12.0]])
    coords, scores = codec.decode(codec.encode(pts, np.ones(3))["target"][None])
    assert np.abs(coords[0] - pts).max() <= 4  # one heatmap px at stride 4, integer decoding
    assert np.all(scores == 1.0)
