"""The one top-down inference path: crops -> network (+ flip test in the same batch) -> codec decode -> image px.

Used by `posekit.inference.PoseEstimator` and by `posekit.engine.predict` alike (both import it; it imports only
torch, numpy, OpenCV, geometry and the ImageNet statistics of the data pipeline). Conventions:

- A *runner* is any callable mapping a normalised float32 batch [N,3,h,w] (RGB) to the tensor the codec decodes
  (`main_output` of the network output); `torch_runner(model)` wraps an `nn.Module`, `posekit.runtime.backends` provides
  BN-folded and ONNX Runtime runners with the same signature.
- Flip test: the mirrored crops are the second half of the *same* network batch (`[x; flip(x)]`), their output is
  flipped back with the codec's `flip_back` (joint swap, optional one-pixel shift) and averaged with the first
  half. The official code runs two forwards; in eval mode a network treats batch items independently, so the
  result is the same up to float summation order (measured max |diff| <= 1e-6 of the output scale).
- Output selection (`main_output`, the engine's fixture-tested rule): a tensor as is; the last element of a
  list/tuple (official multi-stage outputs: the final stage); dict['heatmaps' | 'output' | 'out'], else the dict's
  first value.
- Crops: one `cv2.warpAffine` per box with the codec's affine convention (zero border, bilinear, as the official
  test), warped from an RGBA copy of the image (OpenCV's 4-channel warp is SIMD, ~2.5x faster than 3-channel and
  bit-identical in the colour channels); normalisation of all crops of a batch in one fused multiply-add
  (x * 1/(255 std) - mean/std), equal to ToTensor + Normalize up to float rounding (<= 1 ulp-level, ~5e-7).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from posekit import geometry
from posekit.codecs.base import IMAGENET_MEAN, IMAGENET_STD
from posekit.errors import DataError
from posekit.evaluation.results import rescore as official_rescore
from posekit.runtime import RESCORE_THRESHOLD, Pose, as_rgb, split_boxes

Runner = Callable[[torch.Tensor], torch.Tensor]

_MEAN = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
_STD = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
_SCALE = (1.0 / (255.0 * _STD))
_BIAS = -_MEAN / _STD

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Runner", "crop_boxes", "decode_to_image", "forward_flip",
           "main_output", "predict_crops", "rgb_to_official_bgr", "to_input", "torch_runner"]


def main_output(outputs: Any) -> torch.Tensor:
    """The tensor a codec decodes: the tensor itself, the last stage of a list/tuple, or dict['heatmaps']."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, (list, tuple)) and outputs:
        return main_output(outputs[-1])
    if isinstance(outputs, dict) and outputs:
        for key in ("heatmaps", "output", "out"):
            if key in outputs:
                return main_output(outputs[key])
        return main_output(next(iter(outputs.values())))
    raise DataError(f"cannot take the network output from a {type(outputs).__name__}")


def rgb_to_official_bgr(x: torch.Tensor) -> torch.Tensor:
    """An RGB ImageNet-normalised batch -> what the official code feeds a COLOR_RGB=False network.

    The official loader normalises BGR pixels with the RGB-ordered mean/std, so channel c holds
    (pixel[2-c] - mean[c]) / std[c].
    """
    mean, std = _MEAN.to(x.device, x.dtype), _STD.to(x.device, x.dtype)
    pixels = x * std + mean  # RGB in [0, 1]
    return (pixels.flip(1) - mean) / std


def torch_runner(model: nn.Module) -> Runner:
    """A runner for an eval-mode `nn.Module`: no autograd, main output as float32."""

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return main_output(model(x)).float()

    return run


