"""COCO / CrowdPose keypoint evaluation on the real sample pairs, with their published reference values."""

from __future__ import annotations

import copy
import json
import warnings

import numpy as np
import pytest

from posekit.errors import DataError
from posekit.evaluation import coco
from posekit.skeletons import COCO17, CROWDPOSE14

# ../shared/data/INDEX.md: xtcocoapi example pair (pycocotools) and faster_coco_eval's tests/test_keypoints.py
XTCOCO_STATS = [0.86089, 0.993145, 0.910891, 0.775578, 0.937252, 0.875, 1.0, 0.916667, 0.78, 0.942857]
FASTER_STATS = [0.5048844884488449, 0.7227722772277227, 0.6336633663366337, 0.46633663366336636,
                0.7504950495049505, 0.5181818181818182, 0.7272727272727273, 0.6363636363636364,
                0.4666666666666666, 0.75]
# xtcocotools 1.14.3 'keypoints_crowd', use_area=False, CrowdPose sigmas:
# [AP, AP50, AP75, AR, AR50, AR75, AP(easy), AP(medium), AP(hard)]
CROWDPOSE_STATS = [0.787722, 0.988119, 0.731436, 0.822222, 1.0, 0.777778, 1.0, 0.9802, 0.4116]


@pytest.fixture(scope="module")
def pairs(data_dir):
    return {
        "xtcoco": (data_dir / "coco/xtcocoapi_examples/example_coco_val.json",
                   data_dir / "coco/xtcocoapi_examples/example_coco_preds.json"),
        "faster": (data_dir / "coco/faster_coco_eval_keypoints/gt_dataset.json",
                   data_dir / "coco/faster_coco_eval_keypoints/dt_dataset.json"),
        "crowdpose": (data_dir / "crowdpose/xtcocoapi_examples/example_crowdpose_val.json",
                      data_dir / "crowdpose/xtcocoapi_examples/example_crowdpose_preds.json"),
    }


@pytest.mark.parametrize("backend", coco.BACKENDS)
def test_xtcocoapi_pair_reference(pairs, backend, capsys):
    stats = coco.coco_keypoints(*pairs["xtcoco"], backend=backend)
    assert list(stats) == list(coco.STAT_NAMES)
    np.testing.assert_allclose(list(stats.values()), XTCOCO_STATS, atol=5e-7)
    assert capsys.readouterr().out == ""  # library functions never print


@pytest.mark.parametrize("backend", coco.BACKENDS)
def test_faster_coco_eval_pair_reference(pairs, backend):
    stats = coco.coco_keypoints(*pairs["faster"], backend=backend)
    assert list(stats.values()) == FASTER_STATS


@pytest.mark.parametrize("backend", coco.BACKENDS)
def test_crowdpose_reference(pairs, backend, capsys):
    stats = coco.crowdpose_keypoints(*pairs["crowdpose"], backend=backend)
    assert list(stats) == list(coco.CROWDPOSE_STAT_NAMES)
    np.testing.assert_allclose(list(stats.values()), CROWDPOSE_STATS, atol=5e-7)
    assert capsys.readouterr().out == ""


def test_crowdpose_rules_matter(pairs):
    """Plain COCO rules (GT area, COCO-style sigmas resolution) give other numbers: the crowd rules are exercised."""
    gt, res = pairs["crowdpose"]
    data = json.loads(gt.read_text())
    for a in data["annotations"]:
        a["area"] = a["bbox"][2] * a["bbox"][3]
    plain = coco.coco_keypoints(data, res, sigmas=CROWDPOSE14.sigmas)
    assert plain["AP"] != pytest.approx(CROWDPOSE_STATS[0], abs=1e-4)


def test_crowd_split_thresholds(pairs):
    gt = coco.load_ground_truth(pairs["crowdpose"][0], use_area=False)
    easy, medium, hard = coco.crowd_index_split(gt)
    ci = {img["id"]: img["crowdIndex"] for img in gt["images"]}
    assert all(ci[i] < 0.2 for i in easy) and all(0.2 <= ci[i] < 0.8 for i in medium)
    assert all(ci[i] >= 0.8 for i in hard) and len(easy) + len(medium) + len(hard) == len(ci)


@pytest.mark.parametrize("name", ["xtcoco", "faster", "crowdpose"])
def test_ground_truth_as_prediction_is_perfect(pairs, name):
    gt = pairs[name][0]
    perfect = coco.gt_as_results(gt)
    fn = coco.crowdpose_keypoints if name == "crowdpose" else coco.coco_keypoints
    stats = fn(gt, perfect)
    assert stats["AP"] == 1.0 and stats["AR"] == 1.0


def test_backends_agree_on_perturbed_predictions(pairs):
    gt, res = pairs["xtcoco"]
    rng = np.random.default_rng(0)
    preds = json.loads(res.read_text())
    for p in preds:
        kp = np.asarray(p["keypoints"]).reshape(-1, 3)
        kp[:, :2] += rng.normal(0, 6, (kp.shape[0], 2))
        p["keypoints"] = kp.reshape(-1).tolist()
        p["score"] *= float(rng.uniform(0.5, 1.0))
    a = coco.coco_keypoints(gt, preds, backend="pycocotools")
    b = coco.coco_keypoints(gt, preds, backend="faster_coco_eval")
    assert a == b and a["AP"] < XTCOCO_STATS[0]


