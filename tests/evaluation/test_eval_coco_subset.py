"""End to end on the COCO val2017 subset (538 images, 2213 people, 17,028 real detections): posekit == pycocotools."""

from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pytest

from posekit.bench.eval import DEFAULT_DETS, DEFAULT_GT, synthetic_predictions
from posekit.evaluation import coco, make_results


def _pycocotools_direct(gt_path, results):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO(str(gt_path))
        ev = COCOeval(g, g.loadRes(copy.deepcopy(results)), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats.tolist()


@pytest.fixture(scope="module")
def subset(data_dir):
    gt_path = data_dir.parent / DEFAULT_GT
    dets = json.loads((data_dir.parent / DEFAULT_DETS).read_text())
    return gt_path, coco.load_ground_truth(gt_path), dets


@pytest.mark.slow
def test_subset_end_to_end_equals_pycocotools(subset):
    gt_path, gt, dets = subset
    assert len({i["id"] for i in gt["images"]}) == 538 and len(gt["annotations"]) == 2213 and len(dets) == 17028
    pred = synthetic_predictions(gt, dets, seed=5, noise=0.05)
    res = make_results(pred["keypoints"], pred["box_scores"], pred["image_ids"], centers=pred["centers"],
                       sizes=pred["sizes"])
    assert 0 < len(res) <= len(dets)
    ours = coco.coco_keypoints(gt_path, res)
    assert list(ours.values()) == _pycocotools_direct(gt_path, res)
    assert coco.coco_keypoints(gt_path, res, backend="faster_coco_eval") == ours
    assert 0.3 < ours["AP"] < 0.95  # noisy but sensible predictions


def test_subset_ground_truth_as_prediction(subset):
    gt_path, _, _ = subset
    perfect = coco.gt_as_results(gt_path)
    stats = coco.coco_keypoints(gt_path, perfect)
    assert stats["AP"] == 1.0 and stats["AR"] == 1.0 and stats["AP .5"] == 1.0
    assert np.isclose(stats["AP (L)"], 1.0, atol=1e-3)  # pycocotools' area-range matching lets one large det lose
    # the un-deduplicated original (image entries repeated per annotation) evaluates identically
    assert coco.coco_keypoints(gt_path.with_name("person_keypoints_val2017_subset538.json"), perfect) == stats
