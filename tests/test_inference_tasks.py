"""PoseEstimator on the non-top-down tasks: a bottom-up (AE) model finds people without boxes, a 3-D model returns
camera-space joints; both equal the library functions they wrap, from a posekit weights file trained by `fit`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from posekit.config import config_from_dict
from posekit.data.images import read_image
from posekit.engine.train import fit
from posekit.inference import PoseEstimator


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from posekit.data.synth import generate

    root = tmp_path_factory.mktemp("tasks") / "train"
    generate(root, 2, kind="human", seed=0, image_size=(128, 128), max_subjects=2)
    return root


def _trained(zoo: str, synth: Path, tmp_path: Path, fmt: str) -> Path:
    data = {"FORMAT": fmt, "TRAIN_ANN": str(synth / "annotations.json"), "TRAIN_IMAGES": str(synth / "images"),
            "TEST_ANN": str(synth / "annotations.json"), "TEST_IMAGES": str(synth / "images")}
    if fmt == "coco":
        data["SKELETON"] = "coco"
    cfg = config_from_dict({"WORKERS": 0, "MODEL": {"ZOO": zoo}, "DATASET": data,
                            "TRAIN": {"BATCH_SIZE_PER_GPU": 2, "MAX_ITERS": 1, "VAL_EVERY": 0, "END_EPOCH": 1}})
    result = fit(cfg, tmp_path / zoo, device="cpu")
    return Path(result["final_weights"] or result["last_weights"])


@pytest.mark.slow
def test_bottom_up_estimator_needs_no_boxes(synth: Path, tmp_path: Path) -> None:
    from posekit.runtime.bottomup import estimate_bottomup

    weights = _trained("ae_hourglass_small_128", synth, tmp_path, "coco")
    est = PoseEstimator(weights)
    assert est.task == "bottomup" and not est.needs_boxes and est.backend.name == "torch"
    image = read_image(sorted((synth / "images").iterdir())[0])
    poses = est(image)
    direct = estimate_bottomup(est.model, est.codec, image, flip_index=est.skeleton.flip_index, flip=True)
    assert len(poses) == len(direct)
    for a, b in zip(poses, direct):
        np.testing.assert_allclose(a.keypoints, b.keypoints)
    with pytest.raises(Exception, match="torch backend only"):
        PoseEstimator(weights, backend="onnxruntime")


@pytest.mark.slow
def test_3d_estimator_returns_camera_space_joints(synth: Path, tmp_path: Path) -> None:
    from posekit.runtime.body3d import predict_poses_3d

    weights = _trained("posenet3d_res18_128x128", synth, tmp_path, "synth3d")
    est = PoseEstimator(weights)
    assert est.task == "body3d"
    image = read_image(sorted((synth / "images").iterdir())[0])
    boxes = np.array([[20.0, 10.0, 60.0, 100.0], [70.0, 20.0, 40.0, 90.0]])
    poses = est(image, boxes)
    assert len(poses) == 2
    direct = predict_poses_3d(est.model, image, boxes, est.codec, flip_pairs=est.skeleton.flip_pairs)
    for p, d in zip(poses, direct):
        np.testing.assert_allclose(p.extra["joints_cam"], d.joints_cam, atol=1e-4)
        np.testing.assert_allclose(p.keypoints[:, :2], d.joints_img, atol=1e-4)
        assert p.extra["joints_cam"].shape == (est.skeleton.num_keypoints, 3)
        assert np.isfinite(p.extra["joints_cam"]).all() and torch.is_tensor(p.keypoints) is False


@pytest.mark.slow
def test_posekit_infer_bottom_up_and_3d(synth: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import json

    import cv2

    from posekit.cli import main

    image = sorted((synth / "images").iterdir())[0]
    ae = _trained("ae_hourglass_small_128", synth, tmp_path, "coco")
    assert main(["infer", "--weights", str(ae), str(image), "--out", str(tmp_path / "ae_out")]) == 0
    entries = json.loads((tmp_path / "ae_out" / "keypoints.json").read_text())
    assert all(len(e["keypoints"]) == 17 * 3 for e in entries)  # people found without any box
    p3 = _trained("posenet3d_res18_128x128", synth, tmp_path, "synth3d")
    assert main(["infer", "--weights", str(p3), str(image), "--box", "20,10,60,100", "--out",
                 str(tmp_path / "p3_out")]) == 0
    (entry,) = json.loads((tmp_path / "p3_out" / "keypoints.json").read_text())
    assert np.asarray(entry["keypoints_3d"]).shape == (18, 3) and entry["root_depth"] > 0
    picture = cv2.imread(str(tmp_path / "p3_out" / f"{image.stem}_3d.png"))
    assert picture is not None and picture.std() > 5
    capsys.readouterr()


@pytest.mark.slow
def test_bottom_up_people_are_the_boxes_of_a_top_down_model(synth: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The people of a bottom-up model (here: its grouping replaced by the image's ground-truth people, so there
    are people to find) become the boxes of a top-down model, in the library and in `posekit infer`."""
    import json

    import posekit.runtime.bottomup as bu
    from posekit.cli import main
    from posekit.runtime import Pose

    ann = json.loads((synth / "annotations.json").read_text())
    first = ann["images"][0]
    gt = [np.asarray(a["keypoints"], np.float32).reshape(-1, 3) for a in ann["annotations"]
          if a["image_id"] == first["id"] and a["num_keypoints"] >= 2]
    assert gt

    def ground_truth_people(model, codec, image_rgb, **kw):
        return [Pose(keypoints=np.where(k[:, 2:] > 0, k, 0), box=np.zeros(4), score=1.0) for k in gt]

    monkeypatch.setattr(bu, "estimate_bottomup", ground_truth_people)
    ae = _trained("ae_hourglass_small_128", synth, tmp_path, "coco")
    td = _trained("hrnet_w16_tiny_128x96", synth, tmp_path, "coco")
    image_path = synth / "images" / first["file_name"]
    image = read_image(image_path)
    people = PoseEstimator(ae)
    boxes = bu.people_boxes_fn(people)(image_path, image, None)
    expected, _ = bu.people_boxes(people(image), image_size=(image.shape[1], image.shape[0]))
    assert len(boxes) == len(gt) and np.allclose(boxes[:, :4], expected)
    assert main(["infer", "--weights", str(td), "--people-from", str(ae), str(image_path), "--out",
                 str(tmp_path / "o"), "--backend", "torch"]) == 0
    entries = json.loads((tmp_path / "o" / "keypoints.json").read_text())
    assert len(entries) == len(gt)  # one top-down pose per bottom-up person
    np.testing.assert_allclose(sorted(e["bbox"][0] for e in entries), sorted(boxes[:, 0]), atol=0.01)
    with pytest.raises(Exception, match="bottom-up estimator"):
        bu.people_boxes_fn(PoseEstimator(td))


