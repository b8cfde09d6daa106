"""`posekit bench eval`: synthetic predictions, enlargement, and the baseline NMS it times posekit against."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from posekit.bench import eval as bench
from posekit.cli import main
from posekit.evaluation import coco, make_results
from posekit.evaluation.nms import nms_per_image
from posekit.evaluation.results import rescore


@pytest.fixture(scope="module")
def small(data_dir, tmp_path_factory):
    """The xtcocoapi ground truth and detections made from its boxes (jittered, plus one background box)."""
    gt_path = data_dir / "coco/xtcocoapi_examples/example_coco_val.json"
    gt = coco.load_ground_truth(gt_path)
    rng = np.random.default_rng(0)
    dets = []
    for a in gt["annotations"]:
        for _ in range(3):
            box = (np.asarray(a["bbox"]) + rng.normal(0, 3, 4)).clip(1).tolist()
            dets.append({"image_id": a["image_id"], "category_id": 1, "bbox": box, "score": float(rng.random())})
    dets.append({"image_id": gt["images"][0]["id"], "category_id": 1, "bbox": [1, 1, 30, 40], "score": 0.2})
    det_path = tmp_path_factory.mktemp("bench") / "dets.json"
    det_path.write_text(json.dumps(dets))
    return gt_path, gt, dets, det_path


def test_synthetic_predictions_deterministic_and_plausible(small):
    _, gt, dets, _ = small
    a = bench.synthetic_predictions(gt, dets, seed=1)
    b = bench.synthetic_predictions(gt, dets, seed=1)
    np.testing.assert_array_equal(a["keypoints"], b["keypoints"])
    assert a["keypoints"].shape == (len(dets), 17, 3) and a["keypoints"].dtype == np.float32
    np.testing.assert_allclose(a["sizes"][:, 0] / a["sizes"][:, 1], bench.ASPECT)
    res = make_results(a["keypoints"], a["box_scores"], a["image_ids"], sizes=a["sizes"])
    assert coco.coco_keypoints(gt, res)["AP"] > 0.5  # predictions follow the people


def test_enlarge_keeps_ap(small):
    _, gt, dets, _ = small
    big_gt, big_dets = bench.enlarge(gt, dets, 3)
    assert len(big_gt["images"]) == 3 * len(gt["images"]) and len(big_dets) == 3 * len(dets)
    p = bench.synthetic_predictions(gt, dets, seed=2)
    res = make_results(p["keypoints"], p["box_scores"], p["image_ids"], sizes=p["sizes"], nms="none")
    big_res = [{**r, "image_id": r["image_id"] + c * bench.ID_STRIDE} for c in range(3) for r in res]
    one, three = coco.coco_keypoints(gt, res), coco.coco_keypoints(big_gt, big_res)
    assert three["AP"] == pytest.approx(one["AP"], abs=0.02)


def test_official_style_baseline_equals_posekit_nms(data_dir):
    gt = coco.load_ground_truth(data_dir.parent / bench.DEFAULT_GT)
    dets = json.loads((data_dir.parent / bench.DEFAULT_DETS).read_text())
    first = {img["id"] for img in gt["images"][:40]}
    dets = [d for d in dets if d["image_id"] in first]
    p = bench.synthetic_predictions(gt, dets, seed=3)
    areas = p["sizes"][:, 0] * p["sizes"][:, 1]
    scores = rescore(p["keypoints"], p["box_scores"])
    for thr in (0.5, 0.9):
        fast = nms_per_image(p["keypoints"], scores, areas, p["image_ids"], thr)
        slow = bench.official_style_oks_nms(p["keypoints"], scores, areas, p["image_ids"], thr)
        assert all(np.array_equal(a, b) for a, b in zip(fast, slow)) and len(fast) == len(slow)


def test_run_and_render(small, capsys):
    gt_path, _, _, det_path = small
    args = argparse.Namespace(gt=str(gt_path), dets=str(det_path), scale=2, noise=0.05, seed=0)
    result = bench.run(args)
    assert result["nms"]["same_keep_lists"] is True
    assert [(e["scale"], e["backend"]) for e in result["eval"]] == [
        (1, "pycocotools"), (1, "faster_coco_eval"), (2, "pycocotools"), (2, "faster_coco_eval")]
    assert all(e["stats_equal_direct_call"] for e in result["eval"])
    assert result["eval"][0]["AP"] == result["eval"][1]["AP"]
    assert result["backends_equal"] == {"x1": True, "x2": True}
    text = bench.render(result)
    assert "official-style" in text and "faster_coco_eval" in text
    assert main(["bench", "eval", "--gt", str(gt_path), "--dets", str(det_path), "--scale", "0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["detections"] == result["detections"] and len(out["eval"]) == 2


def test_missing_inputs_are_clear(tmp_path):
    args = argparse.Namespace(gt=str(tmp_path / "gt.json"), dets=None, scale=0, noise=0.05, seed=0)
    with pytest.raises(bench.DataError, match="--gt"):
        bench.run(args)
