"""PRTR coordinate codec: official coord targets and get_final_preds_match decodings (prtr_tiny fixture)."""

from __future__ import annotations

import numpy as np
import pytest

from posekit import codecs, geometry, skeletons
from posekit.errors import DataError


def _codec(bg: bool = False):
    return codecs.build("coord", input_size=(96, 128), num_keypoints=17, include_bg_logit=bg)


def test_registered():
    assert "coord" in codecs.names()
    assert codecs.build("coord", input_size=(288, 384), heatmap_size=(72, 96), sigma=2).out_channels == 17


def test_encode_is_crop_px_over_input_size_with_visibility_weights():
    c = _codec()
    kp = np.zeros((17, 2))
    kp[:, 0] = np.linspace(-10, 110, 17)  # some joints outside the crop: weight stays 1 (official coord mode)
    kp[:, 1] = np.linspace(5, 140, 17)
    vis = np.ones(17, np.float32)
    vis[3] = 0
    enc = c.encode(kp, vis)
    assert enc["target"].dtype == np.float32 and enc["target"].shape == (17, 2)
    expected = (kp / [96, 128]).astype(np.float32)
    expected[3] = 0
    np.testing.assert_array_equal(enc["target"], expected)
    np.testing.assert_array_equal(enc["target_weight"][:, 0], vis)


@pytest.mark.parametrize("bg", [0, 1])
@pytest.mark.parametrize("flip", [0, 1])
def test_matched_decoding_equals_official(reference_dir, bg, flip):
    io = np.load(reference_dir / "models/prtr_tiny.npz")
    out = {"pred_logits": io["pred_logits"], "pred_coords": io["pred_coords"]}
    fi = skeletons.get("coco").flip_index if flip else None
    kp, scores = _codec(bool(bg)).decode(out, fi)
    tag = f"bg{bg}_flip{flip}"
    np.testing.assert_allclose(kp, io[f"match_patch_coords_{tag}"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(scores, io[f"match_scores_{tag}"][..., 0], atol=1e-6, rtol=0)
    image = geometry.transform_preds(kp, io["center"], io["scale"] * geometry.PIXEL_STD, (96, 128))
    np.testing.assert_allclose(image, io[f"match_preds_{tag}"], atol=1e-4, rtol=0)


def test_flip_test_averages_both_passes(reference_dir):
    io = np.load(reference_dir / "models/prtr_tiny.npz")
    a = {"pred_logits": io["pred_logits"], "pred_coords": io["pred_coords"]}
    b = {"pred_logits": io["aux0_pred_logits"], "pred_coords": io["aux0_pred_coords"]}
    c, fi = _codec(), skeletons.get("coco").flip_index
    kp, sc = c.decode_flip_test(a, b, fi)
    k0, s0 = c.decode(a)
    k1, s1 = c.decode(b, fi)
    np.testing.assert_allclose(kp, (k0 + k1) / 2)
    np.testing.assert_allclose(sc, (s0 + s1) / 2, rtol=1e-6)
    with pytest.raises(DataError, match="packed"):
        c.flip_back(io["pred_logits"], fi)


def test_perfect_outputs_round_trip():
    c = _codec()
    kp = np.random.default_rng(0).uniform([0, 0], [95, 127], size=(17, 2))
    dec, scores = c.decode(c.perfect_outputs(kp))
    np.testing.assert_allclose(dec[0], kp, atol=1e-4)
    assert scores.min() > 0.99


def test_bad_outputs_are_named():
    with pytest.raises(DataError, match="pred_logits"):
        _codec().decode({"pred_coords": np.zeros((1, 20, 2))})
    with pytest.raises(DataError, match="expected"):
        _codec().decode({"pred_logits": np.zeros((1, 10, 18)), "pred_coords": np.zeros((1, 10, 2))})


def _packed(io, prefix=""):
    return np.concatenate([io[f"{prefix}pred_logits"], io[f"{prefix}pred_coords"]], axis=-1)


def test_packed_tensor_and_flip_back_match_the_official_flipped_decoding(reference_dir):
    import torch

    io = np.load(reference_dir / "models/prtr_tiny.npz")
    fi = skeletons.get("coco").flip_index
    for bg in (False, True):
        c = _codec(bg)
        tag = f"bg{int(bg)}"
        kp, sc = c.decode(_packed(io))
        np.testing.assert_allclose(kp, io[f"match_patch_coords_{tag}_flip0"], atol=1e-4, rtol=0)
        # mirrored-crop outputs mapped back in output space, then decoded like any other output
        for back in (c.flip_back(_packed(io), fi), c.flip_back(torch.from_numpy(_packed(io)), fi).numpy()):
            kp, sc = c.decode(back)
            np.testing.assert_allclose(kp, io[f"match_patch_coords_{tag}_flip1"], atol=1e-4, rtol=0)
            np.testing.assert_allclose(sc, io[f"match_scores_{tag}_flip1"][..., 0], atol=1e-6, rtol=0)


def test_stacked_passes_decode_to_the_flip_test_average(reference_dir):
    io = np.load(reference_dir / "models/prtr_tiny.npz")
    c, fi = _codec(), skeletons.get("coco").flip_index
    a, b = _packed(io), _packed(io, "aux0_")
    stacked = np.stack([a, c.flip_back(b, fi)], axis=1)
    kp, sc = c.decode(stacked)
    ref_kp, ref_sc = c.decode_flip_test(a, b, fi)
    np.testing.assert_allclose(kp, ref_kp, atol=1e-9)
    np.testing.assert_allclose(sc, ref_sc, atol=1e-7)
    assert c.stack_flip_passes
