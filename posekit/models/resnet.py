"""ResNet-18/34/50/101/152 backbone and SimpleBaseline (official `pose_resnet`) with official state_dict keys."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from posekit.errors import ConfigError
from posekit.models.registry import register_model

BN_MOMENTUM = 0.1


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or projected) shortcut; keys conv1/bn1/conv2/bn2/downsample."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    """1x1-3x3-1x1 bottleneck (stride on the 3x3, torchvision/official layout) with expansion 4."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


def init_official(model: nn.Module) -> None:
    """Official HRNet/SimpleBaseline init: convs and deconvs N(0, 0.001), their biases 0, BatchNorm 1 / 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


BLOCKS: dict[str, type[nn.Module]] = {"BASIC": BasicBlock, "BOTTLENECK": Bottleneck}

# depth -> (block, blocks per stage), as in the official resnet_spec
RESNET_SPEC: dict[int, tuple[type[nn.Module], list[int]]] = {
    18: (BasicBlock, [2, 2, 2, 2]),
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
    101: (Bottleneck, [3, 4, 23, 3]),
    152: (Bottleneck, [3, 8, 36, 3]),
}


def make_layer(block: type[nn.Module], inplanes: int, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
    """One residual stage: the first block projects (1x1 conv + BN as `downsample.0/.1`) when shape changes."""
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(planes * block.expansion, momentum=BN_MOMENTUM),
        )
    layers = [block(inplanes, planes, stride, downsample)]
    layers += [block(planes * block.expansion, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def make_resnet_layers(block: type[nn.Module], layers: Sequence[int], inplanes: int = 64,
                       planes: Sequence[int] = (64, 128, 256, 512),
                       strides: Sequence[int] = (1, 2, 2, 2)) -> tuple[list[nn.Sequential], int]:
    """The four residual stages of a ResNet; returns (stages, output channels)."""
    stages = []
    for n, p, s in zip(layers, planes, strides, strict=True):
        stages.append(make_layer(block, inplanes, p, n, s))
        inplanes = p * block.expansion
    return stages, inplanes


class ResNetBackbone(nn.Module):
    """ResNet stem + layer1..4 (keys conv1/bn1/layer1..4, stride 32); forward returns the layer4 map."""

    def __init__(self, depth: int = 50) -> None:
        super().__init__()
        if depth not in RESNET_SPEC:
            raise ConfigError(f"resnet depth {depth} not in {sorted(RESNET_SPEC)}")
        block, layers = RESNET_SPEC[depth]
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        (self.layer1, self.layer2, self.layer3, self.layer4), self.out_channels = make_resnet_layers(block, layers)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The outputs of layer1..4 (strides 4, 8, 16, 32)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c2, c3, c4, c5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def deconv_padding(kernel: int) -> tuple[int, int]:
    """Official `_get_deconv_cfg`: (padding, output_padding) making a stride-2 deconv exactly double the size."""
    if kernel == 4:
        return 1, 0
    if kernel == 3:
        return 1, 1
    if kernel == 2:
        return 0, 0
    raise ConfigError(f"NUM_DECONV_KERNELS entries must be 2, 3 or 4, got {kernel}")


def make_deconv_layers(inplanes: int, filters: Sequence[int], kernels: Sequence[int],
                       with_bias: bool = False, lightweight: bool = False) -> nn.Sequential:
    """Official deconv head: per layer ConvTranspose2d(stride 2) + BN + ReLU, flat in one Sequential.

    lightweight (LPN): the ConvTranspose2d is grouped (groups=gcd(in, out)) and followed by 1x1 conv + BN + ReLU.
    """
    if len(filters) != len(kernels):
        raise ConfigError(f"NUM_DECONV_FILTERS ({len(filters)}) and NUM_DECONV_KERNELS ({len(kernels)}) differ")
    layers: list[nn.Module] = []
    for planes, k in zip(filters, kernels, strict=True):
        pad, out_pad = deconv_padding(k)
        layers += [
            nn.ConvTranspose2d(inplanes, planes, kernel_size=k, stride=2, padding=pad, output_padding=out_pad,
                               groups=math.gcd(inplanes, planes) if lightweight else 1, bias=with_bias),
            nn.BatchNorm2d(planes, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
        ]
        if lightweight:
            layers += [
                nn.Conv2d(planes, planes, kernel_size=1, bias=False),
                nn.BatchNorm2d(planes, momentum=BN_MOMENTUM),
                nn.ReLU(inplace=True),
            ]
        inplanes = planes
    return nn.Sequential(*layers)


@dataclass
class PoseResNetConfig:
    """Official `MODEL` fields of pose_resnet (MODEL.EXTRA.*)."""

    depth: int = 50
    num_joints: int = 17
    num_deconv_layers: int = 3
    num_deconv_filters: tuple[int, ...] = (256, 256, 256)
    num_deconv_kernels: tuple[int, ...] = (4, 4, 4)
    deconv_with_bias: bool = False
    final_conv_kernel: int = 1

    @classmethod
    def from_official(cls, extra: Mapping[str, Any], num_joints: int = 17) -> PoseResNetConfig:
        """Build from an official MODEL.EXTRA dict (NUM_LAYERS, NUM_DECONV_*, DECONV_WITH_BIAS, FINAL_CONV_KERNEL)."""
        try:
            return cls(depth=int(extra["NUM_LAYERS"]), num_joints=num_joints,
                       num_deconv_layers=int(extra["NUM_DECONV_LAYERS"]),
                       num_deconv_filters=tuple(int(f) for f in extra["NUM_DECONV_FILTERS"]),
                       num_deconv_kernels=tuple(int(k) for k in extra["NUM_DECONV_KERNELS"]),
                       deconv_with_bias=bool(extra.get("DECONV_WITH_BIAS", False)),
                       final_conv_kernel=int(extra.get("FINAL_CONV_KERNEL", 1)))
        except KeyError as e:
            raise ConfigError(f"MODEL.EXTRA: missing key {e.args[0]} for pose_resnet") from None


class PoseResNet(nn.Module):
    """SimpleBaseline: ResNet backbone + deconvolution head + final conv (official `pose_resnet` keys)."""

    def __init__(self, cfg: PoseResNetConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        allowed = sorted(PoseResNetConfig.__dataclass_fields__)
        bad = sorted(set(overrides) - set(allowed))
        if bad:
            raise ConfigError(f"unknown pose_resnet option(s) {bad}; allowed: {allowed}")
        cfg = replace(cfg or PoseResNetConfig(), **overrides)
        if cfg.depth not in RESNET_SPEC:
            raise ConfigError(f"pose_resnet depth {cfg.depth} not in {sorted(RESNET_SPEC)}")
        if len(cfg.num_deconv_filters) != cfg.num_deconv_layers or len(cfg.num_deconv_kernels) != cfg.num_deconv_layers:
            raise ConfigError("NUM_DECONV_LAYERS must equal len(NUM_DECONV_FILTERS) and len(NUM_DECONV_KERNELS)")
        if cfg.final_conv_kernel not in (1, 3):
            raise ConfigError(f"FINAL_CONV_KERNEL must be 1 or 3, got {cfg.final_conv_kernel}")
        self.cfg = cfg
        block, layers = RESNET_SPEC[cfg.depth]
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        (self.layer1, self.layer2, self.layer3, self.layer4), inplanes = make_resnet_layers(block, layers)
        self.deconv_layers = make_deconv_layers(inplanes, cfg.num_deconv_filters, cfg.num_deconv_kernels,
                                                cfg.deconv_with_bias)
        head_in = cfg.num_deconv_filters[-1] if cfg.num_deconv_layers else inplanes
        k = cfg.final_conv_kernel
        self.final_layer = nn.Conv2d(head_in, cfg.num_joints, kernel_size=k, stride=1, padding=1 if k == 3 else 0)
        self.init_weights()

    def init_weights(self) -> None:
        """Official from-scratch init: every conv/deconv N(0, 0.001) with zero bias, BN weight 1 and bias 0."""
        init_official(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.final_layer(self.deconv_layers(x))


def build_pose_resnet(depth: int, **overrides: Any) -> PoseResNet:
    """A SimpleBaseline with the official 3 x 256 (k4) deconv head unless overridden."""
    return PoseResNet(PoseResNetConfig(depth=depth), **overrides)


def _msra(sigma: float) -> dict[str, Any]:
    return {"sigma": sigma}


@register_model(input_size=(192, 256), heatmap_size=(48, 64), codec="msra", codec_cfg=_msra(2))
def simplebaseline_res50_256x192(**overrides: Any) -> nn.Module:
    """SimpleBaseline ResNet-50, COCO 256x192 (34.0 M params)."""
    return build_pose_resnet(50, **overrides)


@register_model(input_size=(192, 256), heatmap_size=(48, 64), codec="msra", codec_cfg=_msra(2))
def simplebaseline_res101_256x192(**overrides: Any) -> nn.Module:
    """SimpleBaseline ResNet-101, COCO 256x192 (53.0 M params)."""
    return build_pose_resnet(101, **overrides)


@register_model(input_size=(192, 256), heatmap_size=(48, 64), codec="msra", codec_cfg=_msra(2))
def simplebaseline_res152_256x192(**overrides: Any) -> nn.Module:
    """SimpleBaseline ResNet-152, COCO 256x192 (68.6 M params)."""
    return build_pose_resnet(152, **overrides)


@register_model(input_size=(288, 384), heatmap_size=(72, 96), codec="msra", codec_cfg=_msra(3))
def simplebaseline_res50_384x288(**overrides: Any) -> nn.Module:
    """SimpleBaseline ResNet-50, COCO 384x288."""
    return build_pose_resnet(50, **overrides)


@register_model(input_size=(256, 256), heatmap_size=(64, 64), codec="msra", codec_cfg=_msra(2), skeleton="mpii")
def simplebaseline_res50_256x256_mpii(**overrides: Any) -> nn.Module:
    """SimpleBaseline ResNet-50, MPII 256x256, 16 joints."""
    return build_pose_resnet(50, **{"num_joints": 16, **overrides})


@register_model(input_size=(96, 128), heatmap_size=(24, 32), codec="msra", codec_cfg=_msra(2))
def simplebaseline_res18_128x96(**overrides: Any) -> nn.Module:
    """Small CPU demo SimpleBaseline: ResNet-18 + 3 x 64-channel deconvs, 128x96 -> 32x24."""
    return build_pose_resnet(18, **{"num_deconv_filters": (64, 64, 64), **overrides})
