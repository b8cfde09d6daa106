"""Distance metrics: MPII PCKh (official table), PCK@alpha (box / torso normalised), AUC, EPE, heatmap accuracy()."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from posekit.errors import DataError
from posekit.skeletons import Skeleton

# ---------------------------------------------------------------------------------------------------------------
# MPII PCKh, as the official evaluation (HRNet MPIIDataset.evaluate / Tompson et al.)

SC_BIAS = 0.6  # head size = 0.6 x head-box diagonal
PCKH_THRESHOLD = 0.5
MPII_JOINTS = ("rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor", "neck", "head",
               "rwri", "relb", "rsho", "lsho", "lelb", "lwri")
PCKH_NAMES = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean@0.1")
_PAIRS = (("Shoulder", "sho"), ("Elbow", "elb"), ("Wrist", "wri"), ("Hip", "hip"), ("Knee", "kne"), ("Ankle", "ank"))
_EXCLUDED_FROM_MEAN = (6, 7)  # pelvis and thorax
# 'Mean@0.1' is row 10 of the official threshold ramp arange(0, 0.51, 0.01). The HRNet/SimpleBaseline code reads
# row 11 (threshold 0.11) instead; `hrnet_mean01=True` reproduces that quirk bit for bit.
_PCK_RAMP = np.arange(0, 0.5 + 0.01, 0.01)


@dataclass(frozen=True)
class MPIIGroundTruth:
    """MPII validation ground truth in natural layout (gt_valid.mat / Tompson files are [K,2,N])."""

    joints: np.ndarray  # [N, 16, 2] MATLAB 1-based pixel coordinates
    missing: np.ndarray  # [N, 16] 1 where the joint is not annotated
    headboxes: np.ndarray  # [N, 2, 2] (top-left, bottom-right) x (x, y)
    joint_names: tuple[str, ...] = MPII_JOINTS


def _loadmat(path: str | os.PathLike) -> dict:
    from scipy.io import loadmat

    try:
        return loadmat(str(path))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (ValueError, TypeError, OSError) as e:
        raise DataError(f"{path}: not a readable MATLAB .mat file ({e})") from None


def _mat_names(raw: np.ndarray) -> tuple[str, ...]:
    return tuple(str(np.asarray(x).reshape(-1)[0]) for x in np.asarray(raw).reshape(-1))


def load_mpii_gt(path: str | os.PathLike) -> MPIIGroundTruth:
    """Read a gt_valid.mat-style file (dataset_joints, jnt_missing, pos_gt_src, headboxes_src)."""
    m = _loadmat(path)
    for key in ("jnt_missing", "pos_gt_src", "headboxes_src"):
        if key not in m:
            raise DataError(f"{path}: no '{key}' array (expected the gt_valid.mat layout)")
    names = _mat_names(m["dataset_joints"]) if "dataset_joints" in m else MPII_JOINTS
    joints = np.transpose(m["pos_gt_src"], (2, 0, 1))
    if joints.shape[1:] != (16, 2):
        raise DataError(f"{path}: pos_gt_src must be [16, 2, N], got {list(m['pos_gt_src'].shape)}")
    return MPIIGroundTruth(joints=joints, missing=np.asarray(m["jnt_missing"]).T,
                           headboxes=np.transpose(m["headboxes_src"], (2, 0, 1)), joint_names=names)


def load_mpii_predictions(path: str | os.PathLike) -> np.ndarray:
    """Predictions [N,16,2] in MATLAB 1-based coordinates from a .mat: HRNet `preds` [N,16,2+] or `pos_pred_src`."""
    m = _loadmat(path)
    if "preds" in m:
        return np.asarray(m["preds"], dtype=np.float64)[:, :, :2]
    if "pos_pred_src" in m:
        return np.transpose(np.asarray(m["pos_pred_src"], dtype=np.float64), (2, 0, 1))
    raise DataError(f"{path}: no 'preds' ([N,16,2]) or 'pos_pred_src' ([16,2,N]) array")


def pckh_table(preds: np.ndarray, gt: MPIIGroundTruth, threshold: float = PCKH_THRESHOLD,
               sc_bias: float = SC_BIAS, hrnet_mean01: bool = False) -> dict[str, float]:
    """Official MPII PCKh table in %: Head, Shoulder, ..., Ankle, Mean (pelvis/thorax excluded), Mean@0.1.

    `preds` [N,16,2] must be in the ground truth's frame (MATLAB 1-based); add 1 to 0-based predictions.
    `hrnet_mean01=True` computes 'Mean@0.1' at threshold 0.11 as the HRNet code does (its pckAll[11] quirk).
    """
    preds = np.asarray(preds, dtype=np.float64)
    n = gt.joints.shape[0]
    if preds.shape[:2] != (n, 16) or preds.shape[2] < 2:
        raise DataError(f"MPII predictions must be [{n}, 16, 2] (one per ground-truth person), got {list(preds.shape)}")
    if not np.isfinite(preds[:, :, :2]).all():
        raise DataError("MPII predictions contain NaN or infinite coordinates")
    visible = 1 - np.asarray(gt.missing)
    uv_err = np.linalg.norm(preds[:, :, :2] - gt.joints, axis=2)
    head = np.linalg.norm(gt.headboxes[:, 1, :] - gt.headboxes[:, 0, :], axis=1) * sc_bias
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = uv_err / head[:, None] * visible
        count = visible.sum(axis=0)
        pckh = 100.0 * ((scaled <= threshold) * visible).sum(axis=0) / count
        low = _PCK_RAMP[11 if hrnet_mean01 else 10]
        pck01 = 100.0 * ((scaled <= low) * visible).sum(axis=0) / count
    used = np.ones(16, dtype=bool)
    used[list(_EXCLUDED_FROM_MEAN)] = False
    ratio = count / np.sum(count[used]).astype(np.float64)
    idx = {name: i for i, name in enumerate(gt.joint_names)}
    table = {"Head": pckh[idx["head"]]}
    for label, part in _PAIRS:
        table[label] = 0.5 * (pckh[idx["l" + part]] + pckh[idx["r" + part]])
    table["Mean"] = np.sum(np.where(used, pckh * ratio, 0.0))
    table["Mean@0.1"] = np.sum(np.where(used, pck01 * ratio, 0.0))
    return {k: float(v) for k, v in table.items()}


def mpii_pckh(preds: np.ndarray, gt: MPIIGroundTruth | str | os.PathLike, zero_based: bool = True,
              hrnet_mean01: bool = False) -> dict[str, float]:
    """PCKh table of predictions [N,16,2]; `zero_based` predictions (posekit / HRNet internal) get +1 first."""
    if not isinstance(gt, MPIIGroundTruth):
        gt = load_mpii_gt(gt)
    preds = np.asarray(preds, dtype=np.float64)[..., :2]
    return pckh_table(preds + 1.0 if zero_based else preds, gt, hrnet_mean01=hrnet_mean01)


# ---------------------------------------------------------------------------------------------------------------
# Generic PCK / AUC / EPE (MMPose conventions)


def normalized_distances(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """[N,K] distances divided per axis by `norm` [N,2] (or [N]); -1 where masked or the norm is zero."""
    pred = np.asarray(pred, dtype=np.float64)[..., :2]
    gt = np.asarray(gt, dtype=np.float64)[..., :2]
    mask = np.asarray(mask, dtype=bool).copy()
    norm = np.asarray(norm, dtype=np.float64)
    if norm.ndim == 1:
        norm = np.repeat(norm[:, None], 2, axis=1)
    if pred.shape != gt.shape or mask.shape != pred.shape[:2] or norm.shape != (pred.shape[0], 2):
        raise DataError(f"PCK inputs: pred {list(pred.shape)}, gt {list(gt.shape)}, mask {list(mask.shape)}, "
                        f"norm {list(norm.shape)} do not agree ([N,K,2], [N,K,2], [N,K], [N,2])")
    mask[(norm == 0).any(axis=1)] = False
    norm = np.where(norm <= 0, 1e6, norm)
    dist = np.full(mask.shape, -1.0)
    dist[mask] = np.linalg.norm(((pred - gt) / norm[:, None, :])[mask], axis=-1)
    return dist


def pck_accuracy(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, norm: np.ndarray,
        thr: float = 0.05) -> tuple[np.ndarray, float, int]:
    """PCK@thr: (per-keypoint accuracy [K] with -1 where no valid joint, mean over valid keypoints, count)."""
    dist = normalized_distances(pred, gt, mask, norm)
    valid = dist != -1
    n_valid = valid.sum(axis=0)
    hits = ((dist < thr) & valid).sum(axis=0)
    acc = np.where(n_valid > 0, hits / np.maximum(n_valid, 1), -1.0)
    ok = acc[acc >= 0]
    return acc, float(ok.mean()) if ok.size else 0.0, int(ok.size)


def bbox_norm(boxes_xywh: np.ndarray) -> np.ndarray:
    """PCK normaliser from boxes: max(w, h) on both axes, [N,2]."""
    boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    side = np.maximum(boxes[:, 2], boxes[:, 3])
    return np.stack([side, side], axis=1)


def torso_norm(gt: np.ndarray, skeleton: Skeleton, pair: tuple[str, str] | None = None) -> np.ndarray:
    """PCK normaliser from the torso: |left shoulder - right hip| (else right shoulder - left hip), [N,2]."""
    names = {n: i for i, n in enumerate(skeleton.keypoints)}
    pairs = [pair] if pair else [("left_shoulder", "right_hip"), ("right_shoulder", "left_hip")]
    for a, b in pairs:
        if a not in names or b not in names:
            raise DataError(f"skeleton {skeleton.name!r} has no {a!r}/{b!r} keypoints for a torso-normalised PCK")
    gt = np.asarray(gt, dtype=np.float64)
    size = np.zeros(gt.shape[0])
    for a, b in pairs:
        d = np.linalg.norm(gt[:, names[a], :2] - gt[:, names[b], :2], axis=1)
        size = np.where(size < 1, d, size)
    return np.stack([size, size], axis=1)


def auc(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, norm_factor: float = 30.0, num_thrs: int = 20) -> float:
    """Area under the PCK curve for thresholds 0, 1/num_thrs, ..., with a constant pixel normaliser."""
    n = np.asarray(pred).shape[0]
    norm = np.full((n, 2), float(norm_factor))
    return float(sum(pck_accuracy(pred, gt, mask, norm, i / num_thrs)[1] for i in range(num_thrs)) / num_thrs)


def epe(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """End-point error: mean pixel distance over valid keypoints."""
    dist = normalized_distances(pred, gt, mask, np.ones((np.asarray(pred).shape[0], 2)))
    valid = dist[dist != -1]
    return float(valid.sum() / max(1, valid.size))


# ---------------------------------------------------------------------------------------------------------------
# Training-time heatmap accuracy (official core/evaluate.py accuracy)


def _numpy(x: object) -> np.ndarray:
    """An array from a numpy array or a (possibly GPU, grad-tracking) tensor, without importing torch."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def heatmap_argmax(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer argmax (x, y) [N,K,2] float32 and max value [N,K,1] of heatmaps [N,K,H,W]; (0, 0) where max <= 0."""
    hm = _numpy(heatmaps)
    if hm.ndim != 4:
        raise DataError(f"heatmaps must be [N, K, H, W], got shape {list(hm.shape)}")
    n, k, _, w = hm.shape
    flat = hm.reshape(n, k, -1)
    idx = np.argmax(flat, axis=2)
    maxvals = np.amax(flat, axis=2).reshape(n, k, 1)
    coords = np.stack([idx % w, np.floor(idx / w)], axis=2).astype(np.float32)
    coords *= (maxvals > 0.0).astype(np.float32)
    return coords, maxvals


