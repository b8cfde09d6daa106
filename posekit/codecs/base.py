"""Codec base class and the array helpers shared by all codecs (flip, shift, numpy/torch conversion, the input
normalisation statistics)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from posekit import geometry
from posekit.errors import ConfigError, DataError

ArrayLike = np.ndarray | torch.Tensor
# The network input's encoding: RGB statistics of [0, 1] pixels that ImageNet-pretrained backbones expect (the
# pipeline's one set: datasets, inference paths and the 3-D codec read them from here)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_numpy(x: ArrayLike, dtype: Any = np.float32) -> np.ndarray:
    """A numpy array of `dtype` from a numpy array or a (possibly GPU / autograd) torch tensor."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def flip_channels(x: ArrayLike, flip_index: Sequence[int] | np.ndarray, group: int = 1) -> ArrayLike:
    """Mirror maps [N,C,h,w] along w and reorder joint groups by flip_index (official flip_back; C = K*group)."""
    idx = np.asarray(flip_index, dtype=np.int64)
    k = len(idx)
    if x.shape[1] != k * group:
        raise DataError(f"flip_back: {x.shape[1]} channels, expected {k} joints x {group}")
    chan = (idx[:, None] * group + np.arange(group)[None, :]).reshape(-1)
    if isinstance(x, torch.Tensor):
        return torch.flip(x, dims=(3,))[:, torch.as_tensor(chan, device=x.device)]
    return np.ascontiguousarray(np.asarray(x)[:, chan, :, ::-1])


def shift_right(x: ArrayLike) -> ArrayLike:
    """Official SHIFT_HEATMAP: out[..., 1:] = out[..., :-1]; column 0 keeps its value."""
    if isinstance(x, torch.Tensor):
        out = x.clone()
    else:
        out = np.array(x, copy=True)
    out[..., 1:] = x[..., :-1]
    return out


