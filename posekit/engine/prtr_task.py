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

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from posekit import geometry
from posekit.config import Config
from posekit.engine.tasks import Batch, Built, Criterion, Task, register_task
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
    from posekit.engine.build import model_spec
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


class OfficialBGR(Dataset):
    """Items of a TopDownDataset with the crop re-expressed as the official COLOR_RGB=False input."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation of `epoch`."""
        self.dataset.set_epoch(epoch)

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


def predict_prtr(model: nn.Module, dataset: Any, codec: Any, flip_index: Sequence[int] | np.ndarray | None = None,
                 batch_size: int = 32, workers: int = 0, device: str | torch.device | None = None,
                 color_rgb: bool = True, progress: Callable[..., Any] | None = None) -> Any:
    """Run a PRTR network over a TopDownDataset (train=False): matched decoding (+ flip test) -> image px.

    The network runs through posekit.runtime.forward_flip (mirrored crops in the same batch; with the coord codec
    both passes are stacked and decode averages them after matching, as official)."""
    from posekit.engine.predict import Predictions, collate
    from posekit.runtime import forward_flip, torch_runner

    if len(dataset) == 0:
        raise DataError("predict: the dataset has no boxes")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate,
                        pin_memory=device.type == "cuda")
    was_training = model.training
    model.eval()
    run = torch_runner(model)
    bar = progress(total=len(dataset), desc="predict", unit="box") if progress else None
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("kpts", "ids", "scores", "centers", "sizes", "anns")}
    try:
        for crops, _, _, meta in loader:
            out = forward_flip(run, crops.to(device, non_blocking=True), codec, flip_index, color_rgb)
            coords, scores = codec.decode(out)
            image_xy = geometry.transform_preds(coords, meta["center"], meta["size"], codec.input_size,
                                                kind=codec.affine)
            rows["kpts"].append(np.concatenate([image_xy, np.asarray(scores, np.float64)[..., None]], axis=2))
            rows["ids"].append(meta["image_id"])
            rows["scores"].append(meta["score"])
            rows["centers"].append(meta["center"])
            rows["sizes"].append(meta["size"])
            rows["anns"].append(meta["ann_id"])
            if bar is not None:
                bar.update(len(crops))
    finally:
        if bar is not None:
            bar.close()
        model.train(was_training)
    return Predictions(keypoints=np.concatenate(rows["kpts"]).astype(np.float32), image_ids=np.concatenate(rows["ids"]),
                       box_scores=np.concatenate(rows["scores"]).astype(np.float64),
                       centers=np.concatenate(rows["centers"]), sizes=np.concatenate(rows["sizes"]),
                       ann_ids=np.concatenate(rows["anns"]))


class PRTRTask(Task):
    """PRTR two-stage: person crops -> keypoint transformer -> matched queries -> COCO AP or MPII PCKh."""

    name = "prtr"

    def build(self, cfg: Config) -> Built:
        return build_prtr(cfg)

    def train_dataset(self, cfg: Config, built: Built) -> Any:
        from posekit.data import TopDownDataset
        from posekit.engine.predict import load_records
        from posekit.engine.train import augment_config

        records = load_records(resolved_config(cfg), "train", built.skeleton)
        if not records:
            raise ConfigError(f"no training people found in {cfg.DATASET.TRAIN_ANN or cfg.DATASET.ROOT}")
        ds = TopDownDataset(records, built.codec, built.skeleton, augment=augment_config(cfg), train=True,
                            seed=cfg.TRAIN.SEED, joint_weights=cfg.LOSS.USE_DIFFERENT_JOINTS_WEIGHT)
        return ds if cfg.DATASET.COLOR_RGB else OfficialBGR(ds)

    def collate(self, items: Sequence[Any]) -> Batch:
        from posekit.engine.predict import collate

        crops, target, weight, meta = collate(items)
        return Batch(crops, {"target": target, "target_weight": weight}, meta)

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
        from posekit.engine.predict import make_test_dataset, resolve_boxes, score

        rcfg = resolved_config(cfg)
        ds = make_test_dataset(rcfg, built.codec, built.skeleton, resolve_boxes(rcfg, boxes))
        flip_test = cfg.TEST.FLIP_TEST if flip is None else flip
        preds = predict_prtr(model, ds, built.codec, built.skeleton.flip_index if flip_test else None,
                             batch_size=cfg.TEST.BATCH_SIZE_PER_GPU, workers=cfg.WORKERS, device=device,
                             color_rgb=cfg.DATASET.COLOR_RGB, progress=progress)
        return score(rcfg, preds, built.skeleton)

    def primary_metric(self, cfg: Config) -> str:
        from posekit.engine.predict import primary_metric

        return primary_metric(cfg)


register_task(PRTRTask())
