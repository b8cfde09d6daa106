"""G-RMI pose head (Papandreou et al. 2017, "Towards Accurate Multi-person Pose Estimation in the Wild").

A ResNet-101 made fully convolutional with atrous convolution so that it predicts at output stride 8
(DeepLab / torchvision `replace_stride_with_dilation=[False, True, True]`: layer3 dilation 2, layer4 dilation 4,
the first block of each keeping the previous dilation), then a 1x1 conv to 3K channels: K disk-heatmap logits
(sigmoid, trained with binary cross-entropy) followed by the 2K offset channels, in the channel order of the
`grmi_offset` codec. Backbone keys are the standard ResNet ones (conv1, bn1, layer1..4), so ImageNet ResNet-101
weights load unchanged; the head is `final_layer`.

The paper upsamples the stride-8 predictions bilinearly to the crop size; `upsample=True` does that
(align_corners=True: with inputs of size 8n+1 such as 353x257 the stride-8 grid lands on input pixels). The zoo
entries keep the stride-8 maps (`upsample=False`), which is what the codec encodes and decodes: output pixel i
sits on input pixel 8i, so zoo inputs are 8n+1 pixels wide and high and the codec's "udp" mapping
(stride (input-1)/(heatmap-1) = 8) is exact.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from posekit.errors import ConfigError
from posekit.models.registry import register_model
from posekit.models.resnet import RESNET_SPEC, ResNetBackbone


def dilate_layer(layer: nn.Sequential, dilation: int, previous_dilation: int) -> None:
    """Turn a stride-2 ResNet stage into a stride-1 atrous one in place (keys and weights unchanged)."""
    for i, block in enumerate(layer):
        d = previous_dilation if i == 0 else dilation
        conv2 = block.conv2
        conv2.stride, conv2.dilation, conv2.padding = (1, 1), (d, d), (d, d)
        if block.downsample is not None:
            block.downsample[0].stride = (1, 1)
        block.stride = 1


class GRMI(ResNetBackbone):
    """ResNet (default 101) at output stride 8 + 1x1 conv to K heatmap logits and 2K offsets (3K channels)."""

    def __init__(self, depth: int = 101, num_joints: int = 17, upsample: bool = False) -> None:
        if depth not in RESNET_SPEC or RESNET_SPEC[depth][0].expansion != 4:
            raise ConfigError(f"G-RMI depth must be a bottleneck ResNet (50, 101, 152), got {depth}")
        super().__init__(depth)
        dilate_layer(self.layer3, dilation=2, previous_dilation=1)
        dilate_layer(self.layer4, dilation=4, previous_dilation=2)
        self.num_joints = num_joints
        self.upsample = upsample
        self.final_layer = nn.Conv2d(self.out_channels, 3 * num_joints, kernel_size=1)
        self.init_weights()

    def init_weights(self) -> None:
        """Backbone as torchvision's ResNet (Kaiming fan-out, BN 1/0); head N(0, 0.001) with zero bias."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.constant_(self.final_layer.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.final_layer(super().forward(x))
        if self.upsample:
            out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=True)
        return out


def grmi_heatmap_size(input_size: tuple[int, int]) -> tuple[int, int]:
    """(w, h) of the stride-8 output for an input (w, h): the conv arithmetic of stem, max-pool and layer2."""

    def down(n: int) -> int:
        return (n - 1) // 2 + 1  # 3x3/7x7 convs and pools with 'same' padding at stride 2

    return down(down(down(input_size[0]))), down(down(down(input_size[1])))


def _coco_res101(overrides: dict[str, Any]) -> GRMI:
    """The one network both registered crops use: ResNet-101, 17 COCO joints; `overrides` replace either."""
    return GRMI(**{"depth": 101, "num_joints": 17, **overrides})


_PAPER_INPUT = (257, 353)
_COCO_INPUT = (193, 257)  # 8n + 1 like the paper's crop, near the usual 256x192


@register_model(input_size=_PAPER_INPUT, heatmap_size=grmi_heatmap_size(_PAPER_INPUT), codec="grmi_offset",
                codec_cfg={"radius": 25.0}, skeleton="coco")
def grmi_res101_353x257(**overrides: Any) -> GRMI:
    """G-RMI ResNet-101 at the paper's 353x257 crop (stride-8 outputs 45x33, disk radius 25 px)."""
    return _coco_res101(overrides)


@register_model(input_size=_COCO_INPUT, heatmap_size=grmi_heatmap_size(_COCO_INPUT), codec="grmi_offset",
                codec_cfg={"radius": 18.0}, skeleton="coco")
def grmi_res101_257x193(**overrides: Any) -> GRMI:
    """G-RMI ResNet-101 at 257x193 (stride-8 outputs 33x25 on the input grid; radius 25 px scaled by 257/353)."""
    return _coco_res101(overrides)
