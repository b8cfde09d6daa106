"""The top-down heatmap task (SimpleBaseline, HRNet, LPN, MSPN, G-RMI, hourglass): see posekit.engine.tasks.

Supervision of multi-output networks: a list of outputs (stacked hourglass stacks) is supervised with the same
target per output (intermediate supervision, summed); a list of lists (MSPN: stages x units, coarse to fine) gets
one target per unit, drawn with the Gaussian of that unit's kernel size (LOSS.UNIT_KERNELS, MSPN's coarse-to-fine
supervision: 15, 11, 9, 7 from coarse to fine; kernel k -> sigma = 0.3 ((k - 1) / 2 - 1) + 0.8 as OpenCV's
GaussianBlur) and summed over stages and units.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from posekit.config import Config
from posekit.data.seeded import WrappedDataset
from posekit.engine.tasks.base import Batch, Built, Criterion, Task
from posekit.errors import ConfigError, DataError


def kernel_sigma(kernel: int) -> float:
    """The sigma OpenCV's GaussianBlur uses for a kernel size with sigma=0."""
    return 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8


class UnitTargets(WrappedDataset):
    """A TopDownDataset whose items also carry one target per unit codec (MSPN coarse-to-fine supervision)."""

    def __init__(self, dataset: Any, codecs: Sequence[Any]) -> None:
        super().__init__(dataset)
        self.codecs = list(codecs)

    def __getitem__(self, index: int) -> tuple:
        crop, target, weight, meta = self.dataset[index]
        joints, visible = meta["joints_crop"].astype(np.float64), meta["visible_crop"]
        units = [torch.from_numpy(np.ascontiguousarray(c.encode(joints, visible)["target"], dtype=np.float32))
                 for c in self.codecs]
        meta = dict(meta, unit_targets=torch.stack(units))
        return crop, target, weight, meta


def heatmap_accuracy(output: torch.Tensor, target: torch.Tensor, num_joints: int) -> float | None:
    """Official training accuracy (PCK of heatmap argmaxes) when the output holds one map per joint."""
    if output.shape[1] != num_joints or target.shape != output.shape:
        return None
    from posekit.evaluation.pck import accuracy

    _, avg, count, _ = accuracy(output.detach().float().cpu().numpy(), target.detach().float().cpu().numpy())
    return float(avg) if count > 0 else None


