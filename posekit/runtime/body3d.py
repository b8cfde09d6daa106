"""3-D inference path: person boxes -> 3DMPPE PoseNet crops -> camera-space joints (`Pose3D`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from posekit.codecs.body3d import (
    BBOX_3D_DEPTH,
    DEMO_FOCAL,
    Body3DCoder,
    flip_test_merge,
    normalize_input,
    output_to_camera,
    patch_transform,
    process_bbox,
)
from posekit.errors import DataError
from posekit.runtime import Pose, as_rgb, split_boxes

__all__ = ["DEMO_FOCAL", "Pose3D", "estimate_3d", "predict_poses_3d", "root_depth_from_box"]


@dataclass
class Pose3D:
    """One person's 3-D pose: camera-space joints (mm), image joints (px), the box and the root depth used."""

    joints_cam: np.ndarray  # [J, 3] float32 mm
    joints_img: np.ndarray  # [J, 2] float32 px
    box: np.ndarray  # [4] xywh as given
    root_depth: float
    root_from: str  # "given" | "box_size"
    f: tuple[float, float] = (DEMO_FOCAL, DEMO_FOCAL)  # the intrinsics used (px)
    c: tuple[float, float] = (0.0, 0.0)
    camera_from: str = "given"  # "given" or where the default came from (Body3DCoder.camera)

    def to_json(self) -> dict[str, Any]:
        """Plain containers for JSON output."""
        return {"joints_cam": np.round(self.joints_cam.astype(np.float64), 2).tolist(),
                "joints_img": np.round(self.joints_img.astype(np.float64), 2).tolist(),
                "box": [float(v) for v in self.box], "root_depth": float(self.root_depth), "root_from": self.root_from,
                "camera": {"f": [float(v) for v in self.f], "c": [float(v) for v in self.c], "from": self.camera_from}}


def root_depth_from_box(box: Sequence[float], f: Sequence[float], real_area: float = BBOX_3D_DEPTH ** 2) -> float:
    """Z = sqrt(fx * fy * A_real / A_box): the depth at which a person of A_real mm^2 fills the box (RootNet prior)."""
    area = max(float(box[2]) * float(box[3]), 1.0)
    return math.sqrt(float(f[0]) * float(f[1]) * real_area / area)


@torch.no_grad()
def predict_poses_3d(model: nn.Module, image_rgb: np.ndarray, boxes: Sequence[Sequence[float]] | np.ndarray,
                     coder: Body3DCoder, flip_pairs: Sequence[Sequence[int]] | None = None,
                     f: Sequence[float] | None = None, c: Sequence[float] | None = None,
                     root_depths: Sequence[float] | None = None, device: str | torch.device | None = None
                     ) -> list[Pose3D]:
    """3-D poses of the people in `boxes` (xywh px) of an H x W x 3 uint8 RGB image; flip test when flip_pairs.

    Intrinsics: `f` (fx, fy) and `c` (cx, cy) px when given, else `coder.camera` (the model's BODY3D.FOCAL, or its
    training camera's focal per image width, or the 3DMPPE demo's 1500 px; the image centre). Root depth: given per
    box, else from the box size with the model's BODY3D.ROOT_BOX_SIZE prior.
    """
    import cv2

    img = np.asarray(image_rgb)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise DataError(f"predict_poses_3d: expected an H x W x 3 uint8 RGB image, got {img.shape} {img.dtype}")
    h, w = img.shape[:2]
    default_f, default_c, camera_from = coder.camera(w, h)
    camera_from = "given" if f is not None else camera_from
    f = np.array(f if f is not None else default_f, dtype=np.float32).reshape(-1)
    c = np.array(c if c is not None else default_c, dtype=np.float32).reshape(-1)
    if f.shape != (2,) or c.shape != (2,) or not (np.all(np.isfinite(f)) and np.all(f > 0) and np.all(np.isfinite(c))):
        raise DataError(f"predict_poses_3d: the focal length must be 2 px values > 0 and the principal point 2 "
                        f"finite px values, got f={f.tolist()} c={c.tolist()}")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if root_depths is not None and len(root_depths) != len(boxes):
        raise DataError(f"predict_poses_3d: {len(root_depths)} root depths for {len(boxes)} boxes")
    kept, crops, processed = [], [], []
    for i, box in enumerate(boxes):
        pb = process_bbox(box, w, h, coder.aspect_ratio)
        if pb is None:
            continue
        m = patch_transform((pb[0] + pb[2] / 2, pb[1] + pb[3] / 2), pb[2:4], 1.0, 0.0, coder.input_size)
        crop = cv2.warpAffine(img, m, coder.input_size, flags=cv2.INTER_LINEAR)
        crops.append(normalize_input(crop, coder.input_norm))
        kept.append(i)
        processed.append(pb)
    if not kept:
        return []
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        x = torch.from_numpy(np.stack(crops)).to(device)
        coords = model(x).float().cpu().numpy()
        if flip_pairs is not None:
            coords = flip_test_merge(coords, model(torch.flip(x, dims=(3,))).float().cpu().numpy(),
                                     coder.output_size[0], flip_pairs)
    finally:
        model.train(was_training)
    area = coder.root_box_size ** 2
    roots = [float(root_depths[i]) if root_depths is not None else root_depth_from_box(boxes[i], f, area)
             for i in kept]
    pb = np.stack(processed)
    n = len(kept)
    cam = output_to_camera(coords.astype(np.float32), pb, np.array(roots, np.float32), np.tile(f, (n, 1)),
                           np.tile(c, (n, 1)), coder.output_size, coder.depth_dim, coder.bbox_3d_depth)
    ow, oh = coder.output_size
    img_xy = np.stack([coords[:, :, 0] / ow * pb[:, 2:3] + pb[:, 0:1], coords[:, :, 1] / oh * pb[:, 3:4] + pb[:, 1:2]],
                      axis=2)
    return [Pose3D(joints_cam=cam[k].astype(np.float32), joints_img=img_xy[k].astype(np.float32), box=boxes[i],
                   root_depth=roots[k], root_from="given" if root_depths is not None else "box_size",
                   f=(float(f[0]), float(f[1])), c=(float(c[0]), float(c[1])), camera_from=camera_from)
            for k, i in enumerate(kept)]


