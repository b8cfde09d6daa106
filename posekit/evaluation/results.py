"""COCO keypoint results: official rescoring (box score x mean visible keypoint score), OKS-NMS, JSON writer."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from posekit.errors import DataError
from posekit.evaluation.nms import group_by_image, nms_per_image

# Official HRNet/SimpleBaseline TEST defaults.
IN_VIS_THRE = 0.2
OKS_THRE = 0.9
IMAGE_THRE = 0.0
PIXEL_STD = 200.0  # official `scale` unit in results files
NMS_MODES = ("oks", "soft", "none")


def rescore(keypoints: np.ndarray, box_scores: np.ndarray, in_vis_thre: float = IN_VIS_THRE) -> np.ndarray:
    """Official rescoring: box score x mean of the keypoint scores above `in_vis_thre` (0 if none is)."""
    kpts = np.asarray(keypoints)
    s = kpts[:, :, 2]
    # Accumulate joint by joint in the keypoints' dtype, as the official per-joint Python loop does.
    total = np.zeros(s.shape[0], dtype=s.dtype)
    for j in range(s.shape[1]):
        total = total + np.where(s[:, j] > in_vis_thre, s[:, j], s.dtype.type(0))
    count = (s > in_vis_thre).sum(axis=1)
    mean = np.where(count > 0, total / np.maximum(count, 1).astype(s.dtype), s.dtype.type(0))
    return mean.astype(np.float64) * np.asarray(box_scores, dtype=np.float64).reshape(-1)


def _check(name: str, arr: np.ndarray, shape: tuple[int | str, ...]) -> None:
    """Shape check (str entries are free dimensions, named in the message) and finiteness check."""
    if arr.ndim != len(shape) or any(isinstance(s, int) and a != s for a, s in zip(arr.shape, shape)):
        want = "[" + ", ".join(str(s) for s in shape) + "]"
        raise DataError(f"{name}: expected shape {want}, got {list(arr.shape)}")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0].tolist()
        raise DataError(f"{name}: NaN or infinite value at index {bad}")


def make_results(
    keypoints: np.ndarray,
    box_scores: np.ndarray,
    image_ids: np.ndarray,
    areas: np.ndarray | None = None,
    centers: np.ndarray | None = None,
    sizes: np.ndarray | None = None,
    *,
    category_id: int = 1,
    in_vis_thre: float = IN_VIS_THRE,
    oks_thre: float = OKS_THRE,
    image_thre: float = IMAGE_THRE,
    nms: str = "oks",
    sigmas: Sequence[float] | np.ndarray | None = None,
) -> list[dict]:
    """COCO results list from top-down predictions: drop boxes below `image_thre`, rescore, OKS-NMS per image.

    keypoints [N,K,3] (x, y, score) in image pixels; box_scores, image_ids [N]; areas [N] (default: the
    product of `sizes`, the padded box in pixels, as the official `prod(scale*200)`); centers/sizes [N,2] px are
    optional and, when given, written as the official `center` and `scale` (= size / 200) fields.
    """
    if nms not in NMS_MODES:
        raise DataError(f"nms must be one of {NMS_MODES}, got {nms!r}")
    kpts = np.asarray(keypoints)
    n = kpts.shape[0] if kpts.ndim else 0
    _check("keypoints", kpts, ("N", "K", 3))
    box_scores = np.asarray(box_scores, dtype=np.float64).reshape(-1)
    image_ids = np.asarray(image_ids).reshape(-1)
    _check("box_scores", box_scores, (n,))
    _check("image_ids", image_ids, (n,))
    if centers is not None:
        centers = np.asarray(centers, dtype=np.float64)
        _check("centers", centers, (n, 2))
    if sizes is not None:
        sizes = np.asarray(sizes, dtype=np.float64)
        _check("sizes", sizes, (n, 2))
    if areas is None:
        if sizes is None:
            raise DataError("make_results needs `areas` or `sizes` (the box area is the OKS-NMS normaliser)")
        areas = sizes[:, 0] * sizes[:, 1]
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    _check("areas", areas, (n,))

    keep_box = box_scores >= image_thre
    index = np.flatnonzero(keep_box)
    kpts, box_scores, image_ids, areas = kpts[index], box_scores[index], image_ids[index], areas[index]
    scores = rescore(kpts, box_scores, in_vis_thre)

    if nms == "none":
        groups = group_by_image(image_ids)
    else:
        groups = nms_per_image(kpts, scores, areas, image_ids, oks_thre, soft=nms == "soft", sigmas=sigmas)

    results = []
    for group in groups:
        for i in group:
            res = {
                "image_id": int(image_ids[i]),
                "category_id": int(category_id),
                "keypoints": [float(v) for v in kpts[i].reshape(-1)],
                "score": float(scores[i]),
            }
            if centers is not None:
                res["center"] = [float(v) for v in centers[index[i]]]
            if sizes is not None:
                res["scale"] = [float(v) / PIXEL_STD for v in sizes[index[i]]]
            results.append(res)
    return results


def write_results(results: list[dict], path: str | os.PathLike) -> Path:
    """Write a COCO results list as JSON (temp file then rename); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(results, f)
    os.replace(tmp, path)
    return path
