"""Config: official YAMLs load, overrides, helpful errors, YAML round trip, config -> official network."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import yaml

from posekit.config import (
    config_from_dict,
    config_from_yaml,
    config_to_dict,
    config_to_yaml,
    load_config,
    parse_override,
)
from posekit.engine.build import build_model_from_config, model_spec
from posekit.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
POSEKIT_CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))


def _official(reference_dir: Path) -> list[Path]:
    files = sorted((reference_dir / "configs").rglob("*.yaml"))
    assert len(files) >= 70
    return files


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and not (prefix + k).startswith("MODEL.EXTRA"):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def test_every_official_yaml_loads_and_no_key_is_dropped_silently(reference_dir):
    for path in _official(reference_dir):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cfg = load_config(path)
        raw = _flatten(yaml.safe_load(path.read_text()))
        kept = _flatten(config_to_dict(cfg))
        for key in raw:
            if key in kept:
                continue
            # every key that is not in the Config must be named in the warning and in cfg.unused
            assert any(u.startswith(key) for u in cfg.unused), f"{path}: {key} dropped silently"
            assert caught and key in str(caught[0].message), f"{path}: {key} missing from the warning"
        assert cfg == config_from_yaml(config_to_yaml(cfg)), path


def test_official_values_reach_the_config(reference_dir):
    cfg = load_config(reference_dir / "configs/hrnet_repo/coco/hrnet/w32_256x192_adam_lr1e-3.yaml", warn=False)
    assert cfg.MODEL.IMAGE_SIZE == [192, 256] and cfg.MODEL.HEATMAP_SIZE == [48, 64] and cfg.MODEL.SIGMA == 2
    assert cfg.TRAIN.LR == 0.001 and cfg.TRAIN.LR_STEP == [170, 200] and cfg.TRAIN.END_EPOCH == 210
    assert cfg.TEST.OKS_THRE == 0.9 and cfg.TEST.IN_VIS_THRE == 0.2 and cfg.DATASET.ROT_FACTOR == 45
    assert cfg.MODEL.EXTRA["STAGE4"]["NUM_CHANNELS"] == [32, 64, 128, 256]
    assert "GPUS (multi-GPU training uses `torchrun --nproc_per_node N`)" in cfg.unused
    spec = model_spec(cfg)
    assert (spec.codec, spec.input_size, spec.heatmap_size, spec.skeleton) == ("msra", (192, 256), (48, 64), "coco")
    assert spec.codec_cfg["sigma"] == 2


@pytest.mark.parametrize("path,codec", [
    ("darkpose_repo/coco/hrnet/w32_256x192_adam_lr1e-3.yaml", "dark"),
    ("lpn_repo/coco/lpn/lpn50_256x192_gd256x2_gc.yaml", "beta_soft_argmax"),
    ("hrnet_repo/mpii/resnet/res50_256x256_d256x3_adam_lr1e-3.yaml", "msra"),
])
def test_codec_follows_the_repo_vocabulary(reference_dir, path, codec):
    spec = model_spec(load_config(reference_dir / "configs" / path, warn=False))
    assert spec.codec == codec
    assert spec.skeleton == ("mpii" if "/mpii/" in path else "coco")


@pytest.mark.parametrize("manifest,repo", [
    ("pose_hrnet_w32_256x192", "hrnet_repo"),
    ("pose_resnet_50_256x192", "hrnet_repo"),
    ("lpn_50_256x192", "lpn_repo"),
])
def test_official_config_builds_the_official_network(reference_dir, manifest, repo):
    info = json.loads((reference_dir / "manifests" / f"{manifest}.json").read_text())
    path = reference_dir / "configs" / repo / info["config_file"].removeprefix("experiments/")
    model, codec, skeleton = build_model_from_config(load_config(path, warn=False))
    got = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert got == [[k, shape] for k, shape, _ in info["state_dict"]]
    assert sum(p.numel() for p in model.parameters()) == info["num_parameters"]
    assert codec.input_size == (192, 256) and skeleton.num_keypoints == 17


def test_official_prtr_yaml_resolves_to_the_prtr_task(reference_dir):
    cfg = load_config(reference_dir / "configs/prtr_repo/coco/transformer/res50_384x288_adamw_lr1e-4.yaml",
                      warn=False)
    spec = model_spec(cfg)
    assert spec.task == "prtr" and spec.input_size == (288, 384) and spec.codec == "coord"


def test_posekit_configs_load_without_unused_keys_and_resolve():
    assert POSEKIT_CONFIGS, "configs/ is empty"
    for path in POSEKIT_CONFIGS:
        cfg = load_config(path)
        assert cfg.unused == [], f"{path}: {cfg.unused}"
        spec = model_spec(cfg)
        assert spec.input_size[0] > 0, path
        assert cfg == config_from_yaml(config_to_yaml(cfg))


def _tiny(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "x.yaml"
    p.write_text(text)
    return p


BASE = "MODEL:\n  ZOO: hrnet_w32_256x192\n"


def test_overrides_dotted_keys_lists_and_yaml_scalars(tmp_path):
    path = _tiny(tmp_path, BASE + "TRAIN:\n  LR: 0.001\n")
    cfg = load_config(path, ["TRAIN.LR=5e-4", "TRAIN.LR_STEP=[10,20]", "TEST.FLIP_TEST=false",
                             "MODEL.IMAGE_SIZE=288,384", "DATASET.ROOT=data/coco", "TRAIN.MAX_ITERS=7"])
    assert cfg.TRAIN.LR == 5e-4 and cfg.TRAIN.LR_STEP == [10, 20] and cfg.TEST.FLIP_TEST is False
    assert cfg.MODEL.IMAGE_SIZE == [288, 384] and cfg.DATASET.ROOT == "data/coco" and cfg.TRAIN.MAX_ITERS == 7
    spec = model_spec(cfg)
    assert spec.input_size == (288, 384) and spec.heatmap_size == (72, 96)  # zoo stride kept
    assert parse_override("A.B=[1, 2]") == ("A.B", [1, 2])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("TRAIN.LR")


def test_typo_in_file_names_key_file_and_suggestion(tmp_path):
    path = _tiny(tmp_path, BASE + "TRAIN:\n  BATCH_SIZE_PER_GUP: 8\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert "unknown key TRAIN.BATCH_SIZE_PER_GUP" in msg and str(path) in msg
    assert "did you mean TRAIN.BATCH_SIZE_PER_GPU" in msg


def test_typo_in_model_extra_and_in_override(tmp_path, reference_dir):
    official = reference_dir / "configs/hrnet_repo/coco/hrnet/w32_256x192_adam_lr1e-3.yaml"
    with pytest.raises(ConfigError, match=r"unknown key MODEL\.EXTRA\.FINAL_CONV_KERNAL .*command-line override.*"
                                          r"did you mean MODEL\.EXTRA\.FINAL_CONV_KERNEL"):
        load_config(official, ["MODEL.EXTRA.FINAL_CONV_KERNAL=3"], warn=False)
    with pytest.raises(ConfigError, match=r"MODEL\.EXTRA\.STAGE2\.NUM_CHANELS .*did you mean "
                                          r"MODEL\.EXTRA\.STAGE2\.NUM_CHANNELS"):
        load_config(official, ["MODEL.EXTRA.STAGE2.NUM_CHANELS=[1,2]"], warn=False)
    with pytest.raises(ConfigError, match=r"unknown key TEST\.FLIPTEST .*did you mean TEST\.FLIP_TEST"):
        load_config(_tiny(tmp_path, BASE), ["TEST.FLIPTEST=true"])


def test_bad_values_name_the_key(tmp_path):
    path = _tiny(tmp_path, BASE)
    for override, pattern in (("TRAIN.LR=fast", "TRAIN.LR .*expected a number"),
                              ("TRAIN.END_EPOCH=2.5", "TRAIN.END_EPOCH .*expected an integer"),
                              ("TEST.FLIP_TEST=maybe", "TEST.FLIP_TEST .*true or false"),
                              ("TRAIN.OPTIMIZER=rmsprop", "TRAIN.OPTIMIZER"),
                              ("MODEL.IMAGE_SIZE=[1,2,3]", "MODEL.IMAGE_SIZE"),
                              ("TRAIN.LR_STEP=[20,10]", "TRAIN.LR_STEP"),
                              ("DATASET.IMAGE_CACHE=-1", "DATASET.IMAGE_CACHE .*>= 0"),
                              ("WORKERS=-1", "WORKERS .*>= 0"),  # was a ValueError from the DataLoader
                              ("TRAIN=3", "TRAIN .*expected a mapping")):
        with pytest.raises(ConfigError, match=pattern):
            load_config(path, [override])
    with pytest.raises(ConfigError, match="MODEL.ZOO .*MODEL.NAME"):
        config_from_dict({})
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        model_spec(config_from_dict({"MODEL": {"ZOO": "nope"}}))
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")


def test_round_trip_through_yaml_keeps_every_value(tmp_path, reference_dir):
    cfg = load_config(reference_dir / "configs/lpn_repo/coco/lpn/lpn50_256x192_gd256x2_gc.yaml",
                      ["TRAIN.MAX_MINUTES=1.5", "MODEL.CODEC=msra"], warn=False)
    text = config_to_yaml(cfg)
    again = load_config(_tiny(tmp_path, text))
    assert again == cfg and again.unused == []
    assert config_to_dict(again)["MODEL"]["EXTRA"]["ATTENTION"] == "GC"
    assert model_spec(again).codec == "msra"


def test_microsoft_repo_extra_keys_move_up():
    cfg = config_from_dict({"MODEL": {"NAME": "pose_resnet", "IMAGE_SIZE": [192, 256],
                                      "EXTRA": {"TARGET_TYPE": "gaussian", "HEATMAP_SIZE": [48, 64], "SIGMA": 2,
                                                "NUM_LAYERS": 50}}})
    assert cfg.MODEL.HEATMAP_SIZE == [48, 64] and cfg.MODEL.SIGMA == 2 and "SIGMA" not in cfg.MODEL.EXTRA
