"""Rasterise posed 3-D figures with a pinhole camera: painter's order by part depth, a part-id buffer, labels.

Pixel convention: pixel (i, j) covers [i - 0.5, i + 0.5] x [j - 0.5, j + 0.5], so a keypoint at x lies in
pixel column round(x) (OpenCV's drawing convention). Projection: u = f * X / Z + cx, v = f * Y / Z + cy
with camera x right, y down, z forward (mm).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from posekit.data.synth.skeleton3d import Figure

SHIFT = 4  # OpenCV fixed-point bits: vertices are drawn with 1/16-pixel precision
_ONE = 1 << SHIFT
_CIRCLE = np.stack([np.cos(np.linspace(0, 2 * np.pi, 20, endpoint=False)),
                    np.sin(np.linspace(0, 2 * np.pi, 20, endpoint=False))], axis=1)
MIN_RADIUS_PX = 1.0
PARTS_PER_SUBJECT = 32  # id = subject * PARTS_PER_SUBJECT + part + 1 in the uint16 part-id buffer


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics in pixels."""

    f: float
    cx: float
    cy: float

    def project(self, p: np.ndarray) -> np.ndarray:
        """Camera-frame points [...,3] (mm) -> pixel coordinates [...,2]."""
        z = np.maximum(p[..., 2], 1e-6)
        return np.stack([self.f * p[..., 0] / z + self.cx, self.f * p[..., 1] / z + self.cy], axis=-1)


@dataclass
class Shape:
    """A primitive projected to the image: polygon (float px), depth, draw order and shading geometry."""

    subject: int
    part: int
    layer: int
    depth: float
    poly: np.ndarray
    material: str
    inner: tuple[np.ndarray, ...] = ()


def _hull(points: np.ndarray) -> np.ndarray:
    return cv2.convexHull(points.astype(np.float32)).reshape(-1, 2).astype(np.float64)


def _capsule_poly(pa: np.ndarray, pb: np.ndarray, ra: float, rb: float) -> np.ndarray:
    return _hull(np.concatenate([pa + ra * _CIRCLE, pb + rb * _CIRCLE]))


def project_figure(fig: Figure, cam: Camera, subject: int, light: np.ndarray, shaded: bool = True) -> list[Shape]:
    """Project a camera-frame figure to shapes; discs facing away from the camera are dropped.

    With `shaded`, shapes carry two inner polygons (shifted towards the 2-D light direction) for shading.
    """
    uv = cam.project(fig.pts)
    z = fig.pts[:, 2]
    shapes = []
    for p in fig.prims:
        if p.shape == "capsule":
            pa, pb = uv[p.i0], uv[p.i1]
            ra = max(cam.f * p.ra / z[p.i0], MIN_RADIUS_PX)
            rb = max(cam.f * p.rb / z[p.i1], MIN_RADIUS_PX)
            poly = _capsule_poly(pa, pb, ra, rb)
            inner: tuple[np.ndarray, ...] = ()
            if shaded:
                off = 0.3 * light
                inner = (_capsule_poly(pa + off * ra, pb + off * rb, 0.65 * ra, 0.65 * rb),
                         _capsule_poly(pa + 1.5 * off * ra, pb + 1.5 * off * rb, 0.3 * ra, 0.3 * rb))
            shapes.append(Shape(subject, p.part, p.layer, float(z[p.i0] + z[p.i1]) / 2, poly, p.material, inner))
        elif p.shape == "blob":
            poly = _hull(uv[p.i0:p.i1])
            inner = ()
            if shaded:
                c = poly.mean(axis=0)
                r = np.sqrt(max(cv2.contourArea(poly.astype(np.float32)), 1.0) / np.pi)
                inner = (c + 0.7 * (poly - c) + 0.25 * r * light, c + 0.4 * (poly - c) + 0.4 * r * light)
            shapes.append(Shape(subject, p.part, p.layer, float(z[p.i0:p.i1].mean()), poly, p.material, inner))
        else:
            center = fig.pts[p.i0]
            if p.normal >= 0 and float(np.dot(fig.nrm[p.normal], center)) >= p.facing * np.linalg.norm(center):
                continue
            r = max(cam.f * p.ra / center[2], p.min_px)
            if r > 0:
                shapes.append(Shape(subject, p.part, p.layer, float(center[2]), uv[p.i0] + r * _CIRCLE, p.material))
    return shapes


