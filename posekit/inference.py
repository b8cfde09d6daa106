"""Pose estimation for users: `PoseEstimator` (images, folders, videos), `Pose`, COCO results, streamed JSON.

The model is described by a `posekit.modelspec.ModelSpec`: the one stored in a posekit weights file or training
checkpoint (input and heatmap size, codec and options, skeleton, colour order) when there is one, else the zoo
entry named, else a spec given directly (`posekit infer --config` builds one from a training config). Naming a
zoo model whose spec disagrees with the one stored in the weights is a ConfigError.

A model's task decides its inference path (`register_task_path`); posekit ships "topdown", the official HRNet /
SimpleBaseline test: box xywh -> center/size (aspect ratio of the network input, padding 1.25) -> affine crop
(the codec's affine kind) -> ImageNet normalisation (RGB; BGR-trained networks get the official BGR input) ->
network with the mirrored crops as the second half of the same batch -> codec decode (crop input px) -> inverse
affine -> image px -> official rescoring (box score x mean keypoint score above 0.2). All crops of several images
(or video frames) are batched together (`batch_size` crops per network batch, doubled by the flip test); the shared
path is `posekit.runtime` (also used by `posekit.engine.predict`). Bottom-up tasks register a path that ignores
boxes (`needs_boxes=False`).

Backends (`backend="auto" | "torch" | "folded" | "onnxruntime" | "onnxruntime-int8"`) are in `posekit.backends`;
"auto" uses ONNX Runtime (exported once, cached next to the weights) when it is installed and the model exports,
else BN-folded eager, else eager. Without a weights file "auto" does not export (nothing to key a cache on): it uses
folded eager. "onnxruntime-int8" (opt-in, never chosen by "auto") is calibrated on `calibration=` (crops or image
folders, see `PoseEstimator.calibrate`) or, by default, on the first network batch the estimator runs (the first
person crops of the images being processed, with their mirrors); the quantised model is cached by calibration data.

Deliberate differences from the official test: one network batch holds original and mirrored crops (same numbers
up to float summation order); image reading goes through `posekit.data.images` (truncated / 0-byte files are
errors, handled per `on_error`), which is the one exception to "inference imports models, codecs, geometry only".
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np
import torch

from posekit import geometry, skeletons
from posekit.errors import CheckpointError, ConfigError, DataError
from posekit.evaluation.results import rescore as official_rescore
from posekit.runtime import RESCORE_THRESHOLD, Pose, Result, rescore
from posekit.runtime.topdown import IMAGENET_MEAN, IMAGENET_STD, crop_boxes, predict_crops
from posekit.skeletons import Skeleton
from posekit.vis import draw_pose

INT8 = "onnxruntime-int8"  # posekit.backends.INT8 (kept here so importing this module does not import backends)

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "IMAGE_EXTS", "VIDEO_EXTS", "Pose", "PoseEstimator", "Result",
           "ResultsWriter", "collect_inputs", "draw_poses", "process_video", "read_detections", "register_task_path",
           "rescore", "resolve_spec", "zoo_spec"]

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}

BoxesFn = Callable[[int, np.ndarray], "np.ndarray | tuple[np.ndarray, np.ndarray] | None"]
BoxesArg = Any  # None | array [M,4|5] | Mapping[path str / name / stem / id, boxes] | callable(path, image, frame)


def _as_rgb(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Check an RGB uint8 image HxWx3 (HxW grey is expanded); raise DataError otherwise.

    An array's channel order cannot be seen from its values: posekit reads files as RGB (`posekit.data.images`);
    an OpenCV `cv2.imread` array is BGR and must be converted (`image[:, :, ::-1]`) by the caller.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise DataError(f"{what}: expected an HxWx3 uint8 RGB array, got shape {image.shape} dtype {image.dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise DataError(f"{what}: empty image of shape {image.shape}")
    return image


def _split_boxes(boxes: np.ndarray | Sequence | None, scores: np.ndarray | Sequence | None, image: np.ndarray,
                 what: str) -> tuple[np.ndarray, np.ndarray]:
    """Boxes xywh [M,4] (or [M,5] with scores) and scores [M]; None = the whole image with score 1."""
    if boxes is None:
        h, w = image.shape[:2]
        return np.array([[0.0, 0.0, w, h]]), np.ones(1)
    try:
        b = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{what}: boxes must be numbers xywh [M,4] or [M,5] with scores") from None
    if b.size == 0:
        return np.zeros((0, 4)), np.zeros(0)
    if b.ndim == 1:
        b = b[None]
    if b.ndim != 2 or b.shape[1] not in (4, 5):
        raise DataError(f"{what}: boxes must be xywh [M,4] or [M,5] with scores, got shape {b.shape}")
    if scores is None:
        s = b[:, 4].copy() if b.shape[1] == 5 else np.ones(len(b))
    else:
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(s) != len(b):
            raise DataError(f"{what}: {len(s)} box scores for {len(b)} boxes")
    b = b[:, :4]
    bad = np.flatnonzero(~np.isfinite(b).all(axis=1) | (b[:, 2] <= 0) | (b[:, 3] <= 0))
    if bad.size:
        raise DataError(f"{what}: box {int(bad[0])} = {b[bad[0]].tolist()} is not a finite xywh box with w, h > 0")
    if not np.isfinite(s).all():
        raise DataError(f"{what}: box scores must be finite numbers")
    h, w = image.shape[:2]
    outside = np.flatnonzero((b[:, 0] >= w) | (b[:, 1] >= h) | (b[:, 0] + b[:, 2] <= 0) | (b[:, 1] + b[:, 3] <= 0))
    if outside.size:
        raise DataError(f"{what}: box {int(outside[0])} = {b[outside[0]].tolist()} lies entirely outside the "
                        f"{w}x{h} image (detections of another image?)")
    return b, s


# ---------------------------------------------------------------------------------------------------------------
# model spec


def zoo_spec(name: str) -> Any:
    """The ModelSpec of a zoo entry as registered (input/heatmap size, codec and options, skeleton, task)."""
    from posekit import models
    from posekit.modelspec import ModelSpec

    e = models.entry(name)
    return ModelSpec(name=name, zoo=True, input_size=tuple(e.input_size), heatmap_size=tuple(e.heatmap_size),
                     num_joints=skeletons.get(e.skeleton).num_keypoints, codec=e.codec, codec_cfg=dict(e.codec_cfg),
                     skeleton=e.skeleton, task=e.task)


def _looks_like_file(text: str | Path) -> bool:
    p = Path(text)
    return p.is_file() or p.suffix.lower() in (".pth", ".pt", ".ckpt", ".bin", ".tar")


def resolve_spec(name_or_checkpoint: Any = None, weights: str | Path | None = None,
                 spec: Any = None) -> tuple[Any, str | Path | None, str]:
    """(ModelSpec, weights path, where the spec came from) for a zoo name / checkpoint path / spec + weights.

    The spec stored in the weights wins; a zoo name or spec given as well must agree with it (ConfigError else).
    """
    from posekit.modelspec import ModelSpec, check_compatible, read_spec

    name = None
    if isinstance(name_or_checkpoint, ModelSpec):
        spec = name_or_checkpoint if spec is None else spec
    elif name_or_checkpoint is not None:
        if _looks_like_file(name_or_checkpoint) and weights is None:
            weights = name_or_checkpoint
        else:
            name = str(name_or_checkpoint)
    stored = read_spec(weights) if weights is not None else None
    asked, asked_from = None, ""
    if spec is not None:
        asked, asked_from = spec, "the given spec/config"
    elif name is not None:
        asked, asked_from = zoo_spec(name), f"zoo model {name!r}"
    if stored is not None:
        if asked is not None:
            check_compatible(stored, asked, f"{weights} (vs {asked_from})")
        return stored, weights, f"spec stored in {weights}"
    if asked is None:
        raise ConfigError(f"{weights}: no model spec inside (an official checkpoint?); name the zoo model "
                          "(--model NAME) or the training config (--config YAML) it belongs to")
    return asked, weights, asked_from


def build_model(spec: Any) -> torch.nn.Module:
    """A fresh network for a spec: the zoo builder, or (non-zoo) the engine's config builder."""
    from posekit.modelspec import build_network

    if spec.zoo:
        return build_network(spec)
    if not spec.config_yaml:
        raise CheckpointError(f"model {spec.name!r} is not a zoo model and its spec carries no config to rebuild it")
    from posekit.config import config_from_yaml
    from posekit.engine.tasks import task_for  # non-zoo networks are defined by a training config and its task

    cfg = config_from_yaml(spec.config_yaml, source=f"spec of {spec.name}")
    return task_for(cfg).build(cfg).model


