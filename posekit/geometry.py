"""Box <-> center/size, affine crop matrices (HRNet "standard", DarkPose "dark", UDP "udp"), warps and point maps.

Three conventions exist in the official code and change reported numbers, so all three are kept:

- "standard" (HRNet / SimpleBaseline `get_affine_transform`): the box centre maps to (w/2, h/2) of the output and
  only the box width defines the scale (the height follows from the output aspect ratio).
- "dark" (DarkPose): the same construction with pixel-centred sizes, centre -> ((w-1)/2, (h-1)/2) and the direction
  vectors shortened by one pixel ((src_w-1)/2, (dst_w-1)/2).
- "udp" (UDP-Pose / mmpose `get_warp_matrix`): unit-length mapping, the box of `size` px centred on `center` maps
  onto [0, w-1] x [0, h-1], with a separate scale per axis.

Sizes are (w, h) in pixels; the official `scale = size / 200` appears only in the official-compatible functions
`get_affine_transform` and `transform_preds_official`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from posekit.errors import ConfigError

PIXEL_STD = 200.0
KINDS = ("standard", "dark", "udp")


def box_xywh_to_center_size(
    box: Sequence[float] | np.ndarray, aspect_ratio: float, padding: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """Box xywh -> (center[2], size[2]) in px, enlarged to `aspect_ratio` (w/h) and times `padding` (official _xywh2cs).

    As in the official code the centre and the scale (size/200) are float32 values; they are returned as float64
    arrays holding exactly those values, so `size / 200` recovers the official scale bit for bit.
    """
    x, y, w, h = (float(v) for v in np.asarray(box, dtype=np.float64)[:4])
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
    if w > aspect_ratio * h:
        h = w * 1.0 / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w * 1.0 / PIXEL_STD, h * 1.0 / PIXEL_STD], dtype=np.float32)
    if center[0] != -1:
        scale = (scale * np.float32(padding)).astype(np.float32)
    return center.astype(np.float64), scale.astype(np.float64) * PIXEL_STD


def _rotate(point: tuple[float, float], rot_rad: float) -> np.ndarray:
    """Rotate a 2-D vector by `rot_rad` (official get_dir)."""
    sn, cs = np.sin(rot_rad), np.cos(rot_rad)
    return np.array([point[0] * cs - point[1] * sn, point[0] * sn + point[1] * cs], dtype=np.float64)


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The point making (a, b, c) a right angle at b, as the official get_3rd_point (float32 inputs)."""
    d = a - b
    return b + np.array([-d[1], d[0]], dtype=np.float32)


def _three_point_affine(
    center: np.ndarray,
    src_dir: np.ndarray,
    dst_center: np.ndarray,
    dst_dir: np.ndarray,
    src_shift: np.ndarray,
    inv: bool,
) -> np.ndarray:
    """Affine matrix from (centre, centre + direction, third point) pairs through cv2 in float32, as official."""
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0, :] = center + src_shift
    src[1, :] = center + src_dir + src_shift
    dst[0, :] = dst_center
    dst[1, :] = dst_center + dst_dir
    src[2, :] = _third_point(src[0, :], src[1, :])
    dst[2, :] = _third_point(dst[0, :], dst[1, :])
    if inv:
        return cv2.getAffineTransform(np.float32(dst), np.float32(src))
    return cv2.getAffineTransform(np.float32(src), np.float32(dst))


def get_affine_transform(
    center: Sequence[float] | np.ndarray,
    scale: float | Sequence[float] | np.ndarray,
    rot: float,
    output_size: Sequence[float] | np.ndarray,
    shift: Sequence[float] | np.ndarray = (0.0, 0.0),
    inv: bool = False,
) -> np.ndarray:
    """Official HRNet affine matrix [2,3] (float64); scale in 200-px units, only scale[0] is used."""
    return _get_affine_transform(center, scale, rot, output_size, shift, inv, dark=False)


def get_affine_transform_dark(
    center: Sequence[float] | np.ndarray,
    scale: float | Sequence[float] | np.ndarray,
    rot: float,
    output_size: Sequence[float] | np.ndarray,
    shift: Sequence[float] | np.ndarray = (0.0, 0.0),
    inv: bool = False,
) -> np.ndarray:
    """Official DarkPose affine matrix [2,3] (float64): like HRNet's with (w-1)/2 pixel-centred sizes."""
    return _get_affine_transform(center, scale, rot, output_size, shift, inv, dark=True)


