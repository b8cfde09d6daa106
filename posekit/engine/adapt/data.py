"""Adaptation data: domains (COCO keypoint files), joint mapping between skeletons, CC-SSL's strong augmentation,
and the per-step joint batches (one source batch + one target batch (+ one human batch) per optimizer step).

Data order is a function of (seed, epoch, salt) and augmentation of (seed, epoch, index), so an epoch can be resumed
from any step: `loader(..., start=k)` yields exactly the batches k, k+1, ... of the uninterrupted epoch without
reading the first k.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from posekit.data.coco import load_coco
from posekit.data.records import PoseRecord
from posekit.data.topdown import TopDownDataset
from posekit.errors import DataError

DOMAINS = ("source", "target", "human")
HUMAN_SKELETONS = ("coco", "mpii", "coco_pelvis", "h36m")


@dataclass
class Split:
    """One COCO-format keypoint file and its image folder."""

    ann_file: str
    image_root: str


@dataclass
class Domains:
    """source (labelled), target_train (unlabelled: keypoints never used), target_val (labelled), human (WS-CDA)."""

    source: Split
    target_train: Split
    target_val: Split
    human: Split | None = None


def read_records(split: Split, labelled: bool, aspect: float, skeleton: Any = None) -> tuple[list[PoseRecord], Any]:
    """Records (and skeleton) of a split, with an error naming the file when none is usable."""
    recs, skel = load_coco(split.ann_file, split.image_root, skeleton=skeleton, aspect_ratio=aspect, train=labelled)
    if not recs:
        raise DataError(f"{split.ann_file}: no usable {'labelled ' if labelled else ''}instance")
    return recs, skel


def sequence_ids(ann_file: str) -> dict[int, int]:
    """image id -> sequence id of an ordered (video) keypoint file ({} when it has none)."""
    data = json.loads(Path(ann_file).read_text())
    return {int(img["id"]): int(img["sequence_id"]) for img in data.get("images", []) if "sequence_id" in img}


def _category(ann_file: str) -> str:
    cats = json.loads(Path(ann_file).read_text()).get("categories") or [{}]
    return str(cats[0].get("name", ""))


def map_keypoints_by_name(records: Sequence[PoseRecord], src_names: Sequence[str], dst_names: Sequence[str],
                          aliases: dict[str, str] | None = None) -> list[PoseRecord]:
    """Records of one skeleton -> another: joints matched by name (or `aliases` src -> dst), the rest unlabelled."""
    aliases = aliases or {}
    index = {n: i for i, n in enumerate(src_names)}
    pairs = []
    for j, name in enumerate(dst_names):
        src = next((s for s, d in aliases.items() if d == name and s in index), name)
        if src in index:
            pairs.append((index[src], j))
    out = []
    for r in records:
        kp = np.zeros((len(dst_names), 3), np.float32)
        for i, j in pairs:
            kp[j] = r.keypoints[i]
        out.append(PoseRecord(**{**r.__dict__, "keypoints": kp}))
    return out


HUMAN_TO_ANIMAL = {"left_wrist": "left_front_paw", "right_wrist": "right_front_paw", "left_ankle": "left_back_paw",
                   "right_ankle": "right_back_paw"}

# Real animal sets -> the AP-10K joints of posekit's synthetic quadrupeds (legs: top, middle, bottom joint).
ANIMALPOSE_TO_AP10K = {
    "L_Eye": "left_eye", "R_Eye": "right_eye", "Nose": "nose", "Throat": "neck", "TailBase": "root_of_tail",
    "L_F_Elbow": "left_shoulder", "L_F_Knee": "left_elbow", "L_F_Paw": "left_front_paw",
    "R_F_Elbow": "right_shoulder", "R_F_Knee": "right_elbow", "R_F_Paw": "right_front_paw",
    "L_B_Elbow": "left_hip", "L_B_Knee": "left_knee", "L_B_Paw": "left_back_paw",
    "R_B_Elbow": "right_hip", "R_B_Knee": "right_knee", "R_B_Paw": "right_back_paw"}
HORSE10_TO_AP10K = {  # near side = the horse's left
    "Nose": "nose", "Nearknee": "left_elbow", "Nearfrontfoot": "left_front_paw", "Offknee": "right_elbow",
    "Offfrontfoot": "right_front_paw", "Nearhindhock": "left_knee", "Nearhindfoot": "left_back_paw",
    "Offhindhock": "right_knee", "Offhindfoot": "right_back_paw"}
TARGET_ALIASES = {**ANIMALPOSE_TO_AP10K, **HORSE10_TO_AP10K}


def load_as(split: Split, labelled: bool, aspect: float, skeleton: Any) -> tuple[list[PoseRecord], bool]:
    """Records of a keypoint file in `skeleton`'s joints (mapped by name / TARGET_ALIASES when its own differ);
    returns (records, mapped). A human (person / COCO-skeleton) file given for an animal skeleton is refused."""
    recs, own = read_records(split, labelled, aspect)
    if tuple(own.keypoints) == tuple(skeleton.keypoints):
        return recs, False
    human = own.name in HUMAN_SKELETONS or _category(split.ann_file) == "person"
    if human and skeleton.name not in HUMAN_SKELETONS:
        raise DataError(f"{split.ann_file}: a human keypoint set ({own.name}, category "
                        f"{_category(split.ann_file)!r}) given as target data of the {skeleton.name} source; "
                        "adaptation needs target images of the same kind of subject (humans go to ADAPT.HUMAN_ANN)")
    mapped = map_keypoints_by_name(recs, own.keypoints, skeleton.keypoints, TARGET_ALIASES)
    if labelled:
        mapped = [r for r in mapped if r.keypoints[:, 2].max() > 0]
        if not mapped:
            raise DataError(f"{split.ann_file}: none of its joints ({', '.join(own.keypoints)}) maps to "
                            f"{skeleton.name}'s")
    return mapped, True


@dataclass
class StrongAugment:
    """CC-SSL's synthetic_animal_sp augmentation, each step with probability p, in random order (imgaug semantics)."""

    p: float = 0.5
    scale: tuple[float, float] = (0.5, 1.5)  # per axis
    translate: float = 0.05
    rotate: float = 30.0
    shear: float = 20.0
    noise_sd: float = 0.5 * 255  # official AdditiveGaussianNoise(scale=0.5*255, per_channel=0.5)
    blur: tuple[float, float] = (1.0, 5.0)
    contrast: tuple[float, float] = (0.5, 2.0)

    @classmethod
    def scaled(cls, side: int) -> StrongAugment:
        """The official ranges for 256-px crops, with blur scaled to a `side`-px crop and noise sd 0.1 x 255
        (sd 127 noise and sigma-5 blur erase a 128-px figure's joints)."""
        f = side / 256.0
        return cls(noise_sd=0.1 * 255, blur=(1.0 * f, 5.0 * f))


