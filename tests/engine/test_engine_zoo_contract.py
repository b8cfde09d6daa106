"""Zoo contract (timm style): every registered model builds, trains one step through its task's real data path and
the engine's loss (finite loss, gradients reach the first layer), and its eval-mode output decodes with its codec.

Inputs are a quarter of the zoo input size (rounded to a multiple of 32 where the network needs it) on a tiny
generated synthetic set, so the whole zoo runs in CPU seconds per model; human models are trained on the COCO-17
skeleton of the synthetic people (heads re-sized), animal models on the synthetic quadrupeds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from posekit import models
from posekit.config import config_from_dict
from posekit.engine.tasks import get_task

NAMES = models.names()


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from posekit.data.synth import generate

    root = tmp_path_factory.mktemp("zoo")
    generate(root / "human" / "train", 2, kind="human", seed=0, image_size=(192, 192))
    generate(root / "quadruped" / "train", 2, kind="quadruped", seed=0, image_size=(192, 192))
    return {"human": root / "human", "quadruped": root / "quadruped"}


def _small(size: tuple[int, int], name: str) -> list[int]:
    if name.startswith("grmi"):  # G-RMI crops are n * 32 + 1 px
        return [((s - 1) // 4) // 32 * 32 + 1 if (s - 1) // 4 >= 32 else 65 for s in size]
    multiple = 128 if name.startswith(("ae_", "hourglass")) else 32
    return [max(multiple, (s // 4) // multiple * multiple) for s in size]


def _config(name: str, synth: dict[str, Path]) -> object:
    e = models.entry(name)
    animal = e.skeleton == "ap10k"
    root = synth["quadruped" if animal else "human"] / "train"
    dataset = {"FORMAT": "synth3d" if e.task == "body3d" else "coco", "TRAIN_ANN": str(root / "annotations.json"),
               "TRAIN_IMAGES": str(root / "images"), "TEST_ANN": str(root / "annotations.json"),
               "TEST_IMAGES": str(root / "images"), "ROT_FACTOR": 0.0, "SCALE_FACTOR": 0.0}
    if e.task != "body3d":
        dataset["SKELETON"] = "ap10k" if animal else "coco"
    w, h = _small(e.input_size, name)
    return config_from_dict({"WORKERS": 0, "MODEL": {"ZOO": name, "IMAGE_SIZE": [w, h]}, "DATASET": dataset,
                             "TRAIN": {"BATCH_SIZE_PER_GPU": 2, "SEED": 0}}, source=f"<zoo contract {name}>")


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_zoo_model_trains_one_step_and_decodes(name: str, synth: dict[str, Path]) -> None:
    cfg = _config(name, synth)
    task = get_task(models.entry(name).task)
    torch.manual_seed(0)
    built = task.build(cfg)
    ds = task.train_dataset(cfg, built)
    batch = task.collate([ds[i] for i in range(min(2, len(ds)))])
    model = built.model.train()
    loss, logs = task.criterion(cfg, built)(model(batch.inputs), batch.targets)
    assert loss.ndim == 0 and torch.isfinite(loss), f"{name}: loss {loss}"
    assert all(np.isfinite(v) for v in logs.values() if isinstance(v, float))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads), f"{name}: no gradient"
    model.eval()
    with torch.no_grad():
        out = model(batch.inputs)
    if task.name == "topdown":
        coords, scores = built.codec.decode(out)
        assert coords.shape == (len(batch.inputs), built.codec.num_keypoints, 2)
        assert scores.shape == (len(batch.inputs), built.codec.num_keypoints)
        assert np.isfinite(coords).all()
