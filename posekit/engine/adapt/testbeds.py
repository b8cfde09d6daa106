"""Built-in adaptation test beds: labelled source style A -> unlabelled target style B, scored on held-out style B.

Both test beds draw style B with a violet outline ink (OUTLINE) instead of the default near-black one, which looks
like the eye / nose discs (25, 20, 20) and makes the face channels of a style-A network fire along every outline
(SynthConfig.outline_color; the default `posekit synth` output is unchanged). The target training set is ordered
sequences of one subject with real motion (SynthConfig.motion 0.15: joint angles, placement and camera drift by up to
~7 % of their ranges per frame), hundreds of subjects; the held-out target split has other seeds, and its labels
are used only for scoring. Every split is generated once under its folder (a plan.json says with what).

- quadruped: 128 x 128 images, one quadruped each (AP-10K joints), scored with CC-SSL's PCK@0.05 (and COCO AP).
- people: 256 x 256 images of up to 3 people (as the demo data: max_yaw 90), scored with COCO AP on GT boxes; the
  target training sequences hold one person each.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from posekit.config import Config
from posekit.errors import ConfigError

SHIPPED = Path(__file__).resolve().parents[2] / "configs" / "adapt"  # posekit/configs/adapt/<name>.yaml
OUTLINE = (150.0, 60.0, 200.0)  # violet ink: far from the eye / nose colour and from the style-B backgrounds' greys
TESTBEDS = ("quadruped", "people")


@dataclass(frozen=True)
class TestBed:
    """Image counts and generator settings of a test bed."""

    kind: str
    image_size: tuple[int, int]
    num_source: int
    num_target: int
    num_val: int
    num_human: int
    sequence_length: int = 8
    motion: float = 0.15
    max_subjects: int = 1
    max_yaw: float = 180.0
    seed: int = 0


BEDS = {
    "quadruped": TestBed("quadruped", (128, 128), num_source=2000, num_target=1600, num_val=300, num_human=600),
    "people": TestBed("human", (256, 256), num_source=3000, num_target=1200, num_val=200, num_human=0,
                      max_subjects=3, max_yaw=90.0, sequence_length=6),
}


def shipped_config(name: str) -> str:
    """A config file path as given, or the shipped adapt config of that name (`quadruped`, `people`, ...)."""
    if Path(name).is_file() or not (SHIPPED / f"{name}.yaml").is_file():
        return name
    return str(SHIPPED / f"{name}.yaml")


def plan(bed: TestBed) -> dict[str, dict]:
    """generate() arguments of every split of a test bed."""
    common = dict(kind=bed.kind, image_size=bed.image_size, max_yaw=bed.max_yaw)
    b = dict(style="B", outline_color=OUTLINE)
    out = {
        "source": dict(num_images=bed.num_source, style="A", max_subjects=bed.max_subjects, seed=bed.seed + 11),
        "source_val": dict(num_images=bed.num_val, style="A", max_subjects=bed.max_subjects, seed=bed.seed + 15),
        "target_train": dict(num_images=bed.num_target, max_subjects=1, seed=bed.seed + 12,
                             sequence_length=bed.sequence_length, motion=bed.motion, **b),
        "target_val": dict(num_images=bed.num_val, max_subjects=bed.max_subjects, seed=bed.seed + 13, **b),
    }
    if bed.num_human:
        out["human"] = dict(num_images=bed.num_human, style="A", max_subjects=1, seed=bed.seed + 14, kind="human",
                            image_size=bed.image_size, max_yaw=90.0)
    return {k: {**common, **v} for k, v in out.items()}


def ensure(root: str | os.PathLike, bed: TestBed, workers: int | None = None,
           splits: tuple[str, ...] | None = None) -> dict[str, Path]:
    """Generate (or reuse) the test bed's splits under root; returns {split: folder}."""
    from posekit.data.synth import generate

    root = Path(root)
    out = {}
    for name, kw in plan(bed).items():
        if splits is not None and name not in splits:
            continue
        d = root / name
        want = json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()}, sort_keys=True)
        marker = d / "plan.json"
        if not (marker.is_file() and marker.read_text() == want and (d / "annotations.json").is_file()):
            generate(d, workers=workers, **kw)
            marker.write_text(want)
        out[name] = d
    return out


def fill_paths(cfg: Config, workers: int | None = None) -> Config:
    """ADAPT.TESTBED set: generate the test bed under ADAPT.DATA_ROOT and fill the empty data paths with it."""
    name = cfg.ADAPT.TESTBED
    if not name:
        return cfg
    if name not in BEDS:
        raise ConfigError(f"ADAPT.TESTBED in {cfg.source}: expected one of {TESTBEDS} or '', got {name!r}")
    wanted = {"source": ("DATASET", "TRAIN"), "target_val": ("DATASET", "TEST"), "target_train": ("ADAPT", "TARGET"),
              "human": ("ADAPT", "HUMAN")}
    if cfg.ADAPT.METHOD != "wscda":
        wanted.pop("human")
    missing = [s for s, (sec, pre) in wanted.items() if not getattr(getattr(cfg, sec), f"{pre}_ANN")]
    root = Path(cfg.ADAPT.DATA_ROOT) / name
    folders = ensure(root, BEDS[name], workers, tuple(missing)) if missing else {}
    for split, d in folders.items():
        sec, pre = wanted[split]
        setattr(getattr(cfg, sec), f"{pre}_ANN", str(d / "annotations.json"))
        setattr(getattr(cfg, sec), f"{pre}_IMAGES", str(d / "images"))
    return cfg
