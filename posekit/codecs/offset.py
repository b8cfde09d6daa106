"""G-RMI disk heatmaps + 2-D offset fields (Papandreou et al. 2017). No official code: checked by round trips.

Layout of the target / network output [3K, h, w]: channels 0..K-1 binary disk heatmaps (the network outputs
logits, trained with sigmoid cross-entropy), K..2K-1 x offsets, 2K..3K-1 y offsets. Offsets are in heatmap
pixels, from each pixel inside the disk to the keypoint (zero outside). The disk radius is given in INPUT pixels
(the paper's R = 25 px at 353x257) and converted with the heatmap stride. The crop uses the "udp" affine: with
inputs of size 8n+1 the stride-8 grid lands on input pixels and flipping is pixel-aligned (no shift).

Decoding: per joint, the argmax of the heatmap (score = sigmoid of the logit there when `sigmoid_scores`) plus the
offset read at that pixel. The paper's Hough-voting aggregation of all offsets is not implemented.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from posekit.codecs.base import ArrayLike, Codec, check_keypoints, flip_channels
from posekit.errors import DataError


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * x.astype(np.float64)))).astype(np.float32)


class GRMIOffsetCodec(Codec):
    """G-RMI: disk of radius `radius` (input px) + x/y offsets to the keypoint in heatmap px; udp affine."""

    name = "grmi_offset"
    affine = "udp"
    shift_heatmap = False
    channels_per_joint = 3

    def __init__(self, *args, radius: float = 25.0, sigmoid_scores: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.radius = float(radius)
        self.sigmoid_scores = sigmoid_scores
        stride = (np.asarray(self.input_size, np.float64) - 1.0) / (np.asarray(self.heatmap_size, np.float64) - 1.0)
        self.radius_heatmap = self.radius / float(stride.mean())

    def encode(self, keypoints: np.ndarray, visible: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Keypoints [K,2] input px -> {"target" [3K,h,w], "target_weight" [K,1]}.

        Weight = visible, zeroed when no heatmap pixel lies inside the disk; maps of weight-0 joints stay zero.
        """
        kp, vis = check_keypoints(keypoints, visible, self.num_keypoints)
        w, h = self.heatmap_size
        mu = self.input_to_heatmap(kp)  # [K,2] heatmap px
        ox = mu[:, None, 0:1] - np.arange(w)[None, None, :]  # [K,1,w]
        oy = mu[:, 1:2, None] - np.arange(h)[None, :, None]  # [K,h,1]
        disk = ox**2 + oy**2 <= self.radius_heatmap**2  # [K,h,w]
        weight = np.where(disk.reshape(len(kp), -1).any(axis=1), vis, 0).astype(np.float32)
        disk &= (weight > 0)[:, None, None]
        target = np.concatenate(
            [disk, np.where(disk, ox, 0), np.where(disk, oy, 0)], axis=0
        ).astype(np.float32)
        return {"target": target, "target_weight": self._weights(weight.reshape(-1, 1))}

    def decode_heatmap(self, outputs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Outputs [N,3K,h,w] -> (heatmap coords [N,K,2] float64, scores [N,K])."""
        x = self._check_outputs(outputs)
        n, _, h, w = x.shape
        k = self.num_keypoints
        heat = x[:, :k].reshape(n, k, -1)
        idx = np.argmax(heat, axis=2)  # first flat index on ties
        peak = np.take_along_axis(heat, idx[..., None], axis=2)[..., 0]
        dx = np.take_along_axis(x[:, k : 2 * k].reshape(n, k, -1), idx[..., None], axis=2)[..., 0]
        dy = np.take_along_axis(x[:, 2 * k :].reshape(n, k, -1), idx[..., None], axis=2)[..., 0]
        coords = np.stack([idx % w + dx.astype(np.float64), idx // w + dy.astype(np.float64)], axis=-1)
        scores = _sigmoid(peak) if self.sigmoid_scores else peak.astype(np.float32)
        return coords, scores


    def flip_back(self, outputs: ArrayLike, flip_index: Sequence[int] | np.ndarray) -> ArrayLike:
        """Mirror along w, swap left/right joints in each of the 3 blocks, negate the x offsets."""
        k = self.num_keypoints
        if outputs.shape[1] != 3 * k:
            raise DataError(f"flip_back: {outputs.shape[1]} channels, expected 3 x {k}")
        idx = np.asarray(flip_index, dtype=np.int64)
        perm = np.concatenate([idx, idx + k, idx + 2 * k])
        out = flip_channels(outputs, perm)
        out[:, k : 2 * k] = -out[:, k : 2 * k]
        return out
