"""Procedural synthetic data: articulated 3-D people (COCO-17) and quadrupeds (AP-10K) rendered with exact labels.

`generate(out_dir, num_images, ...)` writes a COCO keypoint dataset: DIR/images/NNNNNN.jpg and
DIR/annotations.json. Each annotation has the COCO fields (keypoints [x, y, v] * 17, num_keypoints, bbox, area,
iscrowd 0, segmentation as compressed RLE) plus "keypoints_3d" (17 x [X, Y, Z], camera frame, mm) and
"cam_intrinsics" {"f": [fx, fy], "c": [cx, cy]} (pixels), so that x = fx * X / Z + cx for every labelled joint.

Label conventions:
- pixel centres at integer coordinates: a keypoint at (x, y) lies in pixel (round(x), round(y));
- v = 0: outside the image (stored as 0, 0, 0); v = 2: the body part on top at that pixel is one of the
  parts meeting at the joint, of the same subject (for joints on a body surface: nose, eyes, ears, shoulders,
  hips, neck, tail root, that surface also faces the camera); v = 1: otherwise, i.e. covered by another
  subject or by another part of the same body (self-occlusion);
- bbox (pycocotools toBbox convention) and area (pixel count) come from the subject's visible mask;
  subjects hidden completely by nearer ones get no annotation; num_keypoints counts v > 0.
"""

from __future__ import annotations

from posekit.data.synth.generate import coco_category, generate
from posekit.data.synth.preview import contact_sheet
from posekit.data.synth.scene import STYLES, Sample, SynthConfig, render_sample
from posekit.data.synth.skeleton3d import KINDS
from posekit.data.synth.tracks import render_track_frame

__all__ = ["KINDS", "STYLES", "Sample", "SynthConfig", "coco_category", "contact_sheet", "generate", "render_sample",
           "render_track_frame"]
