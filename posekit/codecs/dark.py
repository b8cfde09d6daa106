"""DARK (Distribution-Aware coordinate Representation of Keypoints): unbiased encoding and Taylor decoding.

Follows the official DarkPose code: the crop uses the "dark" affine ((w-1)/2 centres), targets are full-map
Gaussians at the float heatmap coordinate, decoding blurs the heatmap (kernel 11, zero padding, rescaled to the
original maximum), takes the log and makes one second-order Taylor (Newton) step from the argmax. DarkPose removed
the flip-test one-pixel shift, so `shift_heatmap` is False.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from posekit.codecs.base import ArrayLike, BlurCodec, to_numpy
from posekit.codecs.heatmap_ops import gather
from posekit.codecs.msra import get_max_preds, to_image

_CV_MAX_CHANNELS = 128  # OpenCV 5 limit (4.x: 512)


def generate_target_unbiased(
    joints_heatmap: np.ndarray, joints_vis: np.ndarray, heatmap_size: Sequence[int] = (48, 64), sigma: float = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Official DarkPose generate_target: heatmap-px joints [K,>=2] -> (target [K,h,w] float32, weight [K,1]).

    Full-map Gaussian at the float coordinate; the weight is zeroed when int(mu - 3 sigma) >= size or
    int(mu + 3 sigma + 1) < 0 on either axis (int() truncates toward zero).
    """
    w, h = int(heatmap_size[0]), int(heatmap_size[1])
    mu = np.asarray(joints_heatmap, dtype=np.float64)[:, :2]
    weight = np.asarray(joints_vis, np.float32).reshape(-1).copy()
    tmp = sigma * 3
    ul = np.trunc(mu - tmp)
    br = np.trunc(mu + tmp + 1)
    outside = (ul[:, 0] >= w) | (ul[:, 1] >= h) | (br[:, 0] < 0) | (br[:, 1] < 0)
    weight[outside] = 0
    x = np.arange(w, dtype=np.float32)
    y = np.arange(h, dtype=np.float32)
    ex = (x[None, :] - mu[:, :1]) ** 2  # float64 as numpy 2 computes (float32 array - float64 scalar)
    ey = (y[None, :] - mu[:, 1:]) ** 2
    g = np.exp(-(ex[:, None, :] + ey[:, :, None]) / (2 * float(sigma) ** 2))
    target = np.where((weight > 0.5)[:, None, None], g, 0).astype(np.float32)
    return target, weight.reshape(-1, 1)


def _blur_stack(maps: np.ndarray, kernel: int, border: int, dtype: type) -> np.ndarray:
    """cv2.GaussianBlur(k, k, sigma 0) of every map [M,h,w] (channels-last batches of <= 128 maps); k <= 1: none."""
    if kernel <= 1:
        return np.array(maps, dtype=dtype, copy=True)
    m = maps.shape[0]
    out = np.empty(maps.shape, dtype=dtype)
    for s in range(0, m, _CV_MAX_CHANNELS):
        chunk = np.ascontiguousarray(maps[s : s + _CV_MAX_CHANNELS].transpose(1, 2, 0), dtype=dtype)
        blurred = cv2.GaussianBlur(chunk, (kernel, kernel), 0, borderType=border)
        out[s : s + _CV_MAX_CHANNELS] = (blurred if blurred.ndim == 3 else blurred[..., None]).transpose(2, 0, 1)
    return out


