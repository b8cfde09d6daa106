"""Colours and procedural textures of figures for the two rendering styles (A: shaded, textured; B: flat cartoon)."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

# Texture kinds: values of a texture field lie in [-1, 1]; a pixel's colour is base * (1 + amplitude * field).
TEXTURES = ("plain", "noise", "stripes", "stripes2", "checker", "spots", "fine")


@dataclass(frozen=True)
class Material:
    """Base colour (RGB, 0-255), texture kind and texture amplitude."""

    color: tuple[float, float, float]
    texture: str = "plain"
    amp: float = 0.0


def hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    """RGB (0-255) of a hue in [0, 1) and saturation/value in [0, 1]."""
    r, g, b = colorsys.hsv_to_rgb(float(h) % 1.0, float(s), float(v))
    return 255.0 * r, 255.0 * g, 255.0 * b


_SKIN_A = ((255, 219, 190), (241, 194, 160), (224, 172, 135), (198, 134, 96), (160, 104, 70), (112, 70, 45),
           (80, 52, 36))
_HAIR_A = ((20, 16, 14), (55, 35, 22), (100, 65, 35), (190, 150, 90), (140, 140, 140), (150, 60, 25))
_SKIN_B = ((255, 205, 160), (255, 220, 80), (210, 150, 100), (150, 95, 60), (255, 180, 200), (170, 220, 150))
_FUR_A = ((120, 80, 45), (190, 150, 100), (60, 45, 35), (30, 28, 26), (220, 215, 205), (200, 120, 50),
          (130, 130, 125), (160, 110, 70))


def _pick(rng: np.random.Generator, options: tuple, jitter: float = 10.0) -> tuple[float, float, float]:
    c = np.asarray(options[rng.integers(len(options))], np.float64) + rng.normal(0, jitter, 3)
    return tuple(float(v) for v in np.clip(c, 0, 255))


def _cloth_a(rng: np.random.Generator) -> Material:
    color = hsv(rng.random(), rng.uniform(0.15, 0.75), rng.uniform(0.25, 0.9))
    tex = str(rng.choice(["plain", "noise", "stripes", "stripes2", "checker", "fine"], p=[.3, .2, .15, .1, .1, .15]))
    return Material(color, tex, 0.0 if tex == "plain" else rng.uniform(0.12, 0.3))


def _cloth_b(rng: np.random.Generator) -> Material:
    color = hsv(rng.integers(12) / 12.0, rng.uniform(0.7, 1.0), rng.uniform(0.75, 1.0))
    tex = str(rng.choice(["plain", "stripes", "checker", "spots"], p=[.55, .2, .1, .15]))
    return Material(color, tex, 0.0 if tex == "plain" else rng.uniform(0.3, 0.5))


def figure_materials(rng: np.random.Generator, kind: str, style: str) -> dict[str, Material]:
    """Materials of one figure, by the material names used in skeleton3d."""
    dark = Material((25.0, 20.0, 20.0))
    if kind == "human":
        if style == "A":
            skin = Material(_pick(rng, _SKIN_A), "fine", 0.04)
            hair = Material(_pick(rng, _HAIR_A), "fine", 0.15)
            shirt, pants = _cloth_a(rng), _cloth_a(rng)
            if rng.random() < 0.4:
                pants = Material(_pick(rng, ((50, 70, 110), (30, 30, 35), (170, 150, 110), (90, 90, 95))), "fine", 0.1)
            shoes = Material(_pick(rng, ((30, 25, 25), (230, 230, 230), (90, 60, 40))), "plain")
        else:
            skin = Material(_pick(rng, _SKIN_B, 5.0))
            hair = Material(hsv(rng.random(), rng.uniform(0.5, 1.0), rng.uniform(0.2, 0.9)))
            shirt, pants = _cloth_b(rng), _cloth_b(rng)
            shoes = Material(hsv(rng.random(), 0.8, 0.6))
        nose = Material(tuple(0.85 * c for c in skin.color))
        ear = Material(tuple(0.9 * c for c in skin.color))
        return {"skin": skin, "hair": hair, "shirt": shirt, "pants": pants, "shoes": shoes, "eye": dark,
                "nose": nose, "ear": ear}
    if style == "A":
        tex = str(rng.choice(["plain", "noise", "spots", "stripes", "fine"], p=[.25, .25, .2, .1, .2]))
        fur = Material(_pick(rng, _FUR_A, 15.0), tex, rng.uniform(0.15, 0.4) if tex != "plain" else 0.05)
    else:
        tex = str(rng.choice(["plain", "spots", "stripes"], p=[.6, .25, .15]))
        fur = Material(hsv(rng.integers(12) / 12.0, rng.uniform(0.5, 0.9), rng.uniform(0.7, 1.0)), tex,
                       0.0 if tex == "plain" else 0.45)
    light = tuple(float(min(255.0, 0.6 * c + 100)) for c in fur.color)
    snout = Material(light if rng.random() < 0.5 else fur.color, fur.texture if rng.random() < 0.5 else "plain",
                     fur.amp)
    ear = Material(tuple(0.8 * c for c in fur.color), fur.texture, fur.amp)
    paw = Material(light if rng.random() < 0.4 else tuple(0.85 * c for c in fur.color))
    return {"fur": fur, "snout": snout, "ear": ear, "paw": paw, "eye": dark, "nose": dark}


def texture_field(rng: np.random.Generator, kind: str, size: tuple[int, int]) -> np.ndarray:
    """A texture field [H,W] float32 in [-1, 1] of the given kind."""
    w, h = size
    scale = max(w, h) / 256.0
    if kind == "plain":
        return np.zeros((h, w), np.float32)
    if kind in ("noise", "fine", "spots"):
        cell = {"noise": 10.0, "fine": 2.5, "spots": 7.0}[kind] * scale
        gw, gh = max(2, int(w / cell) + 2), max(2, int(h / cell) + 2)
        n = cv2.resize(rng.standard_normal((gh, gw)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        if kind == "spots":
            return -(n > 0.7).astype(np.float32)
        return np.clip(n * np.float32(1 / 1.5), -1, 1)
    yy, xx = _grid(w, h)
    if kind in ("stripes", "stripes2"):
        theta = rng.uniform(0, np.pi)
        period = rng.uniform(4, 10) * scale
        t = xx * np.float32(np.cos(theta) / period) + yy * np.float32(np.sin(theta) / period)
        return np.where(t - np.floor(t) < 0.5, np.float32(1.0), np.float32(-1.0))
    period = rng.uniform(5, 10) * scale  # checker
    t = np.floor(xx / np.float32(period)) + np.floor(yy / np.float32(period))
    return np.where(t % 2 == 0, np.float32(1.0), np.float32(-1.0))


@lru_cache(maxsize=8)
def _grid(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return yy, xx