def check_keypoints(keypoints: np.ndarray, visible: np.ndarray | None, num_keypoints: int) -> tuple[np.ndarray,
                                                                                                     np.ndarray]:
    """Validate encode() inputs: keypoints [K, >=2] and visible [K] -> (float64 [K,2], float32 [K])."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[0] != num_keypoints or kp.shape[1] < 2:
        raise DataError(f"encode: keypoints shape {kp.shape}, expected [{num_keypoints}, 2]")
    vis = np.ones(num_keypoints, np.float32) if visible is None else np.asarray(visible, np.float32).reshape(-1)
    if vis.shape[0] != num_keypoints:
        raise DataError(f"encode: visible shape {vis.shape}, expected [{num_keypoints}]")
    return kp[:, :2], vis


class Codec:
    """Encodes keypoints (crop input px) into training targets and decodes network outputs back to keypoints.

    Attributes: `input_size` and `heatmap_size` are (w, h); `affine` names the geometry convention the data pipeline
    must use for crops and for mapping decoded keypoints back to the image (`geometry.transform_preds(...,
    output_size=input_size, kind=affine)`); `out_channels` is what the network must output; `shift_heatmap` is the
    official one-pixel flip-test shift.
    """

    name = "base"
    affine = "standard"
    shift_heatmap = False
    channels_per_joint = 1

    def __init__(
        self,
        input_size: Sequence[int] = (192, 256),
        heatmap_size: Sequence[int] = (48, 64),
        num_keypoints: int = 17,
        sigma: float = 2.0,
        joint_weights: Sequence[float] | None = None,
        shift_heatmap: bool | None = None,
    ) -> None:
        if shift_heatmap is False:  # official TEST.SHIFT_HEATMAP=False turns a codec's own flip shift off
            self.shift_heatmap = False
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        self.num_keypoints = int(num_keypoints)
        self.sigma = sigma
        if min(self.input_size + self.heatmap_size) < 2 or self.num_keypoints < 1:
            raise ConfigError(f"codec {self.name}: bad sizes input={input_size} heatmap={heatmap_size} "
                              f"num_keypoints={num_keypoints}")
        if joint_weights is not None and len(joint_weights) != self.num_keypoints:
            raise ConfigError(f"codec {self.name}: {len(joint_weights)} joint_weights for {num_keypoints} keypoints")
        self.joint_weights = None if joint_weights is None else np.asarray(joint_weights, np.float32).reshape(-1, 1)

    @property
    def out_channels(self) -> int:
        """Number of channels the network must output."""
        return self.num_keypoints * self.channels_per_joint

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
                f"num_keypoints={self.num_keypoints}, sigma={self.sigma})")

    # -- helpers -------------------------------------------------------------------------------------------------
    def _weights(self, weight: np.ndarray) -> np.ndarray:
        """Apply the optional per-joint weights (official USE_DIFFERENT_JOINTS_WEIGHT)."""
        return weight if self.joint_weights is None else (weight * self.joint_weights).astype(np.float32)

    def heatmap_to_input(self, coords: np.ndarray) -> np.ndarray:
        """Heatmap px -> crop input px (float64) with this codec's affine convention."""
        return geometry.rescale_points(coords, self.heatmap_size, self.input_size, self.affine)

    def input_to_heatmap(self, coords: np.ndarray) -> np.ndarray:
        """Crop input px -> heatmap px (float64) with this codec's affine convention."""
        return geometry.rescale_points(coords, self.input_size, self.heatmap_size, self.affine)

    def heatmap_targets(self, keypoints: np.ndarray, visible: np.ndarray | None,
                        generate: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
                        ) -> dict[str, np.ndarray]:
        """{"target", "target_weight" [K,1]} of generate(keypoints, visible) -> (target, weight) on checked
        keypoints (crop input px), the optional per-joint weights applied: the encode of the heatmap codecs."""
        kp, vis = check_keypoints(keypoints, visible, self.num_keypoints)
        target, weight = generate(kp, vis)
        return {"target": target, "target_weight": self._weights(weight)}

    def _check_outputs(self, outputs: ArrayLike) -> np.ndarray:
        x = to_numpy(outputs)
        c, (w, h) = self.out_channels, self.heatmap_size
        if x.ndim != 4 or x.shape[1] != c or x.shape[2:] != (h, w):
            raise DataError(f"codec {self.name}: outputs shape {tuple(x.shape)}, expected [N, {c}, {h}, {w}]")
        return x

    # -- interface -----------------------------------------------------------------------------------------------
    def encode(self, keypoints: np.ndarray, visible: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Keypoints [K,2] in crop input px and visible [K] -> {"target", "target_weight" [K,1], ...}."""
        raise NotImplementedError

    def decode_heatmap(self, outputs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Network outputs [N,C,h,w] -> (heatmap coords [N,K,2], scores [N,K]): each codec's own decoding."""
        raise NotImplementedError

    def decode(self, outputs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Network outputs [N,C,h,w] -> (keypoints [N,K,2] float64 crop input px, scores [N,K] float32).

        The template: `decode_heatmap` (per codec) then heatmap px -> input px with the codec's affine convention.
        """
        coords, scores = self.decode_heatmap(outputs)
        return self.heatmap_to_input(coords), scores

    def flip_back(self, outputs: ArrayLike, flip_index: Sequence[int] | np.ndarray) -> ArrayLike:
        """Outputs of the mirrored crop -> outputs aligned with the original crop (numpy or torch in, same out)."""
        out = flip_channels(outputs, flip_index, self.channels_per_joint)
        return shift_right(out) if self.shift_heatmap else out

    def perfect_outputs(self, keypoints: np.ndarray) -> np.ndarray:
        """An ideal network output [C,h,w] for keypoints [K,2] (input px); used by round-trip tests and benches."""
        return self.encode(keypoints, np.ones(len(keypoints), np.float32))["target"]


class BlurCodec(Codec):
    """A heatmap codec whose decoding blurs the heatmaps first (DARK, UDP): `blur_kernel` (official
    TEST.BLUR_KERNEL)."""

    def __init__(self, *args: Any, blur_kernel: int = 11, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.blur_kernel = int(blur_kernel)
