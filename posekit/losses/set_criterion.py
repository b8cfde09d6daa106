"""PRTR's Hungarian matcher and set criterion (official two_stage models/matcher.py and core/loss.py semantics).

Conventions: outputs are the PoseTransformer dict (`pred_logits` [B,Q,J+1] with the no-object class LAST,
`pred_coords` [B,Q,2] normalised crop coordinates, optional `aux_outputs`); targets are `target` [B,J,2] normalised
(x/W, y/H) crop coordinates and `target_weight` [B,J,1] (visibility).

- Matcher: per image, cost [J, Q] = 5 * L1(target_j, coords_q) - softmax(logits_q)[j] (softmax over all J+1 classes),
  solved by scipy's linear_sum_assignment; rows come back as 0..J-1, columns are query ids. The weights are not
  used: invisible joints are matched (towards their (0, 0) target) and class-supervised, as official. The cost
  coefficients are fixed (class 1, coord 5), as the official build_matcher.
- loss_ce: cross-entropy over all B*Q queries (matched -> its joint id, unmatched -> J), class weights 1 and
  eos_coef for no-object, PyTorch's weighted mean. class_error (last layer only, no gradient): 100 - top-1
  accuracy (%) of the matched queries. loss_kpts: mean over B*J*2 of |target - matched coords| * weight, times J.
  cardinality_error (no gradient): batch mean of |#queries whose argmax is not no-object - J|.
- Every aux layer is matched again and gets the same terms with suffix `_i`; the total is sum(weight * value) over
  loss_ce (1) and loss_kpts (kpt_loss_coef) and their `_i` copies. `pred` = last-layer matched coords * weight.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn
from torch.nn import functional as F

from posekit.errors import DataError

COST_CLASS = 1.0
COST_COORD = 5.0


def _check(outputs: dict[str, Any], target: torch.Tensor, num_joints: int) -> None:
    logits, coords = outputs.get("pred_logits"), outputs.get("pred_coords")
    if logits is None or coords is None:
        raise DataError(f"set criterion: outputs need pred_logits and pred_coords, got {sorted(outputs)}")
    b, q, c = logits.shape
    if c != num_joints + 1 or coords.shape != (b, q, 2):
        raise DataError(f"set criterion: pred_logits {tuple(logits.shape)} / pred_coords {tuple(coords.shape)}, "
                        f"expected [B, Q, {num_joints + 1}] / [B, Q, 2]")
    if target.shape != (b, num_joints, 2):
        raise DataError(f"set criterion: target {tuple(target.shape)}, expected [{b}, {num_joints}, 2]")
    if q < num_joints:
        raise DataError(f"set criterion: {q} queries cannot be matched one-to-one to {num_joints} joints")


class HungarianMatcher(nn.Module):
    """One-to-one joint -> query assignment minimising cost_coord * L1 - cost_class * p(joint class)."""

    def __init__(self, cost_class: float = COST_CLASS, cost_coord: float = COST_COORD) -> None:
        super().__init__()
        self.cost_class = cost_class
        self.cost_coord = cost_coord

    def cost(self, outputs: dict[str, Any], target: torch.Tensor) -> torch.Tensor:
        """The cost matrices [B, J, Q] (float32, no gradient)."""
        with torch.no_grad():
            j = target.shape[1]
            prob = outputs["pred_logits"].float().softmax(-1)[..., :j]  # [B, Q, J]
            dist = torch.cdist(outputs["pred_coords"].float(), target.float(), p=1)  # [B, Q, J]
            return (self.cost_coord * dist - self.cost_class * prob).transpose(1, 2)

    def forward(self, outputs: dict[str, Any], target: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per image (joint indices 0..J-1, query indices), int64 numpy arrays."""
        cost = self.cost(outputs, target).cpu().numpy()
        out = []
        for c in cost:
            rows, cols = linear_sum_assignment(c)
            out.append((rows.astype(np.int64), cols.astype(np.int64)))
        return out