def estimate_3d(est: Any, images: Sequence[np.ndarray], boxes: Sequence | None,
                scores: Sequence | None, cameras: Sequence | None = None) -> list[list[Pose]]:
    """The 3-D path (a PoseEstimator `est`), 3DMPPE: per box, image joints as keypoints (score 1) and camera-space
    joints (mm) in Pose.extra.

    Camera: cameras[i] (per image: `est.cameras` by file name in `images()`), else `est.camera` ((fx, fy), (cx, cy)
    or None = the image centre), else the model's own default (Body3DCoder.camera: its BODY3D.FOCAL, or the focal
    per image width of the camera it was trained with, or the 3DMPPE demo's 1500 px). Root depth from the box size
    with the model's BODY3D.ROOT_BOX_SIZE prior. Without boxes the whole image is taken as one person's box
    (extra["box_from"] = "whole image").
    """
    out: list[list[Pose]] = []
    for i, image in enumerate(images):
        image = as_rgb(image, f"image {i}")
        cam = cameras[i] if cameras is not None and cameras[i] is not None else est.camera
        f, c = cam if cam is not None else (None, None)
        given = None if boxes is None else boxes[i]
        b, bs = split_boxes(given, None if scores is None else scores[i], image, f"image {i}")
        pairs = est.skeleton.flip_pairs if est.flip_test else None
        poses3d = predict_poses_3d(est.model, image, b, est.codec, flip_pairs=pairs, f=f, c=c, device=est.device)
        score_of = {tuple(np.round(box, 6)): float(s) for box, s in zip(b, bs)}
        people = []
        for p3 in poses3d:
            kp = np.concatenate([p3.joints_img, np.ones((len(p3.joints_img), 1), np.float32)], axis=1)
            s = score_of.get(tuple(np.round(np.asarray(p3.box, np.float64), 6)), 1.0)
            people.append(Pose(keypoints=kp.astype(np.float32), box=np.asarray(p3.box, np.float32), score=s,
                               box_score=s, extra={"joints_cam": p3.joints_cam, "root_depth": p3.root_depth,
                                                   "root_from": p3.root_from, "focal": p3.f, "principal_point": p3.c,
                                                   "camera_from": p3.camera_from,
                                                   "box_from": "whole image" if given is None else "given"}))
        out.append(people)
    return out
