"""Experiment configuration: nested dataclasses loaded from YAML (official HRNet vocabulary) + KEY=VALUE overrides.

A config file uses the official HRNet / SimpleBaseline / LPN / DarkPose experiment vocabulary (`MODEL.EXTRA.STAGE2`,
`DATASET.ROOT`, `TEST.FLIP_TEST`, ...) plus a few posekit keys (`MODEL.ZOO`, `MODEL.CODEC`, `DATASET.FORMAT`,
`DATASET.TRAIN_ANN`, `TRAIN.AMP`, `TRAIN.MAX_ITERS`, `TEST.BOXES`, ...). Official keys posekit does not use are
accepted and reported (a `ConfigWarning` and `Config.unused`); any other unknown key is a `ConfigError` naming it.
"""

from __future__ import annotations

import difflib
import typing
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from posekit.errors import ConfigError


class ConfigWarning(UserWarning):
    """A config holds official keys that posekit accepts but does not use."""


@dataclass
class CudnnConfig:
    """CUDNN.*: torch.backends.cudnn flags (applied when CUDA is present)."""

    BENCHMARK: bool = True
    DETERMINISTIC: bool = False
    ENABLED: bool = True


@dataclass
class ModelConfig:
    """MODEL.*: which network, its input/heatmap size and the codec."""

    NAME: str = ""  # official family: pose_hrnet | pose_resnet | lpn (used when ZOO is empty)
    ZOO: str = ""  # posekit: a zoo model name (`posekit models`); replaces NAME + EXTRA
    CODEC: str = ""  # posekit: codec name; "" = the zoo entry's codec, or from TARGET_TYPE
    STYLE: str = "pytorch"  # SimpleBaseline repo: only the pytorch style is built
    INIT_WEIGHTS: bool = True
    PRETRAINED: str = ""  # weights loaded before training: every tensor that fits by name and shape, from a posekit
    #   checkpoint/weights file of another task's network (e.g. the heatmap demo's HRNet into PRTR's backbone.0.body)
    #   or an official / ImageNet checkpoint; only under EXTRA.PRETRAINED_LAYERS when given. The load report goes
    #   to the CLI and log.jsonl; a checkpoint of another family is refused (models.weights.load_pretrained_weights)
    NUM_JOINTS: int = 0  # 0 = from the zoo entry / skeleton
    TARGET_TYPE: str = "gaussian"
    IMAGE_SIZE: list[int] = field(default_factory=list)  # (w, h); [] = from the zoo entry
    HEATMAP_SIZE: list[int] = field(default_factory=list)  # (w, h); [] = from the zoo entry
    SIGMA: float = 0.0  # 0 = the zoo entry's sigma (2 when there is none)
    EXTRA: dict[str, Any] = field(default_factory=dict)


@dataclass
class LossConfig:
    """LOSS.*: heatmap loss options."""

    NAME: str = ""  # posekit: "" = from the codec (mse / ohkm / combined / grmi / integral)
    USE_TARGET_WEIGHT: bool = True
    USE_OHKM: bool = False
    TOPK: int = 8
    USE_DIFFERENT_JOINTS_WEIGHT: bool = False
    UNIT_KERNELS: list[int] = field(default_factory=lambda: [15, 11, 9, 7])  # posekit: MSPN per-unit Gaussian
    #   kernel sizes, coarse to fine (the MSPN paper's coarse-to-fine supervision)
    AE_PUSH_WEIGHT: float = 1e-3  # posekit: bottom-up (Associative Embedding) loss weights; official 1e-3 / 1e-3 / 1
    AE_PULL_WEIGHT: float = 1e-3
    AE_DETECTION_WEIGHT: float = 1.0


