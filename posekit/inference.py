"""Pose estimation for users: `PoseEstimator` (images, folders, videos), `Pose`, COCO results, streamed JSON.

The model is described by a `posekit.modelspec.ModelSpec`: the one stored in a posekit weights file or training
checkpoint (input and heatmap size, codec and options, skeleton, colour order) when there is one, else the zoo
entry named, else a spec given directly (`posekit infer --config` builds one from a training config). Naming a
zoo model whose spec disagrees with the one stored in the weights is a ConfigError.

A model's task (posekit.engine.tasks, the one task table) loads its network and runs its inference path
(`Task.load`, `Task.infer`, over posekit.runtime); the top-down path is the official HRNet /
SimpleBaseline test: box xywh -> center/size (aspect ratio of the network input, padding 1.25) -> affine crop
(the codec's affine kind) -> ImageNet normalisation (RGB; BGR-trained networks get the official BGR input) ->
network with the mirrored crops as the second half of the same batch -> codec decode (crop input px) -> inverse
affine -> image px -> official rescoring (box score x mean keypoint score above 0.2). All crops of several images
(or video frames) are batched together (`batch_size` crops per network batch, doubled by the flip test); the shared
path is `posekit.runtime` (also used by `posekit.engine.predict`). Bottom-up tasks ignore boxes
(`needs_boxes=False`). Files, folders, videos and detections files are read by `posekit.runtime.sources`.

Backends (`backend="auto" | "torch" | "folded" | "onnxruntime" | "onnxruntime-int8"`) are in
`posekit.runtime.backends`;
"auto" uses ONNX Runtime (exported once, cached in $XDG_CACHE_HOME/posekit/onnx or `cache_dir`) when it is
installed and the model exports, else BN-folded eager, else eager. Without a weights file "auto" does not export
(nothing to key a cache on): it uses folded eager. "onnxruntime-int8" (opt-in, never chosen by "auto") is
calibrated on `calibration=` (crops or image
folders, see `PoseEstimator.calibrate`) or, by default, on the first network batch the estimator runs (the first
person crops of the images being processed, with their mirrors); the quantised model is cached by calibration data.

Deliberate differences from the official test: one network batch holds original and mirrored crops (same numbers
up to float summation order); image reading goes through `posekit.data.images` (truncated / 0-byte files are
errors, handled per `on_error`), which is the one exception to "inference imports models, codecs, geometry only".
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from posekit import geometry, skeletons
from posekit.errors import ConfigError, DataError, PosekitError
from posekit.runtime import Pose, Result, rescore, split_boxes
from posekit.runtime.sources import (
    IMAGE_EXTS,
    VIDEO_EXTS,
    BoxesArg,
    boxes_for,
    collect_inputs,
    count_boxes,
    display_name,
    iter_video,
    read_detections,
    video_info,
)
from posekit.runtime.topdown import IMAGENET_MEAN, IMAGENET_STD, crop_boxes, predict_crops
from posekit.skeletons import Skeleton
from posekit.vis import draw_pose

INT8 = "onnxruntime-int8"  # posekit.runtime.backends.INT8 (kept here so importing this module does not import backends)

__all__ = ["collect_inputs", "draw_poses", "EstimatorOptions", "IMAGE_EXTS", "IMAGENET_MEAN", "IMAGENET_STD",
           "infer_to_folder", "InferJob", "InferReport", "Pose", "PoseEstimator", "process_video", "read_detections",
           "rescore", "resolve_spec", "Result", "ResultsWriter", "track_to_folder", "TrackJob", "TrackReport",
           "VIDEO_EXTS", "zoo_spec"]


BoxesFn = Callable[[int, np.ndarray], "np.ndarray | tuple[np.ndarray, np.ndarray] | None"]


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


def task_of(spec: Any) -> Any:
    """The task (posekit.engine.tasks) of a model spec: how its network is loaded and how it runs."""
    from posekit.engine.tasks import get_task

    return get_task(spec.task)


def build_model(spec: Any) -> torch.nn.Module:
    """A fresh network for a spec: the zoo builder, or (non-zoo) its task's builder over the config it carries."""
    return task_of(spec).load(spec, None)[0]


def load_network(name_or_checkpoint: Any = None, weights: str | Path | None = None,
                 spec: Any = None) -> tuple[Any, torch.nn.Module, Any, str]:
    """(spec, eval-mode network with the weights loaded, load report or None, where the spec came from)."""
    spec, weights, source = resolve_spec(name_or_checkpoint, weights, spec)
    model, _, report = task_of(spec).load(spec, weights)
    return spec, model, report, source


