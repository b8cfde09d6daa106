"""Bottom-up (Associative Embedding) dataset: whole images -> input, multi-person heatmaps, loss mask, tag refs.

Follows pose-ae-train data/coco_pose/dp.py, for any COCO-format keypoint file (COCO, CrowdPose, the synthetic
multi-person images of `posekit synth`, animals): people come from `posekit.data.coco.load_coco` (same cleaning),
crowd regions from the file's `iscrowd` annotations.

Per sample (training), drawn from a Generator seeded by (seed, epoch, index) in the official order:
rotation U(-rf, rf) degrees; scale factor U(1-sf, 1+sf) of the side max(h, w); the centre (image centre) moves by a
random integer in [-t*side, t*side) px per axis (official t = 0.2, i.e. 40 px per 200-px unit); flip with p = 0.5;
colour: hue +-72 degrees, saturation x U(0.5, 1.5) clipped to [0, 1], brightness +-0.3, contrast x U(0.5, 1.5)
around the per-pixel channel mean, clipped to [0, 1]. The same whole-image transform (`whole_image_transform`) is
built at the input and the heatmap resolution; keypoints go through the heatmap-resolution one (official).
Flip (official convention): image and mask mirrored, joints permuted by the skeleton's flip index and x -> w_map - x
(not w_map - 1 - x). Mask: 1 outside crowd regions (and optionally outside people without labelled keypoints),
warped to the heatmap (bilinear, zero border: outside the image is masked too) and thresholded at 0.5.
Input: RGB / 255 (official, codec.normalize = "unit") or ImageNet-normalised ("imagenet"), [3, H, W] float32.

Deliberate differences: any skeleton (flip index from its names) and image size; unlabelled people can be masked
(`mask_unlabelled`, default off as official); more than max_people people still get heatmaps (see the codec).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch

from posekit.codecs import base as codec_base
from posekit.codecs.associative_embedding import AssociativeEmbeddingCodec, kpt_affine, whole_image_transform
from posekit.data.coco import load_coco, read_json
from posekit.data.images import ImageReader
from posekit.data.seeded import SeededDataset
from posekit.errors import ConfigError, DataError
from posekit.skeletons import Skeleton

IMAGENET_MEAN = np.asarray(codec_base.IMAGENET_MEAN, dtype=np.float32)
IMAGENET_STD = np.asarray(codec_base.IMAGENET_STD, dtype=np.float32)


@dataclass
class BottomUpAugment:
    """Whole-image augmentation; defaults are the official pose-ae-train values."""

    scale_factor: float = 0.25  # side x U(1 - sf, 1 + sf)
    rotation: float = 30.0  # degrees, U(-r, r)
    translate: float = 0.2  # centre shift, fraction of the side
    flip: bool = True
    flip_prob: float = 0.5
    color: bool = True
    hue: float = 0.2  # fraction of 360 degrees
    saturation: float = 0.5
    brightness: float = 0.3
    contrast: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.scale_factor < 1 or self.rotation < 0 or self.translate < 0:
            raise ConfigError(f"BottomUpAugment: scale_factor must be in [0, 1) and rotation/translate >= 0, got "
                              f"{self.scale_factor}, {self.rotation}, {self.translate}")

    @classmethod
    def none(cls) -> BottomUpAugment:
        """No augmentation."""
        return cls(scale_factor=0.0, rotation=0.0, translate=0.0, flip=False, color=False)


@dataclass
class ImageRecord:
    """One image: its labelled people [P, K, 3] (image px, v) and its crowd / unlabelled regions."""

    image_path: str
    image_id: int
    keypoints: np.ndarray
    width: int
    height: int
    crowd: list[Any] = field(default_factory=list)  # COCO segmentations of iscrowd annotations
    unlabelled: list[Any] = field(default_factory=list)  # segmentations of people without labelled keypoints


def _segmentation_mask(segm: Any, h: int, w: int) -> np.ndarray:
    """A COCO segmentation (polygons, RLE or compressed RLE) -> uint8 mask [h, w]."""
    from pycocotools import mask as maskutils

    if isinstance(segm, list):
        rles = maskutils.frPyObjects(segm, h, w)
        m = maskutils.decode(rles)
        return (m.reshape(h, w, -1).max(axis=2) if m.ndim == 3 else m).astype(np.uint8)
    if isinstance(segm, dict) and isinstance(segm.get("counts"), list):
        return maskutils.decode(maskutils.frPyObjects(segm, h, w)).astype(np.uint8)
    if isinstance(segm, dict):
        rle = dict(segm)
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
        return maskutils.decode(rle).astype(np.uint8)
    raise DataError(f"segmentation must be polygons or RLE, got {type(segm).__name__}")


def region_mask(record: ImageRecord, mask_unlabelled: bool = False) -> np.ndarray:
    """float32 [h, w]: 1 where the loss counts, 0 inside crowd (and optionally unlabelled-people) regions."""
    h, w = record.height, record.width
    covered = np.zeros((h, w), dtype=np.float64)
    for segm in record.crowd + (record.unlabelled if mask_unlabelled else []):
        covered += _segmentation_mask(segm, h, w)
    return (covered < 0.5).astype(np.float32)


def load_bottomup_records(ann_file: str | os.PathLike, image_root: str | os.PathLike,
                          skeleton: Skeleton | None = None, keep_empty: bool = False
                          ) -> tuple[list[ImageRecord], Skeleton]:
    """Images of a COCO-format keypoint file with their people (load_coco cleaning) and crowd regions."""
    people, skeleton = load_coco(ann_file, image_root, skeleton=skeleton, train=True)
    data = read_json(ann_file)
    k = skeleton.num_keypoints
    by_path: dict[str, list] = {}
    for rec in people:
        by_path.setdefault(rec.image_path, []).append(rec)
    crowd: dict[Any, list] = {}
    unlabelled: dict[Any, list] = {}
    for ann in data.get("annotations", []):
        segm = ann.get("segmentation")
        if not segm:
            continue
        if ann.get("iscrowd"):
            crowd.setdefault(ann.get("image_id"), []).append(segm)
        elif not any(v > 0 for v in (ann.get("keypoints") or [])[2::3]):
            unlabelled.setdefault(ann.get("image_id"), []).append(segm)
    records = []
    root = os.fspath(image_root)
    for img in data.get("images", []):
        path = os.path.join(root, img["file_name"])
        recs = by_path.get(path, [])
        if not recs and not keep_empty:
            continue
        kp = np.stack([r.keypoints for r in recs]).astype(np.float32) if recs else np.zeros((0, k, 3), np.float32)
        records.append(ImageRecord(image_path=path, image_id=int(img["id"]), keypoints=kp,
                                   width=int(img.get("width") or 0), height=int(img.get("height") or 0),
                                   crowd=crowd.get(img["id"], []), unlabelled=unlabelled.get(img["id"], [])))
    return records, skeleton


@dataclass
class BottomUpSample:
    """One item as numpy: input RGB float32 [H, W, 3] in [0, 1], targets, mask, people in heatmap px."""

    image: np.ndarray
    heatmaps: np.ndarray
    mask: np.ndarray
    refs: np.ndarray
    keypoints: np.ndarray  # [P, K, 3] heatmap px (after flip)
    matrix: np.ndarray  # [2, 3] image px -> input px (before flip)
    flipped: bool
    rotation: float
    side: float


def color_jitter(rgb: np.ndarray, rng: np.random.Generator, aug: BottomUpAugment) -> np.ndarray:
    """Official colour augmentation on float32 RGB [0, 1] (hue, saturation, brightness, contrast)."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hsv[:, :, 0] = np.mod(hsv[:, :, 0] + ((rng.random() * 2 - 1) * aug.hue * 360 + 360.0), 360.0)
    hsv[:, :, 1] = np.clip(hsv[:, :, 1] * (1 + (rng.random() * 2 - 1) * aug.saturation), 0, 1)
    out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    out += (rng.random() * 2 - 1) * aug.brightness
    mean = out.mean(axis=2, keepdims=True)
    out = (out - mean) * (1 + (rng.random() * 2 - 1) * aug.contrast) + mean
    return np.clip(out, 0, 1).astype(np.float32)


