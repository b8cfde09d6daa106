"""Stacked hourglass networks (Newell et al. 2016) in two official layouts.

- `AEPoseNet`: the Associative Embedding PoseNet of princeton-vl/pose-ae-train (`models/posenet.py`), bottom-up,
  with its quirks kept so official checkpoints load and outputs match: NHWC input permuted inside, `Conv` =
  conv(bias) -> ReLU -> BatchNorm, the recursive hourglass does not pass `increase` (inner levels add 128
  channels), output `[N, nstack, oup_dim, H/4, W/4]` (channels 0:K detection heatmaps, K:2K tags).
- `HourglassNet`: the top-down stacked hourglass of bearpaw/pytorch-pose (`pose/models/hourglass.py`, used by
  the animal-pose CC-SSL/WS-CDA code): pre-activation bottlenecks (expansion 2), 4-level hourglasses, intermediate
  supervision. In training mode it returns the list of every stack's heatmaps [N, K, H/4, W/4] (one loss per stack);
  in eval mode it returns the last stack's heatmaps as one tensor (what decoding uses).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from posekit.errors import ConfigError
from posekit.models.registry import register_model

# ----------------------------------------------------------------------------------------------------------------
# Associative Embedding PoseNet (pose-ae-train)


class AEConv(nn.Module):
    """Conv2d(bias, 'same' padding) -> ReLU (optional) -> BatchNorm (optional): ReLU before BN, as the official."""

    def __init__(self, inp_dim: int, out_dim: int, kernel_size: int = 3, stride: int = 1, bn: bool = False,
                 relu: bool = True) -> None:
        super().__init__()
        self.inp_dim = inp_dim
        self.conv = nn.Conv2d(inp_dim, out_dim, kernel_size, stride, padding=(kernel_size - 1) // 2, bias=True)
        self.relu = nn.ReLU() if relu else None
        self.bn = nn.BatchNorm2d(out_dim) if bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.relu is not None:
            x = self.relu(x)
        if self.bn is not None:
            x = self.bn(x)
        return x


class AEMerge(nn.Module):
    """1x1 conv without ReLU/BN mapping a stack's features or predictions into the next stack's input."""

    def __init__(self, x_dim: int, y_dim: int) -> None:
        super().__init__()
        self.conv = AEConv(x_dim, y_dim, 1, relu=False, bn=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class AEHourglass(nn.Module):
    """Recursive hourglass of depth n; only this level widens by `increase`, inner levels by the default 128."""

    def __init__(self, n: int, f: int, bn: bool = False, increase: int = 128, inner_increase: int = 128) -> None:
        super().__init__()
        nf = f + increase
        self.up1 = AEConv(f, f, 3, bn=bn)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.low1 = AEConv(f, nf, 3, bn=bn)
        # official quirk: `increase` is not passed down the recursion (inner levels add inner_increase, default 128)
        self.low2: nn.Module = (AEHourglass(n - 1, nf, bn=bn, increase=inner_increase, inner_increase=inner_increase)
                                if n > 1 else AEConv(nf, nf, 3, bn=bn))
        self.low3 = AEConv(nf, f, 3)  # never has BN (official)
        self.up2 = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up1 = self.up1(x)
        low = self.low3(self.low2(self.low1(self.pool1(x))))
        return up1 + self.up2(low)


def coord_maps(x: torch.Tensor) -> torch.Tensor:
    """[N, 2, H, W] pixel-centre x and y coordinates of x [N, C, H, W], each in (-1, 1) (CoordConv input)."""
    n, _, h, w = x.shape
    ys = (torch.arange(h, device=x.device, dtype=x.dtype) + 0.5) * (2.0 / h) - 1
    xs = (torch.arange(w, device=x.device, dtype=x.dtype) + 0.5) * (2.0 / w) - 1
    return torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)])[None].expand(n, 2, h, w)


class AEPoseNet(nn.Module):
    """Associative Embedding stacked hourglass: input [N, H, W, 3] (NHWC, official) -> [N, nstack, oup_dim, H/4, W/4].

    The official pipeline feeds RGB images scaled to [0, 1] (no mean/std). `input_layout="NCHW"` accepts
    [N, 3, H, W] instead (same weights, no permute). `coord_channels` (posekit, off in the official model) appends
    the pixels' x and y in (-1, 1) to the input (CoordConv), so tags can depend on where a person is.
    """

    def __init__(self, nstack: int = 4, inp_dim: int = 256, oup_dim: int = 68, bn: bool = False,
                 increase: int = 128, input_layout: str = "NHWC", inner_increase: int = 128,
                 stem_dims: tuple[int, int] = (64, 128), coord_channels: bool = False) -> None:
        super().__init__()
        if input_layout not in ("NHWC", "NCHW"):
            raise ConfigError(f"AEPoseNet input_layout must be 'NHWC' or 'NCHW', got {input_layout!r}")
        if nstack < 1:
            raise ConfigError(f"AEPoseNet nstack must be >= 1, got {nstack}")
        self.nstack = nstack
        self.input_layout = input_layout
        self.coord_channels = bool(coord_channels)
        s1, s2 = stem_dims  # official 64, 128
        self.pre = nn.Sequential(
            AEConv(5 if coord_channels else 3, s1, 7, 2, bn=bn),
            AEConv(s1, s2, bn=bn),
            nn.MaxPool2d(2, 2),
            AEConv(s2, s2, bn=bn),
            AEConv(s2, inp_dim, bn=bn),
        )
        self.features = nn.ModuleList([
            nn.Sequential(AEHourglass(4, inp_dim, bn, increase, inner_increase), AEConv(inp_dim, inp_dim, 3, bn=False),
                          AEConv(inp_dim, inp_dim, 3, bn=False))
            for _ in range(nstack)
        ])
        self.outs = nn.ModuleList([AEConv(inp_dim, oup_dim, 1, relu=False, bn=False) for _ in range(nstack)])
        self.merge_features = nn.ModuleList([AEMerge(inp_dim, inp_dim) for _ in range(nstack - 1)])
        self.merge_preds = nn.ModuleList([AEMerge(oup_dim, inp_dim) for _ in range(nstack - 1)])

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        x = imgs.permute(0, 3, 1, 2) if self.input_layout == "NHWC" else imgs
        if self.coord_channels:
            x = torch.cat([x, coord_maps(x)], dim=1)
        x = self.pre(x)
        preds = []
        for i in range(self.nstack):
            feature = self.features[i](x)
            preds.append(self.outs[i](feature))
            if i != self.nstack - 1:
                x = x + self.merge_preds[i](preds[-1]) + self.merge_features[i](feature)
        return torch.stack(preds, 1)


def _ae_cfg(cfg: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Zoo overrides; `num_joints` (what the engine passes for another skeleton/codec head) sets oup_dim."""
    cfg = dict(cfg)
    if "num_joints" in overrides:
        overrides = dict(overrides)
        cfg["oup_dim"] = int(overrides.pop("num_joints"))
    cfg.update(overrides)
    return cfg


