"""PRTR coordinate codec: normalised crop coordinates as targets, Hungarian-matched query decoding.

encode (official JointsDataset TARGET_TYPE "coord"): target = crop input px / input size (w, h) -> [K,2] float32,
target_weight = visibility [K,1]. Joints outside the crop keep weight 1 (no in-bounds check), so a target may lie
outside [0, 1]; unlabelled joints get target (0, 0) (the official code leaves their raw zero coordinates).

decode (official core/inference.py get_final_preds_match): per crop, p = softmax over the J joint logits (the
no-object logit dropped BEFORE the softmax), or with `include_bg_logit` softmax over all J+1 and the last column
dropped; scipy linear_sum_assignment on -p^T [J, Q] gives each joint a distinct query (coordinates play no role);
score = that probability; keypoints = matched coords x input size (crop px, float32 as official). For a mirrored
crop (`flip_index` given): x -> 1 - x in normalised units (continuous, NOT the training-time W - 1 - x pixel
convention), then coordinates and scores are swapped pairwise. The flip test averages both passes' keypoints and
scores (`decode_flip_test`); averaging in crop px equals the official average in image px (one affine per box).

Network outputs: the PoseTransformer dict (`pred_logits` [N,Q,J+1], `pred_coords` [N,Q,2]), a (logits, coords)
pair, or the packed tensor [N,Q,J+3] = (logits, x, y) that the network also returns as "out"; numpy or torch.
For the generic top-down runner (posekit.runtime): `flip_back(packed)` maps a mirrored crop's packed output to the
original crop's frame (joint-class columns permuted, x -> 1 - x; matching is permutation-equivariant, so decoding it
equals the official flipped decoding), and `decode` of two stacked passes [N,2,Q,J+3] (`stack_flip_passes`)
decodes each pass and averages, as official (queries of two passes cannot be averaged before matching).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from posekit.codecs.base import ArrayLike, Codec, check_keypoints, to_numpy
from posekit.errors import DataError


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def joint_probabilities(logits: np.ndarray, num_joints: int, include_bg_logit: bool = False) -> np.ndarray:
    """[N,Q,J+1] logits -> [N,Q,J] float32 joint probabilities (background dropped before or after the softmax)."""
    x = np.asarray(logits, dtype=np.float32)
    if include_bg_logit:
        return _softmax(x)[..., :num_joints].astype(np.float32)
    return _softmax(x[..., :num_joints]).astype(np.float32)


def match_queries(prob: np.ndarray) -> np.ndarray:
    """[Q,J] probabilities -> [J] query index of each joint (maximum summed probability, distinct queries)."""
    rows, cols = linear_sum_assignment(-np.asarray(prob, dtype=np.float64).T)
    query = np.empty(prob.shape[1], dtype=np.int64)
    query[rows] = cols
    return query


class CoordCodec(Codec):
    """PRTR targets (normalised crop coordinates) and matched decoding; see the module docstring."""

    name = "coord"
    affine = "standard"
    stack_flip_passes = True  # flip test: the runner stacks (output, flipped-back output) for decode to average

    def __init__(self, input_size: Sequence[int] = (192, 256), heatmap_size: Sequence[int] | None = None,
                 num_keypoints: int = 17, sigma: float = 2.0, joint_weights: Sequence[float] | None = None,
                 shift_heatmap: bool | None = None, include_bg_logit: bool = False) -> None:
        hm = heatmap_size if heatmap_size is not None else (max(2, input_size[0] // 4), max(2, input_size[1] // 4))
        super().__init__(input_size, hm, num_keypoints, sigma, joint_weights)
        self.include_bg_logit = bool(include_bg_logit)

    def __repr__(self) -> str:
        return (f"CoordCodec(input_size={self.input_size}, num_keypoints={self.num_keypoints}, "
                f"include_bg_logit={self.include_bg_logit})")

    # -- encode ----------------------------------------------------------------------------------------------------
    def encode(self, keypoints: np.ndarray, visible: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Keypoints [K,2] crop input px, visible [K] -> target [K,2] (x/W, y/H) float32, target_weight [K,1]."""
        kp, vis = check_keypoints(keypoints, visible, self.num_keypoints)
        kp = np.where(vis[:, None] > 0, kp, 0.0)
        target = (kp / np.asarray(self.input_size, dtype=np.float64)).astype(np.float32)
        weight = self._weights(vis.reshape(-1, 1).astype(np.float32))
        return {"target": target, "target_weight": weight}

    def perfect_outputs(self, keypoints: np.ndarray) -> np.ndarray:
        """An ideal packed output [K, K+3] for keypoints [K,2] (input px): one confident query per joint."""
        k = self.num_keypoints
        logits = np.full((k, k + 1), -10.0, dtype=np.float32)
        logits[np.arange(k), np.arange(k)] = 10.0
        coords = (np.asarray(keypoints, np.float64)[:, :2] / np.asarray(self.input_size)).astype(np.float32)
        return np.concatenate([logits, coords], axis=1)

    # -- decode ----------------------------------------------------------------------------------------------------
    def _split(self, outputs: Any) -> tuple[np.ndarray, np.ndarray]:
        k = self.num_keypoints
        if isinstance(outputs, (np.ndarray, torch.Tensor)):
            packed = to_numpy(outputs)
            if packed.ndim not in (2, 3) or packed.shape[-1] != k + 3:
                raise DataError(f"codec coord: packed outputs {packed.shape}, expected [N, Q, {k + 3}] "
                                "(logits, x, y)")
            outputs = (packed[..., : k + 1], packed[..., k + 1:])
        if isinstance(outputs, dict):
            if "pred_logits" not in outputs or "pred_coords" not in outputs:
                raise DataError(f"codec coord: outputs need pred_logits and pred_coords, got {sorted(outputs)}")
            logits, coords = outputs["pred_logits"], outputs["pred_coords"]
        elif isinstance(outputs, (tuple, list)) and len(outputs) == 2:
            logits, coords = outputs
        else:
            raise DataError(f"codec coord: expected a dict with pred_logits / pred_coords or a (logits, coords) pair, "
                            f"got {type(outputs).__name__}")
        lg, co = to_numpy(logits), to_numpy(coords)
        if lg.ndim == 2:
            lg, co = lg[None], co[None]
        if lg.ndim != 3 or lg.shape[2] != k + 1 or co.shape != lg.shape[:2] + (2,) or lg.shape[1] < k:
            raise DataError(f"codec coord: pred_logits {lg.shape} / pred_coords {co.shape}, expected "
                            f"[N, Q>={k}, {k + 1}] / [N, Q, 2]")
        return lg, co

    def decode_normalized(self, outputs: Any, flip_index: Sequence[int] | np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
        """(coords [N,K,2] float32 in [0,1] crop units, scores [N,K] float32); flip_index: outputs of a mirror."""
        logits, coords = self._split(outputs)
        prob = joint_probabilities(logits, self.num_keypoints, self.include_bg_logit)
        n, k = logits.shape[0], self.num_keypoints
        xy = np.empty((n, k, 2), np.float32)
        scores = np.empty((n, k), np.float32)
        for i in range(n):
            q = match_queries(prob[i])
            xy[i] = coords[i, q]
            scores[i] = prob[i, q, np.arange(k)]
        if flip_index is not None:
            idx = np.asarray(flip_index, dtype=np.int64)
            if idx.shape != (k,):
                raise DataError(f"codec coord: flip_index has {idx.shape} entries, expected ({k},)")
            xy[..., 0] = np.float32(1.0) - xy[..., 0]
            xy, scores = xy[:, idx], scores[:, idx]
        return xy, scores

    def decode(self, outputs: Any, flip_index: Sequence[int] | np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Network outputs -> (keypoints [N,K,2] float64 crop input px, scores [N,K] float32).

        Packed outputs of two passes [N,2,Q,J+3] (the second flipped back) decode to the flip-test average."""
        if isinstance(outputs, (np.ndarray, torch.Tensor)) and outputs.ndim == 4:
            if outputs.shape[1] != 2:
                raise DataError(f"codec coord: stacked passes {tuple(outputs.shape)}, expected [N, 2, Q, J+3]")
            a, sa = self.decode(outputs[:, 0])
            b, sb = self.decode(outputs[:, 1])
            return (a + b) * 0.5, ((sa.astype(np.float64) + sb) * 0.5).astype(np.float32)
        xy, scores = self.decode_normalized(outputs, flip_index)
        px = (xy * np.asarray(self.input_size, dtype=np.float32)).astype(np.float32)
        return px.astype(np.float64), scores

    def decode_flip_test(self, outputs: Any, flipped_outputs: Any, flip_index: Sequence[int] | np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
        """Official flip test: decode both passes (the second as a mirror) and average keypoints and scores."""
        a, sa = self.decode(outputs)
        b, sb = self.decode(flipped_outputs, flip_index)
        return (a + b) * 0.5, ((sa.astype(np.float64) + sb) * 0.5).astype(np.float32)

    def flip_back(self, outputs: ArrayLike, flip_index: Sequence[int] | np.ndarray) -> ArrayLike:
        """Packed outputs [N,Q,J+3] of mirrored crops -> the original crops' frame (joint classes swapped by
        flip_index, x -> 1 - x); numpy or torch in, same out. Decode it; never average it with another pass."""
        k = self.num_keypoints
        if outputs.ndim != 3 or outputs.shape[-1] != k + 3:
            raise DataError(f"codec coord: flip_back needs packed outputs [N, Q, {k + 3}], got {tuple(outputs.shape)}")
        idx = np.asarray(flip_index, dtype=np.int64)
        if idx.shape != (k,):
            raise DataError(f"codec coord: flip_index has {idx.shape} entries, expected ({k},)")
        order = np.concatenate([idx, np.arange(k, k + 3)])
        if isinstance(outputs, torch.Tensor):
            out = outputs[..., torch.as_tensor(order, device=outputs.device)].clone()
        else:
            out = np.array(np.asarray(outputs)[..., order], copy=True)
        out[..., k + 1] = 1.0 - out[..., k + 1]
        return out