class BottomUpDataset(SeededDataset):
    """ImageRecords + AE codec -> (input [3,H,W] float32, {"heatmaps" [K,h,w], "masks" [h,w], "refs" [P,K,2]}, meta)."""

    def __init__(self, records: Sequence[ImageRecord], codec: AssociativeEmbeddingCodec, skeleton: Skeleton,
                 augment: BottomUpAugment | None = None, train: bool = True, seed: int = 0,
                 mask_unlabelled: bool = False, cache_size: int = 8) -> None:
        self.records = list(records)
        self.codec = codec
        self.skeleton = skeleton
        self.augment = augment
        self.train = bool(train)
        self.seed = int(seed)
        self.epoch = 0
        self.mask_unlabelled = bool(mask_unlabelled)
        self.reader = ImageReader(cache_size=cache_size, reduced_decoding=False, bgra=False)
        self.flip_index = np.asarray(skeleton.flip_index)
        k = skeleton.num_keypoints
        if codec.num_keypoints != k:
            raise DataError(f"codec has {codec.num_keypoints} keypoints, skeleton {skeleton.name!r} has {k}")
        for i, rec in enumerate(self.records):
            if rec.keypoints.ndim != 3 or rec.keypoints.shape[1:] != (k, 3):
                raise DataError(f"record {i} ({rec.image_path}): keypoints {rec.keypoints.shape}, expected [P, {k}, 3]")

    def sample(self, index: int) -> BottomUpSample:
        """Build item `index` as numpy arrays."""
        rec = self.records[index]
        bgr, _, (w, h) = self.reader.read(rec.image_path)
        rng = self.rng(index)
        aug = self.augment if (self.train and self.augment is not None) else None
        center = np.array([w / 2, h / 2], dtype=np.float64)
        side = float(max(h, w))
        rot = 0.0
        if aug is not None:
            rot = (rng.random() * 2 - 1) * aug.rotation
            side *= 1 + (rng.random() * 2 - 1) * aug.scale_factor
            lim = int(aug.translate * side)
            if lim > 0:
                center += rng.integers(-lim, lim, size=2)
        (in_w, in_h), (hm_w, hm_h) = self.codec.input_size, self.codec.heatmap_size
        mat_in = whole_image_transform(center, side, (in_h, in_w), rot)[:2]
        mat_hm = whole_image_transform(center, side, (hm_h, hm_w), rot)[:2]
        mask_full = region_mask(rec, self.mask_unlabelled) if (rec.crowd or (self.mask_unlabelled and rec.unlabelled)) \
            else np.ones((h, w), np.float32)
        mask = cv2.warpAffine((mask_full * 255).astype(np.uint8), mat_hm, (hm_w, hm_h)) / 255
        mask = (mask > 0.5).astype(np.float32)
        image = cv2.cvtColor(cv2.warpAffine(bgr, mat_in, (in_w, in_h)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
        kp = rec.keypoints.astype(np.float64).copy()
        if len(kp):
            kp[:, :, :2] = kpt_affine(kp[:, :, :2], mat_hm)
        flipped = bool(aug is not None and aug.flip and rng.random() < aug.flip_prob)
        if flipped:
            image = np.ascontiguousarray(image[:, ::-1])
            mask = np.ascontiguousarray(mask[:, ::-1])
            kp = kp[:, self.flip_index]
            kp[:, :, 0] = hm_w - kp[:, :, 0]
        if aug is not None and aug.color:
            image = color_jitter(image, rng, aug)
        enc = self.codec.encode_maps(kp)
        return BottomUpSample(image=image, heatmaps=enc["heatmaps"], mask=mask, refs=enc["refs"], keypoints=kp,
                              matrix=mat_in, flipped=flipped, rotation=float(rot), side=side)

    def to_input(self, image: np.ndarray) -> np.ndarray:
        """RGB [H, W, 3] in [0, 1] -> [3, H, W] float32 as the network expects (codec.normalize)."""
        if self.codec.normalize == "imagenet":
            image = (image - IMAGENET_MEAN) / IMAGENET_STD
        return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, Any]]:
        s = self.sample(index)
        rec = self.records[index]
        targets = {"heatmaps": torch.from_numpy(s.heatmaps), "masks": torch.from_numpy(s.mask),
                   "refs": torch.from_numpy(s.refs)}
        meta = {"index": int(index), "image_id": rec.image_id, "image_path": rec.image_path, "flipped": s.flipped,
                "matrix": s.matrix, "num_people": int(len(rec.keypoints))}
        return torch.from_numpy(self.to_input(s.image)), targets, meta


def collate_bottomup(items: Sequence[tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, Any]]]
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, list]]:
    """Stack items: inputs [N,3,H,W], targets stacked per key, meta as lists."""
    inputs = torch.stack([it[0] for it in items])
    targets = {k: torch.stack([it[1][k] for it in items]) for k in items[0][1]}
    meta = {k: [it[2][k] for it in items] for k in items[0][2]}
    return inputs, targets, meta
