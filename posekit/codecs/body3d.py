"""3DMPPE PoseNet decoding: 3-D heatmaps -> soft-argmax -> image (x, y) and root-relative depth (mm).

`Body3DCoder` is registered as codec `body3d`; a 3-D model spec names it."""

from __future__ import annotations

from dataclasses import dataclass

BBOX_3D_DEPTH = 2000.0  # mm covered by the depth bins, centred on the root: official cfg.bbox_3d_shape[0]


@dataclass(frozen=True)
class Body3DCoder:
    """What maps between crops and 3-D targets for one network: sizes, depth bins, depth box, input normalisation."""

    input_size: tuple[int, int]  # (w, h)
    output_size: tuple[int, int]  # (w, h) of the soft-argmax map
    depth_dim: int
    bbox_3d_depth: float = BBOX_3D_DEPTH
    input_norm: str = "standard"
    num_keypoints: int = 18

    @property
    def aspect_ratio(self) -> float:
        """Input w / h (process_bbox grows boxes to it)."""
        return self.input_size[0] / self.input_size[1]