def matched_coords(coords: torch.Tensor, indices: list[tuple[np.ndarray, np.ndarray]]) -> torch.Tensor:
    """[B, Q, 2] query coordinates -> [B, J, 2] in joint order, following the matcher's indices."""
    rows = []
    for b, (joints, queries) in enumerate(indices):
        order = np.argsort(joints, kind="stable")
        rows.append(coords[b, torch.as_tensor(queries[order], device=coords.device)])
    return torch.stack(rows)


class SetCriterion(nn.Module):
    """PRTR training loss; forward(outputs, target, target_weight) -> dict of loss terms (+ "pred")."""

    def __init__(self, num_joints: int = 17, eos_coef: float = 0.1, kpt_loss_coef: float = 5.0,
                 matcher: HungarianMatcher | None = None) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.matcher = matcher or HungarianMatcher()
        self.eos_coef = eos_coef
        self.kpt_loss_coef = kpt_loss_coef
        weight = torch.ones(num_joints + 1)
        weight[-1] = eos_coef
        self.register_buffer("empty_weight", weight)

    def weight_dict(self, num_aux: int) -> dict[str, float]:
        """Weights of the summed terms: loss_ce 1, loss_kpts kpt_loss_coef, the same for every `_i`."""
        base = {"loss_ce": 1.0, "loss_kpts": self.kpt_loss_coef}
        out = dict(base)
        for i in range(num_aux):
            out.update({f"{k}_{i}": v for k, v in base.items()})
        return out

    def _terms(self, outputs: dict[str, Any], target: torch.Tensor, weight: torch.Tensor, log: bool,
               indices: list[tuple[np.ndarray, np.ndarray]]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        logits, coords = outputs["pred_logits"], outputs["pred_coords"]
        b, q, _ = logits.shape
        j = self.num_joints
        dev = logits.device
        batch_idx = torch.cat([torch.full((len(s),), i, dtype=torch.int64) for i, (_, s) in enumerate(indices)])
        query_idx = torch.cat([torch.as_tensor(s) for _, s in indices])
        joint_idx = torch.cat([torch.as_tensor(t) for t, _ in indices])
        batch_idx, query_idx, joint_idx = batch_idx.to(dev), query_idx.to(dev), joint_idx.to(dev)
        classes = torch.full((b, q), j, dtype=torch.int64, device=dev)
        classes[batch_idx, query_idx] = joint_idx
        terms: dict[str, torch.Tensor] = {
            "loss_ce": F.cross_entropy(logits.transpose(1, 2).float(), classes, self.empty_weight.to(dev))}
        if log:
            with torch.no_grad():
                top1 = logits[batch_idx, query_idx].argmax(-1) == joint_idx
                terms["class_error"] = 100.0 - top1.float().mean() * 100.0
        pred = matched_coords(coords, indices)  # [B, J, 2]
        w = weight.reshape(b, j, 1).to(pred.dtype)
        terms["loss_kpts"] = (torch.abs(target.to(pred.dtype) - pred) * w).mean() * j
        with torch.no_grad():
            count = (logits.argmax(-1) != j).sum(1).float()
            terms["cardinality_error"] = torch.abs(count - j).mean()
        return terms, pred * w

    def forward(self, outputs: dict[str, Any], target: torch.Tensor,
                target_weight: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss terms: loss_ce, class_error, loss_kpts, cardinality_error (+ `_i` per aux layer), loss, pred."""
        _check(outputs, target, self.num_joints)
        terms, pred = self._terms(outputs, target, target_weight, True, self.matcher(outputs, target))
        aux = outputs.get("aux_outputs") or []
        for i, a in enumerate(aux):
            t, _ = self._terms(a, target, target_weight, False, self.matcher(a, target))
            terms.update({f"{k}_{i}": v for k, v in t.items()})
        wd = self.weight_dict(len(aux))
        terms["loss"] = sum(terms[k] * v for k, v in wd.items())
        terms["pred"] = pred.detach()
        return terms


def criterion_logs(terms: dict[str, torch.Tensor]) -> dict[str, float]:
    """The scalar terms of a SetCriterion result as floats (for log.jsonl), without `loss` and `pred`."""
    return {k: float(v.detach()) for k, v in terms.items() if k not in ("loss", "pred") and v.dim() == 0}
