"""MSRA Gaussian heatmaps (SimpleBaseline / HRNet): official generate_target and argmax + quarter-offset decoding."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from posekit import geometry
from posekit.codecs.base import ArrayLike, Codec, to_numpy
from posekit.codecs.heatmap_ops import argmax_2d, gather


def gaussian_window_targets(
    mu_int: np.ndarray,
    center_offset: np.ndarray,
    weight: np.ndarray,
    heatmap_size: Sequence[int],
    sigma: float,
    compute_float64: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussians in a (6 sigma + 1)^2 window at integer centres mu_int [K,2] (official generate_target rule).

    `center_offset` [K,2] is the sub-pixel position of the peak inside the window relative to the window centre
    (0 for MSRA, the fractional part for UDP). A joint whose window lies fully outside the map gets weight 0; maps
    of joints with weight <= 0.5 stay zero. With `compute_float64` the exponent is evaluated in float64 and cast
    (as the UDP code does under numpy 2); otherwise in float32 as the HRNet code does.
    """
    w, h = int(heatmap_size[0]), int(heatmap_size[1])
    k = mu_int.shape[0]
    tmp = sigma * 3
    size = 2 * tmp + 1
    x0 = size // 2
    ul = np.trunc(mu_int - tmp).astype(np.int64)
    br = np.trunc(mu_int + tmp + 1).astype(np.int64)
    outside = (ul[:, 0] >= w) | (ul[:, 1] >= h) | (br[:, 0] < 0) | (br[:, 1] < 0)
    weight = np.where(outside, 0.0, weight).astype(np.float32)
    span = int(max((br - ul).max(initial=0), 0))
    r = np.arange(span)
    if compute_float64:
        ex = (r[None, :] - (x0 + center_offset[:, :1])) ** 2
        ey = (r[None, :] - (x0 + center_offset[:, 1:])) ** 2
        g = np.exp(-(ey[:, :, None] + ex[:, None, :]) / (2 * float(sigma) ** 2))
    else:
        e = (r.astype(np.float32) - np.float32(x0)) ** 2
        g = np.exp(-(e[:, None] + e[None, :]) / np.float32(2 * float(sigma) ** 2))
        g = np.broadcast_to(g, (k, span, span))
    target = np.zeros((k, h, w), dtype=np.float32)
    lo = np.maximum(-ul, 0)  # first window row / column inside the map
    hi = np.minimum(np.minimum(br, (w, h)) - ul, br - ul)  # end of the window part inside the map
    start = np.maximum(ul, 0)
    for j in np.flatnonzero(weight > 0.5).tolist():  # slicing per joint: faster than one fancy-index scatter
        (lx, ly), (hx, hy), (ax, ay) = lo[j].tolist(), hi[j].tolist(), start[j].tolist()
        if hx > lx and hy > ly:
            target[j, ay:ay + hy - ly, ax:ax + hx - lx] = g[j, ly:hy, lx:hx]
    return target, weight.reshape(k, 1)


def generate_target(
    joints: np.ndarray,
    joints_vis: np.ndarray,
    image_size: Sequence[int] = (192, 256),
    heatmap_size: Sequence[int] = (48, 64),
    sigma: float = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Official HRNet generate_target: joints [K,>=2] input px, joints_vis [K] -> (target [K,h,w], weight [K,1])."""
    joints = np.asarray(joints, dtype=np.float64)[:, :2]
    feat_stride = np.asarray(image_size, np.float64) / np.asarray(heatmap_size, np.float64)
    mu = np.trunc(joints / feat_stride + 0.5)  # int() truncates toward zero
    vis = np.asarray(joints_vis, np.float32).reshape(-1)
    return gaussian_window_targets(mu, np.zeros_like(mu), vis, heatmap_size, sigma)


def get_max_preds(heatmaps: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Official get_max_preds: argmax -> (coords [N,K,2] float32, maxvals [N,K,1]); 0 where the max is <= 0."""
    return argmax_2d(heatmaps, fill=0.0)


def quarter_offset(coords: np.ndarray, heatmaps: ArrayLike) -> np.ndarray:
    """Official POST_PROCESS: move 0.25 px towards the higher neighbour where 1 < px < w-1 and 1 < py < h-1."""
    hm = to_numpy(heatmaps)
    _, _, h, w = hm.shape
    coords = np.array(coords, dtype=np.float32, copy=True)
    px = np.floor(coords[..., 0].astype(np.float64) + 0.5).astype(np.int64)
    py = np.floor(coords[..., 1].astype(np.float64) + 0.5).astype(np.int64)
    ok = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
    diff_x = gather(hm, px + 1, py) - gather(hm, px - 1, py)
    diff_y = gather(hm, px, py + 1) - gather(hm, px, py - 1)
    step = np.sign(np.stack([diff_x, diff_y], axis=-1)) * np.float32(0.25)
    coords += np.where(ok[..., None], step, np.float32(0)).astype(np.float32)
    return coords


def to_image(coords: np.ndarray, center: np.ndarray, scale: np.ndarray, heatmap_size: Sequence[int],
             kind: str = "standard") -> np.ndarray:
    """Official final step: heatmap coords [N,K,2] -> image px via transform_preds, written into float32."""
    preds = np.array(coords, dtype=np.float32, copy=True)
    for i in range(coords.shape[0]):
        preds[i] = geometry.transform_preds_official(coords[i], center[i], scale[i], heatmap_size, kind)
    return preds


def get_final_preds(
    heatmaps: ArrayLike, center: np.ndarray, scale: np.ndarray, post_process: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Official HRNet get_final_preds: heatmaps [N,K,h,w], center [N,2], scale [N,2] (200-px units) -> image px."""
    hm = to_numpy(heatmaps)
    coords, maxvals = get_max_preds(hm)
    if post_process:
        coords = quarter_offset(coords, hm)
    h, w = hm.shape[2:]
    return to_image(coords, center, scale, (w, h)), maxvals


class MSRACodec(Codec):
    """Gaussian heatmaps of the official HRNet / SimpleBaseline code (standard affine, flip shift).

    encode: 13x13 Gaussian (sigma 2) at mu = int(x / stride + 0.5), target weight = visible, zeroed only when the
    window is fully outside the map; optional per-joint weights. decode: argmax + quarter offset (official
    POST_PROCESS; `post_process=False` disables it), maxval <= 0 -> coordinate 0.
    """

    name = "msra"
    affine = "standard"
    shift_heatmap = True

    def __init__(self, *args, post_process: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.post_process = post_process

    def encode(self, keypoints: np.ndarray, visible: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Keypoints [K,2] input px -> {"target" [K,h,w], "target_weight" [K,1]} (official generate_target)."""
        return self.heatmap_targets(keypoints, visible, lambda kp, vis: generate_target(
            kp, vis, self.input_size, self.heatmap_size, self.sigma))

    def decode_heatmap(self, outputs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Outputs [N,K,h,w] -> (heatmap coords [N,K,2] float32, scores [N,K]) exactly as the official code."""
        hm = self._check_outputs(outputs)
        coords, maxvals = get_max_preds(hm)
        if self.post_process:
            coords = quarter_offset(coords, hm)
        return coords, maxvals[..., 0]

