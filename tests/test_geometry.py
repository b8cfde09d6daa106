"""posekit.geometry against the official HRNet / DarkPose / UDP fixtures and closed-form math."""

from __future__ import annotations

import numpy as np
import pytest

from posekit import geometry as G


def _load(reference_dir, name):
    return dict(np.load(reference_dir / "codecs" / name))


def test_hrnet_get_affine_transform_matches_official(reference_dir):
    d = _load(reference_dir, "hrnet_affine.npz")
    for n in range(len(d["center"])):
        scale = d["scale"][n, 0] if d["scale_passed_as_scalar"][n] else d["scale"][n]
        trans = G.get_affine_transform(
            d["center"][n], scale, d["rot"][n], d["output_size"][n], shift=d["shift"][n], inv=bool(d["inv"][n])
        )
        np.testing.assert_allclose(trans, d["trans"][n], rtol=0, atol=1e-9)
        pts = G.apply_affine(d["points"][n], d["trans"][n])
        np.testing.assert_allclose(pts, d["points_transformed"][n], rtol=0, atol=1e-9)


def test_hrnet_transform_preds_matches_official(reference_dir):
    d = _load(reference_dir, "hrnet_affine.npz")
    for n in range(len(d["tp_center"])):
        out = G.transform_preds_official(d["tp_coords"][n], d["tp_center"][n], d["tp_scale"][n], d["tp_output_size"][n])
        np.testing.assert_allclose(out, d["tp_result"][n], rtol=0, atol=1e-9)
        # the px-size API gives the same numbers
        out_px = G.transform_preds(
            d["tp_coords"][n][None], d["tp_center"][n][None], d["tp_scale"][n][None] * 200, d["tp_output_size"][n]
        )
        np.testing.assert_allclose(out_px[0], d["tp_result"][n], rtol=0, atol=1e-6)


def test_dark_affine_matches_official(reference_dir):
    d = _load(reference_dir, "dark_affine.npz")
    for n in range(len(d["center"])):
        trans = G.get_affine_transform_dark(
            d["center"][n], d["scale"][n], d["rot"][n], d["output_size"][n], inv=bool(d["inv"][n])
        )
        np.testing.assert_allclose(trans, d["trans"][n], rtol=0, atol=1e-9)
        m = G.affine_matrix(d["center"][n], d["scale"][n] * 200, d["rot"][n], d["output_size"][n], "dark",
                            inv=bool(d["inv"][n]))
        np.testing.assert_allclose(m, d["trans"][n], rtol=0, atol=1e-6)
    out = G.transform_preds(d["tp_coords"], d["tp_center"], d["tp_scale"] * 200, d["tp_output_size"], kind="dark")
    np.testing.assert_allclose(out, d["tp_result"], rtol=0, atol=1e-6)


def test_udp_warp_and_transform_preds_match_official(reference_dir):
    d = _load(reference_dir, "udp_affine_flip.npz")
    for n in range(len(d["warp_rot"])):
        m = G.affine_matrix(d["warp_center"][n], d["warp_scale"][n] * 200, d["warp_rot"][n], d["warp_image_size"][n],
                            kind="udp")
        np.testing.assert_allclose(m, d["warp_trans"][n], rtol=0, atol=1e-6 * np.abs(d["warp_trans"][n]).max())
        np.testing.assert_array_equal(
            G.get_warp_matrix(d["warp_rot"][n], d["warp_center"][n] * 2.0, d["warp_image_size"][n] - 1.0,
                              d["warp_scale"][n] * 200.0),
            d["warp_trans"][n],
        )
        pts = G.apply_affine(d["warp_points"][n], d["warp_trans"][n])
        np.testing.assert_allclose(pts, d["warp_points_out"][n], rtol=0, atol=1e-9)
        # the inverse matrix undoes the forward one
        mi = G.affine_matrix(d["warp_center"][n], d["warp_scale"][n] * 200, d["warp_rot"][n], d["warp_image_size"][n],
                             kind="udp", inv=True)
        np.testing.assert_allclose(G.apply_affine(pts, mi), d["warp_points"][n], atol=1e-6)
    for n in range(len(d["tp_center"])):
        out = G.transform_preds_official(d["tp_coords"][n], d["tp_center"][n], d["tp_scale"][n], d["tp_output_size"],
                                         kind="udp")
        np.testing.assert_array_equal(out, d["tp_result"][n])
    out = G.transform_preds(d["tp_coords"], d["tp_center"], d["tp_scale"] * 200, d["tp_output_size"], kind="udp")
    np.testing.assert_allclose(out, d["tp_result"], rtol=0, atol=1e-9)


def test_fliplr_joints_matches_official(reference_dir):
    d = _load(reference_dir, "hrnet_flip.npz")
    pairs = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]
    for n in range(len(d["fliplr_joints_in"])):
        j, v = G.fliplr_joints(d["fliplr_joints_in"][n], d["fliplr_joints_vis_in"][n], 640, pairs)
        np.testing.assert_array_equal(j, d["fliplr_joints_out"][n])
        np.testing.assert_array_equal(v, d["fliplr_joints_vis_out"][n])
        kp = np.concatenate([d["fliplr_joints_in"][n][:, :2], d["fliplr_joints_vis_in"][n][:, :1] * 2], axis=1)
        out = G.flip_keypoints(kp, 640, pairs)
        np.testing.assert_array_equal(out[:, :2], d["fliplr_joints_out"][n][:, :2])
        np.testing.assert_array_equal(out[:, 2], d["fliplr_joints_vis_out"][n][:, 0] * 2)


