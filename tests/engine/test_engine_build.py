"""posekit.engine.build: a config's input / heatmap size is checked against the network before it runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from posekit.config import load_config
from posekit.engine import build as B
from posekit.engine import spec as S
from posekit.errors import ConfigError


def _cfg(tmp_path: Path, zoo: str, *overrides: str):
    path = tmp_path / "x.yaml"
    path.write_text(f"MODEL:\n  ZOO: {zoo}\n")
    return load_config(path, list(overrides))


def test_hrnet_input_not_a_multiple_of_32_is_named_before_the_network_runs(tmp_path):
    cfg = _cfg(tmp_path, "hrnet_w16_tiny_128x96", "MODEL.IMAGE_SIZE=[80,112]")
    with pytest.raises(ConfigError, match=r"MODEL.IMAGE_SIZE \[80,112\] in .*x.yaml: hrnet_w16_tiny_128x96 cannot "
                                          r"take a 80x112 input .*e.g. MODEL.IMAGE_SIZE=\[96,128\]"):
        B.build(cfg)  # raised by build itself: the check is a shape-only (meta device) forward, see below
    built = B.build(_cfg(tmp_path, "hrnet_w16_tiny_128x96", "MODEL.IMAGE_SIZE=[96,160]"))  # multiples of 32 fit
    assert built.spec.heatmap_size == (24, 40)


def test_heatmap_size_the_network_does_not_give_is_named(tmp_path):
    cfg = _cfg(tmp_path, "simplebaseline_res18_128x96", "MODEL.HEATMAP_SIZE=[20,30]")
    with pytest.raises(ConfigError, match=r"MODEL.HEATMAP_SIZE \[20, 30\] .* gives 24x32 heatmaps .* not 20x30"):
        B.build(cfg)
    cfg = _cfg(tmp_path, "simplebaseline_res18_128x96", "MODEL.IMAGE_SIZE=[80,112]")  # ResNet rounds 80/32 up
    with pytest.raises(ConfigError, match=r"gives 24x32 heatmaps .* not 20x28"):
        B.build(cfg)


def test_shape_forward_computes_nothing():
    from posekit import models

    model = models.build("hrnet_w16_tiny_128x96")
    out = S._shape_forward(model, (96, 128))
    assert out.device.type == "meta" and tuple(out.shape) == (1, 17, 32, 24)
    assert all(p.device.type == "cpu" for p in model.parameters())  # the model itself is untouched


SHIPPED = sorted((Path(__file__).resolve().parents[2] / "configs").rglob("*.yaml")) + sorted(
    (Path(__file__).resolve().parents[2] / "posekit" / "configs").rglob("*.yaml"))


def _same_build(cfg) -> None:
    """build(cfg) is the config's task's build: the same spec, codec and network (same init under one seed)."""
    import torch

    from posekit.engine.tasks import task_for

    torch.manual_seed(0)
    a = B.build(cfg)
    torch.manual_seed(0)
    b = task_for(cfg).build(cfg)
    assert a.spec == b.spec and type(a.codec) is type(b.codec) and type(a.model) is type(b.model)
    assert a.skeleton.name == b.skeleton.name
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa), cfg.source


@pytest.mark.slow
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_build_is_the_task_build_for_every_shipped_config(path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # official-vocabulary notes
        _same_build(load_config(path))


@pytest.mark.slow
def test_build_is_the_task_build_for_the_official_prtr_yamls(reference_dir):
    import warnings

    paths = sorted((reference_dir / "configs/prtr_repo").glob("*/transformer/*.yaml"))
    assert len(paths) == 16, paths  # the official PRTR repository's configs (HRNet and ResNet backbones)
    for path in paths:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cfg = load_config(path)
        assert B.build(cfg).spec.task == "prtr", path
        _same_build(cfg)
