"""bearpaw/pytorch-pose conventions as used by CC-SSL (Learning from Synthetic Animals): 1-based points, truncation.

Kept apart from the standard codecs on purpose: these functions reproduce the official arrays exactly
(../shared/reference/codecs/ccssl_bearpaw.npz), including their integer truncations, and are not the HRNet
conventions used everywhere else in posekit.

Conventions (official, reproduced):
- `transform(pt, ...)` works on 1-based points: it subtracts 1, applies the 3x3 crop matrix of `get_transform`
  (scale is in 200-px units, `res` is (rows, cols)), TRUNCATES to int (toward zero) and adds 1 back.
- `get_preds` gives 1-based (x, y) argmaxes (first flat index on ties), (0, 0) where the map's max is <= 0.
- `final_preds` adds the quarter-pixel shift (only for 1 < px < W and 1 < py < H, neighbour differences read on
  the 0-based grid), adds 0.5 and maps back with `transform_preds` (integer results).
- `draw_labelmap` WRITES (does not max-combine) a (6 sigma + 1)^2 kernel with ul = int(pt - 3 sigma); it returns
  flag 0 only when the window is completely outside by the official test (ul >= size or br < 0).
- Dataset targets (`encode_joints`): a joint is drawn only if its y > 0 (not if visible), at transform(pt + 1) - 1;
  its weight is its visibility times the draw flag.
- `kpts_to_heatmap` (pseudo-label targets): keypoints of a 256 crop truncated to int32, then `transform` without
  the +1 of the dataset rule, so blobs land at int((x - 1) / 4) (one quarter-pixel off the dataset rule; kept).

`BearpawCodec` puts these rules behind the posekit Codec interface (keypoints in crop input px, 0-based, pixel
centres at integers): encode = the official 1-based target rule for an identity crop; decode = official
`final_preds` for that crop, minus 1 (deliberate difference: posekit decoders return 0-based crop px; the
official returns 1-based points).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from posekit.codecs.associative_embedding import whole_image_transform
from posekit.codecs.base import ArrayLike, Codec, check_keypoints, to_numpy
from posekit.errors import DataError

# TigDog 18-joint left/right pairs of the CC-SSL `real_animal` dataset (0-based); joints 2 and 7 unpaired.
TIGDOG_FLIP_PAIRS: tuple[tuple[int, int], ...] = ((0, 1), (3, 4), (5, 6), (8, 9), (10, 11), (12, 13), (14, 15),
                                                  (16, 17))


# ----------------------------------------------------------------------------------------------------------------
# Geometry (pose/utils/transforms.py)


def get_transform(center: Sequence[float], scale: float, res: Sequence[int], rot: float = 0.0) -> np.ndarray:
    """3x3 matrix: image px -> crop px of side 200 * scale at `center`, output `res` = (rows, cols), rot degrees."""
    return whole_image_transform(center, 200.0 * float(scale), res, rot)


def transform(pt: Sequence[float], center: Sequence[float], scale: float, res: Sequence[int], invert: bool = False,
              rot: float = 0.0) -> np.ndarray:
    """One 1-based point through the crop matrix (or its inverse); the result is truncated to int, as official."""
    t = get_transform(center, scale, res, rot=rot)
    if invert:
        t = np.linalg.inv(t)
    p = t @ np.array([float(pt[0]) - 1.0, float(pt[1]) - 1.0, 1.0])
    return p[:2].astype(np.int64) + 1


def transform_preds(coords: np.ndarray, center: Sequence[float], scale: float, res: Sequence[int]) -> np.ndarray:
    """Heatmap coords [K,2] -> image coords [K,2] (float32, integer-valued) with the inverse crop matrix."""
    c = np.array(coords, dtype=np.float32, copy=True)
    for p in range(c.shape[0]):
        c[p, :2] = transform(c[p, :2], center, scale, res, invert=True)
    return c


# ----------------------------------------------------------------------------------------------------------------
# Decoding (pose/utils/evaluation.py)


def get_preds(scores: ArrayLike) -> np.ndarray:
    """Heatmaps [N,K,H,W] -> 1-based argmax (x, y) [N,K,2] float32; (0, 0) where max <= 0."""
    hm = to_numpy(scores)
    if hm.ndim != 4:
        raise DataError(f"get_preds: heatmaps of shape {hm.shape}, expected [N, K, H, W]")
    n, k, _, w = hm.shape
    flat = hm.reshape(n, k, -1)
    idx = flat.argmax(axis=2)
    maxval = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
    preds = np.stack([idx % w + 1, idx // w + 1], axis=-1).astype(np.float32)
    preds *= (maxval > 0)[..., None].astype(np.float32)
    return preds


def final_preds_heatmap(output: ArrayLike) -> np.ndarray:
    """get_preds + quarter-pixel shift + 0.5: heatmap coords [N,K,2] float32 before the inverse transform."""
    hm = to_numpy(output)
    coords = get_preds(hm)
    _, _, h, w = hm.shape
    px = np.floor(coords[..., 0]).astype(np.int64)
    py = np.floor(coords[..., 1]).astype(np.int64)
    ok = (px > 1) & (px < w) & (py > 1) & (py < h)
    for n, k in zip(*np.nonzero(ok)):
        m, x, y = hm[n, k], px[n, k], py[n, k]
        diff = np.array([m[y - 1, x] - m[y - 1, x - 2], m[y, x - 1] - m[y - 2, x - 1]], dtype=np.float32)
        coords[n, k] += np.sign(diff) * np.float32(0.25)
    return coords + np.float32(0.5)


def final_preds(output: ArrayLike, center: np.ndarray, scale: np.ndarray, res: Sequence[int]) -> np.ndarray:
    """Official final_preds: heatmaps [N,K,H,W], centres [N,2], scales [N] (200-px units) -> image coords [N,K,2]."""
    coords = final_preds_heatmap(output)
    center = np.asarray(center).reshape(-1, 2)
    scale = np.asarray(scale).reshape(-1)
    return np.stack([transform_preds(coords[i], center[i], float(scale[i]), res) for i in range(coords.shape[0])])


def heatmap_maxvals(output: ArrayLike) -> np.ndarray:
    """Per-joint maximum [N,K] of heatmaps [N,K,H,W] (CC-SSL's pseudo-label confidence)."""
    hm = to_numpy(output)
    return hm.reshape(hm.shape[0], hm.shape[1], -1).max(axis=2)


# ----------------------------------------------------------------------------------------------------------------
# Targets (pose/utils/imutils.py, real_animal.py, CCSSL/scripts/consistency.py)


def gaussian(shape: Sequence[int] = (7, 7), sigma: float = 1.0) -> np.ndarray:
    """Official imutils.gaussian: a centred Gaussian with tiny values (< eps * max) set to 0, float32."""
    m, n = [(s - 1.0) / 2.0 for s in shape]
    y, x = np.ogrid[-m:m + 1, -n:n + 1]
    g = np.exp(-(x * x + y * y) / (2.0 * sigma * sigma))
    g[g < np.finfo(g.dtype).eps * g.max()] = 0
    return g.astype(np.float32)


def draw_labelmap(img: np.ndarray, pt: Sequence[float], sigma: float, kind: str = "Gaussian") -> tuple[np.ndarray, int]:
    """Official draw_labelmap: write a Gaussian / Cauchy kernel at pt (x, y) into a copy of img [H,W]; (map, flag)."""
    img = np.array(img, dtype=np.float32, copy=True)
    ul = [int(pt[0] - 3 * sigma), int(pt[1] - 3 * sigma)]
    br = [int(pt[0] + 3 * sigma + 1), int(pt[1] + 3 * sigma + 1)]
    if ul[0] >= img.shape[1] or ul[1] >= img.shape[0] or br[0] < 0 or br[1] < 0:
        return img, 0
    size = 6 * sigma + 1
    x = np.arange(0, size, 1, float)
    y = x[:, None]
    x0 = y0 = size // 2
    if kind == "Gaussian":
        g = np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma ** 2))
    elif kind == "Cauchy":
        g = sigma / (((x - x0) ** 2 + (y - y0) ** 2 + sigma ** 2) ** 1.5)
    else:
        raise DataError(f"draw_labelmap: kind {kind!r}, expected 'Gaussian' or 'Cauchy'")
    gx = max(0, -ul[0]), min(br[0], img.shape[1]) - ul[0]
    gy = max(0, -ul[1]), min(br[1], img.shape[0]) - ul[1]
    ix = max(0, ul[0]), min(br[0], img.shape[1])
    iy = max(0, ul[1]), min(br[1], img.shape[0])
    img[iy[0]:iy[1], ix[0]:ix[1]] = g[gy[0]:gy[1], gx[0]:gx[1]]
    return img, 1


