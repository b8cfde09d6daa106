"""HRNet (official `pose_hrnet`), config-driven by the official MODEL.EXTRA.STAGE1..4 vocabulary.

Two heads: "pose" (official pose_hrnet: 1x1/3x3 conv on the highest-resolution branch -> K heatmaps at stride 4)
and "cls" (the classification-HRNet `_make_head` used as PRTR's backbone: incre/downsamp/final layers giving a
2048-channel map at stride 32). State-dict keys equal the official ones.

Deliberate difference: for an EXISTING branch whose channel count changes between stages the official forward
applies transition{k}[i] to y_list[-1] (the lowest resolution) instead of y_list[i]; that crashes or mixes
resolutions and no official config triggers it. Here the transition is applied to y_list[i].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from posekit.errors import ConfigError
from posekit.models.registry import register_model
from posekit.models.resnet import BLOCKS, BN_MOMENTUM, Bottleneck, init_official, make_layer


@dataclass(frozen=True)
class StageConfig:
    """One official STAGEk block of MODEL.EXTRA."""

    num_modules: int
    num_branches: int
    block: str
    num_blocks: tuple[int, ...]
    num_channels: tuple[int, ...]
    fuse_method: str = "SUM"

    def __post_init__(self) -> None:
        if self.block not in BLOCKS:
            raise ConfigError(f"HRNet stage BLOCK must be one of {sorted(BLOCKS)}, got {self.block!r}")
        if len(self.num_blocks) != self.num_branches:
            raise ConfigError(
                f"HRNet stage NUM_BRANCHES({self.num_branches}) != len(NUM_BLOCKS)({len(self.num_blocks)})")
        if len(self.num_channels) != self.num_branches:
            raise ConfigError(
                f"HRNet stage NUM_BRANCHES({self.num_branches}) != len(NUM_CHANNELS)({len(self.num_channels)})")
        if self.fuse_method != "SUM":
            raise ConfigError(f"HRNet FUSE_METHOD must be 'SUM', got {self.fuse_method!r}")


def stage(num_modules: int, block: str, num_blocks: Sequence[int], num_channels: Sequence[int]) -> StageConfig:
    """Shorthand for a StageConfig (NUM_BRANCHES = len(NUM_CHANNELS))."""
    return StageConfig(num_modules, len(num_channels), block, tuple(num_blocks), tuple(num_channels))


@dataclass(frozen=True)
class HRNetConfig:
    """MODEL.EXTRA of pose_hrnet. stage1=None means the official pose_hrnet hard-coded layer1 (Bottleneck 64 x 4)."""

    stage2: StageConfig
    stage3: StageConfig
    stage4: StageConfig
    stage1: StageConfig | None = None
    num_joints: int = 17
    final_conv_kernel: int = 1
    head: str = "pose"  # "pose" (heatmaps) | "cls" (classification-HRNet 2048-channel head, PRTR backbone)
    head_channels: tuple[int, ...] = field(default=(32, 64, 128, 256))
    upsample: int = 0  # posekit: x2 deconvolutions (4x4, BN, ReLU) before the pose head's final layer (stride 4 -> 2)

    @classmethod
    def from_official(cls, extra: Mapping[str, Any], num_joints: int = 17, head: str = "pose") -> HRNetConfig:
        """Build from an official MODEL.EXTRA dict (keys STAGE1..4, FINAL_CONV_KERNEL)."""

        def parse(name: str) -> StageConfig:
            try:
                s = extra[name]
                chans = tuple(int(c) for c in s["NUM_CHANNELS"])
                return StageConfig(int(s.get("NUM_MODULES", 1)), int(s.get("NUM_BRANCHES", len(chans))),
                                   str(s["BLOCK"]).upper(), tuple(int(b) for b in s["NUM_BLOCKS"]), chans,
                                   str(s.get("FUSE_METHOD", "SUM")))
            except KeyError as e:
                raise ConfigError(f"MODEL.EXTRA.{name}: missing key {e.args[0]}") from None

        return cls(stage2=parse("STAGE2"), stage3=parse("STAGE3"), stage4=parse("STAGE4"),
                   stage1=parse("STAGE1") if "STAGE1" in extra else None, num_joints=num_joints,
                   final_conv_kernel=int(extra.get("FINAL_CONV_KERNEL", 1)), head=head)


def conv_bn(cin: int, cout: int, kernel: int, stride: int, relu: bool, bn_momentum: float = 0.1) -> nn.Sequential:
    """Conv (no bias) + BN (+ ReLU) as one Sequential: keys `.0` conv, `.1` bn."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                               nn.BatchNorm2d(cout, momentum=bn_momentum)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of residual blocks followed by the all-to-all fusion (official keys branches/fuse_layers)."""

    def __init__(self, cfg: StageConfig, in_channels: Sequence[int], multi_scale_output: bool = True) -> None:
        super().__init__()
        block = BLOCKS[cfg.block]
        if len(in_channels) != cfg.num_branches:
            raise ConfigError(f"HRNet module gets {len(in_channels)} inputs for NUM_BRANCHES={cfg.num_branches}")
        self.num_branches = cfg.num_branches
        self.branches = nn.ModuleList(
            make_layer(block, in_channels[i], cfg.num_channels[i], cfg.num_blocks[i]) for i in range(cfg.num_branches)
        )
        self.out_channels = [c * block.expansion for c in cfg.num_channels]
        self.fuse_layers = self._make_fuse_layers(multi_scale_output) if self.num_branches > 1 else None
        self.relu = nn.ReLU(inplace=True)

    def _make_fuse_layers(self, multi_scale_output: bool) -> nn.ModuleList:
        ch = self.out_channels
        fuse_layers = nn.ModuleList()
        for i in range(self.num_branches if multi_scale_output else 1):
            row: list[nn.Module | None] = []
            for j in range(self.num_branches):
                if j > i:  # lower resolution: 1x1 conv + BN, nearest upsample
                    row.append(nn.Sequential(nn.Conv2d(ch[j], ch[i], 1, 1, 0, bias=False), nn.BatchNorm2d(ch[i]),
                                             nn.Upsample(scale_factor=2 ** (j - i), mode="nearest")))
                elif j == i:
                    row.append(None)
                else:  # higher resolution: (i - j) stride-2 3x3 convs, ReLU on all but the last
                    steps = [conv_bn(ch[j], ch[j], 3, 2, relu=True) for _ in range(i - j - 1)]
                    steps.append(conv_bn(ch[j], ch[i], 3, 2, relu=False))
                    row.append(nn.Sequential(*steps))
            fuse_layers.append(nn.ModuleList(row))
        return fuse_layers

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        x = [branch(xi) for branch, xi in zip(self.branches, x, strict=True)]
        if self.fuse_layers is None:
            return x
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = x[i] if i == 0 else row[0](x[0])
            for j in range(1, self.num_branches):
                y = y + (x[j] if i == j else row[j](x[j]))
            out.append(self.relu(y))
        return out


