"""`posekit infer` on backends, bad images, interruptions and model specs; `PoseEstimator.images`.

Truths: the torch backend's JSON (for the onnxruntime one), the files written by the test (which are bad, which
are good), and the ModelSpec stored in a weights file.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from posekit import models
from posekit.bench.common import randomise
from posekit.cli import main
from posekit.errors import ConfigError, DataError
from posekit.inference import PoseEstimator, ResultsWriter

MODEL = "hrnet_w16_tiny_128x96"  # input 96 x 128, exports in a few seconds


def smooth_image(h: int, w: int, seed: int) -> np.ndarray:
    """A blurred-noise RGB uint8 image (image-like statistics, so random-weight heatmaps have clear peaks)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(h // 8, 2), max(w // 8, 2), 3)).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("w") / "tiny.pth"
    model = models.build(MODEL).eval()
    randomise(model)
    torch.save({"state_dict": model.state_dict()}, path)
    return path


def write_folder(folder: Path) -> dict[str, str]:
    """Two good images and three bad ones; returns {file name: 'good' | 'bad'}."""
    folder.mkdir(parents=True)
    ok, jpg = cv2.imencode(".jpg", smooth_image(120, 100, 0))
    (folder / "a_good.jpg").write_bytes(jpg.tobytes())
    (folder / "b_truncated.jpg").write_bytes(jpg.tobytes()[: len(jpg) // 2])
    (folder / "c_empty.png").write_bytes(b"")
    (folder / "d_text.jpg").write_text("not an image")
    cv2.imwrite(str(folder / "e_good.png"), smooth_image(90, 140, 1))
    return {"a_good.jpg": "good", "b_truncated.jpg": "bad", "c_empty.png": "bad", "d_text.jpg": "bad",
            "e_good.png": "good"}


def test_onnxruntime_json_equals_torch_json(weights: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i + 1:012d}.png"), smooth_image(160 + 20 * i, 150, i))
    outs = {}
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / backend
        rc = main(["infer", "--model", MODEL, "--weights", str(weights), str(folder), "--box", "10,10,90,120",
                   "--box", "30,20,60,90", "--backend", backend, "--no-draw", "--out", str(out)])
        assert rc == 0
        outs[backend] = json.loads((out / "keypoints.json").read_text())
    a, b = outs["torch"], outs["onnxruntime"]
    assert len(a) == len(b) == 6
    assert [(r["image_id"], r["bbox"]) for r in a] == [(r["image_id"], r["bbox"]) for r in b]
    kp_a = np.array([r["keypoints"] for r in a]).reshape(-1, 17, 3)
    kp_b = np.array([r["keypoints"] for r in b]).reshape(-1, 17, 3)
    # image px; the JSON rounds to 1e-4. Crop px per image px <= 1.25 here, so 1e-3 crop px <= 1.3e-3 image px
    assert np.abs(kp_a[..., :2] - kp_b[..., :2]).max() <= 1.5e-3
    assert np.abs(kp_a[..., 2] - kp_b[..., 2]).max() <= 1e-4
    np.testing.assert_allclose([r["score"] for r in a], [r["score"] for r in b], atol=1e-4)


def test_bad_images_are_skipped_and_reported(tmp_path: Path, capsys) -> None:
    kinds = write_folder(tmp_path / "in")
    out = tmp_path / "out"
    rc = main(["infer", "--model", MODEL, "--random-weights", str(tmp_path / "in"), "--no-flip", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0
    assert "3 skipped" in captured.out
    for name, kind in kinds.items():
        assert (name in captured.err) == (kind == "bad"), name
    assert "truncated JPEG" in captured.err and "0-byte" in captured.err
    results = json.loads((out / "keypoints.json").read_text())
    assert sorted(Path(r["file_name"]).name for r in results) == ["a_good.jpg", "e_good.png"]
    assert sorted(p.name for p in out.glob("*.png")) == ["a_good.png", "e_good.png"]


def test_stop_on_bad_image_keeps_what_was_done(tmp_path: Path, capsys) -> None:
    write_folder(tmp_path / "in")
    out = tmp_path / "out"
    rc = main(["infer", "--model", MODEL, "--random-weights", str(tmp_path / "in"), "--no-flip", "--no-draw",
               "--on-error", "stop", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and "b_truncated.jpg" in err and "traceback" not in err.lower()
    results = json.loads((out / "keypoints.json").read_text())  # valid JSON: the list was closed
    assert [Path(r["file_name"]).name for r in results] == ["a_good.jpg"]


def test_interrupt_keeps_a_valid_json(tmp_path: Path, monkeypatch, capsys) -> None:
    write_folder(tmp_path / "in")
    original = PoseEstimator.images

    def interrupted(self, *args, **kwargs):
        for i, r in enumerate(original(self, *args, **kwargs)):
            if i == 1:
                raise KeyboardInterrupt
            yield r

    monkeypatch.setattr(PoseEstimator, "images", interrupted)
    out = tmp_path / "out"
    rc = main(["infer", "--model", MODEL, "--random-weights", str(tmp_path / "in"), "--no-flip", "--no-draw",
               "--out", str(out)])
    assert rc == 130 and "kept in" in capsys.readouterr().err
    assert [Path(r["file_name"]).name for r in json.loads((out / "keypoints.json").read_text())] == ["a_good.jpg"]


def test_results_writer_streams(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    with pytest.raises(RuntimeError), ResultsWriter(path) as w:
        w.write([{"a": 1}])
        assert json.loads(path.read_text()) == [{"a": 1}]  # a complete JSON list at every moment
        w.write([{"a": 2}, {"a": 3}])
        raise RuntimeError("boom")
    assert json.loads(path.read_text()) == [{"a": 1}, {"a": 2}, {"a": 3}]
    with ResultsWriter(tmp_path / "empty.json"):
        pass
    assert json.loads((tmp_path / "empty.json").read_text()) == []


def test_images_iterator_batches_and_orders(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"img{i}.png"), smooth_image(100, 80, i))
    video = folder / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (64, 48))
    for i in range(5):
        writer.write(smooth_image(48, 64, 10 + i))
    writer.release()
    est = PoseEstimator(MODEL, backend="torch", images_per_batch=4, batch_size=32)
    calls = []
    inner = est.backend

    def counting(x):
        calls.append(x.shape[0])
        return inner(x)

    est.backend = counting
    boxes = {"img1.png": np.array([[0, 0, 40, 50, 0.9], [10, 10, 30, 30, 0.5]]), "img2": np.zeros((0, 4))}
    results = list(est.images(folder, boxes=boxes))
    # sorted: clip.avi (5 frames, whole frame each), img0 (no entry: no boxes), img1 (2 boxes), img2 (none)
    assert [(r.path.name, r.frame) for r in results] == [("clip.avi", f) for f in range(5)] + [
        ("img0.png", None), ("img1.png", None), ("img2.png", None)]
    assert [len(r.poses) for r in results] == [1] * 5 + [0, 2, 0]
    assert [p.box_score for p in results[6].poses] == [0.9, 0.5]
    # frames 4 at a time then 1 (flip test doubles each batch); the three images share one batch of 2 crops
    assert calls == [8, 2, 4]
    path, image, poses = results[6]
    assert image.shape == (100, 80, 3) and poses is results[6].poses
    coco = results[6].coco(7)
    assert [c["image_id"] for c in coco] == [7, 7] and coco[0]["file_name"] == str(folder / "img1.png")
    assert results[0].coco(3)[0]["frame"] == 0
    with pytest.raises(DataError, match="nope"):
        list(est.images(tmp_path / "nope.jpg"))
    with pytest.raises(ConfigError, match="on_error"):
        list(est.images(folder, on_error="ignore"))


def test_spec_in_weights_is_used_and_mismatch_refused(tmp_path: Path, capsys) -> None:
    from posekit.inference import zoo_spec
    from posekit.modelspec import weights_file

    base = zoo_spec(MODEL)
    spec = type(base)(**{**base.__dict__, "input_size": (64, 96), "heatmap_size": (16, 24), "codec": "udp",
                         "codec_cfg": {"sigma": 2.0}, "color_rgb": False})
    model = models.build(MODEL).eval()
    randomise(model)
    path = tmp_path / "trained.pth"
    torch.save(weights_file(model.state_dict(), spec), path)
    est = PoseEstimator(path, backend="torch")  # no zoo name: everything from the file
    assert est.input_size == (64, 96) and est.codec.name == "udp" and est.codec.input_size == (64, 96)
    assert est.color_rgb is False and "stored in" in est.spec_source
    poses = est(smooth_image(90, 70, 3))
    assert len(poses) == 1 and np.isfinite(poses[0].keypoints).all()
    # naming the zoo model (registered 96x128 msra; these weights are 64x96 udp) is a mismatch, not a silent resize
    with pytest.raises(ConfigError, match="another model spec"):
        PoseEstimator(MODEL, weights=path, backend="torch")
    with pytest.raises(ConfigError, match="another model spec"):
        PoseEstimator("simplebaseline_res18_128x96", weights=path, backend="torch")
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), smooth_image(90, 70, 4))
    rc = main(["infer", "--weights", str(path), str(image), "--no-draw", "--backend", "torch",
               "--out", str(tmp_path / "o")])
    assert rc == 0 and len(json.loads((tmp_path / "o" / "keypoints.json").read_text())) == 1
    rc = main(["infer", "--model", "simplebaseline_res18_128x96", "--weights", str(path), str(image),
               "--out", str(tmp_path / "o2")])
    assert rc == 1 and "input_size" in capsys.readouterr().err
    # an official checkpoint without a spec needs a name
    torch.save(model.state_dict(), tmp_path / "official.pth")
    with pytest.raises(ConfigError, match="--model"):
        PoseEstimator(tmp_path / "official.pth")


def test_infer_argument_errors(tmp_path: Path, capsys) -> None:
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), smooth_image(40, 30, 0))
    for args, message in [(["--batch-size", "0"], "--batch-size"), (["--device", "cuda:0"], "--device"),
                          (["--device", "nonsense"], "--device")]:
        if args[1].startswith("cuda") and torch.cuda.is_available():
            continue
        rc = main(["infer", "--model", MODEL, "--random-weights", str(image), "--out", str(tmp_path / "o"), *args])
        assert rc == 1 and message in capsys.readouterr().err
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": ["a", 1, 2, 3], "score": 0.9}]))
    rc = main(["infer", "--model", MODEL, "--random-weights", str(image), "--boxes", str(dets), "--out",
               str(tmp_path / "o")])
    assert rc == 1 and "entry 0" in capsys.readouterr().err


def test_export_uses_the_spec_in_the_weights(tmp_path: Path, capsys) -> None:
    import onnx

    from posekit.inference import zoo_spec
    from posekit.modelspec import weights_file

    base = zoo_spec(MODEL)
    spec = type(base)(**{**base.__dict__, "input_size": (64, 96), "heatmap_size": (16, 24)})
    model = models.build(MODEL).eval()
    randomise(model)
    torch.save(weights_file(model.state_dict(), spec), tmp_path / "w.pth")
    rc = main(["export", "--weights", str(tmp_path / "w.pth"), "--out", str(tmp_path / "m.onnx")])
    out = capsys.readouterr().out
    assert rc == 0 and "[1,3,96,64]" in out
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(meta["posekit_spec"])["input_size"] == [64, 96]
    rc = main(["export", "--model", "simplebaseline_res18_128x96", "--weights", str(tmp_path / "w.pth"),
               "--out", str(tmp_path / "m2.onnx")])
    assert rc == 1 and "another model spec" in capsys.readouterr().err and not (tmp_path / "m2.onnx").exists()


def test_box_outside_the_image_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.png"), smooth_image(60, 50, i))
    est = PoseEstimator(MODEL, backend="torch", flip_test=False)
    boxes = {"0.png": [[1000, 1000, 20, 30]], "1.png": [[5, 5, 20, 30]]}
    results = list(est.images(folder, boxes=boxes))
    assert results[0].error is not None and "entirely outside the 50x60 image" in results[0].error
    assert results[1].error is None and len(results[1].poses) == 1
    with pytest.raises(DataError, match="outside"):
        list(est.images(folder, boxes=boxes, on_error="stop"))
    with pytest.raises(DataError, match="box 0"):
        est(smooth_image(60, 50, 0), [[-100, 0, 50, 50]])