@register_model(input_size=(512, 512), heatmap_size=(128, 128), codec="ae", codec_cfg={"sigma": 2.0},
                skeleton="coco", task="bottomup")
def ae_hourglass_512(**overrides: Any) -> AEPoseNet:
    """AE bottom-up hourglass, COCO (task/pose.py config: 4 stacks, 256 ch, oup_dim 68, increase 128).

    The zoo entry takes posekit's [N, 3, H, W] input (`input_layout="NCHW"`); pass `input_layout="NHWC"` for the
    official layout. Same weights either way. Official checkpoints expect RGB / 255 input (codec normalize="unit").
    """
    return AEPoseNet(**_ae_cfg(dict(nstack=4, inp_dim=256, oup_dim=68, bn=False, increase=128, input_layout="NCHW"),
                               overrides))


@register_model(input_size=(128, 128), heatmap_size=(32, 32), codec="ae",
                codec_cfg={"sigma": 1.0, "subpixel": True, "official_refine_clamp": False},
                skeleton="coco", task="bottomup")
def ae_hourglass_small_128(**overrides: Any) -> AEPoseNet:
    """Small CPU-trainable AE hourglass (posekit): stem 32/64 ch (official 64/128), 2 stacks of 48 ch, +24 ch per
    level at every level (the official recursion adds 128 inside: `inner_increase`), BatchNorm, 17 det + 17 tag
    channels, 128x128 input, 32x32 maps (2.5 M params, 0.39 GMACs).

    Unlike the official model (measured reasons in configs/synth/ae_small.yaml): x/y coordinate input channels
    (`coord_channels`; without them the tags collapse to one value for everybody in short CPU runs), sub-pixel
    training heatmaps (`subpixel`; at 32x32 maps the official truncated centres cap even perfect outputs at AP
    0.58 on the synthetic split, 0.94 sub-pixel), refine's border clamp at the map height (the official clamp at
    the joint count 16 is wrong for maps of other sizes)."""
    return AEPoseNet(**_ae_cfg(dict(nstack=2, inp_dim=48, oup_dim=34, bn=True, increase=24, inner_increase=24,
                                    stem_dims=(32, 64), input_layout="NCHW", coord_channels=True), overrides))


