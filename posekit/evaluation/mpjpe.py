"""3-D pose errors: MPJPE, PA-MPJPE (rigid as 3DMPPE, or similarity as the wider literature), 3DPCK, AUC, tables.

`mpjpe(pred [N,J,3], gt [N,J,3], align=None | "rigid" | "similarity", root=None) -> [N,J]` per-joint Euclidean
errors in the input units. With `root`, both poses are first made root-relative (3DMPPE subtracts the pelvis).
The alignment is fitted on ALL J joints given (3DMPPE fits on its 18 joints including Thorax and drops Thorax
afterwards: select the evaluated joints from the result, not before).

- "rigid" = 3DMPPE `rigid_align` (common/utils/pose_utils.py): Kabsch rotation from the SVD of the centred
  cross-covariance, a reflection turned into a proper rotation by negating the last row of V^T, plus translation,
  NO scale. This is what the 3DMPPE repo reports as "PA MPJPE" (its "Protocol 1").
- "similarity" = the standard Procrustes-aligned MPJPE (Umeyama: rotation, translation and a scale; reflections
  excluded the same way), e.g. VideoPose3D's p_mpjpe. Gives smaller numbers than "rigid" when scales differ.

Arithmetic keeps the input dtype (float32 in -> float32 out), as the official evaluate does on its float32 arrays.
3DPCK counts joints with error <= threshold (150 mm by default, MuPoTS); AUC averages 3DPCK over thresholds
0, 5, ..., 150 mm (31 values, the MuPoTS / MPI-INF-3DHP convention).
Human3.6M per-action means parse the action number from the image path as 3DMPPE does: the two characters after
the first "act" plus one separator ("act_02" -> 2), minus 2 -> index into the 15 official action names; actions
with no samples give NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from posekit.errors import DataError

ALIGNMENTS = (None, "rigid", "similarity")
H36M_ACTIONS = ("Directions", "Discussion", "Eating", "Greeting", "Phoning", "Posing", "Purchases", "Sitting",
                "SittingDown", "Smoking", "Photo", "Waiting", "Walking", "WalkDog", "WalkTogether")
AUC_THRESHOLDS = tuple(float(t) for t in np.linspace(0, 150, 31))


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise DataError(f"mpjpe: pred {pred.shape} and gt {gt.shape} must both be [N, J, 3]")
    if pred.shape[1] == 0:
        raise DataError("mpjpe: no joints")
    return pred, gt


def rigid_transform(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares rotation R [3,3] and translation t [3] with R @ a + t ~ b for point sets A, B [J,3]."""
    ca, cb = A.mean(axis=0), B.mean(axis=0)
    h = np.dot((A - ca).T, B - cb)
    u, _, vt = np.linalg.svd(h)
    r = np.dot(vt.T, u.T)
    if np.linalg.det(r) < 0:
        vt[2] = -vt[2]
        r = np.dot(vt.T, u.T)
    t = -np.dot(r, ca.T) + cb.T
    return r, t


