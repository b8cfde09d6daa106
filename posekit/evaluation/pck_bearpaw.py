"""CC-SSL's PCK@0.05: bearpaw `accuracy` on 64x64 heatmaps, accumulated per batch as the official evaluation does.

Official rule (pose/utils/evaluation.py of JitengMu/Learning-from-Synthetic-Animals, reproduced and checked
against ../shared/reference/codecs/ccssl_bearpaw.npz):
- predictions and ground truth are the 1-based argmaxes of the output and of the GT heatmaps (`get_preds`);
- distance = Euclidean distance / (W / 10) (6.4 heatmap px at 64x64) for every sample; a joint counts only when
  its GT argmax has x > 1 and y > 1 and the sample's norm is > 0 (GT blobs in the first row/column and empty
  GT maps are ignored, -1);
- per joint: fraction of counted distances strictly below thr (0.5 -> 3.2 heatmap px = 12.8 input px = 0.05 x 256);
  acc[0] = unweighted mean of the per-joint accuracies that are >= 0 (0 when none is).
- the reported mean (`acces.avg`) is the batch-size weighted average of the per-batch acc[0]; a joint's
  per-joint PCK is the plain average of its per-batch accuracies over the batches where it was >= 0
  (evaluation/test.py), not a pooled count. `BearpawPCK` reproduces this; batch composition therefore matters
  (the official test batch is 6, in loader order).

`coco_ap_of_predictions` scores the same predictions (image-space keypoints) with COCO-style OKS AP through
posekit.evaluation.coco when the target skeleton has OKS sigmas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from posekit.codecs.bearpaw import get_preds
from posekit.errors import DataError

PCK_THRESHOLD = 0.5  # in units of heatmap width / 10: 0.05 of the input side


def calc_dists(preds: np.ndarray, target: np.ndarray, normalize: np.ndarray) -> np.ndarray:
    """Official calc_dists: [N,K,2] x2, norm [N] -> [K,N] float32 distances / norm; -1 where target x or y <= 1
    and for samples whose norm is 0."""
    p = np.asarray(preds, np.float32)
    t = np.asarray(target, np.float32)
    norm = np.asarray(normalize, np.float32).reshape(-1)
    valid = (t[:, :, 0] > 1) & (t[:, :, 1] > 1) & (norm[:, None] > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.sqrt(((p - t) ** 2).sum(axis=2, dtype=np.float32)).astype(np.float32) / norm[:, None]
    return np.where(valid, d, np.float32(-1)).T.astype(np.float32)


def dist_acc(dists: np.ndarray, thr: float = PCK_THRESHOLD) -> float:
    """Official dist_acc: fraction of non-ignored (!= -1) distances strictly below thr; -1 when all are ignored."""
    d = np.asarray(dists, np.float32)
    ok = d != -1
    if not ok.any():
        return -1.0
    return float((d[ok] < thr).sum()) / float(ok.sum())


def accuracy(output: np.ndarray, target: np.ndarray, idxs: Sequence[int] | None = None,
             thr: float = PCK_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """Official accuracy over 1-based joint ids `idxs` (default all): (acc [len+1] float32, dists [K,N])."""
    out = np.asarray(output)
    tgt = np.asarray(target)
    if out.ndim != 4 or out.shape != tgt.shape:
        raise DataError(f"PCK: output {out.shape} and target {tgt.shape} must both be [N, K, H, W]")
    idxs = list(range(1, out.shape[1] + 1)) if idxs is None else [int(i) for i in idxs]
    if any(not 1 <= i <= out.shape[1] for i in idxs):
        raise DataError(f"PCK: joint ids {idxs} must be 1-based, within 1..{out.shape[1]}")
    norm = np.full(out.shape[0], out.shape[3] / 10, np.float32)
    dists = calc_dists(get_preds(out), get_preds(tgt), norm)
    acc = np.zeros(len(idxs) + 1, np.float32)
    total, cnt = np.float32(0), 0
    for i, j in enumerate(idxs):
        acc[i + 1] = dist_acc(dists[j - 1], thr)
        if acc[i + 1] >= 0:
            total = np.float32(total + acc[i + 1])
            cnt += 1
    if cnt:
        acc[0] = total / np.float32(cnt)
    return acc, dists


@dataclass
class BearpawPCK:
    """Accumulates official per-batch accuracies: `update(output, target)` per batch, then `result(names)`."""

    num_joints: int
    thr: float = PCK_THRESHOLD
    idxs: Sequence[int] | None = None
    _sum: float = 0.0
    _count: int = 0
    _joint_sum: np.ndarray = field(default=None)  # type: ignore[assignment]
    _joint_count: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self._joint_sum = np.zeros(self.num_joints)
        self._joint_count = np.zeros(self.num_joints)

    def update(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Score one batch (official AverageMeter update with n = batch size); returns its acc vector."""
        acc, _ = accuracy(output, target, self.idxs, self.thr)
        n = int(np.asarray(output).shape[0])
        self._sum += float(acc[0]) * n
        self._count += n
        for j in range(min(self.num_joints, len(acc) - 1)):
            if acc[j + 1] > -1:
                self._joint_sum[j] += float(acc[j + 1])
                self._joint_count[j] += 1
        return acc

    def result(self, names: Sequence[str] | None = None) -> dict[str, float]:
        """{"PCK@0.05": batch-weighted mean, "PCK@0.05 <joint>": per-joint mean over batches}; NaN = never valid."""
        if not self._count:
            raise DataError("PCK: no batch was scored")
        names = list(names) if names is not None else [str(j) for j in range(self.num_joints)]
        out = {"PCK@0.05": self._sum / self._count}
        with np.errstate(invalid="ignore", divide="ignore"):
            per = self._joint_sum / self._joint_count
        out.update({f"PCK@0.05 {n}": float(v) for n, v in zip(names, per)})
        return out


