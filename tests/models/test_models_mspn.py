"""MSPN: output structure, cross-stage aggregation, parameter budget and a training step (no official fixture)."""

from __future__ import annotations

import pytest
import torch

import posekit.models
from posekit.errors import ConfigError
from posekit.models.mspn import MSPN
from posekit.models.resnet import ResNetBackbone


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def mspn2() -> MSPN:
    torch.manual_seed(0)
    return MSPN(stage_num=2, num_joints=5).eval()


def test_mspn_outputs_train_and_eval(mspn2):
    x = torch.randn(2, 3, 128, 96)
    mspn2.train()
    for m in mspn2.modules():  # train-mode outputs with eval-mode BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    with torch.no_grad():
        outs = mspn2(x)
    mspn2.eval()
    with torch.no_grad():
        final = mspn2(x)
    assert len(outs) == 2 and all(len(stage) == 4 for stage in outs)
    assert all(o.shape == (2, 5, 32, 24) for stage in outs for o in stage)  # every unit at stride 4
    torch.testing.assert_close(final, outs[-1][-1])


def test_mspn_cross_stage_aggregation_feeds_next_stage(mspn2):
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        base = mspn2(x).clone()
        s0 = mspn2.stage0.upsample
        for conv in (s0.up4.cross_conv.conv, s0.up1.skip1.conv, s0.up2.skip2.conv):
            conv.bias.add_(0.5)  # each cross-stage path of stage 0 changes stage 1's output
            assert not torch.allclose(mspn2(x), base), conv
            conv.bias.sub_(0.5)
        s0.up1.res_conv2.conv.bias.add_(0.5)  # stage 0's own heatmap head does not feed stage 1
        torch.testing.assert_close(mspn2(x), base)
        s0.up1.res_conv2.conv.bias.sub_(0.5)
    assert not hasattr(mspn2.stage1.upsample.up4, "cross_conv")  # the last stage emits no cross-stage features
    assert not hasattr(mspn2.stage1.upsample.up1, "skip1")


def test_mspn_param_budget():
    with torch.device("meta"):  # shapes only: no weight initialisation cost
        one, two, four = (_params(MSPN(n)) for n in (1, 2, 4))
        resnet50 = _params(ResNetBackbone(50))  # 23.5 M: conv1..layer4 without the classifier
    # every stage is a ResNet-50 plus a 256-ch up path; middle stages add the same cross-stage convs
    assert four - two == 2 * (two - one)
    assert 1.0 < one / resnet50 < 1.15
    assert 2.2 < two / resnet50 < 2.6  # 2-stg MSPN ~ 2 ResNet-50s + up paths + skip convs


@pytest.mark.slow
def test_mspn_training_step_reduces_loss():
    torch.manual_seed(0)
    model = MSPN(stage_num=2, num_joints=3).train()
    x = torch.randn(2, 3, 64, 48)
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(12.0), indexing="ij")
    centers = torch.tensor([[3.0, 4.0], [8.0, 10.0], [6.0, 2.0]])
    target = torch.stack([torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 8) for cx, cy in centers])
    target = target.expand(2, -1, -1, -1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)

    def loss_fn() -> torch.Tensor:  # coarse-to-fine supervision: every unit of every stage
        return sum(((o - target) ** 2).mean() for stage in model(x) for o in stage)

    opt.zero_grad()
    before = loss_fn()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = loss_fn()
    assert after.item() < 0.97 * before.item()


def test_mspn_zoo_entries():
    for name, stages in (("mspn_2stg_256x192", 2), ("mspn_4stg_256x192", 4)):
        e = posekit.models.entry(name)
        assert (e.input_size, e.heatmap_size, e.codec, e.skeleton) == ((192, 256), (48, 64), "msra", "coco")
        with torch.device("meta"):
            model = posekit.models.build(name)
        assert model.stage_num == stages and not model.training
        assert _params(model) == {2: 56_867_032, 4: 120_317_680}[stages]
    with pytest.raises(ConfigError, match="STAGE_NUM"):
        MSPN(stage_num=0)