def load_network(name_or_checkpoint: Any = None, weights: str | Path | None = None,
                 spec: Any = None) -> tuple[Any, torch.nn.Module, Any, str]:
    """(spec, eval-mode network with the weights loaded, load report or None, where the spec came from)."""
    spec, weights, source = resolve_spec(name_or_checkpoint, weights, spec)
    model = build_model(spec)
    report = None
    if weights is not None:
        from posekit.models.weights import load_checkpoint

        report = load_checkpoint(model, weights, strict=True)
    return spec, model.eval(), report, source


# ---------------------------------------------------------------------------------------------------------------
# task paths

TaskPath = Callable[["PoseEstimator", Sequence[np.ndarray], Sequence | None, Sequence | None], list[list[Pose]]]
_TASK_PATHS: dict[str, tuple[TaskPath, bool]] = {}


def register_task_path(task: str, fn: TaskPath, needs_boxes: bool = True) -> None:
    """Register the inference path of a task: fn(estimator, images, boxes, scores) -> poses per image."""
    _TASK_PATHS[task] = (fn, needs_boxes)


def _topdown(est: PoseEstimator, images: Sequence[np.ndarray], boxes: Sequence | None,
             scores: Sequence | None) -> list[list[Pose]]:
    """The top-down path: crops of every box of every image in one stream of batches."""
    all_crops, all_c, all_s, all_b, all_bs, owner = [], [], [], [], [], []
    for i, image in enumerate(images):
        what = f"image {i}"
        image = _as_rgb(image, what)
        b, bs = _split_boxes(None if boxes is None else boxes[i], None if scores is None else scores[i], image, what)
        crops, centers, sizes = est.crop(image, b)
        all_crops.append(crops)
        all_c.append(centers)
        all_s.append(sizes)
        all_b.append(b)
        all_bs.append(bs)
        owner += [i] * len(b)
    results: list[list[Pose]] = [[] for _ in images]
    if not owner:
        return results
    kp, sc = est.predict_crops(np.concatenate(all_crops))
    img_kp = geometry.transform_preds(kp, np.concatenate(all_c), np.concatenate(all_s), est.input_size,
                                      kind=est.codec.affine)
    box_arr, box_scores = np.concatenate(all_b), np.concatenate(all_bs)
    keypoints = np.concatenate([img_kp, sc[..., None]], axis=2).astype(np.float32)
    scores = official_rescore(keypoints, box_scores, RESCORE_THRESHOLD)
    for j, i in enumerate(owner):
        results[i].append(Pose(keypoints=keypoints[j], box=box_arr[j].astype(np.float32), score=float(scores[j]),
                               box_score=float(box_scores[j])))
    return results


