"""Training losses; each is `loss(output, target, target_weight) -> scalar` so the loop stays generic.

JointsMSELoss / JointsOHKMMSELoss follow the official HRNet `lib/core/loss.py` numbers (fixture
hrnet_losses.npz). Deliberate fix: the official OHKM loss with use_target_weight=False crashes for a batch of one
(`.squeeze()` drops the batch axis); here it works for any batch size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from posekit.codecs.integral import soft_argmax_2d
from posekit.errors import ConfigError, DataError


def _weighted(output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor | None,
              use_target_weight: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Flatten [B,K,h,w] maps to [B,K,h*w], multiplied by the per-joint weight when asked."""
    b, k = output.shape[:2]
    pred = output.reshape(b, k, -1)
    gt = target.reshape(b, k, -1)
    if use_target_weight:
        w = _joint_weight(target_weight, b, k, pred.dtype)
        pred, gt = pred * w, gt * w
    return pred, gt


def _joint_weight(target_weight: torch.Tensor | None, b: int, k: int, dtype: torch.dtype) -> torch.Tensor:
    """target_weight as [B,K,1] of `dtype`; DataError when it is missing."""
    if target_weight is None:
        raise DataError("loss: use_target_weight=True needs target_weight [B,K,1], got None")
    return target_weight.reshape(b, k, 1).to(dtype)


def _three_channels_per_joint(output: torch.Tensor, loss: str, layout: str) -> tuple[int, int]:
    """(batch, joints) of an output with 3 channels per joint; DataError naming the loss otherwise."""
    b, c = output.shape[:2]
    if c % 3:
        raise DataError(f"{loss} loss: the output needs 3 channels per joint ({layout}), got {c} channels")
    return b, c // 3


class _HeatmapLoss(nn.Module):
    """Base of the heatmap losses: `use_target_weight` multiplies each joint's maps by its target weight."""

    def __init__(self, use_target_weight: bool = True) -> None:
        super().__init__()
        self.use_target_weight = use_target_weight


class JointsMSELoss(_HeatmapLoss):
    """Official heatmap MSE: mean over joints of 0.5 * mean over batch and pixels of ((pred - gt) * w)^2."""

    def forward(self, output: torch.Tensor, target: torch.Tensor,
                target_weight: torch.Tensor | None = None) -> torch.Tensor:
        pred, gt = _weighted(output, target, target_weight, self.use_target_weight)
        return 0.5 * F.mse_loss(pred, gt.to(pred.dtype))


class JointsOHKMMSELoss(_HeatmapLoss):
    """Online hard keypoint mining: per sample, the mean of the `topk` largest per-joint MSEs; mean over batch."""

    def __init__(self, use_target_weight: bool = True, topk: int = 8) -> None:
        super().__init__(use_target_weight)
        if topk < 1:
            raise ConfigError(f"LOSS.TOPK must be >= 1, got {topk}")
        self.topk = topk

    def forward(self, output: torch.Tensor, target: torch.Tensor,
                target_weight: torch.Tensor | None = None) -> torch.Tensor:
        pred, gt = _weighted(output, target, target_weight, self.use_target_weight)
        per_joint = 0.5 * (pred - gt.to(pred.dtype)).pow(2).mean(dim=2)  # [B, K]
        k = min(self.topk, per_joint.shape[1])
        hardest = per_joint.topk(k, dim=1, sorted=False).values
        return hardest.sum(dim=1).div(k).mean()


class CombinedTargetMSELoss(_HeatmapLoss):
    """UDP CombinedTarget loss: heatmap MSE plus offset MSE gated by the GT response, 3 channels per joint."""

    def forward(self, output: torch.Tensor, target: torch.Tensor,
                target_weight: torch.Tensor | None = None) -> torch.Tensor:
        b, k = _three_channels_per_joint(output, "CombinedTarget", "response, x and y offset")
        pred = output.reshape(b, k, 3, -1)
        gt = target.reshape(b, k, 3, -1).to(pred.dtype)
        heat_pred, heat_gt = pred[:, :, 0], gt[:, :, 0]
        if self.use_target_weight:
            w = _joint_weight(target_weight, b, k, pred.dtype)
            heat_pred, heat_gt = heat_pred * w, heat_gt * w
        loss = F.mse_loss(heat_pred, heat_gt)
        loss = loss + F.mse_loss(heat_gt * pred[:, :, 1], heat_gt * gt[:, :, 1])
        loss = loss + F.mse_loss(heat_gt * pred[:, :, 2], heat_gt * gt[:, :, 2])
        return 0.5 * loss


def huber(u: torch.Tensor, delta: float) -> torch.Tensor:
    """Huber function of a non-negative magnitude u."""
    return torch.where(u <= delta, 0.5 * u * u, delta * (u - 0.5 * delta))


