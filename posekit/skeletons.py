"""Skeleton metadata: keypoint names, flip pairs, links, OKS sigmas, body-part ids, joint weights."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from posekit.errors import DataError

# Default OKS sigma for keypoints of a custom skeleton that gives none (a mid-range COCO value).
DEFAULT_SIGMA = 0.072

# Side markers, each as (pattern, mapping); a mirrored name counts only if it exists in the same skeleton.
_SIDE_RULES = (
    (re.compile(r"(^|[_\s\-])(left|right|l|r)(?=[_\s\-]|$)", re.IGNORECASE), {"left": "right", "right": "left",
                                                                          "l": "r", "r": "l"}),
    (re.compile(r"^(left|right)(?=[A-Z0-9])"), {"left": "right", "right": "left"}),
    (re.compile(r"^(Left|Right)(?=[A-Z0-9])"), {"left": "right", "right": "left"}),
    (re.compile(r"(?<=[a-z])(L|R)(?=\d|$|[A-Z_])"), {"l": "r", "r": "l"}),  # eyeL, forelegR1 (fly, locust, zebra)
    (re.compile(r"^(near|off)", re.IGNORECASE), {"near": "off", "off": "near"}),  # horse: Nearknee / Offknee
)
_UPPER_WORDS = (
    "head", "eye", "nose", "ear", "neck", "shoulder", "elbow", "wrist", "hand", "mouth", "chin",
    "front", "throat", "withers", "forehead", "face", "lip", "jaw", "horn", "antler",
)


def _match_case(word: str, new: str) -> str:
    if word.isupper():
        return new.upper()
    if word[0].isupper():
        return new.capitalize()
    return new


def _mirror_candidates(name: str) -> list[str]:
    """Names the mirrored keypoint could have (left <-> right, L <-> R, near <-> off)."""
    out = []
    for pattern, mapping in _SIDE_RULES:
        for m in pattern.finditer(name):
            group = m.lastindex or 0
            word = m.group(group)
            new = _match_case(word, mapping[word.lower()])
            out.append(name[: m.start(group)] + new + name[m.end(group):])
    return out


def flip_pairs_from_names(names: Sequence[str]) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, of keypoints whose names differ only by a left/right token."""
    index = {n: i for i, n in enumerate(names)}
    pairs = set()
    for i, n in enumerate(names):
        for m in _mirror_candidates(n):
            j = index.get(m)
            if j is not None and j != i:
                pairs.add((min(i, j), max(i, j)))
                break
    return sorted(pairs)


@dataclass(frozen=True)
class Skeleton:
    """Keypoint set: names, links, OKS sigmas and the ids used by flip and half-body augmentation."""

    name: str
    keypoints: tuple[str, ...]
    links: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]
    upper_body_ids: tuple[int, ...]
    joint_weights: tuple[float, ...] = ()
    flip_pairs: tuple[tuple[int, int], ...] = field(default=())

    def __post_init__(self) -> None:
        k = len(self.keypoints)
        if len(self.sigmas) != k:
            raise DataError(f"skeleton {self.name!r}: {len(self.sigmas)} sigmas for {k} keypoints")
        if not self.joint_weights:
            object.__setattr__(self, "joint_weights", (1.0,) * k)
        if len(self.joint_weights) != k:
            raise DataError(f"skeleton {self.name!r}: {len(self.joint_weights)} joint weights for {k} keypoints")
        if not self.flip_pairs:
            object.__setattr__(self, "flip_pairs", tuple(flip_pairs_from_names(self.keypoints)))
        for a, b in self.links:
            if not (0 <= a < k and 0 <= b < k):
                raise DataError(f"skeleton {self.name!r}: link ({a}, {b}) outside 0..{k - 1}")

    @property
    def num_keypoints(self) -> int:
        """Number of keypoints K."""
        return len(self.keypoints)

    @property
    def lower_body_ids(self) -> tuple[int, ...]:
        """Keypoints not in the upper body."""
        upper = set(self.upper_body_ids)
        return tuple(i for i in range(self.num_keypoints) if i not in upper)

    @property
    def flip_index(self) -> np.ndarray:
        """Permutation that maps each keypoint to its mirrored keypoint (identity for centre joints)."""
        idx = np.arange(self.num_keypoints)
        for a, b in self.flip_pairs:
            idx[a], idx[b] = b, a
        return idx

    @property
    def sigmas_array(self) -> np.ndarray:
        """OKS sigmas as a float64 array, as pycocotools expects."""
        return np.asarray(self.sigmas, dtype=np.float64)