# ---------------------------------------------------------------------------------------------------------------
# estimator


@dataclass
class EstimatorOptions:
    """How a PoseEstimator runs (every field is also a keyword argument of PoseEstimator).

    `batch_size` person crops go through the network at once (twice that with flip_test); `images_per_batch`
    images (or video frames) share network batches; `camera` = ((fx, fy), (cx, cy) or None = the image centre) in px
    for 3-D models, `cameras` = {image file name: camera} for `images()` (posekit.camera.read_intrinsics reads both
    from a file); default: the model's own (its BODY3D.FOCAL, else the focal per image width of the camera it was
    trained with, else the 3DMPPE demo's 1500 px; the image centre);
    `calibration` (backend "onnxruntime-int8" only): what
    `PoseEstimator.calibrate` takes (uint8 crops, normalised crops, image paths / folders); None calibrates on the
    first network batch the estimator runs, its first `calibration_size` network inputs (crops and mirrors).
    """

    device: str | torch.device = "cpu"
    flip_test: bool = True
    batch_size: int = 32
    padding: float = 1.25
    backend: str = "auto"
    cache_dir: str | Path | None = None
    images_per_batch: int = 8
    camera: tuple[Sequence[float], Sequence[float] | None] | None = None
    cameras: dict[str, Any] | None = None
    calibration: Any = None
    calibration_size: int = 64

    def __post_init__(self) -> None:
        if int(self.batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not (isinstance(self.padding, (int, float)) and 0 < float(self.padding) < float("inf")):
            raise ConfigError(f"padding must be a positive number (the box enlargement, 1.25 official), got "
                              f"{self.padding!r}")
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError, ValueError) as e:
            raise ConfigError(f"device {self.device!r}: {str(e).splitlines()[0]}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {self.device!r}: this PyTorch build has no usable CUDA device; use 'cpu'")


def _options(options: EstimatorOptions | None, settings: dict[str, Any]) -> EstimatorOptions:
    """`options` with the keyword settings applied (an unknown keyword is a TypeError, as for any function)."""
    unknown = sorted(set(settings) - {f.name for f in fields(EstimatorOptions)})
    if unknown:
        raise TypeError(f"PoseEstimator got unexpected keyword argument(s) {', '.join(unknown)}")
    return replace(options or EstimatorOptions(), **settings)


class _Pending:
    """Images / frames of PoseEstimator.images waiting for a shared network batch, and the running result index."""

    def __init__(self, est: Any) -> None:
        self.est = est
        self.items: list[tuple[Path, np.ndarray, Any, int | None]] = []
        self.index = 0

    def add(self, path: Path, image: np.ndarray, found: Any, frame: int | None) -> Iterator[Result]:
        """Queue an image with its boxes; run the batch when it holds images_per_batch images or batch_size boxes."""
        self.items.append((path, image, found, frame))
        n = sum(count_boxes(p[2][0] if isinstance(p[2], tuple) else p[2]) for p in self.items)
        if len(self.items) >= self.est.images_per_batch or n >= self.est.batch_size:
            yield from self.flush()

    def flush(self) -> Iterator[Result]:
        """Run the queued images in one estimate_batch and yield their results in order."""
        if not self.items:
            return
        bxs = [p[2][0] if isinstance(p[2], tuple) else p[2] for p in self.items]
        scs = [p[2][1] if isinstance(p[2], tuple) else None for p in self.items]
        cams = [self.est.cameras.get(Path(p[0]).name) for p in self.items] if self.est.cameras else None
        out = self.est.estimate_batch([p[1] for p in self.items], bxs, scs, cams)
        for (path, image, _, frame), poses in zip(self.items, out):
            yield Result(path, image, poses, frame=frame, index=self.index)
            self.index += 1
        self.items.clear()

    def failed(self, path: Path, error: DataError, on_error: str, frame: int | None = None) -> Iterator[Result]:
        """After the queued results: raise `error` (on_error "stop") or yield the input's error result."""
        yield from self.flush()
        if on_error == "stop":
            raise error
        yield Result(path, None, [], frame=frame, error=str(error), index=self.index)
        self.index += 1


