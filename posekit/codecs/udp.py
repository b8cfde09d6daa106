"""UDP (Unbiased Data Processing): Gaussian heatmaps ("udp") and CombinedTarget offsets ("udp_offset").

Follows the UDP-Pose fork of mmpose: the crop uses the "udp" affine (box -> [0, w-1]), the encoding stride is
(input-1)/(heatmap-1), flipping is pixel-aligned (no one-pixel shift). Decoding of Gaussian maps is post_dark_udp
(cv2 Gaussian blur with reflect-101 border, clip to [0.001, 50], log, reflect pad, one Newton step with
Hessian + eps*I); decoding of CombinedTarget maps is blurred-response argmax + blurred offset * valid radius.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from posekit import geometry
from posekit.codecs.base import ArrayLike, BlurCodec, Codec, check_keypoints, to_numpy
from posekit.codecs.dark import _blur_stack
from posekit.codecs.heatmap_ops import argmax_2d
from posekit.codecs.msra import gaussian_window_targets
from posekit.errors import DataError

VALID_RADIUS_FACTOR = 0.0546875


def _stride(image_size: Sequence[int], heatmap_size: Sequence[int]) -> np.ndarray:
    return (np.asarray(image_size, np.float64) - 1.0) / (np.asarray(heatmap_size, np.float64) - 1.0)


def generate_target_gaussian(
    joints: np.ndarray,
    joints_vis: np.ndarray,
    image_size: Sequence[int] = (192, 256),
    heatmap_size: Sequence[int] = (48, 64),
    sigma: float = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Official UDP GaussianHeatMap target: 13x13 window at int(x/stride + 0.5) with the sub-pixel peak."""
    joints = np.asarray(joints, dtype=np.float64)[:, :2]
    mu_ac = joints / _stride(image_size, heatmap_size)
    mu = np.trunc(mu_ac + 0.5)
    vis = np.asarray(joints_vis, np.float32).reshape(-1)
    return gaussian_window_targets(mu, mu_ac - mu, vis, heatmap_size, sigma, compute_float64=True)


def generate_target_combined(
    joints: np.ndarray,
    joints_vis: np.ndarray,
    image_size: Sequence[int] = (192, 256),
    heatmap_size: Sequence[int] = (48, 64),
    valid_radius_factor: float = VALID_RADIUS_FACTOR,
) -> tuple[np.ndarray, np.ndarray]:
    """Official UDP CombinedTarget: [3K,h,w] (response 1 in the unit disc, x/y offsets (mu - grid) / radius).

    The weight is `joints_vis` and is never zeroed for joints outside the map (as official).
    """
    w, h = int(heatmap_size[0]), int(heatmap_size[1])
    joints = np.asarray(joints, dtype=np.float64)[:, :2]
    vis = np.asarray(joints_vis, np.float32).reshape(-1)
    k = joints.shape[0]
    radius = valid_radius_factor * h
    mu = joints / _stride(image_size, heatmap_size)
    ox = np.broadcast_to(((mu[:, :1] - np.arange(w)[None, :]) / radius)[:, None, :], (k, h, w))
    oy = np.broadcast_to(((mu[:, 1:] - np.arange(h)[None, :]) / radius)[:, :, None], (k, h, w))
    keep = (ox**2 + oy**2 <= 1) & (vis > 0.5)[:, None, None]
    target = np.zeros((k, 3, h, w), dtype=np.float32)
    target[:, 0] = keep
    target[:, 1] = np.where(keep, ox, 0)
    target[:, 2] = np.where(keep, oy, 0)
    return target.reshape(k * 3, h, w), vis.reshape(k, 1).copy()


