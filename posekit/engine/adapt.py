"""Animal-pose domain adaptation: CC-SSL (Mu et al., CVPR 2020) and WS-CDA (Cao et al., ICCV 2019) rounds.

`adapt(cfg, domains, out_dir)` trains any zoo network on a labelled source set and adapts it to an unlabelled
target set (COCO-format keypoint files, e.g. posekit's synthetic quadrupeds style A -> style B, or real AP-10K /
Animal-Pose / Horse-10 samples as target), scoring the labelled target held-out split with CC-SSL's PCK@0.05
(posekit.evaluation.pck_bearpaw) and, where the skeleton has OKS sigmas, COCO AP.

Methods (`AdaptConfig.method`):
- "source": source-only training with the strong augmentation (CC-SSL stage 1).
- "ccssl": `source_epochs` of stage 1, then rounds: every `round_every` epochs pseudo labels are regenerated on the
  target training images (in file order, no augmentation, model in eval mode) and the network trains jointly on a
  source batch and a pseudo-labelled target batch per step, loss = L_src + target_weight x L_trg.
  Pseudo labels (official CCSSL/scripts/consistency.py prediction_check, fixture-exact, see below): pass 0 is the
  identity crop, passes 1..T-1 use scale s0 x clip(1 + 0.25 N, 0.75, 1.25) and rotation clip(30 N, -60, 60)
  (torch.randn, scale then rotation); each last-stack heatmap is rotated back by -rot about the map centre,
  resized by s/s0 and centre-pasted / centre-cropped; the T maps are averaged; confidence = per-joint max of the
  average; location = the codec's decoding of the average (bearpaw final_preds for the bearpaw codec). Optional
  flip pass (`flip_pseudo`, off as in the released code). Temporal consistency (ordered target frames): pyramidal
  Lucas-Kanade flow (15x15 window, 2 levels, 10 iterations / eps 0.03) carries the previous item's pseudo
  keypoints to the current crop; a flow point moving more than 15 px (x input/256) gets flow confidence 0; where
  current / previous confidence < 0.9 the flow location replaces the prediction with confidence previous x 0.9.
  Threshold (official CCSSL.py, fixture-exact): all confidences plus one leading 0 are sorted; p = 1 - 0.02
  (epoch + 10), replaced by 0.2 when not > 0.2; threshold = sorted[int(p len)]; a joint is kept (weight 1) when
  its confidence is strictly above it. Round r uses epoch = r x `schedule_step` (10: the official epochs 0, 10,
  ..., so kept fractions 20/40/60/80/80 %).
- "wscda": a re-implementation from the paper (no public code exists). The network's head input (the features
  entering its last 1x1 output conv: backbone + neck = the paper's "feature extractor") goes through a gradient
  reversal layer into a domain discriminator with two logits: y (animal vs human) and z (target vs labelled
  animal, for animals only). Loss = beta x L_pose + L_DDL with L_pose = w2 x L_animal + L_human (heatmap MSE;
  humans are supervised on the keypoints they share with the animal skeleton by name: eyes, nose, shoulders,
  elbows, hips, knees, wrists -> front paws, ankles -> back paws), L_DDL = w1 x BCE(y) + BCE(z | animal).
  Constants: alpha = -1 (the gradient-reversal coefficient 1: the extractor maximises exactly the loss the
  discriminator minimises) and beta = 500, the values of the paper as the seed notes report them (the paper's
  alpha x beta < 0 sign convention is the gradient reversal); with sigma-1 heatmaps the per-sample MSE is ~1e-3, so
  500 puts the pose term on the scale of the ~0.69 BCE, which is the stated purpose of the weighting. w1 = w2 = 1
  (the paper gives no values we could confirm; 1 weighs both discriminator terms and both pose sets equally).
  Progressive pseudo-label optimisation (PPLO): from `source_epochs` on, the same rounds and threshold schedule
  as CC-SSL generate target pseudo labels, but from the plain prediction (one identity pass, no flow): the paper's
  PPLO selects confident predictions of the current model, without CC-SSL's consistency checks. They are weighted
  like labelled animals (w2).

Deliberate differences from the released CC-SSL code (documented, not bugs kept): the target crops are cut by
posekit's TopDownDataset from each record's box (ImageNet normalisation, no double mean subtraction); the scale /
rotation passes warp the identity crop with cv2 (the official bearpaw `crop` needs SciPy functions that no longer
exist; the official real images ARE 256x256 identity crops, so this is the same operation up to interpolation);
flow uses 0-based crop coordinates; a flow rejection does not zero the previous frame's stored confidence
(`zero_previous_on_reject=True` restores that quirk); "previous" is the preceding record only when both come from
the same sequence (image `sequence_id`), else flow is skipped (the official crosses video boundaries); the joint
step forwards source and target batches separately (per-domain BatchNorm statistics, as the official) but takes
one backward of the weighted sum (mathematically the official's two backward calls then one step). Each epoch runs
through the engine's `posekit.engine.train.train_one_epoch` over `JointBatches` (one concatenated Batch per step).
The threshold schedule is tied to the round index (see above) so short CPU runs still go 20 -> 80 %.

Resumability: data order and augmentation are functions of (seed, epoch, index); pseudo-label draws use a
Generator seeded by (seed, round); out_dir/checkpoint.pth (atomic, every epoch) holds model, optimizer, epoch,
round, history and the current pseudo-label file name; out_dir/round_RR.pth keeps the weights at each round's end;
out_dir/pseudo_labels/round_RR.json holds each round's labels (COCO annotations, v = 2 kept / 0 dropped, plus the
confidences and threshold). On CPU a resumed run equals an uninterrupted one bit for bit.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from posekit import geometry
from posekit.codecs import bearpaw
from posekit.data.augment import AugmentConfig
from posekit.data.coco import load_coco
from posekit.data.records import PoseRecord
from posekit.data.topdown import TopDownDataset
from posekit.engine import checkpoint as ckpt
from posekit.errors import ConfigError, DataError

METHODS = ("source", "ccssl", "wscda")

# ----------------------------------------------------------------------------------------------------------------
# Pseudo-label math (fixture-exact against ../shared/reference/codecs/ccssl_bearpaw.npz)


def draw_pass_params(num_transform: int, s0: float, sf: float = 0.25, rf: float = 30.0,
                     generator: torch.Generator | None = None) -> np.ndarray:
    """[T,2] (scale in 200-px units, rotation degrees): pass 0 = (s0, 0), then official torch.randn draws."""
    out = [(float(s0), 0.0)]
    for _ in range(1, num_transform):
        z = torch.randn(1, generator=generator)
        s = s0 * (z * sf + 1).clamp(1 - sf, 1 + sf)[0]
        z = torch.randn(1, generator=generator)
        r = (z * rf).clamp(-2 * rf, 2 * rf)[0]
        out.append((float(s), float(r)))
    return np.asarray(out, np.float64)


def resize_factor(scale: float, s0: float, input_side: int) -> float:
    """The back-warp resize factor s x 200 / side, computed in float32 as the official (exactly 1 for s = s0)."""
    if scale == s0:
        return float(s0) * 200.0 / input_side
    return float(np.float32(np.float32(scale) * np.float32(200.0)) / np.float32(input_side))


def back_warp(maps: np.ndarray, factor: float, rot: float) -> np.ndarray:
    """Heatmaps [K,h,w] of a scaled / rotated crop -> the identity crop's frame, float64 (official prediction_check)."""
    k, h, w = maps.shape
    out = np.zeros((k, h, w), np.float64)
    m = cv2.getRotationMatrix2D((w // 2, h // 2), -float(rot), 1)
    for j in range(k):
        r = cv2.warpAffine(np.ascontiguousarray(maps[j], np.float32), m, (w, h))
        r = cv2.resize(r, None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)
        rh, rw = r.shape
        ys, ye, sy = (h // 2 - rh // 2, h // 2 - rh // 2 + rh, 0) if rh < h else (0, h, rh // 2 - h // 2)
        xs, xe, sx = (w // 2 - rw // 2, w // 2 - rw // 2 + rw, 0) if rw < w else (0, w, rw // 2 - w // 2)
        out[j, ys:ye, xs:xe] += r[sy:sy + (ye - ys), sx:sx + (xe - xs)]
    return out


def average_back_warped(outputs: np.ndarray, params: np.ndarray, s0: float, input_side: int) -> np.ndarray:
    """Outputs [T,K,h,w] of the T passes with params [T,2] (scale, rot) -> averaged map [K,h,w] float32."""
    acc = np.zeros(outputs.shape[1:], np.float64)
    for t in range(outputs.shape[0]):
        acc += back_warp(outputs[t], resize_factor(float(params[t, 0]), s0, input_side), float(params[t, 1]))
    return (acc / outputs.shape[0]).astype(np.float32)


def pass_matrix(input_size: Sequence[int], factor: float, rot: float) -> np.ndarray:
    """2x3 warp of the identity crop for a pass: rotate by rot (cv2 sense) and zoom out by `factor` about its centre."""
    w, h = int(input_size[0]), int(input_size[1])
    return cv2.getRotationMatrix2D((w / 2, h / 2), float(rot), 1.0 / factor)


def drop_fraction(epoch: int) -> float:
    """Official p = 1 - 0.02 (epoch + 10), replaced by 0.2 when not > 0.2: the fraction of confidences DROPPED."""
    p = 1.0 - 0.02 * (epoch + 10)
    return p if p > 0.2 else 0.2


def confidence_threshold(confidence: np.ndarray, epoch: int) -> tuple[float, float, np.ndarray]:
    """(threshold, p, sorted confidences with the official leading 0) of all joint confidences [N,K]."""
    s = np.sort(np.concatenate([np.zeros(1), np.asarray(confidence, np.float64).reshape(-1)]))
    p = drop_fraction(epoch)
    return float(s[int(p * s.shape[0])]), p, s


def threshold_mask(confidence: np.ndarray, threshold: float) -> np.ndarray:
    """Kept joints: confidence strictly above the threshold (ties dropped), as float32 0/1."""
    return (np.asarray(confidence) > threshold).astype(np.float32)


def temporal_update(prev_gray: np.ndarray, cur_gray: np.ndarray, prev_kpts: np.ndarray, kpts: np.ndarray,
                    lambda_decay: float = 0.9, max_move: float = 15.0,
                    zero_previous_on_reject: bool = False) -> np.ndarray:
    """CC-SSL temporal consistency: LK-flow the previous pseudo keypoints [K,3] into the current frame; new [K,3]."""
    pts = np.ascontiguousarray(prev_kpts[:, :2], np.float32).reshape(-1, 1, 2)
    flow, _, _ = cv2.calcOpticalFlowPyrLK(prev_gray, cur_gray, pts, None, winSize=(15, 15), maxLevel=2,
                                          criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.03))
    flow = flow.reshape(-1, 2)
    flow_conf = np.array(prev_kpts[:, 2], np.float32, copy=True)
    rejected = np.linalg.norm(flow - pts.reshape(-1, 2), axis=1) > max_move
    flow_conf[rejected] = 0
    if zero_previous_on_reject:  # the released code writes through a view into the stored previous labels
        prev_kpts[rejected, 2] = 0
    out = np.array(kpts, np.float32, copy=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        use = (flow_conf > 0) & (out[:, 2] / np.where(flow_conf > 0, flow_conf, 1) < lambda_decay)
    out[use, :2] = flow[use]
    out[use, 2] = flow_conf[use] * np.float32(lambda_decay)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Configuration and data


@dataclass
class AdaptConfig:
    """Everything an adaptation run depends on (stored in its checkpoint); defaults are the official CC-SSL ones."""

    method: str = "ccssl"
    model: str = "hourglass_bearpaw_4stack_256x256"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    codec: str = ""  # "" = the zoo entry's codec
    codec_cfg: dict[str, Any] = field(default_factory=dict)
    input_size: tuple[int, int] | None = None  # (w, h); None = the zoo entry's (heatmaps at 1/4 unless given)
    heatmap_size: tuple[int, int] | None = None
    epochs: int = 60
    source_epochs: int = 0  # stage-1 (source-only) epochs before the first round (ccssl / wscda)
    round_every: int = 10
    schedule_step: int = 10  # official epochs per round for the threshold schedule
    iters_per_epoch: int = 0  # 0: as many as the shortest domain loader gives (official zip)
    batch_size: int = 6
    target_batch_size: int = 6
    human_batch_size: int = 6
    optimizer: str = "rmsprop"  # rmsprop (official, momentum 0, wd 0) | adam
    lr: float = 2.5e-4
    target_weight: float = 10.0  # CC-SSL gamma_
    strong_augment: bool = True
    num_transform: int = 5
    scale_factor: float = 0.25
    rot_factor: float = 30.0
    flip_pseudo: bool = False
    temporal: bool = True
    lambda_decay: float = 0.9
    zero_previous_on_reject: bool = False
    alpha: float = -1.0  # WS-CDA adversarial coefficient (gradient reversal of |alpha|)
    beta: float = 500.0  # WS-CDA pose-loss weight
    w1: float = 1.0
    w2: float = 1.0
    eval_batch_size: int = 6
    eval_every_round: bool = True
    max_minutes: float = 0.0  # 0 = no time limit (a time stop is not bit-reproducible)
    seed: int = 0
    workers: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"adapt method: expected one of {METHODS}, got {self.method!r}")
        for name in ("epochs", "round_every", "batch_size", "target_batch_size", "human_batch_size", "num_transform",
                     "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"adapt {name}: expected >= 1, got {getattr(self, name)}")
        if not 0 <= self.source_epochs <= self.epochs:
            raise ConfigError(f"adapt source_epochs: expected 0..epochs ({self.epochs}), got {self.source_epochs}")
        if self.optimizer not in ("rmsprop", "adam"):
            raise ConfigError(f"adapt optimizer: expected rmsprop or adam, got {self.optimizer!r}")


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


def _records(split: Split, labelled: bool, aspect: float, skeleton: Any = None) -> tuple[list[PoseRecord], Any]:
    recs, skel = load_coco(split.ann_file, split.image_root, skeleton=skeleton, aspect_ratio=aspect, train=labelled)
    if not recs:
        raise DataError(f"{split.ann_file}: no usable {'labelled ' if labelled else ''}instance")
    return recs, skel


def _sequence_ids(ann_file: str) -> dict[int, int]:
    data = json.loads(Path(ann_file).read_text())
    return {int(img["id"]): int(img["sequence_id"]) for img in data.get("images", []) if "sequence_id" in img}


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
    returns (records, mapped)."""
    recs, own = _records(split, labelled, aspect)
    if tuple(own.keypoints) == tuple(skeleton.keypoints):
        return recs, False
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


def _collate(items: Sequence[tuple]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[dict]]:
    crops, targets, weights, metas = zip(*items)
    return torch.stack(crops), torch.stack(targets), torch.stack(weights), list(metas)


# ----------------------------------------------------------------------------------------------------------------
# Network wrapper: per-domain forwards, head-input features, domain discriminator


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.coeff * grad, None


def grad_reverse(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """Identity forward; the backward multiplies the gradient by -coeff (gradient reversal layer)."""
    return _GradReverse.apply(x, coeff)


def head_conv(net: nn.Module, num_joints: int) -> nn.Conv2d:
    """The last registered 1x1 conv with num_joints outputs: its input is the head-input feature map."""
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.out_channels == num_joints
             and m.kernel_size == (1, 1)]
    if not convs:
        raise ConfigError(f"WS-CDA: {type(net).__name__} has no 1x1 conv with {num_joints} outputs to take the "
                          "features from")
    return convs[-1]


class DomainDiscriminator(nn.Module):
    """Features [N,C,h,w] -> 2 logits: (animal vs human, target vs labelled animal)."""

    def __init__(self, channels: int, width: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.fc = nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x).mean(dim=(2, 3)))


class AdaptNet(nn.Module):
    """The pose network plus (WS-CDA) a discriminator; forwards each domain chunk of a batch separately."""

    def __init__(self, net: nn.Module, num_joints: int, input_size: Sequence[int], discriminator: bool = False,
                 grl: float = 1.0) -> None:
        super().__init__()
        self.net = net
        self.sizes: list[int] = []
        self.grl = grl
        self._feat: torch.Tensor | None = None
        self.discriminator: nn.Module | None = None
        if discriminator:
            conv = head_conv(net, num_joints)
            conv.register_forward_pre_hook(self._grab)
            self.discriminator = DomainDiscriminator(conv.in_channels)

    def _grab(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        self._feat = inputs[0]

    def forward(self, x: torch.Tensor) -> Any:
        if not self.training:
            out = self.net(x)
            return out[-1] if isinstance(out, (list, tuple)) else out
        chunks = x.split(self.sizes) if self.sizes else [x]
        outs, feats = [], []
        for c in chunks:
            outs.append(self.net(c))
            feats.append(self._feat)
        if isinstance(outs[0], (list, tuple)):
            heat: Any = [torch.cat([o[s] for o in outs]) for s in range(len(outs[0]))]
        else:
            heat = torch.cat(outs)
        result = {"heatmaps": heat}
        if self.discriminator is not None:
            result["domain"] = self.discriminator(grad_reverse(torch.cat(feats), self.grl))
        return result


def per_sample_mse(output: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Official JointsMSELoss per sample: mean over joints of 0.5 x mean((w (pred - gt))^2) -> [N]."""
    w = weight.reshape(weight.shape[0], weight.shape[1], 1, 1)
    return 0.5 * ((output - target) * w).pow(2).mean(dim=(2, 3)).mean(dim=1)


def adapt_criterion(beta: float = 1.0, w1: float = 1.0) -> Callable[[Any, dict[str, torch.Tensor]],
                                                                     tuple[torch.Tensor, dict[str, float]]]:
    """criterion(outputs, targets) -> (loss, logs): weighted heatmap MSE summed over stacks (+ WS-CDA DDL)."""

    def criterion(outputs: Any, targets: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        heat = outputs["heatmaps"]
        stacks = heat if isinstance(heat, (list, tuple)) else [heat]
        per = sum(per_sample_mse(o, targets["target"], targets["target_weight"]) for o in stacks)
        sw = targets["sample_weight"]
        logs: dict[str, float] = {}
        for name in ("source", "target", "human"):
            m = targets["domain_id"] == ("source", "target", "human").index(name)
            if bool(m.any()):
                logs[f"loss_{name}"] = float((per[m] * sw[m]).sum().detach())
        pose = (per * sw).sum()
        if "domain" not in outputs:
            return pose, logs
        logits = outputs["domain"]
        y = targets["domain_y"]
        ddl = w1 * F.binary_cross_entropy_with_logits(logits[:, 0], y)
        animal = y > 0.5
        if bool(animal.any()):
            ddl = ddl + F.binary_cross_entropy_with_logits(logits[animal, 1], targets["domain_z"][animal])
        logs["loss_ddl"] = float(ddl.detach())
        return beta * pose + ddl, logs

    return criterion


# ----------------------------------------------------------------------------------------------------------------
# The run


@dataclass
class _Setup:
    cfg: AdaptConfig
    net: AdaptNet
    codec: Any
    skeleton: Any
    source: list[PoseRecord]
    target_train: list[PoseRecord]
    target_val: list[PoseRecord]
    human: list[PoseRecord]
    sequences: dict[int, int]
    device: torch.device
    val_gt_file: str | None = None  # for COCO AP (None when the val file's joints were mapped)


def build_network(cfg: AdaptConfig, num_joints: int) -> tuple[nn.Module, Any]:
    """The zoo network with num_joints outputs and its codec (the entry's, or cfg.codec)."""
    from posekit import codecs, models

    entry = models.entry(cfg.model)
    net = models.build(cfg.model, **{"num_joints": num_joints, **cfg.model_overrides})
    name = cfg.codec or entry.codec
    codec_cfg = {**(entry.codec_cfg if name == entry.codec else {}), **cfg.codec_cfg}
    inp = tuple(cfg.input_size) if cfg.input_size else entry.input_size
    hm = tuple(cfg.heatmap_size) if cfg.heatmap_size else (
        (inp[0] // 4, inp[1] // 4) if cfg.input_size else entry.heatmap_size)
    common = dict(input_size=inp, heatmap_size=hm, num_keypoints=num_joints)
    if name == "bearpaw":
        codec = bearpaw.BearpawCodec(**common, **codec_cfg)
    else:
        codec = codecs.build(name, **common, **codec_cfg)
    return net, codec


def _setup(cfg: AdaptConfig, domains: Domains, device: str | None) -> _Setup:
    from posekit import models

    entry = models.entry(cfg.model)
    inp = tuple(cfg.input_size) if cfg.input_size else entry.input_size
    aspect = inp[0] / inp[1]
    source, skeleton = _records(domains.source, True, aspect)
    target_train, _ = load_as(domains.target_train, False, aspect, skeleton)
    for r in target_train:  # unlabelled: the keypoints of this split are never used
        r.keypoints = np.zeros_like(r.keypoints)
    target_val, val_mapped = load_as(domains.target_val, True, aspect, skeleton)
    human: list[PoseRecord] = []
    if cfg.method == "wscda":
        if domains.human is None:
            raise ConfigError("WS-CDA needs a human set (Domains.human / --human-ann)")
        hrecs, hskel = _records(domains.human, True, aspect)
        human = map_keypoints_by_name(hrecs, hskel.keypoints, skeleton.keypoints, HUMAN_TO_ANIMAL)
    torch.manual_seed(cfg.seed)
    net, codec = build_network(cfg, skeleton.num_keypoints)
    model = AdaptNet(net, skeleton.num_keypoints, codec.input_size, discriminator=cfg.method == "wscda",
                     grl=abs(cfg.alpha))
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return _Setup(cfg, model.to(dev), codec, skeleton, source, target_train, target_val, human,
                  _sequence_ids(domains.target_train.ann_file), dev,
                  None if val_mapped else domains.target_val.ann_file)


def _identity_dataset(st: _Setup, records: Sequence[PoseRecord]) -> TopDownDataset:
    return TopDownDataset(records, st.codec, st.skeleton, augment=None, train=False, seed=st.cfg.seed)


@torch.no_grad()
def generate_pseudo_labels(st: _Setup, round_index: int) -> dict[str, Any]:
    """Pseudo keypoints (image px) and confidences for every target training record; see the module docstring."""
    cfg, codec = st.cfg, st.codec
    net = st.net
    net.eval()
    ds = _identity_dataset(st, st.target_train)
    iw, ih = codec.input_size
    s0 = iw / 200.0
    passes = cfg.num_transform if cfg.method == "ccssl" else 1
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + round_index)
    kpts_all = np.zeros((len(ds), codec.num_keypoints, 3), np.float32)
    image_kpts = np.zeros_like(kpts_all)
    prev: tuple[np.ndarray, np.ndarray, int] | None = None
    for i in range(len(ds)):
        s = ds.sample(i)
        crop = np.ascontiguousarray(s.crop[..., :3])
        params = draw_pass_params(passes, s0, cfg.scale_factor, cfg.rot_factor, gen)
        crops = [crop]
        for t in range(1, passes):
            m = pass_matrix(codec.input_size, resize_factor(params[t, 0], s0, iw), params[t, 1])
            crops.append(cv2.warpAffine(crop, m, (iw, ih), flags=cv2.INTER_LINEAR))
        x = torch.from_numpy(np.stack([_normalize(c) for c in crops])).to(st.device)
        out = net(x).float().cpu().numpy()
        avg = average_back_warped(out, params, s0, iw)
        if cfg.flip_pseudo:
            flipped = net(torch.flip(x[:1], dims=(3,))).float().cpu().numpy()
            back = codec.flip_back(flipped, st.skeleton.flip_index)[0]
            avg = ((avg.astype(np.float64) * passes + back) / (passes + 1)).astype(np.float32)
        coords, _ = codec.decode(avg[None])
        kp = np.zeros((codec.num_keypoints, 3), np.float32)
        kp[:, :2] = coords[0]
        kp[:, 2] = avg.reshape(avg.shape[0], -1).max(axis=1)
        gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        seq = st.sequences.get(st.target_train[i].image_id)
        if cfg.method == "ccssl" and cfg.temporal and prev is not None and seq is not None and prev[2] == seq:
            kp = temporal_update(prev[0], gray, prev[1], kp, cfg.lambda_decay, 15.0 * iw / 256.0,
                                 cfg.zero_previous_on_reject)
        kpts_all[i] = kp
        prev = (gray, kpts_all[i], seq) if seq is not None else None
    for i in range(len(ds)):  # crop px -> image px (the identity crop's inverse affine)
        m = geometry.affine_matrix(st.target_train[i].center, st.target_train[i].size, 0.0, codec.input_size,
                                   kind=getattr(codec, "affine", "standard"))
        inv = cv2.invertAffineTransform(m)
        image_kpts[i, :, :2] = geometry.apply_affine(kpts_all[i, :, :2].astype(np.float64), inv)
        image_kpts[i, :, 2] = kpts_all[i, :, 2]
    epoch = round_index * cfg.schedule_step
    thresh, p, _ = confidence_threshold(kpts_all[:, :, 2], epoch)
    mask = threshold_mask(kpts_all[:, :, 2], thresh)
    return {"round": round_index, "schedule_epoch": epoch, "drop_fraction": p, "threshold": thresh,
            "kept_fraction": float(mask.mean()), "keypoints": image_kpts, "mask": mask}


def _normalize(crop_bgr: np.ndarray) -> np.ndarray:
    from posekit.data.topdown import normalize_crop

    return normalize_crop(crop_bgr, bgr=True)


def write_pseudo_labels(path: Path, labels: dict[str, Any], records: Sequence[PoseRecord],
                        source_ann: str) -> None:
    """Pseudo labels as a COCO keypoint file (v = 2 kept, 0 dropped) with confidences and the round's threshold."""
    src = json.loads(Path(source_ann).read_text())
    anns = []
    for i, r in enumerate(records):
        kp = labels["keypoints"][i]
        flat: list[float] = []
        for j in range(kp.shape[0]):
            keep = labels["mask"][i, j] > 0
            flat += [float(kp[j, 0]), float(kp[j, 1]), 2 if keep else 0]
        x, y, w, h = (float(v) for v in r.box)
        anns.append({"id": i + 1, "image_id": r.image_id, "category_id": r.category_id, "bbox": [x, y, w, h],
                     "area": float(r.area), "iscrowd": 0, "keypoints": flat,
                     "num_keypoints": int(labels["mask"][i].sum()),
                     "confidence": [float(c) for c in kp[:, 2]]})
    out = {"info": {k: labels[k] for k in ("round", "schedule_epoch", "drop_fraction", "threshold", "kept_fraction")},
           "images": src["images"], "annotations": anns, "categories": src["categories"]}
    ckpt_dir = path.parent
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out))
    os.replace(tmp, path)


def read_pseudo_labels(path: Path, records: Sequence[PoseRecord]) -> list[PoseRecord]:
    """Target records carrying the pseudo keypoints of a written round (v = kept mask)."""
    data = json.loads(path.read_text())
    anns = data["annotations"]
    if len(anns) != len(records):
        raise DataError(f"{path}: {len(anns)} pseudo labels for {len(records)} target records")
    out = []
    for r, a in zip(records, anns):
        kp = np.asarray(a["keypoints"], np.float32).reshape(-1, 3)
        kp[:, 2] = (kp[:, 2] > 0).astype(np.float32)
        out.append(PoseRecord(**{**r.__dict__, "keypoints": kp}))
    return out


def _loader(ds: Any, batch: int, seed: int, epoch: int, salt: int, workers: int) -> DataLoader:
    ds.set_epoch(epoch)
    return DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers, collate_fn=_collate,
                      generator=torch.Generator().manual_seed(seed * 100003 + epoch * 17 + salt))


def _source_dataset(st: _Setup) -> TopDownDataset:
    cfg = st.cfg
    if cfg.strong_augment:
        flip_only = AugmentConfig(scale_factor=0.0, rotation_factor=0.0, rotation_prob=0.0, flip=True,
                                  half_body_prob=-1.0)
        return StrongAugDataset(st.source, st.codec, st.skeleton, augment=flip_only, train=True, seed=cfg.seed)
    return TopDownDataset(st.source, st.codec, st.skeleton, augment=AugmentConfig.mpii(), train=True, seed=cfg.seed)


def _target_dataset(st: _Setup, records: Sequence[PoseRecord], salt: int) -> TopDownDataset:
    # bearpaw real-animal augmentation: scale +-25 %, rotation +-30 (p 0.6, clipped at 60), flip, colour gain
    aug = AugmentConfig(scale_factor=0.25, rotation_factor=30.0, rotation_prob=0.6, flip=True, half_body_prob=-1.0,
                        color_jitter=True, brightness=0.2, contrast=0.0)
    return TopDownDataset(records, st.codec, st.skeleton, augment=aug, train=True, seed=st.cfg.seed + salt)


def _optimizer(cfg: AdaptConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr)
    return torch.optim.RMSprop(params, lr=cfg.lr, momentum=0.0, weight_decay=0.0)


class JointBatches:
    """Zip of per-domain loaders -> one concatenated batch per step with per-sample loss weights and domain labels."""

    def __init__(self, loaders: list[tuple[str, DataLoader, float]], limit: int = 0) -> None:
        self.loaders = loaders
        self.limit = limit
        self.on_batch: Callable[[list[int]], None] | None = None  # told each batch's domain sizes before it is used

    def __len__(self) -> int:
        n = min(len(dl) for _, dl, _ in self.loaders)
        return min(n, self.limit) if self.limit else n

    def __iter__(self) -> Any:
        from posekit.engine.tasks import Batch

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
                ids.append(torch.full((n,), ("source", "target", "human").index(name)))
                ys.append(torch.full((n,), 0.0 if name == "human" else 1.0))
                zs.append(torch.full((n,), 1.0 if name == "target" else 0.0))
            sizes = [x.shape[0] for x in inputs]
            if self.on_batch is not None:
                self.on_batch(sizes)
            yield Batch(torch.cat(inputs), {"target": torch.cat(tgts), "target_weight": torch.cat(wts),
                                            "sample_weight": torch.cat(sws), "domain_id": torch.cat(ids),
                                            "domain_y": torch.cat(ys), "domain_z": torch.cat(zs)},
                        {"sizes": sizes})


def _train_one_epoch(model: AdaptNet, criterion: Any, batches: JointBatches, optimizer: torch.optim.Optimizer,
                     device: torch.device, epoch: int, deadline: float | None) -> tuple[str, dict[str, float]]:
    """One epoch over the joint batches through the engine's `train_one_epoch`; returns (stop reason, mean logs)."""
    from posekit.engine.train import train_one_epoch

    model.train()
    sums: dict[str, float] = {}
    count = [0]

    def after_step(step: int, iteration: int, loss: torch.Tensor, logs: dict[str, float], batch: Any,
                   outputs: Any) -> str:
        count[0] += 1
        for k, v in {"loss": float(loss.detach()), **logs}.items():
            sums[k] = sums.get(k, 0.0) + v
        return "max_minutes" if deadline is not None and time.monotonic() >= deadline else "completed"

    batches.on_batch = lambda sizes: setattr(model, "sizes", sizes)
    try:
        stop, _, _ = train_one_epoch(model, criterion, batches, optimizer, device=device, epoch=epoch,
                                     after_step=after_step)
    finally:
        batches.on_batch = None
        model.sizes = []
    return stop, {k: v / max(count[0], 1) for k, v in sums.items()}


@torch.no_grad()
def evaluate_target(net: nn.Module, records: Sequence[PoseRecord], codec: Any, skeleton: Any, device: torch.device,
                    batch_size: int = 6, gt_file: str | None = None) -> dict[str, float]:
    """Held-out target: official PCK@0.05 (bearpaw GT maps at the heatmap size, batches in file order) + COCO AP."""
    from posekit.evaluation.pck_bearpaw import BearpawPCK, coco_ap_of_predictions

    net.eval()
    ds = TopDownDataset(records, codec, skeleton, augment=None, train=False)
    gt_codec = bearpaw.BearpawCodec(codec.input_size, codec.heatmap_size, codec.num_keypoints, sigma=1.0)
    meter = BearpawPCK(codec.num_keypoints)
    kps, scores, ids = [], [], []
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=_collate)
    for x, _, _, metas in loader:
        out = net(x.to(device))
        out = (out[-1] if isinstance(out, (list, tuple)) else out).float().cpu().numpy()
        gt = np.stack([gt_codec.encode(m["joints_crop"], m["visible_crop"])["target"] for m in metas])
        meter.update(out, gt)
        coords, sc = codec.decode(out)
        for b, m in enumerate(metas):
            inv = cv2.invertAffineTransform(m["trans"])
            kps.append(geometry.apply_affine(coords[b], inv))
            scores.append(sc[b])
            ids.append(m["image_id"])
    metrics = meter.result(skeleton.keypoints)
    sig = np.asarray(skeleton.sigmas_array)
    if gt_file is not None and not np.allclose(sig, sig[0]):
        try:
            ap = coco_ap_of_predictions(gt_file, ids, np.stack(kps), np.clip(np.stack(scores), 1e-6, None),
                                        sigmas=sig)
            metrics.update({"AP": ap["AP"], "AP .5": ap["AP .5"]})
        except DataError:
            pass
    return metrics


def _checkpoint_state(st: _Setup, optimizer: torch.optim.Optimizer, epoch: int, history: list,
                      pseudo_file: str | None, seconds: float) -> dict[str, Any]:
    return {"format": "posekit-adapt-1", "config": asdict(st.cfg), "model": st.net.state_dict(),
            "optimizer": optimizer.state_dict(), "epoch": epoch, "history": history, "pseudo_file": pseudo_file,
            "seconds": seconds, "spec": {"model": st.cfg.model, "codec": st.codec.name,
                                         "input_size": list(st.codec.input_size),
                                         "heatmap_size": list(st.codec.heatmap_size),
                                         "skeleton": st.skeleton.name, "num_joints": st.codec.num_keypoints}}


def adapt(cfg: AdaptConfig, domains: Domains, out_dir: str | os.PathLike, resume: bool = False,
          init_weights: str | os.PathLike | None = None, device: str | None = None,
          on_event: Callable[[str, dict[str, Any]], None] | None = None,
          stop_after: int | None = None) -> dict[str, Any]:
    """Run `cfg.method` from source to target into out_dir; returns the summary (history, final target metrics).

    `stop_after` ends the run (checkpoint written, stop_reason "stopped") once that many epochs are done; `resume`
    continues from out_dir/checkpoint.pth. `init_weights`: a state_dict (e.g. a source-only run's final_state.pth).
    """
    out = Path(out_dir)
    ckpt_path = out / "checkpoint.pth"
    if resume and not ckpt_path.is_file():
        raise ConfigError(f"adapt --resume: {ckpt_path} does not exist")
    out.mkdir(parents=True, exist_ok=True)
    st = _setup(cfg, domains, device)
    if init_weights:
        state = torch.load(init_weights, map_location="cpu", weights_only=False)
        state = state.get("model", state)
        if any(k.startswith("net.") for k in state):  # an adapt checkpoint (its discriminator may be absent here)
            missing, unexpected = st.net.load_state_dict(state, strict=False)
            bad = [k for k in missing if k.startswith("net.")] + [k for k in unexpected if k.startswith("net.")]
            if bad:
                raise ConfigError(f"{init_weights}: network keys do not match {cfg.model}: {bad[:5]}")
        else:  # a plain network state_dict (final_state.pth, round_RR.pth, exported weights)
            st.net.net.load_state_dict(state)
    optimizer = _optimizer(cfg, st.net)
    criterion = adapt_criterion(cfg.beta if cfg.method == "wscda" else 1.0, cfg.w1)
    epoch, history, pseudo_file, spent = 0, [], None, 0.0
    if resume:
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if state.get("config") != asdict(cfg):
            diff = [k for k, v in asdict(cfg).items() if state.get("config", {}).get(k) != v]
            raise ConfigError(f"{ckpt_path} was written with other adapt settings ({', '.join(diff)})")
        st.net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        epoch, history, pseudo_file, spent = state["epoch"], state["history"], state["pseudo_file"], state["seconds"]
    emit = on_event or (lambda kind, info: None)
    start = time.monotonic() - spent
    deadline = start + 60.0 * cfg.max_minutes if cfg.max_minutes > 0 else None
    src_ds = _source_dataset(st)
    human_ds = (TopDownDataset(st.human, st.codec, st.skeleton, augment=AugmentConfig.mpii(), train=True,
                               seed=cfg.seed + 2) if st.human else None)
    trg_ds = None
    if pseudo_file:
        trg_ds = _target_dataset(st, read_pseudo_labels(out / pseudo_file, st.target_train), 1)
    stop = "completed"
    while epoch < cfg.epochs:
        if deadline is not None and time.monotonic() >= deadline and history:
            stop = "max_minutes"  # the budget ran out during the previous epoch's evaluation / labelling
            history[-1].setdefault("metrics", evaluate_target(st.net, st.target_val, st.codec, st.skeleton,
                                                              st.device, cfg.eval_batch_size, st.val_gt_file))
            break
        adapting = cfg.method != "source" and epoch >= cfg.source_epochs
        a = epoch - cfg.source_epochs
        if adapting and a % cfg.round_every == 0:
            r = a // cfg.round_every
            labels = generate_pseudo_labels(st, r)
            pseudo_file = f"pseudo_labels/round_{r:02d}.json"
            write_pseudo_labels(out / pseudo_file, labels, st.target_train, domains.target_train.ann_file)
            trg_ds = _target_dataset(st, read_pseudo_labels(out / pseudo_file, st.target_train), 1)
            emit("pseudo_labels", {k: labels[k] for k in ("round", "threshold", "drop_fraction", "kept_fraction")})
        loaders: list[tuple[str, DataLoader, float]] = [
            ("source", _loader(src_ds, cfg.batch_size, cfg.seed, epoch, 0, cfg.workers),
             cfg.w2 if cfg.method == "wscda" else 1.0)]
        if cfg.method == "wscda":
            loaders.append(("human", _loader(human_ds, cfg.human_batch_size, cfg.seed, epoch, 2, cfg.workers), 1.0))
            # the unlabelled target always feeds the discriminator; its pose weight is 0 until PPLO labels exist
            tds = trg_ds if trg_ds is not None else _target_dataset(st, st.target_train, 1)
            loaders.append(("target", _loader(tds, cfg.target_batch_size, cfg.seed, epoch, 1, cfg.workers),
                            cfg.w2 if trg_ds is not None and adapting else 0.0))
        elif adapting and trg_ds is not None:
            loaders.append(("target", _loader(trg_ds, cfg.target_batch_size, cfg.seed, epoch, 1, cfg.workers),
                            cfg.target_weight))
        batches = JointBatches(loaders, cfg.iters_per_epoch)
        stop, logs = _train_one_epoch(st.net, criterion, batches, optimizer, st.device, epoch, deadline)
        epoch += 1
        entry: dict[str, Any] = {"epoch": epoch, **logs}
        round_end = adapting and (epoch - cfg.source_epochs) % cfg.round_every == 0
        if (round_end and cfg.eval_every_round) or epoch == cfg.epochs or stop == "max_minutes":
            entry["metrics"] = evaluate_target(st.net, st.target_val, st.codec, st.skeleton, st.device,
                                               cfg.eval_batch_size, st.val_gt_file)
        history.append(entry)
        seconds = time.monotonic() - start
        ckpt.atomic_save(_checkpoint_state(st, optimizer, epoch, history, pseudo_file, seconds), ckpt_path)
        if round_end:
            finished = (epoch - cfg.source_epochs) // cfg.round_every - 1
            ckpt.atomic_save(st.net.net.state_dict(), out / f"round_{finished:02d}.pth")
        emit("epoch", entry)
        if stop == "completed" and stop_after is not None and epoch >= stop_after and epoch < cfg.epochs:
            stop = "stopped"
        if stop != "completed":
            break
    if stop != "stopped":
        ckpt.atomic_save(st.net.net.state_dict(), out / "final_state.pth")
    final = next((h["metrics"] for h in reversed(history) if "metrics" in h), None)
    summary = {"method": cfg.method, "stop_reason": stop, "epoch": epoch, "history": history, "metrics": final,
               "seconds": time.monotonic() - start, "checkpoint": str(ckpt_path),
               "final_weights": str(out / "final_state.pth") if stop != "stopped" else None,
               "pseudo_file": pseudo_file}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    return summary


# ----------------------------------------------------------------------------------------------------------------
# Built-in synthetic domains


@dataclass(frozen=True)
class BuiltinDomains:
    """Sizes of posekit's synthetic domains: quadrupeds style A (source), style B (target), humans (WS-CDA)."""

    num_source: int = 600
    num_target: int = 400
    num_val: int = 120
    num_human: int = 400
    sequence_length: int = 8
    image_size: tuple[int, int] = (128, 128)
    seed: int = 0


def builtin_domains(root: str | os.PathLike, sizes: BuiltinDomains = BuiltinDomains(),
                    workers: int | None = None) -> Domains:
    """Generate (or reuse) the built-in domains under root: source/, target_train/ (sequences), target_val/, human/."""
    from posekit.data.synth import generate

    root = Path(root)
    plan = {
        "source": dict(num_images=sizes.num_source, kind="quadruped", style="A", seed=sizes.seed + 11),
        "target_train": dict(num_images=sizes.num_target, kind="quadruped", style="B", seed=sizes.seed + 12,
                             sequence_length=sizes.sequence_length),
        "target_val": dict(num_images=sizes.num_val, kind="quadruped", style="B", seed=sizes.seed + 13),
        "human": dict(num_images=sizes.num_human, kind="human", style="A", seed=sizes.seed + 14),
    }
    splits = {}
    for name, kw in plan.items():
        d = root / name
        marker = d / "plan.json"
        want = json.dumps({**kw, "image_size": list(sizes.image_size)}, sort_keys=True)
        if not (marker.is_file() and marker.read_text() == want and (d / "annotations.json").is_file()):
            generate(d, max_subjects=1, image_size=sizes.image_size, workers=workers, **kw)
            marker.write_text(want)
        splits[name] = Split(str(d / "annotations.json"), str(d / "images"))
    return Domains(splits["source"], splits["target_train"], splits["target_val"], splits["human"])


def copy_config(cfg: AdaptConfig, **changes: Any) -> AdaptConfig:
    """A copy of cfg with some fields changed (validated)."""
    return AdaptConfig(**{**copy.deepcopy(asdict(cfg)), **changes})


def benchmark(root: str | os.PathLike, pretrain_minutes: float = 2.0, adapt_minutes: float = 2.0,
              sizes: BuiltinDomains = BuiltinDomains(num_source=600, num_target=150, num_val=120, num_human=300,
                                                     sequence_length=10),
              base: AdaptConfig | None = None, device: str | None = None, pretrained: str | None = None,
              methods: Sequence[str] = ("source", "ccssl", "wscda"),
              on_event: Callable[[str, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Equal budgets: a shared source-only stage of `pretrain_minutes` (or `pretrained`, the final_state.pth of an
    earlier stage), then `adapt_minutes` more of source-only, CC-SSL or WS-CDA from it. Returns {method: target
    held-out metrics}, the stage's own metrics as "pretrain", and "source_domain": the source-only model on a
    held-out split of the SOURCE style (the size of the domain gap)."""
    from posekit.data.synth import generate

    root = Path(root)
    domains = builtin_domains(root / "data", sizes)
    base = base or AdaptConfig(model="hourglass_bearpaw_1stack_128x128", epochs=10_000, iters_per_epoch=20,
                               round_every=3, batch_size=12, target_batch_size=12, human_batch_size=12,
                               optimizer="adam", lr=1e-3)
    emit = on_event or (lambda kind, info: None)
    out: dict[str, Any] = {}
    if pretrained is None:
        pre = adapt(copy_config(base, method="source", max_minutes=pretrain_minutes), domains, root / "pretrain",
                    device=device, on_event=lambda k, i: emit(f"pretrain/{k}", i))
        pretrained = pre["final_weights"]
        out["pretrain"] = {**pre["metrics"], "epochs": pre["epoch"], "seconds": pre["seconds"]}
    for method in methods:
        res = adapt(copy_config(base, method=method, max_minutes=adapt_minutes), domains, root / method,
                    init_weights=pretrained, device=device,
                    on_event=lambda k, i, m=method: emit(f"{m}/{k}", i))
        out[method] = {**res["metrics"], "epochs": res["epoch"], "seconds": res["seconds"]}
    if "source" in methods:  # the domain gap: the source-only model on held-out images of the source style
        d = root / "data" / "source_val"
        if not (d / "annotations.json").is_file():
            generate(d, sizes.num_val, kind="quadruped", style="A", seed=sizes.seed + 15, max_subjects=1,
                     image_size=sizes.image_size, workers=1)
        st = _setup(copy_config(base, method="source"), Domains(domains.source, domains.target_train,
                                                                 Split(str(d / "annotations.json"),
                                                                       str(d / "images"))), device)
        st.net.net.load_state_dict(torch.load(root / "source" / "final_state.pth", map_location="cpu"))
        out["source_domain"] = evaluate_target(st.net, st.target_val, st.codec, st.skeleton, st.device,
                                               base.eval_batch_size, st.val_gt_file)
    return out
