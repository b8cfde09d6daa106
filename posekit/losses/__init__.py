"""Training losses, one module per kind: heatmap.py (MSE, OHKM, CombinedTarget, G-RMI, integral L1)."""

from posekit.losses.heatmap import (
    CombinedTargetMSELoss,
    GRMILoss,
    IntegralL1Loss,
    JointsMSELoss,
    JointsOHKMMSELoss,
    build_loss,
    coordinate_l1_loss,
    huber,
    loss_name_for,
    soft_argmax_2d,
)

__all__ = ["CombinedTargetMSELoss", "GRMILoss", "IntegralL1Loss", "JointsMSELoss", "JointsOHKMMSELoss", "build_loss",
           "coordinate_l1_loss", "huber", "loss_name_for", "soft_argmax_2d"]
