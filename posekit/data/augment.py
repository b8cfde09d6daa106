"""Top-down training augmentation (official HRNet/SimpleBaseline rules) driven by a numpy Generator.

Per sample: half-body (prob 0.3 when more than 8 joints are labelled), scale s *= clip(N(0,1)*sf + 1, 1-sf,
1+sf), rotation clip(N(0,1)*rf, -2rf, 2rf) with prob 0.6, horizontal flip with prob 0.5; optional colour
jitter on the crop (off by default). Sampling is separated from applying, so a seed fixes the whole sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posekit.errors import ConfigError


@dataclass
class AugmentConfig:
    """Augmentation parameters; the defaults are the official COCO ones (`mpii()` gives MPII's)."""

    scale_factor: float = 0.35
    rotation_factor: float = 45.0
    rotation_prob: float = 0.6
    flip: bool = True
    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    num_joints_half_body: int = 8
    half_body_enlarge: float = 1.5
    color_jitter: bool = False
    brightness: float = 0.2  # factor drawn from [1 - b, 1 + b] when color_jitter
    contrast: float = 0.2  # factor drawn from [1 - c, 1 + c] when color_jitter

    def __post_init__(self) -> None:
        for name in ("scale_factor", "rotation_factor", "brightness", "contrast", "half_body_enlarge"):
            if getattr(self, name) < 0:
                raise ConfigError(f"AugmentConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.scale_factor >= 1:
            raise ConfigError(f"AugmentConfig.scale_factor must be < 1, got {self.scale_factor}")
        for name in ("rotation_prob", "flip_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"AugmentConfig.{name} must be in [0, 1], got {getattr(self, name)}")

    @classmethod
    def coco(cls) -> AugmentConfig:
        """Official COCO settings (SCALE_FACTOR 0.35, ROT_FACTOR 45, PROB_HALF_BODY 0.3)."""
        return cls()

    @classmethod
    def mpii(cls) -> AugmentConfig:
        """Official MPII settings (SCALE_FACTOR 0.25, ROT_FACTOR 30, no half-body)."""
        return cls(scale_factor=0.25, rotation_factor=30.0, half_body_prob=-1.0)

    @classmethod
    def none(cls) -> AugmentConfig:
        """No augmentation at all."""
        return cls(scale_factor=0.0, rotation_factor=0.0, rotation_prob=0.0, flip=False, half_body_prob=-1.0)


@dataclass
class Augmentation:
    """One sampled augmentation: the box to crop (before flipping), rotation in degrees, flip, jitter factors."""

    center: np.ndarray
    size: np.ndarray
    rotation: float = 0.0
    flip: bool = False
    half_body: bool = False
    scale: float = 1.0
    brightness: float = 1.0
    contrast: float = 1.0


def half_body_box(
    joints: np.ndarray,
    visible: np.ndarray,
    upper_body_ids: tuple[int, ...] | list[int],
    aspect_ratio: float,
    rng: np.random.Generator,
    enlarge: float = 1.5,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Official half_body_transform: box around the labelled upper or lower joints -> (center, size px) or None.

    As in the official code the upper body is chosen when a standard normal draw is < 0.5 (about 69 %) and it has
    more than 2 labelled joints, else the lower body if it has more than 2, else the upper body.
    """
    upper_set = set(int(i) for i in upper_body_ids)
    upper = [joints[i, :2] for i in range(len(joints)) if visible[i] and i in upper_set]
    lower = [joints[i, :2] for i in range(len(joints)) if visible[i] and i not in upper_set]
    if rng.standard_normal() < 0.5 and len(upper) > 2:
        selected = upper
    else:
        selected = lower if len(lower) > 2 else upper
    if len(selected) < 2:
        return None
    pts = np.asarray(selected, dtype=np.float32)
    center = pts.mean(axis=0)
    left_top = pts.min(axis=0)
    right_bottom = pts.max(axis=0)
    w = float(right_bottom[0] - left_top[0])
    h = float(right_bottom[1] - left_top[1])
    if w > aspect_ratio * h:
        h = w * 1.0 / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    size = np.array([w, h], dtype=np.float64) * enlarge
    return center.astype(np.float64), size


def sample_augmentation(
    rng: np.random.Generator,
    cfg: AugmentConfig,
    center: np.ndarray,
    size: np.ndarray,
    keypoints: np.ndarray,
    upper_body_ids: tuple[int, ...] | list[int],
    aspect_ratio: float,
) -> Augmentation:
    """Draw one training augmentation in the official order (half-body, scale, rotation, flip, then jitter)."""
    center = np.asarray(center, dtype=np.float64).copy()
    size = np.asarray(size, dtype=np.float64).copy()
    visible = np.asarray(keypoints)[:, 2] > 0
    half = False
    if int(visible.sum()) > cfg.num_joints_half_body and rng.random() < cfg.half_body_prob:
        box = half_body_box(keypoints, visible, upper_body_ids, aspect_ratio, rng, cfg.half_body_enlarge)
        if box is not None:
            center, size = box
            half = True
    sf, rf = cfg.scale_factor, cfg.rotation_factor
    scale = min(max(float(rng.standard_normal()) * sf + 1, 1 - sf), 1 + sf)  # np.clip, without its overhead
    size = size * scale
    rot = 0.0
    if rng.random() <= cfg.rotation_prob:
        rot = min(max(float(rng.standard_normal()) * rf, -rf * 2), rf * 2)
    flip = bool(cfg.flip and rng.random() <= cfg.flip_prob)
    bright = contrast = 1.0
    if cfg.color_jitter:
        bright = float(rng.uniform(1 - cfg.brightness, 1 + cfg.brightness))
        contrast = float(rng.uniform(1 - cfg.contrast, 1 + cfg.contrast))
    return Augmentation(center=center, size=size, rotation=rot, flip=flip, half_body=half, scale=scale,
                        brightness=bright, contrast=contrast)


def jitter_colors(crop: np.ndarray, brightness: float, contrast: float) -> np.ndarray:
    """Brightness (multiply) then contrast (blend with the mean grey level) on a uint8 image; returns uint8."""
    if brightness == 1.0 and contrast == 1.0:
        return crop
    x = crop.astype(np.float32) * brightness
    if contrast != 1.0:
        mean = float(x.mean())
        x = (x - mean) * contrast + mean
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)