class PoseEstimator:
    """A network + its codec and skeleton, mapping RGB images (and person boxes) to `Pose`s."""

    def __init__(self, name_or_checkpoint: Any = None, weights: str | Path | None = None, *, spec: Any = None,
                 model: torch.nn.Module | None = None, codec: Any = None, options: EstimatorOptions | None = None,
                 **settings: Any) -> None:
        """Resolve the model spec (weights file > zoo name / spec), build and load the network, pick the backend.

        `model` replaces the built network (tests, custom networks); `codec` (a name or an object) replaces the
        spec's codec; `options` or keyword `settings` (EstimatorOptions fields, e.g. device="cuda") say how it runs.
        """
        opts = _options(options, settings)
        self.spec, self.weights, self.spec_source = resolve_spec(name_or_checkpoint, weights, spec)
        self.name = self.spec.name
        self.task = self.spec.task
        self._task = task_of(self.spec)
        self.needs_boxes = self._task.needs_boxes
        self.draw_threshold = self._task.draw_threshold
        self.uses_camera = self._task.uses_camera
        self.input_size = tuple(int(v) for v in self.spec.input_size)
        self.heatmap_size = tuple(int(v) for v in self.spec.heatmap_size)
        self.skeleton: Skeleton = skeletons.get(self.spec.skeleton)
        self.color_rgb = bool(self.spec.color_rgb)
        self.device = torch.device(opts.device)
        self.camera = opts.camera
        self.cameras = dict(opts.cameras or {})
        self.flip_test = opts.flip_test
        self.batch_size = int(opts.batch_size)
        self.images_per_batch = max(int(opts.images_per_batch), 1)
        self.padding = float(opts.padding)
        self.calibration_size = max(int(opts.calibration_size), 1)
        self._load(model, codec)
        self._pick_backend(opts)
        if opts.calibration is not None:
            self.calibrate(opts.calibration)

    def _load(self, model: torch.nn.Module | None, codec: Any) -> None:
        """The network (built and loaded by the task unless given) and the codec (given, loaded or the spec's)."""
        from posekit import codecs
        from posekit.modelspec import build_codec

        self.load_report = None
        loaded_codec = None
        if model is None:
            model, loaded_codec, self.load_report = self._task.load(self.spec, self.weights)
        self.model = model.to(self.device).eval()
        if isinstance(codec, str):
            codec = codecs.build(codec, input_size=self.input_size, heatmap_size=self.heatmap_size,
                                 num_keypoints=self.skeleton.num_keypoints)
        self.codec = codec if codec is not None else loaded_codec if loaded_codec is not None else build_codec(
            self.spec)

    def _pick_backend(self, opts: EstimatorOptions) -> None:
        """The backend that runs the network (tasks that are not ONNX-capable run on torch only)."""
        from posekit.runtime.backends import create

        backend = opts.backend
        if not self._task.onnx:  # whole-image / 3-D paths call the network directly
            if backend not in ("auto", "torch"):
                raise ConfigError(f"backend {backend!r}: the {self.task} path runs on the torch backend only")
            backend = "torch"
        if opts.calibration is not None and backend != INT8:
            raise ConfigError(f"calibration data is for the {INT8!r} backend, not {backend!r}")
        self.backend = create(backend, self.model, self.input_size, name=self.name, weights=self.weights,
                              device=self.device, cache_dir=opts.cache_dir, export=self.weights is not None,
                              calibration_size=self.calibration_size)

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
            found = boxes_for(boxes, path, image, None)
            b, _ = split_boxes(*(found if isinstance(found, tuple) else (found, None)), image, str(path))
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
                       scores: Sequence | None = None,
                       cameras: Sequence | None = None) -> list[list[Pose]]:
        """Poses for several RGB images; boxes[i] / scores[i] belong to images[i] (None = whole images)."""
        if boxes is not None and len(boxes) != len(images):
            raise DataError(f"estimate_batch: {len(boxes)} box lists for {len(images)} images")
        if scores is not None and len(scores) != len(images):
            raise DataError(f"estimate_batch: {len(scores)} score lists for {len(images)} images")
        if cameras is not None:
            if len(cameras) != len(images):
                raise DataError(f"estimate_batch: {len(cameras)} cameras for {len(images)} images")
            return self._task.infer(self, images, boxes, scores, cameras)
        return self._task.infer(self, images, boxes, scores)

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
        pending = _Pending(self)
        for path in collect_inputs(list(items)):
            if path.suffix.lower() in VIDEO_EXTS:
                yield from pending.flush()
                if frames:
                    yield from self._video_results(path, boxes, on_error, pending)
                continue
            try:
                from posekit.data.images import read_image

                rgb = read_image(path)
                found = boxes_for(boxes, path, rgb, None)
                split_boxes(*(found if isinstance(found, tuple) else (found, None)), rgb, str(path))
            except DataError as e:  # an unreadable image, or bad boxes for it: skipped or raised per on_error
                yield from pending.failed(path, e, on_error)
                continue
            yield from pending.add(path, rgb, found, None)
        yield from pending.flush()

    def _video_results(self, path: Path, boxes: BoxesArg, on_error: str, pending: _Pending) -> Iterator[Result]:
        """The frames of one video through the shared batches, with the video's own frame indices; an undecodable
        frame (or video) is reported, or raised with on_error="stop"."""
        try:
            for vf in iter_video(path):
                if vf.rgb is None:
                    yield from pending.failed(path, DataError(vf.error), on_error, frame=vf.index)
                    continue
                yield from pending.add(path, vf.rgb, boxes_for(boxes, path, vf.rgb, vf.index), vf.index)
        except DataError as e:
            yield from pending.failed(path, e, on_error)
        yield from pending.flush()

    def track(self, source: Any, detect: Callable[[int, np.ndarray], Any] | None = None, detect_every: int = 1,
              tracker: Any = None, live: bool | None = None) -> Iterator[Result]:
        """Results of a video file, folder of frames, webcam index or stream URL (or an opened
        `posekit.runtime.capture` source) with every pose's `track_id` set (posekit.runtime.tracking).

        `detect(frame_index, image)` gives the person boxes ([M,4|5] xywh, or None for the whole frame / a bottom-up
        model's own people) of every `detect_every`-th frame; in between, boxes come from the previous frame's poses.
        `detect` None: every frame is estimated as with `images` (the whole frame, or a bottom-up model's people).
        `tracker`: a TrackerConfig or Tracker (default TrackerConfig() at the source's frame rate). `live`: see
        `posekit.runtime.capture.open_source` (live sources drop the frames this estimator is too slow for).
        """
        from posekit.runtime.capture import FrameSource, open_source
        from posekit.runtime.tracking import Tracker, TrackerConfig, track_source

        src = source if isinstance(source, FrameSource) else open_source(source, live=live)
        if not isinstance(tracker, Tracker):
            cfg = tracker if tracker is not None else TrackerConfig(fps=src.fps)
            tracker = Tracker(cfg, self.skeleton.sigmas_array)
        try:
            yield from track_source(src, self, tracker, detect, detect_every)
        finally:
            if src is not source:
                src.close()


