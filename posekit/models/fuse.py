"""Inference-time BatchNorm folding into the preceding convolution / deconvolution (graph-checked via torch.fx)."""

from __future__ import annotations

import copy

import torch
from torch import fx, nn

from posekit.errors import ConfigError

FOLDABLE = (nn.Conv2d, nn.ConvTranspose2d)


def fold_bn_into_conv(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> None:
    """Rewrite `conv` in place so that conv(x) == bn(conv(x)) with bn in eval mode."""
    if bn.running_mean is None or bn.running_var is None:
        raise ConfigError("cannot fold a BatchNorm without running statistics")
    scale = (bn.weight if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        if isinstance(conv, nn.ConvTranspose2d):  # weight [in, out, kh, kw] (groups == 1)
            w = conv.weight * scale.view(1, -1, 1, 1)
        else:  # weight [out, in / groups, kh, kw]
            w = conv.weight * scale.view(-1, 1, 1, 1)
        b = (bias - bn.running_mean) * scale + shift
        conv.weight = nn.Parameter(w.detach().clone())
        conv.bias = nn.Parameter(b.detach().clone())


def fold_batchnorm(model: nn.Module) -> fx.GraphModule:
    """An eval-mode copy of `model` with every BatchNorm2d that directly follows a conv/deconv folded into it.

    The model is traced with torch.fx so only real conv -> BN edges (conv output used by the BN alone) are folded;
    the original model is not modified. Raises ConfigError when the model cannot be traced.
    """
    model = copy.deepcopy(model).eval()
    try:
        gm = fx.symbolic_trace(model)
    except Exception as e:  # noqa: BLE001 - any tracing failure means "not foldable"
        raise ConfigError(f"{type(model).__name__} cannot be traced for BatchNorm folding: {e}") from None
    modules = dict(gm.named_modules())
    folded = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        src = node.args[0]
        if not isinstance(src, fx.Node) or src.op != "call_module" or len(src.users) != 1:
            continue
        conv = modules.get(src.target)
        if not isinstance(conv, FOLDABLE) or (isinstance(conv, nn.ConvTranspose2d) and conv.groups != 1):
            continue
        fold_bn_into_conv(conv, modules[node.target])
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
        folded += 1
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    gm.num_folded_bn = folded
    return gm.eval()