def test_direct_pycocotools_call_and_inputs_untouched(pairs):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, res = pairs["faster"]
    preds = json.loads(res.read_text())
    before = copy.deepcopy(preds)
    ours = coco.coco_keypoints(str(gt), preds)
    assert preds == before  # pycocotools' loadRes adds fields in place; ours works on copies
    g = COCO(str(gt))
    ev = COCOeval(g, g.loadRes(copy.deepcopy(preds)), "keypoints")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert list(ours.values()) == ev.stats.tolist()


def test_custom_skeleton_sigmas(pairs):
    gt, res = pairs["xtcoco"]
    data = json.loads(gt.read_text())
    # wider sigmas from the category ("sigmas" key) make every OKS larger -> AP cannot drop
    data["categories"][0]["sigmas"] = [2 * s for s in COCO17.sigmas]
    wide = coco.coco_keypoints(data, res)
    assert wide["AP"] >= XTCOCO_STATS[0] and wide["AP"] != pytest.approx(XTCOCO_STATS[0])
    assert coco.coco_keypoints(data, res, sigmas=COCO17) == coco.coco_keypoints(gt, res)
    # renamed keypoints without sigmas: COCO sigmas as pycocotools would use, with a warning
    data["categories"][0].pop("sigmas")
    data["categories"][0]["keypoints"] = [f"p{i}" for i in range(17)]
    with pytest.warns(UserWarning, match="not COCO's"):
        assert coco.coco_keypoints(data, res) == coco.coco_keypoints(gt, res)
    with pytest.raises(DataError, match="14 OKS sigmas"):
        coco.coco_keypoints(gt, res, sigmas=[0.05] * 14)


def test_custom_skeleton_without_sigmas_uses_default(pairs):
    gt, res = pairs["crowdpose"]
    data = json.loads(gt.read_text())
    data["categories"][0]["keypoints"] = [f"p{i}" for i in range(14)]
    for a in data["annotations"]:
        a["area"] = a["bbox"][2] * a["bbox"][3]
    with pytest.warns(UserWarning, match="0.072 for every keypoint"):
        default = coco.coco_keypoints(data, res)
    assert default == coco.coco_keypoints(data, res, sigmas=[0.072] * 14)


def test_empty_results_warn_and_give_zero(pairs):
    gt, _ = pairs["xtcoco"]
    for backend in coco.BACKENDS:
        with pytest.warns(UserWarning, match="empty"):
            stats = coco.coco_keypoints(gt, [], backend=backend)
        assert set(stats.values()) == {0.0}


def test_clear_errors(pairs, tmp_path):
    gt, res = pairs["xtcoco"]
    preds = json.loads(res.read_text())
    bad = copy.deepcopy(preds)
    bad[3]["image_id"] = 123456789
    with pytest.raises(DataError, match=r"image ids are not in the ground truth \(first: \[123456789\]\)"):
        coco.coco_keypoints(gt, bad)
    bad = copy.deepcopy(preds)
    bad[5]["keypoints"] = bad[5]["keypoints"][:42]
    with pytest.raises(DataError, match=r"results\[5\].*42 keypoint values.*51 values"):
        coco.coco_keypoints(gt, bad)
    bad = copy.deepcopy(preds)
    bad[7]["keypoints"][4] = float("nan")
    with pytest.raises(DataError, match=r"NaN.*results\[7\]"):
        coco.coco_keypoints(gt, bad)
    bad = copy.deepcopy(preds)
    bad[0]["score"] = float("inf")
    with pytest.raises(DataError, match="NaN/infinite"):
        coco.coco_keypoints(gt, bad)
    bad = copy.deepcopy(preds)
    del bad[2]["score"]
    with pytest.raises(DataError, match=r"results\[2\] has no 'score'"):
        coco.coco_keypoints(gt, bad)
    bad = copy.deepcopy(preds)
    bad[0]["category_id"] = 2
    with pytest.raises(DataError, match="category ids"):
        coco.coco_keypoints(gt, bad)
    with pytest.raises(DataError, match="not found"):
        coco.coco_keypoints(tmp_path / "missing.json", preds)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        coco.coco_keypoints(gt, broken)
    data = json.loads(gt.read_text())
    del data["annotations"][1]["area"]
    with pytest.raises(DataError, match="has no 'area'"):
        coco.coco_keypoints(data, preds)
    with pytest.raises(DataError, match="backend"):
        coco.coco_keypoints(gt, preds, backend="xtcocotools")
    with pytest.raises(DataError, match="crowdIndex"):
        coco.crowdpose_keypoints(gt, preds)