def accuracy(output: np.ndarray, target: np.ndarray, thr: float = 0.5) -> tuple[np.ndarray, float, int, np.ndarray]:
    """Official training accuracy: PCK of heatmap argmaxes at `thr` x (heatmap size / 10).

    Returns (acc [K+1] with acc[0] the mean and -1 for joints without a valid target, mean, count, pred [N,K,2]).
    Kept quirks: x is divided by h/10 and y by w/10; targets on row/column 0 or 1 are ignored.
    """
    output, target = _numpy(output), _numpy(target)
    pred, _ = heatmap_argmax(output)
    tgt, _ = heatmap_argmax(target)
    h, w = output.shape[2], output.shape[3]
    norm = np.array([h, w], dtype=np.float64) / 10
    p32, t32 = pred.astype(np.float32), tgt.astype(np.float32)
    valid = (t32[:, :, 0] > 1) & (t32[:, :, 1] > 1)  # [N, K]
    dists = np.linalg.norm(p32 / norm - t32 / norm, axis=2)
    dists = np.where(valid, dists, -1.0).T  # [K, N]
    k = output.shape[1]
    acc = np.zeros(k + 1)
    total, cnt = 0.0, 0
    for j in range(k):
        ok = dists[j] != -1
        acc[j + 1] = (dists[j][ok] < thr).sum() * 1.0 / ok.sum() if ok.any() else -1
        if acc[j + 1] >= 0:
            total += acc[j + 1]
            cnt += 1
    avg = total / cnt if cnt else 0.0
    if cnt:
        acc[0] = avg
    return acc, float(avg), cnt, pred


