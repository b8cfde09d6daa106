"""PRTR task in the one engine: official-vocabulary configs, param groups, colour order, loss, evaluation, fit."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_coco import micro_config_dict

from posekit.config import config_from_dict, load_config
from posekit.engine.tasks import task_for
from posekit.engine.tasks.prtr import PRTRTask
from posekit.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

# The prtr_tiny fixture's classification HRNet (widths 8..64) with a 2+1-layer width-32 transformer.
MICRO_PRTR_EXTRA = {
    "STAGE1": {"NUM_MODULES": 1, "NUM_RANCHES": 1, "BLOCK": "BOTTLENECK", "NUM_BLOCKS": [1], "NUM_CHANNELS": [8]},
    "STAGE2": {"NUM_MODULES": 1, "NUM_BRANCHES": 2, "BLOCK": "BASIC", "NUM_BLOCKS": [1, 1], "NUM_CHANNELS": [8, 16]},
    "STAGE3": {"NUM_MODULES": 1, "NUM_BRANCHES": 3, "BLOCK": "BASIC", "NUM_BLOCKS": [1, 1, 1],
               "NUM_CHANNELS": [8, 16, 32]},
    "STAGE4": {"NUM_MODULES": 1, "NUM_BRANCHES": 4, "BLOCK": "BASIC", "NUM_BLOCKS": [1, 1, 1, 1],
               "NUM_CHANNELS": [8, 16, 32, 64]},
    "ENC_LAYERS": 1, "DEC_LAYERS": 2, "DIM_FEEDFORWARD": 64, "DROPOUT": 0.0, "NHEADS": 2, "NUM_QUERIES": 20,
    "HIDDEN_DIM": 32, "PRE_NORM": False, "AUX_LOSS": True, "NUM_LAYERS": "hrnet", "DILATION": False,
    "POS_EMBED_METHOD": "sine", "EOS_COEF": 0.1, "KPT_LOSS_COEF": 5.0,
}


@pytest.fixture()
def prtr_cfg(tiny_data):
    """Factory: a micro official-vocabulary PRTR config (64x64 crops) on the tiny stick-figure data."""

    def make(**sections):
        raw = micro_config_dict(tiny_data, **sections)
        raw["MODEL"] = {"NAME": "pose_transformer", "TARGET_TYPE": "coord", "IMAGE_SIZE": [64, 64],
                        "HEATMAP_SIZE": [16, 16], "NUM_JOINTS": 17, "EXTRA": MICRO_PRTR_EXTRA,
                        **sections.get("MODEL", {})}
        raw["TRAIN"].update({"OPTIMIZER": "adamw", "LR": 5e-4, "LR_BACKBONE": 1e-4, "CLIP_MAX_NORM": 0.1,
                             "WD": 1e-4, **sections.get("TRAIN", {})})
        return config_from_dict(raw)

    return make


def test_official_yamls_select_the_prtr_task_and_build(reference_dir):
    man = json.loads((reference_dir / "manifests/prtr_res50_384x288.json").read_text())
    paths = sorted((reference_dir / "configs/prtr_repo").glob("*/transformer/*.yaml"))
    assert len(paths) == 16
    for path in paths:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cfg = load_config(path)
        task = task_for(cfg)
        assert task.name == "prtr"
        assert cfg.TRAIN.LR_BACKBONE == (1e-4 if "w32" in path.name else 1e-5)
        assert cfg.DATASET.COLOR_RGB is ("w32" in path.name)
        with torch.device("meta"):
            built = task.build(cfg)
        assert built.spec.input_size == tuple(cfg.MODEL.IMAGE_SIZE) and built.codec.name == "coord"
        assert built.model.class_embed.out_features == cfg.MODEL.NUM_JOINTS + 1
        if path.name == "res50_384x288_adamw_lr1e-4.yaml" and "coco" in str(path):
            assert [(k, list(v.shape)) for k, v in built.model.state_dict().items()] == \
                [(k, s) for k, s, _ in man["state_dict"]]


def test_build_param_groups_and_codec(prtr_cfg):
    cfg = prtr_cfg()
    task = task_for(cfg)
    assert isinstance(task, PRTRTask)
    built = task.build(cfg)
    assert built.codec.name == "coord" and built.codec.input_size == (64, 64)
    assert built.spec.task == "prtr" and built.spec.codec == "coord"
    groups = task.param_groups(cfg, built.model)
    names = {id(p): n for n, p in built.model.named_parameters()}
    assert all("backbone" not in names[id(p)] for p in groups[0]["params"])
    assert all("backbone" in names[id(p)] for p in groups[1]["params"]) and groups[1]["lr"] == 1e-4
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in built.model.parameters() if p.requires_grad)
    # INCLUDE_BG_LOGIT travels in the spec's codec options
    assert task.build(prtr_cfg(TEST={"INCLUDE_BG_LOGIT": True})).codec.include_bg_logit


def test_resnet_param_groups_skip_the_frozen_stem():
    cfg = config_from_dict({"MODEL": {"ZOO": "prtr_res50_384x288"}, "TRAIN": {"LR": 1e-4, "LR_BACKBONE": 1e-5}})
    task = task_for(cfg)
    with torch.device("meta"):
        built = task.build(cfg)
    groups = task.param_groups(cfg, built.model)
    trainable = [p for p in built.model.parameters() if p.requires_grad]
    assert sum(len(g["params"]) for g in groups) == len(trainable) < len(list(built.model.parameters()))


def test_dataset_targets_loss_backward_and_colour_order(prtr_cfg):
    cfg = prtr_cfg()
    task = task_for(cfg)
    built = task.build(cfg)
    ds = task.train_dataset(cfg, built)
    batch = task.collate([ds[i] for i in range(4)])
    assert batch.targets["target"].shape == (4, 17, 2) and batch.targets["target_weight"].shape == (4, 17, 1)
    meta_joints = torch.as_tensor(batch.meta["joints_crop"]) / 64.0
    torch.testing.assert_close(batch.targets["target"], meta_joints.float())
    model = built.model.train()
    loss, logs = task.criterion(cfg, built)(model(batch.inputs), batch.targets)
    loss.backward()
    assert {"loss_ce", "loss_kpts", "class_error", "cardinality_error", "loss_ce_0", "loss_kpts_0"} <= set(logs)
    expected = logs["loss_ce"] + 5 * logs["loss_kpts"] + logs["loss_ce_0"] + 5 * logs["loss_kpts_0"]
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    assert model.query_embed.weight.grad.abs().sum() > 0
    # COLOR_RGB false: the crop becomes BGR pixels normalised with the RGB-ordered statistics (official loader)
    bgr = task.train_dataset(prtr_cfg(DATASET={"COLOR_RGB": False}), built)
    rgb_crop, bgr_crop = ds[0][0], bgr[0][0]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    pixels = rgb_crop * std + mean
    torch.testing.assert_close(bgr_crop, (pixels.flip(0) - mean) / std)


def test_evaluate_scores_the_held_out_split(prtr_cfg):
    cfg = prtr_cfg()
    task = task_for(cfg)
    built = task.build(cfg)
    metrics, results = task.evaluate(cfg, built.model, built, torch.device("cpu"))
    assert set(metrics) >= {"AP", "AP .5", "AR"} and 0.0 <= metrics["AP"] <= 1.0
    assert len(results) == 6 and all(len(r["keypoints"]) == 51 for r in results)
    # flip test off: a different (single-pass) decoding of the same crops
    _, single = task.evaluate(cfg, built.model, built, torch.device("cpu"), flip=False)
    assert not np.allclose([r["keypoints"] for r in results], [r["keypoints"] for r in single])


def test_deformable_and_mismatched_codec_refuse_clearly(prtr_cfg, reference_dir):
    path = reference_dir / "configs/prtr_repo/coco/deformable_transformer/res50_384x288_adamw_lr1e-4.yaml"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = load_config(path)
    with pytest.raises(ConfigError, match="MultiScaleDeformableAttention|deformable"):
        PRTRTask().build(cfg)
    with pytest.raises(ConfigError, match="coord"):
        PRTRTask().build(prtr_cfg(MODEL={"CODEC": "msra"}))


def test_small_config_trains_on_synthetic_data_config():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = load_config(ROOT / "configs/synth/prtr_small.yaml")
    assert cfg.MODEL.ZOO == "prtr_hrnet_tiny_128x96" and task_for(cfg).name == "prtr"


@pytest.mark.slow
def test_fit_loss_falls_and_resume_equals_uninterrupted(prtr_cfg, tmp_path):
    from posekit.engine import checkpoint as ckpt
    from posekit.engine.train import fit

    over = {"END_EPOCH": 3, "LR_STEP": [2]}
    full = fit(prtr_cfg(TRAIN=over), tmp_path / "full")
    assert full["stop_reason"] == "completed" and full["iteration"] == 6
    log = [json.loads(x) for x in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    loss = {e["iteration"]: e["loss"] for e in log if "loss" in e and "iteration" in e and "step" in e}
    assert len(loss) == 6 and loss[6] < loss[1]
    assert all("loss_kpts" in e and "class_error" in e for e in log if "step" in e)

    part = fit(prtr_cfg(TRAIN={**over, "MAX_ITERS": 3}), tmp_path / "split")
    assert part["stop_reason"] == "max_iters"
    done = fit(prtr_cfg(TRAIN=over), tmp_path / "split", resume=True)
    assert done["iteration"] == 6
    a = ckpt.load_training_checkpoint(tmp_path / "full" / "checkpoint.pth")["model"]
    b = ckpt.load_training_checkpoint(tmp_path / "split" / "checkpoint.pth")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_cli_train_then_test_official_vocabulary_with_detection_boxes(tiny_data, tmp_path, capsys):
    import yaml

    from posekit.cli import main

    raw = micro_config_dict(tiny_data)
    raw["MODEL"] = {"NAME": "pose_transformer", "TARGET_TYPE": "coord", "IMAGE_SIZE": [64, 64],
                    "HEATMAP_SIZE": [16, 16], "NUM_JOINTS": 17, "EXTRA": MICRO_PRTR_EXTRA}
    raw["TRAIN"].update({"OPTIMIZER": "adamW", "LR": 5e-4, "LR_BACKBONE": 1e-4, "CLIP_MAX_NORM": 0.1,
                         "END_EPOCH": 1, "VAL_EVERY": 1})
    path = tmp_path / "prtr.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    assert main(["train", str(path), "--out", str(out), "--no-progress", "TRAIN.LR=0.0004"]) == 0
    assert "AP" in capsys.readouterr().out
    weights = out / "model_best.pth"
    assert weights.is_file()
    assert main(["test", str(path), "--weights", str(weights), "--out", str(out), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    val = [e["epoch_end"]["metrics"] for e in log if "epoch_end" in e][0]
    assert metrics == pytest.approx(val)
    # detection boxes (here: the GT boxes as detections, plus a low-score false positive per image)
    gt = json.loads(Path(tiny_data["val_ann"]).read_text())
    dets = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 1.0} for a in gt["annotations"]]
    dets += [{"image_id": a["image_id"], "category_id": 1, "bbox": [1, 1, 20, 30], "score": 0.3}
             for a in gt["annotations"]]
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    assert main(["test", str(path), "--weights", str(weights), "--out", str(out), "--json",
                 "--boxes", str(tmp_path / "dets.json")]) == 0
    results = json.loads((out / "keypoints_val2017_results.json").read_text())
    assert len(results) > len(gt["annotations"])  # the detection boxes were used
