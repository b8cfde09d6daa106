"""MPII in the HRNet json format (annot/valid.json, train.json) -> `PoseRecord`s; gt_valid.mat for PCKh."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from posekit import skeletons
from posekit.data.coco import read_json
from posekit.data.records import PoseRecord, center_size_to_box
from posekit.errors import DataError
from posekit.geometry import PIXEL_STD
from posekit.skeletons import Skeleton


def _image_id(name: str, index: int) -> int:
    stem = Path(name).stem
    return int(stem) if stem.isdigit() else index


def _array(entry: Mapping, key: str, shape: tuple[int, ...], where: str, source: str) -> np.ndarray:
    if key not in entry:
        raise DataError(f"{source}: {where} has no field {key!r}")
    try:
        arr = np.asarray(entry[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{source}: {where} field {key!r} must hold numbers") from None
    if arr.shape != shape:
        raise DataError(f"{source}: {where} field {key!r} has shape {arr.shape}, expected {shape}")
    return arr


def load_mpii(
    json_file: str | os.PathLike, image_root: str | os.PathLike, skeleton: Skeleton | None = None
) -> tuple[list[PoseRecord], Skeleton]:
    """HRNet-format MPII json -> (records, skeleton), as official MPIIDataset._get_db.

    center/scale: c[1] += 15*s and s *= 1.25 (s in 200-px units; size = s * 200 px, square), then c -= 1;
    joints -= 1 (MATLAB 1-based -> 0-based); keypoints[:, 2] = joints_vis. Entries without 'joints' (test
    split) get zero keypoints.
    """
    source = str(json_file)
    skeleton = skeleton or skeletons.MPII16
    k = skeleton.num_keypoints
    data = read_json(json_file)
    if not isinstance(data, list):
        raise DataError(f"{source}: expected a list of people, got {type(data).__name__}")
    root = Path(image_root)
    records = []
    for i, a in enumerate(data):
        where = f"entry [{i}]"
        if not isinstance(a, Mapping):
            raise DataError(f"{source}: {where} must be an object")
        if "image" not in a:
            raise DataError(f"{source}: {where} has no field 'image'")
        c = _array(a, "center", (2,), where, source)
        scale = _array(a, "scale", (), where, source)
        s = np.array([scale, scale], dtype=np.float64)
        if c[0] != -1:
            c[1] = c[1] + 15 * s[1]
            s = s * 1.25
        c = c - 1
        kpts = np.zeros((k, 3), dtype=np.float32)
        if "joints" in a:
            joints = _array(a, "joints", (k, 2), where, source)
            vis = _array(a, "joints_vis", (k,), where, source)
            kpts[:, :2] = joints - 1
            kpts[:, 2] = vis
        size = s * PIXEL_STD
        records.append(PoseRecord(
            image_path=str(root / a["image"]),
            image_id=_image_id(a["image"], i),
            center=c,
            size=size,
            keypoints=kpts,
            ann_id=i,
            area=float(size[0] * size[1]),
            box=center_size_to_box(c, size),
            extra={"image": a["image"]},
        ))
    return records, skeleton