# ---------------------------------------------------------------------------------------------------------------
# inputs, detections, results


class ResultsWriter:
    """A COCO results JSON list written as results come; the file on disk is a valid JSON list at every moment.

    Each write replaces the closing bracket with the new entries and a new closing bracket in one positioned
    write (`os.pwrite`, one system call), so the file holds the entries written so far whatever stops the
    process: an exception, Ctrl-C, or SIGKILL. `close()` only closes the file.
    """

    END = b"\n]\n"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        os.write(self._fd, b"[" + self.END)
        self._end = 1  # where the closing bracket starts
        self.count = 0

    def write(self, entries: Iterable[dict[str, Any]]) -> None:
        """Append entries (one positioned write that also moves the closing bracket)."""
        assert self._fd is not None, "ResultsWriter is closed"
        parts = [(b",\n" if self.count + i else b"\n") + _json_bytes(e) for i, e in enumerate(entries)]
        if not parts:
            return
        data = b"".join(parts)
        os.pwrite(self._fd, data + self.END, self._end)
        self._end += len(data)
        self.count += len(parts)

    def close(self) -> None:
        """Close the file (idempotent); its content is already a complete JSON list."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _json_bytes(entry: dict[str, Any]) -> bytes:
    """Strict JSON of one entry: a NaN / infinite number (a diverged network) is written as null, not as NaN."""
    try:
        return json.dumps(entry, allow_nan=False).encode()
    except ValueError:
        def clean(v: Any) -> Any:
            if isinstance(v, float):
                return v if np.isfinite(v) else None
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            return [clean(x) for x in v] if isinstance(v, (list, tuple)) else v

        return json.dumps(clean(entry)).encode()


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


# ---------------------------------------------------------------------------------------------------------------
# a folder of results (`posekit infer`)


def stem_id(path: Path) -> int | None:
    """The COCO-style image id of a file name made of digits (000000000785.jpg -> 785), else None."""
    return int(path.stem) if re.fullmatch(r"\d+", path.stem) else None


def digits_id(path: Path) -> int | None:
    """The last run of digits in a file name (COCO_val2014_000000000785.jpg -> 785), else None."""
    runs = re.findall(r"\d+", path.stem)
    return int(runs[-1]) if runs else None


def load_image_ids(path: str | Path) -> dict[str, int]:
    """COCO annotation JSON -> {file name: image id} (also keyed by the stem)."""
    try:
        data = json.loads(Path(path).read_text())
        ids = {}
        for im in data["images"]:
            name = Path(im["file_name"])
            ids[name.name] = int(im["id"])
            ids[name.stem] = int(im["id"])
        return ids
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(f"--gt-images {path}: expected a COCO JSON with images[{{id, file_name}}] ({e})") from None


def output_stem(path: Path) -> str:
    """The stem of an input as a valid UTF-8 file name for its outputs (undecodable bytes become U+FFFD)."""
    return os.fsencode(path.stem).decode("utf-8", "replace")


def unique_path(folder: Path, stem: str, suffix: str, used: set[str]) -> Path:
    """folder/stem+suffix, with _1, _2... appended when that name was already written in this run."""
    name, n = f"{stem}{suffix}", 0
    while name in used:
        n += 1
        name = f"{stem}_{n}{suffix}"
    used.add(name)
    return folder / name


@dataclass
class InferJob:
    """What `posekit infer` asks of an estimator: inputs, an output folder, where person boxes come from, drawing."""

    inputs: Sequence[str | Path]  # images, folders (their images and videos) and videos
    out: str | Path  # keypoints.json (COCO results) and the drawn images / videos go here
    boxes: np.ndarray | None = None  # [M,4] xywh for every input; None: the whole image
    detections: dict[int, np.ndarray] | None = None  # read_detections(): image id -> [M,5] (images only)
    image_ids: dict[str, int] = field(default_factory=dict)  # file name / stem -> COCO image id (load_image_ids)
    people: PoseEstimator | None = None  # a bottom-up estimator whose people serve as the person boxes
    calibration: Sequence[str | Path] | None = None  # onnxruntime-int8: images / folders to calibrate on
    on_error: str = "skip"  # an unreadable input: "skip" (reported) or "stop"
    draw: bool = True
    threshold: float = 0.3  # keypoints drawn above this score
    person_threshold: float | None = None  # people drawn from this score (None: the task's draw_threshold)
    show_scores: bool = False


@dataclass
class InferReport:
    """What an InferJob did (filled as it goes, so a caller sees the counts after an interruption too)."""

    json_path: Path
    images: int = 0
    videos: int = 0
    frames: int = 0
    poses: int = 0
    drawn: int = 0
    without_detections: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


class _Folder:
    """The outputs of an InferJob: COCO image ids, keypoints.json entries, drawn images and videos."""

    def __init__(self, est: PoseEstimator, job: InferJob, files: Sequence[Path], report: InferReport) -> None:
        self.est, self.job, self.report = est, job, report
        self.out = Path(job.out)
        self.min_person = est.draw_threshold if job.person_threshold is None else job.person_threshold
        self.ids = {p: self.image_id(p) for p in files if p.suffix.lower() not in VIDEO_EXTS}  # fixed up front
        self.next_index = 0
        self.used: set[str] = set()
        self.writers: dict[Path, Any] = {}
        self.video_base: dict[Path, int] = {}
        self.last_drawn: dict[Path, tuple[int, np.ndarray]] = {}
        self.people = None
        if job.people is not None:
            from posekit.runtime.bottomup import people_boxes_fn

            self.people = people_boxes_fn(job.people)
        if job.detections is not None and est.needs_boxes and self.people is None and self.ids:
            if not any(i in job.detections for i in self.ids.values()):
                shown = ", ".join(f"{p.name}: {i}" for p, i in list(self.ids.items())[:3])
                raise DataError(f"the detections match none of the {len(self.ids)} input images: their image ids "
                                f"({shown}, ...) are not among the {len(job.detections)} ids of the detections "
                                f"(e.g. {sorted(job.detections)[:3]}); map file names to ids with --gt-images "
                                "(image_ids), or name the images by their ids")

    def image_id(self, path: Path) -> int | None:
        """--gt-images' id of a file, else the number in its name (the last one when matching detections)."""
        found = self.job.image_ids.get(path.name, self.job.image_ids.get(path.stem))
        if found is not None:
            return found
        return digits_id(path) if self.job.detections is not None else stem_id(path)

    def boxes(self, path: Path, image: np.ndarray, frame: int | None) -> Any:
        """The person boxes of an image or frame: the people estimator's, the detections', or the fixed ones (none
        for a bottom-up model, which finds every person itself)."""
        if not self.est.needs_boxes:
            return None
        if self.people is not None:
            return self.people(path, image, frame)
        if frame is not None or self.job.detections is None:
            return self.job.boxes
        found = self.job.detections.get(self.ids[path])
        if found is None:
            self.report.without_detections += 1
            return np.zeros((0, 5))
        return found

    def calibration_boxes(self, path: Path, image: np.ndarray, frame: int | None) -> Any:
        """Boxes of calibration images: as for inputs where they are inputs too, else the whole image."""
        if self.people is not None or self.job.detections is None:
            return self.boxes(path, image, frame)
        return self.job.detections.get(self.ids[path], np.zeros((0, 5))) if path in self.ids else None

    def drawing(self, r: Result) -> np.ndarray:
        shown = [p for p in r.poses if p.score >= self.min_person]
        return draw_poses(r.image, shown, self.est.skeleton, threshold=self.job.threshold,
                          show_scores=self.job.show_scores)

    def image(self, r: Result, results: ResultsWriter) -> None:
        """An image's entries and drawings (3-D poses also get their camera-space skeletons)."""
        from posekit.vis import write_png

        image_id = self.ids[r.path] if self.ids[r.path] is not None else self.next_index
        self.next_index += 1
        self.report.images += 1
        results.write(r.coco(image_id))
        if not self.job.draw:
            return
        stem = output_stem(r.path)
        write_png(unique_path(self.out, stem, ".png", self.used), self.drawing(r))
        self.report.drawn += 1
        if r.poses and all("joints_cam" in p.extra for p in r.poses):  # 3-D skeletons beside the 2-D overlay
            from posekit.vis.skeleton3d import write_skeleton_3d

            write_skeleton_3d(unique_path(self.out, f"{stem}_3d", ".png", self.used),
                              [p.extra["joints_cam"] for p in r.poses], self.est.skeleton,
                              title=f"{r.path.name}: camera space (mm)")

    def frame(self, r: Result, results: ResultsWriter) -> None:
        """A video frame's entries (id = the video's first id + the frame's index in the video) and its drawn frame
        (frames that could not be decoded are filled with the previous drawing, so the drawn video keeps time)."""
        if r.path not in self.video_base:
            self.video_base[r.path] = self.next_index
            if self.job.draw:
                suffix = r.path.suffix.lower() if r.path.suffix.lower() in (".avi", ".mp4") else ".mp4"
                target = unique_path(self.out, f"{output_stem(r.path)}_pose", suffix, self.used)
                self.writers[r.path] = video_writer(target, video_info(r.path)[0], (r.image.shape[1], r.image.shape[0]))
                self.report.drawn += 1
        self.next_index = max(self.next_index, self.video_base[r.path] + r.frame + 1)
        self.report.frames += 1
        results.write(r.coco(self.video_base[r.path] + r.frame))
        if r.path in self.writers:
            drawn = np.ascontiguousarray(self.drawing(r)[:, :, ::-1])
            last, previous = self.last_drawn.get(r.path, (r.frame - 1, drawn))
            for _ in range(last + 1, r.frame):
                self.writers[r.path].write(previous)
            self.writers[r.path].write(drawn)
            self.last_drawn[r.path] = (r.frame, drawn)

    def close(self) -> None:
        for w in self.writers.values():
            w.release()


