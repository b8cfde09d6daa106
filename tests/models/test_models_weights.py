"""Checkpoint loading: official .pt, training-checkpoint dicts, DataParallel, MMPose names, ImageNet backbones."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

import posekit.models
from posekit.errors import CheckpointError
from posekit.models.hrnet import HRNetConfig, PoseHighResolutionNet
from posekit.models.resnet import PoseResNet, PoseResNetConfig
from posekit.models.weights import load_checkpoint, load_imagenet_backbone


def _tiny_hrnet() -> torch.nn.Module:
    return posekit.models.build("hrnet_w16_tiny_128x96")


def _random_state(model: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: (torch.rand(v.shape, generator=gen) if v.is_floating_point() else torch.full_like(v, 7))
            for k, v in model.state_dict().items()}


def _assert_loaded(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_official_state_dict_file_loads_strictly(reference_dir):
    meta = json.loads((reference_dir / "models/pose_hrnet_tiny.json").read_text())
    model = PoseHighResolutionNet(HRNetConfig.from_official(meta["MODEL"]["EXTRA"], meta["MODEL"]["NUM_JOINTS"]))
    report = load_checkpoint(model, reference_dir / "models/pose_hrnet_tiny.pt")
    assert report.ok and len(report.loaded) == meta["num_keys"]
    _assert_loaded(model, torch.load(reference_dir / "models/pose_hrnet_tiny.pt", weights_only=True))


@pytest.mark.parametrize("layout", ["plain", "hrnet_training_checkpoint", "posekit_model", "mmpose0", "mmpose1"])
def test_checkpoint_layouts_load_into_official_names(tmp_path, layout):
    model = _tiny_hrnet()
    state = _random_state(model)
    if layout == "plain":
        obj = state
    elif layout == "hrnet_training_checkpoint":  # official lib/utils/utils.py save_checkpoint content
        obj = {"epoch": 3, "model": "pose_hrnet", "perf": 0.71, "best_state_dict": {},
               "state_dict": {f"module.{k}": v for k, v in state.items()},
               "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3, "params": [0, 1]}]}}
    elif layout == "posekit_model":
        obj = {"model": state, "epoch": 1}
    else:
        head = "keypoint_head." if layout == "mmpose0" else "head."
        obj = {"meta": {"mmpose_version": "x", "epoch": 210},
               "state_dict": {(head if k.startswith("final_layer") else "backbone.") + k: v for k, v in state.items()}}
    path = tmp_path / f"{layout}.pth"
    torch.save(obj, path)
    report = load_checkpoint(model, path)
    assert report.ok
    _assert_loaded(model, state)
    if layout.startswith("mmpose"):
        assert any("MMPose" in n for n in report.notes)


def test_mmpose_simplebaseline_names(tmp_path):
    model = PoseResNet(PoseResNetConfig(depth=18, num_deconv_filters=(8, 8, 8), num_joints=3))
    state = _random_state(model, seed=1)
    mm = {(f"keypoint_head.{k}" if k.startswith(("deconv_layers", "final_layer")) else f"backbone.{k}"): v
          for k, v in state.items()}
    torch.save({"state_dict": mm}, tmp_path / "mm.pth")
    assert load_checkpoint(model, tmp_path / "mm.pth").ok
    _assert_loaded(model, state)


def test_mismatches_raise_checkpoint_error_naming_file_and_keys(tmp_path):
    model = _tiny_hrnet()
    state = _random_state(model)
    missing = dict(state)
    del missing["stage3.0.branches.1.0.conv2.weight"]
    missing["extra.weight"] = torch.zeros(1)
    torch.save(missing, tmp_path / "bad_keys.pth")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(model, tmp_path / "bad_keys.pth")
    msg = str(err.value)
    assert "bad_keys.pth" in msg and "stage3.0.branches.1.0.conv2.weight" in msg and "extra.weight" in msg
    assert "missing in checkpoint (1)" in msg and "unexpected in checkpoint (1)" in msg
    report = load_checkpoint(model, tmp_path / "bad_keys.pth", strict=False)  # non-strict loads the rest
    assert report.missing == ["stage3.0.branches.1.0.conv2.weight"] and report.unexpected == ["extra.weight"]
    other = posekit.models.build("hrnet_w16_tiny_128x96", num_joints=16)
    torch.save(state, tmp_path / "joints17.pth")
    with pytest.raises(CheckpointError, match=r"final_layer.weight: \(17, 16, 1, 1\) vs \(16, 16, 1, 1\)"):
        load_checkpoint(other, tmp_path / "joints17.pth", strict=False)


def test_old_checkpoints_without_num_batches_tracked_load(tmp_path):
    model = _tiny_hrnet()
    state = {k: v for k, v in _random_state(model).items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pth")
    assert load_checkpoint(model, tmp_path / "old.pth").ok
    assert model.bn1.num_batches_tracked.item() == 0


def test_unsafe_or_unreadable_files_are_refused(tmp_path):
    torch.save({"state_dict": {}, "args": argparse.Namespace(lr=1)}, tmp_path / "pickled.pth")
    with pytest.raises(CheckpointError, match="pickled.pth.*weights-only"):
        load_checkpoint(_tiny_hrnet(), tmp_path / "pickled.pth")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(_tiny_hrnet(), tmp_path / "absent.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pth"):
        load_checkpoint(_tiny_hrnet(), tmp_path / "garbage.pth")
    for name, data in (("hello.pth", b"hello\n"), ("config.pth", b'{"MODEL": 1}')):  # were KeyError tracebacks
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CheckpointError, match=rf"{name}: not a PyTorch checkpoint file \(it starts with"):
            load_checkpoint(_tiny_hrnet(), tmp_path / name)
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="list.pth: expected a state_dict"):
        load_checkpoint(_tiny_hrnet(), tmp_path / "list.pth")


def test_torchvision_imagenet_resnet_loads_into_the_backbone_only(tmp_path):
    model = PoseResNet(PoseResNetConfig(depth=18, num_deconv_filters=(8, 8, 8), num_joints=3))
    head_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("deconv", "final"))}
    backbone = {k: v for k, v in _random_state(model, seed=2).items() if not k.startswith(("deconv", "final"))}
    imagenet = {**backbone, "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}
    torch.save(imagenet, tmp_path / "resnet18-imagenet.pth")
    report = load_imagenet_backbone(model, tmp_path / "resnet18-imagenet.pth")
    sd = model.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in backbone.items())
    assert all(torch.equal(sd[k], v) for k, v in head_before.items())
    assert not report.unexpected and set(report.missing) == {k for k in head_before if "num_batches" not in k}
    imagenet["layer5.0.conv1.weight"] = torch.zeros(1)  # under no root: ignored
    imagenet["layer4.2.conv1.weight"] = torch.zeros(1)  # under a root but not in the model: reported, skipped
    torch.save(imagenet, tmp_path / "extra.pth")
    assert load_imagenet_backbone(model, tmp_path / "extra.pth").unexpected == ["layer4.2.conv1.weight"]
    del imagenet["layer4.1.bn2.running_var"]
    torch.save(imagenet, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="layer4.1.bn2.running_var"):
        load_imagenet_backbone(model, tmp_path / "partial.pth")


def test_classification_hrnet_imagenet_weights_load_into_pose_hrnet(tmp_path):
    """The ImageNet HRNet has multi-scale stage-4 fuse layers, incre/downsamp/final layers and a classifier."""
    from dataclasses import replace

    from posekit.models.hrnet import TINY_W16
    from posekit.models.weights import HRNET_BACKBONE_ROOTS

    cls_net = PoseHighResolutionNet(replace(TINY_W16, head="cls"))
    state = {**_random_state(cls_net, seed=3), "classifier.weight": torch.zeros(1000, 2048)}
    torch.save(state, tmp_path / "hrnet_imagenet.pth")
    pose = PoseHighResolutionNet(TINY_W16)
    report = load_imagenet_backbone(pose, tmp_path / "hrnet_imagenet.pth", HRNET_BACKBONE_ROOTS)
    sd = pose.state_dict()
    assert all(torch.equal(sd[k], state[k]) for k in report.loaded)
    assert set(report.missing) == {"final_layer.weight", "final_layer.bias"}
    assert report.unexpected and all(k.startswith("stage4.0.fuse_layers.") for k in report.unexpected)


# ---------------------------------------------------------------------------------------------------------------
# MODEL.PRETRAINED: backbone transfer between networks (load_pretrained_weights)


def test_pretrained_heatmap_checkpoint_fills_the_prtr_backbone_and_reports_the_rest(tmp_path):
    """A posekit weights file of the demo HRNet (17-joint heatmap head) initialises PRTR's `backbone.0.body.`."""
    from posekit.models.weights import load_pretrained_weights

    donor = _tiny_hrnet()
    state = _random_state(donor, seed=4)
    torch.save({"format": "posekit-weights-v1", "state_dict": state, "spec": {"name": "hrnet_w16_tiny_128x96"}},
               tmp_path / "demo.pth")
    prtr = posekit.models.build("prtr_hrnet_w16_tiny_hr_128x96")
    head_before = {k: v.clone() for k, v in prtr.state_dict().items() if not k.startswith("backbone.")}
    report = load_pretrained_weights(prtr, tmp_path / "demo.pth")
    sd = prtr.state_dict()
    backbone = [k for k in state if not k.startswith("final_layer")]
    assert sorted(report.loaded) == sorted(f"backbone.0.body.{k}" for k in backbone)
    assert all(torch.equal(sd[f"backbone.0.body.{k}"], state[k]) for k in backbone)
    assert all(torch.equal(sd[k], v) for k, v in head_before.items())  # the transformer keeps its init
    assert (report.source_prefix, report.target_prefix) == ("", "backbone.0.body.")
    assert sorted(report.skipped) == [("final_layer.bias", "not in the model"),
                                      ("final_layer.weight", "not in the model")]
    assert set(report.missing) == set(head_before)
    assert "240 of 242 checkpoint tensors loaded" in report.summary()
    assert report.to_dict()["loaded"] == 240