@dataclass
class DatasetConfig:
    """DATASET.*: where the data lives and the training augmentation."""

    DATASET: str = "coco"  # official: coco | mpii
    FORMAT: str = ""  # posekit: coco | mpii; "" = DATASET
    ROOT: str = ""
    TRAIN_SET: str = "train2017"
    TEST_SET: str = "val2017"
    TRAIN_ANN: str = ""  # posekit: annotation file; "" = official layout under ROOT
    TEST_ANN: str = ""
    TRAIN_IMAGES: str = ""  # posekit: image folder; "" = official layout under ROOT
    TEST_IMAGES: str = ""
    SKELETON: str = ""  # posekit: skeleton name; "" = the zoo entry's, or DATASET
    DATA_FORMAT: str = "jpg"
    FLIP: bool = True
    SCALE_FACTOR: float = 0.25
    ROT_FACTOR: float = 30.0
    PROB_HALF_BODY: float = 0.0
    NUM_JOINTS_HALF_BODY: int = 8
    COLOR_RGB: bool = True  # False: the network takes BGR (older official SimpleBaseline checkpoints)
    IMAGE_CACHE: int = 8  # posekit: decoded training images kept in memory per loader process (LRU, 0 = none)


@dataclass
class TrainConfig:
    """TRAIN.*: optimiser, schedule and loop limits."""

    BATCH_SIZE_PER_GPU: int = 32
    SHUFFLE: bool = True
    BEGIN_EPOCH: int = 0
    END_EPOCH: int = 140
    OPTIMIZER: str = "adam"  # adam | adamw | sgd
    LR: float = 0.001
    LR_FACTOR: float = 0.1
    LR_STEP: list[int] = field(default_factory=lambda: [90, 110])
    WD: float = 0.0001  # used by sgd and adamw (the official adam has no weight decay)
    MOMENTUM: float = 0.9
    NESTEROV: bool = False
    RESUME: bool = False
    CHECKPOINT: str = ""  # checkpoint to resume from; "" = <out>/checkpoint.pth
    CLIP_MAX_NORM: float = 0.0  # gradient clipping (PRTR); 0 = off
    LR_BACKBONE: float = 0.0  # PRTR: learning rate of parameters named *backbone*; 0 = TRAIN.LR
    SEED: int = 0  # posekit: weight init, data order and augmentation all derive from it
    AMP: bool = True  # posekit: mixed precision when CUDA is present
    CPU_AMP: bool = False  # posekit: bfloat16 autocast when training on a CPU with native bf16 (AVX512-BF16 or AMX:
    #   ~1.6x the img/s); float32 on other CPUs, where emulated bf16 would be slower
    MAX_ITERS: int = 0  # posekit: stop (with a checkpoint) after this many iterations; 0 = no limit
    MAX_MINUTES: float = 0.0  # posekit: stop (with a checkpoint) after this long; 0 = no limit
    VAL_EVERY: int = 1  # posekit: validate every N epochs; 0 = never
    FREEZE_BN: bool = False  # posekit: keep BatchNorm layers in eval mode (small batches, fine-tuning)
    SYNC_BN: bool = False  # posekit: SyncBatchNorm under DDP on GPU
    LR_SCHEDULE: str = "multistep"  # posekit: multistep (official, LR_STEP/LR_FACTOR) | cosine (warm-up + cosine
    #   over MAX_MINUTES, else MAX_ITERS, else the epochs)
    INIT: str = "official"  # posekit: official (each family's own init) | he (He-normal convs; from scratch)
    VAL_EVERY_MINUTES: float = 0.0  # posekit: also validate every N training minutes (0 = only at epoch ends)
    VAL_EVERY_ITERS: int = 0  # posekit: also validate every N iterations (0 = only at epoch ends)
    CHECKPOINT_EVERY_MINUTES: float = 5.0  # posekit: mid-epoch checkpoint interval in minutes (0 = off)
    CHECKPOINT_EVERY_ITERS: int = 0  # posekit: mid-epoch checkpoint every N iterations (0 = off)
    CHANNELS_LAST: bool = False  # posekit: NHWC network and batches (faster CPU training with oneDNN)
    PREFETCH: int = 0  # posekit: batches prepared ahead by a background thread while the network computes (for
    #   WORKERS=0; 0 = off). For spare cores (e.g. a GPU run): on a 2-core CPU run both cores already compute, and
    #   the demo loop measured 332 img/s with PREFETCH=2 vs 376 without (quiet, 2 threads)
    BAD_SAMPLES: str = "stop"  # posekit: a corrupt image / bad record at batch time: stop (with a checkpoint) |
    #   skip (train on, list them in <out>/skipped_samples.jsonl)