COCO17 = Skeleton(
    name="coco",
    keypoints=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
        "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
        "right_knee", "left_ankle", "right_ankle",
    ),
    links=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
        (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
    ),
    sigmas=tuple(
        s / 10.0
        for s in (.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89)
    ),
    upper_body_ids=tuple(range(11)),
    joint_weights=(1.0,) * 7 + (1.2, 1.2, 1.5, 1.5) + (1.0, 1.0, 1.2, 1.2, 1.5, 1.5),
)

MPII16 = Skeleton(
    name="mpii",
    keypoints=(
        "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax", "upper_neck",
        "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
    ),
    links=(
        (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9), (7, 12), (12, 11),
        (11, 10), (7, 13), (13, 14), (14, 15),
    ),
    sigmas=(
        0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026, 0.026, 0.026, 0.062, 0.072, 0.179,
        0.179, 0.072, 0.062,
    ),
    upper_body_ids=(7, 8, 9, 10, 11, 12, 13, 14, 15),
    joint_weights=(1.5, 1.2, 1.0, 1.0, 1.2, 1.5, 1.0, 1.0, 1.0, 1.0, 1.5, 1.2, 1.0, 1.0, 1.2, 1.5),
)

CROWDPOSE14 = Skeleton(
    name="crowdpose",
    keypoints=(
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "top_head", "neck",
    ),
    links=(
        (0, 2), (2, 4), (1, 3), (3, 5), (6, 8), (8, 10), (7, 9), (9, 11), (12, 13), (13, 0), (13, 1),
        (0, 6), (1, 7), (6, 7),
    ),
    sigmas=tuple(s / 10.0 for s in (.79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89, .79, .79)),
    upper_body_ids=(0, 1, 2, 3, 4, 5, 12, 13),
    joint_weights=(1.0, 1.0, 1.2, 1.2, 1.5, 1.5, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5, 1.0, 1.0),
)

AIC14 = Skeleton(
    name="aic",
    keypoints=(
        "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
        "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "head_top", "neck",
    ),
    links=(
        (2, 1), (1, 0), (0, 13), (13, 3), (3, 4), (4, 5), (8, 7), (7, 6), (6, 9), (9, 10), (10, 11),
        (12, 13), (0, 6), (3, 9),
    ),
    sigmas=(
        0.01388152, 0.01515228, 0.01057665, 0.01417709, 0.01497891, 0.01402144, 0.03909642, 0.03686941,
        0.01981803, 0.03843971, 0.03412318, 0.02415081, 0.01291456, 0.01236173,
    ),
    upper_body_ids=(0, 1, 2, 3, 4, 5, 12, 13),
    joint_weights=(1.0, 1.2, 1.5, 1.0, 1.2, 1.5, 1.0, 1.2, 1.5, 1.0, 1.2, 1.5, 1.0, 1.0),
)

AP10K17 = Skeleton(
    name="ap10k",
    keypoints=(
        "left_eye", "right_eye", "nose", "neck", "root_of_tail", "left_shoulder", "left_elbow",
        "left_front_paw", "right_shoulder", "right_elbow", "right_front_paw", "left_hip", "left_knee",
        "left_back_paw", "right_hip", "right_knee", "right_back_paw",
    ),
    links=(
        (0, 1), (0, 2), (1, 2), (2, 3), (3, 4), (3, 5), (5, 6), (6, 7), (3, 8), (8, 9), (9, 10), (4, 11),
        (11, 12), (12, 13), (4, 14), (14, 15), (15, 16),
    ),
    sigmas=(
        0.025, 0.025, 0.026, 0.035, 0.035, 0.079, 0.072, 0.062, 0.079, 0.072, 0.062, 0.107, 0.087,
        0.089, 0.107, 0.087, 0.089,
    ),
    upper_body_ids=(0, 1, 2, 3, 5, 6, 7, 8, 9, 10),
    joint_weights=(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.2, 1.5, 1.0, 1.2, 1.5, 1.0, 1.2, 1.5, 1.0, 1.2, 1.5),
)

