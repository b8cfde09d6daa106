"""Evaluation: COCO/CrowdPose OKS AP (pycocotools), MPII PCKh, PCK/AUC/EPE, OKS-NMS, the results writer and
tracking metrics (box MOTA / IDF1 / switches, PoseTrack keypoint MOTA)."""

from __future__ import annotations

from posekit.evaluation.coco import (
    BACKENDS,
    CROWDPOSE_STAT_NAMES,
    STAT_NAMES,
    coco_keypoints,
    crowdpose_keypoints,
)
from posekit.evaluation.mpjpe import auc3d, body3d_metrics, mpjpe, pck3d
from posekit.evaluation.nms import oks_iou, oks_matrix, oks_nms, soft_oks_nms
from posekit.evaluation.pck import accuracy, auc, epe, mpii_pckh, pck_accuracy
from posekit.evaluation.results import make_results, rescore, write_results
from posekit.evaluation.tracking import TrackFrame, box_mot, keypoint_mota, track_metrics, videos_from_coco

__all__ = [
    "BACKENDS",
    "CROWDPOSE_STAT_NAMES",
    "STAT_NAMES",
    "accuracy",
    "auc",
    "coco_keypoints",
    "crowdpose_keypoints",
    "epe",
    "make_results",
    "mpii_pckh",
    "oks_iou",
    "oks_matrix",
    "oks_nms",
    "pck_accuracy",
    "rescore",
    "soft_oks_nms",
    "write_results",
]
__all__ += ["auc3d", "body3d_metrics", "mpjpe", "pck3d"]
__all__ += ["TrackFrame", "box_mot", "keypoint_mota", "track_metrics", "videos_from_coco"]
