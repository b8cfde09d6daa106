"""One synthetic image: figures placed in front of a pinhole camera, rendered over a background, with exact labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from posekit.data.synth.backgrounds import background
from posekit.data.synth.materials import Material, figure_materials, texture_field
from posekit.data.synth.render import (
    PARTS_PER_SUBJECT,
    Buffers,
    Camera,
    draw_order,
    keypoint_labels,
    project_figure,
    rasterize,
)
from posekit.data.synth.sequences import SequenceRng
from posekit.data.synth.skeleton3d import KINDS, SAMPLERS, Figure, KindSpec, rot
from posekit.errors import ConfigError

STYLES = ("A", "B")
# Body frame (x left, y up, z forward) -> camera frame (x right, y down, z away) for a subject facing the camera.
_TO_CAMERA = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class SynthConfig:
    """Generator settings; the defaults give clear, learnable images."""

    kind: str = "human"
    style: str = "A"
    max_subjects: int = 3
    image_size: tuple[int, int] = (256, 256)
    size_range: tuple[float, float] = (0.35, 0.9)  # larger side of a subject's box / image side
    max_overlap: float = 0.45  # max intersection of two subjects' boxes over the smaller box
    truncation: float = 0.1  # probability that a subject may extend past the image border
    clutter: int = 3  # max background objects
    jpeg_quality: int = 90
    max_yaw: float = 180.0  # degrees: body turns uniformly in [-max_yaw, max_yaw] (0 = facing the camera)
    sequence_length: int = 1  # > 1: images come in ordered sequences of this length (same subject, small motion)
    motion: float = 0.03  # per-draw drift amplitude of a sequence (fraction of each draw's range, see sequences.py)
    outline_color: tuple[float, float, float] = (20.0, 20.0, 28.0)  # style B outline ink (RGB); the default is
    #   near-black like the eye / nose discs (25, 20, 20): the adaptation test beds draw another colour
    tracks: bool = False  # with sequence_length > 1: several people walking through the scene, with identities

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"synth kind: expected one of {sorted(KINDS)}, got {self.kind!r}")
        if self.style not in STYLES:
            raise ConfigError(f"synth style: expected one of {list(STYLES)}, got {self.style!r}")
        if not 1 <= self.max_subjects <= 30:  # the material buffer is uint8: 8 materials per subject
            raise ConfigError(f"synth max_subjects: expected 1..30, got {self.max_subjects}")
        w, h = self.image_size
        if w < 32 or h < 32:
            raise ConfigError(f"synth image_size: expected at least 32x32, got {w}x{h}")
        if not 0.0 <= self.max_yaw <= 180.0:
            raise ConfigError(f"synth max_yaw: expected 0..180 degrees, got {self.max_yaw}")
        if self.sequence_length < 1:
            raise ConfigError(f"synth sequence_length: expected >= 1, got {self.sequence_length}")
        if self.tracks and self.sequence_length < 2:
            raise ConfigError(f"synth tracks: needs sequence_length >= 2, got {self.sequence_length}")
        if self.sequence_length > 1 and self.max_subjects != 1 and not self.tracks:
            raise ConfigError(f"synth sequence_length {self.sequence_length} needs max_subjects 1 (one subject "
                              f"followed over the frames), got {self.max_subjects}")
        if not 0.0 <= self.motion <= 0.5:
            raise ConfigError(f"synth motion: expected 0..0.5, got {self.motion}")
        lo, hi = self.size_range
        if not 0.05 <= lo <= hi <= 1.5:
            raise ConfigError(f"synth size_range: expected 0.05 <= lo <= hi <= 1.5, got {self.size_range}")

    @property
    def spec(self) -> KindSpec:
        """The figure kind (skeleton, parts, visibility rules)."""
        return KINDS[self.kind]


@dataclass
class Instance:
    """Labels of one rendered subject."""

    subject: int
    keypoints: np.ndarray  # [K,3] x, y (px, 0.01 px), v in {0, 1, 2}; (0, 0, 0) when v = 0
    keypoints_3d: np.ndarray  # [K,3] camera frame, mm
    bbox: list[float]  # xywh of the visible mask (pycocotools toBbox convention)
    area: int  # visible mask pixels
    rle: dict  # visible mask, COCO compressed RLE
    depth: float  # mean camera z of the keypoints (mm)
    track_id: int | None = None  # identity of the person across the frames of a tracks sequence
    head_box: list[float] | None = None  # xywh of the projected head (tracks sequences: PoseTrack's bbox_head)

    @property
    def num_keypoints(self) -> int:
        """Keypoints with v > 0."""
        return int((self.keypoints[:, 2] > 0).sum())


@dataclass
class Sample:
    """A rendered image (RGB uint8), its part-id buffer, the background, camera and labels."""

    image: np.ndarray
    ids: np.ndarray
    background: np.ndarray
    camera: Camera
    instances: list[Instance] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


def _box(points2d: np.ndarray) -> np.ndarray:
    lo, hi = points2d.min(axis=0), points2d.max(axis=0)
    return np.array([lo[0], lo[1], hi[0], hi[1]])


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / max(small, 1e-6)


def _head_box(fig: Figure, cam: Camera) -> list[float]:
    """xywh (0.01 px) of the projected head primitives (the head part's layer-0 blob)."""
    head = fig.kind.parts.index("head") if "head" in fig.kind.parts else -1
    pts = [fig.pts[p.i0:p.i1] for p in fig.prims if p.shape == "blob" and p.part == head and p.layer == 0]
    b = _box(cam.project(np.concatenate(pts) if pts else fig.keypoints))
    return [round(float(b[0]), 2), round(float(b[1]), 2), round(float(b[2] - b[0]), 2), round(float(b[3] - b[1]), 2)]


def _place(fig: Figure, cam: Camera, rng: np.random.Generator, cfg: SynthConfig) -> tuple[Figure, np.ndarray]:
    """Rotate the figure randomly and put it at the depth and image position that give a random box size."""
    w, h = cfg.image_size
    yaw = rng.uniform(-np.pi, np.pi) * (cfg.max_yaw / 180.0)
    elev = rng.uniform(-0.15, 0.5)
    roll = rng.normal(0.0, 0.06)
    r = rot("z", roll) @ rot("x", elev) @ _TO_CAMERA @ rot("y", yaw)
    posed = fig.transformed(r, np.zeros(3))
    pts = posed.pts
    center = (pts.min(axis=0) + pts.max(axis=0)) / 2
    target = rng.uniform(*cfg.size_range)
    z = 5000.0
    for _ in range(2):  # the projected size scales as 1/z: solve for z, refine once for perspective
        box = _box(cam.project(pts - center + np.array([0.0, 0.0, z])))
        z *= max((box[2] - box[0]) / w, (box[3] - box[1]) / h) / target
    t = -center + np.array([0.0, 0.0, z])
    t[2] += max(0.0, 200.0 - float((pts[:, 2] + t[2]).min()))  # keep every point well in front of the camera
    z = float(t[2] + center[2])
    box = _box(cam.project(pts + t))
    bw, bh = box[2] - box[0], box[3] - box[1]
    slack = 0.3 if rng.random() < cfg.truncation else 0.0
    u = rng.uniform(bw / 2 - slack * bw, w - 1 - bw / 2 + slack * bw) if bw < w else (w - 1) / 2
    v = rng.uniform(bh / 2 - slack * bh, h - 1 - bh / 2 + slack * bh) if bh < h else (h - 1) / 2
    cu, cv = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    t = t + np.array([(u - cu) * z / cam.f, (v - cv) * z / cam.f, 0.0])
    placed = fig.transformed(r, t)
    return placed, _box(cam.project(placed.pts))


def _compose(buf: Buffers, bg: np.ndarray, mats: list[Material], rng: np.random.Generator,
             cfg: SynthConfig) -> np.ndarray:
    """Colour the rasterised figures (material colour x shading x texture) over the background."""
    w, h = cfg.image_size
    color = np.array([m.color for m in mats], np.float32)
    shade = buf.shade
    if cfg.style == "A":
        shade = cv2.GaussianBlur(shade, (0, 0), 1.0 * max(w, h) / 256.0)
    mat = buf.mat
    for kind in sorted({m.texture for m in mats if m.amp > 0}):
        lut = np.zeros(256, np.float32)
        lut[: len(mats)] = [m.amp if (m.amp > 0 and m.texture == kind) else 0.0 for m in mats]
        shade = shade + cv2.LUT(mat, lut) * texture_field(rng, kind, cfg.image_size)
    background_px = (mat == 0).view(np.uint8)
    planes = []
    for c, bg_c in enumerate(cv2.split(bg)):  # colour planes: material colour x shading x texture, else background
        lut = np.zeros(256, np.float32)
        lut[: len(mats)] = color[:, c]
        planes.append(cv2.copyTo(bg_c, background_px, cv2.multiply(cv2.LUT(mat, lut), shade)))
    if cfg.style == "A":
        gain, offset = rng.uniform(0.85, 1.15), rng.uniform(-15, 15)
        noise = rng.uniform(1.0, 4.0) * rng.standard_normal((h, w), dtype=np.float32) + np.float32(offset)
        planes = [cv2.GaussianBlur(p, (0, 0), 0.5) * np.float32(gain) + noise for p in planes]
    img = cv2.merge(planes)
    return cv2.convertScaleAbs(cv2.max(img, 0.0))  # rounds and saturates to 0..255


def render_sample(seed: int, index: int, cfg: SynthConfig = SynthConfig()) -> Sample:
    """Image `index` of the dataset with this seed: deterministic, independent of any other image.

    With cfg.sequence_length L > 1, image i is frame i % L of sequence i // L (see posekit.data.synth.sequences).
    """
    if cfg.tracks:
        raise ConfigError("synth tracks: render frames of tracks sequences with "
                          "posekit.data.synth.tracks.render_track_frame")
    if cfg.sequence_length > 1:
        sequence, frame = divmod(index, cfg.sequence_length)
        rng: Any = SequenceRng(seed, sequence, frame, cfg.motion)
    else:
        rng = np.random.default_rng([seed, index])
    w, h = cfg.image_size
    cam = Camera(f=float(w * rng.uniform(0.8, 1.5)), cx=(w - 1) / 2, cy=(h - 1) / 2)
    n = int(rng.integers(1, cfg.max_subjects + 1))
    head_scale = 1.0 if cfg.style == "A" else 1.25
    figures: list[Figure] = []
    boxes: list[np.ndarray] = []
    for _ in range(n):
        fig = SAMPLERS[cfg.kind](rng, head_scale)
        for _attempt in range(15):
            placed, box = _place(fig, cam, rng, cfg)
            if all(_overlap(box, b) <= cfg.max_overlap for b in boxes):
                figures.append(placed)
                boxes.append(box)
                break
    return finish_sample(figures, cam, rng, cfg)


def finish_sample(figures: list[Figure], cam: Camera, rng: Any, cfg: SynthConfig, material_rngs: list | None = None,
                  track_ids: list[int] | None = None) -> Sample:
    """Light, colour, rasterise and label placed figures; materials come from `material_rngs[s]` when given (the
    scene `rng` otherwise), and with `track_ids` each instance carries its identity and head box."""
    w, h = cfg.image_size
    light = rng.normal(0.0, 1.0, 2) * np.array([1.0, 0.3]) + np.array([0.0, -1.0])
    light /= np.linalg.norm(light)
    shapes = []
    mats = [Material((0.0, 0.0, 0.0)), Material(tuple(float(c) for c in cfg.outline_color))]  # 0: background, 1: ink
    index_of: dict[tuple[int, str], int] = {}
    for s, fig in enumerate(figures):
        shapes += project_figure(fig, cam, s, light, shaded=cfg.style == "A")
        mat_rng = rng if material_rngs is None else material_rngs[s]
        for name, m in figure_materials(mat_rng, cfg.kind, cfg.style).items():
            index_of[(s, name)] = len(mats)
            mats.append(m)
    outline = 0 if cfg.style == "A" else max(1, round(max(w, h) / 256))
    buf = rasterize(draw_order(shapes), cfg.image_size, index_of, outline=outline, shaded=cfg.style == "A")
    bg = background(rng, cfg.style, cfg.image_size, cfg.clutter)
    image = _compose(buf, bg, mats, rng, cfg)

    instances = []
    owner = (buf.ids - np.uint16(1)) >> 5  # subject of each pixel (background wraps to 2047: nobody)
    assert PARTS_PER_SUBJECT == 32
    for s, fig in enumerate(figures):
        mask = owner == s
        area = int(mask.sum())
        if area == 0:
            continue  # completely hidden behind nearer subjects: no annotation
        kps, _ = keypoint_labels(fig, cam, s, buf.ids)
        kps[kps[:, 2] == 0] = 0.0
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        bbox = [float(v) for v in mask_utils.toBbox(rle)]
        rle["counts"] = rle["counts"].decode("ascii")
        inst = Instance(s, kps, np.round(fig.keypoints, 2), bbox, area, rle, float(fig.keypoints[:, 2].mean()))
        if track_ids is not None:
            inst.track_id, inst.head_box = track_ids[s], _head_box(fig, cam)
        instances.append(inst)
    return Sample(image, buf.ids, cv2.convertScaleAbs(bg), cam, instances, figures)
