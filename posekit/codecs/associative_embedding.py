"""Associative Embedding (Newell et al. 2017) bottom-up codec: multi-person targets and the official grouping.

Reproduces princeton-vl/pose-ae-train (data/coco_pose/dp.py, utils/group.py, test.py); the fixtures
ae_targets.npz, ae_group.npz and ae_multiscale.npz pin every rule below.

Conventions
- Whole images, not crops. Keypoints arrive in network-input px (`encode`) or heatmap px (`encode_maps`),
  people x joints: `[P, K, 3]` (x, y, visibility) or `[P, K, 2]` + visible `[P, K]`.
- Targets (`GenerateHeatmap`, `KeypointsRef`): per joint a Gaussian patch of side 6*sigma+3 centred on
  (int(x), int(y)) (truncation, no sub-pixel centre), only for joints with visibility > 0 whose int coords lie in
  the map; max over people. sigma defaults to map width / 64 (official). The reference array `refs`
  `[max_people, K, 2]` int64 holds, per person, its visible in-map joints PACKED to the front as
  (j*h*w + y*w + x, 1).
- Network output `[C, h, w]` (last stack): channels 0:K detection heatmaps, K:K+K*D tags (joint-major, D tag
  dims per joint; D = 1 in the official model; further channels, e.g. the official 34:68, are ignored).
- Grouping (`HeatmapParser`): 3x3 max-pool NMS (ties survive), top-k (k = max_people) per joint, joints visited
  in `joint_order` (official COCO order 0,1,2,3,4,5,6,11,12,7,8,9,10,13,14,15,16), candidates above the detection
  threshold; the first visited joint with candidates seeds one person per candidate keyed by its first tag
  component; later joints match candidates to the mean tags of the first max_people persons by root-mean-square
  tag distance, cost round(distance)*100 - detection value, padded with 1e10 columns, minimum-cost assignment,
  accepted only below the tag threshold; a joint type is skipped once max_people persons exist.
  adjust: +-0.25 towards the larger neighbour per axis (ties -0.25), then +0.5.
- refine (test.py): fills missing joints from argmax(det - round(L2 tag distance to the person's mean tag)) when
  that det value is > 0, with score 1. Person score = mean det value over the K joints, taken before refine.
- Map px -> network input px: x 4 (`stride`), then the inverse of the whole-image warp.

Deliberate differences from the official code:
- More than max_people people: the official KeypointsRef raises IndexError; here the extra people still get
  heatmaps but no reference rows.
- Any skeleton, non-square maps, D-dimensional tags, top-k limited to h*w.
- refine's border clamp: the official clamps the row index at det.shape[0]-1 (the joint count, not the map height);
  kept (`official_refine_clamp=True`) for parity, `False` clamps at the map height.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from posekit.codecs.base import ArrayLike, Codec, to_numpy
from posekit.errors import ConfigError, DataError

COCO_JOINT_ORDER = (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)
PAD_COST = 1e10
OFFICIAL_SCALES = (2.0, 1.0, 0.5)
SKIP_SCALE_ABOVE = 10.0  # a scale whose summed detection map exceeds this anywhere is skipped (test.py)


# ----------------------------------------------------------------------------------------------------------------
# Whole-image geometry (the bearpaw-style get_transform / kpt_affine of utils/misc.py)


def whole_image_transform(center: Sequence[float], size: float, res: Sequence[int], rot: float = 0.0) -> np.ndarray:
    """[3,3] image -> output map: a square of side `size` px centred on `center` onto res = (rows, cols).

    `size` = 200 * the official `scale`; x uses res[1], y uses res[0]; rotation by -rot degrees about the output
    centre (res[1]/2, res[0]/2), as the official get_transform.
    """
    h = float(size)
    t = np.zeros((3, 3))
    t[0, 0] = float(res[1]) / h
    t[1, 1] = float(res[0]) / h
    t[0, 2] = res[1] * (-float(center[0]) / h + 0.5)
    t[1, 2] = res[0] * (-float(center[1]) / h + 0.5)
    t[2, 2] = 1.0
    if rot != 0:
        a = -rot * np.pi / 180
        sn, cs = np.sin(a), np.cos(a)
        r = np.array([[cs, -sn, 0.0], [sn, cs, 0.0], [0.0, 0.0, 1.0]])
        to_origin = np.eye(3)
        to_origin[0, 2] = -res[1] / 2
        to_origin[1, 2] = -res[0] / 2
        back = to_origin.copy()
        back[:2, 2] *= -1
        t = np.dot(back, np.dot(r, np.dot(to_origin, t)))
    return t


def kpt_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Points [..., 2] through a [2,3] matrix as the official kpt_affine (homogeneous dot product, float64)."""
    p = np.asarray(points, dtype=np.float64)
    flat = p.reshape(-1, 2)
    homo = np.concatenate((flat, np.ones((len(flat), 1))), axis=1)
    return np.dot(homo, np.asarray(matrix, dtype=np.float64).T).reshape(p.shape)


