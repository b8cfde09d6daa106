"""OKS-NMS against the official HRNet oks_nms / soft_oks_nms / oks_iou fixtures."""

from __future__ import annotations

import numpy as np
import pytest

from posekit.errors import DataError
from posekit.evaluation import nms


@pytest.fixture(scope="module")
def fixture(reference_dir):
    return np.load(reference_dir / "codecs" / "hrnet_oks_nms.npz")


SETS = [f"set{i:02d}" for i in range(20)]


@pytest.mark.parametrize("name", SETS)
@pytest.mark.parametrize("thr", [0.9, 0.5])
def test_oks_nms_keep_lists_equal_official(fixture, name, thr):
    k, s, a = fixture[f"{name}_keypoints"], fixture[f"{name}_scores"], fixture[f"{name}_areas"]
    keep = nms.oks_nms(k, s, a, thr)
    np.testing.assert_array_equal(keep, fixture[f"{name}_oks_nms_thr{thr}"])
    soft = nms.soft_oks_nms(k, s, a, thr)
    np.testing.assert_array_equal(soft, fixture[f"{name}_soft_oks_nms_thr{thr}"])


@pytest.mark.parametrize("name", SETS)
def test_in_vis_thre_quirk_and_oks_iou(fixture, name):
    k, s, a = fixture[f"{name}_keypoints"], fixture[f"{name}_scores"], fixture[f"{name}_areas"]
    keep = nms.oks_nms(k, s, a, 0.9, in_vis_thre=0.2)
    np.testing.assert_array_equal(keep, fixture[f"{name}_oks_nms_thr0.9_invis0.2"])
    # values agree to the last bits (the official run used another CPU's exp(); ties are not affected)
    np.testing.assert_allclose(nms.oks_iou(k[0], k, a[0], a), fixture[f"{name}_oks_iou_first_vs_all"],
                               rtol=1e-13, atol=1e-300)


def _literal_oks(g, d, ag, ad, sigmas, in_vis_thre=None):
    """Per-pair OKS written from the formula: mean_k exp(-d^2 / (2 * area * (2 sigma)^2))."""
    var = (2 * sigmas) ** 2
    e = ((d[:, 0] - g[:, 0]) ** 2 + (d[:, 1] - g[:, 1]) ** 2) / var / ((ag + ad) / 2 + np.spacing(1)) / 2
    if in_vis_thre is not None:
        e = e[d[:, 2] > in_vis_thre]
    return np.exp(-e).mean() if e.size else 0.0


@pytest.mark.parametrize("in_vis", [None, 0.5])
def test_oks_matrix_matches_formula(in_vis):
    rng = np.random.default_rng(3)
    k = rng.uniform(0, 100, (9, 17, 3))
    k[:, :, 2] = rng.random((9, 17))
    a = rng.uniform(500, 5000, 9)
    m = nms.oks_matrix(k, a, in_vis_thre=in_vis)
    want = np.array([[_literal_oks(k[i], k[j], a[i], a[j], nms.COCO_SIGMAS, in_vis) for j in range(9)]
                     for i in range(9)])
    np.testing.assert_allclose(m, want, rtol=1e-12)
    if in_vis is None:
        np.testing.assert_allclose(np.diag(m), 1.0)


def test_nms_suppresses_duplicates_and_respects_threshold():
    base = np.random.default_rng(0).uniform(0, 200, (17, 3))
    k = np.stack([base, base + 0.5, base + 80.0])
    k[:, :, 2] = 1.0
    s = np.array([0.5, 0.9, 0.7])
    a = np.full(3, 4000.0)
    np.testing.assert_array_equal(nms.oks_nms(k, s, a, 0.9), [1, 2])  # 0 is a near-copy of the better 1
    np.testing.assert_array_equal(nms.oks_nms(k, s, a, 1.0), [1, 2, 0])  # nothing exceeds OKS 1
    np.testing.assert_array_equal(nms.soft_oks_nms(k, s, a, 0.9), [1, 2, 0])  # soft keeps all, rescored order
    assert nms.oks_nms(k[:0], s[:0], a[:0], 0.9).size == 0
    assert nms.soft_oks_nms(k[:0], s[:0], a[:0], 0.9).size == 0


def test_soft_nms_caps_at_20():
    rng = np.random.default_rng(1)
    k = rng.uniform(0, 1000, (30, 17, 3))
    keep = nms.soft_oks_nms(k, rng.random(30), np.full(30, 1e4), 0.5)
    assert keep.shape == (20,) and len(set(keep.tolist())) == 20


def test_per_image_grouping_and_nan_suppresses():
    ids = np.array([7, 3, 7, 3, 9])
    groups = nms.group_by_image(ids)
    assert [g.tolist() for g in groups] == [[0, 2], [1, 3], [4]]
    k = np.zeros((5, 17, 3))
    k[:, :, 2] = 1
    k[2, :, :2] += 500.0  # far from detection 0 ...
    k[3, :, :2] += 500.0  # ... and 3 far from 1: nothing overlaps
    scores, areas = np.array([0.9, 0.8, 0.7, 0.6, 0.5]), np.full(5, 100.0)
    assert [g.tolist() for g in nms.nms_per_image(k, scores, areas, ids, 0.9)] == [[0, 2], [1, 3], [4]]
    k[2, 0, 0] = np.nan  # a NaN overlap: the official `ovr <= thresh` filter drops the detection
    assert [g.tolist() for g in nms.nms_per_image(k, scores, areas, ids, 0.9)] == [[0], [1, 3], [4]]


def test_bad_shapes_raise():
    with pytest.raises(DataError, match="sigmas"):
        nms.oks_nms(np.zeros((2, 14, 3)), np.ones(2), np.ones(2), 0.9)
    with pytest.raises(DataError, match="areas"):
        nms.oks_nms(np.zeros((2, 17, 3)), np.ones(2), np.ones(3), 0.9)


def _official_greedy(k, s, a, thr):
    """The official loop: take the best remaining, drop the rest whose OKS with it is > thr."""
    order = s.argsort()[::-1]
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        ovr = np.array([_literal_oks(k[i], k[j], a[i], a[j], nms.COCO_SIGMAS) for j in order[1:]])
        order = order[1:][~(ovr > thr)]
    return keep


@pytest.mark.parametrize("thr", [0.3, 0.5, 0.9, 0.97])
def test_oks_nms_equals_official_greedy_on_clusters(thr):
    rng = np.random.default_rng(int(thr * 100))
    centres = rng.uniform(0, 300, (4, 17, 2))
    k = np.concatenate([centres[rng.integers(0, 4, 60)] + rng.normal(0, 4, (60, 17, 2)),
                        rng.random((60, 17, 1))], axis=2).astype(np.float32)
    s = np.round(rng.random(60), 1)  # many equal scores: the tie order must follow argsort as officially
    a = rng.uniform(2000, 9000, 60)
    np.testing.assert_array_equal(nms.oks_nms(k, s, a, thr), _official_greedy(k, s, a, thr))
