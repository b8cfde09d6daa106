"""A tiny COCO-format keypoint dataset drawn with OpenCV (stick figures), for end-to-end engine tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from posekit.skeletons import COCO17

# Frontal stick figure in a unit box (x, y); the person's left side is on the image right.
TEMPLATE = np.array([
    [0.50, 0.08], [0.55, 0.05], [0.45, 0.05], [0.60, 0.07], [0.40, 0.07],  # nose, eyes, ears
    [0.68, 0.22], [0.32, 0.22], [0.78, 0.38], [0.22, 0.38], [0.82, 0.52], [0.18, 0.52],  # arms
    [0.62, 0.55], [0.38, 0.55], [0.64, 0.76], [0.36, 0.76], [0.65, 0.96], [0.35, 0.96],  # legs
])
LEFT = {1, 3, 5, 7, 9, 11, 13, 15}


def draw_person(image: np.ndarray, kpts: np.ndarray) -> None:
    """Limbs in side-specific colours (so left/right and the flip test are learnable) and joint dots."""
    for a, b in COCO17.links:
        color = (230, 80, 60) if (a in LEFT or b in LEFT) else (60, 120, 230)
        if a in LEFT and b not in LEFT and b > 4:
            color = (60, 200, 80)
        cv2.line(image, tuple(int(v) for v in kpts[a, :2]), tuple(int(v) for v in kpts[b, :2]), color, 3, cv2.LINE_AA)
    for j, (x, y, v) in enumerate(kpts):
        if v > 0:
            cv2.circle(image, (int(x), int(y)), 3, (255, 255, 255) if j in LEFT else (255, 230, 0), -1)


def make_tiny_coco(folder: Path, num_images: int = 12, size: tuple[int, int] = (96, 128), seed: int = 0,
                   start_id: int = 1) -> tuple[Path, Path]:
    """Write folder/annotations.json + folder/images/*.png (one person per image); returns (json, images)."""
    rng = np.random.default_rng(seed)
    images_dir = folder / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    w, h = size
    images, annotations = [], []
    for i in range(num_images):
        image_id = start_id + i
        img = np.full((h, w, 3), 40, np.uint8)
        img[:] = rng.integers(20, 80, size=3)
        bw, bh = rng.uniform(0.45, 0.7) * w, rng.uniform(0.6, 0.85) * h
        x0, y0 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        pts = TEMPLATE + rng.normal(0, 0.025, TEMPLATE.shape)
        kpts = np.zeros((17, 3), np.float64)
        kpts[:, 0] = x0 + pts[:, 0] * bw
        kpts[:, 1] = y0 + pts[:, 1] * bh
        kpts[:, 2] = 2
        kpts[rng.random(17) < 0.05, 2] = 0  # a few unlabelled joints
        kpts[kpts[:, 2] == 0, :2] = 0
        draw_person(img, kpts)
        name = f"{image_id:06d}.png"
        cv2.imwrite(str(images_dir / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        vis = kpts[:, 2] > 0
        xs, ys = kpts[vis, 0], kpts[vis, 1]
        box = [float(xs.min() - 4), float(ys.min() - 4), float(np.ptp(xs) + 8), float(np.ptp(ys) + 8)]
        images.append({"id": image_id, "file_name": name, "width": w, "height": h})
        annotations.append({"id": 1000 + image_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                            "bbox": box, "area": box[2] * box[3], "num_keypoints": int(vis.sum()),
                            "keypoints": [float(v) for v in kpts.reshape(-1)]})
    categories = [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(COCO17.keypoints),
                   "skeleton": [[a + 1, b + 1] for a, b in COCO17.links]}]
    ann = folder / "annotations.json"
    ann.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return ann, images_dir


# Official-vocabulary HRNet with 8..64 channels and one block per branch: fast enough for CPU tests.
MICRO_HRNET_EXTRA = {
    "FINAL_CONV_KERNEL": 1,
    "STAGE1": {"NUM_MODULES": 1, "NUM_BRANCHES": 1, "BLOCK": "BOTTLENECK", "NUM_BLOCKS": [1], "NUM_CHANNELS": [8]},
    "STAGE2": {"NUM_MODULES": 1, "NUM_BRANCHES": 2, "BLOCK": "BASIC", "NUM_BLOCKS": [1, 1], "NUM_CHANNELS": [8, 16]},
    "STAGE3": {"NUM_MODULES": 1, "NUM_BRANCHES": 3, "BLOCK": "BASIC", "NUM_BLOCKS": [1, 1, 1],
               "NUM_CHANNELS": [8, 16, 32]},
    "STAGE4": {"NUM_MODULES": 1, "NUM_BRANCHES": 4, "BLOCK": "BASIC", "NUM_BLOCKS": [1, 1, 1, 1],
               "NUM_CHANNELS": [8, 16, 32, 64]},
}


def micro_config_dict(data: dict[str, Path], **sections: Any) -> dict[str, Any]:
    """A micro-HRNet (64x64 input) config dict on the tiny data; `sections` update its sections."""
    raw: dict[str, Any] = {
        "WORKERS": 0,
        "PRINT_FREQ": 1,
        "MODEL": {"NAME": "pose_hrnet", "IMAGE_SIZE": [64, 64], "HEATMAP_SIZE": [16, 16], "SIGMA": 1.5,
                  "EXTRA": MICRO_HRNET_EXTRA},
        "DATASET": {"FORMAT": "coco", "TRAIN_ANN": str(data["train_ann"]), "TRAIN_IMAGES": str(data["train_images"]),
                    "TEST_ANN": str(data["val_ann"]), "TEST_IMAGES": str(data["val_images"]),
                    "SCALE_FACTOR": 0.25, "ROT_FACTOR": 30, "PROB_HALF_BODY": 0.3},
        "TRAIN": {"BATCH_SIZE_PER_GPU": 4, "END_EPOCH": 2, "LR": 0.001, "LR_STEP": [1], "VAL_EVERY": 0},
        "TEST": {"BATCH_SIZE_PER_GPU": 8, "OKS_THRE": 0.9, "IN_VIS_THRE": 0.2, "IMAGE_THRE": 0.0},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return raw
