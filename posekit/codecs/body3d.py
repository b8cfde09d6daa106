"""3DMPPE PoseNet codec (`body3d`): crop keypoints + root-relative depth <-> soft-argmax coordinates.

The network ends in a 3-D soft-argmax (inside the model, as the official forward), so its output is already
coordinates [N, K, 3]: x, y in output-map px and z in depth bins. `encode` gives those targets for keypoints in
crop input px with a root-relative depth in mm: x * out_w / in_w (likewise y); depth d -> (d / (bbox_3d_depth / 2)
+ 1) / 2 * depth_dim (a box of bbox_3d_depth mm centred on the root); a joint outside the crop or the depth box has
weight 0. `decode` maps the coordinates back to crop input px (scores 1: a soft-argmax has no peak value).
The 3-D spec of a model names this codec with its `depth_dim`, `bbox_3d_depth` and `input_norm` (how crops are
normalised: "standard" = RGB / 255 then ImageNet statistics, "official_255" = the released 3DMPPE weights' 0..255).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from posekit.camera import pixel2cam
from posekit.codecs.base import IMAGENET_MEAN as _MEAN
from posekit.codecs.base import IMAGENET_STD as _STD
from posekit.codecs.base import ArrayLike, Codec, to_numpy
from posekit.errors import ConfigError, DataError

BBOX_3D_DEPTH = 2000.0  # mm covered by the depth bins, centred on the root: official cfg.bbox_3d_shape[0]
DEMO_FOCAL = 1500.0  # px: the 3DMPPE demo's focal length for in-the-wild images
DEPTH_DIM = 64  # official depth bins
INPUT_NORMS = ("standard", "official_255")
IMAGENET_MEAN = np.asarray(_MEAN, dtype=np.float32)
IMAGENET_STD = np.asarray(_STD, dtype=np.float32)


class Body3DCoder(Codec):
    """What maps between crops and 3-D targets for one network: sizes, depth bins, depth box, input normalisation."""

    name = "body3d"

    def __init__(self, input_size: Sequence[int] = (256, 256), heatmap_size: Sequence[int] | None = None,
                 num_keypoints: int = 18, sigma: float = 2.0, depth_dim: int = DEPTH_DIM,
                 bbox_3d_depth: float = BBOX_3D_DEPTH, input_norm: str = "standard",
                 output_size: Sequence[int] | None = None, shift_heatmap: bool | None = None,
                 focal: Sequence[float] = (), focal_per_width: float = 0.0,
                 root_box_size: float = BBOX_3D_DEPTH) -> None:
        """`focal` (fx, fy) / `focal_per_width`: the camera assumed for images without intrinsics (BODY3D.FOCAL /
        FOCAL_PER_WIDTH, see `camera`); `root_box_size`: mm of the box prior of `root_depth_from_box`."""
        size = heatmap_size if heatmap_size is not None else output_size
        if size is None:
            raise ConfigError("codec body3d: give heatmap_size (the soft-argmax map's w, h)")
        super().__init__(input_size, size, num_keypoints, sigma, shift_heatmap=shift_heatmap)
        if int(depth_dim) < 1 or not float(bbox_3d_depth) > 0:
            raise ConfigError(f"codec body3d: depth_dim {depth_dim} and bbox_3d_depth {bbox_3d_depth} must be > 0")
        if input_norm not in INPUT_NORMS:
            raise ConfigError(f"codec body3d: input_norm {input_norm!r}, expected one of {INPUT_NORMS}")
        self.depth_dim = int(depth_dim)
        self.bbox_3d_depth = float(bbox_3d_depth)
        self.input_norm = input_norm
        self.focal = tuple(float(v) for v in focal)
        self.focal_per_width = float(focal_per_width)
        self.root_box_size = float(root_box_size)
        if len(self.focal) not in (0, 1, 2) or min(self.focal, default=1.0) <= 0 or self.focal_per_width < 0 or \
                not self.root_box_size > 0:
            raise ConfigError(f"codec body3d: focal {list(self.focal)} (0, 1 or 2 values > 0), focal_per_width "
                              f"{focal_per_width} (>= 0) and root_box_size {root_box_size} (> 0)")

    @property
    def output_size(self) -> tuple[int, int]:
        """(w, h) of the soft-argmax map (the heatmap size)."""
        return self.heatmap_size

    @property
    def aspect_ratio(self) -> float:
        """Input w / h (process_bbox grows boxes to it)."""
        return self.input_size[0] / self.input_size[1]

    def camera(self, width: int, height: int) -> tuple[tuple[float, float], tuple[float, float], str]:
        """((fx, fy), (cx, cy), where from) for a width x height image without intrinsics: `focal` (BODY3D.FOCAL),
        else `focal_per_width` x width (the camera the model was trained with), else the 3DMPPE demo's 1500 px;
        the principal point is the image centre."""
        c = (width / 2.0, height / 2.0)
        if self.focal:
            return (self.focal[0], self.focal[-1]), c, "the model's BODY3D.FOCAL"
        if self.focal_per_width > 0:
            f = self.focal_per_width * width
            return (f, f), c, f"the model's training camera (f = {self.focal_per_width:g} x image width)"
        return (DEMO_FOCAL, DEMO_FOCAL), c, f"the 3DMPPE demo default (f = {DEMO_FOCAL:g} px)"

    @property
    def out_channels(self) -> int:
        """Channels of the network's last heatmap volume: depth_dim per joint."""
        return self.num_keypoints * self.depth_dim

    def encode(self, keypoints: np.ndarray, visible: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Keypoints [K,2|3] (crop input px, root-relative depth mm; 0 when absent) -> target [K,3] (output px,
        depth bins) and target_weight [K,1] (0 for an invisible joint or one outside the crop / depth box)."""
        kp = np.asarray(keypoints, dtype=np.float64)
        depth = kp[:, 2] if kp.shape[1] > 2 else np.zeros(len(kp))
        (iw, ih), (ow, oh) = self.input_size, self.output_size
        z = (depth / (self.bbox_3d_depth / 2.0) + 1.0) / 2.0  # official order of operations (float64)
        inside = (kp[:, 0] >= 0) & (kp[:, 0] < iw) & (kp[:, 1] >= 0) & (kp[:, 1] < ih) & (z >= 0) & (z < 1)
        vis = np.ones(len(kp), np.float32) if visible is None else np.asarray(visible, np.float32).reshape(-1)
        target = np.stack([kp[:, 0] / iw * ow, kp[:, 1] / ih * oh, z * self.depth_dim], axis=1).astype(np.float32)
        return {"target": target, "target_weight": ((vis > 0) & inside).astype(np.float32)[:, None]}

    def decode(self, outputs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Soft-argmax coordinates [N,K,3] (output px, bins) -> keypoints [N,K,2] in crop input px, scores [N,K]."""
        x = to_numpy(outputs)
        if x.ndim != 3 or x.shape[1:] != (self.num_keypoints, 3):
            raise DataError(f"codec body3d: outputs shape {tuple(x.shape)}, expected [N, {self.num_keypoints}, 3]")
        (iw, ih), (ow, oh) = self.input_size, self.output_size
        xy = np.stack([x[..., 0] * iw / ow, x[..., 1] * ih / oh], axis=-1).astype(np.float32)
        return xy, np.ones(x.shape[:2], np.float32)

    def perfect_outputs(self, keypoints: np.ndarray) -> np.ndarray:
        """The network output [K,3] that decodes to keypoints [K,2] (depth: the root's bin)."""
        return self.encode(np.asarray(keypoints, np.float32)[:, :2])["target"]


def process_bbox(bbox: Sequence[float], width: float, height: float, aspect_ratio: float = 1.0,
                 padding: float = 1.25) -> np.ndarray | None:
    """Official process_bbox: clip xywh to the image (None if empty), grow to `aspect_ratio` (w/h), x `padding`."""
    x, y, w, h = (float(v) for v in bbox[:4])
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1, x1 + max(0.0, w - 1))
    y2 = min(height - 1, y1 + max(0.0, h - 1))
    if not (w * h > 0 and x2 >= x1 and y2 >= y1):
        return None
    bw, bh = x2 - x1, y2 - y1
    cx, cy = x1 + bw / 2.0, y1 + bh / 2.0
    if bw > aspect_ratio * bh:
        bh = bw / aspect_ratio
    elif bw < aspect_ratio * bh:
        bw = bh * aspect_ratio
    bw, bh = bw * padding, bh * padding
    return np.array([cx - bw / 2.0, cy - bh / 2.0, bw, bh], dtype=np.float64)