def get_max_preds(heatmaps: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """mmpose _get_max_preds: argmax -> (coords [N,K,2] float32, maxvals [N,K,1]); -1 where the max is <= 0."""
    return argmax_2d(heatmaps, fill=-1.0)


def post_dark_udp(coords: np.ndarray, heatmaps: ArrayLike, kernel: int = 11) -> np.ndarray:
    """Official post_dark_udp, vectorised: coords [N,K,2] (argmax) -> refined heatmap coords (float32, as official).

    Blurs a copy of the heatmaps (the official function blurs its input in place). The Newton step is applied
    everywhere, also at borders and for maps whose coordinates are -1; as official, the neighbours of such a
    coordinate are read from the flattened padded batch (index -1 wraps), so those garbage values match too.
    """
    hm = to_numpy(heatmaps)
    b, k, h, w = hm.shape
    coords = np.asarray(coords)
    if coords.shape[:2] != (b, k):
        raise DataError(f"post_dark_udp: coords {coords.shape} do not match heatmaps {hm.shape}")
    blurred = _blur_stack(hm.reshape(b * k, h, w), kernel, cv2.BORDER_REFLECT_101, np.float32)
    log_hm = np.log(np.clip(blurred, np.float32(0.001), np.float32(50)))
    pad = np.pad(log_hm, ((0, 0), (1, 1), (1, 1)), mode="symmetric").reshape(-1)  # == cv2.BORDER_REFLECT
    c32 = coords.astype(np.float32)
    index = c32[..., 0] + 1 + (c32[..., 1] + 1) * (w + 2)
    index = index + (w + 2) * (h + 2) * np.arange(b * k).reshape(-1, k)
    index = index.astype(np.int64).reshape(-1)
    i_ = pad[index]
    ix1 = pad[index + 1]
    iy1 = pad[index + w + 2]
    ix1y1 = pad[index + w + 3]
    ix1_y1_ = pad[index - w - 3]
    ix1_ = pad[index - 1]
    iy1_ = pad[index - 2 - w]
    half = np.float32(0.5)
    dx = half * (ix1 - ix1_)
    dy = half * (iy1 - iy1_)
    dxx = ix1 - 2 * i_ + ix1_
    dyy = iy1 - 2 * i_ + iy1_
    dxy = half * (ix1y1 - ix1 - iy1 + i_ + i_ - ix1_ - iy1_ + ix1_y1_)
    hess = np.stack([np.stack([dxx, dxy], -1), np.stack([dxy, dyy], -1)], -2)
    hess = hess + np.finfo(np.float32).eps * np.eye(2)
    grad = np.stack([dx, dy], -1)
    step = np.einsum("imn,in->im", np.linalg.inv(hess), grad)
    out = np.array(coords, dtype=np.float32, copy=True)
    out -= step.reshape(b, k, 2)  # float64 step subtracted in place from float32 coords, as official
    return out


def decode_combined(
    heatmaps: ArrayLike, kernel: int = 11, valid_radius_factor: float = VALID_RADIUS_FACTOR
) -> tuple[np.ndarray, np.ndarray]:
    """UDP CombinedTarget decoding [N,3K,h,w] -> (heatmap coords [N,K,2] float32, maxvals [N,K,1]).

    Response maps are blurred with kernel 2k+1 and offset maps with k (cv2 default border), coords = argmax of
    the blurred response + blurred offset * valid radius (factor * h). Fix: the official code adds the per-map
    index base as `W*H*arange(N*K)` to an [N,K] array, which raises a broadcast error for batch N > 1; here the
    base is reshaped to [N,K], which gives the official result of each sample for any N.
    """
    hm = to_numpy(heatmaps)
    n, c, h, w = hm.shape
    if c % 3:
        raise DataError(f"CombinedTarget decode: {c} channels is not 3 x joints")
    k = c // 3
    maps = hm.reshape(n, k, 3, h, w)
    resp = _blur_stack(maps[:, :, 0].reshape(-1, h, w), 2 * kernel + 1, cv2.BORDER_REFLECT_101, np.float32)
    offs = _blur_stack(maps[:, :, 1:].reshape(-1, h, w), kernel, cv2.BORDER_REFLECT_101, np.float32)
    offs = offs.reshape(n, k, 2, h * w)
    radius = valid_radius_factor * h
    off_x = (offs[:, :, 0] * radius).reshape(-1)
    off_y = (offs[:, :, 1] * radius).reshape(-1)
    preds, maxvals = get_max_preds(resp.reshape(n, k, h, w))
    index = preds[..., 0] + preds[..., 1] * w
    index = (index + w * h * np.arange(n * k).reshape(n, k)).astype(np.int64)
    preds = preds + np.stack([off_x[index], off_y[index]], axis=-1)
    return preds.astype(np.float32), maxvals


def keypoints_from_heatmaps(
    heatmaps: ArrayLike,
    center: np.ndarray,
    scale: np.ndarray,
    kernel: int = 11,
    target_type: str = "GaussianHeatMap",
    valid_radius_factor: float = VALID_RADIUS_FACTOR,
) -> tuple[np.ndarray, np.ndarray]:
    """Official mmpose keypoints_from_heatmaps(use_udp=True): image px [N,K,2] and maxvals [N,K,1].

    Coordinates are float32: the float64 transform result is written into the float32 coords array, as official.
    """
    hm = to_numpy(heatmaps)
    h, w = hm.shape[2:]
    if target_type == "GaussianHeatMap":
        preds, maxvals = get_max_preds(hm)
        preds = post_dark_udp(preds, hm, kernel)
    elif target_type == "CombinedTarget":
        preds, maxvals = decode_combined(hm, kernel, valid_radius_factor)
    else:
        raise DataError(f"target_type must be GaussianHeatMap or CombinedTarget, got {target_type!r}")
    out = np.array(preds, dtype=np.float32, copy=True)
    for i in range(preds.shape[0]):
        out[i] = geometry.transform_preds_official(preds[i], center[i], scale[i], (w, h), kind="udp")
    return out, maxvals


class UDPCodec(BlurCodec):
    """UDP Gaussian heatmaps: unbiased encoding in a 13x13 window and post_dark_udp decoding (udp affine)."""

    name = "udp"
    affine = "udp"
    shift_heatmap = False

    def encode(self, keypoints: np.ndarray, visible: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Keypoints [K,2] input px -> {"target" [K,h,w], "target_weight" [K,1]} (official UDP GaussianHeatMap)."""
        return self.heatmap_targets(keypoints, visible, lambda kp, vis: generate_target_gaussian(
            kp, vis, self.input_size, self.heatmap_size, self.sigma))

    def decode_heatmap(self, outputs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Outputs [N,K,h,w] -> (heatmap coords [N,K,2] float32, scores [N,K]) as official (-1 + step if max<=0)."""
        hm = self._check_outputs(outputs)
        preds, maxvals = get_max_preds(hm)
        return post_dark_udp(preds, hm, self.blur_kernel), maxvals[..., 0]


class UDPOffsetCodec(Codec):
    """UDP CombinedTarget: per joint 3 channels (response disc, x offset, y offset / valid radius); udp affine.

    Decoding is vectorised over the batch (fixes the official batch > 1 broadcast crash, see decode_combined).
    `blur_kernel` k (official modulate_kernel, 11) blurs offsets with k and responses with 2k+1; 0 disables both.
    """

    name = "udp_offset"
    affine = "udp"
    shift_heatmap = False
    channels_per_joint = 3

    def __init__(self, *args, blur_kernel: int = 11, valid_radius_factor: float = VALID_RADIUS_FACTOR,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.blur_kernel = int(blur_kernel)
        self.valid_radius_factor = float(valid_radius_factor)

    def encode(self, keypoints: np.ndarray, visible: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Keypoints [K,2] input px -> {"target" [3K,h,w], "target_weight" [K,1]} (official CombinedTarget)."""
        kp, vis = check_keypoints(keypoints, visible, self.num_keypoints)
        target, weight = generate_target_combined(kp, vis, self.input_size, self.heatmap_size,
                                                  self.valid_radius_factor)
        return {"target": target, "target_weight": self._weights(weight)}

    def decode_heatmap(self, outputs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Outputs [N,3K,h,w] -> (heatmap coords [N,K,2] float32, scores [N,K] = blurred response max)."""
        coords, maxvals = decode_combined(self._check_outputs(outputs), self.blur_kernel, self.valid_radius_factor)
        return coords, maxvals[..., 0]


    def flip_back(self, outputs: ArrayLike, flip_index: Sequence[int] | np.ndarray) -> ArrayLike:
        """Official CombinedTarget flip_back: negate x offsets, swap joint triples, mirror along w."""
        out = super().flip_back(outputs, flip_index)
        out[:, 1::3] = -out[:, 1::3]
        return out
