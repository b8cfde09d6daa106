"""What several benchmarks share: the ../shared folder, COCO sample inputs or generated ones, seeded weights."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import torch

COCO_SAMPLES = Path("data") / "coco" / "mmpose"


def shared_dir() -> Path:
    """../shared next to the repository (or $POSEKIT_SHARED)."""
    root = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("POSEKIT_SHARED", root.parent / "shared"))


def coco_inputs(threshold: float) -> tuple[list[Path], dict[str, np.ndarray]] | None:
    """The COCO sample images and their detections {file name: [M,5]}, or None when ../shared is absent."""
    root = shared_dir() / COCO_SAMPLES
    gt, dets = root / "test_coco.json", root / "test_coco_det_AP_H_56.json"
    if not (gt.is_file() and dets.is_file()):
        return None
    from posekit.inference import read_detections

    images = json.loads(gt.read_text())["images"]
    by_id = read_detections(dets, threshold)
    paths = [root / im["file_name"] for im in images]
    boxes = {Path(im["file_name"]).name: by_id.get(int(im["id"]), np.zeros((0, 5))) for im in images}
    return paths, boxes


def generated_inputs(folder: Path, n: int, seed: int = 0) -> tuple[list[Path], dict[str, np.ndarray]]:
    """n blurred-noise 480x640 JPEGs with 3-10 random person-shaped boxes each."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths, boxes = [], {}
    for i in range(n):
        small = rng.integers(0, 256, (60, 80, 3)).astype(np.uint8)
        img = cv2.resize(small, (640, 480), interpolation=cv2.INTER_CUBIC)
        path = folder / f"gen_{i:04d}.jpg"
        cv2.imwrite(str(path), img)
        m = int(rng.integers(3, 11))
        wh = rng.uniform([30, 60], [200, 400], (m, 2))
        xy = rng.uniform(0, 1, (m, 2)) * (np.array([640, 480]) - wh * 0.5)
        boxes[path.name] = np.concatenate([xy, wh, rng.uniform(0.3, 1.0, (m, 1))], axis=1)
        paths.append(path)
    return paths, boxes


def bench_weights(name: str) -> Path:
    """A cached weights file of `name` with seeded O(1) random weights (so ONNX exports are cached too)."""
    from posekit import models
    from posekit.runtime.backends import user_cache_dir

    path = user_cache_dir().parent / "bench" / f"{name}-random-seed0.pth"
    if not path.is_file():
        model = models.build(name).eval()
        randomise(model)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(model.state_dict(), tmp)
        os.replace(tmp, path)
    return path


def randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Seeded He-normal conv weights and random BatchNorm affine/statistics, so outputs are O(1) and diffs mean
    something (the official init gives ~1e-12 outputs)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d | torch.nn.Linear):
                fan_in = m.weight[0].numel() if not isinstance(m, torch.nn.ConvTranspose2d) else \
                    m.weight.shape[0] * m.weight[0, 0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            elif isinstance(m, torch.nn.BatchNorm2d) and m.running_var is not None:
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(m.weight.shape, generator=gen) * 0.5 + 0.5)
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
