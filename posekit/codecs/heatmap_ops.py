"""Heatmap math shared by every codec: argmax with a stated fill, gathering values at integer coordinates.

Fill rule: where a map's maximum is <= 0 there is no peak; the official HRNet code reports (0, 0) there
(`fill=0`, msra/dark/LPN), mmpose's UDP code (-1, -1) (`fill=-1`). Ties go to the first flat index (numpy argmax),
as both official implementations. Soft-argmax lives in posekit.codecs.integral (differentiable, torch or numpy).
"""

from __future__ import annotations

import numpy as np

from posekit.codecs.base import ArrayLike, to_numpy


def argmax_2d(heatmaps: ArrayLike, fill: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Maps [N,K,h,w] -> (argmax coords [N,K,2] float32 (x, y), maxvals [N,K,1]); `fill` where the max is <= 0."""
    hm = to_numpy(heatmaps)
    n, k, _, w = hm.shape
    flat = hm.reshape(n, k, -1)
    idx = np.argmax(flat, axis=2)
    maxvals = np.take_along_axis(flat, idx[..., None], axis=2)
    idx = idx.astype(np.float32)
    preds = np.stack([idx % w, np.floor(idx / w)], axis=-1).astype(np.float32)
    return np.where(maxvals > 0.0, preds, np.float32(fill)).astype(np.float32), maxvals


def gather(hm: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """hm[n, k, y[n,k], x[n,k]] for integer index arrays [N,K] (indices are clipped into the map)."""
    n, k, h, w = hm.shape
    xi = np.clip(x, 0, w - 1)
    yi = np.clip(y, 0, h - 1)
    return np.take_along_axis(hm.reshape(n, k, -1), (yi * w + xi)[..., None], axis=2)[..., 0]