def rigid_align(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A [J,3] moved onto B by the rigid transform (3DMPPE `rigid_align`, no scale)."""
    r, t = rigid_transform(A, B)
    return np.dot(r, A.T).T + t


def similarity_align(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A [J,3] moved onto B by the least-squares similarity (Umeyama: scale * R @ a + t, no reflection)."""
    ca, cb = A.mean(axis=0), B.mean(axis=0)
    a0, b0 = A - ca, B - cb
    u, s, vt = np.linalg.svd(np.dot(a0.T, b0))
    d = np.ones(3, dtype=s.dtype)
    if np.linalg.det(np.dot(vt.T, u.T)) < 0:
        d[2] = -1
    r = np.dot(vt.T * d, u.T)
    norm = float(np.sum(a0**2))
    scale = float(np.sum(s * d)) / norm if norm > 0 else 1.0
    return (scale * np.dot(r, a0.T).T + cb).astype(A.dtype, copy=False)


def align_poses(pred: np.ndarray, gt: np.ndarray, align: str | None) -> np.ndarray:
    """Each pred[n] aligned onto gt[n] ("rigid" / "similarity"), or pred unchanged (None)."""
    if align not in ALIGNMENTS:
        raise DataError(f"mpjpe align: expected one of {ALIGNMENTS}, got {align!r}")
    if align is None:
        return pred
    fn = rigid_align if align == "rigid" else similarity_align
    return np.stack([fn(p, g) for p, g in zip(pred, gt, strict=True)]) if len(pred) else pred.copy()


def mpjpe(pred: np.ndarray, gt: np.ndarray, align: str | None = None, root: int | None = None) -> np.ndarray:
    """Per-joint errors [N,J] (input units) after optional root-relative shift and per-pose alignment."""
    pred, gt = _check_pair(pred, gt)
    if root is not None:
        if not 0 <= root < pred.shape[1]:
            raise DataError(f"mpjpe root: joint {root} outside 0..{pred.shape[1] - 1}")
        pred = pred - pred[:, root : root + 1]
        gt = gt - gt[:, root : root + 1]
    pred = align_poses(pred, gt, align)
    return np.sqrt(np.sum((pred - gt) ** 2, axis=2))


def pck3d(errors: np.ndarray, threshold: float = 150.0) -> float:
    """Percentage (0..100) of joint errors <= threshold."""
    e = np.asarray(errors)
    if e.size == 0:
        raise DataError("pck3d: no errors to score")
    return float(np.mean(e <= threshold) * 100.0)


def auc3d(errors: np.ndarray, thresholds: Sequence[float] = AUC_THRESHOLDS) -> float:
    """Mean 3DPCK (0..100) over `thresholds` (default 0..150 mm in 5 mm steps)."""
    return float(np.mean([pck3d(errors, t) for t in thresholds]))


def per_joint_table(errors: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """Mean error per joint name (errors [N,J])."""
    e = np.asarray(errors)
    if e.ndim != 2 or e.shape[1] != len(names):
        raise DataError(f"per_joint_table: errors {e.shape} do not match {len(names)} joint names")
    return {n: float(e[:, j].mean()) if len(e) else float("nan") for j, n in enumerate(names)}


def h36m_action_index(image_path: str) -> int:
    """3DMPPE's action index of an H36M image path: int(2 chars after the first 'act' + 1) - 2 (0..14)."""
    i = image_path.find("act")
    if i < 0:
        raise DataError(f"H36M image path {image_path!r} has no 'act_XX' part")
    try:
        return int(image_path[i + 4 : i + 6]) - 2
    except ValueError:
        raise DataError(f"H36M image path {image_path!r}: expected 'act_XX' with a two-digit action") from None


def per_action_means(errors: np.ndarray, action_ids: Sequence[int],
                     action_names: Sequence[str] = H36M_ACTIONS) -> tuple[dict[str, float], dict[str, int]]:
    """(mean error over each action's samples x joints, sample counts); NaN for actions without samples."""
    e = np.asarray(errors)
    ids = np.asarray(action_ids, dtype=np.int64)
    if len(ids) != len(e):
        raise DataError(f"per_action_means: {len(ids)} action ids for {len(e)} samples")
    means, counts = {}, {}
    for a, name in enumerate(action_names):
        sel = e[ids == a]
        counts[name] = int(len(sel))
        means[name] = float(np.mean(sel)) if len(sel) else float("nan")
    return means, counts


def body3d_metrics(pred: np.ndarray, gt: np.ndarray, joint_names: Sequence[str], root: int | None,
                   eval_joints: Sequence[int] | None = None, align: str | None = None,
                   action_ids: Sequence[int] | None = None, action_names: Sequence[str] = H36M_ACTIONS,
                   pck_threshold: float = 150.0) -> dict[str, object]:
    """MPJPE-style summary of camera-space poses [N,J,3]: alignment over all joints, scored on `eval_joints`.

    Returns {"error" [N,E], "MPJPE" mean, "per_joint" {name: mean}, "3DPCK", "AUC", and with action_ids
    "per_action" / "action_count"}.
    """
    err = mpjpe(pred, gt, align=align, root=root)
    idx = list(range(err.shape[1])) if eval_joints is None else [int(j) for j in eval_joints]
    err = err[:, idx].astype(np.float64)  # official: float32 errors stored in a float64 array
    out: dict[str, object] = {
        "error": err,
        "MPJPE": float(np.mean(err)),
        "per_joint": per_joint_table(err, [joint_names[j] for j in idx]),
        "3DPCK": pck3d(err, pck_threshold),
        "AUC": auc3d(err),
    }
    if action_ids is not None:
        out["per_action"], out["action_count"] = per_action_means(err, action_ids, action_names)
    return out
