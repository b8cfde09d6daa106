"""3DMPPE PoseNet (`ResPoseNet`): ResNet backbone + 3 deconvolutions + 1x1 conv to joints x depth bins, 3-D
soft-argmax, with the official state_dict keys (`backbone.*`, `head.deconv_layers.*`, `head.final_layer.*`).

Conventions (as mks0601/3DMPPE_POSENET_RELEASE, main/model.py):
- the head output is [B, J*D, H, W] with channel index = joint * D + depth bin; `forward(x)` returns the 3-D
  soft-argmax coordinates [B, J, 3] = (x, y) in output-map pixels and z in depth bins (softmax over all D*H*W
  voxels of a joint, no temperature); `forward_heatmaps(x)` returns the raw volume;
- official init (`init_weights`): head convs / deconvs N(0, 0.001), final bias 0, BN 1 / 0; the backbone's own
  __init__ init is also N(0, 0.001) with BN 1 / 0 (the official code then loads ImageNet weights when training).

Deliberate differences:
- the official HeadNet hard-codes 2048 input channels (only ResNet-50/101/152 work); here the head takes the
  backbone's channel count and its width is an option, so posekit's small CPU model (ResNet-18, 64-channel head,
  128x128 input, 32 depth bins) exists. Official zoo entries keep 2048 -> 256 channels and 64 bins.
- the soft-argmax reads the map size from the tensor, not from global cfg.output_shape / depth_dim. It is a layer
  of the network (as in the official forward) rather than a codec call: models do not import codecs. Its numbers
  equal posekit.codecs.integral.soft_argmax_3d (tested on the official fixture).
- posekit's small model initialises its backbone with Kaiming-normal convs (it trains from scratch on CPU, no
  ImageNet download); the official entries keep the official N(0, 0.001).
- posekit's HRNet variant (`posenet3d_hrnet_w16_tiny_128x96`, `HRPoseNet3D`) is not in the official code: the
  backbone is a pose_hrnet without its final layer (`backbone.*` = the 2-D model's keys), so a posekit heatmap
  checkpoint of the same HRNet (the demo model) initialises it, as ImageNet weights do in the official recipe;
  its head is a 3x3 conv + BN + ReLU and the 1x1 conv to joints x depth bins at the backbone's stride 4.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from posekit.errors import ConfigError
from posekit.models.hrnet import TINY_W16, HRNetConfig, PoseHighResolutionNet
from posekit.models.registry import register_model
from posekit.models.resnet import BN_MOMENTUM, RESNET_SPEC, ResNetBackbone, init_official, make_deconv_layers


class SoftArgmax3D(nn.Module):
    """[B, J*D, H, W] volume -> [B, J, 3] expected (x, y, z) voxel index under a softmax over each joint's D*H*W."""

    def __init__(self, num_joints: int, depth_dim: int) -> None:
        super().__init__()
        self.num_joints = int(num_joints)
        self.depth_dim = int(depth_dim)

    def forward(self, heatmaps: torch.Tensor) -> torch.Tensor:
        b, c, h, w = heatmaps.shape
        j, d = self.num_joints, self.depth_dim
        if c != j * d:
            raise ConfigError(f"SoftArgmax3D: {c} channels, expected num_joints x depth_dim = {j} x {d}")
        p = torch.softmax(heatmaps.reshape(b, j, d * h * w), dim=2).reshape(b, j, d, h, w)
        ramp = {n: torch.arange(1, n + 1, dtype=p.dtype, device=p.device) for n in {w, h, d}}
        x = (p.sum(dim=(2, 3)) * ramp[w]).sum(dim=2, keepdim=True) - 1
        y = (p.sum(dim=(2, 4)) * ramp[h]).sum(dim=2, keepdim=True) - 1
        z = (p.sum(dim=(3, 4)) * ramp[d]).sum(dim=2, keepdim=True) - 1
        return torch.cat((x, y, z), dim=2)


