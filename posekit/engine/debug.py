"""DEBUG.* pictures of training batches: crops with GT / predicted joints, and per-joint heatmap rows (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

MAX_CROPS = 16
MAX_HEATMAP_ROWS = 4


def crops_to_rgb(crops: torch.Tensor) -> list[np.ndarray]:
    """Normalised [N,3,H,W] crops -> list of H x W x 3 uint8 RGB."""
    from posekit.data.topdown import denormalize_crop

    return [denormalize_crop(c) for c in crops[:MAX_CROPS]]


def draw_joints(image: np.ndarray, joints: np.ndarray, visible: np.ndarray, links: Any,
                color: tuple[int, int, int]) -> np.ndarray:
    """Joints [K,2] (crop px) as dots and links on a copy of an RGB image."""
    out = np.ascontiguousarray(image.copy())
    pts = np.round(np.asarray(joints, np.float64)).astype(int)
    for a, b in links:
        if visible[a] > 0 and visible[b] > 0:
            cv2.line(out, tuple(pts[a]), tuple(pts[b]), color, 1, cv2.LINE_AA)
    for p, v in zip(pts, visible):
        if v > 0:
            cv2.circle(out, tuple(p), 2, (255, 0, 0), -1, cv2.LINE_AA)
    return out


def grid(images: list[np.ndarray], ncol: int = 8, pad: int = 2) -> np.ndarray:
    """Same-size RGB images tiled row by row with a black border."""
    h, w = images[0].shape[:2]
    nrow = (len(images) + ncol - 1) // ncol
    out = np.zeros((nrow * (h + pad) + pad, min(ncol, len(images)) * (w + pad) + pad, 3), np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, ncol)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = img
    return out


def heatmap_rows(images: list[np.ndarray], maps: np.ndarray) -> np.ndarray:
    """One row per sample: the crop shrunk to heatmap size, then each joint's map over it (JET colours)."""
    h, w = maps.shape[2:]
    rows = []
    for img, m in zip(images[:MAX_HEATMAP_ROWS], maps[:MAX_HEATMAP_ROWS]):
        small = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        tiles = [small]
        for k in range(m.shape[0]):
            heat = (np.clip(m[k], 0, 1) * 255).astype(np.uint8)
            color = cv2.cvtColor(cv2.applyColorMap(heat, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
            tiles.append((0.3 * small + 0.7 * color).astype(np.uint8))
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


def _write(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def save_debug_images(cfg: Any, folder: Path, prefix: str, crops: torch.Tensor, target: torch.Tensor,
                      output: torch.Tensor, meta: dict[str, Any], codec: Any, skeleton: Any) -> list[Path]:
    """Write the DEBUG.SAVE_* pictures of one batch; returns the files written."""
    dbg = cfg.DEBUG
    images = crops_to_rgb(crops.detach().cpu())
    written: list[Path] = []
    links = skeleton.links
    if dbg.SAVE_BATCH_IMAGES_GT:
        gt = [draw_joints(im, j, v, links, (0, 255, 0))
              for im, j, v in zip(images, meta["joints_crop"], meta["visible_crop"])]
        written.append(folder / f"{prefix}_gt.png")
        _write(written[-1], grid(gt))
    out = output.detach().float().cpu()
    if dbg.SAVE_BATCH_IMAGES_PRED:
        coords, scores = codec.decode(out[:MAX_CROPS].numpy())
        pred = [draw_joints(im, j, (s > 0.2).astype(np.float32), links, (255, 255, 0))
                for im, j, s in zip(images, coords, scores)]
        written.append(folder / f"{prefix}_pred.png")
        _write(written[-1], grid(pred))
    k = codec.num_keypoints
    if dbg.SAVE_HEATMAPS_GT and target.shape[1] == k:
        written.append(folder / f"{prefix}_hm_gt.png")
        _write(written[-1], heatmap_rows(images, target.detach().float().cpu().numpy()))
    if dbg.SAVE_HEATMAPS_PRED and out.shape[1] == k:
        written.append(folder / f"{prefix}_hm_pred.png")
        _write(written[-1], heatmap_rows(images, out.numpy()))
    return written
