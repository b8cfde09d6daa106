"""3DMPPE coordinate loss: per-joint L1 over (x, y, z) of the 3-D soft-argmax, masked by visibility and have_depth.

Official (main/model.py ResPoseNet.forward with a target): loss[b, j] = (|dx| + |dy| + |dz| * have_depth[b]) / 3 *
vis[b, j] with coordinates in output-map pixels / depth bins; training uses the mean over batch and joints.
"""

from __future__ import annotations

import torch
from torch import nn

from posekit.errors import ConfigError


def body3d_l1_loss(coord: torch.Tensor, target: torch.Tensor, vis: torch.Tensor, have_depth: torch.Tensor,
                   reduction: str = "mean") -> torch.Tensor:
    """coord / target [B,J,3], vis [B,J] or [B,J,1], have_depth [B] or [B,1] -> [B,J] ("none") or the mean."""
    if coord.shape != target.shape or coord.ndim != 3 or coord.shape[-1] != 3:
        raise ConfigError(f"body3d loss: coord {tuple(coord.shape)} and target {tuple(target.shape)} must both be "
                          "[B, J, 3]")
    b, j = coord.shape[:2]
    vis = vis.reshape(b, j, 1).to(coord.dtype)
    have_depth = have_depth.reshape(b, 1).to(coord.dtype)
    diff = torch.abs(coord - target) * vis
    loss = (diff[:, :, 0] + diff[:, :, 1] + diff[:, :, 2] * have_depth) / 3.0
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean()
    raise ConfigError(f"body3d loss reduction: expected 'mean' or 'none', got {reduction!r}")


class Body3DL1Loss(nn.Module):
    """`criterion(coord, targets)` with targets {"coord", "vis", "have_depth"} -> (loss, logs) for the engine."""

    def forward(self, coord: torch.Tensor, targets: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        per_joint = body3d_l1_loss(coord, targets["coord"], targets["vis"], targets["have_depth"], reduction="none")
        loss = per_joint.mean()
        with torch.no_grad():
            vis = targets["vis"].reshape(per_joint.shape).to(coord.dtype)
            hd = targets["have_depth"].reshape(-1, 1).to(coord.dtype)
            dz = (torch.abs(coord[..., 2] - targets["coord"][..., 2]) * vis * hd).sum() / (vis * hd).sum().clamp(min=1)
        return loss, {"loss_coord": float(loss.detach()), "depth_l1_bins": float(dz)}