def strong_augment(crop: np.ndarray, joints: np.ndarray, visible: np.ndarray, rng: np.random.Generator,
                   aug: StrongAugment | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply the strong augmentation to a crop (H x W x 3 uint8) and its joints [K,2] / visible [K]."""
    aug = aug or StrongAugment()
    img = np.ascontiguousarray(crop[..., :3])
    joints = np.array(joints, np.float64, copy=True)
    visible = np.array(visible, np.float32, copy=True)
    h, w = img.shape[:2]
    for step in rng.permutation(4):
        if rng.random() >= aug.p:
            continue
        if step == 0:  # affine about the crop centre
            sx, sy = rng.uniform(*aug.scale, 2)
            tx, ty = rng.uniform(-aug.translate, aug.translate, 2) * np.array([w, h])
            rot, shear = np.deg2rad(rng.uniform(-aug.rotate, aug.rotate)), np.deg2rad(rng.uniform(-aug.shear,
                                                                                                   aug.shear))
            c = np.array([(w - 1) / 2, (h - 1) / 2])
            r = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]])
            a = r @ np.array([[1.0, -np.tan(shear)], [0.0, 1.0]]) @ np.diag([sx, sy])
            m = np.concatenate([a, (c + np.array([tx, ty]) - a @ c)[:, None]], axis=1)
            flags = cv2.INTER_NEAREST if rng.random() < 0.5 else cv2.INTER_LINEAR
            fill = int(rng.integers(0, 256))
            img = cv2.warpAffine(img, m, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT,
                                 borderValue=(fill, fill, fill))
            joints = joints @ a.T + m[:, 2]
            outside = (joints[:, 0] < 0) | (joints[:, 1] < 0) | (joints[:, 0] > w - 1) | (joints[:, 1] > h - 1)
            visible[outside] = 0
            joints[visible == 0] = 0
        elif step == 1:  # additive Gaussian noise, per channel with probability 0.5
            shape = (h, w, 3) if rng.random() < 0.5 else (h, w, 1)
            noise = rng.normal(0.0, aug.noise_sd, shape).astype(np.float32)
            img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
        elif step == 2:
            img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(*aug.blur)))
        else:  # contrast normalisation about 128, per channel with probability 0.5
            alpha = rng.uniform(*aug.contrast, 3 if rng.random() < 0.5 else 1).astype(np.float32)
            img = np.clip(128 + alpha * (img.astype(np.float32) - 128), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img), joints, visible


class StrongAugDataset(TopDownDataset):
    """TopDownDataset whose crops get the CC-SSL strong augmentation (flip comes from the base augmentation)."""

    def __init__(self, *args: Any, strong: StrongAugment | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.strong = strong or StrongAugment()

    def sample(self, index: int) -> Any:
        """The base sample, then the strong augmentation drawn from (seed, epoch, index, 1), re-encoded."""
        s = super().sample(index)
        rng = np.random.default_rng([self.seed, self.epoch, int(index), 1])
        s.crop, s.joints_crop, s.visible = strong_augment(s.crop, s.joints_crop, s.visible, rng, self.strong)
        s.encoded = self.codec.encode(s.joints_crop, s.visible)
        return s


def collate(items: Sequence[tuple]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[dict]]:
    """Stack crops, targets and weights; keep the metas as a list."""
    crops, targets, weights, metas = zip(*items)
    return torch.stack(crops), torch.stack(targets), torch.stack(weights), list(metas)


def epoch_batches(n: int, batch: int, seed: int, epoch: int, salt: int, start: int = 0) -> list[list[int]]:
    """Index batches of one epoch: a permutation drawn from (seed, epoch, salt), full batches only, from batch
    `start` on."""
    g = torch.Generator().manual_seed(seed * 100003 + epoch * 17 + salt)
    perm = torch.randperm(n, generator=g).tolist()
    full = [perm[i:i + batch] for i in range(0, n - batch + 1, batch)]
    return full[start:]


def loader(ds: Any, batch: int, seed: int, epoch: int, salt: int, workers: int = 0, start: int = 0) -> DataLoader:
    """DataLoader over the batches `epoch_batches` gives (augmentation of `epoch`)."""
    ds.set_epoch(epoch)
    return DataLoader(ds, batch_sampler=epoch_batches(len(ds), batch, seed, epoch, salt, start),
                      num_workers=workers, collate_fn=collate)


class JointBatches:
    """Zip of per-domain loaders -> one concatenated batch per step with per-sample loss weights and domain labels.

    `steps` = the number of steps of the whole epoch (`start` already skipped inside the loaders)."""

    def __init__(self, loaders: list[tuple[str, DataLoader, float]], limit: int = 0, start: int = 0) -> None:
        self.loaders = loaders
        self.limit = limit
        self.start = start
        self.on_batch: Callable[[list[int]], None] | None = None  # told each batch's domain sizes before it is used

    def steps(self) -> int:
        """Steps of the whole epoch (the shortest loader, capped by `limit`)."""
        n = min(len(dl) for _, dl, _ in self.loaders) + self.start
        return min(n, self.limit) if self.limit else n

    def __len__(self) -> int:
        return max(self.steps() - self.start, 0)

    def __iter__(self) -> Any:
        from posekit.engine.tasks.base import Batch

        its = [iter(dl) for _, dl, _ in self.loaders]
        for _ in range(len(self)):
            parts = [next(it) for it in its]
            inputs, tgts, wts, sws, ids, ys, zs = [], [], [], [], [], [], []
            for (name, _, scale), (x, t, w, _) in zip(self.loaders, parts):
                n = x.shape[0]
                inputs.append(x)
                tgts.append(t)
                wts.append(w)
                sws.append(torch.full((n,), scale / n))
                ids.append(torch.full((n,), DOMAINS.index(name)))
                ys.append(torch.full((n,), 0.0 if name == "human" else 1.0))
                zs.append(torch.full((n,), 1.0 if name == "target" else 0.0))
            sizes = [x.shape[0] for x in inputs]
            if self.on_batch is not None:
                self.on_batch(sizes)
            yield Batch(torch.cat(inputs), {"target": torch.cat(tgts), "target_weight": torch.cat(wts),
                                            "sample_weight": torch.cat(sws), "domain_id": torch.cat(ids),
                                            "domain_y": torch.cat(ys), "domain_z": torch.cat(zs)},
                        {"sizes": sizes})
