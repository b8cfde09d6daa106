"""Top-down pose inference on images and videos: `PoseEstimator`, `Pose`, `process_video`.

The chain per person box (as the official HRNet / SimpleBaseline test): box xywh -> center/size (aspect ratio of
the network input, padding 1.25) -> affine crop (the codec's affine kind) -> ImageNet normalisation (RGB) ->
network (+ mirrored crop, flipped back and averaged) -> codec decode (crop input px) -> inverse affine -> image px.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from posekit import geometry, skeletons
from posekit.errors import DataError
from posekit.skeletons import Skeleton
from posekit.vis import draw_pose

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Official rescoring: a person's score = box score x mean of its keypoint scores above this (HRNet in_vis_thre).
RESCORE_THRESHOLD = 0.2

BoxesFn = Callable[[int, np.ndarray], "np.ndarray | tuple[np.ndarray, np.ndarray] | None"]


@dataclass
class Pose:
    """One person: keypoints [K,3] (x, y, score) in image px, its box xywh, box score and rescored score."""

    keypoints: np.ndarray
    box: np.ndarray
    score: float
    box_score: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_coco(self, image_id: int, category_id: int = 1) -> dict[str, Any]:
        """The COCO keypoint results entry (image_id, category_id, keypoints flat x,y,score, score)."""
        return {
            "image_id": int(image_id),
            "category_id": int(category_id),
            "keypoints": [round(float(v), 4) for v in np.asarray(self.keypoints, dtype=np.float64).reshape(-1)],
            "score": float(self.score),
            "bbox": [round(float(v), 2) for v in self.box],
        }


def rescore(keypoint_scores: np.ndarray, box_score: float, threshold: float = RESCORE_THRESHOLD) -> float:
    """Official rescoring: box score x mean of the keypoint scores above `threshold` (0 when none is)."""
    s = np.asarray(keypoint_scores, dtype=np.float64)
    above = s[s > threshold]
    return float(box_score * above.mean()) if above.size else 0.0


def _as_rgb(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Check an RGB uint8 image HxWx3 (HxW grey is expanded); raise DataError otherwise."""
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
    b = np.asarray(boxes, dtype=np.float64)
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
    return b, s


def _main_output(outputs: Any) -> torch.Tensor:
    """The final prediction of a network output: the last stage of a list/tuple (official), or 'heatmaps'."""
    if isinstance(outputs, dict):
        for key in ("outputs", "heatmaps", "output"):
            if key in outputs:
                return _main_output(outputs[key])
        raise DataError(f"model output dict has keys {sorted(outputs)}; expected 'heatmaps' or 'outputs'")
    if isinstance(outputs, (list, tuple)):
        return _main_output(outputs[-1])
    return outputs


