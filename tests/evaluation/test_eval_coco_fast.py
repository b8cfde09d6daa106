"""The faster-coco-eval fast path of posekit.evaluation.coco is bit-equal to the library's own code.

Truth: faster-coco-eval's `loadRes` and `computeOks` (and numpy's own `np.sum` for the row means), run on the
COCO val2017 subset (538 images) with synthetic predictions for every detection box (posekit bench eval's).
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from posekit.errors import DataError
from posekit.evaluation import coco

pytest.importorskip("faster_coco_eval")


@pytest.fixture(scope="module")
def subset(data_dir):
    from posekit.bench import eval as bench
    from posekit.evaluation.results import make_results

    root = data_dir / "coco" / "val2017_subset538_manhph2211"
    gt = coco.load_ground_truth(root / "person_keypoints_val2017_subset538_dedup.json")
    dets = json.loads((root / "COCO_val2017_detections_AP_H_56_person_subset538.json").read_text())
    pred = bench.synthetic_predictions(gt, dets[:6000])
    areas = pred["sizes"][:, 0] * pred["sizes"][:, 1]
    return gt, make_results(pred["keypoints"], pred["box_scores"], pred["image_ids"], areas=areas, nms="none")


def test_pairwise_mean_is_numpys_sum() -> None:
    rng = np.random.default_rng(0)
    for width in (3, 8, 17, 24, 40):
        a = rng.random((500, width)) * 10.0 ** rng.integers(-8, 3, (500, 1))
        n = rng.integers(1, width + 1, 500)
        a[np.arange(width)[None, :] >= n[:, None]] = 0.0
        expected = np.array([np.sum(row[:k]) / k for row, k in zip(a, n)])
        assert np.array_equal(coco._pairwise_mean(a, n), expected), width


def test_fast_load_res_and_oks_equal_the_library(subset) -> None:
    from faster_coco_eval import COCO as FCOCO
    from faster_coco_eval import COCOeval_faster

    gt, results = subset
    sigmas = coco.resolve_sigmas(gt)
    res, values = coco._load_results(results, gt)

    def silent(*a, **k):
        return None

    cg = FCOCO(copy.deepcopy(gt), print_function=silent)
    lib_dt = cg.loadRes(copy.deepcopy(res))
    fast_dt = coco._load_res_keypoints(FCOCO, cg, [dict(r) for r in res], values, silent)
    assert len(lib_dt.dataset["annotations"]) == len(fast_dt.dataset["annotations"]) == len(results)
    for a, b in zip(lib_dt.dataset["annotations"], fast_dt.dataset["annotations"]):
        assert a["id"] == b["id"] and a["area"] == b["area"] and [float(v) for v in a["bbox"]] == b["bbox"]
    assert fast_dt.dataset["categories"] == lib_dt.dataset["categories"]
    lib = COCOeval_faster(cg, lib_dt, iouType="keypoints", kpt_oks_sigmas=list(sigmas), print_function=silent)
    lib.evaluate()
    fast = coco._batched_oks_class(COCOeval_faster)(cg, fast_dt, iouType="keypoints", kpt_oks_sigmas=list(sigmas),
                                                    print_function=silent)
    fast.evaluate()
    assert len(fast._oks_cache) > 100
    rows = coco._batched_oks_class(COCOeval_faster)(cg, fast_dt, iouType="keypoints", kpt_oks_sigmas=list(sigmas),
                                                    print_function=silent)
    rows.dt_values = values  # the detections' keypoints by annotation id - 1 instead of re-read from the dicts
    rows.evaluate()
    compared = 0
    for key, a in lib.ious.items():
        assert np.array_equal(np.asarray(a), np.asarray(fast.ious[key])), key  # bit for bit
        assert np.array_equal(np.asarray(a), np.asarray(rows.ious[key])), key
        compared += np.asarray(a).size
    assert compared > 10_000
    lib.accumulate()
    fast.accumulate()
    lib.summarize()
    fast.summarize()
    assert list(lib.stats) == list(fast.stats)


def test_coco_keypoints_fast_path_equals_pycocotools(subset) -> None:
    gt, results = subset
    before = copy.deepcopy(gt)
    fast = coco.coco_keypoints(gt, results, backend="faster_coco_eval")
    assert fast == coco.coco_keypoints(gt, results, backend="pycocotools")
    assert gt == before  # the caller's ground truth is not modified


def test_non_numeric_results_are_errors(subset) -> None:
    gt, results = subset
    bad = [dict(r) for r in results[:3]]
    bad[1]["score"] = "0.9"
    with pytest.raises(DataError, match=r"results\[1\].*non-numeric score"):
        coco.coco_keypoints(gt, bad)
    bad = [dict(r) for r in results[:3]]
    bad[0]["score"] = True  # a bool among floats: numpy would take it as 1.0
    with pytest.raises(DataError, match=r"results\[0\].*non-numeric score"):
        coco.coco_keypoints(gt, bad)
    bad = [dict(r) for r in results[:3]]
    bad[2]["keypoints"] = ["x"] * 51
    with pytest.raises(DataError, match=r"results\[2\].*non-numeric keypoint"):
        coco.coco_keypoints(gt, bad)