class HeadNet(nn.Module):
    """Official HeadNet: 3 x [ConvTranspose2d(k4, s2, p1, no bias), BN, ReLU] then a 1x1 conv (bias) to J*D."""

    def __init__(self, in_channels: int, num_joints: int, depth_dim: int, channels: int = 256,
                 num_deconv: int = 3) -> None:
        super().__init__()
        self.deconv_layers = make_deconv_layers(in_channels, (channels,) * num_deconv, (4,) * num_deconv)
        self.final_layer = nn.Conv2d(channels, num_joints * depth_dim, kernel_size=1, stride=1, padding=0)

    def init_weights(self) -> None:
        """Official HeadNet init: deconvs and the final conv N(0, 0.001), final bias 0, BN weight 1 / bias 0."""
        init_official(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.deconv_layers(x))


class ResPoseNet(nn.Module):
    """3DMPPE PoseNet: backbone -> head volume [B, J*D, H, W] -> soft-argmax coords [B, J, 3]."""

    def __init__(self, depth: int = 50, num_joints: int = 18, depth_dim: int = 64, head_channels: int = 256,
                 backbone_init: str = "official") -> None:
        super().__init__()
        if depth not in RESNET_SPEC:
            raise ConfigError(f"ResPoseNet depth {depth} not in {sorted(RESNET_SPEC)}")
        if num_joints < 1 or depth_dim < 1 or head_channels < 1:
            raise ConfigError(f"ResPoseNet: num_joints, depth_dim and head_channels must be >= 1, got "
                              f"{num_joints}, {depth_dim}, {head_channels}")
        if backbone_init not in ("official", "kaiming"):
            raise ConfigError(f"ResPoseNet backbone_init: expected 'official' or 'kaiming', got {backbone_init!r}")
        self.num_joints = int(num_joints)
        self.depth_dim = int(depth_dim)
        self.backbone = ResNetBackbone(depth)
        self.head = HeadNet(self.backbone.out_channels, num_joints, depth_dim, head_channels)
        self.soft_argmax = SoftArgmax3D(num_joints, depth_dim)
        self.backbone_init = backbone_init
        self.init_weights()

    def init_weights(self) -> None:
        """Official init of both parts (backbone N(0, 0.001) as ResNetBackbone.__init__; or Kaiming when asked)."""
        init_official(self.backbone)
        if self.backbone_init == "kaiming":
            for m in self.backbone.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        self.head.init_weights()

    def forward_heatmaps(self, x: torch.Tensor) -> torch.Tensor:
        """The head volume [B, J*D, H, W] (channel = joint * D + depth bin)."""
        return self.head(self.backbone(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.soft_argmax(self.forward_heatmaps(x))


class HRPoseNet3D(nn.Module):
    """posekit's 3-D PoseNet on a pose-HRNet backbone: stride-4 features -> [conv3x3, BN, ReLU] -> 1x1 conv to J*D
    -> soft-argmax coords [B, J, 3]. `backbone.*` keys equal a 2-D pose_hrnet's (its final_layer excepted)."""

    def __init__(self, cfg: HRNetConfig = TINY_W16, num_joints: int = 18, depth_dim: int = 32,
                 head_channels: int = 64) -> None:
        super().__init__()
        if num_joints < 1 or depth_dim < 1 or head_channels < 1:
            raise ConfigError(f"HRPoseNet3D: num_joints, depth_dim and head_channels must be >= 1, got "
                              f"{num_joints}, {depth_dim}, {head_channels}")
        self.num_joints = int(num_joints)
        self.depth_dim = int(depth_dim)
        self.backbone = PoseHighResolutionNet(cfg)
        self.backbone.final_layer = nn.Identity()  # the 2-D heatmap layer: replaced by the 3-D head below
        c = self.backbone.pre_stage_channels[0]
        self.head = nn.Module()
        self.head.conv_layers = nn.Sequential(nn.Conv2d(c, head_channels, 3, 1, 1, bias=False),
                                              nn.BatchNorm2d(head_channels, momentum=BN_MOMENTUM),
                                              nn.ReLU(inplace=True))
        self.head.final_layer = nn.Conv2d(head_channels, num_joints * depth_dim, kernel_size=1)
        self.soft_argmax = SoftArgmax3D(num_joints, depth_dim)
        self.init_weights()

    def init_weights(self) -> None:
        """Kaiming-normal convs with BN 1 / 0 (from scratch); the last conv N(0, 0.001) with bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.head.final_layer.weight, std=0.001)

    def forward_heatmaps(self, x: torch.Tensor) -> torch.Tensor:
        """The head volume [B, J*D, H, W] (channel = joint * D + depth bin)."""
        return self.head.final_layer(self.head.conv_layers(self.backbone(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.soft_argmax(self.forward_heatmaps(x))


def build_posenet3d(depth: int, **overrides: Any) -> ResPoseNet:
    """A ResPoseNet of ResNet-`depth` (official head: 256 channels, 64 depth bins, 18 H36M joints by default)."""
    allowed = {"num_joints", "depth_dim", "head_channels", "backbone_init"}
    bad = sorted(set(overrides) - allowed)
    if bad:
        raise ConfigError(f"unknown posenet3d option(s) {bad}; allowed: {sorted(allowed)}")
    return ResPoseNet(depth=depth, **overrides)


_OFFICIAL = dict(input_size=(256, 256), heatmap_size=(64, 64), codec="body3d", codec_cfg={"depth_dim": 64},
                 skeleton="h36m", task="body3d")


@register_model(**_OFFICIAL)
def posenet3d_res50_256x256(**overrides: Any) -> nn.Module:
    """3DMPPE PoseNet ResNet-50, 256x256 -> 64x64x64, H36M 18 joints (34.3 M params)."""
    return build_posenet3d(50, **overrides)


@register_model(**_OFFICIAL)
def posenet3d_res101_256x256(**overrides: Any) -> nn.Module:
    """3DMPPE PoseNet ResNet-101, 256x256 -> 64x64x64, H36M 18 joints."""
    return build_posenet3d(101, **overrides)


@register_model(**_OFFICIAL)
def posenet3d_res152_256x256(**overrides: Any) -> nn.Module:
    """3DMPPE PoseNet ResNet-152, 256x256 -> 64x64x64, H36M 18 joints."""
    return build_posenet3d(152, **overrides)


@register_model(input_size=(128, 128), heatmap_size=(32, 32), codec="body3d", codec_cfg={"depth_dim": 32},
                skeleton="coco_pelvis", task="body3d")
def posenet3d_res18_128x128(**overrides: Any) -> nn.Module:
    """posekit's small CPU 3-D model: ResNet-18, 3 x 64-channel deconvs, 128x128 -> 32x32 x 32 depth bins,
    18 joints (COCO-17 + pelvis, the synthetic 3-D humans); Kaiming backbone init (trained from scratch)."""
    return build_posenet3d(18, **{"head_channels": 64, "depth_dim": 32, "backbone_init": "kaiming", **overrides})


@register_model(input_size=(96, 128), heatmap_size=(24, 32), codec="body3d", codec_cfg={"depth_dim": 32},
                skeleton="coco_pelvis", task="body3d")
def posenet3d_hrnet_w16_tiny_128x96(**overrides: Any) -> nn.Module:
    """posekit's CPU 3-D model on the demo HRNet (hrnet_w16_tiny_128x96 backbone: a posekit 2-D heatmap checkpoint
    of it loads into `backbone.*`), 64-channel head, 128x96 -> 32x24 x 32 depth bins, 18 joints (COCO-17 + pelvis)."""
    allowed = {"num_joints", "depth_dim", "head_channels"}
    bad = sorted(set(overrides) - allowed)
    if bad:
        raise ConfigError(f"unknown posenet3d option(s) {bad}; allowed: {sorted(allowed)}")
    return HRPoseNet3D(TINY_W16, **overrides)