def test_pretrained_checkpoint_with_another_head_loads_its_backbone_and_skips_the_head(tmp_path):
    """DataParallel 'module.' keys under {'state_dict'}; a 5-joint head does not fit a 17-joint model."""
    from posekit.models.weights import load_pretrained_weights

    donor = posekit.models.build("hrnet_w16_tiny_128x96", num_joints=5)
    state = _random_state(donor, seed=5)
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "five.pth")
    model = _tiny_hrnet()
    head_before = {k: model.state_dict()[k].clone() for k in ("final_layer.weight", "final_layer.bias")}
    report = load_pretrained_weights(model, tmp_path / "five.pth")
    sd = model.state_dict()
    assert report.source_prefix == "module." and report.target_prefix == ""
    assert all(torch.equal(sd[k], v) for k, v in state.items() if not k.startswith("final_layer"))
    assert all(torch.equal(sd[k], v) for k, v in head_before.items())
    assert dict(report.skipped) == {"module.final_layer.weight": "shape: (5, 16, 1, 1) vs model (17, 16, 1, 1)",
                                    "module.final_layer.bias": "shape: (5,) vs model (17,)"}
    assert report.missing == ["final_layer.weight", "final_layer.bias"]
    assert "skipped, shape (2)" in report.summary()


def test_pretrained_layers_limit_what_loads(tmp_path):
    from posekit.models.weights import load_pretrained_weights

    state = _random_state(_tiny_hrnet(), seed=6)
    torch.save(state, tmp_path / "w.pth")
    model = _tiny_hrnet()
    report = load_pretrained_weights(model, tmp_path / "w.pth", layers=["conv1", "bn1"])
    assert sorted(report.loaded) == sorted(k for k in state if k.startswith(("conv1.", "bn1.")))
    assert ("stage2.0.branches.0.0.conv1.weight", "outside PRETRAINED_LAYERS") in report.skipped