def gaussian_blur(heatmaps: ArrayLike, kernel: int = 11) -> np.ndarray:
    """Official DarkPose gaussian_blur: zero-pad (k-1)/2, blur in float64, crop, rescale to the original max.

    Returns a new float32 array (the official function also overwrites its input; posekit does not). All-zero maps
    become NaN (0/0) as in the official code.
    """
    hm = to_numpy(heatmaps)
    n, k, h, w = hm.shape
    b = (kernel - 1) // 2
    padded = np.zeros((n * k, h + 2 * b, w + 2 * b), dtype=np.float64)
    padded[:, b : b + h, b : b + w] = hm.reshape(n * k, h, w)
    blurred = _blur_stack(padded, kernel, cv2.BORDER_REFLECT_101, np.float64)[:, b : b + h, b : b + w]
    out = blurred.astype(np.float32).reshape(n, k, h, w)
    origin_max = hm.reshape(n, k, -1).max(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = origin_max / out.reshape(n, k, -1).max(axis=2)
        out *= ratio[..., None, None]
    return out


def taylor(log_heatmaps: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Official DarkPose taylor, vectorised: one Newton step on the log-heatmap at int(coords), float32.

    Applied only where 1 < px < w-2 and 1 < py < h-2 (px = int(x)) and the Hessian determinant is non-zero.
    """
    hm = log_heatmaps
    _, _, h, w = hm.shape
    coords = np.array(coords, dtype=np.float32, copy=True)
    px = np.trunc(coords[..., 0]).astype(np.int64)
    py = np.trunc(coords[..., 1]).astype(np.int64)
    ok = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2)
    if not ok.any():
        return coords

    def at(dx: int, dy: int) -> np.ndarray:
        return gather(hm, px + dx, py + dy)[ok]

    half, quarter = np.float32(0.5), np.float32(0.25)
    c = at(0, 0)
    dx = half * (at(1, 0) - at(-1, 0))
    dy = half * (at(0, 1) - at(0, -1))
    dxx = quarter * (at(2, 0) - 2 * c + at(-2, 0))
    dxy = quarter * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    dyy = quarter * (at(0, 2) - 2 * c + at(0, -2))
    det_ok = dxx * dyy - dxy**2 != 0
    hess = np.stack([np.stack([dxx, dxy], -1), np.stack([dxy, dyy], -1)], -2)[det_ok]
    grad = np.stack([dx, dy], -1)[det_ok]
    inv = _inv2x2(hess)
    offset = -(inv @ grad[..., None])[..., 0]
    rows = np.flatnonzero(ok.reshape(-1))[det_ok]
    flat = coords.reshape(-1, 2)
    flat[rows] += offset.astype(np.float32)
    return coords


def _inv2x2(m: np.ndarray) -> np.ndarray:
    """np.linalg.inv of a stack [M,2,2] (LAPACK, as np.matrix.I); a singular one (det test passed) gives zeros."""
    try:
        return np.linalg.inv(m)
    except np.linalg.LinAlgError:
        out = np.zeros_like(m)
        for i in range(m.shape[0]):  # rare fallback: exactly singular after LU although det != 0
            try:
                out[i] = np.linalg.inv(m[i])
            except np.linalg.LinAlgError:
                pass
        return out


def dark_heatmap_coords(heatmaps: ArrayLike, kernel: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Official DarkPose get_final_preds in heatmap space: (coords [N,K,2] float32, maxvals [N,K,1] unblurred)."""
    hm = to_numpy(heatmaps)
    coords, maxvals = get_max_preds(hm)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_hm = np.log(np.maximum(gaussian_blur(hm, kernel), np.float32(1e-10)))
    return taylor(log_hm, coords), maxvals


def get_final_preds(
    heatmaps: ArrayLike, center: np.ndarray, scale: np.ndarray, kernel: int = 11
) -> tuple[np.ndarray, np.ndarray]:
    """Official DarkPose get_final_preds: image px float32 [N,K,2] (dark affine) and maxvals [N,K,1]."""
    hm = to_numpy(heatmaps)
    coords, maxvals = dark_heatmap_coords(hm, kernel)
    h, w = hm.shape[2:]
    return to_image(coords, center, scale, (w, h), kind="dark"), maxvals


class DarkCodec(BlurCodec):
    """DARK: unbiased full-map Gaussian targets and blur + log + Taylor decoding (official DarkPose)."""

    name = "dark"
    affine = "dark"
    shift_heatmap = False

    def encode(self, keypoints: np.ndarray, visible: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Keypoints [K,2] input px -> {"target" [K,h,w], "target_weight" [K,1]} (heatmap coords via dark affine)."""
        return self.heatmap_targets(keypoints, visible, lambda kp, vis: generate_target_unbiased(
            self.input_to_heatmap(kp), vis, self.heatmap_size, self.sigma))

    def decode_heatmap(self, outputs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Outputs [N,K,h,w] -> (heatmap coords [N,K,2] float32, scores [N,K]) exactly as the official code."""
        coords, maxvals = dark_heatmap_coords(self._check_outputs(outputs), self.blur_kernel)
        return coords, maxvals[..., 0]

