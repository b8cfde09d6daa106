"""The body3d task in the one engine: build -> dataset -> collate -> loss -> backward, the test path's exactness
(GT coords replayed through evaluate give ~0 mm on real H36M samples and synthetic humans), flip test, root depth
files, the image -> 3-D poses entry, and a few training iterations through fit and the CLI (loss falls)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from posekit.config import config_from_dict
from posekit.data.body3d import collate_body3d
from posekit.engine.tasks import task_for
from posekit.engine.tasks.body3d import Body3DTask, load_body3d, make_dataset
from posekit.errors import ConfigError, DataError
from posekit.runtime.body3d import predict_poses_3d, root_depth_from_box

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def synth3d(tmp_path_factory) -> Path:
    from posekit.data.synth import generate

    root = tmp_path_factory.mktemp("synth3d")
    generate(root / "train", 6, max_subjects=1, seed=0, workers=1, image_size=(128, 128), max_yaw=90.0)
    generate(root / "val", 3, max_subjects=1, seed=1, workers=1, image_size=(128, 128), max_yaw=90.0)
    return root


def _cfg(root: Path, **sections) -> object:
    raw = {"MODEL": {"ZOO": "posenet3d_res18_128x128"},
           "DATASET": {"FORMAT": "synth3d", "ROOT": str(root), "TRAIN_SET": "train", "TEST_SET": "val"},
           "TRAIN": {"BATCH_SIZE_PER_GPU": 4, "SEED": 0, "END_EPOCH": 100, "LR": 1e-3, "VAL_EVERY": 0,
                     "CHECKPOINT_EVERY_MINUTES": 0},
           "TEST": {"BATCH_SIZE_PER_GPU": 8}, "WORKERS": 0}
    for key, value in sections.items():
        raw.setdefault(key, {}).update(value)
    return config_from_dict(raw)


class Replay(nn.Module):
    """Stands in for a network: returns the stored coords of the next samples in order (no flip test)."""

    def __init__(self, coords: np.ndarray) -> None:
        super().__init__()
        self.coords = torch.from_numpy(coords)
        self.pos = 0
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.coords[self.pos:self.pos + len(x)]
        self.pos += len(x)
        return out


def test_task_pieces_and_one_backward(synth3d):
    cfg = _cfg(synth3d)
    task = task_for(cfg)
    assert isinstance(task, Body3DTask) and task.primary_metric(cfg) == "MPJPE" and not task.higher_is_better(cfg)
    built = task.build(cfg)
    assert built.skeleton.name == "coco_pelvis" and built.codec.depth_dim == 32
    ds = task.train_dataset(cfg, built)
    batch = task.collate([ds[i] for i in range(4)])
    assert batch.inputs.shape == (4, 3, 128, 128) and batch.targets["coord"].shape == (4, 18, 3)
    model = built.model.train()
    loss, logs = task.criterion(cfg, built)(model(batch.inputs), batch.targets)
    loss.backward()
    assert torch.isfinite(loss) and "loss_coord" in logs
    assert model.head.final_layer.weight.grad.abs().sum() > 0


def test_evaluate_replaying_gt_coords_gives_zero_error(synth3d):
    cfg = _cfg(synth3d, TEST={"FLIP_TEST": False})
    task = task_for(cfg)
    built = task.build(cfg)
    from posekit.engine.tasks.body3d import load_records_3d

    recs = load_records_3d(cfg, "test")
    ds = make_dataset(recs, built, train=False)
    _, targets, _ = collate_body3d([ds[i] for i in range(len(ds))])
    metrics, results = task.evaluate(cfg, Replay(targets["coord"].numpy()), built, torch.device("cpu"))
    assert metrics["MPJPE"] < 0.05 and metrics["PA-MPJPE"] < 0.05 and metrics["3DPCK"] == 100.0
    assert len(results) == len(recs) and len(results[0]["joints_cam"]) == 18


def test_h36m_real_samples_through_evaluate(data_dir, tmp_path):
    root = data_dir / "h36m" / "mmpose"
    raw = {"MODEL": {"ZOO": "posenet3d_res50_256x256"},
           "DATASET": {"FORMAT": "h36m_mmpose", "TEST_ANN": str(root / "h36m_coco.json"), "TEST_IMAGES": str(root)},
           "BODY3D": {"CAMERAS": str(root / "cameras.pkl"), "PROTOCOL": 1}, "TEST": {"FLIP_TEST": False}, "WORKERS": 0}
    cfg = config_from_dict(raw)
    task = task_for(cfg)
    assert task.primary_metric(cfg) == "PA-MPJPE"
    from posekit.codecs.body3d import Body3DCoder
    from posekit.engine.tasks.base import Built
    from posekit.engine.tasks.body3d import load_records_3d
    from posekit.skeletons import get

    built = Built(model=None, codec=Body3DCoder((256, 256), (64, 64), 64), skeleton=get("h36m"))
    recs = load_records_3d(cfg, "test")
    ds = make_dataset(recs, built, train=False)
    _, targets, _ = collate_body3d([ds[i] for i in range(len(ds))])
    metrics, _ = task.evaluate(cfg, Replay(targets["coord"].numpy()), built, torch.device("cpu"))
    assert metrics["MPJPE"] < 0.05 and metrics["PA-MPJPE"] < 0.05
    assert metrics["MPJPE/action/Directions"] < 0.05 and np.isnan(metrics["MPJPE/action/Eating"])
    # RootNet-style root depths: 100 mm deeper roots move every joint back by ~100 mm, root-relative error stays
    roots = [{"image_id": r.image_id, "root_cam": [0, 0, r.root_depth + 100.0]} for r in recs]
    (tmp_path / "roots.json").write_text(json.dumps(roots))
    cfg2 = config_from_dict({**raw, "BODY3D": {**raw["BODY3D"], "ROOT_DEPTH": str(tmp_path / "roots.json")}})
    metrics2, results2 = task.evaluate(cfg2, Replay(targets["coord"].numpy()), built, torch.device("cpu"))
    # x, y scale with Z (perspective) while root-relative z does not: the similarity alignment removes most of it
    assert 1.0 < metrics2["MPJPE"] < 10.0 and metrics2["PA-MPJPE-similarity"] < 0.3 * metrics2["MPJPE"]
    assert results2[0]["root_depth"] == pytest.approx(recs[0].root_depth + 100.0, abs=1e-2)


def test_bad_configs_name_the_key(synth3d):
    with pytest.raises(ConfigError, match="BODY3D.INPUT_NORM"):
        task_for(_cfg(synth3d)).build(_cfg(synth3d, BODY3D={"INPUT_NORM": "caffe"}))
    with pytest.raises(ConfigError, match="not a 3-D one"):
        Body3DTask().build(_cfg(synth3d, MODEL={"ZOO": "simplebaseline_res18_128x96"}))


def test_predict_poses_3d_on_an_image():
    from posekit import models

    model = models.build("posenet3d_res18_128x128")
    from posekit.codecs.body3d import Body3DCoder
    from posekit.skeletons import get

    coder = Body3DCoder((128, 128), (32, 32), 32)
    image = np.full((240, 320, 3), 120, np.uint8)
    boxes = [[100, 40, 60, 150], [0, 0, 0, 0]]  # the empty box is skipped
    poses = predict_poses_3d(model, image, boxes, coder, flip_pairs=get("coco_pelvis").flip_pairs)
    assert len(poses) == 1 and poses[0].joints_cam.shape == (18, 3) and poses[0].root_from == "box_size"
    assert poses[0].root_depth == pytest.approx(root_depth_from_box(boxes[0], (1500, 1500)))
    assert root_depth_from_box([0, 0, 100, 100], (1000, 1000)) == pytest.approx(20000.0)
    json.dumps(poses[0].to_json())
    given = predict_poses_3d(model, image, boxes[:1], coder, root_depths=[3000.0])
    assert given[0].root_from == "given" and given[0].joints_cam[:, 2].mean() == pytest.approx(3000, abs=1001)


@pytest.mark.slow
def test_fit_a_few_iterations_loss_falls(synth3d, tmp_path):
    from posekit.engine.train import fit

    cfg = _cfg(synth3d, TRAIN={"MAX_ITERS": 12, "BATCH_SIZE_PER_GPU": 6, "LR": 2e-3},
               BODY3D={"OCCLUSION_PROB": 0.0}, DATASET={"SCALE_FACTOR": 0.0, "ROT_FACTOR": 0.0, "FLIP": False})
    torch.manual_seed(0)
    summary = fit(cfg, tmp_path / "run", device="cpu")
    losses = [h["loss"] for h in summary["history"]]  # one epoch = one batch of the 6 images
    assert summary["stop_reason"] == "max_iters" and len(losses) >= 10
    assert np.mean(losses[-3:]) < 0.9 * np.mean(losses[:3])
    assert (tmp_path / "run" / "checkpoint.pth").is_file()


@pytest.mark.slow
def test_cli_train_and_test(synth3d, tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "posekit", "train", str(ROOT / "configs/synth/posenet3d_small.yaml"),
           f"DATASET.ROOT={synth3d}", "--out", str(out), "TRAIN.MAX_ITERS=2", "TRAIN.MAX_MINUTES=0",
           "TRAIN.BATCH_SIZE_PER_GPU=3", "TRAIN.VAL_EVERY_MINUTES=0"]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    weights = out / "last_state.pth"
    assert weights.is_file()
    test = subprocess.run([sys.executable, "-m", "posekit", "test", str(ROOT / "configs/synth/posenet3d_small.yaml"),
                           f"DATASET.ROOT={synth3d}", "--weights", str(weights), "--out", str(tmp_path / "test")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert test.returncode == 0, test.stderr[-2000:]
    assert "MPJPE" in test.stdout
    built = load_body3d(weights)  # what PoseEstimator / posekit infer use for a 3-D model
    image = np.full((160, 160, 3), 90, np.uint8)
    poses = predict_poses_3d(built.model, image, [[40, 20, 60, 120]], built.codec, built.skeleton.flip_pairs)
    assert len(poses) == 1 and np.isfinite(poses[0].joints_cam).all()


def test_camera_and_box_prior_travel_from_the_config_to_inference(synth3d):
    """BODY3D.FOCAL_PER_WIDTH / ROOT_BOX_SIZE reach the spec's codec, and predict_poses_3d uses them when no
    intrinsics are given: Z = f * size / sqrt(box area) with f = focal_per_width * image width."""
    from posekit import models
    from posekit.engine.spec import model_spec
    from posekit.modelspec import build_codec

    cfg = _cfg(synth3d, BODY3D={"FOCAL_PER_WIDTH": 1.15, "ROOT_BOX_SIZE": 1190.0})
    built = task_for(cfg).build(cfg)
    spec_codec = build_codec(model_spec(cfg))  # what a weights file's spec rebuilds at inference
    for coder in (built.codec, spec_codec):
        assert coder.focal_per_width == 1.15 and coder.root_box_size == 1190.0
    model = models.build("posenet3d_res18_128x128")
    image = np.full((192, 256, 3), 120, np.uint8)
    box = [100.0, 40.0, 50.0, 128.0]
    pose = predict_poses_3d(model, image, [box], built.codec)[0]
    f = 1.15 * 256
    assert pose.f == pytest.approx((f, f)) and pose.c == (128.0, 96.0) and "training camera" in pose.camera_from
    assert pose.root_depth == pytest.approx(f * 1190.0 / np.sqrt(50.0 * 128.0))
    given = predict_poses_3d(model, image, [box], built.codec, f=(300.0, 310.0), c=(120.0, 90.0))[0]
    assert given.camera_from == "given" and given.root_depth == pytest.approx(np.sqrt(300 * 310) * 1190 / 80.0)
    plain = task_for(_cfg(synth3d)).build(_cfg(synth3d)).codec  # no camera in the config: the 3DMPPE demo's
    assert plain.camera(640, 480)[:2] == ((1500.0, 1500.0), (320.0, 240.0))
    with pytest.raises(DataError, match="focal length"):
        predict_poses_3d(model, image, [box], built.codec, f=(0.0, 300.0))


@pytest.mark.parametrize("key,value", [("TRAIN_2D_SHARE", 1.0), ("TRAIN_2D_SHARE", 0.0), ("FOCAL", [0.0]),
                                       ("FOCAL_PER_WIDTH", -1.0), ("ROOT_BOX_SIZE", 0.0)])
def test_bad_body3d_camera_and_mix_keys(synth3d, key, value):
    cfg = _cfg(synth3d, BODY3D={key: value})
    with pytest.raises(ConfigError, match=f"BODY3D.{key}"):
        task_for(cfg).build(cfg)


def test_mix_share_and_synth_boxes_at_the_input_aspect(synth3d):
    """A 2-D set mixed in at TRAIN_2D_SHARE of each epoch (have_depth 0); synthetic boxes grown to the input's w / h."""
    ann = str(synth3d / "val" / "annotations.json")
    cfg = _cfg(synth3d, MODEL={"IMAGE_SIZE": [64, 96]}, BODY3D={"TRAIN_2D_FORMAT": "coco", "TRAIN_2D_ANN": ann,
                                                                "TRAIN_2D_SHARE": 0.25})
    task = task_for(cfg)
    built = task.build(cfg)
    ds = task.train_dataset(cfg, built)
    n3, n2 = len(ds.datasets[0]), len(ds.datasets[1])
    assert ds.counts[1] / len(ds) == pytest.approx(0.25, abs=1 / len(ds)) and ds.counts[0] >= n3 and ds.counts[1] >= n2
    hd = [float(ds[i]["have_depth"]) for i in range(len(ds))]
    assert hd == [1.0] * ds.counts[0] + [0.0] * ds.counts[1]
    for rec in ds.datasets[0].records:
        assert rec.bbox[2] / rec.bbox[3] == pytest.approx(64 / 96)
