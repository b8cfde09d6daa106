"""Where a config becomes a model spec, a codec and a top-down network (the layer below the task table).

`model_spec(cfg)` turns a Config into a ModelSpec (posekit.modelspec); `build_codec_from_config` gives its codec
(every option passed to its constructor); `build_topdown` the heatmap / offset / integral top-down network of a zoo
name or the official MODEL.NAME vocabulary, its input size checked by a shape-only forward. The task modules
(posekit.engine.tasks) build on these; posekit.engine.build.build(cfg) builds any config through its task.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from posekit.config import MODEL_FAMILIES, Config, config_to_yaml, dataset_format
from posekit.engine.tasks.base import OFFICIAL_TASKS, Built
from posekit.errors import ConfigError
from posekit.modelspec import ModelSpec, build_codec


def _official_codec(cfg: Config) -> str:
    m, t = cfg.MODEL, cfg.TEST
    target = m.TARGET_TYPE.lower()
    if target == "gaussian":
        if m.NAME == "lpn" and t.SOFT_ARGMAX:
            return "beta_soft_argmax"
        return "dark" if t.BLUR_KERNEL > 0 else "msra"
    if target in ("offset", "combined"):
        return "udp_offset"
    if target == "coord":  # PRTR (MODEL.NAME pose_transformer): normalised coordinates, matched decoding
        return "coord"
    raise ConfigError(f"MODEL.TARGET_TYPE {m.TARGET_TYPE!r} in {cfg.source}: posekit trains 'gaussian' (and "
                      "'offset' = UDP CombinedTarget) heatmaps; set MODEL.CODEC to choose another codec")


def _same_stride(zoo_input: tuple[int, int], zoo_heatmap: tuple[int, int], input_size: Any) -> tuple[int, int]:
    """Heatmap size of another input size at the zoo model's stride (odd 'n * s + 1' sizes keep that form: G-RMI)."""
    odd = all(i % 2 == 1 and (i - 1) % (h - 1) == 0 for i, h in zip(zoo_input, zoo_heatmap))
    if odd:
        stride = (zoo_input[0] - 1) // (zoo_heatmap[0] - 1)
        return tuple((int(s) - 1) // stride + 1 for s in input_size)
    stride = zoo_input[0] // zoo_heatmap[0]
    return tuple(int(s) // stride for s in input_size)


def model_spec(cfg: Config) -> ModelSpec:
    """Resolve MODEL.ZOO or MODEL.NAME/EXTRA/IMAGE_SIZE into a ModelSpec (no network is built)."""
    from posekit import models

    m = cfg.MODEL
    codec_cfg: dict[str, Any] = {}
    if m.ZOO:
        e = models.entry(m.ZOO)
        input_size = tuple(m.IMAGE_SIZE) if m.IMAGE_SIZE else e.input_size
        heatmap_size = tuple(m.HEATMAP_SIZE) if m.HEATMAP_SIZE else e.heatmap_size
        if m.IMAGE_SIZE and not m.HEATMAP_SIZE:  # keep the zoo model's output stride
            heatmap_size = _same_stride(e.input_size, e.heatmap_size, input_size)
        codec = m.CODEC or e.codec
        codec_cfg.update(e.codec_cfg if codec == e.codec else {})
        skeleton = cfg.DATASET.SKELETON or e.skeleton
        name, zoo = m.ZOO, True
    else:
        if m.NAME not in MODEL_FAMILIES:
            raise ConfigError(f"MODEL.NAME {m.NAME!r} in {cfg.source}: posekit builds {', '.join(MODEL_FAMILIES)} "
                              "from the official vocabulary, or any `posekit models` name via MODEL.ZOO")
        input_size, heatmap_size = tuple(m.IMAGE_SIZE), tuple(m.HEATMAP_SIZE)
        codec = m.CODEC or _official_codec(cfg)
        skeleton = cfg.DATASET.SKELETON or dataset_format(cfg)
        name, zoo = m.NAME, False
    if m.SIGMA > 0:
        codec_cfg["sigma"] = m.SIGMA
    codec_cfg.setdefault("sigma", 2.0)
    if codec in ("dark", "udp", "udp_offset") and cfg.TEST.BLUR_KERNEL > 0:
        codec_cfg["blur_kernel"] = cfg.TEST.BLUR_KERNEL
    if codec in ("msra", "beta_soft_argmax") and not cfg.TEST.POST_PROCESS:
        codec_cfg["post_process"] = False
    if not cfg.TEST.SHIFT_HEATMAP:
        codec_cfg["shift_heatmap"] = False
    from posekit import skeletons

    sk = skeletons.get(skeleton)
    num_joints = m.NUM_JOINTS or len(sk.keypoints)
    if num_joints != len(sk.keypoints):
        raise ConfigError(f"MODEL.NUM_JOINTS {num_joints} in {cfg.source} does not match skeleton {skeleton!r} "
                          f"({len(sk.keypoints)} keypoints); set DATASET.SKELETON")
    task = getattr(models.entry(m.ZOO), "task", "topdown") if zoo else OFFICIAL_TASKS.get(m.NAME, "topdown")
    if codec == "body3d":  # the 3-D codec's depth box and input normalisation are BODY3D settings
        codec_cfg.update(bbox_3d_depth=float(cfg.BODY3D.BBOX_3D_DEPTH), input_norm=cfg.BODY3D.INPUT_NORM)
        b = cfg.BODY3D  # the camera a 3-D model assumes for images without intrinsics travels in its spec
        codec_cfg.update({k: v for k, v in (("focal", list(b.FOCAL)), ("focal_per_width", float(b.FOCAL_PER_WIDTH)),
                                            ("root_box_size", float(b.ROOT_BOX_SIZE))) if v not in ([], 0.0, 2000.0)})
    return ModelSpec(name=name, zoo=zoo, input_size=(int(input_size[0]), int(input_size[1])),
                     heatmap_size=(int(heatmap_size[0]), int(heatmap_size[1])), num_joints=num_joints,
                     codec=codec, codec_cfg=codec_cfg, skeleton=skeleton, task=task,
                     color_rgb=bool(cfg.DATASET.COLOR_RGB), config_yaml=config_to_yaml(cfg))


def _build_official(cfg: Config, out_channels: int) -> Any:
    """The network of an official MODEL.NAME + EXTRA."""
    m, x = cfg.MODEL, cfg.MODEL.EXTRA
    if m.NAME == "pose_hrnet":
        from posekit.models.hrnet import HRNetConfig, build_hrnet

        return build_hrnet(HRNetConfig.from_official(x, num_joints=out_channels))
    deconv = dict(num_deconv_filters=tuple(x.get("NUM_DECONV_FILTERS", (256, 256, 256))),
                  num_deconv_kernels=tuple(x.get("NUM_DECONV_KERNELS", (4, 4, 4))),
                  deconv_with_bias=bool(x.get("DECONV_WITH_BIAS", False)),
                  final_conv_kernel=int(x.get("FINAL_CONV_KERNEL", 1)))
    if m.NAME == "pose_resnet":
        from posekit.models.resnet import PoseResNet, PoseResNetConfig

        n = int(x.get("NUM_DECONV_LAYERS", len(deconv["num_deconv_filters"])))
        return PoseResNet(PoseResNetConfig(depth=int(x.get("NUM_LAYERS", 50)), num_joints=out_channels,
                                           num_deconv_layers=n, **deconv))
    from posekit.models.lpn import LPN, LPN_SPEC

    depth = int(x.get("NUM_LAYERS", 50))
    if depth not in LPN_SPEC:
        raise ConfigError(f"MODEL.EXTRA.NUM_LAYERS in {cfg.source}: LPN depth must be one of {sorted(LPN_SPEC)}")
    return LPN(layers=LPN_SPEC[depth], num_joints=out_channels,
               deconv_filters=tuple(x.get("NUM_DECONV_FILTERS", (256, 256))),
               deconv_kernels=tuple(x.get("NUM_DECONV_KERNELS", (4, 4))),
               deconv_with_bias=deconv["deconv_with_bias"], final_conv_kernel=deconv["final_conv_kernel"],
               attention=x.get("ATTENTION") or None)


def build_codec_from_config(cfg: Config, spec: ModelSpec | None = None) -> Any:
    """The codec object a config resolves to (TEST.POST_PROCESS / SHIFT_HEATMAP passed to its constructor)."""
    spec = spec or model_spec(cfg)
    return build_codec(spec)


def build_topdown(cfg: Config) -> Built:
    """Network (eval mode, fresh weights), codec and skeleton of a heatmap / offset / integral top-down config (a
    zoo model or the official MODEL.NAME vocabulary); `posekit.engine.build.build` builds any config."""
    from posekit import models, skeletons

    spec = model_spec(cfg)
    codec = build_codec(spec)
    out_channels = int(getattr(codec, "out_channels", spec.num_joints))
    if spec.zoo:
        e = models.entry(spec.name)
        same_head = spec.codec == e.codec and len(skeletons.get(e.skeleton).keypoints) == spec.num_joints
        model = models.build(spec.name) if same_head else models.build(spec.name, num_joints=out_channels)
    else:
        model = _build_official(cfg, out_channels).eval()
    if not spec.zoo or cfg.MODEL.IMAGE_SIZE or cfg.MODEL.HEATMAP_SIZE:  # zoo defaults are known to fit
        check_input_size(model, spec, cfg.source)
    return Built(model=model, codec=codec, skeleton=skeletons.get(spec.skeleton), spec=spec)


def _shape_forward(model: nn.Module, size: tuple[int, int]) -> Any:
    """The model's output for a [1,3,h,w] input on the meta device: shapes only, nothing is computed or copied."""
    from torch.func import functional_call

    state = {k: torch.empty_like(v, device="meta") for k, v in [*model.named_parameters(), *model.named_buffers()]}
    with torch.no_grad():
        return functional_call(model, state, (torch.empty(1, 3, size[1], size[0], device="meta"),), strict=False)


def _heatmap_hw(out: Any) -> tuple[int, int] | None:
    """(h, w) of a heatmap-like output (a tensor with >= 4 dims, or the last of a list of them); else None."""
    if isinstance(out, (list, tuple)) and out:
        out = out[-1]
    return tuple(out.shape[-2:]) if isinstance(out, torch.Tensor) and out.dim() >= 4 else None


def check_input_size(model: nn.Module, spec: ModelSpec, source: str = "the config") -> None:
    """ConfigError naming MODEL.IMAGE_SIZE when the network cannot take the input size, or gives a heatmap of
    another size than MODEL.HEATMAP_SIZE; checked by a shape-only forward before any network runs."""
    w, h = spec.input_size
    try:
        hw = _heatmap_hw(_shape_forward(model, (w, h)))
    except RuntimeError as e:
        hint = ""
        for k in (32, 64):
            fit = (-(-w // k) * k, -(-h // k) * k)
            try:
                _shape_forward(model, fit)
            except RuntimeError:
                continue
            hint = f"; sides that are multiples of {k} work, e.g. MODEL.IMAGE_SIZE=[{fit[0]},{fit[1]}]"
            break
        raise ConfigError(f"MODEL.IMAGE_SIZE [{w},{h}] in {source}: {spec.name} cannot take a {w}x{h} input (shapes "
                          f"inside the network do not line up: {str(e).splitlines()[0]}){hint}") from None
    if hw is not None and hw != (spec.heatmap_size[1], spec.heatmap_size[0]):
        raise ConfigError(f"MODEL.IMAGE_SIZE [{w},{h}] / MODEL.HEATMAP_SIZE {list(spec.heatmap_size)} in {source}: "
                          f"{spec.name} gives {hw[1]}x{hw[0]} heatmaps at this input size, not "
                          f"{spec.heatmap_size[0]}x{spec.heatmap_size[1]}")
