"""What a trained network needs to be used: its `ModelSpec`, carried inside every posekit weights file.

A posekit weights file (model_best.pth, final_state.pth, the demo's model.pth, exported weights) is

    {"format": "posekit-weights-v1", "state_dict": {...official key names...}, "spec": ModelSpec.to_dict()}

and a training checkpoint (posekit.engine.checkpoint) carries the same "spec" next to its full state. Official
checkpoints (plain state_dicts) have no spec: their users name a zoo model or a config. `read_spec(path)` returns
the spec of a file (None for an official file); `build_network(spec)` / `build_codec(spec)` rebuild exactly what
was trained (zoo network at the trained size and head, the codec with its options, the skeleton).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from posekit.errors import CheckpointError, ConfigError

WEIGHTS_FORMAT = "posekit-weights-v1"


@dataclass(frozen=True)
class ModelSpec:
    """A network description, its sizes, codec (with options), skeleton and input colour order."""

    name: str  # zoo name, or the official MODEL.NAME
    zoo: bool
    input_size: tuple[int, int]  # (w, h)
    heatmap_size: tuple[int, int]  # (w, h)
    num_joints: int
    codec: str
    codec_cfg: dict[str, Any] = field(default_factory=dict)
    skeleton: str = "coco"
    task: str = "topdown"
    color_rgb: bool = True  # False: the network takes BGR (older official SimpleBaseline checkpoints)
    config_yaml: str = ""  # the whole training config (needed to rebuild non-zoo networks)

    def to_dict(self) -> dict[str, Any]:
        """Plain containers only (loads with torch.load(weights_only=True))."""
        d = asdict(self)
        d["input_size"], d["heatmap_size"] = list(self.input_size), list(self.heatmap_size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "<spec>") -> ModelSpec:
        """Inverse of to_dict, with an error naming the missing field."""
        names = {f.name for f in fields(cls)}
        required = {"name", "zoo", "input_size", "heatmap_size", "num_joints", "codec"}
        missing = sorted(required - set(d))
        if missing:
            raise CheckpointError(f"{source}: model spec lacks {', '.join(missing)}")
        kw = {k: v for k, v in d.items() if k in names}
        kw["input_size"] = _size(d["input_size"], "input_size", source)
        kw["heatmap_size"] = _size(d["heatmap_size"], "heatmap_size", source)
        for key, kind in (("name", str), ("codec", str), ("skeleton", str), ("task", str), ("config_yaml", str),
                          ("zoo", bool), ("color_rgb", bool)):
            if key in kw and not isinstance(kw[key], kind):
                raise CheckpointError(f"{source}: model spec field {key!r} is {kw[key]!r}, expected a {kind.__name__}")
        if type(kw["num_joints"]) is not int or kw["num_joints"] < 1:
            raise CheckpointError(f"{source}: model spec field 'num_joints' is {kw['num_joints']!r}, expected a "
                                  "positive integer")
        if not isinstance(d.get("codec_cfg") or {}, dict):
            raise CheckpointError(f"{source}: model spec field 'codec_cfg' must be a dict of codec options")
        kw["codec_cfg"] = dict(d.get("codec_cfg") or {})
        check_codec_options(kw["codec"], kw["codec_cfg"], source)
        return cls(**kw)

    def summary(self) -> str:
        """One line: name, sizes, codec, skeleton."""
        w, h = self.input_size
        return (f"{self.name} {w}x{h} -> {self.heatmap_size[0]}x{self.heatmap_size[1]}, codec {self.codec}, "
                f"skeleton {self.skeleton} ({self.num_joints} joints), {'RGB' if self.color_rgb else 'BGR'}")


def _size(value: Any, key: str, source: str) -> tuple[int, int]:
    """A (w, h) pair of positive integers, or a CheckpointError naming the spec field."""
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    if not ok:
        raise CheckpointError(f"{source}: model spec field {key!r} is {value!r}, expected [w, h] positive integers")
    return int(value[0]), int(value[1])


def _codec_parameters(codec: str) -> dict[str, inspect.Parameter]:
    """Keyword options a codec's constructor takes (through its base classes' *args/**kwargs)."""
    from posekit import codecs

    params: dict[str, inspect.Parameter] = {}
    for klass in type.mro(codecs._CODECS[codec]):
        if "__init__" in vars(klass):
            for name, par in inspect.signature(vars(klass)["__init__"]).parameters.items():
                if name != "self" and par.kind not in (par.VAR_POSITIONAL, par.VAR_KEYWORD):
                    params.setdefault(name, par)
    return params


def check_codec_options(codec: str, cfg: dict[str, Any], source: str) -> None:
    """CheckpointError naming spec field codec / codec_cfg.<option> when a codec or an option value is unusable.

    An option must be one the codec's constructor takes, of the type of its default: a number (finite; sigma > 0)
    where the default is a number, true/false where it is a bool, a list of numbers where it is a sequence.
    """
    from posekit import codecs

    if codec not in codecs.names():
        raise CheckpointError(f"{source}: model spec field 'codec' is {codec!r}, expected one of {codecs.names()}")
    params = _codec_parameters(codec)
    for key, value in cfg.items():
        where = f"{source}: model spec field codec_cfg.{key}"
        if key in ("input_size", "heatmap_size", "num_keypoints") or key not in params:
            known = sorted(k for k in params if k not in ("input_size", "heatmap_size", "num_keypoints"))
            raise CheckpointError(f"{where}: not an option of codec {codec!r} (its options: {', '.join(known)})")
        default, note = params[key].default, str(params[key].annotation)
        if value is None and ("None" in note or default is None):
            continue
        if isinstance(default, bool) or note.startswith("bool"):
            ok, expected = isinstance(value, bool), "true or false"
        elif isinstance(default, (int, float)) or note.startswith(("int", "float")):
            ok = _number(value) and (key != "sigma" or value > 0)
            expected = "a positive number" if key == "sigma" else "a finite number"
        elif "Sequence" in note:
            ok, expected = isinstance(value, (list, tuple)) and all(_number(v) for v in value), "a list of numbers"
        else:
            ok, expected = isinstance(value, type(default)) if default is not None else True, type(default).__name__
        if not ok:
            raise CheckpointError(f"{where} is {value!r}, expected {expected}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_spec(path: str | Path) -> ModelSpec | None:
    """The ModelSpec stored in a posekit weights file or training checkpoint; None for official files."""
    from posekit.models.weights import load_torch_file

    obj = load_torch_file(path, "weights")
    if isinstance(obj, dict) and isinstance(obj.get("spec"), dict):
        return ModelSpec.from_dict(obj["spec"], source=str(path))
    return None


def weights_file(state_dict: dict[str, torch.Tensor], spec: ModelSpec) -> dict[str, Any]:
    """The object a posekit weights file holds (save it with posekit.engine.checkpoint.atomic_save)."""
    return {"format": WEIGHTS_FORMAT, "state_dict": {k: v.contiguous() for k, v in state_dict.items()},
            "spec": spec.to_dict()}


def build_codec(spec: ModelSpec) -> Any:
    """The codec of a spec, with every option passed to its constructor."""
    from posekit import codecs

    return codecs.build(spec.codec, input_size=spec.input_size, heatmap_size=spec.heatmap_size,
                        num_keypoints=spec.num_joints, **spec.codec_cfg)


def build_network(spec: ModelSpec, out_channels: int | None = None) -> nn.Module:
    """The zoo network of a spec at its trained size and head (eval mode, fresh weights)."""
    from posekit import models, skeletons

    if not spec.zoo:
        raise ConfigError(f"model {spec.name!r} is not a zoo model: rebuild it from its config "
                          "(posekit.engine.build.build(config_from_yaml(spec.config_yaml)))")
    e = models.entry(spec.name)
    if out_channels is None:
        out_channels = int(getattr(build_codec(spec), "out_channels", spec.num_joints))
    same_head = spec.codec == e.codec and len(skeletons.get(e.skeleton).keypoints) == spec.num_joints
    return models.build(spec.name) if same_head else models.build(spec.name, num_joints=out_channels)


def check_compatible(spec: ModelSpec, other: ModelSpec, source: str) -> None:
    """Raise when a stored spec and the one a user asked for disagree on what changes predictions."""
    diffs = [f"{k}: {getattr(spec, k)!r} in the weights vs {getattr(other, k)!r} asked for"
             for k in ("name", "input_size", "heatmap_size", "num_joints", "codec", "skeleton", "color_rgb")
             if getattr(spec, k) != getattr(other, k)]
    if diffs:
        raise ConfigError(f"{source}: the weights were trained with another model spec - " + "; ".join(diffs)
                          + " (drop --model/--config to use the spec stored in the weights)")