@dataclass
class TestConfig:
    """TEST.*: flip test, boxes and rescoring."""

    BATCH_SIZE_PER_GPU: int = 32
    FLIP_TEST: bool = True  # the official default.py has False for these four; every official experiment sets True
    POST_PROCESS: bool = True
    SHIFT_HEATMAP: bool = True  # False disables a codec's own flip shift; True keeps each codec's rule
    USE_GT_BBOX: bool = True
    BOXES: str = ""  # posekit: "gt" or a detections JSON; "" = USE_GT_BBOX / COCO_BBOX_FILE
    IMAGE_THRE: float = 0.1
    SOFT_NMS: bool = False
    OKS_THRE: float = 0.5
    IN_VIS_THRE: float = 0.0
    COCO_BBOX_FILE: str = ""
    MODEL_FILE: str = ""
    BLUR_KERNEL: int = 0  # DarkPose; > 0 selects the dark codec for a gaussian TARGET_TYPE
    SOFT_ARGMAX: bool = False  # LPN; selects the beta_soft_argmax codec
    INCLUDE_BG_LOGIT: bool = False  # PRTR: softmax over joints + no-object before matching (official option)


@dataclass
class DebugConfig:
    """DEBUG.*: PNG grids of training crops with joints and heatmaps."""

    DEBUG: bool = False
    SAVE_BATCH_IMAGES_GT: bool = False
    SAVE_BATCH_IMAGES_PRED: bool = False
    SAVE_HEATMAPS_GT: bool = False
    SAVE_HEATMAPS_PRED: bool = False


@dataclass
class Body3DConfig:
    """BODY3D.*: posekit keys of the 3-D top-down task (3DMPPE PoseNet keeps these in its main/config.py)."""

    BBOX_3D_DEPTH: float = 2000.0  # mm covered by the depth bins, centred on the root (official bbox_3d_shape)
    INPUT_NORM: str = "standard"  # standard (RGB/255, ImageNet mean/std) | official_255 (3DMPPE weights: RGB 0..255)
    PROTOCOL: int = 2  # H36M (repo naming): 1 = train S1,5,6,7,8,9 / test S11, PA-MPJPE; 2 = S1,5-8 / S9,11, MPJPE
    ROOT_DEPTH: str = "gt"  # gt | a RootNet-style JSON list of {image_id, root_cam [x, y, z] mm} per box
    OCCLUSION_PROB: float = 0.5  # synthetic occlusion probability (training)
    COLOR_FACTOR: float = 0.2  # per-channel colour gain in [1 - f, 1 + f] (training)
    CAMERAS: str = ""  # DATASET.FORMAT h36m_mmpose: the cameras.pkl file
    TRAIN_2D_FORMAT: str = ""  # "" = 3-D data only | coco | mpii: a 2-D set mixed in (have_depth 0, z loss masked)
    TRAIN_2D_ANN: str = ""
    TRAIN_2D_IMAGES: str = ""
    TRAIN_2D_SHARE: float = 0.5  # posekit: fraction of each epoch's crops from the 2-D set (official 0.5: half)
    FOCAL: list[float] = field(default_factory=list)  # posekit: [fx, fy] px for images without intrinsics (infer);
    #   [] = FOCAL_PER_WIDTH x image width when set, else the 3DMPPE demo's 1500 px
    FOCAL_PER_WIDTH: float = 0.0  # posekit: focal length / image width of the camera the model was trained with
    #   (posekit synthetic images: f = U(0.8, 1.5) x width, mean 1.15); travels in the checkpoint's config
    ROOT_BOX_SIZE: float = 2000.0  # posekit: mm; root depth from a box Z = sqrt(fx fy) x ROOT_BOX_SIZE / sqrt(box
    #   area) (RootNet's prior: 2000); a recipe sets it fitted on its training people


