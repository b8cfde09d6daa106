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


# -- tolerances: the official decode blurs in float32 with OpenCV, whose SIMD kernels differ between CPUs ---------
U32 = 2.0 ** -24  # float32 unit roundoff


def blur_delta(kernel: int, peak: float) -> float:
    """Bound on the difference of two float32 GaussianBlur kernels (any SIMD width, FMA or not) at one pixel.

    The blur is separable: per pass K products of weights >= 0 (float32, summing to 1 within K u) and K - 1 sums,
    each rounding a value <= M = max|map|: at most 2K roundings of size u M per pass, 4K over both passes. Two
    kernels are each that far from the exact value: 8 K u M.
    """
    return 8 * kernel * U32 * peak


def dark_udp_tolerance(hm: np.ndarray, coords: np.ndarray, kernel: int) -> np.ndarray:
    """Per keypoint [N,K] bound on |ours - official| of post_dark_udp's heatmap coordinates (inf where unbounded).

    The Newton step x = H^-1 g reads 9 log-blurred pixels b (clipped to [0.001, 50]): each log differs by at most
    d = delta / max(b, 0.001) + 2 u |log b| (the blur bound, the float32 log's rounding on both sides). Then
    |dg|_2 <= sqrt(2) d (halved differences), |dH|_2 <= |dH|_F <= 8 d (|dxx|, |dyy| <= 4 d; |dxy| <= 4 d), and
    |dx| <= |H^-1| (|dg| + |dH| |x|) / (1 - |H^-1| |dH|) while |H^-1| |dH| < 1 (else inf: the step is not
    determined by the arithmetic, e.g. the official garbage step of an all-zero map). Plus one float32 ulp of the
    coordinate on each side.
    """
    import cv2

    n, k, h, w = hm.shape
    maps = hm.reshape(n * k, h, w)
    blurred = np.stack([cv2.GaussianBlur(m, (kernel, kernel), 0, borderType=cv2.BORDER_REFLECT_101) for m in maps])
    b = np.pad(np.clip(blurred, 0.001, 50).astype(np.float64), ((0, 0), (1, 1), (1, 1)), mode="symmetric")
    flat, logs = b.reshape(-1), np.log(b).reshape(-1)
    delta = blur_delta(kernel, float(np.abs(hm).max()))
    c = coords.reshape(-1, 2).astype(np.int64)
    index = c[:, 0] + 1 + (c[:, 1] + 1) * (w + 2) + (w + 2) * (h + 2) * np.arange(n * k)
    offsets = [0, 1, -1, w + 2, -(w + 2), w + 3, -(w + 3)]  # the pixels the official step reads (with wrap)
    near = np.stack([index + o for o in offsets])
    d = (delta / flat[near] + 2 * U32 * np.abs(logs[near])).max(axis=0)
    i_, ix1, ix1_, iy1, iy1_, ix1y1, ix1_y1_ = (logs[j] for j in near)
    hess = np.stack([np.stack([ix1 - 2 * i_ + ix1_, 0.5 * (ix1y1 - ix1 - iy1 + 2 * i_ - ix1_ - iy1_ + ix1_y1_)], -1),
                     np.stack([0.5 * (ix1y1 - ix1 - iy1 + 2 * i_ - ix1_ - iy1_ + ix1_y1_), iy1 - 2 * i_ + iy1_], -1)],
                    -2) + np.finfo(np.float32).eps * np.eye(2)
    inv_norm = np.linalg.norm(np.linalg.inv(hess), ord=2, axis=(1, 2))
    step = np.linalg.norm(np.einsum("imn,in->im", np.linalg.inv(hess), np.stack([0.5 * (ix1 - ix1_),
                                                                                  0.5 * (iy1 - iy1_)], -1)), axis=1)
    shrink = 1 - inv_norm * 8 * d
    bound = np.where(shrink > 0, inv_norm * (np.sqrt(2) * d + 8 * d * step) / np.maximum(shrink, 1e-300), np.inf)
    ulp = np.spacing(np.float32(max(h, w)))
    return (bound + 2 * ulp).reshape(n, k)


def udp_image_tolerance(hm: np.ndarray, coords: np.ndarray, kernel: int, scale: np.ndarray,
                        preds: np.ndarray) -> np.ndarray:
    """[N,K,2] bound in image px: the heatmap bound times the UDP scale (scale x 200 / (size - 1)) per axis, plus
    one float32 ulp of the image coordinate on each side."""
    h, w = hm.shape[2:]
    px = scale.reshape(-1, 1, 2) * 200.0 / (np.array([w, h]) - 1.0)
    return dark_udp_tolerance(hm, coords, kernel)[..., None] * px + 2 * np.spacing(np.abs(preds).astype(np.float32))


