"""Whole-image bottom-up inference (Associative Embedding): every person of an image, no boxes.

`estimate_bottomup(model, codec, image_rgb, ...) -> list[Pose]` follows test.py `multiperson` of
princeton-vl/pose-ae-train (fixture ae_multiscale.npz): per test scale the whole image is warped (centre = image
centre, side = max(h, w)) onto a black square of side round-up-64(scale * input side), scaled to [0, 1] (or
ImageNet-normalised when the codec says so), run as is and mirrored; the maps are aggregated
(`codecs.associative_embedding.aggregate`), grouped, refined and mapped back (x stride, inverse warp).
Person score = mean detection value before refine; `Pose.keypoints[:, 2]` = detection value of each joint
(1 for joints filled by refine, 0 for joints not found).

`people_to_coco` writes the official COCO results: joints not found take the mean location of the found ones, every
visibility is 1, score = person score. The network is any callable taking NHWC float32 batches (see `network_fn`)
so the path is testable with replayed outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
import torch

from posekit.codecs import associative_embedding as ae
from posekit.codecs import base as codec_base
from posekit.errors import DataError
from posekit.runtime import Pose, as_rgb

IMAGENET_MEAN = np.asarray(codec_base.IMAGENET_MEAN, dtype=np.float32)  # the pipeline's one set of statistics
IMAGENET_STD = np.asarray(codec_base.IMAGENET_STD, dtype=np.float32)

NetFn = Callable[[np.ndarray], np.ndarray]


def normalize_images(batch: np.ndarray, normalize: str = "unit") -> np.ndarray:
    """NHWC RGB in [0, 1] -> what the network expects: unchanged ("unit", official) or ImageNet mean/std."""
    if normalize == "unit":
        return batch
    if normalize == "imagenet":
        return (batch - IMAGENET_MEAN) / IMAGENET_STD
    raise DataError(f"normalize must be 'unit' or 'imagenet', got {normalize!r}")


def network_fn(model: torch.nn.Module, device: torch.device | str | None = None, normalize: str = "unit") -> NetFn:
    """Wrap a torch model: NHWC float32 RGB [0,1] batch -> outputs numpy [N, C, h, w] (last stack of 5-D outputs).

    The model's `input_layout` ("NHWC" for official pose-ae-train checkpoints, else NCHW) decides the layout.
    """
    dev = torch.device(device) if device is not None else next(model.parameters()).device

    def run(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(normalize_images(batch, normalize), dtype=np.float32)).to(dev)
        if getattr(model, "input_layout", "NCHW") != "NHWC":
            x = x.permute(0, 3, 1, 2).contiguous()
        with torch.no_grad():
            out = model(x)
        if isinstance(out, (list, tuple)):
            out = out[-1]
        if out.ndim == 5:
            out = out[:, -1]
        return out.float().cpu().numpy()

    return run


def warp_for_scale(image_rgb: np.ndarray, scale: float, base: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(warped uint8 image [S,S,3], warp [2,3] image -> input, S) for one test scale (official test.py)."""
    h, w = image_rgb.shape[:2]
    side = ae.input_resolution(scale, base)
    warp = ae.whole_image_transform((w / 2, h / 2), max(h, w), (side, side))[:2]
    return cv2.warpAffine(image_rgb, warp, (side, side)), warp, side


def multiscale_outputs(net: NetFn, image_rgb: np.ndarray, scales: Sequence[float], base: int, flip: bool = True
                       ) -> list[tuple[float, np.ndarray, np.ndarray | None, np.ndarray, int]]:
    """Per scale: (scale, output [C,h,w], output of the mirrored input or None, warp, input side)."""
    out = []
    for s in scales:
        warped, warp, side = warp_for_scale(image_rgb, s, base)
        inp = warped.astype(np.float32) / 255
        batch = np.stack([inp, inp[:, ::-1]]) if flip else inp[None]
        res = np.asarray(net(batch))
        if res.ndim == 5:
            res = res[:, -1]
        out.append((float(s), res[0], res[1] if flip else None, warp, side))
    return out


