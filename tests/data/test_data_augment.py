"""Augmentation sampling: official distributions and rules, determinism under a seed."""

from __future__ import annotations

import numpy as np
import pytest

from posekit import skeletons
from posekit.data.augment import AugmentConfig, half_body_box, jitter_colors, sample_augmentation
from posekit.errors import ConfigError

COCO = skeletons.get("coco")


def _person(rng: np.random.Generator, labelled: int = 17) -> np.ndarray:
    kp = np.zeros((17, 3), np.float32)
    kp[:, :2] = rng.uniform(100, 300, size=(17, 2))
    kp[:labelled, 2] = 2
    return kp


def _draw(cfg, n=4000, labelled=17, seed=0):
    rng = np.random.default_rng(seed)
    kp = _person(np.random.default_rng(1), labelled)
    return [sample_augmentation(rng, cfg, np.array([200.0, 200.0]), np.array([150.0, 200.0]), kp,
                                COCO.upper_body_ids, 0.75) for _ in range(n)]


def test_official_distributions():
    cfg = AugmentConfig()
    draws = _draw(cfg)
    scales = np.array([a.scale for a in draws])
    rots = np.array([a.rotation for a in draws])
    assert scales.min() >= 0.65 - 1e-12 and scales.max() <= 1.35 + 1e-12
    # clip(N(0,1) * 0.35 + 1, 0.65, 1.35): P(at a bound) = 2 * P(N > 1) = 0.317
    assert abs(np.mean((scales <= 0.65 + 1e-12) | (scales >= 1.35 - 1e-12)) - 0.317) < 0.03
    assert abs(np.mean(rots == 0) - 0.4) < 0.03  # rotation only with probability 0.6
    assert np.abs(rots).max() <= 90 and abs(np.mean(np.abs(rots) == 90) / 0.6 - 0.0455) < 0.02
    assert abs(np.mean([a.flip for a in draws]) - 0.5) < 0.03
    assert abs(np.mean([a.half_body for a in draws]) - 0.3) < 0.03
    whole = [a for a in draws if not a.half_body]
    np.testing.assert_allclose([a.size / a.scale for a in whole[:50]], [[150.0, 200.0]] * 50)
    assert not any(a.half_body for a in _draw(cfg, 300, labelled=8))  # needs more than 8 labelled joints
    none = _draw(AugmentConfig.none(), 200)
    assert all(a.scale == 1 and a.rotation == 0 and not a.flip and not a.half_body for a in none)
    mpii = np.array([a.scale for a in _draw(AugmentConfig.mpii(), 500)])
    assert mpii.min() >= 0.75 - 1e-12 and mpii.max() <= 1.25 + 1e-12


def test_determinism():
    a = _draw(AugmentConfig(color_jitter=True), 50, seed=7)
    b = _draw(AugmentConfig(color_jitter=True), 50, seed=7)
    c = _draw(AugmentConfig(color_jitter=True), 50, seed=8)
    key = [(x.rotation, x.scale, x.flip, x.half_body, x.brightness, tuple(x.center)) for x in a]
    assert key == [(x.rotation, x.scale, x.flip, x.half_body, x.brightness, tuple(x.center)) for x in b]
    assert key != [(x.rotation, x.scale, x.flip, x.half_body, x.brightness, tuple(x.center)) for x in c]


class _FixedNormal:
    """Stands in for a Generator: standard_normal() returns a fixed value (selects upper / lower body)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def standard_normal(self) -> float:
        return self.value


def test_half_body_box_official_rule():
    joints = np.zeros((17, 2))
    vis = np.zeros(17, bool)
    joints[[5, 6, 7]] = [[10, 20], [30, 20], [20, 80]]  # upper body: 3 labelled
    joints[[11, 12, 13]] = [[0, 100], [40, 100], [20, 140]]  # lower body: 3 labelled
    vis[[5, 6, 7, 11, 12, 13]] = True
    center, size = half_body_box(joints, vis, COCO.upper_body_ids, 0.75, _FixedNormal(0.0))  # < 0.5 -> upper
    np.testing.assert_allclose(center, [20, 40])
    # w = 20, h = 60 -> w < 0.75 h -> w = 45; times 1.5
    np.testing.assert_allclose(size, [45 * 1.5, 60 * 1.5])
    center, size = half_body_box(joints, vis, COCO.upper_body_ids, 0.75, _FixedNormal(0.7))  # -> lower
    np.testing.assert_allclose(center, [20, 340 / 3], rtol=1e-6)
    np.testing.assert_allclose(size, [40 * 1.5, 40 / 0.75 * 1.5], rtol=1e-6)
    vis[[12, 13]] = False  # lower has 1 joint -> upper even when lower was drawn
    center, _ = half_body_box(joints, vis, COCO.upper_body_ids, 0.75, _FixedNormal(0.7))
    np.testing.assert_allclose(center, [20, 40])
    vis[:] = False
    vis[[5, 11]] = True  # 1 + 1: fewer than 2 selected -> None
    assert half_body_box(joints, vis, COCO.upper_body_ids, 0.75, _FixedNormal(0.0)) is None


def test_color_jitter():
    img = np.full((4, 4, 3), 100, np.uint8)
    img[0, 0] = 200
    np.testing.assert_array_equal(jitter_colors(img, 1.0, 1.0), img)
    np.testing.assert_array_equal(jitter_colors(img, 1.2, 1.0), np.clip(np.round(img * 1.2), 0, 255))
    low = jitter_colors(img, 1.0, 0.5).astype(float)
    assert low.std() == pytest.approx(img.std() * 0.5, rel=0.05)


def test_config_validation():
    with pytest.raises(ConfigError, match="scale_factor"):
        AugmentConfig(scale_factor=1.5)
    with pytest.raises(ConfigError, match="flip_prob"):
        AugmentConfig(flip_prob=2)
