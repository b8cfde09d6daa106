"""Tracked poses are drawn in the colour of their track id, with the id written above the box."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posekit.skeletons import COCO17
from posekit.vis.tracks import draw_tracks, track_color


@dataclass
class _Pose:
    keypoints: np.ndarray
    box: np.ndarray
    track_id: int


def test_each_id_has_its_colour_and_neighbouring_ids_differ():
    colours = [track_color(i) for i in range(8)]
    assert len(set(colours)) == 8 and track_color(-1) == (160, 160, 160)
    assert all(np.abs(np.subtract(a, b)).sum() > 60 for a, b in zip(colours, colours[1:]))


def test_skeleton_pixels_have_the_track_colour():
    image = np.zeros((120, 120, 3), np.uint8)
    k = np.zeros((17, 3))
    k[:, :2] = [60, 70]
    k[5] = [40, 60, 0.9]  # left shoulder -> left elbow: one limb of the COCO skeleton
    k[7] = [40, 100, 0.9]
    drawn = draw_tracks(image, [_Pose(k, np.array([20.0, 30.0, 60.0, 80.0]), 3)], COCO17, show_boxes=False)
    px = drawn[80, 40].astype(float)  # on the limb between the two joints: the colour, anti-aliased on black
    colour = np.array(track_color(3), float)
    assert px.max() > 100 and np.allclose(px / px.max(), colour / colour.max(), atol=0.05)
    assert (drawn[10:28, 20:60] > 0).any()  # the id label above the box
    assert not image.any()  # the input is not drawn on