def infer_to_folder(est: PoseEstimator, job: InferJob, progress: Callable[[], None] | None = None,
                    report: InferReport | None = None) -> InferReport:
    """`posekit infer`: the poses of job.inputs streamed to <out>/keypoints.json (COCO results: a valid JSON list of
    what was done whatever stops the run: an error, Ctrl-C, SIGKILL) with drawn images and videos.

    Image ids: --gt-images' (`job.image_ids`), else the number in the file name, else a running index; a video's
    frames get ids from its first id + the frame's index in the video. `progress()` is called once per image done
    (or skipped); `report` is filled as it goes. The output folder must not hold inputs (drawings would overwrite
    them and a later run would read them as inputs) and is locked for the run: a second run into it is refused.
    """
    files = collect_inputs(list(job.inputs))
    if not files:
        raise DataError(f"no images or videos found in {' '.join(display_name(i) for i in job.inputs)}")
    out = Path(job.out)
    lock = claim_output_folder(out, [*job.inputs, *files])
    try:
        return _infer_files(est, job, files, out, progress, report)
    finally:
        os.close(lock)  # the lock file stays: it marks the folder as a posekit infer output


OUTPUT_MARK = ".posekit-infer.lock"  # in every `posekit infer` output folder; held (flock) while a run writes there