@dataclass
class AdaptSection:
    """ADAPT.*: posekit keys of domain adaptation (`posekit adapt`, posekit.engine.adapt).

    The source is DATASET.TRAIN_ANN/IMAGES (labelled), the labelled target held-out split DATASET.TEST_ANN/IMAGES
    (scoring only), the unlabelled target training set ADAPT.TARGET_ANN/IMAGES (its keypoints, when present, are
    used only by the pseudo-label diagnostics). TRAIN.* gives the optimiser, batch, seed and time limit.
    """

    METHOD: str = "ccssl"  # ccssl | wscda | source (continued source-only training) | adabn (source + target BN)
    PRESET: str = ""  # "" = the keys below | official: the released CC-SSL / paper WS-CDA recipe (overrides them)
    TESTBED: str = ""  # "" | quadruped | people: generate the built-in test bed under DATA_ROOT when files are absent
    DATA_ROOT: str = "data/adapt"
    TARGET_ANN: str = ""  # unlabelled target training set (COCO keypoints file; keypoints never trained on)
    TARGET_IMAGES: str = ""
    HUMAN_ANN: str = ""  # WS-CDA: labelled human set (unused, may be empty, for the other methods)
    HUMAN_IMAGES: str = ""
    INIT: str = ""  # source weights (posekit weights file / checkpoint) to start from; "" = SOURCE_EPOCHS first
    SOURCE_EPOCHS: int = 0  # source-only epochs before the first round
    ROUND_EVERY: int = 10  # epochs per pseudo-label round
    SCHEDULE_STEP: int = 10  # official epochs per round in the threshold rule (kept 20/40/60/80 % for rounds 0..3)
    KEPT: list[float] = field(default_factory=list)  # kept fraction per round (last one repeats); [] = official rule
    ITERS_PER_EPOCH: int = 0  # 0 = the shortest domain loader
    TARGET_BATCH: int = 0  # 0 = TRAIN.BATCH_SIZE_PER_GPU
    HUMAN_BATCH: int = 0
    OPTIMIZER: str = ""  # "" = TRAIN.OPTIMIZER | rmsprop (official CC-SSL: momentum 0, no weight decay)
    LR_DECAY: str = "cosine"  # none (official) | cosine: over END_EPOCH epochs (or BUDGET units)
    BUDGET: float = 0.0  # compute budget in image-forward units (train image 3, labelling pass 1); 0 = epochs only
    TARGET_WEIGHT: float = 1.0  # CC-SSL gamma (official 10)
    STRONG_AUGMENT: bool = True
    AUG_SCALE: str = "crop"  # official (blur sigma 1-5 px, noise sd 127) | crop: blur x side/256, noise sd 0.1x255
    NUM_TRANSFORM: int = 5
    SCALE_FACTOR: float = 0.25
    ROT_FACTOR: float = 30.0
    FLIP_PSEUDO: bool = False
    TEMPORAL: bool = True
    LAMBDA_DECAY: float = 0.9
    ZERO_PREVIOUS_ON_REJECT: bool = False
    BN: str = "joint"  # domain: each domain's chunk forwarded alone (official) | joint: one forward of the batch
    ADABN: bool = False  # re-estimate BatchNorm statistics on target images before labelling / scoring / saving
    ALPHA: float = -1.0  # WS-CDA adversarial coefficient (gradient reversal of |ALPHA|)
    BETA: float = 500.0  # WS-CDA pose-loss weight
    W1: float = 1.0
    W2: float = 1.0
    GRL_RAMP: float = 1.0  # > 0: reversal coefficient ramps 2/(1+exp(-10 p))-1 over this fraction of the run
    #   (0 = full strength from the first step, official)
    EVAL_EVERY_ROUND: bool = True
    PICTURES: int = 12  # target images per round drawn with kept pseudo labels green / red (0 = none)


@dataclass
class Config:
    """A whole experiment; field names are the official YAML keys. `source`/`unused` are bookkeeping, not keys."""

    OUTPUT_DIR: str = "output"
    WORKERS: int = 4
    PRINT_FREQ: int = 20
    AUTO_RESUME: bool = False
    PIN_MEMORY: bool = True
    CUDNN: CudnnConfig = field(default_factory=CudnnConfig)
    MODEL: ModelConfig = field(default_factory=ModelConfig)
    LOSS: LossConfig = field(default_factory=LossConfig)
    DATASET: DatasetConfig = field(default_factory=DatasetConfig)
    TRAIN: TrainConfig = field(default_factory=TrainConfig)
    TEST: TestConfig = field(default_factory=TestConfig)
    DEBUG: DebugConfig = field(default_factory=DebugConfig)
    BODY3D: Body3DConfig = field(default_factory=Body3DConfig)
    ADAPT: AdaptSection = field(default_factory=AdaptSection)
    source: str = field(default="", compare=False)
    unused: list[str] = field(default_factory=list, compare=False)


