"""Top-down dataset: record -> augmented crop (ImageNet-normalised RGB tensor) + codec target + meta.

The image is never flipped or colour-converted as a whole: a horizontal flip is folded into the affine matrix
(the official flip maps x -> width - 1 - x and the centre likewise) and BGR -> RGB happens while normalising
the small crop. Each sample draws its augmentation from a Generator seeded by (seed, epoch, index), so items are
reproducible and identical with any number of DataLoader workers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Sampler

from posekit import geometry
from posekit.codecs.base import IMAGENET_MEAN, IMAGENET_STD
from posekit.data.augment import Augmentation, AugmentConfig, jitter_colors, sample_augmentation
from posekit.data.images import ImageReader, max_reduction, reduction_matrix
from posekit.data.records import PoseRecord
from posekit.data.seeded import SeededDataset
from posekit.errors import DataError
from posekit.skeletons import Skeleton

_SCALE = (1.0 / (255.0 * np.asarray(IMAGENET_STD))).astype(np.float32)
_BIAS = (-np.asarray(IMAGENET_MEAN) / np.asarray(IMAGENET_STD)).astype(np.float32)


def normalize_crop(crop: np.ndarray, bgr: bool = True) -> np.ndarray:
    """H x W x 3 (or 4: BGRA / RGBA) uint8 -> float32 [3, H, W] RGB normalised with the ImageNet mean/std."""
    h, w = crop.shape[:2]
    out = np.empty((3, h, w), dtype=np.float32)
    planes = cv2.split(crop)  # contiguous planes: faster than strided channel views
    for c in range(3):
        np.multiply(planes[2 - c] if bgr else planes[c], _SCALE[c], out=out[c], casting="unsafe")
        out[c] += _BIAS[c]
    return out


def denormalize_crop(tensor: np.ndarray | torch.Tensor) -> np.ndarray:
    """Inverse of `normalize_crop`: [3, H, W] -> H x W x 3 uint8 RGB (for pictures)."""
    x = tensor.detach().cpu().numpy() if isinstance(tensor, torch.Tensor) else np.asarray(tensor)
    x = (x - _BIAS[:, None, None]) / _SCALE[:, None, None]
    return np.clip(x.transpose(1, 2, 0) + 0.5, 0, 255).astype(np.uint8)


@dataclass
class Sample:
    """Everything one item is made of, as numpy (before tensors): used by the dataset, tests and pictures."""

    crop: np.ndarray  # H x W x 3 or 4 uint8 BGR(A) (the reader adds alpha for a faster warp)
    joints_crop: np.ndarray  # [K, 2] float64, crop input px (after flip permutation; 0 where not labelled)
    visible: np.ndarray  # [K] float32 0/1 (after flip permutation)
    encoded: dict[str, np.ndarray]
    matrix: np.ndarray  # [2, 3] float64: original image px -> crop px (flip included)
    augmentation: Augmentation
    center: np.ndarray  # centre used, in the (flipped when flipped) image frame, as official
    reduction: int
    image_size: tuple[int, int]


class TopDownDataset(SeededDataset):
    """records + codec -> (crop [3,H,W] float32, target [C,h,w], target_weight [K,1], meta dict).

    The crop is cut with `geometry.affine_matrix(..., kind=codec.affine)`; the joints go through the same matrix
    and `codec.encode` (which zeroes the weight of joints whose target lies outside the map). `augment=None` or
    `train=False` means no augmentation. `joint_weights` multiplies the weights by the skeleton's joint weights
    (official USE_DIFFERENT_JOINTS_WEIGHT; do not also give them to the codec). meta: index, image_path, image_id,
    ann_id, center / size / scale (the box used, centre in the flipped frame when flipped, as official), rotation,
    flipped, half_body, score, area, joints / joints_vis (record keypoints, image px), joints_crop / visible_crop
    (what was encoded), trans (image px -> crop px, flip included), image_width / image_height, reduction, and
    codec extras as target_*. `region_decoding` (see ImageReader) defaults to `train`: training reads in random
    order, evaluation reads the boxes of one image in a row and reuses the cached whole image.
    """

    def __init__(
        self,
        records: Sequence[PoseRecord],
        codec: Any,
        skeleton: Skeleton,
        augment: AugmentConfig | None = None,
        train: bool = True,
        seed: int = 0,
        joint_weights: bool = False,
        cache_size: int = 8,
        reduced_decoding: bool = True,
        region_decoding: bool | None = None,
    ) -> None:
        self.records = list(records)
        self.codec = codec
        self.skeleton = skeleton
        self.augment = augment  # None: no augmentation even when training
        self.train = bool(train)
        self.seed = int(seed)
        self.epoch = 0
        self.joint_weights = bool(joint_weights)
        self.input_size = (int(codec.input_size[0]), int(codec.input_size[1]))
        self.aspect_ratio = self.input_size[0] / self.input_size[1]
        self.kind = getattr(codec, "affine", "standard")
        self.reader = ImageReader(
            cache_size=cache_size, reduced_decoding=reduced_decoding,
            region_decoding=self.train if region_decoding is None else region_decoding)
        self.timings: dict[str, float] | None = None  # set to {} to accumulate seconds per stage
        k = skeleton.num_keypoints
        if int(getattr(codec, "num_keypoints", k)) != k:
            raise DataError(f"codec {getattr(codec, 'name', codec)!r} has {codec.num_keypoints} keypoints, "
                            f"skeleton {skeleton.name!r} has {k}")
        for i, rec in enumerate(self.records):
            if rec.keypoints.shape != (k, 3):
                raise DataError(f"record {i} ({rec.image_path}) has keypoints of shape {rec.keypoints.shape}, "
                                f"expected ({k}, 3) for skeleton {skeleton.name!r}")
        self._flip_index = skeleton.flip_index
        self._joint_weights = np.asarray(skeleton.joint_weights, dtype=np.float32)[:, None]

    @contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        if self.timings is None:
            yield
            return
        t0 = time.perf_counter()
        yield
        self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - t0

    def augmentation(self, index: int) -> Augmentation:
        """The augmentation of sample `index` (identity when not training)."""
        rec = self.records[index]
        if not self.train or self.augment is None:
            return Augmentation(center=rec.center.astype(np.float64), size=rec.size.astype(np.float64))
        return sample_augmentation(self.rng(index), self.augment, rec.center, rec.size, rec.keypoints,
                                   self.skeleton.upper_body_ids, self.aspect_ratio)

    def sample(self, index: int) -> Sample:
        """Build sample `index` as numpy arrays (crop still BGR(A) uint8)."""
        rec = self.records[index]
        with self._timed("augment"):
            aug = self.augmentation(index)
            matrix = geometry.affine_matrix(aug.center, aug.size, aug.rotation, self.input_size, kind=self.kind)
        with self._timed("decode"):
            width, height = self.reader.size(rec.image_path)
            center = aug.center
            if aug.flip:
                center = aug.center.copy()
                center[0] = width - center[0] - 1
                flip = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
                m = geometry.affine_matrix(center, aug.size, aug.rotation, self.input_size, kind=self.kind)
                matrix = m @ flip
            image, factor, _ = self.reader.read(rec.image_path, max_reduction(matrix), crop=(matrix, self.input_size))
        with self._timed("warp"):
            image_matrix = matrix if factor == 1 else matrix @ reduction_matrix(factor)
            crop = cv2.warpAffine(image, image_matrix, self.input_size, flags=cv2.INTER_LINEAR)
            if aug.brightness != 1.0 or aug.contrast != 1.0:
                crop = jitter_colors(crop[..., :3], aug.brightness, aug.contrast)
            visible = (rec.keypoints[:, 2] > 0).astype(np.float32)
            joints = geometry.apply_affine(rec.keypoints[:, :2], matrix)  # float64, as official
            if aug.flip:
                joints = joints[self._flip_index]
                visible = visible[self._flip_index]
            joints[visible == 0] = 0.0
        with self._timed("encode"):
            encoded = self.codec.encode(joints, visible)
        return Sample(crop=crop, joints_crop=joints, visible=visible, encoded=encoded, matrix=matrix,
                      augmentation=aug, center=center, reduction=factor, image_size=(width, height))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        s = self.sample(index)
        with self._timed("normalize"):
            crop = torch.from_numpy(normalize_crop(s.crop, bgr=True))
            target = torch.from_numpy(np.ascontiguousarray(s.encoded["target"], dtype=np.float32))
            weight = np.asarray(s.encoded["target_weight"], dtype=np.float32).reshape(-1, 1)
            if self.joint_weights:
                weight = weight * self._joint_weights
            rec = self.records[index]
            aug = s.augmentation
            meta: dict[str, Any] = {
                "index": int(index),
                "image_path": rec.image_path,
                "image_id": int(rec.image_id),
                "ann_id": int(rec.ann_id),
                "center": s.center.astype(np.float64),
                "size": aug.size.astype(np.float64),
                "scale": (aug.size / geometry.PIXEL_STD).astype(np.float64),
                "rotation": float(aug.rotation),
                "flipped": bool(aug.flip),
                "half_body": bool(aug.half_body),
                "score": float(rec.score),
                "area": float(rec.area),
                "joints": rec.keypoints[:, :2].astype(np.float32),
                "joints_vis": (rec.keypoints[:, 2] > 0).astype(np.float32),
                "joints_crop": s.joints_crop.astype(np.float32),
                "visible_crop": s.visible,
                "trans": s.matrix.astype(np.float64),
                "image_width": int(s.image_size[0]),
                "image_height": int(s.image_size[1]),
                "reduction": int(s.reduction),
            }
            for key, value in s.encoded.items():
                if key not in ("target", "target_weight"):  # codec extras, e.g. normalised coordinates
                    meta[key if key.startswith("target_") else f"target_{key}"] = value
        return crop, target, torch.from_numpy(weight), meta


class ImageGroupedSampler(Sampler[int]):
    """Shuffled order that keeps the people of one image together, so the decoded-image cache is reused.

    Images are shuffled, and so are the people inside each image; with a DataLoader a batch goes to one
    worker, so all people of an image in that batch are cropped from one decode. Opt-in: batches then hold
    fewer distinct images than with a plain RandomSampler. Pair it with `TopDownDataset(region_decoding=False)`:
    region decoding (the default, for random order) would decode each person's region instead of reusing one
    cached whole image.
    """

    def __init__(self, records: Sequence[PoseRecord], shuffle: bool = True, seed: int = 0) -> None:
        groups: dict[str, list[int]] = {}
        for i, rec in enumerate(records):
            groups.setdefault(rec.image_path, []).append(i)
        self.groups = list(groups.values())
        self.num_samples = len(records)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the order of `epoch`."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            for g in self.groups:
                yield from g
            return
        rng = np.random.default_rng([self.seed, self.epoch])
        for gi in rng.permutation(len(self.groups)):
            group = self.groups[gi]
            for j in rng.permutation(len(group)):
                yield group[j]

    def __len__(self) -> int:
        return self.num_samples
