"""Procedural backgrounds: style A (room/outdoor scene with textures and clutter), style B (flat cartoon scenery)."""

from __future__ import annotations

import cv2
import numpy as np

from posekit.data.synth.materials import hsv


def _smooth_noise(rng: np.random.Generator, size: tuple[int, int], cell: float) -> np.ndarray:
    w, h = size
    gw, gh = max(2, int(w / cell) + 2), max(2, int(h / cell) + 2)
    return cv2.resize(rng.standard_normal((gh, gw)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)


def _clutter_a(rng: np.random.Generator, img: np.ndarray, horizon: int) -> None:
    """One background object (box, ellipse, pole, plant, window) drawn in place, softly shaded."""
    h, w = img.shape[:2]
    s = max(w, h)
    color = np.array(hsv(rng.random(), rng.uniform(0.1, 0.6), rng.uniform(0.25, 0.85)))
    shade = 0.7 + 0.3 * rng.random()
    kind = rng.choice(["box", "ellipse", "pole", "plant", "window"])
    x, y = int(rng.uniform(-0.1, 1.0) * w), int(rng.uniform(0.1, 1.0) * h)
    if kind == "box":
        bw, bh = int(rng.uniform(0.1, 0.45) * s), int(rng.uniform(0.08, 0.35) * s)
        top = int(bh * rng.uniform(0.15, 0.3))
        cv2.rectangle(img, (x, y - bh), (x + bw, y), color.tolist(), -1)
        cv2.rectangle(img, (x, y - bh - top), (x + bw, y - bh), (color * 1.2).clip(0, 255).tolist(), -1)
        cv2.line(img, (x, y - bh), (x + bw, y - bh), (color * shade * 0.6).tolist(), max(1, s // 200))
    elif kind == "ellipse":
        axes = (int(rng.uniform(0.03, 0.15) * s), int(rng.uniform(0.03, 0.15) * s))
        cv2.ellipse(img, (x, y), axes, rng.uniform(0, 180), 0, 360, color.tolist(), -1)
        cv2.ellipse(img, (x - axes[0] // 4, y - axes[1] // 4), (axes[0] // 2, axes[1] // 2), 0, 0, 360,
                    (color * 1.15).clip(0, 255).tolist(), -1)
    elif kind == "pole":
        t = max(2, int(rng.uniform(0.01, 0.04) * s))
        cv2.rectangle(img, (x, 0), (x + t, y), (color * shade).tolist(), -1)
    elif kind == "plant":
        green = np.array(hsv(rng.uniform(0.22, 0.4), rng.uniform(0.4, 0.8), rng.uniform(0.25, 0.6)))
        r = int(rng.uniform(0.03, 0.07) * s)
        for _ in range(int(rng.integers(4, 9))):
            dx, dy = rng.normal(0, 1.2 * r, 2)
            leaf = (green * rng.uniform(0.8, 1.2)).clip(0, 255).tolist()
            cv2.circle(img, (int(x + dx), int(y - 2 * r + dy)), r, leaf, -1)
    else:
        ww, wh = int(rng.uniform(0.1, 0.3) * s), int(rng.uniform(0.1, 0.3) * s)
        y0 = int(rng.uniform(0, max(1, horizon - wh)))
        sky = np.array(hsv(rng.uniform(0.5, 0.65), rng.uniform(0.1, 0.4), rng.uniform(0.7, 1.0)))
        cv2.rectangle(img, (x, y0), (x + ww, y0 + wh), sky.tolist(), -1)
        frame = max(1, s // 120)
        cv2.rectangle(img, (x, y0), (x + ww, y0 + wh), (color * 0.8).tolist(), frame)
        cv2.line(img, (x + ww // 2, y0), (x + ww // 2, y0 + wh), (color * 0.8).tolist(), frame)


def background_a(rng: np.random.Generator, size: tuple[int, int], clutter: int) -> np.ndarray:
    """Style A: a wall/sky over a floor/ground, with lighting gradients, noise textures and a few objects."""
    w, h = size
    horizon = int(rng.uniform(0.25, 0.75) * h)
    outdoor = rng.random() < 0.4
    if outdoor:
        top = np.array(hsv(rng.uniform(0.52, 0.65), rng.uniform(0.15, 0.5), rng.uniform(0.6, 0.95)))
        bottom = np.array(hsv(rng.uniform(0.08, 0.38), rng.uniform(0.2, 0.6), rng.uniform(0.3, 0.7)))
    else:
        top = np.array(hsv(rng.random(), rng.uniform(0.03, 0.3), rng.uniform(0.4, 0.9)))
        bottom = np.array(hsv(rng.random(), rng.uniform(0.05, 0.4), rng.uniform(0.25, 0.75)))
    yy = np.arange(h, dtype=np.float32)[:, None]
    grad = 1.0 + 0.2 * (yy / h - 0.5) * rng.uniform(-1, 1)
    img = np.where((yy < horizon)[..., None], top, bottom).astype(np.float32) * grad[..., None]
    img = np.broadcast_to(img, (h, w, 3)).copy()
    img *= (1.0 + 0.07 * _smooth_noise(rng, size, max(w, h) / 5.0))[..., None]
    if rng.random() < 0.5:  # floor boards / tiles converging to a vanishing point
        vx = rng.uniform(0, w)
        line = (bottom * 0.75).tolist()
        for x in np.linspace(-w, 2 * w, int(rng.integers(6, 14))):
            cv2.line(img, (int(vx), horizon), (int(x), h), line, 1, cv2.LINE_AA)
    for _ in range(int(rng.integers(0, clutter + 1))):
        _clutter_a(rng, img, horizon)
    img *= (1.0 + 0.05 * _smooth_noise(rng, size, 3.0))[..., None]
    img = cv2.GaussianBlur(img, (0, 0), 0.8 * max(w, h) / 256.0)
    return np.clip(img, 0, 255, out=img)


def background_b(rng: np.random.Generator, size: tuple[int, int], clutter: int) -> np.ndarray:
    """Style B: flat bright sky and ground bands with outlined cartoon shapes (sun, clouds, hills, stars)."""
    w, h = size
    s = max(w, h)
    horizon = int(rng.uniform(0.4, 0.8) * h)
    sky = hsv(rng.random(), rng.uniform(0.15, 0.45), 1.0)
    ground = hsv(rng.random(), rng.uniform(0.5, 0.9), rng.uniform(0.55, 0.95))
    img = np.empty((h, w, 3), np.float32)
    img[:] = sky
    ink = (20.0, 20.0, 30.0)
    lw = max(1, s // 150)
    if rng.random() < 0.4:  # polka dots
        dot = hsv(rng.random(), 0.3, 1.0)
        step = int(rng.uniform(0.06, 0.12) * s)
        for y in range(step // 2, horizon, step):
            for x in range((y // step % 2) * step // 2, w, step):
                cv2.circle(img, (x, y), max(1, step // 6), dot, -1)
    if rng.random() < 0.6:
        hill = hsv(rng.random(), rng.uniform(0.4, 0.8), rng.uniform(0.6, 0.9))
        cx, r = int(rng.uniform(0, w)), int(rng.uniform(0.2, 0.5) * s)
        cv2.circle(img, (cx, horizon + r // 2), r, hill, -1)
        cv2.circle(img, (cx, horizon + r // 2), r, ink, lw)
    cv2.rectangle(img, (0, horizon), (w, h), ground, -1)
    cv2.line(img, (0, horizon), (w, horizon), ink, lw)
    for _ in range(int(rng.integers(1, clutter + 2))):
        kind = rng.choice(["sun", "cloud", "star", "square", "tree"])
        x, y = int(rng.uniform(0, w)), int(rng.uniform(0, horizon))
        r = int(rng.uniform(0.04, 0.1) * s)
        if kind == "sun":
            cv2.circle(img, (x, y), r, (255.0, 215.0, 40.0), -1)
            cv2.circle(img, (x, y), r, ink, lw)
        elif kind == "cloud":
            for dx in (-r, 0, r):
                cv2.ellipse(img, (x + dx, y - (r // 3 if dx == 0 else 0)), (r, int(r * 0.7)), 0, 0, 360,
                            (250.0, 250.0, 255.0), -1)
        elif kind == "star":
            ang = np.linspace(0, 2 * np.pi, 11)[:-1] + rng.uniform(0, 1)
            rad = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
            pts = np.stack([x + rad * np.cos(ang), y + rad * np.sin(ang)], 1).astype(np.int32)
            cv2.fillPoly(img, [pts], hsv(rng.random(), 0.8, 1.0))
            cv2.polylines(img, [pts], True, ink, lw)
        elif kind == "square":
            c = hsv(rng.random(), 0.7, 0.95)
            cv2.rectangle(img, (x - r, y - r), (x + r, y + r), c, -1)
            cv2.rectangle(img, (x - r, y - r), (x + r, y + r), ink, lw)
        else:
            yb = int(rng.uniform(horizon, h))
            cv2.rectangle(img, (x - r // 4, yb - 2 * r), (x + r // 4, yb), (140.0, 90.0, 50.0), -1)
            cv2.circle(img, (x, yb - 2 * r - r // 2), r, hsv(rng.uniform(0.25, 0.4), 0.8, 0.75), -1)
            cv2.circle(img, (x, yb - 2 * r - r // 2), r, ink, lw)
    return img


def background(rng: np.random.Generator, style: str, size: tuple[int, int], clutter: int) -> np.ndarray:
    """A background image [H,W,3] float32 RGB (0-255) of the given style."""
    return background_a(rng, size, clutter) if style == "A" else background_b(rng, size, clutter)