def test_box_xywh_to_center_size_official_rule():
    # wide box: height grows to w / aspect; tall box: width grows to h * aspect; both times 1.25
    c, s = G.box_xywh_to_center_size([10, 20, 300, 100], aspect_ratio=192 / 256)
    np.testing.assert_allclose(c, [160, 70])
    np.testing.assert_allclose(s, [300 * 1.25, 400 * 1.25], rtol=1e-6)
    c, s = G.box_xywh_to_center_size([0, 0, 30, 200], aspect_ratio=0.75, padding=1.0)
    np.testing.assert_allclose(c, [15, 100])
    np.testing.assert_allclose(s, [150, 200], rtol=1e-6)
    # the official scale (size / 200) is a float32 value
    assert np.all((s / 200).astype(np.float32).astype(np.float64) == s / 200)


@pytest.mark.parametrize("kind", G.KINDS)
def test_affine_matrix_maps_box_onto_crop(kind):
    center, size, out = np.array([320.3, 240.7]), np.array([150.0, 200.0]), (192, 256)
    m = G.affine_matrix(center, size, 0.0, out, kind=kind)
    # the box centre goes to the crop centre
    expect_c = {"standard": (96, 128), "dark": (95.5, 127.5), "udp": (95.5, 127.5)}[kind]
    np.testing.assert_allclose(G.apply_affine(center, m), expect_c, atol=1e-4)
    # inverse matrix round trip, and transform_preds (rot 0) equals the inverse map
    mi = G.affine_matrix(center, size, 0.0, out, kind=kind, inv=True)
    pts = np.random.default_rng(0).uniform(0, 190, size=(1, 17, 2))
    back = G.transform_preds(pts, center[None], size[None], out, kind=kind)
    np.testing.assert_allclose(back[0], G.apply_affine(pts[0], mi), atol=1e-3)
    np.testing.assert_allclose(G.apply_affine(back[0], m), pts[0], atol=1e-3)


def test_rotation_keeps_centre_and_rotates_direction():
    center, size = np.array([100.0, 100.0]), np.array([200.0, 200.0])
    m = G.affine_matrix(center, size, 90.0, (100, 100), kind="standard")
    # scale 100/200: the centre goes to the crop centre and distances halve
    p = G.apply_affine(np.array([[100.0, 100.0], [100.0, 50.0]]), m)
    np.testing.assert_allclose(p[0], [50, 50], atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(p[1] - p[0]), 25.0, atol=1e-4)


def test_warp_crop_samples_through_the_inverse_map():
    # bilinear warping of a linear image is exact: crop(u, v) = image(inverse(u, v)) away from the border
    yy, xx = np.mgrid[0:200, 0:240].astype(np.float32)
    img = np.stack([xx, yy, xx + yy], axis=-1)
    center, size, out = np.array([120.0, 100.0]), np.array([90.0, 120.0]), (48, 64)
    for kind in G.KINDS:
        m = G.affine_matrix(center, size, 20.0, out, kind=kind)
        crop = G.warp_crop(img, m, out)
        assert crop.shape == (64, 48, 3)
        v, u = np.mgrid[0:64, 0:48]
        src = G.apply_affine(np.stack([u, v], -1).astype(np.float64), G.affine_matrix(center, size, 20.0, out, kind,
                                                                                      inv=True))
        np.testing.assert_allclose(crop[..., 0], src[..., 0], atol=0.05)
        np.testing.assert_allclose(crop[..., 1], src[..., 1], atol=0.05)


@pytest.mark.parametrize("kind", G.KINDS)
def test_rescale_points_equals_the_composition_of_the_two_crops(kind):
    """heatmap -> input px must equal (input affine) o (heatmap affine)^-1 for any box (rot 0)."""
    rng = np.random.default_rng(7)
    pts = rng.uniform(0, 47, size=(30, 2))
    for center, size in (([300.0, 200.0], [150.0, 200.0]), ([50.5, 80.25], [97.0, 130.0])):
        hm_inv = G.affine_matrix(center, size, 0.0, (48, 64), kind=kind, inv=True)
        to_input = G.affine_matrix(center, size, 0.0, (192, 256), kind=kind)
        expect = G.apply_affine(G.apply_affine(pts, hm_inv), to_input)
        # udp matrices are float32 (official), the others are exact to float64 rounding
        np.testing.assert_allclose(G.rescale_points(pts, (48, 64), (192, 256), kind), expect, atol=1e-4)
    back = G.rescale_points(G.rescale_points(pts, (48, 64), (192, 256), kind), (192, 256), (48, 64), kind)
    np.testing.assert_allclose(back, pts, atol=1e-12)