def pck_coco(gt: str | os.PathLike | dict, results: str | os.PathLike | Sequence[dict], thr: float = 0.05,
             norm: str = "bbox") -> dict[str, float]:
    """PCK@thr of a COCO results list against COCO ground truth (e.g. animals: PCK@0.05 by box size).

    Each image's annotated people (not crowd) are paired one-to-one with its results by the least mean distance
    over visible joints (Hungarian); the joints of a person left without a result count as misses. `norm` is
    "bbox" (max(w, h) of the ground-truth box) or "torso" (shoulder-hip distance of the ground truth).
    Returns {"PCK": mean over keypoints, "PCK <name>": per keypoint, "EPE": px over paired visible joints}.
    """
    from scipy.optimize import linear_sum_assignment

    from posekit.evaluation.coco import load_ground_truth, load_results, num_keypoints
    from posekit.skeletons import from_coco_category

    if norm not in ("bbox", "torso"):
        raise DataError(f"PCK normaliser must be 'bbox' or 'torso', got {norm!r}")
    if not (isinstance(thr, (int, float)) and 0 < thr < float("inf")):
        raise DataError(f"PCK threshold must be a positive fraction of the normaliser (e.g. 0.05), got {thr!r}")
    data = load_ground_truth(gt, use_area=False)
    res = load_results(results, data)
    k = num_keypoints(data)
    by_image: dict = {}
    for r in res:
        by_image.setdefault(r["image_id"], []).append(np.asarray(r["keypoints"], dtype=np.float64).reshape(k, 3))
    anns = [a for a in data["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]]
    if not anns:
        raise DataError("PCK: the ground truth has no annotated (num_keypoints > 0, not crowd) person")
    gts = np.stack([np.asarray(a["keypoints"], dtype=np.float64).reshape(k, 3) for a in anns])
    preds = np.full((len(anns), k, 2), np.nan)
    ann_by_image: dict = {}
    for i, a in enumerate(anns):
        ann_by_image.setdefault(a["image_id"], []).append(i)
    for img, idx in ann_by_image.items():
        cands = by_image.get(img)
        if not cands:
            continue
        g = gts[idx]
        c = np.stack(cands)
        vis = g[:, :, 2] > 0
        d = np.linalg.norm(g[:, None, :, :2] - c[None, :, :, :2], axis=-1)
        cost = (d * vis[:, None]).sum(-1) / np.maximum(vis.sum(-1), 1)[:, None]
        rows, cols = linear_sum_assignment(cost)
        preds[np.asarray(idx)[rows]] = c[cols, :, :2]
    mask = gts[:, :, 2] > 0
    if norm == "bbox":
        norms = bbox_norm(np.asarray([a["bbox"] for a in anns]))
    else:
        cats = [cat for cat in data["categories"] if isinstance(cat.get("keypoints"), list)]
        if not cats:
            raise DataError("torso PCK needs categories[].keypoints names (left_shoulder, right_hip, ...)")
        cat = {key: v for key, v in cats[0].items() if key != "skeleton"}  # links are not needed here
        norms = torso_norm(gts, from_coco_category(cat, source="ground truth categories[0]"))
    acc, mean, _ = pck_accuracy(preds, gts[:, :, :2], mask, norms, thr)
    names = next((cat["keypoints"] for cat in data["categories"] if isinstance(cat.get("keypoints"), list)
                  and len(cat["keypoints"]) == k), [str(j) for j in range(k)])
    paired = mask & np.isfinite(preds[:, :, 0])
    out = {"PCK": mean}
    out.update({f"PCK {n}": float(a) for n, a in zip(names, acc)})
    out["EPE"] = epe(np.nan_to_num(preds), gts[:, :, :2], paired)
    return out