def test_pretrained_checkpoint_of_another_family_is_refused(tmp_path):
    """An AE hourglass has no tensor that fits a PRTR; a ResNet shares only a stem BatchNorm with an HRNet."""
    from posekit.models.weights import load_pretrained_weights

    ae = posekit.models.build("ae_hourglass_small_128")
    torch.save({"format": "posekit-weights-v1", "state_dict": ae.state_dict(),
                "spec": {"name": "ae_hourglass_small_128"}}, tmp_path / "ae.pth")
    prtr = posekit.models.build("prtr_hrnet_w16_tiny_hr_128x96")
    before = {k: v.clone() for k, v in prtr.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"ae.pth: a posekit checkpoint of ae_hourglass_small_128 does not "
                                              r"fit PoseTransformer: 0 tensors"):
        load_pretrained_weights(prtr, tmp_path / "ae.pth")
    assert all(torch.equal(v, before[k]) for k, v in prtr.state_dict().items())  # nothing half-loaded
    resnet = PoseResNet(PoseResNetConfig(depth=18, num_deconv_filters=(8, 8, 8), num_joints=17))
    torch.save(resnet.state_dict(), tmp_path / "r18.pth")
    with pytest.raises(CheckpointError, match=r"r18.pth: the checkpoint does not fit PoseHighResolutionNet: "
                                              r"\d+ tensors \(0.0% of its numbers\)"):
        load_pretrained_weights(_tiny_hrnet(), tmp_path / "r18.pth")
