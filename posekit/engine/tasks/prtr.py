"""The PRTR task: top-down crops -> keypoint transformer -> Hungarian-matched decoding (see posekit.engine.tasks).

A config selects it through a zoo entry registered with task="prtr" (`MODEL.ZOO: prtr_res50_384x288`) or through
the official PRTR vocabulary (`MODEL.NAME: pose_transformer` + `MODEL.EXTRA.{NUM_LAYERS, HIDDEN_DIM, ...}`,
TARGET_TYPE coord). Training uses posekit.data.TopDownDataset with the coordinate codec (targets = crop coords /
input size, weights = visibility), the set criterion (posekit.losses.set_criterion), and two optimizer groups as
official: parameters whose name contains "backbone" at TRAIN.LR_BACKBONE (0 = TRAIN.LR), the rest at TRAIN.LR.
Evaluation runs the matched decoding with the official flip test (both passes decoded, the mirrored one with
x -> 1 - x and swapped pairs, keypoints and scores averaged) and scores with the top-down path's `score` (official
rescoring + OKS-NMS + COCO AP, or MPII PCKh).

Colour order: DATASET.COLOR_RGB false (the official ResNet PRTR configs) feeds the network what the official loader
does - BGR pixels normalised with the RGB-ordered ImageNet mean/std - in training and in evaluation.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from posekit.config import Config
from posekit.data.seeded import WrappedDataset
from posekit.engine.tasks.base import Built, Criterion
from posekit.engine.tasks.topdown import TopDownTask
from posekit.errors import ConfigError, DataError


def resolved_config(cfg: Config) -> Config:
    """The config with MODEL.CODEC 'coord' filled in (official PRTR yamls say TARGET_TYPE coord, no CODEC)."""
    if cfg.MODEL.CODEC:
        if cfg.MODEL.CODEC != "coord":
            raise ConfigError(f"MODEL.CODEC in {cfg.source}: PRTR decodes matched queries with the 'coord' codec, "
                              f"got {cfg.MODEL.CODEC!r}")
        return cfg
    return replace(cfg, MODEL=replace(cfg.MODEL, CODEC="coord"))


def build_prtr(cfg: Config) -> Built:
    """Network (fresh init, eval mode), coordinate codec and skeleton of a PRTR config."""
    from posekit import models, skeletons
    from posekit.engine.spec import model_spec
    from posekit.models.prtr import prtr_from_official

    cfg = resolved_config(cfg)
    spec = model_spec(cfg)
    spec = replace(spec, codec_cfg={**{k: v for k, v in spec.codec_cfg.items() if k != "shift_heatmap"},
                                    "include_bg_logit": bool(cfg.TEST.INCLUDE_BG_LOGIT)}, task="prtr")
    from posekit.modelspec import build_codec

    codec = build_codec(spec)
    if spec.zoo:
        e = models.entry(spec.name)
        if e.task != "prtr":
            raise ConfigError(f"MODEL.ZOO {spec.name!r} in {cfg.source} is a {e.task!r} model, not a PRTR one")
        same = len(skeletons.get(e.skeleton).keypoints) == spec.num_joints
        model = models.build(spec.name) if same else models.build(spec.name, num_joints=spec.num_joints)
    else:
        m = cfg.MODEL
        model = prtr_from_official({"NAME": m.NAME, "NUM_JOINTS": spec.num_joints, "EXTRA": m.EXTRA}).eval()
    return Built(model=model, codec=codec, skeleton=skeletons.get(spec.skeleton), spec=spec)


class OfficialBGR(WrappedDataset):
    """Items of a TopDownDataset with the crop re-expressed as the official COLOR_RGB=False input."""

    def __getitem__(self, index: int) -> tuple:
        from posekit.engine.predict import rgb_to_official_bgr

        crop, target, weight, meta = self.dataset[index]
        return rgb_to_official_bgr(crop[None])[0], target, weight, meta


def set_loss(criterion: nn.Module) -> Criterion:
    """SetCriterion lifted to the engine contract: (outputs, targets) -> (weighted total, logged scalar terms)."""
    from posekit.losses.set_criterion import criterion_logs

    def loss(outputs: Any, targets: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        if not isinstance(outputs, dict):
            raise DataError(f"PRTR loss: expected the PoseTransformer output dict, got {type(outputs).__name__}")
        terms = criterion(outputs, targets["target"], targets["target_weight"])
        return terms["loss"], criterion_logs(terms)

    return loss


class PRTRTask(TopDownTask):
    """PRTR two-stage: person crops -> keypoint transformer -> matched queries -> COCO AP or MPII PCKh.

    The top-down task with its own network, loss and parameter groups; batches, scoring and the metric are the
    top-down ones (engine.predict runs it: the coord codec stacks both flip passes and averages after matching).
    """

    name = "prtr"

    def build(self, cfg: Config) -> Built:
        return build_prtr(cfg)

    def step_logs(self, built: Built, outputs: Any, targets: dict[str, torch.Tensor]) -> dict[str, float | None]:
        return {}  # no heatmaps: the criterion logs class_error and the loss terms

    def debug_images(self, cfg: Config, built: Built, folder: Any, prefix: str, batch: Any, outputs: Any) -> None:
        return None  # the heatmap debug pictures do not apply to coordinate outputs

    def train_dataset(self, cfg: Config, built: Built) -> Any:
        from posekit.data import TopDownDataset
        from posekit.engine.datasets import augment_config, load_records

        records = load_records(resolved_config(cfg), "train", built.skeleton)
        if not records:
            raise ConfigError(f"no training people found in {cfg.DATASET.TRAIN_ANN or cfg.DATASET.ROOT}")
        ds = TopDownDataset(records, built.codec, built.skeleton, augment=augment_config(cfg), train=True,
                            seed=cfg.TRAIN.SEED, joint_weights=cfg.LOSS.USE_DIFFERENT_JOINTS_WEIGHT)
        return ds if cfg.DATASET.COLOR_RGB else OfficialBGR(ds)

    def criterion(self, cfg: Config, built: Built) -> Criterion:
        from posekit.losses.set_criterion import SetCriterion

        p = getattr(built.model, "cfg", None)
        eos = float(cfg.MODEL.EXTRA.get("EOS_COEF", getattr(p, "eos_coef", 0.1)))
        kpt = float(cfg.MODEL.EXTRA.get("KPT_LOSS_COEF", getattr(p, "kpt_loss_coef", 5.0)))
        return set_loss(SetCriterion(built.codec.num_keypoints, eos_coef=eos, kpt_loss_coef=kpt))

    def param_groups(self, cfg: Config, model: nn.Module) -> list[dict[str, Any]]:
        from posekit.models.prtr import trainable_groups

        head, backbone = trainable_groups(model.module if hasattr(model, "module") else model)
        groups: list[dict[str, Any]] = [{"params": head}]
        if backbone:
            groups.append({"params": backbone, "lr": cfg.TRAIN.LR_BACKBONE or cfg.TRAIN.LR})
        return groups

    def evaluate(self, cfg: Config, model: nn.Module, built: Built, device: torch.device, split: str = "test",
                 boxes: str | None = None, flip: bool | None = None, progress: Any = None
                 ) -> tuple[dict[str, float], list[dict]]:
        return super().evaluate(resolved_config(cfg), model, built, device, split, boxes, flip, progress)