@pytest.mark.slow
def test_infer_draws_bottom_up_people_above_the_person_threshold(synth: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """keypoints.json keeps every grouped person (COCO results); drawings skip fragments below --person-threshold
    (default 0.2 for bottom-up models)."""
    import json

    import posekit.inference as inference
    import posekit.runtime.bottomup as bu
    from posekit.cli import main
    from posekit.runtime import Pose

    kp = np.zeros((17, 3), np.float32)
    kp[:, :2], kp[:, 2] = 20.0, 0.9
    people = [Pose(keypoints=kp.copy(), box=np.zeros(4), score=s) for s in (0.9, 0.05)]
    monkeypatch.setattr(bu, "estimate_bottomup", lambda *a, **k: people)
    drawn: list[list[float]] = []
    real_draw = inference.draw_poses

    def spy(image, poses, *a, **k):
        drawn.append([p.score for p in poses])
        return real_draw(image, poses, *a, **k)

    monkeypatch.setattr(inference, "draw_poses", spy)
    ae = _trained("ae_hourglass_small_128", synth, tmp_path, "coco")
    image = sorted((synth / "images").iterdir())[0]
    for extra, want in (([], [0.9]), (["--person-threshold", "0"], [0.9, 0.05])):
        drawn.clear()
        assert main(["infer", "--weights", str(ae), str(image), "--out", str(tmp_path / "o"), *extra]) == 0
        assert len(json.loads((tmp_path / "o" / "keypoints.json").read_text())) == 2
        assert drawn == [want]
