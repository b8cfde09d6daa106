"""COCO-format / MPII loaders on the real samples: counts from data/INDEX.md, official box rules, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from posekit import skeletons
from posekit.data import load_coco, load_coco_detections, load_mpii
from posekit.errors import DataError
from posekit.evaluation.pck import load_mpii_gt

# (annotation file, image folder, K, train records, test records); train = non-crowd people with >= 1 labelled
# keypoint and a valid box, test = all non-crowd people with a valid box (numbers from data/INDEX.md)
COCO_SETS = [
    ("coco/coco_mini_obmutescence/person_keypoints_val2017.json", "coco/coco_mini_obmutescence/val2017", 17, 68, 117),
    ("coco/mmpose/test_coco.json", "coco/mmpose", 17, 12, 14),
    ("coco/val2017_subset538_manhph2211/person_keypoints_val2017_subset538.json", "coco", 17, 1354, 2213 - 49),
    ("coco/val2017_subset538_manhph2211/person_keypoints_val2017_subset538_dedup.json", "coco", 17, 1354, 2164),
    ("crowdpose/mmpose/test_crowdpose.json", "crowdpose/mmpose", 14, 4, 5),
    ("crowdpose/xtcocoapi_examples/example_crowdpose_val.json", "crowdpose", 14, 9, 10),
    ("aic/mmpose/test_aic.json", "aic/mmpose", 14, 9, 9),
    ("ochuman/mmpose/test_ochuman.json", "ochuman/mmpose", 17, 5, 5),
    ("ap10k/mmpose/test_ap10k.json", "ap10k/mmpose", 17, 2, 2),
    ("animalpose/mmpose/test_animalpose.json", "animalpose/mmpose", 20, 2, 2),
    ("atrw/mmpose/test_atrw.json", "atrw/mmpose", 15, 2, 2),
    ("ak/mmpose/test_animalkingdom.json", "ak/mmpose", 23, 2, 2),
    ("horse10/mmpose/test_horse10.json", "horse10/mmpose", 22, 3, 3),
    ("macaque/mmpose/test_macaque.json", "macaque/mmpose", 17, 2, 2),
    ("locust/mmpose/test_locust.json", "locust/mmpose", 35, 2, 2),
    ("zebra/mmpose/test_zebra.json", "zebra/mmpose", 9, 2, 2),
]


@pytest.mark.parametrize("ann, root, k, n_train, n_test", COCO_SETS, ids=[Path(s[0]).stem for s in COCO_SETS])
def test_coco_format_counts(data_dir, ann, root, k, n_train, n_test):
    records, skel = load_coco(data_dir / ann, data_dir / root, train=True)
    assert skel.num_keypoints == k
    assert len(records) == n_train
    assert all(r.keypoints.shape == (k, 3) and r.keypoints.dtype == np.float32 for r in records)
    assert all(r.keypoints.max() > 0 and r.score == 1.0 and r.iscrowd == 0 for r in records)
    test_records, _ = load_coco(data_dir / ann, data_dir / root, train=False)
    assert len(test_records) == n_test
    if "subset538" not in ann and "xtcocoapi" not in ann:
        assert all(Path(r.image_path).is_file() for r in test_records)


def test_coco_counts_match_pycocotools(data_dir):
    """Independent count: pycocotools getAnnIds(iscrowd=False) + keypoints labelled, as the official loader."""
    from pycocotools.coco import COCO

    ann = data_dir / "coco/val2017_subset538_manhph2211/person_keypoints_val2017_subset538_dedup.json"
    coco = COCO(str(ann))
    expected = []
    for img_id in coco.getImgIds():
        for a in coco.loadAnns(coco.getAnnIds(imgIds=img_id, iscrowd=False)):
            if max(a["keypoints"]) > 0:
                expected.append(a["id"])
    records, _ = load_coco(ann, data_dir, train=True)
    # the subset has no box that the official cleaning drops, so the ids (and their order) must agree
    assert [r.ann_id for r in records] == expected


def test_builtin_skeletons_recognised(data_dir):
    _, crowd = load_coco(data_dir / "crowdpose/mmpose/test_crowdpose.json", data_dir)
    assert crowd is skeletons.get("crowdpose")  # its file carries the 17-keypoint COCO links: ignored
    _, aic = load_coco(data_dir / "aic/mmpose/test_aic.json", data_dir)
    assert aic is skeletons.get("aic")  # "Right Shoulder" ... "Head top" spelled differently
    _, coco = load_coco(data_dir / "coco/mmpose/test_coco.json", data_dir)
    assert coco is skeletons.get("coco")


def _write(tmp_path: Path, data, name="ann.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def _coco_doc(anns, k=3, width=100, height=80, names=None):
    names = names or [f"kp{i}" for i in range(k)]
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": width, "height": height}],
        "annotations": anns,
        "categories": [{"id": 1, "name": "thing", "keypoints": names, "skeleton": [[1, 2]]}],
    }


def _ann(i, box, kpts=None, k=3, **extra):
    kp = kpts if kpts is not None else [10, 10, 2] * k
    return {"id": i, "image_id": 1, "category_id": 1, "bbox": box, "area": 100.0, "iscrowd": 0, "keypoints": kp,
            **extra}


def test_box_cleaning_and_center_size(tmp_path):
    """Official kernel: x1=max(0,x), x2=min(W-1, x1+max(0,w-1)); keep if area>0 and x2>=x1, y2>=y1."""
    anns = [
        _ann(1, [-10, -5, 50, 40]),  # clipped at the top-left: x1 = 0 but the width is not reduced (official)
        _ann(2, [90, 70, 30, 30]),  # clipped at the bottom-right
        _ann(3, [120, 10, 5, 5]),  # fully right of the image: dropped
        _ann(4, [10, 10, 20, 20], area=0),  # zero area: dropped
        _ann(5, [10, 10, 20, 20], iscrowd=1),  # crowd: dropped
        _ann(6, [10, 10, 20, 20], kpts=[0] * 9),  # no labelled keypoint: dropped for training only
    ]
    path = _write(tmp_path, _coco_doc(anns))
    records, skel = load_coco(path, tmp_path, aspect_ratio=0.75, padding=1.25)
    assert [r.ann_id for r in records] == [1, 2]
    np.testing.assert_allclose(records[0].box, [0, 0, 49, 39])
    np.testing.assert_allclose(records[1].box, [90, 70, 9, 9])
    # _xywh2cs: centre of the cleaned box; w/h = 49/39 > 0.75 -> h = w / 0.75; times 1.25
    np.testing.assert_allclose(records[0].center, [24.5, 19.5])
    np.testing.assert_allclose(records[0].size, [49 * 1.25, 49 / 0.75 * 1.25], rtol=1e-6)
    np.testing.assert_allclose(records[1].size, [9 * 1.25, 12 * 1.25], rtol=1e-6)
    assert skel.num_keypoints == 3 and skel.links == ((0, 1),)
    test_records, _ = load_coco(path, tmp_path, train=False)
    assert [r.ann_id for r in test_records] == [1, 2, 6]


def test_other_categories_are_skipped(tmp_path):
    doc = _coco_doc([_ann(1, [5, 5, 20, 20]), {"id": 2, "image_id": 1, "category_id": 2, "bbox": [1, 1, 9, 9],
                                                "area": 81.0, "iscrowd": 0}])
    doc["categories"].append({"id": 2, "name": "car"})  # no keypoints: its annotations carry none
    records, _ = load_coco(_write(tmp_path, doc), tmp_path)
    assert [r.ann_id for r in records] == [1]
    doc["annotations"][1]["category_id"] = 1  # a keypoint category without keypoints is an error
    with pytest.raises(DataError, match=r"annotations\[1\] \(id 2\) has no field 'keypoints'"):
        load_coco(_write(tmp_path, doc), tmp_path)


def test_custom_22_keypoint_dataset(tmp_path):
    names = [f"{side}_{part}" for part in ("a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k") for side in
             ("left", "right")]
    doc = _coco_doc([_ann(1, [5, 5, 50, 60], kpts=[20, 20, 2] * 22, k=22)], names=names)
    records, skel = load_coco(_write(tmp_path, doc), tmp_path)
    assert skel.num_keypoints == 22 and len(skel.flip_pairs) == 11
    assert records[0].keypoints.shape == (22, 3)


def test_detections(data_dir):
    det = data_dir / "coco/mmpose/test_coco_det_AP_H_56.json"
    ann = data_dir / "coco/mmpose/test_coco.json"
    raw = json.loads(det.read_text())
    records = load_coco_detections(det, ann, data_dir / "coco/mmpose")
    assert len(records) == 118 == len([d for d in raw if d["category_id"] == 1])
    assert all(r.keypoints.shape == (17, 3) and not r.keypoints.any() for r in records)
    assert all(Path(r.image_path).is_file() for r in records)
    np.testing.assert_allclose([r.score for r in records], [d["score"] for d in raw])
    thr = sorted(d["score"] for d in raw)[50]
    kept = load_coco_detections(det, ann, data_dir, score_threshold=thr)
    assert len(kept) == sum(d["score"] >= thr for d in raw)  # official: dropped only if score < threshold
    # no image list: official '%012d.jpg' naming
    named = load_coco_detections(det, None, data_dir / "coco/mmpose")
    assert [r.image_path for r in named] == [r.image_path for r in records]
    big = load_coco_detections(
        data_dir / "coco/val2017_subset538_manhph2211/COCO_val2017_detections_AP_H_56_person_subset538.json",
        data_dir / "coco/val2017_subset538_manhph2211/person_keypoints_val2017_subset538_dedup.json", data_dir)
    assert len(big) == 17028 and len({r.image_id for r in big}) == 538
    crowd = load_coco_detections(data_dir / "crowdpose/mmpose/test_crowdpose_det_AP_40.json",
                                 data_dir / "crowdpose/mmpose/test_crowdpose.json", data_dir)
    assert len(crowd) == 6 and crowd[0].keypoints.shape == (14, 3)


def test_mpii(data_dir):
    records, skel = load_mpii(data_dir / "mpii/derived_hrnet_format/valid.json", data_dir / "mpii/mmpose")
    assert skel is skeletons.get("mpii") and len(records) == 2958
    assert len({r.image_path for r in records}) == 2729
    first = json.loads((data_dir / "mpii/derived_hrnet_format/valid.json").read_text())[0]
    s = first["scale"]
    # official: c[1] += 15 s; s *= 1.25; c -= 1 (0-based); joints -= 1; size px = 200 s
    np.testing.assert_allclose(records[0].center, [first["center"][0] - 1, first["center"][1] + 15 * s - 1])
    np.testing.assert_allclose(records[0].size, [250 * s, 250 * s])
    gt = load_mpii_gt(data_dir / "mpii/derived_hrnet_format/gt_valid.mat")
    assert gt.joint_names[:3] == ("rank", "rkne", "rhip") and gt.joints.shape == (2958, 16, 2)
    # independent truth: the Tompson ground truth (1-based) equals our 0-based joints + 1 where labelled
    joints = np.stack([r.keypoints for r in records])  # [N,16,3]
    labelled = (joints[..., 2] > 0) & (gt.missing == 0)
    diff = np.abs(joints[..., :2] + 1 - gt.joints)[labelled]
    assert np.mean(diff.max(axis=1) < 1e-3) > 0.995  # a few documented quirks (0 coordinates) aside
    np.testing.assert_array_equal(joints[..., 2] > 0, gt.missing == 0)
    five, _ = load_mpii(data_dir / "mpii/mmpose/test_mpii.json", data_dir / "mpii/mmpose")
    for a, b in zip(five, records[:5]):
        np.testing.assert_allclose(a.keypoints, b.keypoints)
        assert Path(a.image_path).is_file()


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d["annotations"][0].update(keypoints=[1, 2, 2] * 2), "'keypoints' has 6 values, expected 9"),
    (lambda d: d["annotations"][0].pop("bbox"), "no field 'bbox'"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "field 'bbox' must be [x, y, w, h]"),
    (lambda d: d["annotations"][0].update(image_id=77), "image_id 77 that is not in 'images'"),
    (lambda d: d.pop("annotations"), "no field 'annotations'"),
    (lambda d: d["images"][0].pop("file_name"), "no field 'file_name'"),
    (lambda d: d["categories"][0].update(keypoints=[]), "non-empty 'keypoints'"),
    (lambda d: d["annotations"][0].update(bbox=[float("nan")] * 4), "field 'bbox' has a non-finite value"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, float("inf"), 3]), "field 'bbox' has a non-finite value"),
    (lambda d: d["annotations"][0].update(keypoints=[1, 2, 3] * 3), "visibility flags [3.0]"),
    (lambda d: d["annotations"][0].update(keypoints=[1, 2, -1] * 3), "visibility flags [-1.0]"),
    (lambda d: d["annotations"][0].update(keypoints=[float("nan"), 2, 2] * 3), "non-finite value at keypoint 0"),
])
def test_coco_errors_name_file_and_field(tmp_path, mutate, expected):
    doc = _coco_doc([_ann(1, [5, 5, 20, 20])])
    mutate(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(DataError) as e:
        load_coco(path, tmp_path)
    assert str(path) in str(e.value) and expected in str(e.value)


def test_file_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for fn in (lambda p: load_coco(p, tmp_path), lambda p: load_mpii(p, tmp_path),
               lambda p: load_coco_detections(p, None, tmp_path)):
        with pytest.raises(DataError, match="bad.json: not valid JSON"):
            fn(bad)
        with pytest.raises(DataError, match="missing.json: file not found"):
            fn(tmp_path / "missing.json")
    dets = _write(tmp_path, {"image_id": 1}, "det.json")
    with pytest.raises(DataError, match="expected a list of detections"):
        load_coco_detections(dets, None, tmp_path)
    dets = _write(tmp_path, [{"image_id": 5, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.9}], "det2.json")
    with pytest.raises(DataError, match="image_id 5 that is not in the images"):
        load_coco_detections(dets, _write(tmp_path, _coco_doc([])), tmp_path)
    mpii = _write(tmp_path, [{"image": "a.jpg", "center": [1, 2], "scale": 1.0, "joints": [[1, 1]] * 15,
                              "joints_vis": [1] * 15}], "mpii.json")
    with pytest.raises(DataError, match=r"entry \[0\] field 'joints' has shape \(15, 2\), expected \(16, 2\)"):
        load_mpii(mpii, tmp_path)
    with pytest.raises(DataError, match="nope.mat: file not found"):
        load_mpii_gt(tmp_path / "nope.mat")


def test_detection_files_are_validated(tmp_path):
    gt = _write(tmp_path, _coco_doc([]))

    def dets(**change):
        det = {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 30], "score": 0.9, **change}
        return _write(tmp_path, [det], "det.json")

    for change, expected in (({"score": "high"}, "entry [0] field 'score' must be a number, got 'high'"),
                             ({"score": float("nan")}, "field 'score' is nan"),
                             ({"bbox": [1, 1, "w", 4]}, "field 'bbox' must be [x, y, w, h]"),
                             ({"bbox": [1, 1, 0, 4]}, "width/height <= 0"),
                             ({"bbox": [1, 1, float("nan"), 4]}, "non-finite")):
        with pytest.raises(DataError) as e:
            load_coco_detections(dets(**change), gt, tmp_path)
        assert "det.json" in str(e.value) and expected in str(e.value), str(e.value)
    # a box with no pixel inside its 100x80 image gives no pose (and a counted warning), not a scored guess
    from posekit.errors import DataWarning

    with pytest.warns(DataWarning, match="1 detection box"):
        assert load_coco_detections(dets(bbox=[500, 500, 20, 20]), gt, tmp_path) == []
    assert len(load_coco_detections(dets(bbox=[90, 70, 40, 40]), gt, tmp_path)) == 1  # partly inside: kept


def test_repeated_annotation_ids_are_an_error(tmp_path):
    doc = _coco_doc([_ann(1, [5, 5, 20, 20]), _ann(2, [30, 5, 20, 20]), _ann(1, [5, 40, 20, 20])])
    with pytest.raises(DataError, match=r"ann.json: 1 annotation ids are used more than once \(first: \[1\]\)"):
        load_coco(_write(tmp_path, doc), tmp_path)


def test_only_other_keypoint_counts_is_named(tmp_path):
    """A 16-keypoint file read for a 17-keypoint model: said as such, not 'no boxes found' later."""
    doc = _coco_doc([_ann(1, [5, 5, 20, 20], k=16), _ann(2, [30, 5, 20, 20], k=16)], k=16)
    with pytest.raises(DataError, match=r"no annotation has the 17 keypoints expected.*category 1 has 16 keypoints "
                                        r"\(2 annotations\)"):
        load_coco(_write(tmp_path, doc), tmp_path, skeleton=skeletons.COCO17)
    doc["categories"].append({"id": 2, "name": "person", "keypoints": list(skeletons.COCO17.keypoints)})
    doc["annotations"].append({**_ann(3, [5, 40, 20, 20], k=17), "category_id": 2})
    records, _ = load_coco(_write(tmp_path, doc), tmp_path, skeleton=skeletons.COCO17)  # mixed files still load
    assert [r.ann_id for r in records] == [3]