def encode_joints(pts: np.ndarray, center: Sequence[float], scale: float, rot: float, out_res: int,
                  sigma: float = 1.0, kind: str = "Gaussian") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """real_animal.py target rule: image joints [K,3] (0-based x, y, vis) -> (target [K,R,R], weight [K,1], tpts)."""
    tpts = np.array(pts, dtype=np.float32, copy=True)
    k = tpts.shape[0]
    target = np.zeros((k, out_res, out_res), np.float32)
    weight = tpts[:, 2:3].copy()
    for i in range(k):
        if tpts[i, 1] > 0:
            tpts[i, :2] = transform(tpts[i, :2] + 1, center, scale, (out_res, out_res), rot=rot)
            target[i], vis = draw_labelmap(target[i], tpts[i, :2] - 1, sigma, kind)
            weight[i, 0] *= vis
    return target, weight, tpts


def kpts_to_heatmap(kpts: np.ndarray, input_res: int = 256, out_res: int = 64, sigma: float = 1.0) -> np.ndarray:
    """CC-SSL pseudo-label maps: crop keypoints [K,>=2] truncated to int32, passed through `transform` WITHOUT the
    +1 the dataset targets use (official), so the blob lands at int((x - 1) * out / in)."""
    k = np.asarray(kpts)[:, :2].astype(np.int32)
    target = np.zeros((k.shape[0], out_res, out_res), np.float32)
    for i in range(k.shape[0]):
        pt = transform(k[i], (input_res / 2, input_res / 2), input_res / 200.0, (out_res, out_res))
        target[i], _ = draw_labelmap(target[i], pt - 1, sigma)
    return target


