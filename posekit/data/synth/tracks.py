"""Multi-person sequences with identities: people who walk, cross, occlude each other, enter and leave the frame.

With `SynthConfig(tracks=True, sequence_length=L)`, image i is frame i % L of sequence i // L, and every frame of
a sequence shows the same scene and the same people:
- the scene comes from Generators drawn afresh for every frame, so it is identical in all frames (a static
  camera): camera and elevation from (seed, sequence, 2), light, background, clothing textures and sensor noise
  from (seed, sequence, 4);
- the paths come from a Generator seeded by (seed, sequence, 3): 2..max_subjects people (1 when max_subjects is 1),
  each with a `Walker` path: a straight walk left or right at 0.4..1.6 % of the image width per frame, starting
  inside the image or, with probability 0.35, 15..40 % of the width outside it and walking in; with probability
  0.3 the person turns around once (so someone who walked out may come back); the path moves the pelvis (the body
  origin), whose depth makes a nominal 1.75 m standing height a size in cfg.size_range (capped at 0.6) of the image
  height, changing by up to 0.6 % per frame (walking towards or away from the camera); nearer people cover farther
  ones where paths cross;
- person p's body, clothes and joint angles come from `SequenceRng(seed, 2**20 + 64 * sequence + p, frame,
  cfg.motion)` (the same body every frame, joint angles drifting smoothly), clothes colours from a Generator seeded
  by (seed, 2**20 + 64 * sequence + p, 2); the body turns 20..60 degrees (per person) from the camera towards its
  walking direction (people walk across the view, half facing the camera: a pure profile, where left and right are
  ambiguous for a network trained on turns of at most 90 degrees, is left out); cfg.max_yaw is not used.
A person whose box lies wholly outside the image is not drawn; a person with no visible pixel gets no annotation.
Each instance carries `track_id` = p (per sequence, as in PoseTrack) and `head_box` (xywh of the projected head,
PoseTrack's bbox_head: the head size of the PCKh threshold).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posekit.data.synth.render import Camera
from posekit.data.synth.scene import _TO_CAMERA, Sample, SynthConfig, _box, finish_sample
from posekit.data.synth.sequences import SequenceRng
from posekit.data.synth.skeleton3d import SAMPLERS, rot

PERSON_KEY = 1 << 20  # person streams use sequence keys above every plain sequence index
BODY_HEIGHT = 1750.0  # mm: the nominal standing height that `size` refers to


@dataclass(frozen=True)
class Walker:
    """The path of one person through a sequence, in image coordinates."""

    u0: float  # pelvis x at frame 0 (px)
    v0: float  # pelvis y (px)
    speed: float  # px per frame, signed (+ = to the right)
    turn: int  # frame at which the person turns around (-1: never)
    size0: float  # nominal standing height (BODY_HEIGHT at the pelvis depth) / image height at frame 0
    growth: float  # relative size change per frame
    yaw: float  # radians the body turns from the camera towards its walking direction

    def at(self, frame: int) -> tuple[float, float, float, float]:
        """(u, v, size, heading sign) at `frame`."""
        t = frame if self.turn < 0 or frame <= self.turn else 2 * self.turn - frame
        heading = np.sign(self.speed) * (1.0 if self.turn < 0 or frame <= self.turn else -1.0)
        size = float(np.clip(self.size0 * (1.0 + self.growth) ** frame, 0.15, 1.0))
        return self.u0 + self.speed * t, self.v0, size, float(heading)


def walkers(seed: int, sequence: int, cfg: SynthConfig) -> list[Walker]:
    """The people of sequence `sequence` (see the module docstring)."""
    rng = np.random.default_rng([seed, sequence, 3])
    w, h = cfg.image_size
    n = int(rng.integers(min(2, cfg.max_subjects), cfg.max_subjects + 1))
    lo, hi = cfg.size_range
    out = []
    for _ in range(n):
        d = float(rng.choice([-1.0, 1.0]))
        speed = d * rng.uniform(0.004, 0.016) * w
        u0 = rng.uniform(0.1, 0.9) * w
        if rng.random() < 0.35:  # starts outside and walks in
            gap = rng.uniform(0.15, 0.4) * w
            u0 = -gap if d > 0 else w + gap
        turn = int(rng.integers(cfg.sequence_length // 4, max(cfg.sequence_length * 3 // 4, 1) + 1)) \
            if rng.random() < 0.3 else -1
        out.append(Walker(u0, rng.uniform(0.4, 0.6) * h, speed, turn, rng.uniform(lo, max(lo, min(hi, 0.6))),
                          rng.uniform(-0.006, 0.006), rng.uniform(0.35, 1.05)))
    return out


def render_track_frame(seed: int, index: int, cfg: SynthConfig) -> Sample:
    """Image `index` of a tracks dataset: frame index % L of sequence index // L, with track ids."""
    sequence, frame = divmod(index, cfg.sequence_length)
    w, h = cfg.image_size

    rng = np.random.default_rng([seed, sequence, 2])
    cam = Camera(f=float(w * rng.uniform(0.8, 1.5)), cx=(w - 1) / 2, cy=(h - 1) / 2)
    elev = rng.uniform(-0.05, 0.3)
    head_scale = 1.0 if cfg.style == "A" else 1.25
    figures, mat_rngs, ids = [], [], []
    for p, walker in enumerate(walkers(seed, sequence, cfg)):
        key = PERSON_KEY + 64 * sequence + p
        fig = SAMPLERS[cfg.kind](SequenceRng(seed, key, frame, cfg.motion), head_scale)
        u, v, size, heading = walker.at(frame)
        r = rot("x", elev) @ _TO_CAMERA @ rot("y", heading * walker.yaw)
        z = cam.f * BODY_HEIGHT / (size * h)  # the pelvis (body origin) at pixel (u, v), depth z
        placed = fig.transformed(r, np.array([(u - cam.cx) * z / cam.f, (v - cam.cy) * z / cam.f, z]))
        b = _box(cam.project(placed.pts))
        if b[2] < 0 or b[3] < 0 or b[0] > w - 1 or b[1] > h - 1:
            continue  # wholly outside the image
        figures.append(placed)
        mat_rngs.append(np.random.default_rng([seed, key, 2]))
        ids.append(p)
    scene = np.random.default_rng([seed, sequence, 4])
    return finish_sample(figures, cam, scene, cfg, material_rngs=mat_rngs, track_ids=ids)
