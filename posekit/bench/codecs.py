"""`posekit bench codecs`: round-trip error (encode -> decode, input px) and speed of every codec.

Keypoints are uniform random sub-pixel positions in the 192x256 input crop, kept `--margin` px away from the crop
border (so every codec sees its interior behaviour; the windowed/Taylor steps are skipped at borders), grouped in
instances of 17. The network output fed to decode is the codec's ideal output (`codec.perfect_outputs`: the
training target itself for heatmap codecs, the log-Gaussian logits for integral regression).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from posekit import codecs
from posekit.cli.tables import format_table

HELP = "round-trip error (input px) and encode/decode throughput of every keypoint codec"

INPUT_SIZE = (192, 256)
HEATMAP_SIZE = (48, 64)
NUM_JOINTS = 17


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-keypoints", type=int, default=10_000, help="random keypoints (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--margin", type=float, default=16.0,
                        help="distance of the keypoints from the crop border in input px (default 16)")
    parser.add_argument("--codecs", default=",".join(codecs.names()),
                        help="comma-separated codec names (default: all)")


def random_keypoints(num: int, seed: int, margin: float) -> np.ndarray:
    """[ceil(num/17), 17, 2] uniform keypoints in [margin, size-1-margin] of the input crop."""
    rng = np.random.default_rng(seed)
    n = -(-num // NUM_JOINTS)
    lo = np.array([margin, margin])
    hi = np.array(INPUT_SIZE, np.float64) - 1.0 - margin
    return lo + rng.random((n, NUM_JOINTS, 2)) * (hi - lo)


def measure(name: str, keypoints: np.ndarray, num: int) -> dict[str, Any]:
    """Round-trip error and throughput of one codec on keypoints [N,17,2]."""
    codec = codecs.build(name, input_size=INPUT_SIZE, heatmap_size=HEATMAP_SIZE, num_keypoints=NUM_JOINTS, sigma=2)
    vis = np.ones(NUM_JOINTS, np.float32)
    t0 = time.perf_counter()
    encoded = [codec.encode(kp, vis) for kp in keypoints]
    t_enc = time.perf_counter() - t0
    if type(codec).perfect_outputs is codecs.Codec.perfect_outputs:  # the ideal output is the target itself
        outputs = np.stack([e["target"] for e in encoded])
    else:
        outputs = np.stack([codec.perfect_outputs(kp) for kp in keypoints])
    del encoded
    t0 = time.perf_counter()
    decoded = np.concatenate([codec.decode(outputs[i : i + 64])[0] for i in range(0, len(outputs), 64)])
    t_dec = time.perf_counter() - t0
    err = np.linalg.norm(decoded - keypoints, axis=-1).reshape(-1)[:num]
    total = keypoints.shape[0] * NUM_JOINTS
    return {
        "codec": name,
        "affine": codec.affine,
        "mean_err_px": float(err.mean()),
        "max_err_px": float(err.max()),
        "encode_kp_per_s": float(total / max(t_enc, 1e-9)),
        "decode_kp_per_s": float(total / max(t_dec, 1e-9)),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every requested codec; JSON-able result."""
    names = [n.strip() for n in str(args.codecs).split(",") if n.strip()]
    unknown = [n for n in names if n not in codecs.names()]
    if unknown:
        from posekit.errors import ConfigError

        raise ConfigError(f"--codecs: unknown {', '.join(unknown)}; expected some of {', '.join(codecs.names())}")
    keypoints = random_keypoints(args.num_keypoints, args.seed, args.margin)
    rows = [measure(n, keypoints, args.num_keypoints) for n in names]
    return {
        "input_size": list(INPUT_SIZE),
        "heatmap_size": list(HEATMAP_SIZE),
        "num_keypoints": int(args.num_keypoints),
        "seed": int(args.seed),
        "margin_px": float(args.margin),
        "rows": rows,
    }


def render(result: dict[str, Any]) -> str:
    """The result as a table."""
    rows = [[r["codec"], r["affine"], r["mean_err_px"], r["max_err_px"], round(r["encode_kp_per_s"]),
             round(r["decode_kp_per_s"])] for r in result["rows"]]
    head = (f"codec round trip: {result['num_keypoints']} keypoints, input {result['input_size'][0]}x"
            f"{result['input_size'][1]} -> heatmap {result['heatmap_size'][0]}x{result['heatmap_size'][1]}, "
            f"seed {result['seed']}, margin {result['margin_px']:g} px (errors in input px)")
    table = format_table(rows, ["codec", "affine", "mean err", "max err", "encode kp/s", "decode kp/s"], digits=4)
    return head + "\n" + table
