"""`posekit infer` on real COCO samples (with their detections) and on a generated image + video."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from posekit.cli import main

MODEL = "simplebaseline_res18_128x96"  # a small zoo model: input 96 x 128


def padded_region(box: list[float], aspect: float = 96 / 128, padding: float = 1.25) -> tuple[float, ...]:
    """x0, y0, x1, y1 of the crop a box xywh becomes (official _xywh2cs, closed form)."""
    x, y, w, h = box
    w, h = max(w, h * aspect), max(h, w / aspect)
    cx, cy = x + box[2] / 2, y + box[3] / 2
    return cx - w * padding / 2, cy - h * padding / 2, cx + w * padding / 2, cy + h * padding / 2


@pytest.mark.slow
def test_infer_coco_samples_with_detections(data_dir: Path, tmp_path: Path, capsys) -> None:
    from pycocotools.coco import COCO

    root = data_dir / "coco" / "mmpose"
    gt, det_file = root / "test_coco.json", root / "test_coco_det_AP_H_56.json"
    out = tmp_path / "out"
    rc = main(["infer", "--model", MODEL, "--random-weights", str(root), "--boxes", str(det_file),
               "--gt-images", str(gt), "--box-threshold", "0.5", "--out", str(out), "--show-scores"])
    assert rc == 0
    summary = capsys.readouterr().out
    assert "4 images" in summary and "keypoints.json" in summary
    results = json.loads((out / "keypoints.json").read_text())
    dets = [d for d in json.loads(det_file.read_text()) if d["score"] >= 0.5 and d["category_id"] == 1]
    assert len(results) == len(dets)  # one pose per kept detection
    by_image = {}
    for d in dets:
        by_image.setdefault(d["image_id"], []).append(d)
    coco = COCO(str(gt))
    for r in results:
        assert r["category_id"] == 1 and len(r["keypoints"]) == 51 and np.isfinite(r["keypoints"]).all()
        assert Path(r["file_name"]).stem.lstrip("0") == str(r["image_id"])
        kp = np.asarray(r["keypoints"]).reshape(17, 3)
        # the pose belongs to one detection of its image, and its keypoints lie in that detection's padded crop
        match = [d for d in by_image[r["image_id"]] if np.allclose(d["bbox"], r["bbox"], atol=0.01)]
        assert len(match) == 1
        x0, y0, x1, y1 = padded_region(match[0]["bbox"])
        assert np.all((kp[:, 0] >= x0 - 1) & (kp[:, 0] <= x1 + 1) & (kp[:, 1] >= y0 - 1) & (kp[:, 1] <= y1 + 1))
        assert 0.0 <= r["score"] <= match[0]["score"] + 1e-6
    # pycocotools accepts the file as keypoint results for this ground truth
    loaded = coco.loadRes(str(out / "keypoints.json"))
    assert len(loaded.getAnnIds()) == len(results)
    for img in coco.dataset["images"]:
        drawn = cv2.imread(str(out / (Path(img["file_name"]).stem + ".png")))
        assert drawn is not None and drawn.shape == (img["height"], img["width"], 3)


def make_inputs(folder: Path) -> tuple[Path, Path]:
    """A picture with a non-numeric name and a 3-frame MJPG video."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (120, 90, 3), dtype=np.uint8)
    cv2.imwrite(str(folder / "person.png"), image)
    video = folder / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (80, 64))
    for i in range(3):
        writer.write(np.full((64, 80, 3), 40 * i, np.uint8))
    writer.release()
    return folder / "person.png", video


