"""LPN (Zhang et al. 2019, "Simple and Lightweight Human Pose Estimation") with official `lpn-pytorch` keys.

Lightweight bottleneck (1x1 -> depthwise 3x3 -> 1x1, expansion 1) with a GC-block attention before the residual
add, four stages of widths 64/128/256/512 where layer4 keeps stride 1 (output stride 16), then two grouped
deconvolutions (each followed by BN, ReLU, 1x1 conv, BN, ReLU) and a final 1x1 conv: heatmaps at stride 4.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from posekit.errors import ConfigError
from posekit.models.registry import register_model
from posekit.models.resnet import make_deconv_layers

BN_MOMENTUM = 0.1

# depth -> blocks per stage, as the official resnet_spec
LPN_SPEC: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}


class GCBlock(nn.Module):
    """Global-context block: softmax attention pooling, then a channel-add transform (1x1, LayerNorm, ReLU, 1x1)."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.conv_mask = nn.Conv2d(channels, 1, kernel_size=1)
        self.channel_add_conv = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1),
            nn.LayerNorm([hidden, 1, 1]),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size=1),
        )
        # the block's own init (overridden for conv weights by LPN.init_weights, as in the official code)
        nn.init.kaiming_normal_(self.conv_mask.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.conv_mask.bias)
        nn.init.zeros_(self.channel_add_conv[3].weight)
        nn.init.zeros_(self.channel_add_conv[3].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = torch.softmax(self.conv_mask(x).flatten(2), dim=2)  # [N, 1, HW]
        context = torch.matmul(x.flatten(2), attn.transpose(1, 2))  # [N, C, 1]: attention-weighted sum
        return x + self.channel_add_conv(context.unsqueeze(3))


class LWBottleneck(nn.Module):
    """Lightweight bottleneck: 1x1 conv, depthwise 3x3 conv (stride here), 1x1 conv, GC block, residual add."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 attention: str | None = "GC") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, groups=planes, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, planes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        if attention == "GC":
            self.att: nn.Module | None = GCBlock(planes, max(planes // 16, 16))
        elif attention is None:
            self.att = None
        else:
            raise ConfigError(f"LPN MODEL.EXTRA.ATTENTION must be 'GC' or None, got {attention!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.att is not None:
            out = self.att(out)
        return self.relu(out + residual)


def _make_stage(inplanes: int, planes: int, blocks: int, stride: int, attention: str | None) -> nn.Sequential:
    downsample = None
    if stride != 1 or inplanes != planes:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(planes, momentum=BN_MOMENTUM),
        )
    layers = [LWBottleneck(inplanes, planes, stride, downsample, attention)]
    layers += [LWBottleneck(planes, planes, attention=attention) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class LPN(nn.Module):
    """Lightweight pose network; `layers` are the blocks per stage (official LPN(block, layers, cfg))."""

    def __init__(self, layers: Sequence[int] = LPN_SPEC[50], num_joints: int = 17,
                 deconv_filters: Sequence[int] = (256, 256), deconv_kernels: Sequence[int] = (4, 4),
                 deconv_with_bias: bool = False, final_conv_kernel: int = 1, attention: str | None = "GC") -> None:
        super().__init__()
        if len(layers) != 4 or min(layers) < 1:
            raise ConfigError(f"LPN layers must be 4 positive block counts, got {list(layers)}")
        if final_conv_kernel not in (1, 3):
            raise ConfigError(f"LPN FINAL_CONV_KERNEL must be 1 or 3, got {final_conv_kernel}")
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _make_stage(64, 64, layers[0], 1, attention)
        self.layer2 = _make_stage(64, 128, layers[1], 2, attention)
        self.layer3 = _make_stage(128, 256, layers[2], 2, attention)
        self.layer4 = _make_stage(256, 512, layers[3], 1, attention)  # stride 1: output stride 16
        self.deconv_layers = make_deconv_layers(512, deconv_filters, deconv_kernels, deconv_with_bias, lightweight=True)
        head_in = deconv_filters[-1] if len(deconv_filters) else 512
        self.final_layer = nn.Conv2d(head_in, num_joints, kernel_size=final_conv_kernel, stride=1,
                                     padding=1 if final_conv_kernel == 3 else 0)
        self.init_weights()

    def init_weights(self) -> None:
        """Official training init without a pretrained file: every conv/deconv weight N(0, 0.001), BN 1/0."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, std=0.001)
                if isinstance(m, nn.ConvTranspose2d) and m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.final_layer(self.deconv_layers(x))


def lpn(depth: int = 50, **overrides: object) -> LPN:
    """LPN-50/101/152 with the official gd256x2_gc head (2 grouped deconvs of 256, GC attention)."""
    if depth not in LPN_SPEC:
        raise ConfigError(f"LPN depth (MODEL.EXTRA.NUM_LAYERS) must be one of {sorted(LPN_SPEC)}, got {depth}")
    overrides.setdefault("layers", LPN_SPEC[depth])
    return LPN(**overrides)  # type: ignore[arg-type]


_LPN_ZOO = dict(input_size=(192, 256), heatmap_size=(48, 64), codec="beta_soft_argmax",
                codec_cfg={"beta": 160.0}, skeleton="coco")


@register_model(**_LPN_ZOO)
def lpn_50_256x192(**overrides: object) -> LPN:
    """LPN-50, COCO 256x192 (experiments/coco/lpn/lpn50_256x192_gd256x2_gc.yaml)."""
    return lpn(50, **overrides)


@register_model(**_LPN_ZOO)
def lpn_101_256x192(**overrides: object) -> LPN:
    """LPN-101, COCO 256x192 (experiments/coco/lpn/lpn101_256x192_gd256x2_gc.yaml)."""
    return lpn(101, **overrides)


@register_model(**_LPN_ZOO)
def lpn_152_256x192(**overrides: object) -> LPN:
    """LPN-152, COCO 256x192 (experiments/coco/lpn/lpn152_256x192_gd256x2_gc.yaml)."""
    return lpn(152, **overrides)
