"""The bottom-up task (Associative Embedding): whole images -> heatmaps + tags -> grouping -> COCO AP without boxes.

A config selects it through a zoo entry registered with task="bottomup" (`MODEL.ZOO: ae_hourglass_512`, or the
CPU-sized `ae_hourglass_small_128`). Data: any COCO-format keypoint file (DATASET.TRAIN_ANN / TEST_ANN and
*_IMAGES, or the official layout under DATASET.ROOT); augmentation from DATASET.SCALE_FACTOR (side x U(1-sf,
1+sf), official 0.25), DATASET.ROT_FACTOR (U(-r, r) degrees, official 30), DATASET.FLIP, official colour jitter.
Loss: `posekit.losses.AELoss` (LOSS.AE_PUSH_WEIGHT x push + LOSS.AE_PULL_WEIGHT x pull + LOSS.AE_DETECTION_WEIGHT x
detection on every stack; official 1e-3 / 1e-3 / 1). The network input follows the
codec's `normalize` ("unit": RGB / 255 as the official checkpoints; "imagenet").

evaluate: every image of the test split through `posekit.runtime.bottomup.estimate_bottomup` (the codec's test scales,
single scale [1] by default, official multi-scale = [2, 1, 0.5]; mirrored input when TEST.FLIP_TEST), official
COCO result rules, scored by `posekit.evaluation.coco_keypoints` against the whole split - no person boxes anywhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from posekit.config import Config
from posekit.engine.tasks.base import Batch, Built, Criterion, Task
from posekit.errors import ConfigError, DataError


def augment_from_config(cfg: Config) -> Any:
    """BottomUpAugment of DATASET.SCALE_FACTOR / ROT_FACTOR / FLIP (translation and colour: official)."""
    from posekit.data.bottomup import BottomUpAugment

    d = cfg.DATASET
    return BottomUpAugment(scale_factor=d.SCALE_FACTOR, rotation=d.ROT_FACTOR, flip=d.FLIP)


def evaluate_bottomup(model: nn.Module, codec: Any, skeleton: Any, ann_file: str | Path, image_root: str | Path,
                      device: torch.device | str = "cpu", flip: bool = True, scales: Sequence[float] | None = None,
                      progress: Callable[..., Any] | None = None) -> tuple[dict[str, float], list[dict]]:
    """COCO AP of a bottom-up model on every image of a COCO-format split: (metrics, COCO results)."""
    from posekit.data.coco import read_json
    from posekit.data.images import read_image
    from posekit.evaluation import coco_keypoints
    from posekit.runtime.bottomup import estimate_bottomup, network_fn, people_to_coco

    data = read_json(ann_file)
    images = data.get("images") or []
    if not images:
        raise DataError(f"{ann_file}: no images to evaluate")
    was_training = model.training
    model.eval()
    net = network_fn(model, device, codec.normalize)
    results: list[dict] = []
    it = progress(images, desc="bottom-up test") if progress is not None else images
    try:
        for img in it:
            rgb = read_image(Path(image_root) / img["file_name"])
            poses = estimate_bottomup(net, codec, rgb, flip_index=skeleton.flip_index, scales=scales, flip=flip)
            results += people_to_coco(poses, img["id"])
    finally:
        model.train(was_training)
    return coco_keypoints(ann_file, results, sigmas=skeleton), results


class BottomUpTask(Task):
    """Whole images -> AE heatmaps + tags -> HeatmapParser grouping -> COCO AP (no boxes)."""

    name = "bottomup"
    needs_boxes = False
    draw_threshold = 0.2  # the grouping also returns low-scoring fragments: drawings skip them

    def build(self, cfg: Config) -> Built:
        from posekit import skeletons
        from posekit.codecs.associative_embedding import joint_order_for
        from posekit.engine.spec import model_spec
        from posekit.modelspec import build_codec, build_network

        spec = model_spec(cfg)
        if spec.codec != "ae":
            raise ConfigError(f"{cfg.source}: the bottom-up task needs codec 'ae', got {spec.codec!r} (MODEL.CODEC)")
        skeleton = skeletons.get(spec.skeleton)
        codec_cfg = dict(spec.codec_cfg)
        codec_cfg.setdefault("joint_order", list(joint_order_for(skeleton.keypoints)))
        spec = dataclasses.replace(spec, codec_cfg=codec_cfg)
        codec = build_codec(spec)
        model = build_network(spec, out_channels=codec.out_channels).eval()
        return Built(model=model, codec=codec, skeleton=skeleton, spec=spec)

    def preflight(self, cfg: Config) -> None:
        from posekit.engine.datasets import data_paths, need_path

        t, p = cfg.TRAIN, data_paths(cfg)
        need_path(p.train_ann, "DATASET.TRAIN_ANN")
        need_path(p.train_images, "DATASET.TRAIN_IMAGES")
        if t.VAL_EVERY > 0 or getattr(t, "VAL_EVERY_MINUTES", 0) > 0 or getattr(t, "VAL_EVERY_ITERS", 0) > 0:
            need_path(p.test_ann, "DATASET.TEST_ANN (validation; TRAIN.VAL_EVERY=0 turns it off)")
            need_path(p.test_images, "DATASET.TEST_IMAGES (validation)")

    def train_dataset(self, cfg: Config, built: Built) -> Any:
        from posekit.data.bottomup import BottomUpDataset, load_bottomup_records
        from posekit.engine.datasets import data_paths

        p = data_paths(cfg)
        records, _ = load_bottomup_records(p.train_ann, p.train_images, skeleton=built.skeleton)
        if not records:
            raise ConfigError(f"no training image with labelled people in {p.train_ann}")
        return BottomUpDataset(records, built.codec, built.skeleton, augment=augment_from_config(cfg), train=True,
                               seed=cfg.TRAIN.SEED, cache_size=cfg.DATASET.IMAGE_CACHE)

    def collate(self, items: Sequence[Any]) -> Batch:
        from posekit.data.bottomup import collate_bottomup

        inputs, targets, meta = collate_bottomup(items)
        return Batch(inputs, targets, meta)

    def criterion(self, cfg: Config, built: Built) -> Criterion:
        from posekit.losses import AELoss

        w = cfg.LOSS
        return AELoss(built.codec.num_keypoints, built.codec.tag_dim, push_weight=w.AE_PUSH_WEIGHT,
                      pull_weight=w.AE_PULL_WEIGHT, detection_weight=w.AE_DETECTION_WEIGHT)

    def evaluate(self, cfg: Config, model: nn.Module, built: Built, device: torch.device, split: str = "test",
                 boxes: str | None = None, flip: bool | None = None, progress: Any = None,
                 scales: Sequence[float] | None = None) -> tuple[dict[str, float], list[dict]]:
        """Every whole image of the split (`boxes` is not used: the network finds the people)."""
        from posekit.engine.datasets import data_paths, need_path

        p = data_paths(cfg)
        ann, images = (p.train_ann, p.train_images) if split == "train" else (p.test_ann, p.test_images)
        need_path(ann, "DATASET.TEST_ANN")
        return evaluate_bottomup(model, built.codec, built.skeleton, ann, images, device=device,
                                 flip=cfg.TEST.FLIP_TEST if flip is None else flip, scales=scales, progress=progress)

    def infer(self, est: Any, images: Sequence[Any], boxes: Sequence | None, scores: Sequence | None) -> list[list]:
        """Every person of each whole image (posekit.runtime.bottomup; boxes are not used)."""
        from posekit.runtime.bottomup import estimate_images

        return estimate_images(est, images, boxes, scores)
