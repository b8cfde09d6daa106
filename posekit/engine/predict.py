"""Dataset inference (flip test, decode, back to image pixels) and scoring (COCO AP or MPII PCKh).

`predict(model, dataset, codec)` runs a network over a TopDownDataset (crops of GT or detected boxes) through
posekit.runtime, the one top-down inference path PoseEstimator uses too (flip test as the second half of the same
batch), and returns image-pixel keypoints; `score(...)` turns them into a COCO results list (official rescoring +
OKS-NMS) and metrics;
`evaluate(cfg, weights, boxes)` is the whole `posekit test`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from posekit import geometry
from posekit.config import Config, dataset_format
from posekit.engine.build import model_spec
from posekit.errors import ConfigError, DataError
from posekit.runtime import forward_flip, main_output, rgb_to_official_bgr, torch_runner

__all__ = ["Predictions", "calibration_inputs", "collate", "data_paths", "evaluate", "load_records", "load_weights",
           "main_output", "make_test_dataset", "predict", "primary_metric", "resolve_boxes",
           "rgb_to_official_bgr", "score"]

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
    was_training = model.training
    model.eval()
    run = torch_runner(model)
    bar = progress(total=len(dataset), desc="predict", unit="box") if progress else None
    kpts, ids, box_scores, centers, sizes, ann_ids = [], [], [], [], [], []
    try:
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
    finally:
        if bar is not None:
            bar.close()
        model.train(was_training)
    return Predictions(keypoints=np.concatenate(kpts).astype(np.float32), image_ids=np.concatenate(ids),
                       box_scores=np.concatenate(box_scores).astype(np.float64),
                       centers=np.concatenate(centers), sizes=np.concatenate(sizes), ann_ids=np.concatenate(ann_ids))


# ----------------------------------------------------------------------------------------------------------------
# Config-driven data and scoring


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


def make_test_dataset(cfg: Config, codec: Any, skeleton: Any, boxes: str = "gt") -> Any:
    """The TopDownDataset of the test split (no augmentation)."""
    from posekit.data import TopDownDataset

    records = load_records(cfg, "test", skeleton, boxes)
    if not records:
        raise DataError(f"no test boxes found ({boxes}) for {data_paths(cfg).test_ann}")
    # full-resolution decoding (no reduced JPEG decode): the pixels the official test and PoseEstimator crop from
    return TopDownDataset(records, codec, skeleton, augment=None, train=False, reduced_decoding=False)


def load_weights(model: nn.Module, weights: str | os.PathLike, cfg: Config) -> None:
    """Strictly load official or posekit weights; a posekit file's stored spec must match the config's."""
    from posekit.models.weights import load_checkpoint
    from posekit.modelspec import check_compatible, read_spec

    stored = read_spec(weights)
    if stored is not None:
        check_compatible(stored, model_spec(cfg), str(weights))
    load_checkpoint(model, weights, strict=True)


def calibration_inputs(cfg: Config, built: Any, count: int = 64, flip: bool = True) -> torch.Tensor:
    """Network inputs [count,3,h,w] for int8 calibration: crops of the *training* split (never the test images),
    evenly spaced over its boxes, in the network's colour order, half of them mirrored when flip testing."""
    from posekit.data import TopDownDataset
    from posekit.runtime import rgb_to_official_bgr

    records = load_records(cfg, "train", built.skeleton)
    if not records:
        raise DataError(f"int8 calibration: no training boxes in {data_paths(cfg).train_ann}")
    ds = TopDownDataset(records, built.codec, built.skeleton, augment=None, train=False, reduced_decoding=False)
    n = max(count // 2, 1) if flip else max(count, 1)
    idx = np.unique(np.linspace(0, len(ds) - 1, min(n, len(ds))).round().astype(int))
    x = torch.stack([ds[int(i)][0] for i in idx]).float()
    x = x if cfg.DATASET.COLOR_RGB else rgb_to_official_bgr(x)
    return torch.cat([x, torch.flip(x, dims=(3,))]) if flip else x


def evaluate(cfg: Config, weights: str | os.PathLike | None, boxes: str | None = None, flip: bool | None = None,
             device: str | None = None, progress: Callable[..., Any] | None = None, backend: str = "torch",
             calibration_size: int = 64) -> tuple[dict[str, float], list[dict]]:
    """`posekit test`: build the config's network, load `weights` (TEST.MODEL_FILE if None), score the test split.

    `backend` (posekit.backends.KINDS; top-down tasks only for all but "torch") runs the network; the ONNX files
    are cached next to the weights; "onnxruntime-int8" is calibrated on `calibration_size` training-split inputs.
    """
    from posekit.backends import INT8, KINDS, BackendModule, create
    from posekit.engine.tasks import task_for

    if backend not in KINDS:
        raise ConfigError(f"backend {backend!r}: expected one of {', '.join(KINDS)}")
    task = task_for(cfg)
    if backend != "torch" and task.name not in ("topdown", "prtr"):
        raise ConfigError(f"backend {backend!r}: the {task.name} task is evaluated on the torch backend only")
    built = task.build(cfg)
    weights = weights or cfg.TEST.MODEL_FILE
    if not weights:
        raise ConfigError("no weights: pass --weights or set TEST.MODEL_FILE")
    load_weights(built.model, weights, cfg)
    on_gpu = torch.cuda.is_available() and backend in ("torch", "folded")
    dev = torch.device(device or ("cuda" if on_gpu else "cpu"))
    built.model.to(dev).eval()
    model: nn.Module = built.model
    if backend != "torch":
        spec = model_spec(cfg)
        use_flip = cfg.TEST.FLIP_TEST if flip is None else flip
        calibration = calibration_inputs(cfg, built, calibration_size, use_flip) if backend == INT8 else None
        model = BackendModule(create(backend, built.model, spec.input_size, name=spec.name, weights=weights,
                                     device=dev, calibration=calibration))
    return task.evaluate(cfg, model, built, dev, split="test", boxes=resolve_boxes(cfg, boxes), flip=flip,
                         progress=progress)