def assert_within(actual: np.ndarray, desired: np.ndarray, tol: np.ndarray, hm: np.ndarray) -> None:
    """|actual - desired| <= tol everywhere; only maps without a peak (max <= 0, or constant: the Newton step is
    then the official garbage, not determined by the arithmetic) may be unbounded (inf)."""
    peaked = (hm.max(axis=(2, 3)) > 0) & (hm.max(axis=(2, 3)) > hm.min(axis=(2, 3)))
    assert np.isfinite(tol[peaked]).all()  # every real keypoint is held to a finite bound
    assert (np.abs(actual.astype(np.float64) - desired) <= tol).all(), np.abs(actual - desired).max()


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
    """Argmax and maxvals exact (no float arithmetic); coordinates within the bound of the float32 blur's kernels
    (tolerance helpers above: ~1e-4 px here; 0 difference on the developers' CPU, up to 1e-4 with OpenCV at SSE4.2)."""
    hm, center, scale = decode_inputs["heatmaps"], decode_inputs["center"], decode_inputs["scale"]
    for n in range(hm.shape[0]):
        preds, maxvals = udp.keypoints_from_heatmaps(hm[n], center[n], scale[n], kernel=kernel)
        np.testing.assert_array_equal(maxvals, fix[f"gaussian_k{kernel}_maxvals"][n])
        coords, _ = udp.get_max_preds(hm[n])
        tol = udp_image_tolerance(hm[n], coords, kernel, scale[n], preds)
        assert_within(preds, fix[f"gaussian_k{kernel}_preds"][n], tol, hm[n])
        if kernel == 11:
            assert_within(udp.post_dark_udp(coords, hm[n], 11), fix["gaussian_k11_heatmap_coords"][n],
                          dark_udp_tolerance(hm[n], coords, 11)[..., None], hm[n])


def test_codec_decode_then_transform_preds_is_the_official_result(fix, decode_inputs):
    # batches of 2 as the fixture: the garbage Newton step of maxval<=0 maps reads the neighbouring map (official)
    codec = codecs.build("udp", num_keypoints=8)
    for n in range(decode_inputs["heatmaps"].shape[0]):
        hm = decode_inputs["heatmaps"][n]
        kp, scores = codec.decode(hm)
        img = geometry.transform_preds(kp, decode_inputs["center"][n], decode_inputs["scale"][n] * 200,
                                       codec.input_size, kind="udp")
        tol = udp_image_tolerance(hm, udp.get_max_preds(hm)[0], 11, decode_inputs["scale"][n], img) + 1e-5
        assert_within(img.astype(np.float32), fix["gaussian_k11_preds"][n], tol, hm)
        np.testing.assert_array_equal(scores, fix["gaussian_k11_maxvals"][n][..., 0])


def test_maxval_le_zero_gives_minus_one_before_the_newton_step():
    hm = np.zeros((1, 2, 64, 48), np.float32)
    hm[0, 0] = -1.0
    hm[0, 1, 10, 20] = 1.0
    coords, maxvals = udp.get_max_preds(hm)
    np.testing.assert_array_equal(coords[0, 0], [-1, -1])
    np.testing.assert_array_equal(coords[0, 1], [20, 10])


def test_combined_decode_batched_fixes_the_official_broadcast_crash(fix):
    """The fixture was made one sample at a time (official N>1 crashes); posekit decodes all 4 at once.

    The argmax of the float32-blurred responses is exact by construction: every peak leads its runner-up by more
    than twice the blur bound of its map (asserted). Maxvals are within the 15-tap blur bound of their map;
    coordinates within the 7-tap blur bound of the offset maps times the valid radius, in image px, plus ulps.
    """
    import cv2

    maps, k = fix["combined_input"], 7
    n, c, h, w = maps.shape
    resp, offs = maps.reshape(n, c // 3, 3, h, w)[:, :, 0], maps.reshape(n, c // 3, 3, h, w)[:, :, 1:]
    d_resp = blur_delta(2 * k + 1, np.abs(resp).max(axis=(2, 3)))  # [N,K]: each map's own peak
    blurred = np.stack([[cv2.GaussianBlur(m, (2 * k + 1,) * 2, 0, borderType=cv2.BORDER_REFLECT_101) for m in row]
                        for row in resp]).reshape(n, c // 3, -1)
    top2 = np.sort(blurred, axis=-1)[..., -2:]
    assert (top2[..., 1] - top2[..., 0] > 2 * d_resp).all()  # the argmax cannot flip on another CPU
    radius = udp.VALID_RADIUS_FACTOR * h
    d_off = blur_delta(k, np.abs(offs).max(axis=(3, 4))) * radius  # [N,K,2]: each offset map's own peak
    px = fix["combined_scale"].reshape(-1, 1, 2) * 200.0 / (np.array([w, h]) - 1.0)

    def tol(preds: np.ndarray) -> np.ndarray:
        return (d_off + 2 * np.spacing(np.float32(max(h, w)))) * px + 2 * np.spacing(np.abs(preds).astype(np.float32))

    preds, maxvals = udp.keypoints_from_heatmaps(maps, fix["combined_center"], fix["combined_scale"], kernel=k,
                                                 target_type="CombinedTarget")
    assert (np.abs(preds - fix["combined_k7_preds"]) <= tol(preds)).all()
    assert (np.abs(maxvals - fix["combined_k7_maxvals"]) <= d_resp[..., None]).all()
    codec = codecs.build("udp_offset", blur_kernel=k)
    kp, scores = codec.decode(maps)
    img = geometry.transform_preds(kp, fix["combined_center"], fix["combined_scale"] * 200, codec.input_size, "udp")
    assert (np.abs(img.astype(np.float32) - fix["combined_k7_preds"]) <= tol(img) + 1e-5).all()
    assert (np.abs(scores - fix["combined_k7_maxvals"][..., 0]) <= d_resp).all()


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