def make_transition(pre: Sequence[int], cur: Sequence[int]) -> nn.ModuleList:
    """Official transition: 3x3 conv where an existing branch changes width; stride-2 chains for new branches."""
    layers: list[nn.Module | None] = []
    for i, c in enumerate(cur):
        if i < len(pre):
            layers.append(conv_bn(pre[i], c, 3, 1, relu=True) if c != pre[i] else None)
        else:
            steps = [conv_bn(pre[-1], pre[-1], 3, 2, relu=True) for _ in range(i - len(pre))]
            steps.append(conv_bn(pre[-1], c, 3, 2, relu=True))
            layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


def apply_transition(transition: nn.ModuleList, y_list: list[torch.Tensor]) -> list[torch.Tensor]:
    """Inputs of the next stage: existing branches from y_list[i], new branches from the lowest resolution."""
    out = []
    for i, t in enumerate(transition):
        if i < len(y_list):
            out.append(y_list[i] if t is None else t(y_list[i]))
        else:
            out.append(t(y_list[-1]))
    return out


class PoseHighResolutionNet(nn.Module):
    """HRNet with the official pose_hrnet (or classification-HRNet) layout and key names."""

    def __init__(self, cfg: HRNetConfig) -> None:
        super().__init__()
        if cfg.head not in ("pose", "cls"):
            raise ConfigError(f"HRNet head must be 'pose' or 'cls', got {cfg.head!r}")
        if cfg.final_conv_kernel not in (1, 3):
            raise ConfigError(f"FINAL_CONV_KERNEL must be 1 or 3, got {cfg.final_conv_kernel}")
        self.cfg = cfg
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(64, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        s1 = cfg.stage1 or stage(1, "BOTTLENECK", [4], [64])
        if s1.num_branches != 1:
            raise ConfigError(f"HRNet STAGE1 must have one branch, got {s1.num_branches}")
        block1 = BLOCKS[s1.block]
        self.layer1 = make_layer(block1, 64, s1.num_channels[0], s1.num_blocks[0])
        pre = [s1.num_channels[0] * block1.expansion]
        for k, s in ((1, cfg.stage2), (2, cfg.stage3), (3, cfg.stage4)):
            cur = [c * BLOCKS[s.block].expansion for c in s.num_channels]
            setattr(self, f"transition{k}", make_transition(pre, cur))
            last = k == 3 and cfg.head == "pose"  # pose head: only the highest-resolution output of stage 4
            modules = []
            for m in range(s.num_modules):
                modules.append(HighResolutionModule(s, cur, multi_scale_output=not (last and m == s.num_modules - 1)))
            setattr(self, f"stage{k + 1}", nn.Sequential(*modules))
            pre = cur
        self.pre_stage_channels = pre
        if cfg.head == "pose":
            if cfg.upsample:
                c = pre[0]
                self.deconv_layers = nn.Sequential(*(layer for _ in range(cfg.upsample) for layer in (
                    nn.ConvTranspose2d(c, c, 4, stride=2, padding=1, bias=False),
                    nn.BatchNorm2d(c, momentum=BN_MOMENTUM), nn.ReLU(inplace=True))))
            k = cfg.final_conv_kernel
            self.final_layer = nn.Conv2d(pre[0], cfg.num_joints, kernel_size=k, stride=1, padding=1 if k == 3 else 0)
            self.out_channels = cfg.num_joints
        else:
            self._make_cls_head(pre, cfg.head_channels)
        init_official(self)

    def _make_cls_head(self, pre: Sequence[int], head_channels: Sequence[int]) -> None:
        """Classification-HRNet head: per-branch Bottleneck, stride-2 merges, 1x1 conv to 2048 channels."""
        if len(head_channels) != len(pre):
            raise ConfigError(f"cls head needs {len(pre)} head channels, got {len(head_channels)}")
        self.incre_modules = nn.ModuleList(
            make_layer(Bottleneck, c, h, 1) for c, h in zip(pre, head_channels, strict=True))
        exp = Bottleneck.expansion
        self.downsamp_modules = nn.ModuleList(
            nn.Sequential(nn.Conv2d(head_channels[i] * exp, head_channels[i + 1] * exp, 3, 2, 1),
                          nn.BatchNorm2d(head_channels[i + 1] * exp, momentum=BN_MOMENTUM), nn.ReLU(inplace=True))
            for i in range(len(head_channels) - 1))
        self.final_layer = nn.Sequential(nn.Conv2d(head_channels[-1] * exp, 2048, 1, 1, 0),
                                         nn.BatchNorm2d(2048, momentum=BN_MOMENTUM), nn.ReLU(inplace=True))
        self.out_channels = 2048

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stage-4 branch outputs (one map for the pose head, all branches for the cls head)."""
        x = self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))
        y = [self.layer1(x)]
        for k in (1, 2, 3):
            y = getattr(self, f"stage{k + 1}")(apply_transition(getattr(self, f"transition{k}"), y))
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.forward_features(x)
        if self.cfg.head == "pose":
            return self.final_layer(self.deconv_layers(y[0]) if self.cfg.upsample else y[0])
        out = self.incre_modules[0](y[0])
        for i, down in enumerate(self.downsamp_modules):
            out = self.incre_modules[i + 1](y[i + 1]) + down(out)
        return self.final_layer(out)


def hrnet_config(width: int, num_joints: int = 17, blocks: int = 4, modules: tuple[int, int, int] = (1, 4, 3),
                 **kw: Any) -> HRNetConfig:
    """The official HRNet-W{width} pose config (BASIC blocks, widths w, 2w, 4w, 8w)."""
    w = [width, 2 * width, 4 * width, 8 * width]
    return HRNetConfig(stage2=stage(modules[0], "BASIC", [blocks] * 2, w[:2]),
                       stage3=stage(modules[1], "BASIC", [blocks] * 3, w[:3]),
                       stage4=stage(modules[2], "BASIC", [blocks] * 4, w), num_joints=num_joints, **kw)


# HRNet-W18-Small-v2 as in HRNet-Image-Classification (stage1 2 Bottlenecks, modules 1/3/2, 2 blocks per branch);
# with the pose head it has 3.62 M params. No official pose fixture exists for it.
W18_SMALL_V2 = HRNetConfig(
    stage1=stage(1, "BOTTLENECK", [2], [64]),
    stage2=stage(1, "BASIC", [2, 2], [18, 36]),
    stage3=stage(3, "BASIC", [2, 2, 2], [18, 36, 72]),
    stage4=stage(2, "BASIC", [2, 2, 2, 2], [18, 36, 72, 144]),
)

# CPU-friendly demo model (our own choice): one Bottleneck(32) in layer1, widths 16/32/64/128, one module per
# stage with one block per branch; 128x96 input -> 32x24 heatmaps; 0.77 M params, 0.11 GMACs. A batch-32 training
# step took ~0.8 CPU-s on one thread vs ~1.9 CPU-s for simplebaseline_res18_128x96 (0.47 GMACs).
TINY_W16 = HRNetConfig(
    stage1=stage(1, "BOTTLENECK", [1], [32]),
    stage2=stage(1, "BASIC", [1, 1], [16, 32]),
    stage3=stage(1, "BASIC", [1, 1, 1], [16, 32, 64]),
    stage4=stage(1, "BASIC", [1, 1, 1, 1], [16, 32, 64, 128]),
)


def build_hrnet(cfg: HRNetConfig, **overrides: Any) -> PoseHighResolutionNet:
    """An HRNet from a config with dataclass-field overrides (num_joints, final_conv_kernel, head, ...)."""
    bad = set(overrides) - set(HRNetConfig.__dataclass_fields__)
    if bad:
        raise ConfigError(f"unknown HRNet option(s) {sorted(bad)}; allowed: {sorted(HRNetConfig.__dataclass_fields__)}")
    return PoseHighResolutionNet(replace(cfg, **overrides))


def _msra(sigma: float) -> dict[str, Any]:
    return {"sigma": sigma}


@register_model(input_size=(192, 256), heatmap_size=(48, 64), codec="msra", codec_cfg=_msra(2))
def hrnet_w32_256x192(**overrides: Any) -> nn.Module:
    """HRNet-W32, COCO 256x192 (28.5 M params)."""
    return build_hrnet(hrnet_config(32), **overrides)


@register_model(input_size=(288, 384), heatmap_size=(72, 96), codec="msra", codec_cfg=_msra(3))
def hrnet_w32_384x288(**overrides: Any) -> nn.Module:
    """HRNet-W32, COCO 384x288."""
    return build_hrnet(hrnet_config(32), **overrides)


@register_model(input_size=(192, 256), heatmap_size=(48, 64), codec="msra", codec_cfg=_msra(2))
def hrnet_w48_256x192(**overrides: Any) -> nn.Module:
    """HRNet-W48, COCO 256x192 (63.6 M params)."""
    return build_hrnet(hrnet_config(48), **overrides)


@register_model(input_size=(288, 384), heatmap_size=(72, 96), codec="msra", codec_cfg=_msra(3))
def hrnet_w48_384x288(**overrides: Any) -> nn.Module:
    """HRNet-W48, COCO 384x288."""
    return build_hrnet(hrnet_config(48), **overrides)


@register_model(input_size=(192, 256), heatmap_size=(48, 64), codec="msra", codec_cfg=_msra(2))
def hrnet_w18_small_256x192(**overrides: Any) -> nn.Module:
    """HRNet-W18-Small-v2 (stage1 2 Bottlenecks; modules 1/3/2; 2 blocks per branch), COCO 256x192."""
    return build_hrnet(W18_SMALL_V2, **overrides)


@register_model(input_size=(192, 256), heatmap_size=(48, 64), codec="dark", codec_cfg=_msra(2))
def dark_hrnet_w32_256x192(**overrides: Any) -> nn.Module:
    """HRNet-W32 trained/decoded with DARK (same network as hrnet_w32_256x192)."""
    return build_hrnet(hrnet_config(32), **overrides)


@register_model(input_size=(192, 256), heatmap_size=(48, 64), codec="udp", codec_cfg=_msra(2))
def udp_hrnet_w32_256x192(**overrides: Any) -> nn.Module:
    """HRNet-W32 with UDP encoding/decoding (same network as hrnet_w32_256x192)."""
    return build_hrnet(hrnet_config(32), **overrides)


@register_model(input_size=(256, 256), heatmap_size=(64, 64), codec="msra", codec_cfg=_msra(2), skeleton="mpii")
def hrnet_w32_256x256_mpii(**overrides: Any) -> nn.Module:
    """HRNet-W32, MPII 256x256, 16 joints."""
    return build_hrnet(hrnet_config(32, num_joints=16), **overrides)


@register_model(input_size=(96, 128), heatmap_size=(24, 32), codec="msra", codec_cfg=_msra(2))
def hrnet_w16_tiny_128x96(**overrides: Any) -> nn.Module:
    """Small CPU demo HRNet (widths 16-128, one block per branch), 128x96 -> 32x24."""
    return build_hrnet(TINY_W16, **overrides)


@register_model(input_size=(96, 128), heatmap_size=(48, 64), codec="udp", codec_cfg=_msra(2))
def hrnet_w16_tiny_s2_128x96(**overrides: Any) -> nn.Module:
    """posekit's demo HRNet: hrnet_w16_tiny_128x96 + one x2 deconvolution, heatmaps at stride 2 (128x96 -> 64x48)."""
    return build_hrnet(replace(TINY_W16, upsample=1), **overrides)


def prtr_hrnet_w32_backbone(**overrides: Any) -> PoseHighResolutionNet:
    """PRTR's HRNet-W32 backbone: classification-HRNet head, 2048 channels at stride 32 (not a zoo model)."""
    cfg = hrnet_config(32, head="cls")
    return build_hrnet(replace(cfg, stage1=stage(1, "BOTTLENECK", [4], [64])), **overrides)
