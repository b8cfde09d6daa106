"""Dataset inference (flip test, decode, back to image pixels) and scoring (COCO AP or MPII PCKh).

`predict(model, dataset, codec)` runs a network over a TopDownDataset (crops of GT or detected boxes) through
posekit.runtime, the one top-down inference path PoseEstimator uses too (flip test as the second half of the same
batch), and returns image-pixel keypoints; `score(...)` turns them into a COCO results list (official rescoring +
OKS-NMS) and metrics;
`evaluate(cfg, weights, boxes)` is the whole `posekit test`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from posekit import geometry
from posekit.config import Config, dataset_format
from posekit.engine.datasets import data_paths, need_path
from posekit.errors import DataError
from posekit.runtime.topdown import forward_flip, main_output, rgb_to_official_bgr, torch_runner

__all__ = ["Predictions", "collate", "main_output", "predict", "primary_metric", "rgb_to_official_bgr", "score"]

@dataclass
class Predictions:
    """Predictions of a top-down dataset, one row per box, in dataset order."""

    keypoints: np.ndarray  # [N, K, 3] float32: x, y (image px), score
    image_ids: np.ndarray  # [N] int64
    box_scores: np.ndarray  # [N] float64
    centers: np.ndarray  # [N, 2] float64 px
    sizes: np.ndarray  # [N, 2] float64 px
    ann_ids: np.ndarray  # [N] int64

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])


def collate(batch: Sequence[tuple]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Stack crops/targets/weights; meta becomes a dict of stacked numpy arrays (or lists)."""
    crops = torch.stack([b[0] for b in batch])
    targets = torch.stack([b[1] for b in batch])
    weights = torch.stack([b[2] for b in batch])
    meta: dict[str, Any] = {}
    for key in batch[0][3]:
        values = [b[3][key] for b in batch]
        if isinstance(values[0], (np.ndarray, int, float, bool, np.generic)):
            try:
                meta[key] = np.stack([np.asarray(v) for v in values])
                continue
            except ValueError:
                pass
        meta[key] = values
    return crops, targets, weights, meta


@contextmanager
def evaluating(model: nn.Module, total: int, progress: Callable[..., Any] | None = None) -> Iterator[Any]:
    """`model` in eval mode (its mode restored after) with a progress bar over `total` boxes (None without
    `progress`, a tqdm-like factory): the frame of every prediction loop over a test set."""
    was_training = model.training
    model.eval()
    bar = progress(total=total, desc="predict", unit="box") if progress else None
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()
        model.train(was_training)


def predict(model: nn.Module, dataset: Any, codec: Any, flip_test: bool = True,
            flip_index: Sequence[int] | np.ndarray | None = None, batch_size: int = 32, workers: int = 0,
            device: str | torch.device | None = None, color_rgb: bool = True,
            progress: Callable[..., Any] | None = None) -> Predictions:
    """Run `model` over a TopDownDataset (train=False) and map decoded keypoints back to image pixels."""
    if len(dataset) == 0:
        raise DataError("predict: the dataset has no boxes")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if flip_test and flip_index is None:
        flip_index = dataset.skeleton.flip_index
    fidx = np.asarray(flip_index) if flip_test else None
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate,
                        pin_memory=device.type == "cuda")
    run = torch_runner(model)
    kpts, ids, box_scores, centers, sizes, ann_ids = [], [], [], [], [], []
    with evaluating(model, len(dataset), progress) as bar:
        for crops, _, _, meta in loader:
            out = forward_flip(run, crops.to(device, non_blocking=True), codec, fidx, color_rgb)
            coords, scores = codec.decode(out)
            image_xy = geometry.transform_preds(coords, meta["center"], meta["size"], codec.input_size,
                                                kind=codec.affine)
            kpts.append(np.concatenate([image_xy, np.asarray(scores, np.float64)[..., None]], axis=2))
            ids.append(meta["image_id"])
            box_scores.append(meta["score"])
            centers.append(meta["center"])
            sizes.append(meta["size"])
            ann_ids.append(meta["ann_id"])
            if bar is not None:
                bar.update(len(crops))
    return Predictions(keypoints=np.concatenate(kpts).astype(np.float32), image_ids=np.concatenate(ids),
                       box_scores=np.concatenate(box_scores).astype(np.float64),
                       centers=np.concatenate(centers), sizes=np.concatenate(sizes), ann_ids=np.concatenate(ann_ids))


# ----------------------------------------------------------------------------------------------------------------
# Config-driven data and scoring


def score(cfg: Config, preds: Predictions, skeleton: Any) -> tuple[dict[str, float], list[dict]]:
    """(metrics, COCO results list): official rescoring + OKS-NMS and pycocotools AP, or MPII PCKh."""
    if dataset_format(cfg) == "mpii":
        from posekit.evaluation.pck import mpii_pckh

        gt = need_path(data_paths(cfg).test_gt, "DATASET.TEST_ANN (gt_<TEST_SET>.mat next to it)")
        metrics = mpii_pckh(preds.keypoints[:, :, :2], gt, zero_based=True)
        results = [{"image_id": int(i), "category_id": 1, "keypoints": [float(v) for v in k.reshape(-1)],
                    "score": float(s)} for i, k, s in zip(preds.image_ids, preds.keypoints, preds.box_scores)]
        return metrics, results
    from posekit.evaluation.coco import coco_keypoints
    from posekit.evaluation.results import make_results

    t = cfg.TEST
    results = make_results(preds.keypoints, preds.box_scores, preds.image_ids, centers=preds.centers,
                           sizes=preds.sizes, in_vis_thre=t.IN_VIS_THRE, oks_thre=t.OKS_THRE, image_thre=0.0,
                           nms="soft" if t.SOFT_NMS else "oks", sigmas=skeleton.sigmas)
    metrics = coco_keypoints(data_paths(cfg).test_gt, results, sigmas=skeleton)
    return metrics, results


def primary_metric(cfg: Config) -> str:
    """The metric best-model tracking uses: COCO 'AP' or MPII PCKh 'Mean'."""
    return "Mean" if dataset_format(cfg) == "mpii" else "AP"


