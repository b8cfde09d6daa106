"""Datasets: typed records, COCO / MPII loaders, augmentation, image reading and the top-down Dataset."""

from posekit.data.augment import AugmentConfig
from posekit.data.coco import load_coco, load_coco_detections
from posekit.data.mpii import load_mpii
from posekit.data.records import PoseRecord
from posekit.data.topdown import ImageGroupedSampler, TopDownDataset

__all__ = [
    "AugmentConfig",
    "ImageGroupedSampler",
    "PoseRecord",
    "TopDownDataset",
    "load_coco",
    "load_coco_detections",
    "load_mpii",
]