def _bottomup(est: PoseEstimator, images: Sequence[np.ndarray], boxes: Sequence | None,
              scores: Sequence | None) -> list[list[Pose]]:
    """Associative Embedding: every person of each whole image (boxes are not used), posekit.bottomup."""
    from posekit.runtime.bottomup import estimate_bottomup

    fidx = est.skeleton.flip_index if est.flip_test else None
    return [estimate_bottomup(est.model, est.codec, _as_rgb(image, f"image {i}"), flip_index=fidx,
                              flip=est.flip_test, device=est.device) for i, image in enumerate(images)]


def _body3d(est: PoseEstimator, images: Sequence[np.ndarray], boxes: Sequence | None,
            scores: Sequence | None) -> list[list[Pose]]:
    """3DMPPE: per box, image joints as keypoints (score 1) and camera-space joints (mm) in Pose.extra.

    Camera: focal length and principal point from `est.camera` (f, c) when set, else the synthetic-data default
    focal length and the image centre; root depth from the box size (RootNet-style prior), see body3d_task.
    """
    from posekit.runtime.body3d import predict_poses_3d

    f, c = est.camera if est.camera is not None else (None, None)
    out: list[list[Pose]] = []
    for i, image in enumerate(images):
        image = _as_rgb(image, f"image {i}")
        b, bs = _split_boxes(None if boxes is None else boxes[i], None if scores is None else scores[i], image,
                             f"image {i}")
        pairs = est.skeleton.flip_pairs if est.flip_test else None
        poses3d = predict_poses_3d(est.model, image, b, est.codec, flip_pairs=pairs, f=f, c=c, device=est.device)
        score_of = {tuple(np.round(box, 6)): float(s) for box, s in zip(b, bs)}
        people = []
        for p3 in poses3d:
            kp = np.concatenate([p3.joints_img, np.ones((len(p3.joints_img), 1), np.float32)], axis=1)
            s = score_of.get(tuple(np.round(np.asarray(p3.box, np.float64), 6)), 1.0)
            people.append(Pose(keypoints=kp.astype(np.float32), box=np.asarray(p3.box, np.float32), score=s,
                               box_score=s, extra={"joints_cam": p3.joints_cam, "root_depth": p3.root_depth,
                                                   "root_from": p3.root_from}))
        out.append(people)
    return out