# Official keys accepted but not used, with the reason shown in the warning.
OFFICIAL_UNUSED: dict[str, str] = {
    "GPUS": "multi-GPU training uses `torchrun --nproc_per_node N`",
    "LOG_DIR": "TensorBoard logs go to <out>/tb",
    "DATA_DIR": "paths are relative to the working directory",
    "RANK": "torchrun sets RANK",
    "SAVE_FREQ": "a checkpoint is written every epoch",
    "MODEL.TAG_PER_JOINT": "bottom-up models only",
    "DATASET.HYBRID_JOINTS_TYPE": "not implemented",
    "DATASET.SELECT_DATA": "not implemented",
    "TRAIN.GAMMA1": "unused by the official code too",
    "TRAIN.GAMMA2": "unused by the official code too",
    "TEST.NMS_THRE": "unused by the official code too",
    "TEST.BBOX_THRE": "unused by the official code too",
    "TEST.BIAS": "the LPN test bias is not applied",
}

# MODEL.EXTRA keys per official MODEL.NAME (values: sub-keys of nested blocks, or None for a plain value).
_STAGE_KEYS = {"NUM_MODULES", "NUM_BRANCHES", "BLOCK", "NUM_BLOCKS", "NUM_CHANNELS", "FUSE_METHOD"}
_DECONV_KEYS = {"NUM_LAYERS", "DECONV_WITH_BIAS", "NUM_DECONV_LAYERS", "NUM_DECONV_FILTERS", "NUM_DECONV_KERNELS",
                "FINAL_CONV_KERNEL", "PRETRAINED_LAYERS"}
_PRTR_KEYS = {"NUM_LAYERS", "ENC_LAYERS", "DEC_LAYERS", "DIM_FEEDFORWARD", "DROPOUT", "NHEADS", "NUM_QUERIES",
              "HIDDEN_DIM", "PRE_NORM", "AUX_LOSS", "DILATION", "POS_EMBED_METHOD", "EOS_COEF", "KPT_LOSS_COEF",
              "PRETRAINED_LAYERS"}
EXTRA_KEYS: dict[str, dict[str, set[str] | None]] = {
    "pose_hrnet": {"PRETRAINED_LAYERS": None, "FINAL_CONV_KERNEL": None,
                   **{f"STAGE{i}": _STAGE_KEYS for i in (1, 2, 3, 4)}},
    # TARGET_TYPE/HEATMAP_SIZE/SIGMA sit in EXTRA in microsoft/human-pose-estimation.pytorch; moved up to MODEL.
    "pose_resnet": {**dict.fromkeys(_DECONV_KEYS), "TARGET_TYPE": None, "HEATMAP_SIZE": None, "SIGMA": None},
    "lpn": {**dict.fromkeys(_DECONV_KEYS), "ATTENTION": None},
    "pose_transformer": {**{f"STAGE{i}": _STAGE_KEYS for i in (1, 2, 3, 4)}, **dict.fromkeys(_PRTR_KEYS)},
}
MODEL_FAMILIES = tuple(EXTRA_KEYS)
OPTIMIZERS = ("adam", "adamw", "sgd")
DATASET_FORMATS = ("coco", "mpii", "h36m", "h36m_mmpose", "synth3d")  # the last three: task body3d


def _suggest(key: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(candidates), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(close)}?" if close else ""


def _where(key: str, sources: Mapping[str, str], default: str) -> str:
    """Where a dotted key was set: the longest source prefix that matches it."""
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        src = sources.get(".".join(parts[:n]))
        if src:
            return src
    return default


def _parse_scalar_list(value: Any, elem: type, key: str, where: str) -> list[Any]:
    if isinstance(value, str):
        text = value.strip().strip("[]()")
        value = [v for v in (s.strip() for s in text.split(",")) if v] if text else []
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key} in {where}: expected a list of {elem.__name__}, got {value!r}")
    return [_coerce(v, elem, f"{key}[{i}]", where) for i, v in enumerate(value)]


