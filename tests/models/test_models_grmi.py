"""G-RMI head: ResNet keys, output stride 8 with atrous layer3/4, 3K channels = the codec's, initialisation."""

from __future__ import annotations

import json
import math

import pytest
import torch

import posekit.codecs
import posekit.models
from posekit.errors import ConfigError
from posekit.models.grmi import GRMI

ZOO = ("grmi_res101_353x257", "grmi_res101_257x193")


def test_grmi_backbone_keys_are_the_official_resnet101(reference_dir):
    man = json.loads((reference_dir / "manifests/pose_resnet_101_256x192.json").read_text())
    backbone = [(k, s) for k, s, _ in man["state_dict"] if not k.startswith(("deconv_layers.", "final_layer."))]
    with torch.device("meta"):
        model = GRMI(depth=101, num_joints=17)
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items() if not k.startswith("final_layer.")]
    assert ours == backbone
    assert list(model.final_layer.weight.shape) == [51, 2048, 1, 1]


@pytest.mark.parametrize("name", ZOO)
def test_grmi_zoo_output_matches_entry_and_codec(name):
    e = posekit.models.entry(name)
    assert e.codec == "grmi_offset" and e.skeleton == "coco"
    w, h = e.input_size
    assert (w - 1) % 8 == 0 and (h - 1) % 8 == 0  # stride-8 grid on input pixels
    codec = posekit.codecs.build(e.codec, input_size=e.input_size, heatmap_size=e.heatmap_size, num_keypoints=17,
                                 **e.codec_cfg)
    with torch.device("meta"):  # shapes only
        model = posekit.models.build(name)
        out = model(torch.empty(2, 3, h, w))
    assert tuple(out.shape) == (2, codec.out_channels, e.heatmap_size[1], e.heatmap_size[0])
    assert codec.out_channels == 3 * 17
    assert e.heatmap_size == ((w - 1) // 8 + 1, (h - 1) // 8 + 1)


def test_grmi_atrous_layers():
    with torch.device("meta"):
        model = GRMI(depth=101)
    for layer, first, rest in ((model.layer3, 1, 2), (model.layer4, 2, 4)):
        dil = [b.conv2.dilation[0] for b in layer]
        assert dil == [first] + [rest] * (len(layer) - 1)
        assert all(b.conv2.padding[0] == b.conv2.dilation[0] and b.conv2.stride == (1, 1) for b in layer)
        assert layer[0].downsample[0].stride == (1, 1)
    assert model.layer2[0].conv2.stride == (2, 2)  # output stride 4 * 2 = 8


def test_grmi_upsampling_lands_stride8_grid_on_input_pixels():
    torch.manual_seed(0)
    model = GRMI(depth=50, num_joints=2).eval()
    x = torch.randn(1, 3, 65, 49)
    with torch.no_grad():
        low = model(x)
        model.upsample = True
        up = model(x)
    assert low.shape == (1, 6, 9, 7) and up.shape == (1, 6, 65, 49)
    torch.testing.assert_close(up[:, :, ::8, ::8], low)


def test_grmi_initialisation():
    torch.manual_seed(0)
    model = GRMI(depth=50, num_joints=17)
    assert abs(model.final_layer.weight.std().item() - 0.001) < 1e-4
    assert torch.all(model.final_layer.bias == 0)
    conv = model.layer3[1].conv2  # Kaiming normal, fan-out, ReLU gain
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert abs(conv.weight.std().item() / math.sqrt(2.0 / fan_out) - 1) < 0.05
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


def test_grmi_rejects_basic_block_depths():
    with pytest.raises(ConfigError, match="bottleneck"):
        GRMI(depth=18)
