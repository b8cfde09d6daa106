"""CC-SSL pseudo-label math, fixture-exact against ../shared/reference/codecs/ccssl_bearpaw.npz.

Pass 0 is the identity crop, passes 1..T-1 use scale s0 x clip(1 + 0.25 N, 0.75, 1.25) and rotation clip(30 N, -60,
60) (torch.randn, scale then rotation); each last-stack heatmap is rotated back by -rot about the map centre, resized
by s/s0 and centre-pasted / centre-cropped; the T maps are averaged (official CCSSL/scripts/consistency.py
prediction_check). Threshold (official CCSSL.py): all confidences plus one leading 0 are sorted; p = 1 - 0.02 (epoch +
10), replaced by 0.2 when not > 0.2; threshold = sorted[int(p len)]; a joint is kept when its confidence is strictly
above it. Temporal consistency: pyramidal Lucas-Kanade flow (15x15 window, 2 levels, 10 iterations / eps 0.03)
carries the previous item's pseudo keypoints to the current crop; a point moving more than `max_move` px gets flow
confidence 0; where current / previous confidence < 0.9 the flow location replaces the prediction with confidence
previous x 0.9. Deliberate difference: a flow rejection does not zero the previous frame's stored confidence
(`zero_previous_on_reject=True` restores the released code's quirk).

`threshold_for_round` adds posekit's explicit kept-fraction schedule (ADAPT.KEPT) next to the official rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch


def draw_pass_params(num_transform: int, s0: float, sf: float = 0.25, rf: float = 30.0,
                     generator: torch.Generator | None = None) -> np.ndarray:
    """[T,2] (scale in 200-px units, rotation degrees): pass 0 = (s0, 0), then official torch.randn draws."""
    out = [(float(s0), 0.0)]
    for _ in range(1, num_transform):
        z = torch.randn(1, generator=generator)
        s = s0 * (z * sf + 1).clamp(1 - sf, 1 + sf)[0]
        z = torch.randn(1, generator=generator)
        r = (z * rf).clamp(-2 * rf, 2 * rf)[0]
        out.append((float(s), float(r)))
    return np.asarray(out, np.float64)


def resize_factor(scale: float, s0: float, input_side: int) -> float:
    """The back-warp resize factor s x 200 / side, computed in float32 as the official (exactly 1 for s = s0)."""
    if scale == s0:
        return float(s0) * 200.0 / input_side
    return float(np.float32(np.float32(scale) * np.float32(200.0)) / np.float32(input_side))


def back_warp(maps: np.ndarray, factor: float, rot: float) -> np.ndarray:
    """Heatmaps [K,h,w] of a scaled / rotated crop -> the identity crop's frame, float64 (official prediction_check)."""
    k, h, w = maps.shape
    out = np.zeros((k, h, w), np.float64)
    m = cv2.getRotationMatrix2D((w // 2, h // 2), -float(rot), 1)
    for j in range(k):
        r = cv2.warpAffine(np.ascontiguousarray(maps[j], np.float32), m, (w, h))
        r = cv2.resize(r, None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)
        rh, rw = r.shape
        ys, ye, sy = (h // 2 - rh // 2, h // 2 - rh // 2 + rh, 0) if rh < h else (0, h, rh // 2 - h // 2)
        xs, xe, sx = (w // 2 - rw // 2, w // 2 - rw // 2 + rw, 0) if rw < w else (0, w, rw // 2 - w // 2)
        out[j, ys:ye, xs:xe] += r[sy:sy + (ye - ys), sx:sx + (xe - xs)]
    return out


def average_back_warped(outputs: np.ndarray, params: np.ndarray, s0: float, input_side: int) -> np.ndarray:
    """Outputs [T,K,h,w] of the T passes with params [T,2] (scale, rot) -> averaged map [K,h,w] float32."""
    acc = np.zeros(outputs.shape[1:], np.float64)
    for t in range(outputs.shape[0]):
        acc += back_warp(outputs[t], resize_factor(float(params[t, 0]), s0, input_side), float(params[t, 1]))
    return (acc / outputs.shape[0]).astype(np.float32)


def pass_matrix(input_size: Sequence[int], factor: float, rot: float) -> np.ndarray:
    """2x3 warp of the identity crop for a pass: rotate by rot (cv2 sense) and zoom out by `factor` about its centre."""
    w, h = int(input_size[0]), int(input_size[1])
    return cv2.getRotationMatrix2D((w / 2, h / 2), float(rot), 1.0 / factor)


def drop_fraction(epoch: int) -> float:
    """Official p = 1 - 0.02 (epoch + 10), replaced by 0.2 when not > 0.2: the fraction of confidences DROPPED."""
    p = 1.0 - 0.02 * (epoch + 10)
    return p if p > 0.2 else 0.2


def confidence_threshold(confidence: np.ndarray, epoch: int) -> tuple[float, float, np.ndarray]:
    """(threshold, p, sorted confidences with the official leading 0) of all joint confidences [N,K]."""
    s = np.sort(np.concatenate([np.zeros(1), np.asarray(confidence, np.float64).reshape(-1)]))
    p = drop_fraction(epoch)
    return float(s[int(p * s.shape[0])]), p, s


def threshold_mask(confidence: np.ndarray, threshold: float) -> np.ndarray:
    """Kept joints: confidence strictly above the threshold (ties dropped), as float32 0/1."""
    return (np.asarray(confidence) > threshold).astype(np.float32)


def temporal_update(prev_gray: np.ndarray, cur_gray: np.ndarray, prev_kpts: np.ndarray, kpts: np.ndarray,
                    lambda_decay: float = 0.9, max_move: float = 15.0,
                    zero_previous_on_reject: bool = False) -> np.ndarray:
    """CC-SSL temporal consistency: LK-flow the previous pseudo keypoints [K,3] into the current frame; new [K,3]."""
    pts = np.ascontiguousarray(prev_kpts[:, :2], np.float32).reshape(-1, 1, 2)
    flow, _, _ = cv2.calcOpticalFlowPyrLK(prev_gray, cur_gray, pts, None, winSize=(15, 15), maxLevel=2,
                                          criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.03))
    flow = flow.reshape(-1, 2)
    flow_conf = np.array(prev_kpts[:, 2], np.float32, copy=True)
    rejected = np.linalg.norm(flow - pts.reshape(-1, 2), axis=1) > max_move
    flow_conf[rejected] = 0
    if zero_previous_on_reject:  # the released code writes through a view into the stored previous labels
        prev_kpts[rejected, 2] = 0
    out = np.array(kpts, np.float32, copy=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        use = (flow_conf > 0) & (out[:, 2] / np.where(flow_conf > 0, flow_conf, 1) < lambda_decay)
    out[use, :2] = flow[use]
    out[use, 2] = flow_conf[use] * np.float32(lambda_decay)
    return out


def kept_threshold(confidence: np.ndarray, kept: float) -> float:
    """Threshold that keeps the top `kept` fraction of all joint confidences (strictly above it)."""
    s = np.sort(np.asarray(confidence, np.float64).reshape(-1))
    k = int(round(kept * s.size))  # keeps exactly k joints when confidences do not tie
    if k >= s.size:
        return -np.inf
    return float(s[s.size - k - 1])


def threshold_for_round(confidence: np.ndarray, round_index: int, schedule_step: int,
                        kept: Sequence[float] = ()) -> tuple[float, float]:
    """(threshold, drop fraction) of a round: the official rule at epoch round x schedule_step, or `kept[round]`
    (the last entry repeating) when a kept-fraction schedule is given."""
    if kept:
        k = float(kept[min(round_index, len(kept) - 1)])
        return kept_threshold(confidence, k), 1.0 - k
    thr, p, _ = confidence_threshold(confidence, round_index * schedule_step)
    return thr, p