def flip_test_merge(coord: np.ndarray, flipped: np.ndarray, output_width: int,
                    flip_pairs: Sequence[Sequence[int]]) -> np.ndarray:
    """Official flip test: the flipped input's coords get x -> W_out - 1 - x and pairs swapped, then averaged."""
    f = np.array(flipped, copy=True)
    f[:, :, 0] = output_width - f[:, :, 0] - 1
    for a, b in flip_pairs:
        f[:, [a, b]] = f[:, [b, a]]
    return (np.asarray(coord) + f) / 2


def output_to_image(coords: np.ndarray, bbox: np.ndarray, root_depth: np.ndarray,
                    output_size: tuple[int, int], depth_dim: int = DEPTH_DIM,
                    bbox_3d_depth: float = BBOX_3D_DEPTH) -> np.ndarray:
    """Soft-argmax coords [N,J,3] (output px, bins) -> (u, v, Z) [N,J,3]: x / W_out * bbox_w + bbox_x, likewise y;
    Z = (z / D * 2 - 1) * bbox_3d_depth / 2 + root depth. Keeps the coords' dtype (float32 as official)."""
    out = np.array(coords, copy=True)
    bbox = np.asarray(bbox, dtype=np.float64).reshape(-1, 4)
    root = np.asarray(root_depth).reshape(-1)  # keep its dtype: float32 root -> float32 arithmetic, as official
    w, h = output_size
    for n in range(len(out)):
        out[n, :, 0] = out[n, :, 0] / w * bbox[n, 2] + bbox[n, 0]
        out[n, :, 1] = out[n, :, 1] / h * bbox[n, 3] + bbox[n, 1]
        out[n, :, 2] = (out[n, :, 2] / depth_dim * 2 - 1) * (bbox_3d_depth / 2) + root[n]
    return out


