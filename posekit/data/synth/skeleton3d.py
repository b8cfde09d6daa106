"""Articulated 3-D figures (people with COCO-17 joints, quadrupeds with AP-10K joints) built from body primitives.

Body frame: millimetres, x = the subject's left, y = up, z = the direction the subject faces (right-handed).
A figure is a set of keypoints (with outward normals for the self-occlusion test) and drawing primitives
(tapered capsules, convex blobs given by surface samples, discs), each owned by one body part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posekit.skeletons import AP10K17, COCO17, Skeleton


@dataclass(frozen=True)
class KindSpec:
    """What a figure kind draws and how its keypoint visibility is decided."""

    name: str
    category: str
    skeleton: Skeleton
    parts: tuple[str, ...]
    # adjacency[k]: parts that meet at keypoint k; a keypoint is visible when one of them is on top at its pixel.
    adjacency: tuple[tuple[int, ...], ...]
    # surface[k]: the part on whose surface keypoint k lies (-1: none); when that part is on top the keypoint
    # is visible only if its outward normal faces the camera (cosine with the viewing ray below facing[k]).
    surface: tuple[int, ...]
    facing: tuple[float, ...]


HUMAN_PARTS = (
    "head", "neck", "torso", "left_upper_arm", "right_upper_arm", "left_forearm", "right_forearm", "left_hand",
    "right_hand", "left_thigh", "right_thigh", "left_shin", "right_shin", "left_foot", "right_foot",
)
_H = {n: i for i, n in enumerate(HUMAN_PARTS)}

HUMAN = KindSpec(
    name="human",
    category="person",
    skeleton=COCO17,
    parts=HUMAN_PARTS,
    adjacency=(
        (_H["head"],), (_H["head"],), (_H["head"],), (_H["head"],), (_H["head"],),
        (_H["torso"], _H["left_upper_arm"]), (_H["torso"], _H["right_upper_arm"]),
        (_H["left_upper_arm"], _H["left_forearm"]), (_H["right_upper_arm"], _H["right_forearm"]),
        (_H["left_forearm"], _H["left_hand"]), (_H["right_forearm"], _H["right_hand"]),
        (_H["torso"], _H["left_thigh"]), (_H["torso"], _H["right_thigh"]),
        (_H["left_thigh"], _H["left_shin"]), (_H["right_thigh"], _H["right_shin"]),
        (_H["left_shin"], _H["left_foot"]), (_H["right_shin"], _H["right_foot"]),
    ),
    surface=(_H["head"],) * 5 + (_H["torso"],) * 2 + (-1,) * 4 + (_H["torso"],) * 2 + (-1,) * 4,
    facing=(0.25, 0.1, 0.1, 0.35, 0.35, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0),
)

QUADRUPED_PARTS = (
    "body", "neck", "head", "left_front_upper", "left_front_lower", "left_front_paw", "right_front_upper",
    "right_front_lower", "right_front_paw", "left_back_upper", "left_back_lower", "left_back_paw",
    "right_back_upper", "right_back_lower", "right_back_paw", "tail",
)
_Q = {n: i for i, n in enumerate(QUADRUPED_PARTS)}


def _leg_adjacency(side: str, end: str) -> tuple[tuple[int, ...], ...]:
    up, lo, paw = (_Q[f"{side}_{end}_{p}"] for p in ("upper", "lower", "paw"))
    return (_Q["body"], up), (up, lo), (lo, paw)


QUADRUPED = KindSpec(
    name="quadruped",
    category="animal",
    skeleton=AP10K17,
    parts=QUADRUPED_PARTS,
    adjacency=(
        (_Q["head"],), (_Q["head"],), (_Q["head"],), (_Q["body"], _Q["neck"]), (_Q["body"], _Q["tail"]),
        *_leg_adjacency("left", "front"), *_leg_adjacency("right", "front"),
        *_leg_adjacency("left", "back"), *_leg_adjacency("right", "back"),
    ),
    surface=(_Q["head"],) * 3 + (_Q["body"],) * 3 + (-1,) * 2 + (_Q["body"],) + (-1,) * 2 + (_Q["body"],) + (-1,) * 2
    + (_Q["body"],) + (-1,) * 2,
    facing=(0.1, 0.1, 0.5, 0.6, 0.6, 0.4, 1.0, 1.0, 0.4, 1.0, 1.0, 0.4, 1.0, 1.0, 0.4, 1.0, 1.0),
)

KINDS = {"human": HUMAN, "quadruped": QUADRUPED}


@dataclass
class Capsule:
    """Tapered capsule from a to b with end radii ra, rb (mm)."""

    part: int
    a: np.ndarray
    b: np.ndarray
    ra: float
    rb: float
    material: str
    layer: int = 0


@dataclass
class Blob:
    """Convex solid given by surface samples [M,3]; it is drawn as the convex hull of their projection."""

    part: int
    points: np.ndarray
    material: str
    layer: int = 0


@dataclass
class Disc:
    """Sphere of radius r (mm, at least min_px pixels); with a normal it is drawn only while it faces the camera."""

    part: int
    center: np.ndarray
    r: float
    material: str
    layer: int = 2
    normal: np.ndarray | None = None
    facing: float = 0.1
    min_px: float = 0.0


@dataclass(frozen=True)
class Prim:
    """A packed primitive: geometry given by indices into Figure.pts (capsule: ends i0, i1; blob: rows i0:i1;
    disc: centre i0, outward normal row `normal` of Figure.nrm or -1)."""

    shape: str  # "capsule" | "blob" | "disc"
    part: int
    layer: int
    material: str
    i0: int
    i1: int = 0
    ra: float = 0.0
    rb: float = 0.0
    normal: int = -1
    facing: float = 0.1
    min_px: float = 0.0


@dataclass
class Figure:
    """A posed figure: all geometry points [N,3] (the first K are the keypoints), normals [M,3] (the first K
    are the keypoints' outward normals, zero for none) and packed primitives."""

    kind: KindSpec
    pts: np.ndarray
    nrm: np.ndarray
    prims: list[Prim]

    @property
    def keypoints(self) -> np.ndarray:
        """Keypoints [K,3]."""
        return self.pts[: self.kind.skeleton.num_keypoints]

    @property
    def normals(self) -> np.ndarray:
        """Outward normals of the keypoints [K,3]."""
        return self.nrm[: self.kind.skeleton.num_keypoints]

    def transformed(self, rot: np.ndarray, trans: np.ndarray) -> Figure:
        """The figure moved by p -> rot @ p + trans (normals rotated)."""
        return Figure(self.kind, self.pts @ rot.T + trans, self.nrm @ rot.T, self.prims)


def pack(kind: KindSpec, keypoints: np.ndarray, normals: np.ndarray, prims: list) -> Figure:
    """Pack keypoints and Capsule/Blob/Disc primitives into one point array for fast transforms."""
    pts, nrm = [keypoints], [normals]
    n, m = len(keypoints), len(normals)
    packed = []
    for p in prims:
        if isinstance(p, Capsule):
            pts.append(np.stack([p.a, p.b]))
            packed.append(Prim("capsule", p.part, p.layer, p.material, n, n + 1, p.ra, p.rb))
            n += 2
        elif isinstance(p, Blob):
            pts.append(p.points)
            packed.append(Prim("blob", p.part, p.layer, p.material, n, n + len(p.points)))
            n += len(p.points)
        else:
            pts.append(p.center[None])
            ni = -1
            if p.normal is not None:
                nrm.append(p.normal[None])
                ni, m = m, m + 1
            packed.append(Prim("disc", p.part, p.layer, p.material, n, 0, p.r, 0.0, ni, p.facing, p.min_px))
            n += 1
    return Figure(kind, np.concatenate(pts), np.concatenate(nrm), packed)


def rot(axis: str, angle: float) -> np.ndarray:
    """Rotation matrix by `angle` radians about the x, y or z axis."""
    c, s = np.cos(angle), np.sin(angle)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def _perp(v: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Unit component of ref perpendicular to the unit vector v."""
    w = ref - np.dot(ref, v) * v
    if np.linalg.norm(w) < 1e-6:
        w = np.cross(v, np.array([1.0, 0.0, 0.0]))
    return _unit(w)


def _fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    y = 1 - 2 * i / n
    r = np.sqrt(1 - y * y)
    phi = np.pi * (3 - np.sqrt(5)) * i
    return np.stack([r * np.cos(phi), y, r * np.sin(phi)], axis=1)


SPHERE = _fibonacci_sphere(60)
_RING = np.stack([np.cos(np.linspace(0, 2 * np.pi, 12, endpoint=False)),
                  np.sin(np.linspace(0, 2 * np.pi, 12, endpoint=False))], axis=1)


def _ellipsoid(center: np.ndarray, frame: np.ndarray, radii: tuple[float, float, float],
               samples: np.ndarray = SPHERE) -> np.ndarray:
    return center + (samples * np.asarray(radii)) @ frame.T


def _loft(frame: np.ndarray, origin: np.ndarray, rings: list[tuple[float, float, float]], axis: int = 1) -> np.ndarray:
    """Surface samples of a solid built from elliptic rings (position along `axis`, half-width, half-depth)."""
    pts = []
    for pos, rx, rr in rings:
        ring = np.zeros((len(_RING), 3))
        if axis == 1:  # vertical trunk: rings in the x-z plane
            ring[:, 0], ring[:, 1], ring[:, 2] = _RING[:, 0] * rx, pos, _RING[:, 1] * rr
        else:  # horizontal trunk along z: rings in the x-y plane
            ring[:, 0], ring[:, 1], ring[:, 2] = _RING[:, 0] * rx, _RING[:, 1] * rr, pos
        pts.append(ring)
    return origin + np.concatenate(pts) @ frame.T


def _limb(rng: np.random.Generator, lo: float, hi: float, mode: float | None = None) -> float:
    """An angle (degrees in, radians out) in [lo, hi], triangular around `mode` when given."""
    v = rng.uniform(lo, hi) if mode is None else rng.triangular(lo, mode, hi)
    return float(np.deg2rad(v))


def _human_pose(rng: np.random.Generator) -> dict[str, float]:
    """Joint angles (radians) from a mixture of everyday poses, all within anatomical limits."""
    kind = rng.choice(["stand", "walk", "reach", "sit", "free"], p=[0.25, 0.3, 0.2, 0.1, 0.15])
    d = np.deg2rad
    a: dict[str, float] = {
        "lean": _limb(rng, -10, 30, 5), "side": _limb(rng, -10, 10, 0), "twist": _limb(rng, -25, 25, 0),
        "neck_pitch": _limb(rng, -25, 30, 5), "head_yaw": _limb(rng, -60, 60, 0), "head_roll": _limb(rng, -12, 12, 0),
    }
    for s in ("l", "r"):
        a[f"{s}_sh_abd"] = _limb(rng, 5, 40, 12)
        a[f"{s}_sh_flex"] = _limb(rng, -30, 40, 0)
        a[f"{s}_elbow"] = _limb(rng, 0, 60, 15)
        a[f"{s}_humeral"] = _limb(rng, -40, 40, 0)
        a[f"{s}_hip_abd"] = _limb(rng, -3, 15, 4)
        a[f"{s}_hip_flex"] = _limb(rng, -10, 20, 2)
        a[f"{s}_knee"] = _limb(rng, 0, 25, 3)
        a[f"{s}_ankle"] = _limb(rng, -15, 25, 0)
        a[f"{s}_wrist"] = _limb(rng, -20, 30, 0)
    if kind == "walk":
        swing = rng.uniform(10, 40)
        sign = rng.choice([-1.0, 1.0])
        a["l_hip_flex"], a["r_hip_flex"] = d(sign * swing), d(-sign * swing * 0.8)
        a["l_knee"] = d(rng.uniform(5, 60) if sign < 0 else rng.uniform(0, 20))
        a["r_knee"] = d(rng.uniform(5, 60) if sign > 0 else rng.uniform(0, 20))
        a["l_sh_flex"], a["r_sh_flex"] = d(-sign * swing * 1.1), d(sign * swing * 1.1)
        a["l_elbow"], a["r_elbow"] = d(rng.uniform(10, 90)), d(rng.uniform(10, 90))
    elif kind == "reach":
        for s in ("l", "r"):
            if rng.random() < 0.6:
                a[f"{s}_sh_flex"] = _limb(rng, 30, 170)
                a[f"{s}_sh_abd"] = _limb(rng, 0, 90)
                a[f"{s}_elbow"] = _limb(rng, 0, 120)
    elif kind == "sit":
        for s in ("l", "r"):
            a[f"{s}_hip_flex"] = _limb(rng, 60, 100)
            a[f"{s}_knee"] = _limb(rng, 60, 110)
            a[f"{s}_hip_abd"] = _limb(rng, 0, 25)
        a["lean"] = _limb(rng, -10, 20)
    elif kind == "free":
        for s in ("l", "r"):
            a[f"{s}_sh_flex"] = _limb(rng, -45, 170)
            a[f"{s}_sh_abd"] = _limb(rng, 0, 150)
            a[f"{s}_elbow"] = _limb(rng, 0, 145)
            a[f"{s}_hip_flex"] = _limb(rng, -25, 110)
            a[f"{s}_hip_abd"] = _limb(rng, -5, 45)
            a[f"{s}_knee"] = _limb(rng, 0, 130)
    return a


def sample_human(rng: np.random.Generator, head_scale: float = 1.0) -> Figure:
    """A person with random proportions and pose, COCO-17 keypoints, in the body frame (mm)."""
    size = rng.uniform(0.85, 1.08)
    bulk = rng.uniform(0.85, 1.3)

    def ln(x: float) -> float:
        return x * size * min(max(float(rng.normal(1.0, 0.05)), 0.88), 1.12)

    thigh, shin, foot = ln(440), ln(420), ln(190)
    upper_arm, forearm, hand = ln(300), ln(260), ln(170)
    torso_len, neck_len = ln(500), ln(65)
    hip_w, sho_w = ln(95), ln(185) * float(np.clip(bulk, 0.9, 1.15))
    hr = np.array([ln(78), ln(112), ln(98)]) * head_scale
    a = _human_pose(rng)

    pelvis_frame = np.eye(3)
    torso = rot("z", a["side"]) @ rot("x", a["lean"]) @ rot("y", a["twist"])
    neck_base = torso @ np.array([0.0, torso_len, 0.0])
    head_frame = torso @ rot("x", a["neck_pitch"]) @ rot("y", a["head_yaw"]) @ rot("z", a["head_roll"])
    head_base = neck_base + head_frame @ np.array([0.0, neck_len, 0.0])
    head_c = head_base + head_frame @ np.array([0.0, 0.75 * hr[1], 0.1 * hr[2]])

    def head_pt(x: float, y: float, z: float) -> np.ndarray:
        return head_c + head_frame @ (np.array([x, y, z]) * hr)

    nose = head_pt(0.0, -0.2, 1.08)
    eyes = [head_pt(s * 0.36, 0.05, 0.9) for s in (1, -1)]
    ears = [head_pt(s * 1.0, -0.02, -0.05) for s in (1, -1)]

    kp = np.zeros((17, 3))
    nrm = np.zeros((17, 3))
    kp[0], nrm[0] = nose, head_frame @ np.array([0.0, -0.1, 1.0])
    kp[1], kp[2] = eyes
    kp[3], kp[4] = ears
    for i, s in ((1, 1), (2, -1)):
        nrm[i] = head_frame @ _unit(np.array([s * 0.35, 0.1, 0.93]))
    for i, s in ((3, 1), (4, -1)):
        nrm[i] = head_frame @ np.array([s * 1.0, 0.0, 0.0])

    prims: list = []
    # Torso: rings in the pelvis frame (hips) and the torso frame (chest, shoulders).
    dz = 105 * bulk * size
    low = _loft(pelvis_frame, np.zeros(3), [(-70 * size, hip_w + 70 * bulk * size, dz), (120 * size,
                                            hip_w + 55 * bulk * size, dz * 0.95)])
    high = _loft(torso, np.zeros(3), [(0.62 * torso_len, sho_w * 0.9, dz * 1.05),
                                      (torso_len - 45 * size, sho_w + 12 * size, dz * 0.9),
                                      (torso_len + 5 * size, sho_w * 0.55, dz * 0.7)])
    prims.append(Blob(_H["torso"], np.concatenate([low, high]), "shirt", 0))
    prims.append(Capsule(_H["neck"], neck_base - torso @ np.array([0, 30.0, 0]), head_base + head_frame @
                         np.array([0, 0.3 * hr[1], 0]), 52 * size, 48 * size, "skin"))
    face_pts = np.stack([nose, *eyes, *ears])
    prims.append(Blob(_H["head"], np.concatenate([_ellipsoid(head_c, head_frame, tuple(hr)), face_pts]), "hair", 0))
    hair_sel = (SPHERE[:, 1] > 0.45) | (SPHERE[:, 2] < -0.15)
    face_sel = (SPHERE[:, 2] > -0.25) & (SPHERE[:, 1] < 0.5)
    prims.append(Blob(_H["head"], _ellipsoid(head_c, head_frame, tuple(hr * 1.02), SPHERE[hair_sel]), "hair", 1))
    prims.append(Blob(_H["head"], _ellipsoid(head_c, head_frame, tuple(hr), SPHERE[face_sel]), "skin", 1))
    for i in range(5):  # guarantee that each face keypoint's pixel is covered by the head
        prims.append(Disc(_H["head"], kp[i], 0.0, "hair", 0, min_px=1.0))
    prims.append(Disc(_H["head"], nose, 16 * size * head_scale, "nose", 2, nrm[0], 0.25))
    for i in (1, 2):
        prims.append(Disc(_H["head"], kp[i], 11 * size * head_scale, "eye", 2, nrm[i], 0.1))
    for i in (3, 4):
        prims.append(Disc(_H["head"], kp[i], 24 * size * head_scale, "ear", 2, nrm[i], 0.35))

    sleeves_long = rng.random() < 0.5
    shorts = rng.random() < 0.25
    sides = (("l", 1, 5, 7, 9, 11, 13, 15), ("r", -1, 6, 8, 10, 12, 14, 16))
    for side, s, sh_i, el_i, wr_i, hip_i, kn_i, an_i in sides:
        lr = "left" if side == "l" else "right"
        shoulder = torso @ np.array([s * sho_w, torso_len - 45 * size, 0.0])
        flexed = torso @ rot("x", -a[f"{side}_sh_flex"])
        upper = flexed @ rot("z", s * a[f"{side}_sh_abd"]) @ np.array([0.0, -1.0, 0.0])
        elbow = shoulder + upper_arm * upper
        bend = _perp(upper, flexed @ np.array([0.0, 0.0, 1.0]))
        bend = _rodrigues(upper, s * a[f"{side}_humeral"]) @ bend
        fore = np.cos(a[f"{side}_elbow"]) * upper + np.sin(a[f"{side}_elbow"]) * bend
        wrist = elbow + forearm * fore
        hand_dir = _unit(np.cos(a[f"{side}_wrist"]) * fore + np.sin(a[f"{side}_wrist"]) * _perp(fore, bend))
        hand_tip = wrist + hand * hand_dir

        hip = np.array([s * hip_w, 0.0, 0.0])
        hflex = rot("x", -a[f"{side}_hip_flex"])
        thigh_dir = hflex @ rot("z", s * a[f"{side}_hip_abd"]) @ np.array([0.0, -1.0, 0.0])
        knee = hip + thigh * thigh_dir
        post = _perp(thigh_dir, hflex @ np.array([0.0, 0.0, -1.0]))
        k = a[f"{side}_knee"]
        shin_dir = np.cos(k) * thigh_dir + np.sin(k) * post
        ant = np.sin(k) * thigh_dir - np.cos(k) * post
        ankle = knee + shin * shin_dir
        foot_dir = _unit(np.cos(a[f"{side}_ankle"]) * ant + np.sin(a[f"{side}_ankle"]) * shin_dir)
        toe = ankle + foot * 0.8 * foot_dir

        kp[sh_i], kp[el_i], kp[wr_i] = shoulder, elbow, wrist
        kp[hip_i], kp[kn_i], kp[an_i] = hip, knee, ankle
        nrm[sh_i] = torso @ _unit(np.array([s, 0.3, 0.0]))
        nrm[hip_i] = np.array([float(s), 0.0, 0.0])
        b = bulk * size
        prims.append(Capsule(_H[f"{lr}_upper_arm"], shoulder, elbow, 50 * b, 39 * b, "shirt"))
        prims.append(Capsule(_H[f"{lr}_forearm"], elbow, wrist, 38 * b, 27 * b, "shirt" if sleeves_long else "skin"))
        prims.append(Capsule(_H[f"{lr}_hand"], wrist, hand_tip, 30 * size, 26 * size, "skin"))
        prims.append(Capsule(_H[f"{lr}_thigh"], hip, knee, 78 * b, 56 * b, "pants"))
        prims.append(Capsule(_H[f"{lr}_shin"], knee, ankle, 55 * b, 40 * b, "skin" if shorts else "pants"))
        prims.append(Capsule(_H[f"{lr}_foot"], ankle - 0.25 * foot * foot_dir, toe, 40 * size, 34 * size, "shoes"))
    return pack(HUMAN, kp, nrm, prims)


def _rodrigues(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation by `angle` about the unit vector `axis`."""
    x, y, z = axis
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def sample_quadruped(rng: np.random.Generator, head_scale: float = 1.0) -> Figure:
    """A four-legged animal (dog/horse/cat-like proportions) with AP-10K keypoints, in the body frame (mm)."""
    body_len = rng.uniform(500, 1400)
    L = body_len
    leg = L * rng.uniform(0.55, 1.0)
    ry = L * rng.uniform(0.17, 0.25)
    rx = ry * rng.uniform(0.7, 0.9)
    neck_len = L * rng.uniform(0.25, 0.55)
    neck_r = ry * rng.uniform(0.45, 0.65)
    head_len = L * rng.uniform(0.16, 0.24) * head_scale
    snout_len = head_len * rng.uniform(0.5, 1.2)
    tail_len = L * rng.uniform(0.25, 0.75)
    gait = rng.choice(["stand", "walk", "trot", "graze"], p=[0.3, 0.3, 0.25, 0.15])

    h_front, h_back = leg, leg * rng.uniform(0.92, 1.08)

    def spine_y(z: float) -> float:
        return (h_front + h_back) / 2 + (h_front - h_back) * z / L + 0.45 * ry

    sh_y, hp_y = h_front + 0.1 * ry, h_back + 0.1 * ry

    kp = np.zeros((17, 3))
    nrm = np.zeros((17, 3))
    kp[3] = np.array([0.0, spine_y(L / 2) + 0.75 * ry, L / 2 + 0.15 * ry])  # neck
    kp[4] = np.array([0.0, spine_y(-L / 2) + 0.65 * ry, -L / 2 - 0.45 * ry])  # root of tail
    nrm[3] = np.array([0.0, 1.0, 0.0])
    nrm[4] = _unit(np.array([0.0, 0.6, -1.0]))

    prims: list = []
    rings = [(-L / 2 - 0.75 * ry, 0.55 * rx, 0.6 * ry), (-L / 2, rx, ry), (0.0, rx * 1.05, ry * 1.05),
             (L / 2, rx * 1.05, ry * 1.05), (L / 2 + 0.65 * ry, 0.6 * rx, 0.65 * ry)]
    body = []
    for z, a_x, a_y in rings:
        body.append(_loft(np.eye(3), np.array([0.0, spine_y(z), 0.0]), [(z, a_x, a_y)], axis=2))
    prims.append(Blob(_Q["body"], np.concatenate(body), "fur", 0))

    # Neck and head.
    elev = {"graze": _limb(rng, -60, -20), "stand": _limb(rng, 10, 60)}.get(str(gait), _limb(rng, 0, 50))
    neck_yaw = _limb(rng, -35, 35, 0)
    ndir = rot("y", neck_yaw) @ rot("x", -elev) @ np.array([0.0, 0.0, 1.0])
    head_base = kp[3] + neck_len * ndir
    head_pitch = _limb(rng, -70, 10, -35) if gait != "graze" else _limb(rng, -90, -40)
    hframe = rot("y", neck_yaw + _limb(rng, -25, 25, 0)) @ rot("x", -head_pitch) @ rot("z", _limb(rng, -10, 10, 0))
    hr = np.array([0.55, 0.6, 0.62]) * head_len
    head_c = head_base + hframe @ np.array([0.0, 0.25 * hr[1], 0.35 * hr[2]])
    nose = head_c + hframe @ np.array([0.0, -0.25 * hr[1], hr[2] * 0.6 + snout_len])
    kp[2] = nose
    nrm[2] = _unit(nose - head_c)  # the tip of the snout: hidden only when seen from well behind
    for i, s in ((0, 1), (1, -1)):
        kp[i] = head_c + hframe @ (np.array([s * 0.62, 0.35, 0.55]) * hr)
        nrm[i] = hframe @ _unit(np.array([s * 0.8, 0.25, 0.6]))
    prims.append(Capsule(_Q["neck"], kp[3] - 0.2 * neck_len * ndir, head_base, neck_r, neck_r * 0.8, "fur"))
    head_pts = np.concatenate([_ellipsoid(head_c, hframe, tuple(hr)), kp[:2]])
    prims.append(Blob(_Q["head"], head_pts, "fur", 0))
    snout_r = hr[0] * rng.uniform(0.35, 0.55)
    prims.append(Capsule(_Q["head"], head_c + hframe @ np.array([0.0, -0.1 * hr[1], 0.3 * hr[2]]), nose,
                         snout_r * 1.3, snout_r, "snout"))
    ear_len = head_len * rng.uniform(0.35, 0.8)
    droop = rng.random() < 0.3
    for s in (1, -1):
        base = head_c + hframe @ (np.array([s * 0.55, 0.75, -0.15]) * hr)
        tip_dir = hframe @ _unit(np.array([s * 0.5, -1.0 if droop else 1.0, -0.4]))
        prims.append(Capsule(_Q["head"], base, base + ear_len * tip_dir, 0.3 * hr[0], 0.1 * hr[0], "ear", 0))
    for i in range(3):
        prims.append(Disc(_Q["head"], kp[i], 0.0, "fur", 0, min_px=1.0))
    prims.append(Disc(_Q["head"], nose, snout_r * 0.7, "nose", 2, nrm[2], 0.5))
    for i in (0, 1):
        prims.append(Disc(_Q["head"], kp[i], 0.16 * hr[0], "eye", 2, nrm[i], 0.1))

    # Legs: (keypoint ids, lateral sign, attachment z, height, thigh swing, lower bend sign).
    swing = {"stand": 8.0, "walk": 25.0, "trot": 35.0, "graze": 10.0}[str(gait)]
    phase = rng.uniform(0, 2 * np.pi)
    legs = (
        ((5, 6, 7), 1, L / 2, sh_y, 0.0, "left_front"),
        ((8, 9, 10), -1, L / 2, sh_y, np.pi, "right_front"),
        ((11, 12, 13), 1, -L / 2, hp_y, np.pi, "left_back"),
        ((14, 15, 16), -1, -L / 2, hp_y, 0.0, "right_back"),
    )
    lr = float(rng.uniform(0.45, 0.55))
    for (i0, i1, i2), s, z, y, ph, name in legs:
        front = "front" in name
        top = np.array([s * 0.6 * rx, y, z])
        length = y - 0.0
        up_len, lo_len = length * lr, length * (1 - lr)
        ang = np.deg2rad(swing * np.sin(phase + ph) + rng.normal(0, 6))
        abd = np.deg2rad(rng.uniform(-2, 10)) * s
        d1 = rot("z", abd) @ rot("x", -ang + (0.0 if front else np.deg2rad(-20))) @ np.array([0.0, -1.0, 0.0])
        mid = top + up_len * d1
        lifted = np.sin(phase + ph) < -0.3 and swing > 20  # a leg in its swing phase folds more
        if front:
            bend = np.deg2rad(float(np.clip(rng.normal(8, 8), 0, 25)) + (rng.uniform(20, 60) if lifted else 0.0))
        else:
            bend = np.deg2rad(rng.uniform(20, 45) + (rng.uniform(0, 25) if lifted else 0.0))
        d2 = rot("x", -0.3 * ang + bend) @ np.array([0.0, -1.0, 0.0])
        paw = mid + lo_len * d2
        kp[i0], kp[i1], kp[i2] = top, mid, paw
        nrm[i0] = np.array([float(s), 0.0, 0.0])
        r_top = ry * (0.42 if front else 0.5)
        prims.append(Capsule(_Q[f"{name}_upper"], top, mid, r_top, ry * 0.2, "fur"))
        prims.append(Capsule(_Q[f"{name}_lower"], mid, paw, ry * 0.18, ry * 0.13, "fur"))
        prims.append(Capsule(_Q[f"{name}_paw"], paw, paw + np.array([0.0, -0.05 * ry, 0.3 * ry]), ry * 0.16,
                             ry * 0.14, "paw"))

    # Tail: a chain of three tapering segments.
    d = _unit(np.array([0.0, rng.uniform(-1.2, 0.8), -1.0]))
    p = kp[4]
    tr = ry * rng.uniform(0.12, 0.28)
    curl = np.deg2rad(rng.uniform(-35, 35))
    wag = np.deg2rad(rng.uniform(-30, 30))
    for j in range(3):
        q = p + tail_len / 3 * d
        prims.append(Capsule(_Q["tail"], p, q, tr * (1 - 0.25 * j), tr * (1 - 0.25 * (j + 1)) + 0.02 * ry, "fur"))
        d = _unit(rot("y", wag) @ d + np.array([0.0, np.sin(curl), 0.0]))
        p = q
    return pack(QUADRUPED, kp, nrm, prims)


SAMPLERS = {"human": sample_human, "quadruped": sample_quadruped}