def claim_output_folder(out: Path, inputs: Sequence[str | Path]) -> int:
    """`check_output_folder`, then create the folder and hold its lock (released when this process ends, however
    it ends). Returns the lock's file descriptor."""
    check_output_folder(out, inputs)
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / OUTPUT_MARK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, the other checks still hold
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise ConfigError(f"--out {display_name(out)}: another posekit infer (pid {other}) is writing there now; "
                          "wait for it to finish or choose another output folder") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def check_output_folder(out: str | Path, inputs: Sequence[str | Path]) -> None:
    """ConfigError when the output folder holds an input (drawings would overwrite inputs, a later run would read
    them as inputs) or an input lies in an earlier run's output folder (its drawings are not inputs)."""
    out = Path(out)
    target = out.resolve()
    for item in inputs:
        path = Path(item)
        folder = path if path.is_dir() else path.parent
        if folder.resolve() == target:
            raise ConfigError(f"--out {display_name(out)} holds the input {display_name(path)}: drawings would "
                              "overwrite inputs there and a later run would read them as inputs; choose another "
                              "output folder")
        if (folder / OUTPUT_MARK).exists():
            raise ConfigError(f"{display_name(path)} is in the output folder of an earlier posekit infer "
                              f"({display_name(folder)} has {OUTPUT_MARK}): its drawings are not inputs; give the "
                              "original images")