def _get_affine_transform(center, scale, rot, output_size, shift, inv, dark: bool) -> np.ndarray:
    scale = np.asarray(scale, dtype=np.float64)
    if scale.ndim == 0:
        scale = np.array([scale, scale], dtype=np.float64)
    center = np.asarray(center, dtype=np.float64)
    shift = np.asarray(shift, dtype=np.float32)
    scale_px = scale * PIXEL_STD
    src_w = float(scale_px[0])
    dst_w, dst_h = float(output_size[0]), float(output_size[1])
    rot_rad = np.pi * rot / 180
    one = 1.0 if dark else 0.0
    src_dir = _rotate((0.0, (src_w - one) * -0.5), rot_rad)
    dst_dir = np.array([0, (dst_w - one) * -0.5], np.float32)
    dst_center = np.array([(dst_w - one) * 0.5, (dst_h - one) * 0.5])
    return _three_point_affine(center, src_dir, dst_center, dst_dir, scale_px * shift, inv)


def get_warp_matrix(theta: float, size_input: np.ndarray, size_dst: np.ndarray, size_target: np.ndarray) -> np.ndarray:
    """Official UDP warp matrix [2,3] float32 (mmpose get_warp_matrix; size_input = 2*center, size_dst = out-1)."""
    theta = np.deg2rad(theta)
    matrix = np.zeros((2, 3), dtype=np.float32)
    scale_x = size_dst[0] / size_target[0]
    scale_y = size_dst[1] / size_target[1]
    cs, sn = math.cos(theta), math.sin(theta)
    matrix[0, 0] = cs * scale_x
    matrix[0, 1] = -sn * scale_x
    matrix[0, 2] = scale_x * (-0.5 * size_input[0] * cs + 0.5 * size_input[1] * sn + 0.5 * size_target[0])
    matrix[1, 0] = sn * scale_y
    matrix[1, 1] = cs * scale_y
    matrix[1, 2] = scale_y * (-0.5 * size_input[0] * sn - 0.5 * size_input[1] * cs + 0.5 * size_target[1])
    return matrix