# ----------------------------------------------------------------------------------------------------------------
# Flips and normalisation (pose/utils/transforms.py)


def fliplr(x: np.ndarray) -> np.ndarray:
    """Mirror the last axis of [C,H,W] or [N,C,H,W]; float64 as the official."""
    return np.ascontiguousarray(np.asarray(x)[..., ::-1]).astype(np.float64)


def flip_back(maps: np.ndarray, pairs: Sequence[tuple[int, int]] = TIGDOG_FLIP_PAIRS) -> np.ndarray:
    """Heatmaps [N,K,H,W] of a mirrored crop -> aligned with the original (mirror + swap pairs), float32."""
    out = fliplr(maps)
    for a, b in pairs:
        out[:, [a, b]] = out[:, [b, a]]
    return out.astype(np.float32)


def shufflelr(x: np.ndarray, width: float, pairs: Sequence[tuple[int, int]] = TIGDOG_FLIP_PAIRS) -> np.ndarray:
    """Official shufflelr: x -> width - x (not width - 1 - x) and swap left/right rows of joints [K, >=2]."""
    out = np.array(x, copy=True)
    out[:, 0] = width - out[:, 0]
    for a, b in pairs:
        out[[a, b]] = out[[b, a]]
    return out


def color_normalize(x: np.ndarray, mean: Sequence[float], std: Sequence[float] | None = None) -> np.ndarray:
    """Official color_normalize: subtract the per-channel mean of [3,H,W]; `std` is accepted and ignored."""
    x = np.asarray(x)
    return (x - np.asarray(mean, dtype=x.dtype)[:, None, None]).astype(x.dtype)


# ----------------------------------------------------------------------------------------------------------------
# The codec


class BearpawCodec(Codec):
    """bearpaw Gaussian targets (sigma 1 at 64x64 for 256 input) and final_preds decoding, in crop input px."""

    name = "bearpaw"

    def __init__(self, input_size: Sequence[int] = (256, 256), heatmap_size: Sequence[int] = (64, 64),
                 num_keypoints: int = 17, sigma: float = 1.0, joint_weights: Sequence[float] | None = None) -> None:
        super().__init__(input_size, heatmap_size, num_keypoints, sigma, joint_weights)
        iw, ih = self.input_size
        hw, hh = self.heatmap_size
        if iw * hh != ih * hw:
            raise DataError(f"codec bearpaw: input {iw}x{ih} and heatmap {hw}x{hh} must have the same aspect ratio")
        # bearpaw crops are square in 200-px units: one side defines the scale, `res` is (rows, cols).
        self._center = (iw / 2.0, ih / 2.0)
        self._scale = iw / 200.0
        self._res = (hh, hw)

    def encode(self, keypoints: np.ndarray, visible: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Crop px [K,2] (0-based) -> bearpaw target [K,h,w] at transform(pt + 1) - 1 and weight [K,1]."""
        kp, vis = check_keypoints(keypoints, visible, self.num_keypoints)
        hw, hh = self.heatmap_size
        target = np.zeros((self.num_keypoints, hh, hw), np.float32)
        weight = vis.reshape(-1, 1).copy()
        for i in range(self.num_keypoints):
            if vis[i] <= 0:
                continue
            pt = transform(kp[i] + 1, self._center, self._scale, self._res)
            target[i], flag = draw_labelmap(target[i], pt - 1, self.sigma)
            weight[i, 0] *= flag
        return {"target": target, "target_weight": self._weights(weight)}

    def decode(self, outputs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Heatmaps [N,K,h,w] -> (official final_preds - 1: crop px [N,K,2] float64, peak values [N,K])."""
        hm = self._check_outputs(outputs)
        n = hm.shape[0]
        coords = final_preds(hm, np.tile(np.asarray(self._center), (n, 1)), np.full(n, self._scale), self._res)
        return coords.astype(np.float64) - 1.0, heatmap_maxvals(hm).astype(np.float32)
