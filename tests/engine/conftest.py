"""Engine test fixtures: a tiny COCO-format dataset drawn with OpenCV and a micro HRNet config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tiny_coco import make_tiny_coco, micro_config_dict

from posekit.config import Config, config_from_dict


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict[str, Path]:
    """8 training and 6 validation images, one stick figure each."""
    root = tmp_path_factory.mktemp("tiny_coco")
    train_ann, train_img = make_tiny_coco(root / "train", 8, seed=0, start_id=1)
    val_ann, val_img = make_tiny_coco(root / "val", 6, seed=1, start_id=101)
    return {"train_ann": train_ann, "train_images": train_img, "val_ann": val_ann, "val_images": val_img}


@pytest.fixture()
def micro_cfg(tiny_data):
    """Factory: micro_cfg(TRAIN={...}, ...) -> Config."""

    def make(**sections: Any) -> Config:
        return config_from_dict(micro_config_dict(tiny_data, **sections))

    return make


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: tiny networks run ~10x faster than with 2 threads on a busy 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