def draw_order(shapes: list[Shape]) -> list[Shape]:
    """Far to near by the mean depth of each part's main (layer 0) shapes; within a part by layer, then depth."""
    part_depth: dict[tuple[int, int], list[float]] = {}
    for s in shapes:
        if s.layer == 0:
            part_depth.setdefault((s.subject, s.part), []).append(s.depth)
    mean = {k: float(np.mean(v)) for k, v in part_depth.items()}
    return sorted(shapes, key=lambda s: (-mean.get((s.subject, s.part), s.depth), s.subject, s.part, s.layer,
                                         -s.depth))


def _fixed(poly: np.ndarray) -> np.ndarray:
    return np.round(poly * _ONE).astype(np.int32).reshape(-1, 1, 2)


@dataclass
class Buffers:
    """Per-pixel part ids (uint16, 0 = background), material ids (uint8) and shading (float32)."""

    ids: np.ndarray
    mat: np.ndarray
    shade: np.ndarray


def rasterize(shapes: list[Shape], size: tuple[int, int], materials: dict[tuple[int, str], int],
              outline: int = 0, shaded: bool = True) -> Buffers:
    """Paint shapes in order into the id/material/shade buffers; `outline` > 0 draws dark outlines of that width."""
    w, h = size
    buf = Buffers(np.zeros((h, w), np.uint16), np.zeros((h, w), np.uint8), np.ones((h, w), np.float32))
    for s in shapes:
        pid = s.subject * PARTS_PER_SUBJECT + s.part + 1
        m = materials[(s.subject, s.material)]
        pts = _fixed(s.poly)
        cv2.fillConvexPoly(buf.ids, pts, pid, cv2.LINE_8, SHIFT)
        cv2.fillConvexPoly(buf.mat, pts, m, cv2.LINE_8, SHIFT)
        if shaded and s.inner:
            cv2.fillConvexPoly(buf.shade, pts, 0.62, cv2.LINE_8, SHIFT)
            cv2.fillConvexPoly(buf.shade, _fixed(s.inner[0]), 0.86, cv2.LINE_8, SHIFT)
            cv2.fillConvexPoly(buf.shade, _fixed(s.inner[1]), 1.04, cv2.LINE_8, SHIFT)
        else:
            cv2.fillConvexPoly(buf.shade, pts, 1.0, cv2.LINE_8, SHIFT)
        if outline and (s.layer < 2 or np.ptp(s.poly, axis=0).min() >= 4):
            cv2.polylines(buf.ids, [pts], True, pid, outline, cv2.LINE_8, SHIFT)
            cv2.polylines(buf.mat, [pts], True, 1, outline, cv2.LINE_8, SHIFT)
    return buf


def keypoint_labels(fig: Figure, cam: Camera, subject: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2-D keypoints [K,3] (x, y rounded to 0.01 px, v) and the part id found under each keypoint [K].

    v = 0 outside the image; v = 2 when the part on top at the keypoint's pixel is one of this subject's parts
    meeting at the joint (and, for a joint on a body surface such as the nose or a shoulder, the surface faces
    the camera); v = 1 otherwise (covered by another subject or by another part of the same body).
    """
    spec = fig.kind
    h, w = ids.shape
    xy = np.round(cam.project(fig.keypoints), 2)
    out = np.zeros((len(xy), 3), np.float64)
    under = np.zeros(len(xy), np.int64)
    ray = fig.keypoints / np.linalg.norm(fig.keypoints, axis=1, keepdims=True)
    for k, (x, y) in enumerate(xy):
        px, py = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
        if not (0 <= px < w and 0 <= py < h) or fig.keypoints[k, 2] <= 0:
            continue
        pid = int(ids[py, px])
        under[k] = pid
        v = 1
        if pid and (pid - 1) // PARTS_PER_SUBJECT == subject:
            part = (pid - 1) % PARTS_PER_SUBJECT
            if part in spec.adjacency[k]:
                facing = float(np.dot(fig.normals[k], ray[k])) < spec.facing[k]
                v = 2 if (part != spec.surface[k] or facing) else 1
        out[k] = (x, y, v)
    return out, under