register_task_path("topdown", _topdown, needs_boxes=True)
register_task_path("prtr", _topdown, needs_boxes=True)  # PRTR: the same crops; its codec stacks the flip passes
register_task_path("bottomup", _bottomup, needs_boxes=False)
register_task_path("body3d", _body3d, needs_boxes=True)


# ---------------------------------------------------------------------------------------------------------------
# estimator


class PoseEstimator:
    """A network + its codec and skeleton, mapping RGB images (and person boxes) to `Pose`s."""

    def __init__(self, name_or_checkpoint: Any = None, weights: str | Path | None = None,
                 device: str | torch.device = "cpu", flip_test: bool = True, codec: Any = None, batch_size: int = 32,
                 padding: float = 1.25, model: torch.nn.Module | None = None, backend: str = "auto",
                 spec: Any = None, cache_dir: str | Path | None = None, images_per_batch: int = 8,
                 camera: tuple[Sequence[float], Sequence[float]] | None = None, calibration: Any = None,
                 calibration_size: int = 64) -> None:
        """Resolve the model spec (weights file > zoo name / spec), build and load the network, pick the backend.

        `model` replaces the built network (tests, custom networks); `codec` (a name or an object) replaces the
        spec's codec; `batch_size` person crops go through the network at once (twice that with flip_test);
        `camera` = ((fx, fy), (cx, cy)) in px for 3-D models (default: the synthetic focal length, image centre).
        `calibration` (backend "onnxruntime-int8" only): what `calibrate` takes (uint8 crops, normalised crops,
        image paths / folders); None calibrates on the first network batch this estimator runs, its first
        `calibration_size` network inputs (crops and their mirrors).
        """
        from posekit import codecs
        from posekit.modelspec import build_codec
        from posekit.runtime.backends import create

        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.spec, self.weights, self.spec_source = resolve_spec(name_or_checkpoint, weights, spec)
        self.name = self.spec.name
        self.task = self.spec.task
        if self.task not in _TASK_PATHS:
            raise ConfigError(f"{self.name}: task {self.task!r} has no inference path yet (known: "
                              f"{', '.join(sorted(_TASK_PATHS))}); register one with register_task_path")
        self._path, self.needs_boxes = _TASK_PATHS[self.task]
        self.input_size = tuple(int(v) for v in self.spec.input_size)
        self.heatmap_size = tuple(int(v) for v in self.spec.heatmap_size)
        self.skeleton: Skeleton = skeletons.get(self.spec.skeleton)
        self.color_rgb = bool(self.spec.color_rgb)
        if codec is None:
            self.codec = build_codec(self.spec)
        elif isinstance(codec, str):
            self.codec = codecs.build(codec, input_size=self.input_size, heatmap_size=self.heatmap_size,
                                      num_keypoints=self.skeleton.num_keypoints)
        else:
            self.codec = codec
        self.device = torch.device(device)
        self.camera = camera
        self.load_report = None
        if self.task == "body3d" and model is None and self.weights is not None:
            from posekit.engine.tasks.body3d import load_body3d  # rebuilt from the config inside the weights

            built = load_body3d(self.weights)
            self.model, self.codec = built.model, built.codec
        else:
            self.model = model if model is not None else build_model(self.spec)
            if self.weights is not None and model is None:
                from posekit.models.weights import load_checkpoint

                self.load_report = load_checkpoint(self.model, self.weights, strict=True)
        self.model.to(self.device).eval()
        if self.task not in ("topdown", "prtr"):  # whole-image / 3-D paths call the network directly
            if backend not in ("auto", "torch"):
                raise ConfigError(f"backend {backend!r}: the {self.task} path runs on the torch backend only")
            backend = "torch"
        if calibration is not None and backend != INT8:
            raise ConfigError(f"calibration data is for the {INT8!r} backend, not {backend!r}")
        self.backend = create(backend, self.model, self.input_size, name=self.name, weights=self.weights,
                              device=self.device, cache_dir=cache_dir, export=self.weights is not None,
                              calibration_size=calibration_size)
        self.flip_test = flip_test
        self.batch_size = int(batch_size)
        self.images_per_batch = max(int(images_per_batch), 1)
        self.padding = float(padding)
        self.calibration_size = max(int(calibration_size), 1)
        if calibration is not None:
            self.calibrate(calibration)

    # --- steps -------------------------------------------------------------------------------------------------
    def crop(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Crops [M,h,w,3] uint8 of boxes xywh [M,4], with their centers [M,2] and sizes [M,2] (px)."""
        w, h = self.input_size
        centers = np.zeros((len(boxes), 2))
        sizes = np.zeros((len(boxes), 2))
        for i, box in enumerate(boxes):
            centers[i], sizes[i] = geometry.box_xywh_to_center_size(box, aspect_ratio=w / h, padding=self.padding)
        return crop_boxes(image, centers, sizes, self.input_size, self.codec.affine), centers, sizes

    @property
    def flip_index(self) -> np.ndarray | None:
        """The skeleton's flip permutation when flip testing, else None."""
        return np.asarray(self.skeleton.flip_index) if self.flip_test else None

    def forward(self, x: torch.Tensor) -> np.ndarray:
        """Network outputs [M,C,h,w] of normalised crops, averaged with the flipped-back mirror when flip_test."""
        from posekit.runtime.topdown import forward_flip

        return forward_flip(self.backend, x.to(self.device), self.codec, self.flip_index,
                            self.color_rgb).float().cpu().numpy()

    def predict_crops(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints [M,K,2] in crop input px and scores [M,K] of uint8 crops [M,h,w,3], in batches."""
        return predict_crops(self.backend, crops, self.codec, self.flip_index, self.batch_size, self.color_rgb,
                             self.device)

    def network_inputs(self, crops: np.ndarray | torch.Tensor) -> torch.Tensor:
        """What the backend runs for crops (uint8 RGB [M,h,w,3] or normalised RGB [M,3,h,w]): normalised, in the
        network's colour order, with the mirrored crops appended when flip testing."""
        from posekit.runtime.topdown import rgb_to_official_bgr, to_input

        x = crops.float().cpu() if isinstance(crops, torch.Tensor) else (
            to_input(crops) if np.asarray(crops).dtype == np.uint8 else torch.from_numpy(np.asarray(crops,
                                                                                                   np.float32)))
        if x.ndim != 4 or x.shape[1] != 3:
            raise DataError(f"crops: expected uint8 [M,h,w,3] or normalised float [M,3,h,w], got {tuple(x.shape)}")
        x = x if self.color_rgb else rgb_to_official_bgr(x)
        return torch.cat([x, torch.flip(x, dims=(3,))]) if self.flip_test else x

    def calibration_crops(self, inputs: str | Path | Iterable[str | Path], boxes: BoxesArg = None,
                          limit: int | None = None) -> np.ndarray:
        """uint8 person crops [M,h,w,3] of images / folders (videos are skipped), `boxes` as in `images()` (None:
        each whole image is one crop), at most `limit` (default: calibration_size, halved when flip testing)."""
        from posekit.data.images import read_image

        limit = limit or max(self.calibration_size // (2 if self.flip_test else 1), 1)
        items = inputs if isinstance(inputs, Iterable) and not isinstance(inputs, (str, Path)) else [inputs]
        out: list[np.ndarray] = []
        for path in collect_inputs(list(items)):
            if path.suffix.lower() in VIDEO_EXTS:
                continue
            image = read_image(path)
            found = _boxes_for(boxes, path, image, None)
            b, _ = _split_boxes(*(found if isinstance(found, tuple) else (found, None)), image, str(path))
            out.append(self.crop(image, b)[0])
            if sum(len(c) for c in out) >= limit:
                break
        if not out or not sum(len(c) for c in out):
            raise DataError(f"calibration: no person crops found in {', '.join(str(i) for i in items)}")
        return np.concatenate(out)[:limit]

    def calibrate(self, data: Any, boxes: BoxesArg = None) -> None:
        """Calibrate (quantise, or take from the cache) the int8 backend on `data`: uint8 RGB crops [M,h,w,3],
        normalised RGB crops [M,3,h,w] (tensor or array), or image paths / folders (`calibration_crops`)."""
        from posekit.runtime.backends import calibration_batches

        if self.backend.name != INT8:
            raise ConfigError(f"calibrate: the backend is {self.backend.name!r}, not {INT8!r}")
        if isinstance(data, (str, Path)) or (isinstance(data, (list, tuple)) and data
                                             and isinstance(data[0], (str, Path))):
            data = self.calibration_crops(data, boxes)
        x = self.network_inputs(data)
        self.backend.calibrate(calibration_batches(x, self.input_size, batch=self.batch_size))

    # --- public API ----------------------------------------------------------------------------------------------
    def __call__(self, image_rgb: np.ndarray, boxes: np.ndarray | Sequence | None = None,
                 scores: np.ndarray | Sequence | None = None) -> list[Pose]:
        """Poses of the people in boxes xywh [M,4] (+ scores [M]) of an RGB image; boxes None = the whole image."""
        return self.estimate_batch([image_rgb], None if boxes is None else [boxes],
                                   None if scores is None else [scores])[0]

    def estimate_batch(self, images: Sequence[np.ndarray], boxes: Sequence | None = None,
                       scores: Sequence | None = None) -> list[list[Pose]]:
        """Poses for several RGB images; boxes[i] / scores[i] belong to images[i] (None = whole images)."""
        if boxes is not None and len(boxes) != len(images):
            raise DataError(f"estimate_batch: {len(boxes)} box lists for {len(images)} images")
        if scores is not None and len(scores) != len(images):
            raise DataError(f"estimate_batch: {len(scores)} score lists for {len(images)} images")
        return self._path(self, images, boxes, scores)

    def images(self, inputs: str | Path | Iterable[str | Path], boxes: BoxesArg = None, on_error: str = "skip",
               frames: bool = True) -> Iterator[Result]:
        """Results (path, image, poses) of images, folders (their images and videos, sorted) and videos, in order.

        `boxes`: None (the whole image / frame), one array [M,4|5] for every input, a mapping from a file's path,
        name, stem or numeric stem to its boxes (an image without an entry has no boxes, a video's frames then use
        the whole frame), or a callable(path, image, frame_index_or_None) -> boxes (or
        (boxes, scores), or None for the whole image). Unreadable images are yielded with `error` set and no
        image when on_error="skip", raised as DataError when "stop". Several images (or frames) share network
        batches; results come out in input order.
        """
        if on_error not in ("skip", "stop"):
            raise ConfigError(f"on_error must be 'skip' or 'stop', got {on_error!r}")
        items = inputs if isinstance(inputs, Iterable) and not isinstance(inputs, (str, Path)) else [inputs]
        files = collect_inputs(list(items))
        counter = [0]
        pending: list[tuple[Path, np.ndarray, Any, int | None]] = []

        def flush() -> Iterator[Result]:
            if not pending:
                return
            bxs = [p[2][0] if isinstance(p[2], tuple) else p[2] for p in pending]
            scs = [p[2][1] if isinstance(p[2], tuple) else None for p in pending]
            out = self.estimate_batch([p[1] for p in pending], bxs, scs)
            for (path, image, _, frame), poses in zip(pending, out):
                yield Result(path, image, poses, frame=frame, index=counter[0])
                counter[0] += 1
            pending.clear()

        def full() -> bool:
            n = sum(_count_boxes(p[2][0] if isinstance(p[2], tuple) else p[2]) for p in pending)
            return len(pending) >= self.images_per_batch or n >= self.batch_size

        for path in files:
            if path.suffix.lower() in VIDEO_EXTS:
                yield from flush()
                if not frames:
                    continue
                try:
                    for f, rgb in enumerate(read_video(path)):
                        pending.append((path, rgb, _boxes_for(boxes, path, rgb, f), f))
                        if full():
                            yield from flush()
                except DataError as e:
                    yield from flush()
                    if on_error == "stop":
                        raise
                    yield Result(path, None, [], frame=None, error=str(e), index=counter[0])
                    counter[0] += 1
                yield from flush()
                continue
            try:
                from posekit.data.images import read_image

                rgb = read_image(path)
            except DataError as e:
                if on_error == "stop":
                    yield from flush()
                    raise
                yield from flush()
                yield Result(path, None, [], error=str(e), index=counter[0])
                counter[0] += 1
                continue
            try:
                found = _boxes_for(boxes, path, rgb, None)
                _split_boxes(*(found if isinstance(found, tuple) else (found, None)), rgb, str(path))
            except DataError as e:  # bad boxes for this image: the same policy as an unreadable image
                if on_error == "stop":
                    yield from flush()
                    raise
                yield from flush()
                yield Result(path, None, [], error=str(e), index=counter[0])
                counter[0] += 1
                continue
            pending.append((path, rgb, found, None))
            if full():
                yield from flush()
        yield from flush()


def _count_boxes(boxes: Any) -> int:
    """Number of boxes in an images() boxes value (None: the whole image, one box)."""
    if boxes is None:
        return 1
    b = np.asarray(boxes)
    return 0 if b.size == 0 else (1 if b.ndim == 1 else int(b.shape[0]))


def _boxes_for(boxes: BoxesArg, path: Path, image: np.ndarray, frame: int | None) -> Any:
    """The boxes argument of `images()` resolved for one image / frame."""
    if boxes is None:
        return None
    if callable(boxes):
        return boxes(path, image, frame)
    if isinstance(boxes, Mapping):
        keys: list[Any] = [str(path), path.name, path.stem]
        if re.fullmatch(r"\d+", path.stem):
            keys.append(int(path.stem))
        for k in keys:
            if k in boxes:
                return boxes[k]
        return None if frame is not None else np.zeros((0, 4))  # videos without an entry: the whole frame
    return boxes


# ---------------------------------------------------------------------------------------------------------------
# inputs, detections, results


def collect_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Images and videos named, or found (sorted, not recursively) in the given folders, in order."""
    out = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += [f for f in sorted(p.iterdir()) if f.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS and f.is_file()]
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_EXTS | VIDEO_EXTS:
                raise DataError(f"{p}: not an image ({', '.join(sorted(IMAGE_EXTS))}) "
                                f"or a video ({', '.join(sorted(VIDEO_EXTS))})")
            out.append(p)
        else:
            raise DataError(f"{p}: no such file or folder")
    return out


def read_video(path: str | Path) -> Iterator[np.ndarray]:
    """RGB frames of a video; DataError when it cannot be opened or has no decodable frame."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"{path}: OpenCV cannot open this video")
    n = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            n += 1
            yield np.ascontiguousarray(frame[:, :, ::-1])
    finally:
        cap.release()
    if n == 0:
        raise DataError(f"{path}: no frame could be decoded")


def video_info(path: str | Path) -> tuple[float, int]:
    """(fps, frame count) of a video (25 fps and 0 frames when the container does not say)."""
    cap = cv2.VideoCapture(str(path))
    try:
        return float(cap.get(cv2.CAP_PROP_FPS) or 25.0), max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
    finally:
        cap.release()


def read_detections(path: str | Path, min_score: float = 0.0, category_id: int = 1) -> dict[int, np.ndarray]:
    """COCO detection results -> {image_id: [M,5] xywh + score} of one category with score >= min_score.

    Entries with w or h <= 0 are dropped (as the official loader); non-numeric or non-finite values are errors.
    """
    try:
        dets = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read a JSON list of detections ({e})") from None
    if not isinstance(dets, list):
        raise DataError(f"{path}: expected a JSON list of {{image_id, bbox, score}}, got {type(dets).__name__}")
    out: dict[int, list] = defaultdict(list)
    for i, d in enumerate(dets):
        if not isinstance(d, dict) or "image_id" not in d or not isinstance(d.get("bbox"), list) \
                or len(d["bbox"]) != 4:
            raise DataError(f"{path}: entry {i} lacks image_id or a 4-number bbox")
        if d.get("category_id", category_id) != category_id:
            continue
        try:
            score = float(d.get("score", 1.0))
            x, y, w, h = (float(v) for v in d["bbox"])
            image_id = int(d["image_id"])
        except (TypeError, ValueError):
            raise DataError(f"{path}: entry {i}: image_id, bbox and score must be numbers, got image_id="
                            f"{d['image_id']!r} bbox={d['bbox']!r} score={d.get('score')!r}") from None
        if not all(math.isfinite(v) for v in (score, x, y, w, h)):
            raise DataError(f"{path}: entry {i}: bbox {d['bbox']} / score {d.get('score')} must be finite")
        if score < min_score or w <= 0 or h <= 0:
            continue
        out[image_id].append([x, y, w, h, score])
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


class ResultsWriter:
    """A COCO results JSON list written as results come: each entry flushed; `close()` ends the list.

    Used as a context manager, the file is a valid JSON list of what was written even when the loop inside is
    interrupted (Ctrl-C) or fails.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f: TextIO | None = open(self.path, "w")  # noqa: SIM115 - closed in close()
        self._f.write("[")
        self._f.flush()
        self.count = 0

    def write(self, entries: Iterable[dict[str, Any]]) -> None:
        """Append entries and flush."""
        assert self._f is not None, "ResultsWriter is closed"
        for e in entries:
            self._f.write(("," if self.count else "") + "\n" + json.dumps(e))
            self.count += 1
        self._f.flush()

    def close(self) -> None:
        """End the JSON list and close the file (idempotent)."""
        if self._f is not None:
            self._f.write("\n]\n")
            self._f.close()
            self._f = None

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def draw_poses(image_rgb: np.ndarray, poses: Iterable[Pose], skeleton: Skeleton, threshold: float = 0.3,
               show_scores: bool = False, show_boxes: bool = True) -> np.ndarray:
    """An RGB copy of the image with every pose's skeleton (and box, and scores if asked) drawn."""
    out = image_rgb
    for pose in poses:
        label = f"{pose.score:.2f}" if show_scores else None
        out = draw_pose(out, pose.keypoints, skeleton, threshold=threshold, show_scores=show_scores,
                        box=pose.box if show_boxes else None, label=label)
    return out if out is not image_rgb else image_rgb.copy()


def video_writer(path: str | Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    """An OpenCV VideoWriter for `path` (.avi: MJPG, else mp4v); raise DataError when it cannot be opened."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = "MJPG" if path.suffix.lower() == ".avi" else "mp4v"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), float(fps), (int(size[0]), int(size[1])))
    if not writer.isOpened():
        raise DataError(f"{path}: OpenCV cannot write a {fourcc} video here")
    return writer


def process_video(path: str | Path, estimator: PoseEstimator, boxes_fn: BoxesFn | None = None,
                  out_path: str | Path | None = None, progress: Callable[[int, int], None] | None = None,
                  threshold: float = 0.3, show_scores: bool = False) -> list[list[Pose]]:
    """Poses of every frame of a video; boxes_fn(frame_index, frame_rgb) gives boxes (None = whole frame).

    Frames share network batches (estimator.images_per_batch at a time). With out_path, the frames with skeletons
    drawn are written there; progress(done, total) is called per frame (total: the container's count, 0 if unknown).
    """
    path = Path(path)
    fps, total = video_info(path)
    writer = None
    frames: list[list[Pose]] = []
    fn = None if boxes_fn is None else (lambda p, image, f: boxes_fn(f, image))
    try:
        for r in estimator.images([path], boxes=fn, on_error="stop"):
            frames.append(r.poses)
            if out_path is not None:
                if writer is None:
                    writer = video_writer(out_path, fps, (r.image.shape[1], r.image.shape[0]))
                drawn = draw_poses(r.image, r.poses, estimator.skeleton, threshold=threshold, show_scores=show_scores)
                writer.write(np.ascontiguousarray(drawn[:, :, ::-1]))
            if progress is not None:
                progress(len(frames), total)
    finally:
        if writer is not None:
            writer.release()
    return frames
