"""Soft-argmax decoding: integral regression ("integral", incl. the 3DMPPE 3-D soft-argmax) and LPN's
beta-soft-argmax ("beta_soft_argmax").

The soft-argmax functions run in torch (float32, same operations as the official code) so they are differentiable
for losses and match the official outputs; they accept numpy arrays too and then return numpy.
"""

from __future__ import annotations

import numpy as np
import torch

from posekit.codecs.base import ArrayLike, Codec, check_keypoints, to_numpy
from posekit.codecs.msra import generate_target, quarter_offset, to_image
from posekit.errors import DataError


def _as_tensor(x: ArrayLike) -> tuple[torch.Tensor, bool]:
    if isinstance(x, torch.Tensor):
        return x, True
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), False


def soft_argmax_2d(heatmaps: ArrayLike, beta: float = 1.0) -> ArrayLike:
    """Expected (x, y) heatmap px [N,K,2] under softmax(beta * map) over all h*w pixels (LPN SoftArgmax2D).

    Torch in -> torch out (differentiable); numpy in -> float32 numpy out.
    """
    x, is_torch = _as_tensor(heatmaps)
    b, c, h, w = x.shape
    probs = torch.softmax(x.reshape(b, c, -1) * beta, dim=-1).reshape(b, c, h, w)
    wy, wx = torch.meshgrid(torch.arange(h, dtype=x.dtype, device=x.device),
                            torch.arange(w, dtype=x.dtype, device=x.device), indexing="ij")
    px = torch.sum(probs * wx, dim=(2, 3))
    py = torch.sum(probs * wy, dim=(2, 3))
    out = torch.stack((px, py), dim=-1)
    return out if is_torch else out.numpy()