class PoseEstimator:
    """A zoo model + its codec and skeleton, mapping an RGB image and person boxes to `Pose`s."""

    def __init__(self, name: str, weights: str | Path | None = None, device: str | torch.device = "cpu",
                 flip_test: bool = True, codec: Any = None, batch_size: int = 32, padding: float = 1.25,
                 model: torch.nn.Module | None = None) -> None:
        """Build the zoo model `name` (random init when weights is None), its codec and skeleton."""
        from posekit import codecs, models

        self.name = name
        self.entry = models.entry(name)
        self.input_size = tuple(int(v) for v in self.entry.input_size)
        self.heatmap_size = tuple(int(v) for v in self.entry.heatmap_size)
        self.skeleton: Skeleton = skeletons.get(self.entry.skeleton)
        if codec is None or isinstance(codec, str):
            self.codec = codecs.build(codec or self.entry.codec, input_size=self.input_size,
                                      heatmap_size=self.heatmap_size, num_keypoints=self.skeleton.num_keypoints,
                                      **self.entry.codec_cfg)
        else:
            self.codec = codec
        self.device = torch.device(device)
        self.model = model if model is not None else models.build(name)
        self.load_report = None
        if weights is not None:
            from posekit.models.checkpoint import load_checkpoint

            self.load_report = load_checkpoint(self.model, weights, strict=True)
        self.model.to(self.device).eval()
        self.weights = weights
        self.flip_test = flip_test
        self.batch_size = int(batch_size)
        self.padding = float(padding)
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    # --- steps -------------------------------------------------------------------------------------------------
    def crop(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Crops [M,h,w,3] uint8 of boxes xywh [M,4], with their centers [M,2] and sizes [M,2] (px)."""
        w, h = self.input_size
        crops = np.zeros((len(boxes), h, w, 3), dtype=np.uint8)
        centers = np.zeros((len(boxes), 2))
        sizes = np.zeros((len(boxes), 2))
        for i, box in enumerate(boxes):
            c, s = geometry.box_xywh_to_center_size(box, aspect_ratio=w / h, padding=self.padding)
            m = geometry.affine_matrix(c, s, 0.0, self.input_size, kind=self.codec.affine)
            crops[i] = geometry.warp_crop(image, m, self.input_size)
            centers[i], sizes[i] = c, s
        return crops, centers, sizes

    def to_tensor(self, crops: np.ndarray) -> torch.Tensor:
        """uint8 crops [M,h,w,3] RGB -> float32 [M,3,h,w] normalised with the ImageNet mean/std."""
        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        return (x - self._mean) / self._std

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> np.ndarray:
        """Network outputs [M,C,h,w] of normalised crops, averaged with the flipped-back mirror when flip_test."""
        out = _main_output(self.model(x)).float().cpu().numpy()
        if self.flip_test:
            flipped = _main_output(self.model(torch.flip(x, dims=[3]))).float().cpu().numpy()
            back = np.asarray(self.codec.flip_back(flipped, self.skeleton.flip_index), dtype=np.float32)
            out = (out + back) * 0.5
        return out

    def predict_crops(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints [M,K,2] in crop input px and scores [M,K] of uint8 crops [M,h,w,3], in batches."""
        k = self.skeleton.num_keypoints
        kps, scores = np.zeros((0, k, 2)), np.zeros((0, k))
        parts_k, parts_s = [kps], [scores]
        for i in range(0, len(crops), self.batch_size):
            out = self.forward(self.to_tensor(crops[i:i + self.batch_size]))
            kp, sc = self.codec.decode(out)
            parts_k.append(np.asarray(kp, dtype=np.float64).reshape(-1, k, 2))
            parts_s.append(np.asarray(sc, dtype=np.float64).reshape(-1, k))
        return np.concatenate(parts_k), np.concatenate(parts_s)

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
        all_crops, all_c, all_s, all_b, all_bs, owner = [], [], [], [], [], []
        for i, image in enumerate(images):
            what = f"image {i}"
            image = _as_rgb(image, what)
            b, bs = _split_boxes(None if boxes is None else boxes[i], None if scores is None else scores[i],
                                 image, what)
            crops, centers, sizes = self.crop(image, b)
            all_crops.append(crops)
            all_c.append(centers)
            all_s.append(sizes)
            all_b.append(b)
            all_bs.append(bs)
            owner += [i] * len(b)
        results: list[list[Pose]] = [[] for _ in images]
        if not owner:
            return results
        kp, sc = self.predict_crops(np.concatenate(all_crops))
        img_kp = geometry.transform_preds(kp, np.concatenate(all_c), np.concatenate(all_s), self.input_size,
                                          kind=self.codec.affine)
        box_arr, box_scores = np.concatenate(all_b), np.concatenate(all_bs)
        for j, i in enumerate(owner):
            keypoints = np.concatenate([img_kp[j], sc[j][:, None]], axis=1).astype(np.float32)
            results[i].append(Pose(keypoints=keypoints, box=box_arr[j].astype(np.float32),
                                   score=rescore(sc[j], float(box_scores[j])), box_score=float(box_scores[j])))
        return results


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

    With out_path, the frames with skeletons drawn are written there; progress(done, total) is called per frame
    (total is the container's frame count, 0 when unknown).
    """
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"{path}: OpenCV cannot open this video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    total = max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
    writer = None
    frames: list[list[Pose]] = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            rgb = np.ascontiguousarray(frame[:, :, ::-1])
            found = boxes_fn(len(frames), rgb) if boxes_fn is not None else None
            if isinstance(found, tuple):
                poses = estimator(rgb, found[0], found[1])
            else:
                poses = estimator(rgb, found)
            frames.append(poses)
            if out_path is not None:
                if writer is None:
                    writer = video_writer(out_path, fps, (rgb.shape[1], rgb.shape[0]))
                drawn = draw_poses(rgb, poses, estimator.skeleton, threshold=threshold, show_scores=show_scores)
                writer.write(np.ascontiguousarray(drawn[:, :, ::-1]))
            if progress is not None:
                progress(len(frames), total)
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if not frames:
        raise DataError(f"{path}: no frame could be decoded")
    return frames
