"""Pinhole camera helpers for 3-D pose: camera <-> pixel, world -> camera, Human3.6M lens distortion.

Conventions: camera frame x right, y down, z forward (mm unless a dataset says otherwise); pixel (u, v) with
u = fx * X / Z + cx; `f` and `c` are (fx, fy) and (cx, cy) in pixels. `cam2pixel` / `pixel2cam` are the 3DMPPE
functions (common/utils/pose_utils.py): cam2pixel divides by Z + 1e-8 (so Z = 0 gives a huge but finite value),
pixel2cam has no epsilon; both keep the input dtype (float32 in, float32 out, as the official arrays).
`world2cam(world, R, t)` is the 3DMPPE / "common" H36M json convention X_cam = R X_world + t. The mmpose
cameras.pkl convention (R camera-to-world, T camera centre in world) is `world2cam_mmpose`.
`distort` applies H36M's radial (k1, k2, k3) + tangential (p1, p2) model to normalised image coordinates; 3DMPPE
ignores distortion (pinhole only), which costs up to ~3 px on the real H36M frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from posekit.errors import DataError

ArrayLike = np.ndarray | Sequence[float]


def _points(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim < 1 or x.shape[-1] != 3:
        raise DataError(f"{what}: expected points [..., 3], got shape {x.shape}")
    return x


def cam2pixel(cam: np.ndarray, f: ArrayLike, c: ArrayLike) -> np.ndarray:
    """Camera points [..., 3] -> [..., 3] (u, v, Z): u = X / (Z + 1e-8) * fx + cx (official cam2pixel)."""
    cam = _points(cam, "cam2pixel")
    f = np.asarray(f).reshape(-1)
    c = np.asarray(c).reshape(-1)
    z = cam[..., 2]
    u = cam[..., 0] / (z + 1e-8) * f[0] + c[0]
    v = cam[..., 1] / (z + 1e-8) * f[1] + c[1]
    return np.stack([u, v, z], axis=-1)


def pixel2cam(pixel: np.ndarray, f: ArrayLike, c: ArrayLike) -> np.ndarray:
    """Pixels with depth [..., 3] (u, v, Z) -> camera points: X = (u - cx) / fx * Z (official pixel2cam)."""
    pixel = _points(pixel, "pixel2cam")
    f = np.asarray(f).reshape(-1)
    c = np.asarray(c).reshape(-1)
    z = pixel[..., 2]
    x = (pixel[..., 0] - c[0]) / f[0] * z
    y = (pixel[..., 1] - c[1]) / f[1] * z
    return np.stack([x, y, z], axis=-1)


def world2cam(world: np.ndarray, R: np.ndarray, t: ArrayLike) -> np.ndarray:
    """World points [..., 3] -> camera: R @ X + t (3DMPPE / common H36M json: R world-to-camera, t in mm)."""
    world = _points(world, "world2cam")
    R = np.asarray(R).reshape(3, 3)
    t = np.asarray(t).reshape(1, 3)
    flat = world.reshape(-1, 3)
    return (np.dot(R, flat.T).T + t).reshape(world.shape)


def world2cam_mmpose(world: np.ndarray, R: np.ndarray, T: ArrayLike) -> np.ndarray:
    """World points -> camera for mmpose's H36M cameras.pkl: X_cam = (X_world - T) @ R (R camera-to-world)."""
    world = _points(world, "world2cam_mmpose")
    return (world - np.asarray(T).reshape(1, 3)) @ np.asarray(R).reshape(3, 3)


def distort(xn: np.ndarray, k: ArrayLike, p: ArrayLike) -> np.ndarray:
    """Normalised coords [..., 2] (X/Z, Y/Z) -> distorted, H36M model (radial k1..k3, tangential p1, p2)."""
    xn = np.asarray(xn, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64).reshape(-1)
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    r2 = np.sum(xn**2, axis=-1, keepdims=True)
    radial = 1 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3
    tan = p[0] * xn[..., 1:2] + p[1] * xn[..., 0:1]
    return xn * (radial + tan) + r2 * p[::-1]


def project(cam: np.ndarray, f: ArrayLike, c: ArrayLike, k: ArrayLike | None = None,
            p: ArrayLike | None = None) -> np.ndarray:
    """Camera points [..., 3] -> pixels [..., 2]; with H36M distortion when k (3) and p (2) are given."""
    cam = np.asarray(_points(cam, "project"), dtype=np.float64)
    xn = cam[..., :2] / cam[..., 2:3]
    if k is not None and p is not None:
        xn = distort(xn, k, p)
    return xn * np.asarray(f, np.float64).reshape(-1)[:2] + np.asarray(c, np.float64).reshape(-1)[:2]