def lpn_soft_argmax(heatmaps: ArrayLike, beta: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    """Official LPN SoftArgmax2D: (coords [N,K,2] float32, maxvals [N,K,1] float64 = map at np.round(coords)).

    np.round rounds half to even, as the official code.
    """
    x, _ = _as_tensor(heatmaps)
    with torch.no_grad():
        preds = soft_argmax_2d(x.detach().float().cpu(), beta).numpy()
    hm = to_numpy(x)
    n, k, h, w = hm.shape
    idx = np.round(preds).astype(np.int32)
    ix = np.clip(idx[..., 0], 0, w - 1)
    iy = np.clip(idx[..., 1], 0, h - 1)
    maxvals = np.take_along_axis(hm.reshape(n, k, -1), (iy * w + ix)[..., None].astype(np.int64), axis=2)
    return preds, maxvals.astype(np.float64)


def get_final_preds_using_softargmax(
    heatmaps: ArrayLike, center: np.ndarray, scale: np.ndarray, post_process: bool = True, beta: float = 160.0
) -> tuple[np.ndarray, np.ndarray]:
    """Official LPN get_final_preds_using_softargmax (beta 160): image px float32 [N,K,2] and maxvals [N,K,1]."""
    hm = to_numpy(heatmaps)
    coords, maxvals = lpn_soft_argmax(hm, beta)
    if post_process:
        coords = quarter_offset(coords, hm)
    h, w = hm.shape[2:]
    return to_image(coords, center, scale, (w, h)), maxvals


def soft_argmax_3d(heatmaps: ArrayLike, num_joints: int, depth: int) -> ArrayLike:
    """Official 3DMPPE soft_argmax: [B, J*D, H, W] (channel j*D + d) -> [B, J, 3] (x, y, z) voxel coordinates.

    Softmax over all D*H*W voxels of a joint, then the expectation of each axis index (no beta). Torch in -> torch
    out (differentiable); numpy in -> float32 numpy out.
    """
    x, is_torch = _as_tensor(heatmaps)
    b, c, h, w = x.shape
    if c != num_joints * depth:
        raise DataError(f"soft_argmax_3d: {c} channels, expected num_joints x depth = {num_joints} x {depth}")
    p = torch.softmax(x.reshape(-1, num_joints, depth * h * w), dim=2).reshape(-1, num_joints, depth, h, w)
    acc_x = p.sum(dim=(2, 3)) * torch.arange(1, w + 1, dtype=p.dtype, device=p.device)
    acc_y = p.sum(dim=(2, 4)) * torch.arange(1, h + 1, dtype=p.dtype, device=p.device)
    acc_z = p.sum(dim=(3, 4)) * torch.arange(1, depth + 1, dtype=p.dtype, device=p.device)
    out = torch.cat([acc_x.sum(dim=2, keepdim=True) - 1, acc_y.sum(dim=2, keepdim=True) - 1,
                     acc_z.sum(dim=2, keepdim=True) - 1], dim=2)
    return out if is_torch else out.numpy()


class IntegralCodec(Codec):
    """Integral regression: soft-argmax of the output maps (standard affine, flip shift like HRNet).

    encode: "target" float32 [K,2] = keypoint coordinates in HEATMAP px (the 3DMPPE convention, x * w / input_w;
    what `posekit.losses.IntegralL1Loss` compares the soft-argmax with), "target_norm" [K,2] = the same divided by
    the heatmap size (in [0, 1] inside the crop), "target_weight" [K,1] = visible, zeroed outside the crop (as
    3DMPPE). decode: soft-argmax with `beta` (default 1: raw logits as 3DMPPE); score = peak probability of the
    softmax distribution (in (0, 1]).
    """

    name = "integral"
    affine = "standard"
    shift_heatmap = True

    def __init__(self, *args, beta: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.beta = float(beta)

    def encode(self, keypoints: np.ndarray, visible: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Keypoints [K,2] input px -> {"target" [K,2] heatmap px, "target_norm" [K,2], "target_weight" [K,1]}."""
        kp, vis = check_keypoints(keypoints, visible, self.num_keypoints)
        hm = self.input_to_heatmap(kp)
        size = np.asarray(self.heatmap_size, np.float64)
        norm = hm / size
        inside = np.all((kp >= 0) & (kp < np.asarray(self.input_size, np.float64)), axis=1)
        weight = (vis * inside).astype(np.float32).reshape(-1, 1)
        return {"target": hm.astype(np.float32), "target_norm": norm.astype(np.float32),
                "target_weight": self._weights(weight)}

    def decode_heatmap(self, outputs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Outputs [N,K,h,w] -> (heatmap coords [N,K,2] float32, scores [N,K] = peak softmax probability)."""
        x = self._check_outputs(outputs)
        t = torch.from_numpy(x)
        with torch.no_grad():
            coords = soft_argmax_2d(t, self.beta).numpy()
            scores = torch.softmax(t.reshape(*x.shape[:2], -1) * self.beta, dim=-1).amax(dim=-1).numpy()
        return coords, scores


    def perfect_outputs(self, keypoints: np.ndarray) -> np.ndarray:
        """Logits whose softmax(beta * .) is the normalised Gaussian (sigma) at each keypoint: [K,h,w]."""
        mu = self.input_to_heatmap(np.asarray(keypoints, np.float64)[:, :2])
        w, h = self.heatmap_size
        dx2 = (np.arange(w)[None, None, :] - mu[:, None, 0:1]) ** 2
        dy2 = (np.arange(h)[None, :, None] - mu[:, 1:2, None]) ** 2
        d2 = dx2 + dy2
        return (-d2 / (2.0 * float(self.sigma) ** 2) / self.beta).astype(np.float32)


class BetaSoftArgmaxCodec(Codec):
    """LPN beta-soft-argmax: Gaussian heatmap training target, soft-argmax (beta 160) + quarter-offset decoding.

    encode: "target" = the official HRNet Gaussian heatmap [K,h,w] (LPN trains with JointsMSELoss on it),
    "target_weight" [K,1], and "target_coords" [K,2] = keypoints in heatmap px (x * w / input_w) for coordinate
    losses. decode: official get_final_preds_using_softargmax (TEST.POST_PROCESS quarter offset on by default);
    score = map value at the rounded (half to even) soft-argmax position. Standard affine with the flip shift
    (the LPN configs set SHIFT_HEATMAP true).
    """

    name = "beta_soft_argmax"
    affine = "standard"
    shift_heatmap = True

    def __init__(self, *args, beta: float = 160.0, post_process: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.beta = float(beta)
        self.post_process = post_process

    def encode(self, keypoints: np.ndarray, visible: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Keypoints [K,2] input px -> {"target" [K,h,w], "target_weight" [K,1], "target_coords" [K,2]}."""
        kp, vis = check_keypoints(keypoints, visible, self.num_keypoints)
        target, weight = generate_target(kp, vis, self.input_size, self.heatmap_size, self.sigma)
        return {"target": target, "target_weight": self._weights(weight),
                "target_coords": self.input_to_heatmap(kp).astype(np.float32)}

    def decode_heatmap(self, outputs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Outputs [N,K,h,w] -> (heatmap coords [N,K,2] float32, scores [N,K]) as the official code."""
        hm = self._check_outputs(outputs)
        coords, maxvals = lpn_soft_argmax(hm, self.beta)
        if self.post_process:
            coords = quarter_offset(coords, hm)
        return coords, maxvals[..., 0].astype(np.float32)

