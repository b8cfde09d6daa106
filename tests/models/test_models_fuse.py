"""BatchNorm folding: same outputs as the eval-mode model, BNs gone, only real conv->BN edges folded."""

from __future__ import annotations

import torch
from torch import nn

import posekit.models
from posekit.models.fuse import fold_batchnorm


def _randomise(model: nn.Module, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / m.weight[0].numel()) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)


def test_folded_models_match_eager():
    x = torch.randn(2, 3, 128, 96, generator=torch.Generator().manual_seed(1))
    for name in ("hrnet_w16_tiny_128x96", "simplebaseline_res18_128x96"):
        model = posekit.models.build(name)
        _randomise(model)
        folded = fold_batchnorm(model)
        n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
        assert folded.num_folded_bn == n_bn and not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
        with torch.no_grad():
            ref, out = model(x), folded(x)
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))
        assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched


def test_bn_after_relu_is_not_folded():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))
    _randomise(model)
    model.eval()
    folded = fold_batchnorm(model)
    assert folded.num_folded_bn == 1
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-5, atol=1e-5)
