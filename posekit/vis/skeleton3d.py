"""3-D skeleton pictures (matplotlib, Agg backend, no window): camera-space joints in mm as an RGB image.

Camera frame in, shown upright: x right, camera y (down) drawn as up = -y, depth z drawn as the third axis, so the
view matches the image the pose came from when `elev` = 0 and `azim` = -90. Several people (or a prediction and its
ground truth) can share one picture; each pose is drawn root-relative when `root` is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from posekit.errors import DataError
from posekit.skeletons import Skeleton
from posekit.vis import limb_colors, write_png


def skeleton_3d_image(poses: Sequence[np.ndarray] | np.ndarray, skeleton: Skeleton,
                      labels: Sequence[str] | None = None, root: int | None = None, size: tuple[int, int] = (480, 480),
                      elev: float = 15.0, azim: float = -70.0, title: str = "") -> np.ndarray:
    """poses: one [J,3] array or a list of them (camera mm) -> H x W x 3 uint8 RGB picture of the skeletons."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    arr = np.asarray(poses, dtype=np.float64) if not isinstance(poses, list) else None
    plist = [arr] if arr is not None and arr.ndim == 2 else [np.asarray(p, dtype=np.float64) for p in poses]
    for p in plist:
        if p.shape != (skeleton.num_keypoints, 3):
            raise DataError(f"skeleton_3d_image: pose shape {p.shape}, expected ({skeleton.num_keypoints}, 3)")
    if root is not None:
        plist = [p - p[root] for p in plist]
    dpi = 100
    fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot(111, projection="3d")
    limb = limb_colors(len(skeleton.links))
    styles = ["-", "--", ":", "-."]
    for n, p in enumerate(plist):
        x, y, z = p[:, 0], p[:, 2], -p[:, 1]  # matplotlib axes: x, depth, up
        for (a, b), color in zip(skeleton.links, limb, strict=True):
            ax.plot([x[a], x[b]], [y[a], y[b]], [z[a], z[b]], styles[n % len(styles)],
                    color=np.array(color) / 255.0, lw=2)
        ax.scatter(x, y, z, s=8, color="k" if n == 0 else "gray",
                   label=labels[n] if labels and n < len(labels) else None)
    allp = np.concatenate(plist)
    centre = (allp.min(axis=0) + allp.max(axis=0)) / 2
    half = max(float(np.ptp(allp, axis=0).max()) / 2, 1.0) * 1.1
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[2] - half, centre[2] + half)
    ax.set_zlim(-centre[1] - half, -centre[1] + half)
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("depth z (mm)")
    ax.set_zlabel("up (-y, mm)")
    ax.view_init(elev=elev, azim=azim)
    if labels:
        ax.legend(fontsize=7, loc="upper right")
    if title:
        ax.set_title(title, fontsize=9)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[:, :, :3])


def write_skeleton_3d(path: str | Path, poses: Sequence[np.ndarray] | np.ndarray, skeleton: Skeleton,
                      **kwargs: object) -> Path:
    """`skeleton_3d_image` written as a PNG."""
    return write_png(path, skeleton_3d_image(poses, skeleton, **kwargs))