# ----------------------------------------------------------------------------------------------------------------
# Top-down stacked hourglass (bearpaw/pytorch-pose HourglassNet)


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck (BN-ReLU-conv x3, biased convs), expansion 2, no ReLU after the add."""

    expansion = 2

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=True)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=True)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 2, kernel_size=1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + residual


def _residuals(inplanes: int, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
    """`blocks` bottlenecks; the first projects with a biased 1x1 conv (`downsample.0`) when the shape changes."""
    downsample = None
    if stride != 1 or inplanes != planes * PreActBottleneck.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * PreActBottleneck.expansion, kernel_size=1, stride=stride, bias=True))
    layers = [PreActBottleneck(inplanes, planes, stride, downsample)]
    layers += [PreActBottleneck(planes * PreActBottleneck.expansion, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class Hourglass(nn.Module):
    """One hourglass of `depth` levels; `hg[level]` holds (skip, down, up) residual groups, plus the bottom one."""

    def __init__(self, num_blocks: int, planes: int, depth: int = 4) -> None:
        super().__init__()
        self.depth = depth
        ch = planes * PreActBottleneck.expansion
        self.hg = nn.ModuleList()
        for level in range(depth):
            groups = 4 if level == 0 else 3
            self.hg.append(nn.ModuleList([_residuals(ch, planes, num_blocks) for _ in range(groups)]))

    def _forward(self, n: int, x: torch.Tensor) -> torch.Tensor:
        skip, down, up = self.hg[n - 1][0], self.hg[n - 1][1], self.hg[n - 1][2]
        low = down(F.max_pool2d(x, 2, stride=2))
        low = self._forward(n - 1, low) if n > 1 else self.hg[0][3](low)
        return skip(x) + F.interpolate(up(low), scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(self.depth, x)


class HourglassNet(nn.Module):
    """Top-down stacked hourglass with intermediate supervision; [N,3,H,W] -> heatmaps at stride 4.

    Training mode returns `list[Tensor]` (one [N, K, H/4, W/4] per stack, for intermediate supervision); eval mode
    returns the last stack's tensor.
    """

    def __init__(self, num_stacks: int = 2, num_blocks: int = 1, num_joints: int = 16, num_feats: int = 128) -> None:
        super().__init__()
        if num_stacks < 1 or num_blocks < 1:
            raise ConfigError(f"hourglass num_stacks and num_blocks must be >= 1, got {num_stacks}, {num_blocks}")
        self.num_stacks = num_stacks
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=True)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _residuals(64, 64, 1)  # -> 128
        self.layer2 = _residuals(128, 128, 1)  # -> 256
        self.layer3 = _residuals(256, num_feats, 1)  # -> 2 * num_feats
        self.maxpool = nn.MaxPool2d(2, stride=2)
        ch = num_feats * PreActBottleneck.expansion
        self.hg = nn.ModuleList([Hourglass(num_blocks, num_feats, 4) for _ in range(num_stacks)])
        self.res = nn.ModuleList([_residuals(ch, num_feats, num_blocks) for _ in range(num_stacks)])
        self.fc = nn.ModuleList([
            nn.Sequential(nn.Conv2d(ch, ch, kernel_size=1, bias=True), nn.BatchNorm2d(ch), nn.ReLU(inplace=True))
            for _ in range(num_stacks)
        ])
        self.score = nn.ModuleList([nn.Conv2d(ch, num_joints, kernel_size=1, bias=True) for _ in range(num_stacks)])
        self.fc_ = nn.ModuleList([nn.Conv2d(ch, ch, kernel_size=1, bias=True) for _ in range(num_stacks - 1)])
        self.score_ = nn.ModuleList([nn.Conv2d(num_joints, ch, kernel_size=1, bias=True)
                                     for _ in range(num_stacks - 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.maxpool(self.layer1(x))))
        outs = []
        for i in range(self.num_stacks):
            y = self.fc[i](self.res[i](self.hg[i](x)))
            score = self.score[i](y)
            outs.append(score)
            if i < self.num_stacks - 1:
                x = x + self.fc_[i](y) + self.score_[i](score)
        return outs if self.training else outs[-1]


_HG_ZOO = dict(input_size=(256, 256), heatmap_size=(64, 64), codec="msra", codec_cfg={"sigma": 2.0},
               skeleton="mpii")


@register_model(**_HG_ZOO)
def hourglass_2stack_256x256(**overrides: Any) -> HourglassNet:
    """Top-down 2-stack hourglass (1 residual per block), MPII 256x256."""
    cfg: dict[str, Any] = dict(num_stacks=2, num_blocks=1, num_joints=16)
    cfg.update(overrides)
    return HourglassNet(**cfg)


@register_model(**_HG_ZOO)
def hourglass_4stack_256x256(**overrides: Any) -> HourglassNet:
    """Top-down 4-stack hourglass (1 residual per block), the animal-pose (CC-SSL `-a hg --stacks 4`) setting."""
    cfg: dict[str, Any] = dict(num_stacks=4, num_blocks=1, num_joints=16)
    cfg.update(overrides)
    return HourglassNet(**cfg)