def output_to_camera(coords: np.ndarray, bbox: np.ndarray, root_depth: np.ndarray, f: np.ndarray, c: np.ndarray,
                     output_size: tuple[int, int], depth_dim: int = DEPTH_DIM,
                     bbox_3d_depth: float = BBOX_3D_DEPTH) -> np.ndarray:
    """Soft-argmax coords [N,J,3] -> camera space [N,J,3] (mm) with each sample's f [N,2], c [N,2] (official test)."""
    img = output_to_image(coords, bbox, root_depth, output_size, depth_dim, bbox_3d_depth)
    f = np.asarray(f).reshape(-1, 2)
    c = np.asarray(c).reshape(-1, 2)
    return np.stack([pixel2cam(img[n], f[n], c[n]) for n in range(len(img))]) if len(img) else img


def patch_transform(center: Sequence[float], size: Sequence[float], scale: float, rotation: float,
                    out_size: tuple[int, int], inv: bool = False) -> np.ndarray:
    """[2,3] affine: box (centre, size px) scaled and rotated (degrees) -> crop of out_size (w, h), centre at w/2."""
    sw, sh = float(size[0]) * scale, float(size[1]) * scale
    r = math.radians(rotation)
    sn, cs = math.sin(r), math.cos(r)

    def rot(x: float, y: float) -> np.ndarray:
        return np.array([x * cs - y * sn, x * sn + y * cs], dtype=np.float32)

    cx, cy = float(center[0]), float(center[1])
    dw, dh = float(out_size[0]), float(out_size[1])
    src = np.array([[cx, cy], [cx, cy] + rot(0, sh * 0.5), [cx, cy] + rot(sw * 0.5, 0)], dtype=np.float32)
    dst = np.array([[dw * 0.5, dh * 0.5], [dw * 0.5, dh * 0.5 + dh * 0.5], [dw * 0.5 + dw * 0.5, dh * 0.5]],
                   dtype=np.float32)
    return cv2.getAffineTransform(dst, src) if inv else cv2.getAffineTransform(src, dst)


def normalize_input(rgb: np.ndarray, input_norm: str = "standard") -> np.ndarray:
    """H x W x 3 RGB (uint8 or float 0..255) -> [3, H, W] float32, "standard" (/255) or "official_255" (no /255)."""
    if input_norm not in INPUT_NORMS:
        raise ConfigError(f"input normalisation: expected one of {INPUT_NORMS}, got {input_norm!r}")
    x = np.asarray(rgb, dtype=np.float32)
    if input_norm == "standard":
        x = x / 255.0
    return np.ascontiguousarray(((x - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1), dtype=np.float32)