def test_results_files_read_like_in_memory_lists(pairs, tmp_path):
    """A results file gives the in-memory list's stats; a NaN literal (orjson refuses it) is named, not unparsed."""
    gt, res = pairs["xtcoco"]
    preds = json.loads(res.read_text())
    before = copy.deepcopy(preds)
    assert coco.coco_keypoints(gt, res) == coco.coco_keypoints(gt, preds)
    assert preds == before  # a caller's list is copied before loading annotates it
    bad = copy.deepcopy(preds)
    bad[7]["keypoints"][4] = float("nan")
    nan_file = tmp_path / "nan.json"
    nan_file.write_text(json.dumps(bad))  # Python writes the NaN literal
    with pytest.raises(DataError, match=r"NaN.*results\[7\]"):
        coco.coco_keypoints(gt, nan_file)
    bad = copy.deepcopy(preds)
    bad[5]["keypoints"] = bad[5]["keypoints"][:42]
    short = tmp_path / "short.json"
    short.write_text(json.dumps(bad))
    with pytest.raises(DataError, match=r"results\[5\].*42 keypoint values.*51 values"):
        coco.coco_keypoints(gt, short)

def test_missing_optional_gt_fields_are_filled(pairs):
    gt, res = pairs["xtcoco"]
    data = json.loads(gt.read_text())
    for a in data["annotations"]:
        a.pop("num_keypoints")
        a.pop("iscrowd")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stats = coco.coco_keypoints(data, res)
    np.testing.assert_allclose(list(stats.values()), XTCOCO_STATS, atol=5e-7)


def test_ground_truth_without_labelled_people_is_an_error(tmp_path):
    """A GT file with no keypoint annotation would score AP -1 (pycocotools' 'undefined'): refuse it by name."""
    import json

    from posekit.errors import DataError
    from posekit.evaluation import coco_keypoints

    gt = {"images": [{"id": 1, "width": 10, "height": 10, "file_name": "a.jpg"}], "annotations": [],
          "categories": [{"id": 1, "name": "person", "keypoints": ["a", "b"]}]}
    path = tmp_path / "empty_gt.json"
    path.write_text(json.dumps(gt))
    res = [{"image_id": 1, "category_id": 1, "keypoints": [1, 1, 1, 2, 2, 1], "score": 0.5}]
    with pytest.raises(DataError, match="empty_gt.json: ground truth has no non-crowd annotation"):
        coco_keypoints(path, res)


def test_collector_state_is_restored(tmp_path):
    import gc

    gt = {"images": [{"id": 1, "width": 10, "height": 10}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "area": 50.0, "bbox": [0, 0, 5, 10],
                           "iscrowd": 0, "num_keypoints": 1, "keypoints": [2, 2, 2] + [0, 0, 0] * 16}],
          "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17.keypoints), "skeleton": []}]}
    result = [{"image_id": 1, "category_id": 1, "score": 1.0, "keypoints": [2, 2, 1] + [0, 0, 0] * 16}]
    assert gc.isenabled()
    assert coco.coco_keypoints(gt, result)["AP"] > 0.99
    assert gc.isenabled()
    gc.disable()
    try:
        coco.coco_keypoints(gt, result)
        assert not gc.isenabled()  # a caller's disabled collector stays disabled
    finally:
        gc.enable()
    with pytest.raises(DataError):
        coco.coco_keypoints(gt, [{"image_id": 99, "category_id": 1, "score": 1.0, "keypoints": [0] * 51}])
    assert gc.isenabled()


@pytest.mark.parametrize("backend", coco.BACKENDS)
def test_repeated_annotation_ids_are_an_error(pairs, backend, tmp_path):
    """pycocotools keys annotations by id: a repeated id would silently drop ground truth and change AP."""
    gt_path, dt_path = pairs["faster"]
    gt = json.loads(gt_path.read_text())
    anns = gt["annotations"]
    anns[1]["id"], anns[3]["id"] = anns[0]["id"], anns[2]["id"]
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    with pytest.raises(DataError, match=rf"gt.json: 2 annotation ids .*more than once.*{anns[0]['id']}"):
        coco.coco_keypoints(path, dt_path, backend=backend)


def test_image_id_shared_by_two_files_is_an_error(pairs):
    gt = json.loads(pairs["faster"][0].read_text())
    gt["images"].append(dict(gt["images"][0]))  # an identical repeated entry is harmless
    coco.load_ground_truth(gt)
    gt["images"].append({**gt["images"][0], "file_name": "other.jpg"})
    with pytest.raises(DataError, match=r"images\[2\] repeats image id .*'other.jpg'"):
        coco.load_ground_truth(gt)


def test_keypoints_given_as_strings_are_an_error(pairs, tmp_path):
    """Strings parse as numbers in numpy but not in the evaluators: named, not a traceback or a silent pass."""
    gt_path, dt_path = pairs["faster"]
    results = json.loads(dt_path.read_text())
    results[4]["keypoints"] = [str(v) for v in results[4]["keypoints"]]
    path = tmp_path / "dt.json"
    path.write_text(json.dumps(results))
    for backend in coco.BACKENDS:
        with pytest.raises(DataError, match=r"dt.json: results\[4\] .*non-numeric keypoint value '[0-9.]+' \(str\)"):
            coco.coco_keypoints(gt_path, path, backend=backend)
