"""The adaptation network: the pose network, its head-input features, a WS-CDA domain discriminator behind a
gradient reversal layer, the joint loss, and AdaBN.

WS-CDA (Cao et al., ICCV 2019; no public code, a re-implementation from the paper): the features entering the
network's last 1x1 output conv (backbone + neck = the paper's "feature extractor") go through a gradient reversal
layer into a discriminator with two logits: y (animal vs human) and z (target vs labelled animal, animals only).
Loss = beta x L_pose + L_DDL, L_DDL = w1 x BCE(y) + BCE(z | animal). posekit ramps the reversal coefficient
2/(1+exp(-10 p)) - 1 over the run (Ganin & Lempitsky's schedule; ADAPT.GRL_RAMP, 0 = full strength from the first
step as the official-preset reading of the paper).

BatchNorm: `bn="domain"` forwards each domain's chunk of a batch alone (per-domain batch statistics, as the released
CC-SSL code's separate forwards); `bn="joint"` forwards the concatenated batch once, so the running statistics used at
test time are those the network trained with. AdaBN (Li et al. 2016): `adabn(net, batches)` re-estimates every
BatchNorm layer's running mean / variance as the cumulative average over target batches, no labels, weights untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from posekit.errors import ConfigError


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.coeff * grad, None


def grad_reverse(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """Identity forward; the backward multiplies the gradient by -coeff (gradient reversal layer)."""
    return _GradReverse.apply(x, coeff)


def head_conv(net: nn.Module, num_joints: int) -> nn.Conv2d:
    """The last registered 1x1 conv with num_joints outputs: its input is the head-input feature map."""
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.out_channels == num_joints
             and m.kernel_size == (1, 1)]
    if not convs:
        raise ConfigError(f"WS-CDA: {type(net).__name__} has no 1x1 conv with {num_joints} outputs to take the "
                          "features from")
    return convs[-1]


class DomainDiscriminator(nn.Module):
    """Features [N,C,h,w] -> 2 logits: (animal vs human, target vs labelled animal)."""

    def __init__(self, channels: int, width: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.fc = nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x).mean(dim=(2, 3)))


class AdaptNet(nn.Module):
    """The pose network plus (WS-CDA) a discriminator; `bn` says whether domain chunks are forwarded alone."""

    def __init__(self, net: nn.Module, num_joints: int, discriminator: bool = False, grl: float = 1.0,
                 bn: str = "joint") -> None:
        super().__init__()
        if bn not in ("joint", "domain"):
            raise ConfigError(f"ADAPT.BN: expected 'joint' or 'domain', got {bn!r}")
        self.net = net
        self.sizes: list[int] = []
        self.grl = grl
        self.bn = bn
        self._feat: torch.Tensor | None = None
        self.discriminator: nn.Module | None = None
        if discriminator:
            conv = head_conv(net, num_joints)
            conv.register_forward_pre_hook(self._grab)
            self.discriminator = DomainDiscriminator(conv.in_channels)

    def _grab(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        self._feat = inputs[0]

    def forward(self, x: torch.Tensor) -> Any:
        if not self.training:
            out = self.net(x)
            return out[-1] if isinstance(out, (list, tuple)) else out
        chunks = x.split(self.sizes) if self.sizes and self.bn == "domain" else [x]
        outs, feats = [], []
        for c in chunks:
            outs.append(self.net(c))
            feats.append(self._feat)
        if isinstance(outs[0], (list, tuple)):
            heat: Any = [torch.cat([o[s] for o in outs]) for s in range(len(outs[0]))]
        else:
            heat = torch.cat(outs)
        result = {"heatmaps": heat}
        if self.discriminator is not None:
            result["domain"] = self.discriminator(grad_reverse(torch.cat(feats), self.grl))
        self._feat = None
        return result


def grl_coefficient(progress: float, alpha: float, ramp: float) -> float:
    """|alpha| x (2 / (1 + exp(-10 p / ramp)) - 1) at run progress p in [0, 1]; |alpha| when ramp is 0."""
    if ramp <= 0:
        return abs(alpha)
    p = min(max(progress / ramp, 0.0), 1.0)
    return abs(alpha) * (2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0)


def per_sample_mse(output: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Official JointsMSELoss per sample: mean over joints of 0.5 x mean((w (pred - gt))^2) -> [N]."""
    w = weight.reshape(weight.shape[0], weight.shape[1], 1, 1)
    return 0.5 * ((output - target) * w).pow(2).mean(dim=(2, 3)).mean(dim=1)


def adapt_criterion(beta: float = 1.0, w1: float = 1.0) -> Callable[[Any, dict[str, torch.Tensor]],
                                                                     tuple[torch.Tensor, dict[str, float]]]:
    """criterion(outputs, targets) -> (loss, logs): weighted heatmap MSE summed over stacks (+ WS-CDA DDL)."""

    def criterion(outputs: Any, targets: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        heat = outputs["heatmaps"]
        stacks = heat if isinstance(heat, (list, tuple)) else [heat]
        per = sum(per_sample_mse(o, targets["target"], targets["target_weight"]) for o in stacks)
        sw = targets["sample_weight"]
        logs: dict[str, float] = {}
        for name in ("source", "target", "human"):
            m = targets["domain_id"] == ("source", "target", "human").index(name)
            if bool(m.any()):
                logs[f"loss_{name}"] = float((per[m] * sw[m]).sum().detach())
        pose = (per * sw).sum()
        if "domain" not in outputs:
            return pose, logs
        logits = outputs["domain"]
        y = targets["domain_y"]
        ddl = w1 * F.binary_cross_entropy_with_logits(logits[:, 0], y)
        animal = y > 0.5
        if bool(animal.any()):
            ddl = ddl + F.binary_cross_entropy_with_logits(logits[animal, 1], targets["domain_z"][animal])
        logs["loss_ddl"] = float(ddl.detach())
        return beta * pose + ddl, logs

    return criterion


@torch.no_grad()
def adabn(net: nn.Module, batches: Iterable[torch.Tensor], device: torch.device | str = "cpu") -> int:
    """Re-estimate the BatchNorm running statistics of `net` over image batches (cumulative average, no labels);
    returns the number of images seen. Weights and the other buffers are unchanged; the net ends in eval mode."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch counts equally
    net.train()
    seen = 0
    try:
        for x in batches:
            net(x.to(device))
            seen += int(x.shape[0])
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
        net.eval()
    return seen
