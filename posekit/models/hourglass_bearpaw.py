"""Zoo entries for the CC-SSL / WS-CDA animal setting: the bearpaw stacked hourglass with bearpaw targets.

posekit.models.hourglass.HourglassNet already IS the bearpaw/pytorch-pose network CC-SSL uses (pre-activation
bottlenecks with expansion 2, 128 feature planes -> 256 channels, depth-4 hourglasses, intermediate supervision,
biased 1x1 projections), so no second network is defined here: these entries only pair it with the `bearpaw` codec
(Gaussian sigma 1 at 1/4 resolution, 1-based truncating encode, final_preds decoding) and the AP-10K skeleton of
posekit's synthetic quadrupeds. Deliberate difference: 17 AP-10K joints instead of the 18 TigDog joints of the
official (posekit's animals have the AP-10K keypoint set).
"""

from __future__ import annotations

from typing import Any

from posekit.models.hourglass import HourglassNet
from posekit.models.registry import register_model


@register_model(input_size=(256, 256), heatmap_size=(64, 64), codec="bearpaw", codec_cfg={"sigma": 1.0},
                skeleton="ap10k", family="hourglass")
def hourglass_bearpaw_4stack_256x256(**overrides: Any) -> HourglassNet:
    """CC-SSL's network (`-a hg --stacks 4 --blocks 1`), 256x256 input, 64x64 maps, bearpaw targets."""
    return HourglassNet(**{"num_stacks": 4, "num_blocks": 1, "num_joints": 17, "num_feats": 128, **overrides})


@register_model(input_size=(128, 128), heatmap_size=(32, 32), codec="bearpaw", codec_cfg={"sigma": 1.0},
                skeleton="ap10k", family="hourglass")
def hourglass_bearpaw_1stack_128x128(**overrides: Any) -> HourglassNet:
    """A CPU-sized bearpaw hourglass (1 stack, 64 feature planes), 128x128 input, 32x32 maps."""
    return HourglassNet(**{"num_stacks": 1, "num_blocks": 1, "num_joints": 17, "num_feats": 64, **overrides})