def group_image(per_scale: Sequence[tuple[float, np.ndarray, np.ndarray | None, np.ndarray, int]],
                codec: ae.AssociativeEmbeddingCodec, flip_index: Sequence[int] | np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Aggregate, group, refine, map back: (people [P,K,3+D'] in image px, person scores [P])."""
    agg = ae.aggregate(per_scale, codec.num_keypoints, flip_index, codec.tag_dim)
    k = codec.num_keypoints
    if agg is None:
        return np.zeros((0, k, 3 + codec.tag_dim * 2), dtype=np.float32), np.zeros(0)
    people, scores = codec.group(agg.det, agg.tag)
    if len(people):
        people[:, :, :2] = ae.kpt_affine(people[:, :, :2] * agg.stride, agg.inverse)
    return people, scores


def estimate_bottomup(model: torch.nn.Module | NetFn, codec: ae.AssociativeEmbeddingCodec, image_rgb: np.ndarray,
                      flip_index: Sequence[int] | np.ndarray | None = None, scales: Sequence[float] | None = None,
                      flip: bool = True, device: torch.device | str | None = None,
                      min_score: float = 0.0) -> list[Pose]:
    """Every person in an H x W x 3 uint8 RGB image -> list of Pose (image px), best score first.

    scales: test scales (default codec.test_scales, i.e. single scale [1]; the official multi-scale test is
    ae.OFFICIAL_SCALES = [2, 1, 0.5]); flip: add the mirrored input (official); flip_index: the skeleton's
    left/right permutation (needed with flip).
    """
    img = np.asarray(image_rgb)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise DataError(f"estimate_bottomup: expected an H x W x 3 uint8 RGB image, got {img.shape} {img.dtype}")
    if flip and flip_index is None:
        raise DataError("estimate_bottomup: flip=True needs flip_index (skeleton.flip_index)")
    net = network_fn(model, device, codec.normalize) if isinstance(model, torch.nn.Module) else model
    fidx = np.arange(codec.num_keypoints) if flip_index is None else np.asarray(flip_index)
    per_scale = multiscale_outputs(net, img, scales or codec.test_scales, codec.input_size[0], flip)
    people, scores = group_image(per_scale, codec, fidx)
    poses = []
    for person, score in zip(people, scores):
        if score < min_score or not (person[:, 2] > 0).any():
            continue
        kp = person[:, :3].astype(np.float32)
        found = kp[kp[:, 2] > 0]
        x0, y0 = found[:, :2].min(axis=0)
        x1, y1 = found[:, :2].max(axis=0)
        poses.append(Pose(keypoints=kp, box=np.array([x0, y0, x1 - x0, y1 - y0], dtype=np.float64),
                          score=float(score), box_score=float(score), extra={"tags": person[:, 3:].copy()}))
    poses.sort(key=lambda p: -p.score)
    return poses


def people_to_coco(poses: Sequence[Pose], image_id: int, category_id: int = 1) -> list[dict[str, Any]]:
    """Official COCO results of one image's people (missing joints at the mean found location, v = 1)."""
    out = []
    for p in poses:
        kp = ae.coco_keypoints(p.keypoints)
        out.append({"image_id": int(image_id), "category_id": int(category_id),
                    "keypoints": [round(float(v), 4) for v in kp.reshape(-1)], "score": float(p.score)})
    return out


# Bottom-up people as person boxes (the CLI's --people-from and the Python API share these defaults). The AE
# grouping also returns low-scoring fragments (a few joints whose tags did not join a person) and, rarely, a person
# twice; each would become a box and a duplicate top-down skeleton (`posekit bench bottomup` scores the top-down
# model on these boxes; --people-min-score / --people-iou try other values). Chosen on a separate synthetic split
# (seed 2, 100 images / 183 people; the 15-minute ae_demo_backbone.yaml AE, the demo top-down model): no floor /
# no suppression 331 boxes (81 duplicates), AP 0.660; floor 0.1 + IoU 0.5: 187 boxes, 0 duplicates, AP 0.655;
# floor 0.2: 181 boxes, AP 0.651; floor 0.3: 176, AP 0.641; IoU 0.3 / 0.7 at floor 0.2: AP 0.651 / 0.652.
PEOPLE_MIN_SCORE = 0.1  # people whose score (mean detection value over the 17 joints) is below this give no box
PEOPLE_IOU = 0.5  # of two boxes overlapping more than this (IoU), only the higher-scoring person's is kept


def suppress_duplicates(boxes: np.ndarray, scores: np.ndarray, iou: float = PEOPLE_IOU) -> np.ndarray:
    """Greedy non-maximum suppression of xywh boxes: indices kept, highest score first (iou >= 1 keeps all)."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    for i in order:
        x0, y0, w, h = boxes[i]
        for j in keep:
            xa, ya, wa, ha = boxes[j]
            iw = max(0.0, min(x0 + w, xa + wa) - max(x0, xa))
            ih = max(0.0, min(y0 + h, ya + ha) - max(y0, ya))
            inter = iw * ih
            if inter > iou * (w * h + wa * ha - inter):
                break
        else:
            keep.append(int(i))
    return np.asarray(keep, dtype=np.int64)


def people_boxes(poses: Sequence[Pose], pad: float = 0.1, min_joints: int = 2,
                 image_size: tuple[int, int] | None = None, min_score: float = PEOPLE_MIN_SCORE,
                 iou: float = PEOPLE_IOU) -> tuple[np.ndarray, np.ndarray]:
    """Person boxes for a top-down model from bottom-up people: (boxes xywh [N,4], scores [N]), best first.

    Box = extent of the found joints (score > 0) grown by `pad` x its size on every side, clipped to image_size
    (w, h) when given; people scoring below `min_score` or with fewer than `min_joints` found joints give no box,
    and of boxes overlapping by more than `iou` only the higher-scoring one is kept (one box per person).
    """
    boxes, scores = [], []
    for p in poses:
        kp = np.asarray(p.keypoints, dtype=np.float64)
        found = kp[kp[:, 2] > 0, :2]
        if p.score < min_score or len(found) < min_joints:
            continue
        (x0, y0), (x1, y1) = found.min(axis=0), found.max(axis=0)
        dx, dy = pad * (x1 - x0), pad * (y1 - y0)
        x0, y0, x1, y1 = x0 - dx, y0 - dy, x1 + dx, y1 + dy
        if image_size is not None:
            x0, y0 = max(0.0, x0), max(0.0, y0)
            x1, y1 = min(float(image_size[0] - 1), x1), min(float(image_size[1] - 1), y1)
        if x1 <= x0 or y1 <= y0:
            continue
        boxes.append([x0, y0, x1 - x0, y1 - y0])
        scores.append(p.score)
    b, s = np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(scores, dtype=np.float64)
    keep = suppress_duplicates(b, s, iou)
    return b[keep], s[keep]


def people_boxes_fn(estimator: Any, pad: float = 0.1, min_joints: int = 2, min_score: float = PEOPLE_MIN_SCORE,
                    iou: float = PEOPLE_IOU) -> Callable[..., np.ndarray]:
    """A `boxes=` callable for PoseEstimator.images (path, image, frame) -> [N,5] xywh + score: the people a
    bottom-up PoseEstimator finds serve as the person boxes of a top-down model (photos and videos, no detector);
    score floor and duplicate suppression as `people_boxes`."""
    if getattr(estimator, "needs_boxes", True):
        task = getattr(estimator, "task", "?")
        raise DataError(f"people_boxes_fn: expected a bottom-up estimator (people found on whole images), got task "
                        f"{task!r}")

    def boxes(path: Any, image: np.ndarray, frame: int | None = None) -> np.ndarray:
        b, s = people_boxes(estimator(image), pad=pad, min_joints=min_joints,
                            image_size=(image.shape[1], image.shape[0]), min_score=min_score, iou=iou)
        return np.concatenate([b, s[:, None]], axis=1)

    return boxes


def estimate_images(est: Any, images: Sequence[np.ndarray], boxes: Sequence | None,
                    scores: Sequence | None) -> list[list[Pose]]:
    """The bottom-up path (a PoseEstimator `est`): every person of each whole image (boxes are not used)."""
    fidx = est.skeleton.flip_index if est.flip_test else None
    return [estimate_bottomup(est.model, est.codec, as_rgb(image, f"image {i}"), flip_index=fidx,
                              flip=est.flip_test, device=est.device) for i, image in enumerate(images)]