def _infer_files(est: PoseEstimator, job: InferJob, files: list[Path], out: Path,
                 progress: Callable[[], None] | None, report: InferReport | None) -> InferReport:
    """infer_to_folder's work, once the output folder is claimed."""
    report = report if report is not None else InferReport(out / "keypoints.json")
    report.videos = sum(f.suffix.lower() in VIDEO_EXTS for f in files)
    folder = _Folder(est, job, files, report)
    if job.calibration:
        est.calibrate(job.calibration, boxes=folder.calibration_boxes)
    t0 = time.perf_counter()
    try:
        with ResultsWriter(report.json_path) as results:
            for r in est.images(files, boxes=folder.boxes, on_error=job.on_error):
                if r.error is not None:
                    report.skipped.append(r.error)
                elif r.frame is None:
                    folder.image(r, results)
                else:
                    folder.frame(r, results)
                report.poses += len(r.poses)
                if progress is not None and r.frame is None:
                    progress()
    except PosekitError as e:
        raise type(e)(f"{e} ({report.poses} poses done before it are in {report.json_path})") from None
    finally:
        folder.close()
        report.seconds = time.perf_counter() - t0
    return report


# ---------------------------------------------------------------------------------------------------------------
# tracking: `posekit infer --track`


@dataclass
class TrackJob:
    """What `posekit infer --track` asks: sources, an output folder, where people come from, tracker settings."""

    inputs: Sequence[str | int | Path]  # video files, folders of frames, webcam indices, stream URLs
    out: str | Path  # per input: <name>_tracks.json (PoseTrack-style) and <name>_track.mp4
    tracker: Any = None  # posekit.runtime.tracking.TrackerConfig (None: defaults at each source's frame rate)
    detect_every: int = 1  # people from boxes / detections / people on every N-th frame, propagated in between
    boxes: np.ndarray | None = None  # [M,4] xywh on every detection frame; None (and no other source): whole frame
    detections: str | Path | None = None  # per-frame video detections JSON (runtime.capture.read_video_detections)
    box_threshold: float = 0.3
    people: PoseEstimator | None = None  # a bottom-up estimator whose people serve as the detections
    live: bool = False  # read video files as live streams (paced, frames the model misses dropped)
    draw: bool = True
    threshold: float = 0.3  # keypoints drawn above this score
    person_threshold: float | None = None


@dataclass
class TrackReport:
    """What a TrackJob did, filled as it goes (also seen after an interruption)."""

    outputs: list[Path] = field(default_factory=list)
    frames: int = 0
    dropped: int = 0
    poses: int = 0
    tracks: int = 0
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)  # video frames that could not be decoded


