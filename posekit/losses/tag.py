"""Associative Embedding losses (princeton-vl/pose-ae-train): masked heatmap loss and the pull/push tag loss.

Pure PyTorch and differentiable by autograd; the official C extension's forward (fixture ae_losses.npz) is
reproduced and its hand-written backward is the exact gradient of that forward, which autograd gives here.

- `heatmap_loss(pred [B,K,h,w], gt, mask [B,h,w]) -> [B]`: mean over (K, h, w) of (pred - gt)^2 * mask.
- `tag_loss(tags [B, K*h*w, D], refs [B, P, K, 2]) -> (push [B], pull [B])`: refs hold (flat index into K*h*w,
  visible) per referenced joint (codec `refs`). Per image: for each person with >= 1 visible ref, mean tag m_p;
  pull = mean over people of (mean over its refs of ||t - m_p||^2 / D); push = 0.5 * sum over pairs p<q of
  exp(-||m_p - m_q||^2) / (P(P-1)/2), 0 when P <= 1; no people -> (0, 0).
- `AELoss` on network outputs [B, S, C, h, w] (S stacks): channels 0:K detection, K:K+K*D tags (joint-major);
  every stack is supervised; total = mean over [B, S] of push_weight*push + pull_weight*pull +
  detection_weight*det (official 1e-3, 1e-3, 1). Returns (loss, logs) as the engine's criteria do.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from posekit.errors import DataError


def heatmap_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Official HeatmapLoss per image [B]: mean over joints and pixels of the masked squared error."""
    if pred.shape != gt.shape or mask.shape != (pred.shape[0], *pred.shape[2:]):
        raise DataError(f"heatmap_loss: pred {tuple(pred.shape)}, gt {tuple(gt.shape)}, mask {tuple(mask.shape)}; "
                        "expected [B,K,h,w] twice and [B,h,w]")
    return ((pred - gt.to(pred.dtype)) ** 2 * mask[:, None].to(pred.dtype)).mean(dim=(1, 2, 3))


def tag_loss(tags: torch.Tensor, refs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Official AE tag loss per image: (push [B], pull [B]) for tags [B, N, D] and refs [B, P, K, 2] (int)."""
    if tags.ndim != 3 or refs.ndim != 4 or refs.shape[-1] != 2 or refs.shape[0] != tags.shape[0]:
        raise DataError(f"tag_loss: tags {tuple(tags.shape)} and refs {tuple(refs.shape)}; expected [B, N, D] and "
                        "[B, people, K, 2]")
    b, n, d = tags.shape
    idx = refs[..., 0].long().clamp(0, n - 1)  # [B, P, K]
    vis = (refs[..., 1] > 0).to(tags.dtype)  # [B, P, K]
    p, k = idx.shape[1:]
    picked = torch.gather(tags, 1, idx.reshape(b, p * k, 1).expand(b, p * k, d)).reshape(b, p, k, d)
    count = vis.sum(dim=2)  # [B, P]
    valid = count > 0
    denom = count.clamp(min=1)[..., None]
    mean = (picked * vis[..., None]).sum(dim=2) / denom  # [B, P, D]
    sq = ((picked - mean[:, :, None]) ** 2).sum(dim=3) / d  # [B, P, K]
    pull_p = (sq * vis).sum(dim=2) / denom[..., 0]  # [B, P]
    num = valid.sum(dim=1)  # [B]
    pull = (pull_p * valid).sum(dim=1) / num.clamp(min=1)
    diff = ((mean[:, :, None] - mean[:, None]) ** 2).sum(dim=3)  # [B, P, P]
    pair = valid[:, :, None] & valid[:, None, :] & torch.ones(p, p, dtype=torch.bool, device=tags.device).triu(1)
    pairs = (num * (num - 1) / 2).to(tags.dtype)
    push_sum = (torch.exp(-diff) * pair).sum(dim=(1, 2))
    push = torch.where(num > 1, 0.5 * push_sum / pairs.clamp(min=1), torch.zeros_like(push_sum))
    return push, pull


def flatten_tags(tag_maps: torch.Tensor, num_keypoints: int) -> torch.Tensor:
    """Tag maps [B, K*D, h, w] (joint-major) -> [B, K*h*w, D] (flat index j*h*w + y*w + x, as the refs)."""
    bsz, c, h, w = tag_maps.shape
    d = c // num_keypoints
    return tag_maps.reshape(bsz, num_keypoints, d, h * w).permute(0, 1, 3, 2).reshape(bsz, num_keypoints * h * w, d)


class AELoss(nn.Module):
    """Detection + tag loss on every stack: criterion(outputs [B,S,C,h,w], targets) -> (loss, logs).

    targets: "heatmaps" [B,K,h,w], "masks" [B,h,w], "refs" [B,P,K,2]. A 4-D output [B,C,h,w] is one stack.
    """

    def __init__(self, num_keypoints: int = 17, tag_dim: int = 1, push_weight: float = 1e-3,
                 pull_weight: float = 1e-3, detection_weight: float = 1.0) -> None:
        super().__init__()
        self.num_keypoints = int(num_keypoints)
        self.tag_dim = int(tag_dim)
        self.push_weight = float(push_weight)
        self.pull_weight = float(pull_weight)
        self.detection_weight = float(detection_weight)

    def per_stack(self, outputs: torch.Tensor, targets: dict[str, torch.Tensor]
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(push, pull, detection) each [B, S], before the weights (official PoseNet.calc_loss)."""
        out = outputs[:, None] if outputs.ndim == 4 else outputs
        k, d = self.num_keypoints, self.tag_dim
        if out.ndim != 5 or out.shape[2] < k * (1 + d):
            raise DataError(f"AELoss: outputs {tuple(outputs.shape)}, expected [B, stacks, >= {k * (1 + d)}, h, w]")
        pushes, pulls, dets = [], [], []
        for s in range(out.shape[1]):
            push, pull = tag_loss(flatten_tags(out[:, s, k:k + k * d], k), targets["refs"])
            pushes.append(push)
            pulls.append(pull)
            dets.append(heatmap_loss(out[:, s, :k], targets["heatmaps"], targets["masks"]))
        return torch.stack(pushes, 1), torch.stack(pulls, 1), torch.stack(dets, 1)

    def forward(self, outputs: Any, targets: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        push, pull, det = self.per_stack(outputs, targets)
        loss = (self.push_weight * push.mean() + self.pull_weight * pull.mean()
                + self.detection_weight * det.mean())
        return loss, {"push": float(push.detach().mean()), "pull": float(pull.detach().mean()),
                  "detection": float(det.detach().mean())}
