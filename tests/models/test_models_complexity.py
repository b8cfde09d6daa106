"""Complexity counters against closed-form counts and the manifests' FlopCounterMode / get_model_summary numbers."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import posekit.models
from posekit.models.complexity import count_macs, count_paper_gflops, measure

MANIFESTS = {"simplebaseline_res50_256x192": "pose_resnet_50_256x192", "hrnet_w32_256x192": "pose_hrnet_w32_256x192"}


class Toy(nn.Module):
    """conv 3->8 k3 on 16x12, stride-2 deconv 8->4 k4 (-> 32x24), linear 4->5 over the last axis."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.deconv = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, bias=False)
        self.fc = nn.Linear(24, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.deconv(torch.relu(self.bn(self.conv(x)))))


def test_closed_form_counts():
    model = Toy()
    conv = 8 * 3 * 9 * 16 * 12  # MACs: out channels x in x k*k x output pixels
    deconv = 8 * 4 * 16 * 16 * 12  # every input pixel scatters a k*k window: in x out x k*k x input pixels
    linear = 4 * 32 * 5 * 24  # rows x out x in
    assert count_macs(model, (12, 16)) == conv + deconv + linear
    # official counter: weight numel x output spatial; the deconv output is 4x larger than its input -> 4x MACs
    paper = 8 * 3 * 9 * 16 * 12 + 8 * 4 * 16 * 32 * 24 + 1 * 4 * 32 * 5 * 24
    assert count_paper_gflops(model, (12, 16)) == pytest.approx(paper / 1024**3)


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_zoo_numbers_match_manifests(reference_dir, name):
    man = json.loads((reference_dir / f"manifests/{MANIFESTS[name]}.json").read_text())
    with torch.device("meta"):
        model = posekit.models.build(name)
    m = measure(model, posekit.models.entry(name).input_size)
    assert m["params"] == man["num_parameters"] and m["params_m"] == pytest.approx(man["num_parameters"] / 1e6)
    assert m["gmacs"] == pytest.approx(man["flops"]["GMACs"], rel=1e-3)
    assert m["paper_gflops"] == pytest.approx(man["official_get_model_summary"]["reported_GFLOPs"], rel=1e-3)


def test_measure_on_a_real_model_keeps_it_untouched():
    model = Toy().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    m = measure(model, (12, 16))
    assert model.training and all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert m["params"] == sum(p.numel() for p in model.parameters())
    assert m["gmacs"] == pytest.approx(count_macs(Toy(), (12, 16)) / 1e9)
