"""`posekit bench learn3d`: variants on a tiny generated set (JSON, table, pictures), and the root-from-box math."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from posekit.bench.learn3d import fit_root_box_size, variant_overrides, with_root_depth
from posekit.camera import cam2pixel
from posekit.cli import main
from posekit.errors import ConfigError


def test_moving_the_root_depth_keeps_every_pixel():
    rng = np.random.default_rng(0)
    cam = np.concatenate([rng.uniform(-500, 500, (3, 18, 2)), rng.uniform(3000, 6000, (3, 18, 1))], axis=2)
    f, c = np.array([[220.0, 230.0]] * 3), np.array([[95.5, 90.0]] * 3)
    old, new = cam[:, 17, 2].copy(), np.array([2500.0, 4000.0, 8000.0])
    moved = with_root_depth(cam, old, new, f, c)
    for n in range(3):
        np.testing.assert_allclose(cam2pixel(moved[n], f[n], c[n])[:, :2], cam2pixel(cam[n], f[n], c[n])[:, :2],
                                   atol=1e-6)
        np.testing.assert_allclose(moved[n, :, 2] - cam[n, :, 2], new[n] - old[n], atol=1e-6)


def test_box_prior_fit_recovers_a_known_size():
    class Rec:
        def __init__(self, i: int, z: float, f: float) -> None:
            self.ann_id, self.f = i, np.array([f, f])
            self.joints_cam = np.zeros((18, 3))
            self.joints_cam[17, 2] = z

    size = 1190.0  # mm: a box of area A at depth Z under focal f satisfies Z = f * size / sqrt(A)
    recs = [Rec(i, z, f) for i, (z, f) in enumerate([(3000.0, 200.0), (5000.0, 250.0), (4000.0, 300.0)])]
    side = {r.ann_id: r.f[0] * size / r.joints_cam[17, 2] for r in recs}
    boxes = {i: np.array([0.0, 0.0, s / 2, s * 2]) for i, s in side.items()}  # area s^2, any aspect
    assert fit_root_box_size(recs, boxes, 17) == pytest.approx(size)


def test_variants_name_their_overrides():
    ov = variant_overrides("mixed", "w.pth", "d")
    assert "MODEL.PRETRAINED=w.pth" in ov and "BODY3D.TRAIN_2D_FORMAT=coco" in ov
    assert any(o.startswith("BODY3D.TRAIN_2D_ANN=") and o.endswith("train2d/annotations.json") for o in ov)
    assert variant_overrides("scratch", "w.pth", "d") == ["MODEL.PRETRAINED=", "BODY3D.TRAIN_2D_FORMAT="]
    with pytest.raises(ConfigError, match="unknown learn3d variant"):
        variant_overrides("bogus", "w.pth", "d")


@pytest.mark.slow
def test_bench_learn3d_variants_json_table_pictures(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from posekit import models

    init = tmp_path / "demo_like.pth"  # a 2-D heatmap HRNet checkpoint (untrained: this checks the plumbing)
    torch.save({"state_dict": models.build("hrnet_w16_tiny_128x96").state_dict()}, init)
    args = ["bench", "learn3d", "--variants", "scratch,mixed", "--minutes", "1", "--every", "0.02",
            "--num-train", "8", "--num-2d", "8", "--num-val", "4", "--init-2d", str(init), "--h36m", "none",
            "--out", str(tmp_path / "out"), "--data", str(tmp_path / "data"), "--quiet", "TRAIN.MAX_ITERS=4",
            "TRAIN.BATCH_SIZE_PER_GPU=4", "TRAIN.CPU_AMP=false"]
    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    scratch, mixed = result["runs"]
    assert scratch["variant"] == "scratch" and mixed["variant"] == "mixed"
    assert scratch["iterations"] == mixed["iterations"] == 4 and scratch["crops_per_s"] > 0
    for r in (scratch, mixed):
        assert set(r["gt_root"]) >= {"MPJPE", "PA-MPJPE"} and r["box_root"]["root_error"] > 0
        assert set(r["per_joint_MPJPE"]) >= {"pelvis", "left_wrist"} and r["per_joint_MPJPE"]["pelvis"] == 0
        assert r["pictures"] and all(Path(p).is_file() for p in r["pictures"])
    log = [json.loads(ln) for ln in (Path(mixed["out_dir"]) / "log.jsonl").read_text().splitlines()]
    assert any("pretrained" in e for e in log)  # the 2-D backbone was loaded and reported
    assert main(args) == 0  # the readable form, data reused
    text = capsys.readouterr().out
    assert "mean pose" in text and "root error" in text and "per joint (mixed" in text