def affine_matrix(
    center: Sequence[float] | np.ndarray,
    size: Sequence[float] | np.ndarray,
    rot: float,
    output_size: Sequence[float] | np.ndarray,
    kind: str = "standard",
    inv: bool = False,
) -> np.ndarray:
    """[2,3] float64 matrix mapping the image box (center, size px, rot degrees) onto a crop of output_size (w, h)."""
    center = np.asarray(center, dtype=np.float64)
    size = np.asarray(size, dtype=np.float64)
    if kind == "standard":
        return get_affine_transform(center, size / PIXEL_STD, rot, output_size, inv=inv)
    if kind == "dark":
        return get_affine_transform_dark(center, size / PIXEL_STD, rot, output_size, inv=inv)
    if kind == "udp":
        out = np.asarray(output_size, dtype=np.float64)
        m = get_warp_matrix(rot, center * 2.0, out - 1.0, size).astype(np.float64)
        return cv2.invertAffineTransform(m) if inv else m
    raise ConfigError(f"affine kind must be one of {KINDS}, got {kind!r}")


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a [2,3] affine matrix to points [..., 2] (float64 result)."""
    p = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    x, y = p[..., 0], p[..., 1]
    return np.stack([m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]], axis=-1)


def warp_crop(
    image: np.ndarray, matrix: np.ndarray, output_size: Sequence[int], flags: int = cv2.INTER_LINEAR
) -> np.ndarray:
    """Warp `image` with `matrix` into an output_size (w, h) crop (zero border, as official)."""
    w, h = int(output_size[0]), int(output_size[1])
    return cv2.warpAffine(image, np.asarray(matrix, dtype=np.float64), (w, h), flags=flags)


def transform_preds_official(
    coords: np.ndarray,
    center: np.ndarray,
    scale: np.ndarray,
    output_size: Sequence[float] | np.ndarray,
    kind: str = "standard",
) -> np.ndarray:
    """Official transform_preds for one box: coords [K,2] in an output_size crop -> image px; scale in 200-px units.

    standard/dark: inverse of get_affine_transform(_dark) (rot 0); udp: mmpose `transform_preds(use_udp=True)`.
    """
    coords = np.asarray(coords)
    center = np.asarray(center, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    if kind == "udp":
        scale_px = scale * PIXEL_STD
        sx = scale_px[0] / (output_size[0] - 1.0)
        sy = scale_px[1] / (output_size[1] - 1.0)
        out = np.ones(coords.shape, dtype=np.float64)
        out[..., 0] = coords[..., 0] * sx + center[0] - scale_px[0] * 0.5
        out[..., 1] = coords[..., 1] * sy + center[1] - scale_px[1] * 0.5
        return out[..., :2]
    if kind == "standard":
        trans = get_affine_transform(center, scale, 0, output_size, inv=True)
    elif kind == "dark":
        trans = get_affine_transform_dark(center, scale, 0, output_size, inv=True)
    else:
        raise ConfigError(f"affine kind must be one of {KINDS}, got {kind!r}")
    return apply_affine(coords[..., :2], trans)


def transform_preds(
    coords: np.ndarray,
    center: np.ndarray,
    size: np.ndarray,
    output_size: Sequence[float] | np.ndarray,
    kind: str = "standard",
) -> np.ndarray:
    """Map coords [N,K,2] given in a crop of output_size (w, h) back to image px for boxes center/size [N,2] (px)."""
    coords = np.asarray(coords)
    center = np.asarray(center, dtype=np.float64).reshape(-1, 2)
    size = np.asarray(size, dtype=np.float64).reshape(-1, 2)
    squeeze = coords.ndim == 2
    c = coords[None] if squeeze else coords
    out = np.stack(
        [transform_preds_official(c[n], center[n], size[n] / PIXEL_STD, output_size, kind) for n in range(c.shape[0])]
    ) if c.shape[0] else np.zeros(c.shape[:-1] + (2,), dtype=np.float64)
    return out[0] if squeeze else out


def rescale_points(
    points: np.ndarray,
    src_size: Sequence[float] | np.ndarray,
    dst_size: Sequence[float] | np.ndarray,
    kind: str = "standard",
) -> np.ndarray:
    """Map points [..., 2] between two crops of the same box, e.g. heatmap (src_size) -> input (dst_size) px.

    Both crops come from `affine_matrix(..., kind)` of the same box, so the map is box-independent:
    standard: centre w/2 <-> w/2, factor dst_w/src_w on both axes (only widths define the scale, as official);
    dark: centre (w-1)/2 <-> (w-1)/2, factor (dst_w-1)/(src_w-1) on both axes; udp: x * (dst-1)/(src-1) per axis.
    """
    p = np.asarray(points, dtype=np.float64)
    sw, sh = float(src_size[0]), float(src_size[1])
    dw, dh = float(dst_size[0]), float(dst_size[1])
    out = np.empty(p.shape[:-1] + (2,), dtype=np.float64)
    if kind == "standard":
        f = dw / sw
        out[..., 0] = dw * 0.5 + (p[..., 0] - sw * 0.5) * f
        out[..., 1] = dh * 0.5 + (p[..., 1] - sh * 0.5) * f
    elif kind == "dark":
        f = (dw - 1.0) / (sw - 1.0)
        out[..., 0] = (dw - 1.0) * 0.5 + (p[..., 0] - (sw - 1.0) * 0.5) * f
        out[..., 1] = (dh - 1.0) * 0.5 + (p[..., 1] - (sh - 1.0) * 0.5) * f
    elif kind == "udp":
        out[..., 0] = p[..., 0] * ((dw - 1.0) / (sw - 1.0))
        out[..., 1] = p[..., 1] * ((dh - 1.0) / (sh - 1.0))
    else:
        raise ConfigError(f"affine kind must be one of {KINDS}, got {kind!r}")
    return out


def fliplr_joints(
    joints: np.ndarray, joints_vis: np.ndarray, width: float, flip_pairs: Sequence[Sequence[int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Official fliplr_joints: x -> width - x - 1, swap pairs; returns (joints * joints_vis, joints_vis)."""
    joints = np.array(joints, dtype=np.float64, copy=True)
    vis = np.array(joints_vis, dtype=np.float64, copy=True)
    joints[:, 0] = width - joints[:, 0] - 1
    for a, b in flip_pairs:
        joints[[a, b]] = joints[[b, a]]
        vis[[a, b]] = vis[[b, a]]
    return joints * vis, vis


def flip_keypoints(keypoints: np.ndarray, width: float, flip_pairs: Sequence[Sequence[int]]) -> np.ndarray:
    """Mirror keypoints [K,3] (x, y, vis) in an image of `width` px and swap left/right pairs.

    Same as the official fliplr_joints: x -> width - x - 1 and x, y of invisible joints (vis == 0) become 0.
    """
    kp = np.asarray(keypoints)
    vis = kp[:, 2:3]
    joints, _ = fliplr_joints(kp[:, :2], np.repeat((vis > 0).astype(np.float64), 2, axis=1), width, flip_pairs)
    out = np.empty(kp.shape, dtype=kp.dtype if np.issubdtype(kp.dtype, np.floating) else np.float64)
    out[:, :2] = joints
    v = vis[:, 0].copy()
    for a, b in flip_pairs:
        v[[a, b]] = v[[b, a]]
    out[:, 2] = v
    return out
