"""Shared CLI fixtures: a micro-HRNet config on a few generated synthetic images."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

MICRO_HRNET = {  # official MODEL.EXTRA vocabulary, 8..64 channels: fast on CPU
    "FINAL_CONV_KERNEL": 1,
    "STAGE1": {"NUM_MODULES": 1, "NUM_BRANCHES": 1, "BLOCK": "BOTTLENECK", "NUM_BLOCKS": [1], "NUM_CHANNELS": [8]},
    "STAGE2": {"NUM_MODULES": 1, "NUM_BRANCHES": 2, "BLOCK": "BASIC", "NUM_BLOCKS": [1, 1], "NUM_CHANNELS": [8, 16]},
    "STAGE3": {"NUM_MODULES": 1, "NUM_BRANCHES": 3, "BLOCK": "BASIC", "NUM_BLOCKS": [1, 1, 1],
               "NUM_CHANNELS": [8, 16, 32]},
    "STAGE4": {"NUM_MODULES": 1, "NUM_BRANCHES": 4, "BLOCK": "BASIC", "NUM_BLOCKS": [1, 1, 1, 1],
               "NUM_CHANNELS": [8, 16, 32, 64]},
}


@pytest.fixture(scope="module")
def synth_config(tmp_path_factory) -> Path:
    """A micro-HRNet config on 8 + 4 synthetic images (posekit.data.synth)."""
    synth = pytest.importorskip("posekit.data.synth")
    root = tmp_path_factory.mktemp("cli_synth")
    for split, n, seed in (("train", 8, 0), ("val", 4, 1)):
        synth.generate(root / split, n, seed=seed, workers=1, image_size=(128, 128), max_subjects=1)
    cfg = {
        "OUTPUT_DIR": str(root / "output"), "WORKERS": 0, "PRINT_FREQ": 1,
        "MODEL": {"NAME": "pose_hrnet", "IMAGE_SIZE": [64, 64], "HEATMAP_SIZE": [16, 16], "SIGMA": 1.5,
                  "EXTRA": MICRO_HRNET},
        "DATASET": {"FORMAT": "coco", "SKELETON": "coco", "TEST_SET": "val",
                    "TRAIN_ANN": str(root / "train" / "annotations.json"),
                    "TRAIN_IMAGES": str(root / "train" / "images"),
                    "TEST_ANN": str(root / "val" / "annotations.json"), "TEST_IMAGES": str(root / "val" / "images")},
        "TRAIN": {"BATCH_SIZE_PER_GPU": 4, "END_EPOCH": 1, "LR_STEP": [5], "VAL_EVERY": 1},
        "TEST": {"BATCH_SIZE_PER_GPU": 8, "IN_VIS_THRE": 0.2, "OKS_THRE": 0.9, "IMAGE_THRE": 0.0},
    }
    path = root / "micro.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
