"""generate(): a reproducible COCO keypoint dataset that pycocotools and posekit.skeletons read."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from posekit.data.synth import generate
from posekit.errors import ConfigError
from posekit.skeletons import AP10K17, COCO17, from_coco_category

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_output_for_any_worker_count(tmp_path):
    a = generate(tmp_path / "a", 6, seed=7, workers=1)
    b = generate(tmp_path / "b", 6, seed=7, workers=2)
    assert a["workers"] == 1 and b["workers"] == 2
    fa, fb = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert sorted(fa) == ["annotations.json"] + [f"images/{i:06d}.jpg" for i in range(6)]
    assert fa == fb
    generate(tmp_path / "c", 6, seed=8, workers=1)
    fc = _files(tmp_path / "c")
    assert fc["annotations.json"] != fa["annotations.json"]
    assert sum(fc[k] != fa[k] for k in fa if k.startswith("images/")) == 6


@pytest.mark.parametrize(("kind", "skeleton"), [("human", COCO17), ("quadruped", AP10K17)])
def test_coco_json_loads_and_is_consistent(tmp_path, kind, skeleton):
    summary = generate(tmp_path, 8, kind=kind, style="B", seed=1, workers=1, image_size=(192, 160))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(summary["ann_file"])
    (cat,) = coco.loadCats(coco.getCatIds())
    assert from_coco_category(cat) is skeleton
    assert len(coco.getImgIds()) == 8 and len(coco.getAnnIds()) == summary["num_instances"] > 0
    for img in coco.loadImgs(coco.getImgIds()):
        pixels = cv2.imread(str(Path(summary["image_root"]) / img["file_name"]))
        assert pixels.shape == (img["height"], img["width"], 3) == (160, 192, 3)
    for ann in coco.loadAnns(coco.getAnnIds()):
        k = np.asarray(ann["keypoints"], float).reshape(17, 3)
        assert ann["num_keypoints"] == int((k[:, 2] > 0).sum())
        assert (k[k[:, 2] == 0] == 0).all()
        assert ann["area"] == int(mask_utils.area(ann["segmentation"])) == int(coco.annToMask(ann).sum())
        np.testing.assert_allclose(ann["bbox"], mask_utils.toBbox(ann["segmentation"]), atol=0.006)
        (fx, fy), (cx, cy) = ann["cam_intrinsics"]["f"], ann["cam_intrinsics"]["c"]
        xyz = np.asarray(ann["keypoints_3d"], float)
        lab = k[:, 2] > 0
        np.testing.assert_allclose(k[lab, 0], fx * xyz[lab, 0] / xyz[lab, 2] + cx, atol=0.02)
        np.testing.assert_allclose(k[lab, 1], fy * xyz[lab, 1] / xyz[lab, 2] + cy, atol=0.02)


def test_ground_truth_scores_ap_one_with_pycocotools(tmp_path):
    summary = generate(tmp_path, 10, seed=2, workers=1)
    data = json.loads(Path(summary["ann_file"]).read_text())
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
               for a in data["annotations"] if a["num_keypoints"] > 0]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(summary["ann_file"])
        ev = COCOeval(gt, gt.loadRes(results), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)
    # a shifted copy of the ground truth scores lower: the eval really reads the keypoints
    for r in results:
        k = np.asarray(r["keypoints"], float).reshape(17, 3)
        k[:, :2] += 6.0
        r["keypoints"] = k.ravel().tolist()
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(results), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] < 0.9


def test_default_data_is_learnable_sized(tmp_path):
    summary = generate(tmp_path, 40, seed=3, workers=2)
    data = json.loads(Path(summary["ann_file"]).read_text())
    per_image = np.bincount([a["image_id"] for a in data["annotations"]])
    assert 1 <= per_image[1:].min() and per_image.max() <= 3
    heights = np.array([a["bbox"][3] / 256 for a in data["annotations"] if a["num_keypoints"] >= 8])
    assert len(heights) >= 40
    assert 0.3 <= np.median(heights) <= 0.8
    assert (heights > 0.2).mean() > 0.85
    assert 0.55 < summary["visible_fraction"] < 0.9


@pytest.mark.parametrize("kwargs", [{"kind": "bird"}, {"style": "C"}, {"max_subjects": 0}, {"size_range": (0.9, 0.2)},
                                    {"num_images": 0}, {"colour": 3}])
def test_bad_settings_raise_config_error(tmp_path, kwargs):
    args = {"num_images": 2, **kwargs}
    with pytest.raises(ConfigError):
        generate(tmp_path, **args)


@pytest.mark.parametrize("kind", ["human", "quadruped"])
def test_posekit_loader_and_eval_read_the_dataset(tmp_path, kind):
    coco_loader = pytest.importorskip("posekit.data.coco")
    evaluation = pytest.importorskip("posekit.evaluation")
    summary = generate(tmp_path, 6, kind=kind, seed=4, workers=1)
    records, skeleton = coco_loader.load_coco(summary["ann_file"], summary["image_root"])
    data = json.loads(Path(summary["ann_file"]).read_text())
    labelled = [a for a in data["annotations"] if a["num_keypoints"] > 0]
    assert skeleton is (COCO17 if kind == "human" else AP10K17)
    assert len(records) == len(labelled) > 0
    assert all(Path(r.image_path).is_file() for r in records)
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
               for a in labelled]
    stats = evaluation.coco_keypoints(summary["ann_file"], results)
    assert stats["AP"] == pytest.approx(1.0)


@pytest.mark.parametrize("guarded", [False, True])
def test_a_script_without_main_guard_works_and_gives_the_same_images(tmp_path, guarded):
    """Worker processes used to re-run an unguarded calling script and the pool restarted them forever."""
    import subprocess
    import sys

    call = f"generate({str(tmp_path / 'out')!r}, 4, seed=5, workers=2, image_size=(96, 96))"
    body = f"if __name__ == '__main__':\n    {call}\n" if guarded else f"{call}\n"
    script = tmp_path / "make_data.py"
    script.write_text(f"from posekit.data.synth import generate\nprint('start')\n{body}print('end')\n")
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["start", "end"] and run.stderr.count("Traceback") == 0  # the script ran once
    main = sys.modules["__main__"]
    before = {k: vars(main).get(k, "absent") for k in ("__file__", "__spec__")}
    generate(tmp_path / "ref", 4, seed=5, workers=2, image_size=(96, 96))
    assert {k: vars(main).get(k, "absent") for k in ("__file__", "__spec__")} == before  # given back to the caller
    assert _files(tmp_path / "out") == _files(tmp_path / "ref")


def test_a_folder_holding_another_dataset_is_not_overwritten(tmp_path):
    """`posekit synth --out` on a user's dataset overwrote its annotations.json and images."""
    user = tmp_path / "mydata"
    (user / "images").mkdir(parents=True)
    (user / "images" / "000000000139.jpg").write_bytes(b"my photo")
    with pytest.raises(ConfigError, match=r"images already holds files and there is no posekit synth"):
        generate(user, 2, seed=1, workers=1, image_size=(96, 96))
    (user / "annotations.json").write_text('{"images": [], "annotations": [], "categories": []}')
    with pytest.raises(ConfigError, match=r"holds an annotations.json that posekit synth did not write"):
        generate(user, 2, seed=1, workers=1, image_size=(96, 96))
    assert (user / "images" / "000000000139.jpg").read_bytes() == b"my photo"
    (tmp_path / "interrupted" / "images").mkdir(parents=True)  # an interrupted synth run: its own names only
    (tmp_path / "interrupted" / "images" / "000000.jpg").write_bytes(b"partial")
    generate(tmp_path / "interrupted", 2, seed=1, workers=1, image_size=(96, 96))
    generate(tmp_path / "synth", 2, seed=1, workers=1, image_size=(96, 96))
    generate(tmp_path / "synth", 3, seed=2, workers=1, image_size=(96, 96))  # its own earlier output: regenerated
    assert json.loads((tmp_path / "synth" / "annotations.json").read_text())["info"]["seed"] == 2
