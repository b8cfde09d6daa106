"""What differs between pose systems inside the one training engine: a `Task` per system.

The loop in posekit.engine.train (`fit` over `train_one_epoch`) knows nothing about heatmaps, matchers or tags. It
asks the config's task for a network + codec + skeleton (`build`), a training dataset, how to collate a batch, a
criterion, and how to score a model on the held-out split. One task per system:

    topdown   heatmap / offset / integral top-down models (SimpleBaseline, HRNet, LPN, MSPN, G-RMI, hourglass)
    prtr      PRTR keypoint transformer on top-down crops (coordinate codec, Hungarian set criterion)
    bottomup  Associative Embedding (whole images, heatmaps + tags, grouping)
    body3d    3DMPPE PoseNet (3-D heatmaps + soft-argmax, MPJPE)

A config selects its task through its zoo entry (`ModelEntry.task`) or its official MODEL.NAME
(`OFFICIAL_TASKS`); `posekit.engine.tasks.task_for(cfg)` returns it from the one table in
posekit/engine/tasks/__init__.py.

Batches: `collate(items)` returns a `Batch` of (inputs float tensor [N,3,H,W] in RGB, targets: dict of tensors,
meta: dict). The criterion is called as `criterion(outputs, batch.targets)` and returns (loss tensor, logs dict of
floats) - logs are written to log.jsonl / TensorBoard next to the loss (e.g. PRTR's class_error, AE's push/pull).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from posekit.errors import CheckpointError, ConfigError


@dataclass
class Built:
    """What a config turns into: a freshly initialised network (eval mode), its codec and skeleton."""

    model: nn.Module
    codec: Any
    skeleton: Any
    spec: Any = None  # posekit.config.ModelSpec (sizes, codec name/options, skeleton name)


@dataclass
class Batch:
    """One collated training / test batch."""

    inputs: torch.Tensor
    targets: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device) -> Batch:
        """The batch with inputs and targets on `device`."""
        return Batch(self.inputs.to(device, non_blocking=True),
                     {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                      for k, v in self.targets.items()}, self.meta)


Criterion = Callable[[Any, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, float]]]


class Task:
    """Base class: one subclass per pose system; see the module docstring for the contract."""

    name: str = ""
    needs_boxes: bool = True  # inference takes person boxes (top-down crops); False: whole images (bottom-up)
    onnx: bool = False  # the network runs on every backend (ONNX Runtime, folded, int8) in test and infer
    draw_threshold: float = 0.0  # drawings skip people scoring below this (keypoints.json keeps them all)
    uses_camera: bool = False  # inference takes camera intrinsics (focal length, principal point)

    def build(self, cfg: Any) -> Built:
        """config -> network (fresh init, eval mode), codec, skeleton."""
        raise NotImplementedError

    def preflight(self, cfg: Any) -> None:
        """Check every input a training run will read (incl. validation files) before any work; raise if missing."""

    def train_dataset(self, cfg: Any, built: Built) -> Any:
        """The training dataset; items go through `collate`; it has set_epoch(epoch) for reproducible augmentation."""
        raise NotImplementedError

    def collate(self, items: Sequence[Any]) -> Batch:
        """Items of `train_dataset` -> one Batch."""
        raise NotImplementedError

    def criterion(self, cfg: Any, built: Built) -> Criterion:
        """The training loss: criterion(outputs, targets) -> (loss, logs)."""
        raise NotImplementedError

    def param_groups(self, cfg: Any, model: nn.Module) -> list[dict[str, Any]]:
        """Optimizer parameter groups (default: all trainable parameters at TRAIN.LR)."""
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def evaluate(self, cfg: Any, model: nn.Module, built: Built, device: torch.device, split: str = "test",
                 boxes: str | None = None, flip: bool | None = None, progress: Any = None
                 ) -> tuple[dict[str, float], list[dict]]:
        """Score `model` on the held-out split: (metrics, results written as JSON).

        boxes: 'gt' (None) or a detections file, for tasks that crop people (whole-image tasks ignore it); flip:
        None = TEST.FLIP_TEST; progress: a tqdm-like factory.
        """
        raise NotImplementedError

    def step_logs(self, built: Built, outputs: Any, targets: dict[str, torch.Tensor]) -> dict[str, float | None]:
        """Extra training-step logs computed when a step is logged (e.g. the official heatmap accuracy 'acc')."""
        return {}

    def debug_images(self, cfg: Any, built: Built, folder: Any, prefix: str, batch: Batch, outputs: Any) -> None:
        """DEBUG.DEBUG pictures of a training batch (default: none)."""

    def primary_metric(self, cfg: Any) -> str:
        """The metric name that selects model_best.pth (e.g. 'AP', 'PCKh', 'MPJPE')."""
        return "AP"

    def higher_is_better(self, cfg: Any) -> bool:
        """False for error metrics such as MPJPE."""
        return True

    # --- inference (posekit.inference.PoseEstimator, `posekit infer`, `posekit export`) ---------------------------
    def load(self, spec: Any, weights: str | Path | None) -> tuple[nn.Module, Any, Any]:
        """(network of a model spec in eval mode with `weights` loaded when given, its codec or None for the spec's
        codec, the load report or None): a zoo builder, or the training config the spec carries."""
        from posekit.models.weights import load_checkpoint
        from posekit.modelspec import build_network

        if spec.zoo:
            model = build_network(spec)
        elif spec.config_yaml:
            from posekit.config import config_from_yaml

            model = self.build(config_from_yaml(spec.config_yaml, source=f"spec of {spec.name}")).model
        else:
            raise CheckpointError(f"model {spec.name!r} is not a zoo model and its spec carries no config to "
                                  "rebuild it")
        report = load_checkpoint(model, weights, strict=True) if weights is not None else None
        return model.eval(), None, report

    def infer(self, est: Any, images: Sequence[Any], boxes: Sequence | None, scores: Sequence | None) -> list[list]:
        """The runtime inference path: poses (posekit.runtime.Pose) per RGB image for a PoseEstimator `est`;
        boxes[i] / scores[i] belong to images[i] (None: whole images)."""
        raise ConfigError(f"task {self.name!r} has no inference path")


# Official MODEL.NAME -> task (zoo entries say their task themselves).
OFFICIAL_TASKS: dict[str, str] = {"pose_hrnet": "topdown", "pose_resnet": "topdown", "lpn": "topdown",
                                  "pose_transformer": "prtr"}


