"""MSPN (Li et al. 2019, "Rethinking on Multi-Stage Networks for Human Pose Estimation"), official layout.

Module names follow megvii-detection/MSPN (`top`, `stage{i}.downsample.layer{1..4}`, `stage{i}.upsample.up{1..4}`,
`conv_bn_relu` units with biased convs) so official checkpoints map key for key. Each stage is a ResNet-50
(Bottleneck, [3, 4, 6, 3]) followed by a global-net style upsampling path of four units (256 channels) that
each predict heatmaps, upsampled bilinearly to the stride-4 size (coarse-to-fine supervision: unit 1 is the
coarsest). Cross-stage aggregation: stage i's units emit `skip1` (from the down path) and `skip2` (from the up path)
that are added to stage i+1's layer outputs, and the finest unit's `cross_conv` (64 ch, stride 4) is stage i+1's
input.

Outputs: training mode returns `list[list[Tensor]]`, per stage the four unit heatmaps [N, K, H/4, W/4], coarse to
fine; eval mode returns the last stage's finest heatmaps [N, K, H/4, W/4] (the official test output).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from posekit.errors import ConfigError
from posekit.models.registry import register_model

RESNET50_LAYERS = (3, 4, 6, 3)


class ConvBnRelu(nn.Module):
    """Conv2d (with bias) -> BN (optional) -> ReLU (optional); the BN exists even when unused (official keys)."""

    def __init__(self, in_planes: int, out_planes: int, kernel_size: int, stride: int, padding: int,
                 has_bn: bool = True, has_relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size=kernel_size, stride=stride, padding=padding)
        self.bn = nn.BatchNorm2d(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self.has_bn = has_bn
        self.has_relu = has_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.has_bn:
            x = self.bn(x)
        if self.has_relu:
            x = self.relu(x)
        return x


class MSPNBottleneck(nn.Module):
    """ResNet bottleneck built from ConvBnRelu units (expansion 4, stride on the 3x3)."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv_bn_relu1 = ConvBnRelu(in_planes, planes, 1, 1, 0)
        self.conv_bn_relu2 = ConvBnRelu(planes, planes, 3, stride, 1)
        self.conv_bn_relu3 = ConvBnRelu(planes, planes * self.expansion, 1, 1, 0, has_relu=False)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_bn_relu3(self.conv_bn_relu2(self.conv_bn_relu1(x)))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