# ----------------------------------------------------------------------------------------------------------------
# Targets


def gaussian_patch(sigma: float) -> np.ndarray:
    """The official kernel: side 6*sigma+3 (arange), centre 3*sigma+1, exp(-d^2 / (2 sigma^2)), float64."""
    size = 6 * sigma + 3
    x = np.arange(0, size, 1, float)
    y = x[:, None]
    c = 3 * sigma + 1
    arg = -((x - c) ** 2 + (y - c) ** 2) / (2 * sigma ** 2)
    # libm exp per element: numpy's SIMD exp differs from it by 1 ulp on some CPUs (the fixture matches libm)
    return np.array([math.exp(a) for a in arg.ravel()]).reshape(arg.shape)


def _as_people(keypoints: np.ndarray, visible: np.ndarray | None, k: int | None = None) -> np.ndarray:
    """[P,K,3] float64 (x, y, v) from [P,K,3] or [P,K,2] + visible [P,K]."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.size == 0:
        return np.zeros((0, k or (kp.shape[1] if kp.ndim == 3 else 0), 3))
    if kp.ndim != 3 or kp.shape[2] not in (2, 3) or (k is not None and kp.shape[1] != k):
        raise DataError(f"ae encode: keypoints shape {kp.shape}, expected [people, {k or 'K'}, 2 or 3]")
    if kp.shape[2] == 2 or visible is not None:
        vis = np.ones(kp.shape[:2]) if visible is None else np.asarray(visible, dtype=np.float64)
        if vis.shape != kp.shape[:2]:
            raise DataError(f"ae encode: visible shape {vis.shape}, expected {kp.shape[:2]}")
        kp = np.concatenate([kp[..., :2], vis[..., None]], axis=2)
    return kp


def subpixel_patch(sigma: float, fx: float, fy: float) -> np.ndarray:
    """The official patch's window with the Gaussian centred on the true point: pixel (c, r) of the window holds
    exp(-d^2 / (2 sigma^2)) of its centre (c + 0.5, r + 0.5) from (3*sigma+1 + fx, 3*sigma+1 + fy), fx, fy in
    [0, 1) the fractional map coordinates."""
    size = 6 * sigma + 3
    x = np.arange(0, size, 1, float) + 0.5
    c = 3 * sigma + 1
    return np.exp(-((x[None, :] - c - fx) ** 2 + (x[:, None] - c - fy) ** 2) / (2 * sigma ** 2))


def generate_heatmaps(keypoints: np.ndarray, size: Sequence[int], sigma: float, subpixel: bool = False
                      ) -> np.ndarray:
    """Official multi-person heatmaps [K, h, w] float32 from people [P, K, 3] in map px; size = (w, h).

    subpixel=False: the official patch peaks at (int(x), int(y)). True (posekit): same window and rules, but the
    Gaussian is centred on the true point (pixel c covers [c, c+1)), so the decoder's +0.5 / +-0.25 peak
    adjustment can recover where the point lies inside its pixel.
    """
    w, h = int(size[0]), int(size[1])
    kp = np.asarray(keypoints, dtype=np.float64)
    k = kp.shape[1]
    maps = np.zeros((k, h, w), dtype=np.float32)
    g = gaussian_patch(sigma)
    for person in kp:
        for j, (px, py, v) in enumerate(person):
            if v <= 0:
                continue
            x, y = int(px), int(py)
            if x < 0 or y < 0 or x >= w or y >= h:
                continue
            if subpixel:
                g = subpixel_patch(sigma, px - x, py - y)
            x0, y0 = int(x - 3 * sigma - 1), int(y - 3 * sigma - 1)
            x1, y1 = int(x + 3 * sigma + 2), int(y + 3 * sigma + 2)
            gx0, gx1 = max(0, -x0), min(x1, w) - x0
            gy0, gy1 = max(0, -y0), min(y1, h) - y0
            mx0, mx1 = max(0, x0), min(x1, w)
            my0, my1 = max(0, y0), min(y1, h)
            maps[j, my0:my1, mx0:mx1] = np.maximum(maps[j, my0:my1, mx0:mx1], g[gy0:gy1, gx0:gx1])
    return maps


def keypoint_refs(keypoints: np.ndarray, size: Sequence[int], max_people: int = 30) -> np.ndarray:
    """Official KeypointsRef [max_people, K, 2] int64: visible in-map joints packed as (j*h*w + y*w + x, 1)."""
    w, h = int(size[0]), int(size[1])
    kp = np.asarray(keypoints, dtype=np.float64)
    k = kp.shape[1] if kp.ndim == 3 else 0
    refs = np.zeros((max_people, k, 2), dtype=np.int64)
    for i, person in enumerate(kp[:max_people]):
        slot = 0
        for j, (px, py, v) in enumerate(person):
            x, y = int(px), int(py)
            if v > 0 and 0 <= x < w and 0 <= y < h:
                refs[i, slot] = (j * h * w + y * w + x, 1)
                slot += 1
    return refs


# ----------------------------------------------------------------------------------------------------------------
# Assignment


def min_cost_assignment(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost assignment of a [n, m] cost matrix (n <= m) -> (row, col) pairs sorted by row.

    Solved with the `munkres` package, as the official parser does: the cost round(d)*100 - value makes many
    assignments exactly equally cheap, and which of them is picked is the solver's (munkres 3 reproduces all four
    ae_group fixture cases; scipy's linear_sum_assignment, the fallback when munkres is missing, picks another
    equally cheap assignment at 2 of 16 joints in case 2, built from ties).
    """
    try:
        from munkres import Munkres
    except ImportError:
        from scipy.optimize import linear_sum_assignment

        r, c = linear_sum_assignment(cost)
        return [(int(i), int(j)) for i, j in zip(r, c)]
    if not np.size(cost):
        return []
    return sorted((int(i), int(j)) for i, j in Munkres().compute(np.asarray(cost, dtype=np.float64).tolist()))


