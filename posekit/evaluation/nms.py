"""OKS-based non-maximum suppression (oks_nms, soft_oks_nms) with the official HRNet semantics, vectorised in numpy.

The official code loops over detections in Python; here the pairwise OKS of one image is computed at once (upper
triangle in score order, exp() only where the threshold can be passed) and the greedy selection walks it. Keep
lists equal the official ones: same `argsort` tie order, same float operations, NaN overlaps suppress.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from posekit.errors import DataError
from posekit.skeletons import COCO17

COCO_SIGMAS = COCO17.sigmas_array
SOFT_NMS_MAX_DETS = 20  # the official soft_oks_nms returns at most 20 detections per image


def _as_arrays(keypoints: np.ndarray, areas: np.ndarray, sigmas: Sequence[float] | np.ndarray | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    kpts = np.asarray(keypoints)
    if kpts.ndim != 3 or kpts.shape[2] < 3:
        raise DataError(f"keypoints must be [N, K, 3] (x, y, score), got shape {kpts.shape}")
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    if areas.shape[0] != kpts.shape[0]:
        raise DataError(f"{areas.shape[0]} areas for {kpts.shape[0]} keypoint sets")
    sig = COCO_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    if sig.shape != (kpts.shape[1],):
        raise DataError(f"{sig.shape[0] if sig.ndim else 0} OKS sigmas for {kpts.shape[1]} keypoints")
    return kpts, areas, sig


def _scaled_sq_dist(kg: np.ndarray, kd: np.ndarray, ag: np.ndarray, ad: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """e[i, j, k] = d^2 / vars / (mean area + eps) / 2 for reference i (kg) against detection j (kd)."""
    var = (sigmas * 2) ** 2
    dx = kd[None, :, :, 0] - kg[:, None, :, 0]
    dy = kd[None, :, :, 1] - kg[:, None, :, 1]
    area = (ag[:, None] + ad[None, :]) / 2 + np.spacing(1)
    return (dx**2 + dy**2) / var / area[:, :, None] / 2


def _oks_from_e(e: np.ndarray, kd: np.ndarray, in_vis_thre: float | None) -> np.ndarray:
    if in_vis_thre is None:
        return np.sum(np.exp(-e), axis=-1) / e.shape[-1]
    # Official quirk: `list(vg > t) and list(vd > t)` is the detection's mask alone.
    out = np.zeros(e.shape[:2])
    for j in range(kd.shape[0]):
        m = kd[j, :, 2] > in_vis_thre
        if m.any():
            sel = np.ascontiguousarray(e[:, j][:, m])
            out[:, j] = np.sum(np.exp(-sel), axis=-1) / sel.shape[-1]
    return out


def oks_iou(g: np.ndarray, d: np.ndarray, area_g: float, areas_d: np.ndarray,
            sigmas: Sequence[float] | np.ndarray | None = None, in_vis_thre: float | None = None) -> np.ndarray:
    """OKS of one pose g [K,3] against poses d [M,K,3], as the official `oks_iou` (areas averaged per pair)."""
    d = np.asarray(d)
    g = np.asarray(g)
    kd, ad, sig = _as_arrays(d.reshape(d.shape[0], -1, 3), areas_d, sigmas)
    kg = g.reshape(1, -1, 3)
    ag = np.asarray([area_g], dtype=np.float64)
    e = _scaled_sq_dist(kg, kd, ag, ad, sig)
    return _oks_from_e(e, kd, in_vis_thre)[0]


def oks_matrix(keypoints: np.ndarray, areas: np.ndarray, sigmas: Sequence[float] | np.ndarray | None = None,
               in_vis_thre: float | None = None) -> np.ndarray:
    """[N, N] matrix whose row i is `oks_iou(keypoints[i], keypoints, areas[i], areas)`."""
    kpts, areas, sig = _as_arrays(keypoints, areas, sigmas)
    if kpts.shape[0] == 0:
        return np.zeros((0, 0))
    e = _scaled_sq_dist(kpts, kpts, areas, areas, sig)
    return _oks_from_e(e, kpts, in_vis_thre)


def _suppression(kpts: np.ndarray, areas: np.ndarray, sigmas: np.ndarray, thresh: float) -> np.ndarray:
    """[n, n] bool, True at (p, q), p < q, where pose p suppresses pose q (`not oks <= thresh`).

    Only the upper triangle is computed, and exp() only for pairs that can pass the threshold: with c of the K
    terms having e >= 1, OKS <= (K - c + c / e) / K, which clears most pairs without changing any kept value.
    """
    n, k = kpts.shape[0], kpts.shape[1]
    sup = np.zeros((n, n), dtype=bool)
    if n < 2:
        return sup
    p, q = np.triu_indices(n, 1)
    var = (sigmas * 2) ** 2
    dx = kpts[q, :, 0] - kpts[p, :, 0]
    dy = kpts[q, :, 1] - kpts[p, :, 1]
    area = (areas[p] + areas[q]) / 2 + np.spacing(1)
    e = (dx**2 + dy**2) / var / area[:, None] / 2
    far = (e >= 1.0).sum(axis=1)
    bound = (k - far + far * np.exp(-1.0)) / k
    # Poses with non-finite values may give NaN overlaps, which suppress: never skip their pairs.
    odd = ~np.isfinite(kpts[:, :, :2]).all(axis=(1, 2)) | ~np.isfinite(areas)
    cand = np.flatnonzero(~(bound <= thresh - 1e-9) | odd[p] | odd[q])
    oks = np.sum(np.exp(-e[cand]), axis=1) / k
    sup[p[cand], q[cand]] = ~(oks <= thresh)
    return sup


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, thresh: float,
            sigmas: Sequence[float] | np.ndarray | None = None, in_vis_thre: float | None = None) -> np.ndarray:
    """Greedy OKS-NMS of one image: indices kept, in selection order (official `oks_nms`)."""
    kpts, areas, sig = _as_arrays(keypoints, areas, sigmas)
    scores = np.asarray(scores).reshape(-1)
    if scores.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    order = scores.argsort()[::-1]
    if in_vis_thre is None:
        suppress = _suppression(kpts[order], areas[order], sig, thresh)
    else:
        # `~(oks <= thresh)` rather than `oks > thresh`: a NaN overlap suppresses, as in the official filter.
        suppress = ~(oks_matrix(kpts[order], areas[order], sig, in_vis_thre) <= thresh)
    # Greedy in score order; a pose that suppresses nobody cannot change the outcome, so only visit the others.
    alive = np.ones(order.shape[0], dtype=bool)
    for i in np.flatnonzero(suppress.any(axis=1)):
        if alive[i]:
            alive[i + 1:] &= ~suppress[i, i + 1:]
    return order[alive].astype(np.int64)


def soft_oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, thresh: float,
                 sigmas: Sequence[float] | np.ndarray | None = None, in_vis_thre: float | None = None,
                 max_dets: int = SOFT_NMS_MAX_DETS) -> np.ndarray:
    """Soft OKS-NMS of one image (Gaussian rescoring score * exp(-oks^2 / thresh)); at most `max_dets` kept."""
    kpts, areas, sig = _as_arrays(keypoints, areas, sigmas)
    scores = np.asarray(scores).reshape(-1)
    if scores.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    order = scores.argsort()[::-1]
    scores = scores[order]
    keep = []
    while order.size > 0 and len(keep) < max_dets:
        i = order[0]
        e = _scaled_sq_dist(kpts[i:i + 1], kpts[order[1:]], areas[i:i + 1], areas[order[1:]], sig)
        overlap = _oks_from_e(e, kpts[order[1:]], in_vis_thre)[0]
        order = order[1:]
        scores = scores[1:] * np.exp(-(overlap**2) / thresh)
        resort = scores.argsort()[::-1]
        order = order[resort]
        scores = scores[resort]
        keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def group_by_image(image_ids: np.ndarray) -> list[np.ndarray]:
    """Indices of each image's entries (original order within an image), images in order of first appearance."""
    image_ids = np.asarray(image_ids).reshape(-1)
    if image_ids.shape[0] == 0:
        return []
    uniq, first, inverse = np.unique(image_ids, return_index=True, return_inverse=True)
    by_sorted_id = np.argsort(inverse, kind="stable")
    splits = np.cumsum(np.bincount(inverse, minlength=uniq.shape[0]))[:-1]
    groups = np.split(by_sorted_id, splits)
    return [groups[g] for g in np.argsort(first, kind="stable")]


def nms_per_image(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, image_ids: np.ndarray,
                  thresh: float, soft: bool = False, sigmas: Sequence[float] | np.ndarray | None = None,
                  in_vis_thre: float | None = None) -> list[np.ndarray]:
    """OKS-NMS run image by image: for each image (first-appearance order) the kept global indices, in order."""
    kpts = np.asarray(keypoints)
    scores = np.asarray(scores).reshape(-1)
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    fn = soft_oks_nms if soft else oks_nms
    out = []
    for idx in group_by_image(image_ids):
        out.append(idx[fn(kpts[idx], scores[idx], areas[idx], thresh, sigmas, in_vis_thre)])
    return out