def _coerce(value: Any, typ: Any, key: str, where: str) -> Any:
    """Convert a YAML value to the field type, or raise a ConfigError naming the key."""
    origin = typing.get_origin(typ)
    if origin is list:
        return _parse_scalar_list(value, typing.get_args(typ)[0], key, where)
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} in {where}: expected a mapping, got {value!r}")
        return dict(value)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
            return value.lower() in ("true", "yes", "on")
        raise ConfigError(f"{key} in {where}: expected true or false, got {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key} in {where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key} in {where}: expected an integer, got {value!r}")
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key} in {where}: expected a number, got {value!r}")
    if typ is str:
        if value is None:
            return ""
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key} in {where}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported field type {typ!r}")  # pragma: no cover - schema bug


def _fill(obj: Any, raw: Mapping[str, Any], prefix: str, sources: Mapping[str, str], default_src: str,
          unused: list[str]) -> None:
    """Set dataclass `obj` from `raw` (validated), recording accepted-but-unused official keys."""
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in fields(obj) if f.name.isupper()]
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if not isinstance(key, str):
            raise ConfigError(f"key {dotted!r} in {_where(prefix.rstrip('.'), sources, default_src)}: "
                              "keys must be strings")
        if key not in names:
            if dotted in OFFICIAL_UNUSED:
                unused.append(f"{dotted} ({OFFICIAL_UNUSED[dotted]})")
                continue
            where = _where(dotted, sources, default_src)
            candidates = [f"{prefix}{n}" for n in names] + [k for k in OFFICIAL_UNUSED if k.startswith(prefix)]
            raise ConfigError(f"unknown key {dotted} in {where}{_suggest(dotted, candidates)}")
        current = getattr(obj, key)
        if is_dataclass(current):
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise ConfigError(f"{dotted} in {_where(dotted, sources, default_src)}: expected a mapping of "
                                  f"{', '.join(f.name for f in fields(current))}, got {value!r}")
            _fill(current, value, dotted + ".", sources, default_src, unused)
        else:
            setattr(obj, key, _coerce(value, hints[key], dotted, _where(dotted, sources, default_src)))


def _check_extra(cfg: Config, sources: Mapping[str, str], default_src: str, unused: list[str]) -> None:
    """Validate MODEL.EXTRA against the keys of MODEL.NAME's family."""
    m = cfg.MODEL
    if not m.EXTRA:
        return
    if m.ZOO:
        raise ConfigError(f"MODEL.ZOO ({m.ZOO}) and MODEL.EXTRA are both set in "
                          f"{_where('MODEL.EXTRA', sources, default_src)}; a zoo model fixes the architecture")
    allowed = EXTRA_KEYS.get(m.NAME)
    if allowed is None:
        unused.append(f"MODEL.EXTRA.* (MODEL.NAME {m.NAME!r} is not built by posekit; it builds "
                      f"{', '.join(MODEL_FAMILIES)})")
        return
    for key, value in m.EXTRA.items():
        dotted = f"MODEL.EXTRA.{key}"
        if key not in allowed:
            where = _where(dotted, sources, default_src)
            raise ConfigError(f"unknown key {dotted} in {where} for MODEL.NAME {m.NAME}"
                              f"{_suggest(dotted, [f'MODEL.EXTRA.{k}' for k in allowed])}")
        sub = allowed[key]
        if sub is not None:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{dotted} in {_where(dotted, sources, default_src)}: expected a mapping")
            for k in value:
                if k not in sub:
                    d = f"{dotted}.{k}"
                    where = _where(d, sources, default_src)
                    if k == "NUM_RANCHES":  # typo in the official HRNet STAGE1 blocks (PRTR configs)
                        unused.append(f"{d} (official typo of NUM_BRANCHES; the branch count is len(NUM_CHANNELS))")
                        continue
                    raise ConfigError(f"unknown key {d} in {where}{_suggest(d, [f'{dotted}.{s}' for s in sub])}")
    if m.NAME == "pose_resnet":  # microsoft repo vocabulary: EXTRA.TARGET_TYPE / HEATMAP_SIZE / SIGMA
        extra = dict(m.EXTRA)
        hints = typing.get_type_hints(ModelConfig)
        for key in ("TARGET_TYPE", "HEATMAP_SIZE", "SIGMA"):
            if key in extra:
                value = extra.pop(key)
                setattr(m, key, _coerce(value, hints[key], f"MODEL.EXTRA.{key}",
                                        _where(f"MODEL.EXTRA.{key}", sources, default_src)))
        m.EXTRA = extra


