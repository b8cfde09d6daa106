"""Config -> records and datasets: data paths, detection boxes, the test dataset, the augmentation settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posekit.config import Config, dataset_format
from posekit.engine.spec import model_spec
from posekit.errors import ConfigError, DataError


@dataclass(frozen=True)
class DataPaths:
    """Annotation files and image folders a config points at."""

    train_ann: Path
    train_images: Path
    test_ann: Path
    test_images: Path
    test_gt: Path  # COCO: the GT json scored against; MPII: gt_<set>.mat


def data_paths(cfg: Config) -> DataPaths:
    """DATASET.TRAIN_ANN/TEST_ANN/*_IMAGES, or the official layout under DATASET.ROOT."""
    d = cfg.DATASET
    root = Path(d.ROOT)
    if dataset_format(cfg) == "coco":
        def ann(s: str) -> Path:
            return root / "annotations" / f"person_keypoints_{s}.json"

        train_ann = Path(d.TRAIN_ANN) if d.TRAIN_ANN else ann(d.TRAIN_SET)
        test_ann = Path(d.TEST_ANN) if d.TEST_ANN else ann(d.TEST_SET)
        train_img = Path(d.TRAIN_IMAGES) if d.TRAIN_IMAGES else root / "images" / d.TRAIN_SET
        test_img = Path(d.TEST_IMAGES) if d.TEST_IMAGES else root / "images" / d.TEST_SET
        return DataPaths(train_ann, train_img, test_ann, test_img, test_ann)
    train_ann = Path(d.TRAIN_ANN) if d.TRAIN_ANN else root / "annot" / f"{d.TRAIN_SET}.json"
    test_ann = Path(d.TEST_ANN) if d.TEST_ANN else root / "annot" / f"{d.TEST_SET}.json"
    train_img = Path(d.TRAIN_IMAGES) if d.TRAIN_IMAGES else root / "images"
    test_img = Path(d.TEST_IMAGES) if d.TEST_IMAGES else root / "images"
    return DataPaths(train_ann, train_img, test_ann, test_img, test_ann.with_name(f"gt_{d.TEST_SET}.mat"))


def need_path(path: Path, key: str) -> Path:
    if not path.exists():
        raise ConfigError(f"{path} not found (set {key}, or DATASET.ROOT for the official layout)")
    return path


def resolve_boxes(cfg: Config, boxes: str | None = None) -> str:
    """'gt' or a detections file: the argument, else TEST.BOXES, else TEST.USE_GT_BBOX / TEST.COCO_BBOX_FILE."""
    if boxes:
        return boxes
    if cfg.TEST.BOXES:
        return cfg.TEST.BOXES
    if cfg.TEST.USE_GT_BBOX or not cfg.TEST.COCO_BBOX_FILE:
        return "gt"
    return cfg.TEST.COCO_BBOX_FILE


def load_records(cfg: Config, split: str, skeleton: Any, boxes: str = "gt") -> list:
    """PoseRecords of the train or test split; test boxes are GT ('gt') or a detections JSON."""
    from posekit.data import load_coco, load_coco_detections, load_mpii

    spec = model_spec(cfg)
    aspect = spec.input_size[0] / spec.input_size[1]
    paths = data_paths(cfg)
    ann = paths.train_ann if split == "train" else paths.test_ann
    images = paths.train_images if split == "train" else paths.test_images
    key = "DATASET.TRAIN_ANN" if split == "train" else "DATASET.TEST_ANN"
    if dataset_format(cfg) == "mpii":
        if boxes != "gt":
            raise ConfigError("MPII is evaluated on its annotated boxes; detection boxes are COCO-format only")
        records, _ = load_mpii(need_path(ann, key), images, skeleton=skeleton)
        return records
    if split == "test" and boxes != "gt":
        det = need_path(Path(boxes), "TEST.BOXES / --boxes")
        return load_coco_detections(det, need_path(ann, key), images, score_threshold=cfg.TEST.IMAGE_THRE,
                                    skeleton=skeleton, aspect_ratio=aspect)
    records, _ = load_coco(need_path(ann, key), images, skeleton=skeleton, aspect_ratio=aspect, train=True)
    return records


def make_test_dataset(cfg: Config, codec: Any, skeleton: Any, boxes: str = "gt") -> Any:
    """The TopDownDataset of the test split (no augmentation)."""
    from posekit.data import TopDownDataset

    records = load_records(cfg, "test", skeleton, boxes)
    if not records:
        raise DataError(f"no test boxes found ({boxes}) for {data_paths(cfg).test_ann}")
    # full-resolution decoding (no reduced JPEG decode): the pixels the official test and PoseEstimator crop from
    return TopDownDataset(records, codec, skeleton, augment=None, train=False, reduced_decoding=False)


def augment_config(cfg: Config) -> Any:
    """posekit.data.AugmentConfig from DATASET.SCALE_FACTOR / ROT_FACTOR / FLIP / PROB_HALF_BODY."""
    from posekit.data import AugmentConfig

    d = cfg.DATASET
    return AugmentConfig(scale_factor=d.SCALE_FACTOR, rotation_factor=d.ROT_FACTOR, flip=d.FLIP,
                         half_body_prob=d.PROB_HALF_BODY, num_joints_half_body=d.NUM_JOINTS_HALF_BODY)
