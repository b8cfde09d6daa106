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


Intrinsics = tuple[tuple[float, float], tuple[float, float] | None]  # ((fx, fy), (cx, cy) or None = image centre)


def _intrinsics(entry: object, where: str) -> Intrinsics:
    """{"f": f | [fx, fy], "c": [cx, cy]} / {"fx", "fy", "cx", "cy"} / {"K": 3x3} -> ((fx, fy), (cx, cy) | None)."""
    if not isinstance(entry, dict):
        raise DataError(f"{where}: expected an object with f (and c), fx/fy (cx/cy) or K, got {type(entry).__name__}")
    try:
        if "K" in entry:
            k = np.asarray(entry["K"], dtype=np.float64).reshape(3, 3)
            f, c = (k[0, 0], k[1, 1]), (k[0, 2], k[1, 2])
        elif "f" in entry:
            fv = np.asarray(entry["f"], dtype=np.float64).reshape(-1)
            f = (fv[0], fv[-1])
            c = tuple(np.asarray(entry["c"], dtype=np.float64).reshape(2)) if "c" in entry else None
        else:
            f = (float(entry["fx"]), float(entry.get("fy", entry["fx"])))
            c = (float(entry["cx"]), float(entry["cy"])) if "cx" in entry else None
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{where}: expected f (px, one or two values) and optionally c [cx, cy], fx/fy/cx/cy or a "
                        f"3x3 K ({e})") from None
    vals = list(f) + (list(c) if c is not None else [])
    if not all(np.isfinite(vals)) or min(f) <= 0:
        raise DataError(f"{where}: the focal length must be > 0 and every value finite, got f={list(f)} c={c}")
    return (float(f[0]), float(f[1])), None if c is None else (float(c[0]), float(c[1]))


def read_intrinsics(path: str) -> tuple[Intrinsics | None, dict[str, Intrinsics]]:
    """An intrinsics JSON file -> (one camera for every image or None, {image file name: camera}).

    Accepted: one camera ({"f": [fx, fy], "c": [cx, cy]}, {"fx", "fy", "cx", "cy"} or {"K": 3x3}); a mapping from
    image file names to such cameras; or a posekit synthetic / COCO-style annotations file whose annotations carry
    `cam_intrinsics` (per image, matched by file name).
    """
    import json
    from pathlib import Path

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"intrinsics file {path}: cannot be read as JSON ({e})") from None
    if isinstance(data, dict) and "images" in data and "annotations" in data:
        names = {im.get("id"): Path(str(im.get("file_name", ""))).name for im in data["images"]}
        table = {}
        for i, ann in enumerate(data["annotations"]):
            if "cam_intrinsics" in ann and ann.get("image_id") in names:
                table[names[ann["image_id"]]] = _intrinsics(ann["cam_intrinsics"], f"{path}: annotations[{i}]")
        if not table:
            raise DataError(f"intrinsics file {path}: an annotations file without cam_intrinsics entries")
        return None, table
    if isinstance(data, dict) and any(k in data for k in ("f", "fx", "K")):
        return _intrinsics(data, f"intrinsics file {path}"), {}
    if isinstance(data, dict) and data:
        return None, {Path(k).name: _intrinsics(v, f"intrinsics file {path}: {k!r}") for k, v in data.items()}
    raise DataError(f"intrinsics file {path}: expected one camera ({{\"f\": [fx, fy], \"c\": [cx, cy]}}), a mapping "
                    "from image file names to cameras, or a posekit synthetic annotations file")