def _check_values(cfg: Config, where: str, sources: Mapping[str, str] | None = None) -> None:
    """Cross-field checks with errors naming the key and where its value came from (file or override)."""
    m, d, t = cfg.MODEL, cfg.DATASET, cfg.TRAIN
    src = dict(sources or {})

    def at(key: str) -> str:
        return src.get(key, where)

    for key in ("IMAGE_SIZE", "HEATMAP_SIZE"):
        v = getattr(m, key)
        if v and (len(v) != 2 or min(v) <= 0):
            raise ConfigError(f"MODEL.{key} in {where}: expected [width, height] > 0, got {v}")
    if not m.ZOO and not m.NAME:
        raise ConfigError(f"{where}: set MODEL.ZOO (a `posekit models` name) or MODEL.NAME + MODEL.EXTRA")
    if m.NAME and not m.ZOO and not (m.IMAGE_SIZE and m.HEATMAP_SIZE):
        raise ConfigError(f"{where}: MODEL.NAME {m.NAME} needs MODEL.IMAGE_SIZE and MODEL.HEATMAP_SIZE")
    if m.STYLE != "pytorch":
        raise ConfigError(f"MODEL.STYLE in {where}: only 'pytorch' is built (stride in the 3x3 conv), got {m.STYLE!r}")
    if t.OPTIMIZER.lower() not in OPTIMIZERS:
        raise ConfigError(f"TRAIN.OPTIMIZER in {where}: expected one of {OPTIMIZERS}, got {t.OPTIMIZER!r}")
    if (d.FORMAT or d.DATASET).lower() not in DATASET_FORMATS:
        raise ConfigError(f"DATASET.FORMAT in {where}: expected one of {DATASET_FORMATS} (or DATASET.DATASET "
                          f"coco|mpii|h36m), got {(d.FORMAT or d.DATASET)!r}")
    if cfg.WORKERS < 0:
        raise ConfigError(f"WORKERS in {at('WORKERS')} must be >= 0 (0: load in the training process), got "
                          f"{cfg.WORKERS}")
    if d.IMAGE_CACHE < 0:
        raise ConfigError(f"DATASET.IMAGE_CACHE in {at('DATASET.IMAGE_CACHE')} must be >= 0, got {d.IMAGE_CACHE}")
    if d.DATA_FORMAT not in ("jpg", "png", "jpeg"):
        raise ConfigError(f"DATASET.DATA_FORMAT in {where}: only image files are read, got {d.DATA_FORMAT!r}")
    for key, value in (("TRAIN.BATCH_SIZE_PER_GPU", t.BATCH_SIZE_PER_GPU),
                       ("TEST.BATCH_SIZE_PER_GPU", cfg.TEST.BATCH_SIZE_PER_GPU)):
        if value <= 0:
            raise ConfigError(f"{key} in {at(key)} must be > 0, got {value}")
    if t.END_EPOCH < t.BEGIN_EPOCH:
        raise ConfigError(f"TRAIN.END_EPOCH ({t.END_EPOCH}) < TRAIN.BEGIN_EPOCH ({t.BEGIN_EPOCH}) in {where}")
    if not t.LR > 0:
        raise ConfigError(f"TRAIN.LR in {at('TRAIN.LR')} must be > 0, got {t.LR}")
    if t.LR_SCHEDULE not in ("multistep", "cosine"):
        raise ConfigError(f"TRAIN.LR_SCHEDULE in {at('TRAIN.LR_SCHEDULE')}: expected 'multistep' or 'cosine', "
                          f"got {t.LR_SCHEDULE!r}")
    if t.BAD_SAMPLES not in ("stop", "skip"):
        raise ConfigError(f"TRAIN.BAD_SAMPLES in {at('TRAIN.BAD_SAMPLES')}: expected 'stop' or 'skip', "
                          f"got {t.BAD_SAMPLES!r}")
    if t.INIT not in ("official", "he"):
        raise ConfigError(f"TRAIN.INIT in {at('TRAIN.INIT')}: expected 'official' or 'he', got {t.INIT!r}")
    for key in ("MAX_ITERS", "VAL_EVERY_ITERS", "CHECKPOINT_EVERY_ITERS", "VAL_EVERY", "WD"):
        if getattr(t, key) < 0:
            raise ConfigError(f"TRAIN.{key} in {at('TRAIN.' + key)} must be >= 0, got {getattr(t, key)}")
    for key in ("MAX_MINUTES", "VAL_EVERY_MINUTES", "CHECKPOINT_EVERY_MINUTES"):
        if getattr(t, key) < 0:
            raise ConfigError(f"TRAIN.{key} in {at('TRAIN.' + key)} must be >= 0, got {getattr(t, key)}")
    if sorted(t.LR_STEP) != list(t.LR_STEP):
        raise ConfigError(f"TRAIN.LR_STEP in {where} must be increasing, got {t.LR_STEP}")


