"""Training losses, one module per kind: heatmap.py (MSE, OHKM, CombinedTarget, G-RMI, integral L1),
set_criterion.py (PRTR Hungarian matcher + set criterion)."""

from posekit.losses.body3d import Body3DL1Loss, body3d_l1_loss
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
from posekit.losses.set_criterion import HungarianMatcher, SetCriterion
from posekit.losses.tag import AELoss, heatmap_loss, tag_loss

__all__ = ["CombinedTargetMSELoss", "GRMILoss", "IntegralL1Loss", "JointsMSELoss", "JointsOHKMMSELoss", "build_loss",
           "coordinate_l1_loss", "huber", "loss_name_for", "soft_argmax_2d"]
__all__ += ["Body3DL1Loss", "body3d_l1_loss"]
__all__ += ["HungarianMatcher", "SetCriterion"]
__all__ += ["AELoss", "heatmap_loss", "tag_loss"]