# Human3.6M as 3DMPPE uses it: the 17 H36M joints (official order; "neck" is H36M's thorax-level joint, "nose" its
# neck/nose joint) + thorax (mean of the shoulders, added by 3DMPPE); root = pelvis (0).
H36M18 = Skeleton(
    name="h36m",
    keypoints=(
        "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "torso", "neck", "nose", "head",
        "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist", "thorax",
    ),
    links=(
        (0, 7), (7, 8), (8, 9), (9, 10), (8, 11), (11, 12), (12, 13), (8, 14), (14, 15), (15, 16), (0, 1),
        (1, 2), (2, 3), (0, 4), (4, 5), (5, 6),
    ),
    sigmas=(DEFAULT_SIGMA,) * 18,
    upper_body_ids=(7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17),
)

# posekit's synthetic 3-D humans: COCO-17 + pelvis (mean of the hips, index 17) as the root joint.
COCO_PELVIS18 = Skeleton(
    name="coco_pelvis",
    keypoints=COCO17.keypoints + ("pelvis",),
    links=COCO17.links + ((17, 11), (17, 12)),
    sigmas=COCO17.sigmas + (1.07 / 10.0,),
    upper_body_ids=COCO17.upper_body_ids,
)

_BUILTIN: dict[str, Skeleton] = {s.name: s for s in (COCO17, MPII16, CROWDPOSE14, AIC14, AP10K17, H36M18,
                                                     COCO_PELVIS18)}


def names() -> list[str]:
    """Names of the built-in skeletons."""
    return sorted(_BUILTIN)


def get(name: str) -> Skeleton:
    """Built-in skeleton by name ('coco', 'mpii', 'crowdpose', 'aic', 'ap10k', 'h36m', 'coco_pelvis')."""
    try:
        return _BUILTIN[name.lower()]
    except KeyError:
        raise DataError(f"unknown skeleton {name!r}; expected one of {names()}") from None


def from_coco_category(category: Mapping, source: str = "<category>", sigmas: Sequence[float] | None = None,
                       name: str | None = None) -> Skeleton:
    """Skeleton from a COCO `categories` entry (`keypoints` names, 1-based `skeleton` links)."""
    kpts = category.get("keypoints")
    if not isinstance(kpts, list) or not kpts or not all(isinstance(k, str) for k in kpts):
        raise DataError(f"{source}: categories[].keypoints must be a non-empty list of names, got {kpts!r}")
    k = len(kpts)
    raw_links = category.get("skeleton") or []
    links = []
    for link in raw_links:
        if len(link) != 2 or not all(1 <= int(v) <= k for v in link):
            raise DataError(f"{source}: categories[].skeleton link {link!r} is not a pair of 1-based ids in 1..{k}")
        links.append((int(link[0]) - 1, int(link[1]) - 1))
    for builtin in _BUILTIN.values():
        if tuple(kpts) == builtin.keypoints and sigmas is None:
            return builtin
    if sigmas is None:
        sigmas = category.get("sigmas") or [DEFAULT_SIGMA] * k
    if len(sigmas) != k:
        raise DataError(f"{source}: {len(sigmas)} sigmas given for {k} keypoints")
    upper = tuple(i for i, n in enumerate(kpts) if any(w in n.lower() for w in _UPPER_WORDS))
    return Skeleton(
        name=name or str(category.get("name", "custom")),
        keypoints=tuple(kpts),
        links=tuple(links),
        sigmas=tuple(float(s) for s in sigmas),
        upper_body_ids=upper,
    )