def pck_bearpaw(outputs: np.ndarray, targets: np.ndarray, batch_size: int = 6, names: Sequence[str] | None = None,
                thr: float = PCK_THRESHOLD) -> dict[str, float]:
    """Official PCK@0.05 of stacked heatmaps [N,K,H,W] vs GT maps, in loader order in batches of `batch_size`."""
    outputs, targets = np.asarray(outputs), np.asarray(targets)
    meter = BearpawPCK(outputs.shape[1], thr)
    for s in range(0, outputs.shape[0], batch_size):
        meter.update(outputs[s:s + batch_size], targets[s:s + batch_size])
    return meter.result(names)


def coco_ap_of_predictions(gt: str | dict, image_ids: Sequence[int], keypoints: np.ndarray, scores: np.ndarray,
                           sigmas: Sequence[float] | None = None, category_id: int = 1) -> dict[str, float]:
    """COCO OKS AP of image-space predictions [N,K,2] (+ per-joint scores [N,K]) for the GT people they were made for.

    Each prediction becomes one result with score = mean of its joint scores; the ground truth's sigmas (category
    'sigmas' or its named skeleton) are used unless `sigmas` is given.
    """
    from posekit.evaluation.coco import coco_keypoints

    kp = np.asarray(keypoints, np.float64)
    sc = np.asarray(scores, np.float64)
    if kp.ndim != 3 or kp.shape[:2] != sc.shape or len(image_ids) != kp.shape[0]:
        raise DataError(f"COCO AP: keypoints {kp.shape}, scores {sc.shape} and {len(image_ids)} image ids disagree")
    results = []
    for i, img in enumerate(image_ids):
        flat = np.concatenate([kp[i], sc[i][:, None]], axis=1).reshape(-1)
        results.append({"image_id": int(img), "category_id": int(category_id), "keypoints": flat.tolist(),
                        "score": float(sc[i].mean())})
    return coco_keypoints(gt, results, sigmas=sigmas)
