"""Stacked hourglasses: the AE PoseNet against pose-ae-train fixtures; the top-down HourglassNet's structure."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import posekit.models
from posekit.errors import ConfigError
from posekit.models.hourglass import AEPoseNet, HourglassNet


def _keys_shapes(model: torch.nn.Module) -> list[tuple[str, list[int]]]:
    return [(k, list(v.shape)) for k, v in model.state_dict().items()]


def _assert_close(out: np.ndarray, ref: np.ndarray) -> None:
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5 * float(np.abs(ref).max()))


@pytest.mark.parametrize("name", ["ae_hourglass_tiny", "ae_hourglass_tiny_bn"])
def test_ae_tiny_reproduces_official(reference_dir, formula_weights, tensor_digest, name):
    meta = json.loads((reference_dir / f"models/{name}.json").read_text())
    model = AEPoseNet(**meta["config"]).eval()
    assert _keys_shapes(model) == [(k, s) for k, s, _ in meta["state_dict"]]
    assert sum(p.numel() for p in model.parameters()) == meta["num_parameters"]
    weights = formula_weights(model)
    for key, t in weights.items():  # the regenerated weights are the fixture's, tensor by tensor
        assert tensor_digest(t) == meta["state_dict_sha256_16"][key], key
    model.load_state_dict(weights, strict=True)
    io = np.load(reference_dir / f"models/{name}.npz")
    with torch.no_grad():
        out = model(torch.from_numpy(io["input"])).numpy()  # NHWC input, as the official
    assert out.shape == tuple(meta["output_shape"])
    _assert_close(out, io["output"])


@pytest.mark.slow
def test_ae_full_size_matches_official(reference_dir, formula_weights):
    man = json.loads((reference_dir / "manifests/ae_hourglass_nstack4.json").read_text())
    model = posekit.models.build("ae_hourglass_512", input_layout="NHWC")
    assert _keys_shapes(model) == [(k, s) for k, s, _ in man["state_dict"]]
    assert sum(p.numel() for p in model.parameters()) == man["num_parameters"] == 138_893_840
    model.load_state_dict(formula_weights(model), strict=True)
    io = np.load(reference_dir / "models/ae_hourglass_full_formula_io.npz")
    x = torch.from_numpy(io["input"])
    with torch.no_grad():
        out = model(x).numpy()
        model.input_layout = "NCHW"  # the zoo's layout: same weights, channels-first input
        out_nchw = model(x.permute(0, 3, 1, 2)).numpy()
    _assert_close(out, io["output"])
    np.testing.assert_array_equal(out_nchw, out)


def test_ae_quirks_recursion_increase_and_relu_before_bn():
    model = AEPoseNet(nstack=1, inp_dim=16, oup_dim=4, bn=True, increase=8)
    hg = model.features[0][0]
    assert hg.low1.conv.out_channels == 24  # outermost level: 16 + increase
    assert hg.low2.low1.conv.out_channels == 24 + 128  # inner levels: the default 128 (increase not passed on)
    assert hg.low3.bn is None
    conv = model.pre[0].eval()
    for p in (conv.bn.running_mean, conv.bn.bias):
        p.data.fill_(1.0)  # BN after ReLU: a shift that the ReLU cannot clip
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        expected = conv.bn(torch.relu(conv.conv(x)))
        torch.testing.assert_close(conv(x), expected)


def test_ae_zoo_entry_and_output_layout():
    e = posekit.models.entry("ae_hourglass_512")
    assert (e.input_size, e.heatmap_size, e.codec, e.skeleton) == ((512, 512), (128, 128), "ae", "coco")
    model = AEPoseNet(nstack=2, inp_dim=16, oup_dim=34, increase=8, input_layout="NCHW").eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 128))
    assert out.shape == (2, 2, 34, 16, 32)  # [N, nstack, oup_dim, H/4, W/4]
    with pytest.raises(RuntimeError, match="channels"):  # an NCHW batch given to the official NHWC layout
        AEPoseNet(nstack=1, inp_dim=16, oup_dim=4, input_layout="NHWC")(torch.randn(1, 3, 64, 64))
    with pytest.raises(ConfigError, match="input_layout"):
        AEPoseNet(nstack=1, inp_dim=16, oup_dim=4, input_layout="CHW")


def test_hourglassnet_param_counts_match_published():
    # bearpaw/pytorch-pose model table: hg_s2_b1 6.73 M, hg_s8_b1 25.59 M parameters (16 MPII joints)
    for stacks, millions in ((2, 6.73), (8, 25.59)):
        n = sum(p.numel() for p in HourglassNet(num_stacks=stacks, num_blocks=1, num_joints=16).parameters())
        assert round(n / 1e6, 2) == millions


def test_hourglassnet_intermediate_supervision_and_eval_output():
    torch.manual_seed(0)
    model = HourglassNet(num_stacks=3, num_blocks=1, num_joints=5)
    x = torch.randn(2, 3, 64, 64)
    model.train()
    for m in model.modules():  # train-mode control flow, eval-mode BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    with torch.no_grad():
        outs = model(x)
    assert isinstance(outs, list) and len(outs) == 3
    assert all(o.shape == (2, 5, 16, 16) for o in outs)
    model.eval()
    with torch.no_grad():
        last = model(x)
    torch.testing.assert_close(last, outs[-1])


def test_hourglassnet_stacks_feed_forward():
    torch.manual_seed(0)
    model = HourglassNet(num_stacks=2, num_blocks=1, num_joints=4).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x).clone()
        model.score_[0].weight.add_(0.1)  # stack 1's predictions re-enter stack 2
        changed = model(x)
        model.score_[0].weight.sub_(0.1)
    assert not torch.allclose(before, changed)
    assert len(model.fc_) == len(model.score_) == 1


def test_hourglass_zoo_entries():
    for name, stacks in (("hourglass_2stack_256x256", 2), ("hourglass_4stack_256x256", 4)):
        e = posekit.models.entry(name)
        assert (e.input_size, e.heatmap_size, e.codec) == ((256, 256), (64, 64), "msra")
        model = posekit.models.build(name, num_joints=18)
        assert model.num_stacks == stacks and model.score[-1].out_channels == 18
        with torch.no_grad():
            assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 18, 16, 16)  # stride 4


def test_coord_channels_give_pixel_centre_coordinates_as_two_extra_input_channels():
    from posekit.models.hourglass import coord_maps

    c = coord_maps(torch.zeros(2, 3, 4, 8))
    assert c.shape == (2, 2, 4, 8)
    np.testing.assert_allclose(c[0, 0, 0].numpy(), (np.arange(8) + 0.5) / 4 - 1, atol=1e-7)  # x, left to right
    np.testing.assert_allclose(c[1, 1, :, 0].numpy(), (np.arange(4) + 0.5) / 2 - 1, atol=1e-7)  # y, top to bottom
    kw = dict(nstack=1, inp_dim=16, oup_dim=4, bn=False, increase=8, inner_increase=8, stem_dims=(8, 16))
    torch.manual_seed(0)
    net = AEPoseNet(**kw, input_layout="NCHW", coord_channels=True).eval()
    plain = AEPoseNet(**kw, input_layout="NCHW").eval()
    assert net.pre[0].conv.in_channels == 5 and plain.pre[0].conv.in_channels == 3
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    # the first conv's kernels over the two extra channels, done by hand: x, y of each pixel centre in (-1, 1)
    conv = net.pre[0].conv
    ys, xs = torch.meshgrid((torch.arange(64) + 0.5) / 32 - 1, (torch.arange(64) + 0.5) / 32 - 1, indexing="ij")
    by_hand = F.conv2d(torch.cat([x, xs[None, None], ys[None, None]], 1), conv.weight, conv.bias, 2, 3)
    with torch.no_grad():
        torch.testing.assert_close(conv(torch.cat([x, coord_maps(x)], 1)), by_hand)
        # zero kernels over the coordinates: exactly the plain network with the same other weights
        state = net.state_dict()
        plain.load_state_dict({**state, "pre.0.conv.weight": state["pre.0.conv.weight"][:, :3]})
        out = net(x)
        assert float((out - plain(x)).abs().max()) > 1e-4
        net.pre[0].conv.weight[:, 3:] = 0
        torch.testing.assert_close(net(x), plain(x))
        # NHWC input (official layout) sees the same coordinates
        nhwc = AEPoseNet(**kw, input_layout="NHWC", coord_channels=True).eval()
        nhwc.load_state_dict(net.state_dict())
        torch.testing.assert_close(nhwc(x.permute(0, 2, 3, 1)), net(x))
