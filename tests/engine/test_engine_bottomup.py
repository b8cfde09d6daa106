"""Bottom-up (AE) task in the one engine: build, data, loss, whole-split COCO evaluation without boxes, fit, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from posekit.codecs import associative_embedding as ae
from posekit.config import config_from_dict
from posekit.data.synth import generate
from posekit.engine.tasks import task_for
from posekit.engine.tasks.bottomup import BottomUpTask, evaluate_bottomup
from posekit.evaluation import coco_keypoints
from posekit.skeletons import COCO17

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_ae")
    train = generate(root / "train", 8, max_subjects=4, seed=0, workers=1, image_size=(128, 128))
    val = generate(root / "val", 2, max_subjects=4, seed=1, workers=1, image_size=(128, 128))
    return train, val


def _cfg(synth_data, **train):
    tr, va = synth_data
    return config_from_dict({
        "MODEL": {"ZOO": "ae_hourglass_small_128"}, "WORKERS": 0, "PRINT_FREQ": 1,
        "DATASET": {"FORMAT": "coco", "TRAIN_ANN": tr["ann_file"], "TRAIN_IMAGES": tr["image_root"],
                    "TEST_ANN": va["ann_file"], "TEST_IMAGES": va["image_root"]},
        "TRAIN": {"BATCH_SIZE_PER_GPU": 4, "END_EPOCH": 1, "VAL_EVERY": 0, "OPTIMIZER": "adam", "LR": 2e-3,
                  **train},
        "TEST": {"FLIP_TEST": True}})


def test_task_pieces_build_data_collate_loss_backward(synth_data):
    cfg = _cfg(synth_data)
    task = task_for(cfg)
    assert isinstance(task, BottomUpTask)
    built = task.build(cfg)
    assert built.spec.task == "bottomup" and built.codec.name == "ae" and built.codec.normalize == "unit"
    assert tuple(built.spec.codec_cfg["joint_order"]) == ae.COCO_JOINT_ORDER
    ds = task.train_dataset(cfg, built)
    batch = task.collate([ds[i] for i in range(4)])
    assert batch.inputs.shape == (4, 3, 128, 128)
    assert set(batch.targets) == {"heatmaps", "masks", "refs"}
    model = built.model.train()
    out = model(batch.inputs)
    assert out.shape == (4, 2, 34, 32, 32)
    loss, logs = task.criterion(cfg, built)(out, batch.targets)
    loss.backward()
    assert torch.isfinite(loss) and {"push", "pull", "detection"} <= set(logs)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_official_zoo_entry_has_the_manifest_keys(reference_dir):
    man = json.loads((reference_dir / "manifests/ae_hourglass_nstack4.json").read_text())
    cfg = config_from_dict({"MODEL": {"ZOO": "ae_hourglass_512"}})
    with torch.device("meta"):
        built = task_for(cfg).build(cfg)
    sd = built.model.state_dict()
    assert [(k, list(v.shape)) for k, v in sd.items()] == [(k, s) for k, s, _ in man["state_dict"]]
    assert built.codec.input_size == (512, 512) and built.codec.heatmap_size == (128, 128)
    assert built.codec.sigma == 2.0 and built.codec.out_channels == 34  # channels 34:68 exist but are unused


class PerfectNet(nn.Module):
    """A 'network' that outputs the ideal AE maps of the ground truth of the images it is shown, in order."""

    def __init__(self, outputs: list[np.ndarray]) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.outputs = list(outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.outputs.pop(0))[None, None].repeat(len(x), 1, 1, 1, 1)


def test_whole_split_evaluation_of_perfect_maps_on_real_coco_gives_ap_1(data_dir, tmp_path):
    """Real multi-person COCO photos (the COCO-MINI images on disk whose long side is 640), no boxes: the whole-image
    warp, ideal maps of the GT people at input resolution (stride 1), grouping, the inverse warp, the COCO result
    rules and pycocotools give AP 1.0. An isolated symmetric peak comes back +0.25 px (adjust's tie rule), removed."""
    root = data_dir / "coco/coco_mini_obmutescence"
    data = json.loads((root / "person_keypoints_val2017.json").read_text())
    side = 640
    labelled = {a["image_id"] for a in data["annotations"] if a["num_keypoints"] > 0 and not a.get("iscrowd")}
    images = [im for im in data["images"] if (root / "val2017" / im["file_name"]).exists()
              and max(im["width"], im["height"]) == side and im["width"] % 2 == im["height"] % 2 == 0
              and im["id"] in labelled]  # even sizes: the centred warp moves pixels by whole pixels
    ids = {im["id"] for im in images}
    subset = {**data, "images": images, "annotations": [a for a in data["annotations"] if a["image_id"] in ids]}
    ann = tmp_path / "gt.json"
    ann.write_text(json.dumps(subset))
    codec = ae.AssociativeEmbeddingCodec(input_size=(side, side), heatmap_size=(side, side), sigma=1.0,
                                         refine=False)
    outputs = []
    for img in images:
        w, h = img["width"], img["height"]
        warp = ae.whole_image_transform((w / 2, h / 2), max(w, h), (side, side))[:2]
        kp = np.stack([np.asarray(a["keypoints"], float).reshape(17, 3) for a in subset["annotations"]
                       if a["image_id"] == img["id"] and a["num_keypoints"] > 0 and not a.get("iscrowd")])
        kp[:, :, :2] = ae.kpt_affine(kp[:, :, :2], warp)
        assert (kp[:, :, :2][kp[:, :, 2] > 0] % 1 == 0).all()  # integer GT stays on the pixel grid
        outputs.append(codec.perfect_outputs(kp))
    assert len(images) >= 10
    metrics, results = evaluate_bottomup(PerfectNet(outputs), codec, COCO17, ann, root / "val2017", flip=False)
    assert len(results) == sum(a["num_keypoints"] > 0 and not a.get("iscrowd") for a in subset["annotations"])
    for r in results:
        r["keypoints"] = [v - 0.25 if i % 3 < 2 else v for i, v in enumerate(r["keypoints"])]
    stats = coco_keypoints(ann, results)
    assert metrics["AP"] > 0.9
    assert stats["AP"] == pytest.approx(1.0) and stats["AR"] == pytest.approx(1.0)


@pytest.mark.slow
def test_fit_trains_the_small_ae_and_loss_falls(synth_data, tmp_path):
    from posekit.engine.train import fit

    torch.set_num_threads(2)
    res = fit(_cfg(synth_data, END_EPOCH=4), tmp_path / "run")
    assert res["stop_reason"] == "completed" and res["iteration"] == 8
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    steps = [e for e in log if "loss" in e and "step" in e]
    assert {"push", "pull", "detection"} <= set(steps[0])
    assert steps[-1]["loss"] < steps[0]["loss"]


@pytest.mark.slow
def test_cli_train_then_test_without_boxes(synth_data, tmp_path, capsys):
    from posekit.cli import main

    tr, va = synth_data
    data = [f"DATASET.TRAIN_ANN={tr['ann_file']}", f"DATASET.TRAIN_IMAGES={tr['image_root']}",
            f"DATASET.TEST_ANN={va['ann_file']}", f"DATASET.TEST_IMAGES={va['image_root']}", "WORKERS=0"]
    cfg = str(ROOT / "configs/synth/ae_small.yaml")
    assert main(["train", cfg, *data, "TRAIN.MAX_ITERS=2", "TRAIN.BATCH_SIZE_PER_GPU=2", "TRAIN.VAL_EVERY=0",
                 "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    weights = next(p for p in (tmp_path / "run").glob("*_state.pth"))
    capsys.readouterr()
    assert main(["test", cfg, *data, "--weights", str(weights), "--out", str(tmp_path / "test"), "--json",
                 "--no-progress"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(metrics) >= {"AP", "AR"} and 0.0 <= metrics["AP"] <= 1.0


def test_loss_weights_come_from_the_config(synth_data):
    """LOSS.AE_*_WEIGHT: official 1e-3 / 1e-3 / 1 by default; the total is the weighted sum of the three terms."""
    cfg = _cfg(synth_data)
    task = task_for(cfg)
    built = task.build(cfg)
    official = task.criterion(cfg, built)
    assert (official.push_weight, official.pull_weight, official.detection_weight) == (1e-3, 1e-3, 1.0)
    tr, va = synth_data
    heavy = config_from_dict({"MODEL": {"ZOO": "ae_hourglass_small_128"}, "WORKERS": 0,
                              "LOSS": {"AE_PUSH_WEIGHT": 2.0, "AE_PULL_WEIGHT": 0.25, "AE_DETECTION_WEIGHT": 3.0},
                              "DATASET": {"FORMAT": "coco", "TRAIN_ANN": tr["ann_file"],
                                          "TRAIN_IMAGES": tr["image_root"]}})
    crit = task.criterion(heavy, built)
    ds = task.train_dataset(cfg, built)
    batch = task.collate([ds[i] for i in range(4)])
    with torch.no_grad():
        out = built.model.eval()(batch.inputs)
        push, pull, det = crit.per_stack(out, batch.targets)
        loss, _ = crit(out, batch.targets)
    torch.testing.assert_close(loss, 2.0 * push.mean() + 0.25 * pull.mean() + 3.0 * det.mean())