def parse_override(item: str) -> tuple[str, Any]:
    """`KEY.SUB=VALUE` -> (key, value parsed as a YAML scalar or list)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected KEY=VALUE (e.g. TRAIN.LR=0.0005)")
    key, text = item.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"override {item!r}: bad key {key!r}")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    return key, value


def _apply_override(raw: dict[str, Any], key: str, value: Any) -> None:
    node = raw
    parts = key.split(".")
    for i, p in enumerate(parts[:-1]):
        child = node.get(p)
        if child is None:
            child = node[p] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {key}: {'.'.join(parts[: i + 1])} is a value, not a section")
        node = child
    node[parts[-1]] = value


def config_from_dict(raw: Mapping[str, Any], overrides: Sequence[str] = (), source: str = "<dict>") -> Config:
    """Validate a nested dict (+ KEY=VALUE overrides) into a Config."""
    merged = _deep_copy(raw)
    sources: dict[str, str] = {}
    for item in overrides:
        key, value = parse_override(item)
        _apply_override(merged, key, value)
        sources[key] = f"command-line override {item!r}"
    cfg = Config(source=source)
    unused: list[str] = []
    _fill(cfg, merged, "", sources, source, unused)
    _check_extra(cfg, sources, source, unused)
    _check_values(cfg, source, sources)
    cfg.unused = unused
    return cfg


def _deep_copy(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in raw.items()}


def load_config(path: str | Path, overrides: Sequence[str] = (), warn: bool = True) -> Config:
    """Read a YAML experiment file, apply KEY=VALUE overrides, validate; warns (ConfigWarning) about unused keys."""
    path = Path(path)
    source = f"file {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror or e}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"config {path} is not valid YAML: {e}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config {path}: expected a mapping of sections (MODEL, DATASET, ...), "
                          f"got {type(raw).__name__}")
    cfg = config_from_dict(raw, overrides, source)
    cfg.source = str(path)
    if cfg.unused and warn:
        warnings.warn(f"{path}: keys accepted but not used by posekit: {'; '.join(cfg.unused)}", ConfigWarning,
                      stacklevel=2)
    return cfg


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The nested dict of a Config (official key names; bookkeeping fields left out)."""
    out: dict[str, Any] = {}
    for f in fields(cfg):
        if not f.name.isupper():
            continue
        v = getattr(cfg, f.name)
        out[f.name] = config_to_dict(v) if is_dataclass(v) else _plain(v)
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def config_to_yaml(cfg: Config) -> str:
    """YAML text that `load_config` reads back into an equal Config."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=None)


def config_from_yaml(text: str, source: str = "<yaml>") -> Config:
    """Inverse of config_to_yaml (e.g. the config stored in a checkpoint)."""
    raw = yaml.safe_load(text) or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a mapping, got {type(raw).__name__}")
    return config_from_dict(raw, (), source)


def dataset_format(cfg: Config) -> str:
    """coco | mpii."""
    return (cfg.DATASET.FORMAT or cfg.DATASET.DATASET).lower()