def forward_flip(run: Runner, x: torch.Tensor, codec: Any, flip_index: Sequence[int] | np.ndarray | None,
                 color_rgb: bool = True) -> torch.Tensor:
    """Outputs [N,C,h,w] of normalised RGB crops x [N,3,h,w]; with flip_index, averaged with the flipped-back
    output of the mirrored crops, which run as the second half of the same batch."""
    x = x if color_rgb else rgb_to_official_bgr(x)
    if flip_index is None:
        return run(x)
    n = x.shape[0]
    out = run(torch.cat([x, torch.flip(x, dims=(3,))]))
    if getattr(codec, "stack_flip_passes", False):  # e.g. PRTR: decode each pass, then average (codec.decode)
        return torch.stack([out[:n], codec.flip_back(out[n:], flip_index)], dim=1)
    return (out[:n] + codec.flip_back(out[n:], flip_index)) * 0.5


def crop_boxes(image_rgb: np.ndarray, centers: np.ndarray, sizes: np.ndarray, input_size: Sequence[int],
               affine: str) -> np.ndarray:
    """uint8 crops [M,h,w,3] RGB of boxes given as centers [M,2] / sizes [M,2] px (one warp per box)."""
    w, h = int(input_size[0]), int(input_size[1])
    m = len(centers)
    out = np.empty((m, h, w, 3), dtype=np.uint8)
    if m == 0:
        return out
    rgba = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2RGBA)
    for i in range(m):
        mat = geometry.affine_matrix(centers[i], sizes[i], 0.0, (w, h), kind=affine)
        out[i] = cv2.warpAffine(rgba, mat, (w, h), flags=cv2.INTER_LINEAR)[:, :, :3]
    return out


def to_input(crops: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 crops [M,h,w,3] RGB -> contiguous float32 [M,3,h,w] normalised with the ImageNet mean/std."""
    x = torch.from_numpy(np.ascontiguousarray(crops)).to(device).permute(0, 3, 1, 2)
    return (x.float().mul_(_SCALE.to(x.device)).add_(_BIAS.to(x.device))).contiguous()


def decode_to_image(codec: Any, outputs: torch.Tensor | np.ndarray, centers: np.ndarray,
                    sizes: np.ndarray) -> np.ndarray:
    """Decode a batch of outputs and map it to image px: float64 [N,K,3] (x, y, score)."""
    coords, scores = codec.decode(outputs)
    xy = geometry.transform_preds(np.asarray(coords, np.float64), np.asarray(centers, np.float64),
                                  np.asarray(sizes, np.float64), codec.input_size, kind=codec.affine)
    return np.concatenate([xy, np.asarray(scores, np.float64)[..., None]], axis=-1)


def predict_crops(run: Runner, crops: np.ndarray | torch.Tensor, codec: Any,
                  flip_index: Sequence[int] | np.ndarray | None, batch_size: int = 32, color_rgb: bool = True,
                  device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Keypoints [M,K,2] (crop input px, float64) and scores [M,K] of crops (uint8 [M,h,w,3] RGB or a normalised
    float tensor [M,3,h,w]), `batch_size` crops per network batch (x2 with the flip test)."""
    k = codec.num_keypoints
    parts_k, parts_s = [np.zeros((0, k, 2))], [np.zeros((0, k))]
    for i in range(0, len(crops), max(int(batch_size), 1)):
        chunk = crops[i:i + batch_size]
        x = chunk.to(device) if isinstance(chunk, torch.Tensor) else to_input(chunk, device)
        kp, sc = codec.decode(forward_flip(run, x, codec, flip_index, color_rgb))
        parts_k.append(np.asarray(kp, dtype=np.float64).reshape(-1, k, 2))
        parts_s.append(np.asarray(sc, dtype=np.float64).reshape(-1, k))
    return np.concatenate(parts_k), np.concatenate(parts_s)


def estimate_topdown(est: Any, images: Sequence[np.ndarray], boxes: Sequence | None,
                     scores: Sequence | None) -> list[list[Pose]]:
    """The top-down path (a PoseEstimator `est`): crops of every box of every image in one stream of batches."""
    all_crops, all_c, all_s, all_b, all_bs, owner = [], [], [], [], [], []
    for i, image in enumerate(images):
        what = f"image {i}"
        image = as_rgb(image, what)
        b, bs = split_boxes(None if boxes is None else boxes[i], None if scores is None else scores[i], image, what)
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