# ----------------------------------------------------------------------------------------------------------------
# Grouping (HeatmapParser)


@dataclass
class ParserParams:
    """HeatmapParser settings; the defaults are those test.py constructs (detection 0.1, tag 1, 30 people)."""

    detection_threshold: float = 0.1
    tag_threshold: float = 1.0
    max_num_people: int = 30
    ignore_too_much: bool = True
    use_detection_val: bool = True
    joint_order: tuple[int, ...] = COCO_JOINT_ORDER

    def __post_init__(self) -> None:
        if self.max_num_people < 1:
            raise ConfigError(f"ae codec max_people must be >= 1, got {self.max_num_people}")


def joint_order_for(names: Sequence[str]) -> tuple[int, ...]:
    """Official visiting order for the COCO-17 names, identity order for any other skeleton."""
    from posekit.skeletons import COCO17

    return COCO_JOINT_ORDER if tuple(names) == COCO17.keypoints else tuple(range(len(names)))


def nms_topk(det: np.ndarray, tag: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """3x3 max-pool NMS and top-k per joint: (tag_k [K,k,D] float32, loc_k [K,k,2] int64 (x, y), val_k [K,k])."""
    d = torch.from_numpy(np.ascontiguousarray(det, dtype=np.float32))[None]
    kk, h, w = d.shape[1:]
    t = torch.from_numpy(np.ascontiguousarray(tag, dtype=np.float32)).reshape(1, kk, h * w, -1)
    keep = torch.eq(F.max_pool2d(d, 3, 1, 1), d).float()
    flat = (d * keep).view(1, kk, -1)
    val_k, ind = flat.topk(min(k, h * w), dim=2)
    tag_k = torch.stack([torch.gather(t[:, :, :, i], 2, ind) for i in range(t.shape[3])], dim=3)
    loc_k = torch.stack((ind % w, ind // w), dim=3)
    return tag_k[0].numpy(), loc_k[0].numpy().astype(np.int64), val_k[0].numpy()


def match_by_tag(tag_k: np.ndarray, loc_k: np.ndarray, val_k: np.ndarray, params: ParserParams) -> np.ndarray:
    """Group candidates into people [P, K, 3+D] float32 (x, y, det value, tags...); missing joints are zeros."""
    k, _, dim = tag_k.shape
    empty = np.zeros((k, 3 + dim))
    people: dict[Any, np.ndarray] = {}
    person_tags: dict[Any, list[np.ndarray]] = {}

    def new_person(key: Any, joint: int, row: np.ndarray, tag: np.ndarray) -> None:
        people.setdefault(key, empty.copy())[joint] = row
        person_tags[key] = [tag]

    for n, j in enumerate(params.joint_order):
        joints = np.concatenate((loc_k[j], val_k[j][:, None], tag_k[j]), axis=1)
        keep = joints[:, 2] > params.detection_threshold
        tags, joints = tag_k[j][keep], joints[keep]
        if n == 0 or not people:
            for tag, row in zip(tags, joints):
                new_person(tag[0], j, row, tag)
            continue
        keys = list(people)[:params.max_num_people]
        if params.ignore_too_much and len(keys) == params.max_num_people:
            continue
        means = np.array([np.mean(person_tags[key], axis=0) for key in keys])
        dist = ((joints[:, None, 3:] - means[None, :, :]) ** 2).mean(axis=2) ** 0.5
        if dist.shape[0] == 0:
            continue
        cost = np.round(dist) * 100 - joints[:, 2:3] if params.use_detection_val else dist.copy()
        if cost.shape[0] > cost.shape[1]:
            pad = np.zeros((cost.shape[0], cost.shape[0] - cost.shape[1])) + PAD_COST
            cost = np.concatenate((cost, pad), axis=1)
        for r, c in min_cost_assignment(cost):
            if r < dist.shape[0] and c < dist.shape[1] and dist[r][c] < params.tag_threshold:
                people[keys[c]][j] = joints[r]
                person_tags[keys[c]].append(tags[r])
            else:
                new_person(tags[r][0], j, joints[r], tags[r])
    if not people:
        return np.zeros((0, k, 3 + dim), dtype=np.float32)
    return np.array([people[key] for key in people]).astype(np.float32)


def adjust(people: np.ndarray, det: np.ndarray) -> np.ndarray:
    """Official quarter-pixel shift towards the larger neighbour on each axis (ties -0.25), then +0.5 (in place)."""
    h, w = det.shape[1:]
    for person in people:
        for j, joint in enumerate(person):
            if joint[2] <= 0:
                continue
            x, y = joint[0], joint[1]
            c, r = int(x), int(y)
            m = det[j]
            x = x + 0.25 if m[r, min(c + 1, w - 1)] > m[r, max(c - 1, 0)] else x - 0.25
            y = y + 0.25 if m[min(r + 1, h - 1), c] > m[max(0, r - 1), c] else y - 0.25
            person[j, 0:2] = (x + 0.5, y + 0.5)
    return people


def refine(det: np.ndarray, tag: np.ndarray, person: np.ndarray, official_clamp: bool = True) -> np.ndarray:
    """test.py refine: fill the missing joints of `person` [K, 3+D] (in place, returned) from the maps.

    Person tag = mean tag at the truncated locations of its found joints; per joint the pixel maximising
    det - round(L2 tag distance); filled only where the joint is missing and that det value is > 0 (score 1).
    """
    if tag.ndim == 3:
        tag = tag[..., None]
    k, h, w = det.shape
    found = [tag[i, int(np.int32(person[i, 1])), int(np.int32(person[i, 0]))] for i in range(k) if person[i, 2] > 0]
    prev = np.mean(found, axis=0)
    row_max = (k - 1) if official_clamp else (h - 1)
    col_max = w - 1  # official: det.shape[1]-1 = h-1, the same for its square maps
    picks = []
    for i in range(k):
        m = det[i]
        dist = ((tag[i] - prev[None, None, :]) ** 2).sum(axis=2) ** 0.5
        r, c = np.unravel_index(np.argmax(m - np.round(dist)), m.shape)
        val = m[r, c]
        y, x = r + 0.5, c + 0.5
        x = x + 0.25 if m[r, min(c + 1, col_max)] > m[r, max(c - 1, 0)] else x - 0.25
        y = y + 0.25 if m[min(r + 1, row_max), c] > m[max(0, r - 1), c] else y - 0.25
        picks.append((x, y, val))
    picks_arr = np.array(picks)
    for i in range(k):
        if picks_arr[i, 2] > 0 and person[i, 2] == 0:
            person[i, :2] = picks_arr[i, :2]
            person[i, 2] = 1
    return person


def parse(det: np.ndarray, tag: np.ndarray, params: ParserParams | None = None, adjust_peaks: bool = True
          ) -> np.ndarray:
    """HeatmapParser.parse of one image: det [K,h,w], tag [K,h,w,D] -> people [P, K, 3+D] float32 (map px)."""
    params = params or ParserParams()
    det = np.asarray(det, dtype=np.float32)
    tag = np.asarray(tag, dtype=np.float32)
    if tag.ndim == 3:
        tag = tag[..., None]
    if det.ndim != 3 or tag.shape[:3] != det.shape:
        raise DataError(f"ae parse: det {det.shape} and tag {tag.shape}, expected [K,h,w] and [K,h,w,D]")
    if len(params.joint_order) != det.shape[0] or sorted(params.joint_order) != list(range(det.shape[0])):
        raise ConfigError(f"ae parse: joint_order {params.joint_order} is not a permutation of {det.shape[0]} joints")
    tag_k, loc_k, val_k = nms_topk(det, tag, params.max_num_people)
    people = match_by_tag(tag_k, loc_k, val_k, params)
    return adjust(people, det) if adjust_peaks else people


def group(det: np.ndarray, tag: np.ndarray, params: ParserParams | None = None, do_refine: bool = True,
          official_clamp: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """parse (with adjust) + person scores (mean det value, before refine) + refine -> (people [P,K,3+D], scores)."""
    det = np.asarray(det, dtype=np.float32)
    tag = np.asarray(tag, dtype=np.float32)
    if tag.ndim == 3:
        tag = tag[..., None]
    people = parse(det, tag, params, adjust_peaks=True)
    scores = np.array([p[:, 2].mean() for p in people], dtype=np.float64)
    if do_refine:
        for p in people:
            refine(det, tag, p, official_clamp)
    return people, scores


# ----------------------------------------------------------------------------------------------------------------
# Multi-scale + flip aggregation (test.py multiperson)


def input_resolution(scale: float, base: int = 512) -> int:
    """Network input side for a test scale: scale*base rounded up to a multiple of 64 (official)."""
    return int((scale * base + 63) // 64 * 64)


def _resize_maps(maps: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """cv2.resize (bilinear) of every map [C,h,w] (or [C,h,w] of tags) to hw = (h, w)."""
    return np.array([cv2.resize(m, (hw[1], hw[0])) for m in maps])


@dataclass
class Aggregate:
    """Aggregated detection maps [K,H,W], tags [K,H,W,2D], the map->image [2,3] matrix and the map stride."""

    det: np.ndarray
    tag: np.ndarray
    inverse: np.ndarray
    stride: float
    used_scales: list[float] = field(default_factory=list)


def aggregate(per_scale: Sequence[tuple[float, np.ndarray, np.ndarray | None, np.ndarray, int]], num_keypoints: int,
              flip_index: Sequence[int] | np.ndarray, tag_dim: int = 1, num_scales: int | None = None
              ) -> Aggregate | None:
    """Official multi-scale aggregation.

    per_scale: (scale, out [C,h,w] last stack, out of the mirrored input or None, warp [2,3] image -> input,
    input side). det = out + flipped-back/permuted mirrored out; a scale whose det exceeds 10 anywhere is skipped;
    the first kept scale fixes the working resolution and the inverse warp; later dets are resized and added;
    tags come only from scale 1 (original and flipped-back, stacked along the tag axis); the det sum is divided by
    the number of scales (skipped ones included) and by 2 (by 1 without flip), then clipped at 1.
    None when no scale survives or scale 1 gave no tags.
    """
    k, d = num_keypoints, tag_dim
    fidx = np.asarray(flip_index, dtype=np.int64)
    dets: np.ndarray | None = None
    tags: list[np.ndarray] = []
    inverse = np.zeros((2, 3))
    stride = 4.0
    used = []
    flip = False
    for scale, out, out_flip, warp, side in per_scale:
        det = out[:k]
        tag = out[k:k + k * d].reshape(k, d, *out.shape[1:])
        if out_flip is not None:
            flip = True
            det = det + out_flip[:k][:, :, ::-1][fidx]
            tag_flip = out_flip[k:k + k * d].reshape(k, d, *out.shape[1:])[:, :, :, ::-1][fidx]
        if det.max() > SKIP_SCALE_ABOVE:
            continue
        used.append(float(scale))
        if dets is None:
            dets = det
            inverse = np.linalg.pinv(np.array(np.asarray(warp).tolist() + [[0, 0, 1]]))[:2]
            stride = side / out.shape[-1]
        else:
            dets = dets + _resize_maps(det, dets.shape[1:3])
        if abs(scale - 1) < 0.5:
            hw = dets.shape[1:3]
            for dd in range(d):
                tags.append(_resize_maps(np.ascontiguousarray(tag[:, dd]), hw))
            if out_flip is not None:
                for dd in range(d):
                    tags.append(_resize_maps(np.ascontiguousarray(tag_flip[:, dd]), hw))
    if dets is None or not tags:
        return None
    n = num_scales if num_scales is not None else len(per_scale)
    dets = dets / n
    if flip:
        dets = dets / 2
    dets = np.minimum(dets, 1)
    tag_arr = np.concatenate([t[..., None] for t in tags], axis=3)
    return Aggregate(det=np.float32(dets), tag=np.float32(tag_arr), inverse=inverse, stride=stride,
                     used_scales=used)


# ----------------------------------------------------------------------------------------------------------------
# COCO results


def coco_keypoints(person: np.ndarray) -> np.ndarray:
    """Official result keypoints [K,3]: found joints keep their place, others take the mean found location; v = 1."""
    p = np.asarray(person, dtype=np.float64)
    found = p[:, 2] > 0
    out = np.ones((len(p), 3))
    out[:, :2] = p[found][:, :2].mean(axis=0) if found.any() else 0.0
    out[found, :2] = p[found, :2]
    return out


# ----------------------------------------------------------------------------------------------------------------
# The codec object


class AssociativeEmbeddingCodec(Codec):
    """Bottom-up AE codec for whole images: `encode` people -> heatmaps + refs, `decode` outputs -> people.

    encode(keypoints [P,K,3] or [P,K,2] + visible [P,K] - or one person [K,2|3] + visible [K] -, network-input px)
    -> {"heatmaps" [K,h,w] float32, "refs" [max_people,K,2] int64, "target" (= heatmaps), "target_weight" [K,1]}.
    decode_people(outputs [C,h,w] or [S,C,h,w] (last stack), flip_outputs=None, flip_index=None) -> (people
    [P,K,3] (x, y, score) in network-input px, person scores [P]): the whole-image decoder. decode(batch [N,C,h,w]
    or [N,S,C,h,w]) -> (keypoints [N,K,2], scores [N,K]) of the best person per image (the generic codec contract,
    zeros where nobody is found). For a photo with its warp and the multi-scale test use
    posekit.runtime.bottomup.estimate_bottomup. `normalize` names the input the network expects:
    "unit" = RGB / 255 (official pose-ae-train checkpoints), "imagenet" = ImageNet mean/std. `shift_heatmap` is
    accepted for the engine's TEST.SHIFT_HEATMAP and ignored (the AE flip test has no one-pixel shift).
    `subpixel` (posekit, default off = official): training heatmaps centred on the true point instead of its
    pixel (`generate_heatmaps`); at small map sizes the official truncation alone caps AP (see
    configs/synth/ae_small.yaml).
    """

    name = "ae"

    def __init__(
        self,
        input_size: Sequence[int] = (512, 512),
        heatmap_size: Sequence[int] = (128, 128),
        num_keypoints: int = 17,
        sigma: float | None = None,
        tag_dim: int = 1,
        max_people: int = 30,
        detection_threshold: float = 0.1,
        tag_threshold: float = 1.0,
        joint_order: Sequence[int] | None = None,
        ignore_too_much: bool = True,
        use_detection_val: bool = True,
        refine: bool = True,
        official_refine_clamp: bool = True,
        normalize: str = "unit",
        test_scales: Sequence[float] = (1.0,),
        shift_heatmap: bool = False,
        subpixel: bool = False,
    ) -> None:
        w = int(heatmap_size[0])
        super().__init__(input_size, heatmap_size, num_keypoints, sigma if sigma else w / 64)
        if tag_dim < 1:
            raise ConfigError(f"ae codec tag_dim must be >= 1, got {tag_dim}")
        if normalize not in ("unit", "imagenet"):
            raise ConfigError(f"ae codec normalize: expected 'unit' (RGB/255) or 'imagenet', got {normalize!r}")
        k = self.num_keypoints
        order = tuple(joint_order) if joint_order is not None else (
            COCO_JOINT_ORDER if k == 17 else tuple(range(k)))
        if sorted(order) != list(range(k)):
            raise ConfigError(f"ae codec joint_order {order} is not a permutation of {k} joints")
        self.tag_dim = int(tag_dim)
        self.max_people = int(max_people)
        self.params = ParserParams(detection_threshold=detection_threshold, tag_threshold=tag_threshold,
                                   max_num_people=self.max_people, ignore_too_much=ignore_too_much,
                                   use_detection_val=use_detection_val, joint_order=order)
        self.refine = bool(refine)
        self.official_refine_clamp = bool(official_refine_clamp)
        self.normalize = normalize
        self.test_scales = tuple(float(s) for s in test_scales)
        self.subpixel = bool(subpixel)

    @property
    def out_channels(self) -> int:
        """Channels the network must output at least: K detection maps + K*D tag maps."""
        return self.num_keypoints * (1 + self.tag_dim)

    @property
    def stride(self) -> float:
        """Network input px per map px (4 for the hourglass)."""
        return self.input_size[0] / self.heatmap_size[0]

    def __repr__(self) -> str:
        return (f"AssociativeEmbeddingCodec(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
                f"num_keypoints={self.num_keypoints}, sigma={self.sigma}, tag_dim={self.tag_dim})")

    def encode_maps(self, keypoints: np.ndarray, visible: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """People in heatmap px -> {"heatmaps", "refs"} (the official GenerateHeatmap and KeypointsRef)."""
        kp = _as_people(keypoints, visible, self.num_keypoints)
        return {"heatmaps": generate_heatmaps(kp, self.heatmap_size, self.sigma, self.subpixel),
                "refs": keypoint_refs(kp, self.heatmap_size, self.max_people)}

    def _people_input(self, keypoints: np.ndarray, visible: np.ndarray | None) -> np.ndarray:
        """People [P,K,3] in heatmap px from input-px people (or one person [K,2|3] + visible [K])."""
        kp = np.asarray(keypoints, dtype=np.float64)
        if kp.ndim == 2:
            kp = kp[None]
            visible = None if visible is None else np.asarray(visible)[None]
        kp = _as_people(kp, visible, self.num_keypoints).copy()
        kp[..., 0] *= self.heatmap_size[0] / self.input_size[0]
        kp[..., 1] *= self.heatmap_size[1] / self.input_size[1]
        return kp

    def encode(self, keypoints: np.ndarray, visible: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """People [P,K,3] (or [P,K,2] + visible, or one person [K,2|3]) in input px -> heatmaps, refs, ..."""
        enc = self.encode_maps(self._people_input(keypoints, visible))
        enc["target"] = enc["heatmaps"]
        enc["target_weight"] = np.ones((self.num_keypoints, 1), dtype=np.float32)
        return enc

    def split_outputs(self, outputs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Network output [C,h,w] or [S,C,h,w] (last stack) -> det [K,h,w], tags [K,h,w,D]."""
        x = to_numpy(outputs)
        if x.ndim == 4:
            x = x[-1]
        k, d = self.num_keypoints, self.tag_dim
        if x.ndim != 3 or x.shape[0] < self.out_channels:
            raise DataError(f"ae decode: outputs shape {tuple(x.shape)}, expected [(stacks,) >= {self.out_channels}, "
                            "h, w]")
        return x[:k], np.ascontiguousarray(x[k:k + k * d].reshape(k, d, *x.shape[1:]).transpose(0, 2, 3, 1))

    def group(self, det: np.ndarray, tag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grouping + refine of aggregated maps -> (people [P,K,3+D] map px, scores [P] before refine)."""
        return group(det, tag, self.params, self.refine, self.official_refine_clamp)

    def decode(self, outputs: ArrayLike, flip_outputs: ArrayLike | None = None,
               flip_index: Sequence[int] | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Batch [N,C,h,w] or [N,S,C,h,w] -> best person per image: (keypoints [N,K,2] input px, scores [N,K])."""
        x = to_numpy(outputs)
        x = x[None] if x.ndim == 3 else x
        f = None if flip_outputs is None else to_numpy(flip_outputs)
        f = f[None] if f is not None and f.ndim == 3 else f
        n, k = len(x), self.num_keypoints
        kps = np.zeros((n, k, 2), dtype=np.float64)
        scores = np.zeros((n, k), dtype=np.float32)
        for i in range(n):
            people, person_scores = self.decode_people(x[i], None if f is None else f[i], flip_index)
            if len(people):
                best = int(np.argmax(person_scores))
                kps[i] = people[best, :, :2]
                scores[i] = people[best, :, 2]
        return kps, scores

    def decode_people(self, outputs: ArrayLike, flip_outputs: ArrayLike | None = None,
                      flip_index: Sequence[int] | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One input's outputs (+ those of the mirrored input) -> (people [P,K,3] input px, scores [P])."""
        det, tag = self.split_outputs(outputs)
        if flip_outputs is not None:
            if flip_index is None:
                raise DataError("ae decode: flip_outputs need flip_index (the skeleton's left/right permutation)")
            fdet, ftag = self.split_outputs(flip_outputs)
            fidx = np.asarray(flip_index, dtype=np.int64)
            det = np.minimum((det + fdet[:, :, ::-1][fidx]) / 2, 1)
            tag = np.concatenate([tag, ftag[:, :, ::-1][fidx]], axis=3)
        people, scores = self.group(det, tag)
        out = np.zeros((len(people), self.num_keypoints, 3), dtype=np.float32)
        if len(people):
            out[..., 0] = people[..., 0] * self.stride
            out[..., 1] = people[..., 1] * (self.input_size[1] / self.heatmap_size[1])
            out[..., 2] = people[..., 2]
        return out, scores

    def perfect_outputs(self, keypoints: np.ndarray) -> np.ndarray:
        """Ideal output [K*(1+D), h, w] for people [P,K,3] (or one person [K,2|3]) in input px: the target heatmaps
        and tags 2*(i+1) on person i's blobs."""
        return perfect_maps(self._people_input(keypoints, None), self.heatmap_size, self.sigma, self.tag_dim,
                            subpixel=self.subpixel)


def perfect_maps(keypoints: np.ndarray, size: Sequence[int], sigma: float, tag_dim: int = 1,
                 spacing: float = 2.0, subpixel: bool = False) -> np.ndarray:
    """Ideal AE output [K*(1+D), h, w] for people [P,K,3] in map px: the target heatmaps, and on each pixel the tag
    (person index + 1) * spacing of the person whose blob is strongest there (background -spacing); `subpixel` as
    `generate_heatmaps`."""
    kp = np.asarray(keypoints, dtype=np.float64)
    w, h = int(size[0]), int(size[1])
    k = kp.shape[1]
    det = np.zeros((k, h, w), dtype=np.float32)
    tag = np.full((k, h, w), -spacing, dtype=np.float32)
    for i, person in enumerate(kp):
        one = generate_heatmaps(person[None], size, sigma, subpixel)
        better = one > det
        det = np.maximum(det, one)
        tag[better] = (i + 1) * spacing
    return np.concatenate([det] + [tag] * tag_dim, axis=0)
