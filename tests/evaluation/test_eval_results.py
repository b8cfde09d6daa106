"""Results writer: official rescoring, OKS-NMS per image, image threshold, COCO results fields."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posekit.errors import DataError
from posekit.evaluation import nms, results


def _poses(n=12, k=17, seed=0):
    rng = np.random.default_rng(seed)
    kpts = np.concatenate([rng.uniform(0, 400, (n, k, 2)), rng.random((n, k, 1))], axis=2).astype(np.float32)
    return kpts, rng.random(n), rng.integers(0, 3, n) + 100, rng.uniform(50, 300, (n, 2)), rng.uniform(60, 200, (n, 2))


def test_rescore_is_box_score_times_mean_of_visible_scores():
    kpts, box, *_ = _poses()
    kpts[3, :, 2] = 0.1  # no keypoint above IN_VIS_THRE: score 0 (official)
    got = results.rescore(kpts, box, 0.2)
    for i in range(len(box)):
        s = kpts[i, :, 2]
        vis = s[s > 0.2]
        want = float(np.float32(vis.sum()) / np.float32(vis.size)) * box[i] if vis.size else 0.0
        assert got[i] == pytest.approx(want, rel=1e-6)
    assert got[3] == 0.0


def test_make_results_applies_nms_per_image_and_writes_fields():
    kpts, box, ids, centers, sizes = _poses(40)
    kpts[1] = kpts[0] + 0.5  # duplicate of person 0 in ...
    ids[1] = ids[0]  # ... the same image
    out = results.make_results(kpts, box, ids, centers=centers, sizes=sizes, oks_thre=0.9)
    scores = results.rescore(kpts, box)
    areas = sizes[:, 0] * sizes[:, 1]
    want = np.concatenate(nms.nms_per_image(kpts, scores, areas, ids, 0.9))
    assert [r["score"] for r in out] == [float(scores[i]) for i in want]
    assert len(out) < 40
    r = out[0]
    i = want[0]
    assert set(r) == {"image_id", "category_id", "keypoints", "score", "center", "scale"}
    assert r["image_id"] == int(ids[i]) and r["category_id"] == 1
    assert r["keypoints"] == [float(v) for v in kpts[i].reshape(-1)]
    assert r["scale"] == pytest.approx((sizes[i] / 200.0).tolist())
    assert r["center"] == pytest.approx(centers[i].tolist())
    # images in order of first appearance, as the official per-image dict
    seen = list(dict.fromkeys(ids.tolist()))
    assert list(dict.fromkeys(r["image_id"] for r in out)) == seen


def test_modes_and_thresholds():
    kpts, box, ids, _, sizes = _poses(30)
    areas = sizes[:, 0] * sizes[:, 1]
    none = results.make_results(kpts, box, ids, areas=areas, nms="none")
    assert len(none) == 30
    thr = float(np.sort(box)[10])
    kept = results.make_results(kpts, box, ids, areas=areas, nms="none", image_thre=thr)
    assert len(kept) == int((box >= thr).sum())
    soft = results.make_results(kpts, box, ids, areas=areas, nms="soft", oks_thre=0.9)
    assert len(soft) == sum(min(20, int((ids == i).sum())) for i in np.unique(ids))
    with pytest.raises(DataError, match="nms"):
        results.make_results(kpts, box, ids, areas=areas, nms="greedy")
    with pytest.raises(DataError, match="areas"):
        results.make_results(kpts, box, ids)


def test_invalid_inputs_name_the_field():
    kpts, box, ids, _, sizes = _poses(5)
    kpts[2, 4, 0] = np.nan
    with pytest.raises(DataError, match="keypoints: NaN"):
        results.make_results(kpts, box, ids, sizes=sizes)
    with pytest.raises(DataError, match="box_scores"):
        results.make_results(np.nan_to_num(kpts), box[:4], ids, sizes=sizes)
    with pytest.raises(DataError, match=r"keypoints: expected shape \[N, K, 3\]"):
        results.make_results(kpts[:, :, :2], box, ids, sizes=sizes)


def test_write_results_round_trip(tmp_path):
    kpts, box, ids, _, sizes = _poses(6)
    res = results.make_results(kpts, box, ids, sizes=sizes)
    path = results.write_results(res, tmp_path / "sub" / "res.json")
    assert json.loads(path.read_text()) == res
