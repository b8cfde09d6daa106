"""CC-SSL PCK@0.05 (bearpaw accuracy) against codecs/ccssl_bearpaw.npz, per-batch accumulation, COCO AP of the
same predictions against pycocotools through posekit.evaluation.coco."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posekit.codecs.bearpaw import BearpawCodec
from posekit.evaluation import pck_bearpaw as P
from posekit.skeletons import get as skeleton


@pytest.fixture(scope="module")
def ref(reference_dir):
    return np.load(reference_dir / "codecs/ccssl_bearpaw.npz")


def test_accuracy_all_and_subset(ref):
    acc, dists = P.accuracy(ref["hm"], ref["acc_target"], ref["acc_idxs_all"], float(ref["acc_thr"]))
    np.testing.assert_array_equal(acc, ref["acc_all"])
    np.testing.assert_array_equal(dists, ref["acc_dists"])
    acc, _ = P.accuracy(ref["hm"], ref["acc_target"], ref["acc_idxs_sub"])
    np.testing.assert_array_equal(acc, ref["acc_sub"])


def test_dist_acc_and_calc_dists(ref):
    assert P.dist_acc(ref["dist_acc_in"], 0.5) == float(ref["dist_acc_thr0.5"])  # strict: 0.5 itself misses
    assert P.dist_acc(ref["dist_acc_in"], 0.6) == float(ref["dist_acc_thr0.6"])
    assert P.dist_acc(-np.ones(4)) == float(ref["dist_acc_all_ignored"]) == -1
    out = P.calc_dists(ref["calc_dists_preds"], ref["calc_dists_target"], ref["calc_dists_norm"])
    np.testing.assert_array_equal(out, ref["calc_dists_out"])


def test_per_batch_accumulation_is_the_official_one(ref):
    """Mean = batch-size weighted mean of per-batch acc[0]; per joint = mean over batches where it was valid."""
    hm = np.concatenate([ref["hm"], ref["hm"][:2]])
    tg = np.concatenate([ref["acc_target"], ref["acc_target"][:2]])
    res = P.pck_bearpaw(hm, tg, batch_size=6)
    a1, _ = P.accuracy(hm[:6], tg[:6])
    a2, _ = P.accuracy(hm[6:], tg[6:])
    assert res["PCK@0.05"] == pytest.approx((6 * a1[0] + 2 * a2[0]) / 8)
    for j in range(18):
        vals = [a[j + 1] for a in (a1, a2) if a[j + 1] > -1]
        got = res[f"PCK@0.05 {j}"]
        assert (np.isnan(got) and not vals) or got == pytest.approx(np.mean(vals))


def test_perfect_and_shifted_predictions():
    codec = BearpawCodec((256, 256), (64, 64), num_keypoints=3)
    pts = np.array([[100.0, 120.0], [40.0, 200.0], [220.0, 30.0]])
    gt = codec.encode(pts, np.ones(3))["target"][None]
    assert P.pck_bearpaw(gt, gt)["PCK@0.05"] == 1.0
    near = codec.encode(pts + [12.0, 0.0], np.ones(3))["target"][None]  # 3 heatmap px < 3.2
    far = codec.encode(pts + [16.0, 0.0], np.ones(3))["target"][None]  # 4 heatmap px > 3.2
    assert P.pck_bearpaw(near, gt)["PCK@0.05"] == 1.0
    assert P.pck_bearpaw(far, gt)["PCK@0.05"] == 0.0


def test_coco_ap_of_the_same_predictions(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    sk = skeleton("ap10k")
    rng = np.random.default_rng(0)
    images, anns, preds = [], [], []
    for i in range(6):
        kp = np.concatenate([rng.uniform(20, 200, (17, 2)), np.full((17, 1), 2.0)], axis=1)
        images.append({"id": i + 1, "file_name": f"{i}.jpg", "width": 256, "height": 256})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "keypoints": kp.reshape(-1).tolist(),
                     "num_keypoints": 17, "bbox": [10.0, 10.0, 200.0, 200.0], "area": 30000.0, "iscrowd": 0})
        preds.append(kp[:, :2] + rng.normal(0, 3 * (i + 1), (17, 2)))
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": 1, "name": "animal", "keypoints": list(sk.keypoints), "skeleton": []}]}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    scores = np.tile(np.linspace(0.9, 0.4, 6)[:, None], (1, 17))
    ours = P.coco_ap_of_predictions(str(path), list(range(1, 7)), np.stack(preds), scores, sigmas=sk.sigmas)
    coco = COCO(str(path))
    res = [{"image_id": i + 1, "category_id": 1, "score": float(scores[i].mean()),
            "keypoints": np.concatenate([preds[i], scores[i][:, None]], 1).reshape(-1).tolist()} for i in range(6)]
    ev = COCOeval(coco, coco.loadRes(res), "keypoints")
    ev.params.kpt_oks_sigmas = np.asarray(sk.sigmas)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ours["AP"] == pytest.approx(ev.stats[0])