class GRMILoss(nn.Module):
    """G-RMI: sigmoid cross-entropy on K disk heatmaps + Huber on the 2K offsets inside each disk.

    Channel layout [B, 3K, h, w]: K heatmap logits, then K x-offsets, then K y-offsets (the grmi_offset codec).
    The heatmap term is averaged over pixels and weighted joints; the offset term over disk pixels.
    """

    def __init__(self, use_target_weight: bool = True, heatmap_weight: float = 4.0, offset_weight: float = 1.0,
                 delta: float = 1.0) -> None:
        super().__init__()
        self.use_target_weight = use_target_weight
        self.heatmap_weight = heatmap_weight
        self.offset_weight = offset_weight
        self.delta = delta

    def forward(self, output: torch.Tensor, target: torch.Tensor,
                target_weight: torch.Tensor | None = None) -> torch.Tensor:
        b, k = _three_channels_per_joint(output, "G-RMI", "K heatmaps, then K x and K y offsets")
        out = output.reshape(b, 3, k, -1)
        tgt = target.reshape(b, 3, k, -1).to(out.dtype)
        w = torch.ones(b, k, 1, dtype=out.dtype, device=out.device)
        if self.use_target_weight and target_weight is not None:
            w = target_weight.reshape(b, k, 1).to(out.dtype)
        disk = tgt[:, 0]
        bce = F.binary_cross_entropy_with_logits(out[:, 0], disk, reduction="none") * w
        heat = bce.mean()
        inside = disk * w  # offsets only count inside the disk of a weighted joint
        dist = torch.sqrt((out[:, 1] - tgt[:, 1]).pow(2) + (out[:, 2] - tgt[:, 2]).pow(2) + 1e-12)
        offs = (huber(dist, self.delta) * inside).sum() / inside.sum().clamp(min=1.0)
        return self.heatmap_weight * heat + self.offset_weight * offs


def coordinate_l1_loss(pred: torch.Tensor, target: torch.Tensor, visible: torch.Tensor,
                       have_depth: torch.Tensor | None = None) -> torch.Tensor:
    """3DMPPE L1 coordinate loss per joint [B, J]: mean over x, y (and z where have_depth) of |pred - gt| * vis."""
    d = pred.shape[-1]
    err = (pred - target.to(pred.dtype)).abs() * visible.reshape(*pred.shape[:2], 1).to(pred.dtype)
    if d == 3:
        z = err[..., 2]
        if have_depth is not None:
            z = z * have_depth.reshape(-1, 1).to(pred.dtype)
        return (err[..., 0] + err[..., 1] + z) / 3.0
    return err.mean(dim=-1)


class IntegralL1Loss(nn.Module):
    """Integral regression: soft-argmax of the output maps, L1 to target coordinates [B, K, 2] (heatmap px)."""

    def __init__(self, use_target_weight: bool = True, beta: float = 1.0) -> None:
        super().__init__()
        self.use_target_weight = use_target_weight
        self.beta = beta

    def forward(self, output: torch.Tensor, target: torch.Tensor,
                target_weight: torch.Tensor | None = None) -> torch.Tensor:
        coords = soft_argmax_2d(output.float(), self.beta)
        b, k = coords.shape[:2]
        vis = target_weight if (self.use_target_weight and target_weight is not None) else torch.ones(b, k, 1)
        return coordinate_l1_loss(coords, target.reshape(b, k, -1)[..., :2], vis.to(coords.device)).mean()


LOSSES = ("mse", "ohkm", "combined", "grmi", "integral")


def loss_name_for(codec_name: str, use_ohkm: bool = False) -> str:
    """The loss a codec is trained with."""
    if codec_name == "udp_offset":
        return "combined"
    if codec_name == "grmi_offset":
        return "grmi"
    if codec_name == "integral":
        return "integral"
    return "ohkm" if use_ohkm else "mse"


def build_loss(name: str, use_target_weight: bool = True, topk: int = 8, beta: float = 1.0) -> nn.Module:
    """A loss by name (mse | ohkm | combined | grmi | integral; `beta` is the integral soft-argmax temperature)."""
    if name == "mse":
        return JointsMSELoss(use_target_weight)
    if name == "ohkm":
        return JointsOHKMMSELoss(use_target_weight, topk)
    if name == "combined":
        return CombinedTargetMSELoss(use_target_weight)
    if name == "grmi":
        return GRMILoss(use_target_weight)
    if name == "integral":
        return IntegralL1Loss(use_target_weight, beta)
    raise ConfigError(f"LOSS.NAME must be one of {LOSSES}, got {name!r}")
