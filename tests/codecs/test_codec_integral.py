"""Soft-argmax codecs: LPN beta-soft-argmax and 3DMPPE soft-argmax fixtures, integral round trips and gradients.

Tolerance: the official soft-argmax runs in float32; torch's reduction order depends on the CPU's SIMD width, so
coordinates up to 64 px carry a few float32 ulps (measured <= 1.7e-5 here) against the fixtures. The float64
value of the reference function is within 5e-6 of the fixtures, so 2e-5 is the float32 noise, not a bias.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posekit import codecs, geometry
from posekit.codecs import integral

SOFTMAX_ATOL = 2e-5


@pytest.fixture(scope="module")
def decode_inputs(reference_dir):
    return dict(np.load(reference_dir / "codecs" / "heatmaps_decode_inputs.npz"))


def test_lpn_soft_argmax_matches_official(reference_dir, decode_inputs):
    f = dict(np.load(reference_dir / "codecs" / "lpn_soft_argmax.npz"))
    hm = decode_inputs["heatmaps"]
    for n in range(hm.shape[0]):
        preds, maxvals = integral.lpn_soft_argmax(hm[n], beta=160)
        np.testing.assert_allclose(preds, f["softargmax_beta160_preds"][n], rtol=0, atol=SOFTMAX_ATOL)
        np.testing.assert_array_equal(maxvals, f["softargmax_beta160_maxvals"][n])
        preds100, _ = integral.lpn_soft_argmax(hm[n], beta=100)
        np.testing.assert_allclose(preds100, f["softargmax_beta100_preds"][n], rtol=0, atol=SOFTMAX_ATOL)


@pytest.mark.parametrize("post_process", [True, False])
def test_lpn_final_preds_match_official(reference_dir, decode_inputs, post_process):
    f = dict(np.load(reference_dir / "codecs" / "lpn_soft_argmax.npz"))
    ref = f["final_preds_post" if post_process else "final_preds_nopost"]
    hm, center, scale = decode_inputs["heatmaps"], decode_inputs["center"], decode_inputs["scale"]
    codec = codecs.build("beta_soft_argmax", num_keypoints=8, post_process=post_process)
    assert codec.beta == 160 and codec.shift_heatmap and codec.affine == "standard"
    for n in range(hm.shape[0]):
        # image px = heatmap px * up to ~10: the heatmap-space float32 noise times that factor
        atol = SOFTMAX_ATOL * float(scale[n].max() * 200 / 48) + 1e-5
        preds, maxvals = integral.get_final_preds_using_softargmax(hm[n], center[n], scale[n], post_process)
        np.testing.assert_allclose(preds, ref[n], rtol=0, atol=atol)
        np.testing.assert_array_equal(maxvals, f["final_maxvals"][n])
        kp, scores = codec.decode(hm[n])
        img = geometry.transform_preds(kp, center[n], scale[n] * 200, codec.input_size, kind="standard")
        np.testing.assert_allclose(img, ref[n], rtol=0, atol=atol)
        np.testing.assert_array_equal(scores, f["final_maxvals"][n][..., 0].astype(np.float32))


U32 = 2.0 ** -24  # float32 unit roundoff
LAMBDA = 8.0  # probabilistic bound below fails with probability < 2 n exp(-LAMBDA^2 / 2) ~ 1e-10 per sum


def soft_argmax_3d_tolerance(shape_bjdhw: np.ndarray, coord: np.ndarray) -> np.ndarray:
    """Bound on |ours - official| of the 3DMPPE soft-argmax when only torch's CPU kernels differ.

    out + 1 = sum_a a * m(a) / S: a ratio of sums of positive float32 terms (S over the N = D*H*W voxels, each
    marginal over D*H, H*W or D*W voxels, then over its axis). Subtracting the max and dividing are correctly
    rounded (identical everywhere); what differs between kernels (AVX-512, AVX2, default) is exp (each within
    1 ulp: 4u relative between two) and the order of the summations. A sum of n positive terms in any order is
    within lambda sqrt(n) u of exact (Higham & Mary's probabilistic bound, lambda = 8), so two orders differ by
    twice that. Relative errors of positive terms add up; the final "- 1" adds u |out| on each side.
    """
    _, _, d, h, w = (int(v) for v in shape_bjdhw)
    n = d * h * w
    marginal = max(d * h, d * w, h * w)
    rel = 4 * U32 + 2 * LAMBDA * U32 * (np.sqrt(n) + np.sqrt(marginal) + np.sqrt(max(d, h, w))) + 8 * U32
    return rel * (np.abs(coord) + 1) + 2 * U32 * np.abs(coord)


def test_3dmppe_soft_argmax_matches_official(reference_dir):
    d = dict(np.load(reference_dir / "codecs" / "3dmppe_soft_argmax.npz"))
    for c in range(5):
        _, j, depth, _, _ = d[f"case{c}_shape_BJDHW"]
        out = integral.soft_argmax_3d(d[f"case{c}_heatmaps"], int(j), int(depth))
        tol = soft_argmax_3d_tolerance(d[f"case{c}_shape_BJDHW"], d[f"case{c}_coord"])  # 5e-5 .. 5e-3 voxels here
        assert (np.abs(out - d[f"case{c}_coord"]) <= tol).all(), np.abs(out - d[f"case{c}_coord"]).max()
        t = torch.from_numpy(d[f"case{c}_heatmaps"]).requires_grad_(True)
        out_t = integral.soft_argmax_3d(t, int(j), int(depth))
        out_t.sum().backward()
        assert t.grad is not None and torch.isfinite(t.grad).all()


def test_soft_argmax_closed_form():
    # two pixels with logits a, b: expectation = p_a * x_a + p_b * x_b
    x = np.full((1, 1, 4, 5), -1e4, np.float32)
    x[0, 0, 1, 2], x[0, 0, 3, 4] = 0.0, np.log(3.0)
    out = integral.soft_argmax_2d(x, beta=1.0)
    np.testing.assert_allclose(out[0, 0], [0.25 * 2 + 0.75 * 4, 0.25 * 1 + 0.75 * 3], atol=1e-5)


def test_integral_encode_format_and_round_trip():
    codec = codecs.build("integral")
    kp = np.random.default_rng(0).uniform(24, 168, size=(6, 17, 2))
    kp[..., 1] *= 232 / 168
    enc = codec.encode(kp[0])
    np.testing.assert_allclose(enc["target"], kp[0] / 4, rtol=1e-6)  # heatmap px, x * 48 / 192
    np.testing.assert_allclose(enc["target_norm"], kp[0] / [192, 256], rtol=1e-6)
    outside = kp[0].copy()
    outside[2] = [-3.0, 50.0]
    assert codec.encode(outside)["target_weight"][2, 0] == 0
    dec, scores = codec.decode(np.stack([codec.perfect_outputs(k) for k in kp]))
    err = np.linalg.norm(dec - kp, axis=-1)
    # only the bias of a Gaussian truncated by the map border, 6+ heatmap px (3 sigma) away
    assert err.mean() < 0.01 and err.max() < 0.1
    assert np.all((scores > 0) & (scores <= 1))


def test_beta_soft_argmax_encode_is_the_gaussian_heatmap_target():
    codec = codecs.build("beta_soft_argmax")
    kp = np.random.default_rng(1).uniform(20, 170, size=(17, 2))
    enc = codec.encode(kp)
    np.testing.assert_array_equal(enc["target"], codecs.build("msra").encode(kp)["target"])
    np.testing.assert_allclose(enc["target_coords"], kp / 4, rtol=1e-6)
    dec, _ = codec.decode(enc["target"][None])
    np.testing.assert_allclose(dec[0], np.trunc(kp / 4 + 0.5) * 4, atol=1e-3)  # the target's integer centre