class ResNetTop(nn.Module):
    """Shared stem: 7x7/2 ConvBnRelu (64 ch) + 3x3/2 max-pool (stride 4)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = ConvBnRelu(3, 64, 7, 2, 3)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.conv(x))


class DownsamplePath(nn.Module):
    """ResNet layer1..4 of one stage; with `has_skip`, the previous stage's skips are added after each layer."""

    def __init__(self, layers: tuple[int, ...] = RESNET50_LAYERS, has_skip: bool = False) -> None:
        super().__init__()
        self.has_skip = has_skip
        self.in_planes = 64
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        for m in self.modules():  # official init of the down path
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        out = planes * MSPNBottleneck.expansion
        downsample = None
        if stride != 1 or self.in_planes != out:
            downsample = ConvBnRelu(self.in_planes, out, 1, stride, 0, has_relu=False)
        layers = [MSPNBottleneck(self.in_planes, planes, stride, downsample)]
        self.in_planes = out
        layers += [MSPNBottleneck(out, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, skip1: list[torch.Tensor] | None,
                skip2: list[torch.Tensor] | None) -> list[torch.Tensor]:
        """Layer outputs [x1 (stride 4), x2, x3, x4 (stride 32)]."""
        feats = []
        for i, layer in enumerate((self.layer1, self.layer2, self.layer3, self.layer4)):
            x = layer(x)
            if self.has_skip:
                if skip1 is None or skip2 is None:
                    raise ConfigError("MSPN stage with has_skip needs the previous stage's skip features")
                x = x + skip1[i] + skip2[i]
            feats.append(x)
        return feats


class UpsampleUnit(nn.Module):
    """Global-net unit: lateral 1x1 + upsampled coarser map, a heatmap head, and the cross-stage skips."""

    def __init__(self, ind: int, in_planes: int, num_joints: int, chl_num: int = 256, gen_skip: bool = False,
                 gen_cross_conv: bool = False) -> None:
        super().__init__()
        self.ind = ind
        self.u_skip = ConvBnRelu(in_planes, chl_num, 1, 1, 0, has_relu=False)
        self.relu = nn.ReLU(inplace=True)
        if ind > 0:
            self.up_conv = ConvBnRelu(chl_num, chl_num, 1, 1, 0, has_relu=False)
        self.gen_skip = gen_skip
        if gen_skip:
            self.skip1 = ConvBnRelu(in_planes, in_planes, 1, 1, 0)
            self.skip2 = ConvBnRelu(chl_num, in_planes, 1, 1, 0)
        self.gen_cross_conv = gen_cross_conv and ind == 3
        if self.gen_cross_conv:
            self.cross_conv = ConvBnRelu(chl_num, 64, 1, 1, 0)
        self.res_conv1 = ConvBnRelu(chl_num, chl_num, 1, 1, 0)
        self.res_conv2 = ConvBnRelu(chl_num, num_joints, 3, 1, 1, has_relu=False)

    def forward(self, x: torch.Tensor, up_x: torch.Tensor | None,
                out_size: torch.Size) -> tuple[torch.Tensor, ...]:
        out = self.u_skip(x)
        if self.ind > 0:
            if up_x is None:
                raise ConfigError("MSPN upsample unit > 0 needs the coarser unit's output")
            up = F.interpolate(up_x, size=x.shape[-2:], mode="bilinear", align_corners=True)
            out = out + self.up_conv(up)
        out = self.relu(out)
        res = self.res_conv2(self.res_conv1(out))
        res = F.interpolate(res, size=out_size, mode="bilinear", align_corners=True)
        skip1 = self.skip1(x) if self.gen_skip else None
        skip2 = self.skip2(out) if self.gen_skip else None
        cross = self.cross_conv(out) if self.gen_cross_conv else None
        return out, res, skip1, skip2, cross


class UpsamplePath(nn.Module):
    """Four upsample units from stride 32 (up1) to stride 4 (up4)."""

    def __init__(self, num_joints: int, chl_num: int = 256, gen_skip: bool = False,
                 gen_cross_conv: bool = False) -> None:
        super().__init__()
        in_planes = (2048, 1024, 512, 256)
        self.up1 = UpsampleUnit(0, in_planes[0], num_joints, chl_num, gen_skip, gen_cross_conv)
        self.up2 = UpsampleUnit(1, in_planes[1], num_joints, chl_num, gen_skip, gen_cross_conv)
        self.up3 = UpsampleUnit(2, in_planes[2], num_joints, chl_num, gen_skip, gen_cross_conv)
        self.up4 = UpsampleUnit(3, in_planes[3], num_joints, chl_num, gen_skip, gen_cross_conv)

    def forward(self, feats: list[torch.Tensor]) -> tuple[list[torch.Tensor], list | None, list | None, Any]:
        """(heatmaps coarse->fine, skip1 and skip2 fine->coarse, cross_conv)."""
        x1, x2, x3, x4 = feats
        size = x1.shape[-2:]
        res, skip1, skip2 = [], [], []
        up, cross = None, None
        for unit, x in ((self.up1, x4), (self.up2, x3), (self.up3, x2), (self.up4, x1)):
            up, r, s1, s2, cross = unit(x, up, size)
            res.append(r)
            skip1.insert(0, s1)
            skip2.insert(0, s2)
        if skip1[0] is None:
            return res, None, None, cross
        return res, skip1, skip2, cross


class SingleStage(nn.Module):
    """One MSPN stage: down path (ResNet-50) + up path."""

    def __init__(self, num_joints: int, has_skip: bool, gen_skip: bool, gen_cross_conv: bool,
                 chl_num: int = 256) -> None:
        super().__init__()
        self.downsample = DownsamplePath(RESNET50_LAYERS, has_skip)
        self.upsample = UpsamplePath(num_joints, chl_num, gen_skip, gen_cross_conv)

    def forward(self, x: torch.Tensor, skip1: list | None, skip2: list | None) -> tuple:
        return self.upsample(self.downsample(x, skip1, skip2))


class MSPN(nn.Module):
    """Multi-stage pose network: shared stem + `stage_num` ResNet-50 stages with cross-stage aggregation."""

    def __init__(self, stage_num: int = 2, num_joints: int = 17, upsample_chl_num: int = 256) -> None:
        super().__init__()
        if stage_num < 1:
            raise ConfigError(f"MSPN MODEL.STAGE_NUM must be >= 1, got {stage_num}")
        self.stage_num = stage_num
        self.top = ResNetTop()
        for i in range(stage_num):
            last = i == stage_num - 1
            setattr(self, f"stage{i}", SingleStage(num_joints, has_skip=i > 0, gen_skip=not last,
                                                   gen_cross_conv=not last, chl_num=upsample_chl_num))

    def stages(self) -> list[SingleStage]:
        """The stage modules in order."""
        return [getattr(self, f"stage{i}") for i in range(self.stage_num)]

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[list[torch.Tensor]]:
        x = self.top(x)
        skip1 = skip2 = None
        outputs = []
        for stage in self.stages():
            res, skip1, skip2, x = stage(x, skip1, skip2)
            outputs.append(res)
        return outputs if self.training else outputs[-1][-1]


_MSPN_ZOO = dict(input_size=(192, 256), heatmap_size=(48, 64), codec="msra", codec_cfg={"sigma": 2.0},
                 skeleton="coco")


@register_model(**_MSPN_ZOO)
def mspn_2stg_256x192(**overrides: Any) -> MSPN:
    """2-stage MSPN (ResNet-50 stages), COCO 256x192."""
    cfg: dict[str, Any] = dict(stage_num=2, num_joints=17)
    cfg.update(overrides)
    return MSPN(**cfg)


@register_model(**_MSPN_ZOO)
def mspn_4stg_256x192(**overrides: Any) -> MSPN:
    """4-stage MSPN (ResNet-50 stages), COCO 256x192."""
    cfg: dict[str, Any] = dict(stage_num=4, num_joints=17)
    cfg.update(overrides)
    return MSPN(**cfg)
