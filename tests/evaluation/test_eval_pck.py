"""MPII PCKh (official fixtures + Tompson reference), PCK / AUC / EPE (closed form), heatmap accuracy()."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posekit.errors import DataError
from posekit.evaluation import pck
from posekit.skeletons import COCO17

# ../shared/data/INDEX.md: PCKh of the Tompson et al. predictions on the 2958-person MPII validation split
TOMPSON = {"Head": 95.6003, "Shoulder": 92.714, "Elbow": 83.3646, "Wrist": 76.7357, "Hip": 81.9283,
           "Knee": 73.3628, "Ankle": 65.4462, "Mean": 82.3367, "Mean@0.1": 28.9748}


@pytest.mark.parametrize("case", [0, 1, 2])
def test_pckh_equals_official_hrnet_evaluate(reference_dir, case):
    z = np.load(reference_dir / "codecs" / "hrnet_mpii_pckh.npz")
    p = f"case{case}_"
    gt = pck.MPIIGroundTruth(joints=np.transpose(z[p + "pos_gt_src"], (2, 0, 1)), missing=z[p + "jnt_missing"].T,
                             headboxes=np.transpose(z[p + "headboxes_src"], (2, 0, 1)),
                             joint_names=tuple(z["dataset_joints"]))
    table = pck.mpii_pckh(z[p + "preds"], gt, zero_based=True, hrnet_mean01=True)
    assert list(table) == list(z[p + "names"])
    np.testing.assert_allclose(list(table.values()), z[p + "values"], rtol=0, atol=1e-10)
    # without the quirk only Mean@0.1 changes (threshold 0.10 instead of 0.11: never higher)
    plain = pck.mpii_pckh(z[p + "preds"], gt, zero_based=True)
    assert [plain[k] for k in pck.PCKH_NAMES[:-1]] == [table[k] for k in pck.PCKH_NAMES[:-1]]
    assert plain["Mean@0.1"] <= table["Mean@0.1"]


@pytest.mark.parametrize("gt_file", ["tompson_valid_bearpaw/detections_our_format.mat",
                                     "derived_hrnet_format/gt_valid.mat"])
def test_tompson_predictions_reference_table(data_dir, gt_file):
    mpii = data_dir / "mpii"
    preds = pck.load_mpii_predictions(mpii / "tompson_valid_bearpaw/detections_our_format.mat")
    assert preds.shape == (2958, 16, 2)
    table = pck.mpii_pckh(preds, mpii / gt_file, zero_based=False)
    assert list(table) == list(pck.PCKH_NAMES)
    np.testing.assert_allclose(list(table.values()), list(TOMPSON.values()), atol=5e-5)


def test_pckh_rejects_wrong_count(data_dir):
    gt = pck.load_mpii_gt(data_dir / "mpii/derived_hrnet_format/gt_valid.mat")
    with pytest.raises(DataError, match=r"\[2958, 16, 2\]"):
        pck.pckh_table(np.zeros((10, 16, 2)), gt)
    with pytest.raises(DataError, match="not found"):
        pck.load_mpii_gt(data_dir / "mpii/missing.mat")


@pytest.mark.parametrize("case", range(12))
def test_accuracy_equals_official(reference_dir, case):
    z = np.load(reference_dir / "codecs" / "hrnet_accuracy.npz")
    p = f"case{case}_"
    acc, avg, cnt, pred = pck.accuracy(z[p + "output"], z[p + "target"])
    np.testing.assert_array_equal(acc, z[p + "acc"])
    assert avg == z[p + "avg_acc"] and cnt == z[p + "cnt"]
    np.testing.assert_array_equal(pred, z[p + "pred"])


def test_pck_closed_form():
    gt = np.zeros((2, 3, 2))
    pred = gt.copy()
    pred[0, 0] = [3.0, 4.0]  # distance 5
    pred[1, 1] = [0.0, 20.0]  # distance 20
    mask = np.ones((2, 3), dtype=bool)
    mask[1, 2] = False
    norm = np.full((2, 2), 100.0)
    acc, mean, cnt = pck.pck_accuracy(pred, gt, mask, norm, thr=0.1)
    np.testing.assert_allclose(acc, [1.0, 0.5, 1.0])
    assert mean == pytest.approx(2.5 / 3) and cnt == 3
    acc, _, _ = pck.pck_accuracy(pred, gt, mask, norm, thr=0.05)  # 5/100 is not < 0.05
    np.testing.assert_allclose(acc, [0.5, 0.5, 1.0])
    mask0 = np.zeros((2, 3), dtype=bool)
    acc, mean, cnt = pck.pck_accuracy(pred, gt, mask0, norm, thr=0.1)
    assert (acc == -1).all() and mean == 0.0 and cnt == 0
    assert pck.epe(pred, gt, mask) == pytest.approx(25.0 / 5)
    # AUC: mean over thresholds t = 0, .05, ..., .95 of the mean per-joint PCK of distance / 30 px < t
    joints = [(5, 0), (0, 20), (0,)]
    per = [np.mean([np.mean([d / 30 < t for d in ds]) for ds in joints]) for t in np.arange(20) / 20]
    assert pck.auc(pred, gt, mask, 30.0) == pytest.approx(np.mean(per))


def test_norms():
    boxes = np.array([[0, 0, 50, 80], [10, 10, 30, 20]])
    np.testing.assert_allclose(pck.bbox_norm(boxes), [[80, 80], [30, 30]])
    gt = np.zeros((1, 17, 3))
    gt[0, 5, :2] = [0, 0]  # left shoulder
    gt[0, 12, :2] = [30, 40]  # right hip
    np.testing.assert_allclose(pck.torso_norm(gt, COCO17), [[50, 50]])


def test_pck_coco_ground_truth_is_perfect_and_noise_hurts(data_dir, tmp_path):
    from posekit.evaluation.coco import gt_as_results

    gt = data_dir / "ap10k/mmpose/test_ap10k.json"
    if not gt.exists():
        gt = data_dir / "coco/xtcocoapi_examples/example_coco_val.json"
    perfect = gt_as_results(gt)
    stats = pck.pck_coco(gt, perfect, thr=0.05)
    assert stats["PCK"] == 1.0 and stats["EPE"] == 0.0
    rng = np.random.default_rng(0)
    noisy = json.loads(json.dumps(perfect))
    for r in noisy:
        kp = np.asarray(r["keypoints"], dtype=float).reshape(-1, 3)
        kp[:, :2] += rng.normal(0, 15, (kp.shape[0], 2))
        r["keypoints"] = kp.reshape(-1).tolist()
    worse = pck.pck_coco(gt, noisy, thr=0.05)
    assert worse["PCK"] < 1.0 and worse["EPE"] > 5.0
    assert pck.pck_coco(gt, noisy[: len(noisy) // 2], thr=0.05)["PCK"] < worse["PCK"] + 1e-12


def test_accuracy_accepts_tensors(reference_dir):
    torch = pytest.importorskip("torch")
    z = np.load(reference_dir / "codecs" / "hrnet_accuracy.npz")
    out = torch.from_numpy(z["case0_output"]).requires_grad_(True)
    acc, avg, cnt, _ = pck.accuracy(out, torch.from_numpy(z["case0_target"]))
    np.testing.assert_array_equal(acc, z["case0_acc"])


def test_pck_coco_torso_norm(data_dir):
    from posekit.evaluation.coco import gt_as_results

    gt = data_dir / "coco/xtcocoapi_examples/example_coco_val.json"
    res = gt_as_results(gt)
    assert pck.pck_coco(gt, res, norm="torso")["PCK"] == 1.0
    for r in res:
        r["keypoints"][0] += 10.0  # nose 10 px off: a miss at 0.01 x torso (torsos here are < 1000 px)
    stats = pck.pck_coco(gt, res, thr=0.01, norm="torso")
    assert stats["PCK nose"] < 1.0 and stats["PCK left_eye"] == 1.0
    with pytest.raises(DataError, match="bbox' or 'torso"):
        pck.pck_coco(gt, res, norm="head")