def heatmap_loss(criterion: nn.Module) -> Criterion:
    """criterion(output, target, weight) lifted to the engine contract, for one output, stacks or stages x units."""

    def loss(outputs: Any, targets: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        target, weight = targets["target"], targets["target_weight"]
        if isinstance(outputs, torch.Tensor):
            return criterion(outputs, target, weight), {}
        if isinstance(outputs, dict):
            from posekit.engine.predict import main_output

            return criterion(main_output(outputs), target, weight), {}
        if not isinstance(outputs, (list, tuple)) or not outputs:
            raise DataError(f"top-down loss: cannot supervise a {type(outputs).__name__} output")
        if isinstance(outputs[0], (list, tuple)):  # stages x units
            units = targets.get("unit_targets")
            n_units = len(outputs[0])
            if units is None or units.shape[1] != n_units:
                raise DataError(f"top-down loss: the network has {n_units} units per stage but the batch carries "
                                f"{0 if units is None else units.shape[1]} unit targets (LOSS.UNIT_KERNELS)")
            per_stage = [sum(criterion(o, units[:, u], weight) for u, o in enumerate(stage)) for stage in outputs]
            logs = {f"loss_stage{i}": float(v.detach()) for i, v in enumerate(per_stage)}
            return sum(per_stage), logs
        per_stack = [criterion(o, target, weight) for o in outputs]
        logs = {f"loss_stack{i}": float(v.detach()) for i, v in enumerate(per_stack)} if len(per_stack) > 1 else {}
        return sum(per_stack), logs

    return loss


def _multi_unit(model: nn.Module) -> int:
    """Units per stage when the network is supervised per unit (MSPN), else 0."""
    from posekit.models.mspn import MSPN

    return 4 if isinstance(model, MSPN) else 0


class TopDownTask(Task):
    """Crops of people -> heatmaps (or offsets / integral maps) -> codec decode -> COCO AP or MPII PCKh."""

    name = "topdown"
    onnx = True

    def build(self, cfg: Config) -> Built:
        from posekit.engine.spec import build_topdown

        return build_topdown(cfg)

    def infer(self, est: Any, images: Sequence[Any], boxes: Sequence | None, scores: Sequence | None) -> list[list]:
        """Crops of every box of every image in one stream of batches (posekit.runtime.topdown)."""
        from posekit.runtime.topdown import estimate_topdown

        return estimate_topdown(est, images, boxes, scores)

    def preflight(self, cfg: Config) -> None:
        from posekit.engine.datasets import data_paths, need_path

        t, p = cfg.TRAIN, data_paths(cfg)
        need_path(p.train_ann, "DATASET.TRAIN_ANN")
        need_path(p.train_images, "DATASET.TRAIN_IMAGES")
        if t.VAL_EVERY > 0 or t.VAL_EVERY_MINUTES > 0 or t.VAL_EVERY_ITERS > 0:
            need_path(p.test_ann, "DATASET.TEST_ANN (validation; TRAIN.VAL_EVERY=0 turns it off)")
            need_path(p.test_images, "DATASET.TEST_IMAGES (validation)")
            need_path(p.test_gt, "the validation ground truth (MPII: gt_<TEST_SET>.mat next to DATASET.TEST_ANN)")

    def train_dataset(self, cfg: Config, built: Built) -> Any:
        from posekit.data import TopDownDataset
        from posekit.engine.datasets import augment_config, load_records

        records = load_records(cfg, "train", built.skeleton)
        if not records:
            raise ConfigError(f"no training people found in {cfg.DATASET.TRAIN_ANN or cfg.DATASET.ROOT}")
        ds = TopDownDataset(records, built.codec, built.skeleton, augment=augment_config(cfg), train=True,
                            seed=cfg.TRAIN.SEED, joint_weights=cfg.LOSS.USE_DIFFERENT_JOINTS_WEIGHT,
                            cache_size=cfg.DATASET.IMAGE_CACHE)
        units = _multi_unit(built.model)
        if units:
            kernels = list(cfg.LOSS.UNIT_KERNELS)
            if len(kernels) != units:
                raise ConfigError(f"LOSS.UNIT_KERNELS in {cfg.source}: {len(kernels)} kernels for {units} units")
            from posekit import codecs

            c = built.codec
            unit_codecs = [codecs.build("msra", input_size=c.input_size, heatmap_size=c.heatmap_size,
                                        num_keypoints=c.num_keypoints, sigma=kernel_sigma(k)) for k in kernels]
            ds = UnitTargets(ds, unit_codecs)
        return ds

    def collate(self, items: Sequence[Any]) -> Batch:
        from posekit.engine.predict import collate

        crops, target, weight, meta = collate(items)
        targets = {"target": target, "target_weight": weight}
        if "unit_targets" in meta:
            targets["unit_targets"] = torch.stack(list(meta.pop("unit_targets")))
        return Batch(crops, targets, meta)

    def criterion(self, cfg: Config, built: Built) -> Criterion:
        from posekit.losses import build_loss, loss_name_for

        name = cfg.LOSS.NAME or loss_name_for(built.codec.name, cfg.LOSS.USE_OHKM)
        return heatmap_loss(build_loss(name, cfg.LOSS.USE_TARGET_WEIGHT, cfg.LOSS.TOPK,
                                       beta=float(getattr(built.codec, "beta", 1.0))))

    def step_logs(self, built: Built, outputs: Any, targets: dict[str, torch.Tensor]) -> dict[str, float | None]:
        from posekit.engine.predict import main_output

        return {"acc": heatmap_accuracy(main_output(outputs), targets["target"], built.codec.num_keypoints)}

    def debug_images(self, cfg: Config, built: Built, folder: Any, prefix: str, batch: Batch, outputs: Any) -> None:
        from posekit.engine.debug import save_debug_images
        from posekit.engine.predict import main_output

        save_debug_images(cfg, folder, prefix, batch.inputs, batch.targets["target"], main_output(outputs),
                          batch.meta, built.codec, built.skeleton)

    def evaluate(self, cfg: Config, model: nn.Module, built: Built, device: torch.device, split: str = "test",
                 boxes: str | None = None, flip: bool | None = None, progress: Any = None
                 ) -> tuple[dict[str, float], list[dict]]:
        from posekit.engine.datasets import make_test_dataset
        from posekit.engine.predict import predict, score

        ds = make_test_dataset(cfg, built.codec, built.skeleton, boxes or "gt")
        preds = predict(model, ds, built.codec, flip_test=cfg.TEST.FLIP_TEST if flip is None else flip,
                        flip_index=built.skeleton.flip_index, batch_size=cfg.TEST.BATCH_SIZE_PER_GPU,
                        workers=cfg.WORKERS, device=device, color_rgb=cfg.DATASET.COLOR_RGB, progress=progress)
        return score(cfg, preds, built.skeleton)

    def primary_metric(self, cfg: Config) -> str:
        from posekit.engine.predict import primary_metric

        return primary_metric(cfg)
