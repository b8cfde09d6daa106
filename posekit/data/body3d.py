"""3-D top-down data (3DMPPE PoseNet): records with 2-D image joints, camera-space 3-D joints, intrinsics and root
depth -> augmented crops + (x, y, z) targets in output-map pixels / depth bins.

Conventions (mks0601/3DMPPE_POSENET_RELEASE, data/dataset.py + common/utils/pose_utils.py):
- A record's joints_img is (u, v, Z) = cam2pixel(joint_cam) in image px and mm; the target depth is Z - root Z.
  After the crop affine, x, y are crop px; depth d -> (d / (bbox_3d_depth / 2) + 1) / 2 in [0, 1] (a 2000 mm box
  centred on the root); visibility is zeroed when x, y fall outside the crop or depth outside [0, 1); then x, y are
  scaled to output-map pixels (x * out_w / in_w) and depth times depth_dim (64 bins of 31.25 mm).
- The box is `process_bbox`-ed once at load: clipped to the image, grown to the input aspect ratio, x1.25.
  The crop affine maps the box centre to the crop centre (w/2 convention) with the box scaled by the
  augmentation scale and rotated (official gen_trans_from_patch_cv: centre, centre + down, centre + right).
- Augmentation (training only): scale 1 + sf * clip(N(0,1), -1, 1), rotation rf * clip(N(0,1), -2, 2) with
  probability 0.6, flip with p 0.5 (x -> width - 1 - x in image px, the box centre likewise, left/right joints
  swapped, depth unchanged), per-channel colour gain U(1 - cf, 1 + cf) clipped to 255, synthetic occlusion with
  p 0.5 (a uniform-noise rectangle of area U(0, 0.7) x the box area and aspect U(0.3, 1/0.3), its corner drawn at
  box corner + U(0,1) x (box size - rectangle size - 1) - so it can stick out of the box - redrawn until it lies
  inside the image). Everything is drawn from a Generator seeded by (seed, epoch, index), in that order.
- 2-D sets (COCO / MPII, have_depth 0) use the same path with depth 0 (the loss ignores z); joints are remapped by
  name into the 3-D set's joint list (absent joints are zero with visibility 0).
- Input normalisation: "standard" = RGB / 255 then ImageNet mean / std (posekit default);
  "official_255" = RGB in 0..255 then the same mean / std (what the released 3DMPPE weights expect: the official
  ToTensor does not rescale float arrays, issues #63 / #69).
Deliberate differences: the flip is folded into the crop affine instead of flipping the whole image (same
pixels); the occlusion rectangle is drawn with the sample's Generator instead of numpy's global RNG; an MPII
record keeps its (already 1.25x) HRNet box instead of being padded again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from posekit.codecs.body3d import (  # the 3-D box, flip, crop and output <-> camera maps: the codec's math
    BBOX_3D_DEPTH,
    DEPTH_DIM,
    INPUT_NORMS,
    normalize_input,
    patch_transform,
    process_bbox,
)
from posekit.data.images import ImageReader
from posekit.data.seeded import SeededDataset
from posekit.errors import ConfigError, DataError

# Names that differ between skeletons for the same joint (official MPII -> H36M correspondence by name).
NAME_ALIASES = {"upper_neck": "neck", "head_top": "head", "left_foot": "l_ankle", "right_foot": "r_ankle"}


# ------------------------------------------------------------------------------------------------------------
# Flips (the box, flip-test and output <-> camera maps are in posekit.codecs.body3d)


def fliplr_joints(joints: np.ndarray, width: float, flip_pairs: Sequence[Sequence[int]]) -> np.ndarray:
    """Official fliplr_joints: x -> width - x - 1 and left/right pairs swapped (other columns unchanged)."""
    out = swap_pairs(joints, flip_pairs)
    out[:, 0] = width - out[:, 0] - 1
    return out


def swap_pairs(values: np.ndarray, flip_pairs: Sequence[Sequence[int]]) -> np.ndarray:
    """A copy of per-joint values [J, ...] with each (left, right) pair exchanged."""
    out = np.array(values, copy=True)
    for a, b in flip_pairs:
        out[[a, b]] = out[[b, a]]
    return out


# ------------------------------------------------------------------------------------------------------------
# Joint sets


def canonical_name(name: str) -> str:
    """Lower-case joint name with left_/right_ -> l_/r_ and the known aliases (upper_neck -> neck, ...)."""
    n = name.strip().lower().replace(" ", "_").replace("-", "_")
    n = NAME_ALIASES.get(n, n)
    if n.startswith("left_"):
        n = "l_" + n[5:]
    elif n.startswith("right_"):
        n = "r_" + n[6:]
    return NAME_ALIASES.get(n, n)


def joint_mapping(src_names: Sequence[str], dst_names: Sequence[str]) -> np.ndarray:
    """For each destination joint, the index of the same-named source joint, or -1 (official by-name remap)."""
    src = {canonical_name(n): i for i, n in enumerate(src_names)}
    return np.array([src.get(canonical_name(n), -1) for n in dst_names], dtype=np.int64)


def remap_joints(joints: np.ndarray, src_names: Sequence[str], dst_names: Sequence[str]) -> np.ndarray:
    """joints [K_src, C] -> [K_dst, C] by name; absent joints are all zero (so their visibility column is 0)."""
    idx = joint_mapping(src_names, dst_names)
    joints = np.asarray(joints)
    out = np.zeros((len(dst_names),) + joints.shape[1:], dtype=joints.dtype)
    ok = idx >= 0
    out[ok] = joints[idx[ok]]
    return out


# ------------------------------------------------------------------------------------------------------------
# Records and augmentation


@dataclass
class Body3DRecord:
    """One person: image, processed box, joints in image px (+ camera mm), intrinsics, root, have_depth."""

    image_path: str
    image_id: int
    bbox: np.ndarray  # [4] float64 xywh after process_bbox
    joints_img: np.ndarray  # [J, 3] float64 (u, v, Z mm) - Z = 0 for 2-D sets
    joints_vis: np.ndarray  # [J] float32 0/1
    joints_cam: np.ndarray | None = None  # [J, 3] float64 camera mm (3-D sets)
    root_cam: np.ndarray | None = None  # [3] camera mm of the root joint
    f: np.ndarray = field(default_factory=lambda: np.full(2, 1500.0, dtype=np.float32))
    c: np.ndarray = field(default_factory=lambda: np.zeros(2, dtype=np.float32))
    have_depth: bool = True
    image_size: tuple[int, int] = (0, 0)  # (w, h)
    ann_id: int = -1
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. subject, action_id, camera distortion k / p

    @property
    def root_depth(self) -> float:
        """Root Z in mm (0 for 2-D sets)."""
        return float(self.root_cam[2]) if self.root_cam is not None else 0.0


def records_from_2d(records: Sequence[Any], src_names: Sequence[str], dst_names: Sequence[str],
                    aspect_ratio: float = 1.0) -> list[Body3DRecord]:
    """2-D PoseRecords (COCO / MPII loaders) -> Body3DRecords with have_depth False, joints remapped by name.

    COCO boxes go through process_bbox; MPII records (extra["image"]) keep their square HRNet box.
    """
    out = []
    for rec in records:
        kp = remap_joints(rec.keypoints, src_names, dst_names).astype(np.float64)
        vis = (kp[:, 2] > 0).astype(np.float32)
        w, h = rec.image_size if rec.image_size != (0, 0) else (np.inf, np.inf)
        if "image" in rec.extra:  # MPII (HRNet format): centre/size already padded
            bbox = np.array([rec.center[0] - rec.size[0] / 2, rec.center[1] - rec.size[1] / 2,
                             rec.size[0], rec.size[1]], dtype=np.float64)
        else:
            bbox = process_bbox(rec.box, w, h, aspect_ratio)
            if bbox is None:
                continue
        joints = np.zeros((len(dst_names), 3), dtype=np.float64)
        joints[:, :2] = kp[:, :2]
        out.append(Body3DRecord(image_path=rec.image_path, image_id=int(rec.image_id), bbox=bbox, joints_img=joints,
                                joints_vis=vis, have_depth=False, image_size=tuple(rec.image_size),
                                ann_id=int(rec.ann_id)))
    return out


@dataclass
class Body3DAugment:
    """3DMPPE training augmentation (defaults = official get_aug_config + synthetic occlusion)."""

    scale_factor: float = 0.25
    rotation_factor: float = 30.0
    rotation_prob: float = 0.6
    flip: bool = True
    flip_prob: float = 0.5
    color_factor: float = 0.2
    occlusion_prob: float = 0.5

    def __post_init__(self) -> None:
        for name in ("scale_factor", "rotation_factor", "color_factor"):
            if getattr(self, name) < 0:
                raise ConfigError(f"Body3DAugment.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("rotation_prob", "flip_prob", "occlusion_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"Body3DAugment.{name} must be in [0, 1], got {getattr(self, name)}")


@dataclass
class Aug3D:
    """One sampled augmentation."""

    scale: float = 1.0
    rotation: float = 0.0
    flip: bool = False
    color: np.ndarray = field(default_factory=lambda: np.ones(3, dtype=np.float32))
    occlusion: bool = False


def sample_aug(rng: np.random.Generator, cfg: Body3DAugment) -> Aug3D:
    """Draw scale, rotation, flip, colour gains, occlusion (in that order)."""
    scale = float(np.clip(rng.standard_normal(), -1.0, 1.0)) * cfg.scale_factor + 1.0
    rot = float(np.clip(rng.standard_normal(), -2.0, 2.0)) * cfg.rotation_factor
    rot = rot if rng.random() <= cfg.rotation_prob else 0.0
    flip = bool(cfg.flip and rng.random() <= cfg.flip_prob)
    color = rng.uniform(1 - cfg.color_factor, 1 + cfg.color_factor, size=3).astype(np.float32)
    occ = bool(rng.random() < cfg.occlusion_prob)
    return Aug3D(scale=scale, rotation=rot, flip=flip, color=color, occlusion=occ)


def occlusion_box(rng: np.random.Generator, bbox: np.ndarray, width: int, height: int,
                  max_tries: int = 100) -> tuple[int, int, int, int] | None:
    """Official synthetic-occlusion rectangle (x, y, w, h) placed from the box, redrawn until it fits the image."""
    for _ in range(max_tries):
        area = rng.random() * 0.7 * bbox[2] * bbox[3]
        ratio = rng.random() * (1 / 0.3 - 0.3) + 0.3
        h = math.sqrt(area * ratio)
        w = math.sqrt(area / ratio)
        x = rng.random() * (bbox[2] - w - 1) + bbox[0]
        y = rng.random() * (bbox[3] - h - 1) + bbox[1]
        if x >= 0 and y >= 0 and x + w < width and y + h < height:
            return int(x), int(y), int(w), int(h)
    return None


def encode_joints(joints_img: np.ndarray, vis: np.ndarray, root_depth: float, matrix: np.ndarray,
                  input_size: tuple[int, int], output_size: tuple[int, int], depth_dim: int = DEPTH_DIM,
                  bbox_3d_depth: float = BBOX_3D_DEPTH) -> tuple[np.ndarray, np.ndarray]:
    """(u, v, Z) [J,3] image px / mm -> (coords [J,3] float32 output px / bins, vis [J] float32), as official."""
    j = np.asarray(joints_img, dtype=np.float64)
    xy = j[:, :2] @ matrix[:, :2].T + matrix[:, 2]
    z = ((j[:, 2] - root_depth) / (bbox_3d_depth / 2.0) + 1.0) / 2.0
    w, h = input_size
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h) & (z >= 0) & (z < 1)
    vis = np.asarray(vis, dtype=np.float32) * inside
    out = np.stack([xy[:, 0] / w * output_size[0], xy[:, 1] / h * output_size[1], z * depth_dim], axis=1)
    return out.astype(np.float32), vis.astype(np.float32)


# ------------------------------------------------------------------------------------------------------------
# Datasets


class Body3DDataset(SeededDataset):
    """records -> dict(image [3,H,W], coord [J,3], vis [J,1], have_depth [1], meta), 3DMPPE crops and targets.

    `flip_pairs` index the records' joint list (the 3-D set's). With `train` and an `augment`, each item draws its
    augmentation from Generator(seed, epoch, index). Without, the crop is the processed box, unflipped.
    """

    def __init__(self, records: Sequence[Body3DRecord], flip_pairs: Sequence[Sequence[int]],
                 input_size: tuple[int, int] = (256, 256), output_size: tuple[int, int] = (64, 64),
                 depth_dim: int = DEPTH_DIM, bbox_3d_depth: float = BBOX_3D_DEPTH,
                 augment: Body3DAugment | None = None, train: bool = True, input_norm: str = "standard",
                 seed: int = 0, cache_size: int = 8) -> None:
        if input_norm not in INPUT_NORMS:
            raise ConfigError(f"input normalisation: expected one of {INPUT_NORMS}, got {input_norm!r}")
        self.records = list(records)
        if not self.records:
            raise DataError("Body3DDataset: no records")
        k = self.records[0].joints_img.shape[0]
        for i, r in enumerate(self.records):
            if r.joints_img.shape != (k, 3) or r.joints_vis.shape != (k,):
                raise DataError(f"Body3DDataset: record {i} ({r.image_path}) has joints {r.joints_img.shape} / vis "
                                f"{r.joints_vis.shape}, expected ({k}, 3) / ({k},)")
        self.num_joints = k
        self.flip_pairs = [tuple(int(v) for v in p) for p in flip_pairs]
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.output_size = (int(output_size[0]), int(output_size[1]))
        self.depth_dim = int(depth_dim)
        self.bbox_3d_depth = float(bbox_3d_depth)
        self.augment = augment
        self.train = bool(train)
        self.input_norm = input_norm
        self.seed = int(seed)
        self.epoch = 0
        self.reader = ImageReader(cache_size=cache_size, reduced_decoding=False, bgra=False)

    def sample(self, index: int) -> dict[str, Any]:
        """Item `index` as numpy: crop (RGB float32 0..255), coords, vis, matrix, augmentation."""
        rec = self.records[index]
        rng = self.rng(index)
        aug = sample_aug(rng, self.augment) if (self.train and self.augment is not None) else Aug3D()
        image, _, (width, height) = self.reader.read(rec.image_path)
        if aug.occlusion:
            box = occlusion_box(rng, rec.bbox, width, height)
            if box is not None:
                x, y, w, h = box
                image = image.copy()
                image[y:y + h, x:x + w] = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        center = np.array([rec.bbox[0] + rec.bbox[2] * 0.5, rec.bbox[1] + rec.bbox[3] * 0.5])
        joints, vis = rec.joints_img.copy(), rec.joints_vis.copy()
        if aug.flip:
            center[0] = width - center[0] - 1
            joints = fliplr_joints(joints, width, self.flip_pairs)
            vis = swap_pairs(vis, self.flip_pairs)
        matrix = patch_transform(center, rec.bbox[2:4], aug.scale, aug.rotation, self.input_size)
        if aug.flip:
            flip = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
            warp = matrix.astype(np.float64) @ flip
        else:
            warp = matrix.astype(np.float64)
        crop = cv2.warpAffine(image, warp, self.input_size, flags=cv2.INTER_LINEAR)
        rgb = crop[:, :, ::-1].astype(np.float32)
        if self.train and self.augment is not None:
            rgb = np.clip(rgb * aug.color, 0, 255)
        coords, vis = encode_joints(joints, vis, rec.root_depth, matrix, self.input_size, self.output_size,
                                    self.depth_dim, self.bbox_3d_depth)
        return {"rgb": rgb, "coord": coords, "vis": vis, "matrix": warp, "augmentation": aug}

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = self.sample(index)
        rec = self.records[index]
        meta = {
            "index": int(index), "image_path": rec.image_path, "image_id": int(rec.image_id),
            "ann_id": int(rec.ann_id), "bbox": rec.bbox.astype(np.float64), "root_depth": rec.root_depth,
            "f": np.asarray(rec.f, np.float32), "c": np.asarray(rec.c, np.float32), "flipped": s["augmentation"].flip,
            "joints_cam": None if rec.joints_cam is None else rec.joints_cam.astype(np.float32),
            "action_id": int(rec.extra.get("action_id", -1)),
        }
        return {
            "image": torch.from_numpy(normalize_input(s["rgb"], self.input_norm)),
            "coord": torch.from_numpy(s["coord"]),
            "vis": torch.from_numpy(s["vis"]).reshape(-1, 1),
            "have_depth": torch.tensor([1.0 if rec.have_depth else 0.0]),
            "meta": meta,
        }


class MixedDataset(Dataset):
    """Several datasets mixed in fixed shares of each epoch (official MultipleDatasets(make_same_len=True) at equal
    shares).

    `shares` (default equal) are the fractions of an epoch drawn from each set. The epoch is the shortest one in which
    every set is read at least once in full at those shares: set i contributes counts[i] = round(M * shares[i])
    items with M = max_i(len_i / shares[i]); with equal shares that is the longest set's length per set, as official.
    Items are laid out set after set; a set with fewer items than its count is cycled for the whole copies that
    fit and its tail positions are drawn at random (from the item's Generator), as official. E.g. 3-D and 2-D at
    shares (0.5, 0.5): each epoch is half 3-D, half 2-D (3DMPPE); (0.75, 0.25): a quarter of the crops are 2-D.
    """

    def __init__(self, datasets: Sequence[Dataset], seed: int = 0, shares: Sequence[float] | None = None) -> None:
        self.datasets = [d for d in datasets]
        if not self.datasets or any(len(d) == 0 for d in self.datasets):
            raise DataError("MixedDataset: every dataset must be non-empty")
        shares = [1.0] * len(self.datasets) if shares is None else [float(v) for v in shares]
        if len(shares) != len(self.datasets) or any(not (v > 0 and math.isfinite(v)) for v in shares):
            raise ConfigError(f"MixedDataset: expected {len(self.datasets)} positive shares, got {shares}")
        total = sum(shares)
        self.shares = [v / total for v in shares]
        m = max(len(d) / s for d, s in zip(self.datasets, self.shares, strict=True))
        self.counts = [max(len(d), round(m * s)) for d, s in zip(self.datasets, self.shares, strict=True)]
        self.offsets = np.cumsum([0] + self.counts)
        self.longest = max(len(d) for d in self.datasets)
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def set_epoch(self, epoch: int) -> None:
        """Propagate the epoch (augmentation and tail draws)."""
        self.epoch = int(epoch)
        for d in self.datasets:
            if hasattr(d, "set_epoch"):
                d.set_epoch(epoch)

    def locate(self, index: int) -> tuple[int, int]:
        """(dataset number, index inside it) of item `index`."""
        if not 0 <= index < len(self):
            raise IndexError(f"MixedDataset index {index} out of range 0..{len(self) - 1}")
        which = int(np.searchsorted(self.offsets, index, side="right") - 1)
        pos = int(index - self.offsets[which])
        n = len(self.datasets[which])
        if pos >= n * (self.counts[which] // n):
            pos = int(np.random.default_rng([self.seed, self.epoch, int(index), 7]).integers(n))
        else:
            pos %= n
        return which, pos

    def __getitem__(self, index: int) -> Any:
        which, pos = self.locate(index)
        return self.datasets[which][pos]


def collate_body3d(items: Sequence[dict[str, Any]]) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, Any]]:
    """Items -> (images [N,3,H,W], targets {"coord", "vis", "have_depth"}, meta lists)."""
    images = torch.stack([it["image"] for it in items])
    targets = {k: torch.stack([it[k] for it in items]) for k in ("coord", "vis", "have_depth")}
    keys = items[0]["meta"].keys()
    meta = {k: [it["meta"][k] for it in items] for k in keys}
    return images, targets, meta