def test_infer_generated_image_and_video(tmp_path: Path, capsys) -> None:
    image, video = make_inputs(tmp_path / "in")
    out = tmp_path / "out"
    rc = main(["infer", "--model", MODEL, "--random-weights", "--no-flip", str(image), str(video), "--out", str(out)])
    assert rc == 0
    assert "3 frames" in capsys.readouterr().out
    results = json.loads((out / "keypoints.json").read_text())
    assert [r["file_name"] for r in results] == [str(image)] + [str(video)] * 3
    assert [r["image_id"] for r in results] == [0, 1, 2, 3]  # non-numeric names: running index
    assert [r.get("frame") for r in results] == [None, 0, 1, 2]
    assert [r["bbox"] for r in results] == [[0, 0, 90, 120]] + [[0, 0, 80, 64]] * 3  # whole frame
    assert cv2.imread(str(out / "person.png")).shape == (120, 90, 3)
    cap = cv2.VideoCapture(str(out / "clip_pose.avi"))
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == 3
    # the same folder as input, with fixed boxes and no drawings
    out2 = tmp_path / "out2"
    rc = main(["infer", "--model", MODEL, "--random-weights", str(tmp_path / "in"), "--box", "10,20,30,40",
               "--box", "0,0,50,50", "--no-draw", "--no-flip", "--out", str(out2)])
    assert rc == 0
    results = json.loads((out2 / "keypoints.json").read_text())
    assert len(results) == 2 * 4 and {tuple(r["bbox"]) for r in results} == {(10, 20, 30, 40), (0, 0, 50, 50)}
    assert sorted(p.name for p in out2.iterdir()) == [".posekit-infer.lock", "keypoints.json"]  # + the folder's mark


def test_infer_with_weights(tmp_path: Path) -> None:
    from posekit import models

    model = models.build(MODEL)
    torch.save(model.state_dict(), tmp_path / "w.pth")
    image, _ = make_inputs(tmp_path / "in")
    rc = main(["infer", "--model", MODEL, "--weights", str(tmp_path / "w.pth"), str(image), "--out",
               str(tmp_path / "out")])
    assert rc == 0 and (tmp_path / "out" / "person.png").exists()


def test_infer_refuses_without_weights(tmp_path: Path, capsys) -> None:
    image, _ = make_inputs(tmp_path / "in")
    rc = main(["infer", "--model", MODEL, str(image), "--out", str(tmp_path / "out")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "--weights" in err and "--random-weights" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [
    (["--box", "1,2,3"], "X,Y,W,H"),
    (["--box", "0,0,0,5"], "X,Y,W,H"),
    (["--gt-images", "x.json"], "--boxes"),
])
def test_infer_bad_arguments(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    image, _ = make_inputs(tmp_path / "in")
    rc = main(["infer", "--model", MODEL, "--random-weights", str(image), "--out", str(tmp_path / "o"), *args])
    assert rc == 1 and message in capsys.readouterr().err


def test_infer_missing_input(tmp_path: Path, capsys) -> None:
    rc = main(["infer", "--model", MODEL, "--random-weights", str(tmp_path / "nope.jpg"), "--out", str(tmp_path)])
    assert rc == 1 and "nope.jpg" in capsys.readouterr().err


def test_infer_matches_detections_by_file_name_number(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    image = np.zeros((60, 50, 3), np.uint8)
    cv2.imwrite(str(folder / "COCO_val2014_000000000042.jpg"), image)
    cv2.imwrite(str(folder / "frame_7.png"), image)
    dets = [{"image_id": 42, "category_id": 1, "bbox": [5, 6, 20, 30], "score": 0.9},
            {"image_id": 42, "category_id": 1, "bbox": [1, 1, 10, 10], "score": 0.1},  # below --box-threshold
            {"image_id": 42, "category_id": 3, "bbox": [1, 1, 10, 10], "score": 0.9},  # not a person
            {"image_id": 8, "category_id": 1, "bbox": [1, 1, 10, 10], "score": 0.9}]  # no such image
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    rc = main(["infer", "--model", MODEL, "--random-weights", "--no-flip", "--no-draw", str(folder), "--boxes",
               str(tmp_path / "dets.json"), "--out", str(tmp_path / "out")])
    assert rc == 0
    assert "1 images without detections" in capsys.readouterr().out
    results = json.loads((tmp_path / "out" / "keypoints.json").read_text())
    assert [(r["image_id"], r["bbox"]) for r in results] == [(42, [5, 6, 20, 30])]