def _track_detector(job: TrackJob, name: str) -> Callable[[int, np.ndarray], Any]:
    """detect(frame, image) of the detection frames: the people estimator, the detections file, fixed boxes."""
    if job.people is not None:
        from posekit.runtime.bottomup import people_boxes_fn

        people = people_boxes_fn(job.people)
        return lambda index, image: people(Path(name), image, index)
    if job.detections is not None:
        from posekit.runtime.capture import read_video_detections

        dets = read_video_detections(job.detections, job.box_threshold)
        frames = {**dets.get(None, {}), **dets.get(Path(name).name, {})}
        return lambda index, image: frames.get(index, np.zeros((0, 5)))
    return lambda index, image: job.boxes  # None: the whole frame


def track_to_folder(est: PoseEstimator, job: TrackJob, on_frame: Callable[[str, int, TrackReport], None] | None = None,
                    report: TrackReport | None = None) -> TrackReport:
    """`posekit infer --track`: each input tracked to <out>/<name>_tracks.json (PoseTrack-style, streamed: an
    interrupted run keeps every finished frame) and <name>_track.mp4 (skeletons coloured by track id, ids drawn).
    `on_frame(source name, frame index, report)` is called after every frame."""
    if job.detect_every < 1:
        raise ConfigError(f"detect_every: expected >= 1, got {job.detect_every}")
    report = report if report is not None else TrackReport()
    out = Path(job.out)
    lock = claim_output_folder(out, [i for i in job.inputs if not isinstance(i, int) and Path(str(i)).exists()])
    try:
        _track_inputs(est, job, out, report, on_frame)
    finally:
        os.close(lock)  # the lock file stays: it marks the folder as a posekit infer output
    return report


def _track_inputs(est: PoseEstimator, job: TrackJob, out: Path, report: TrackReport,
                  on_frame: Callable[[str, int, TrackReport], None] | None) -> None:
    """The per-input loop of track_to_folder."""
    from posekit.runtime.capture import PoseTrackWriter, open_source
    from posekit.runtime.tracking import Tracker, TrackerConfig
    from posekit.vis.tracks import draw_tracks

    min_person = est.draw_threshold if job.person_threshold is None else job.person_threshold
    category = {"id": 1, "name": "person", "keypoints": list(est.skeleton.keypoints),
                "skeleton": [[a + 1, b + 1] for a, b in est.skeleton.links]}
    used: set[str] = set()
    t0 = time.perf_counter()
    for vid, spec in enumerate(job.inputs):
        source = open_source(spec, live=True if job.live else None)
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(source.name).stem or source.name)[:80] or "input"
        json_path = unique_path(out, f"{stem}_tracks", ".json", used)
        report.outputs.append(json_path)
        cfg = job.tracker if job.tracker is not None else TrackerConfig()
        tracker = Tracker(replace(cfg, fps=source.fps), est.skeleton.sigmas_array)
        writer, ids = None, set()
        try:
            with PoseTrackWriter(json_path, [category]) as results:
                for r in est.track(source, _track_detector(job, source.name), job.detect_every, tracker):
                    image = {"id": report.frames + 1, "file_name": f"{source.name}#{r.frame}", "vid_id": vid,
                             "frame_id": r.frame, "width": int(r.image.shape[1]), "height": int(r.image.shape[0])}
                    anns = [{**p.to_coco(report.frames + 1), "track_id": int(p.track_id)} for p in r.poses]
                    results.write(image, anns)
                    report.frames += 1
                    report.poses += len(anns)
                    ids.update(a["track_id"] for a in anns if a["track_id"] >= 0)
                    if job.draw:
                        if writer is None:
                            target = unique_path(out, f"{stem}_track", ".mp4", used)
                            writer = video_writer(target, source.fps, (r.image.shape[1], r.image.shape[0]))
                            report.outputs.append(target)
                        shown = [p for p in r.poses if p.score >= min_person]
                        drawn = draw_tracks(r.image, shown, est.skeleton, threshold=job.threshold)
                        writer.write(np.ascontiguousarray(drawn[:, :, ::-1]))
                    report.dropped = source.dropped
                    report.seconds = time.perf_counter() - t0
                    if on_frame is not None:
                        on_frame(source.name, r.frame, report)
        finally:
            report.tracks += len(ids)
            report.skipped += getattr(source, "errors", [])
            report.dropped = source.dropped
            report.seconds = time.perf_counter() - t0
            if writer is not None:
                writer.release()
            source.close()
