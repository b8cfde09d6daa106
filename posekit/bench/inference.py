"""`posekit bench inference`: CPU images/s of zoo models per backend at batch 1 and 8, against a same-run GEMM rate.

Backends are those of `posekit.runtime.backends` (the code PoseEstimator and `posekit infer` run): `torch` (eager),
`folded` (BatchNorm folded into convs), `folded_cl` (folded, channels_last; bench only), with --onnx
`onnxruntime` (the cached export of the model's main output, the tuned SESSION_OPTIONS) and with --int8 (or
`--backends ... onnxruntime-int8`) `onnxruntime-int8` (that export quantised, calibrated on the COCO person crops
of ../shared/data and their mirrors, generated crops when absent; cached, so only the first run quantises).
Each row gives img/s, the
GFLOP/s achieved (2 x the model's MACs at the bench input size x img/s: nominal FLOPs, so a backend using Winograd
or other fast convolutions can exceed the GEMM rate) and that as a fraction of the fp32 GEMM rate measured in the
same run (numpy and torch 1536^2 matmuls on the same threads, before and after the models; the best is the
reference; `--no-gemm` skips it). `--ort-options` also times the ONNX session under other option sets (plain
onnxruntime defaults, parallel execution, no spinning, basic graph optimisation) so the tuned defaults are checked
on this host.
Weights are seeded random values with non-trivial BatchNorm statistics (speed does not depend on them; they make
the reported max relative difference to eager meaningful). Wall clock on a possibly shared machine: compare rows
within one run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posekit import geometry, models
from posekit.bench.common import randomise
from posekit.cli.tables import format_table
from posekit.errors import ConfigError, PosekitError
from posekit.models.fuse import fold_batchnorm
from posekit.runtime.backends import BF16, INT8, OnnxBackend, TorchBackend, create

HELP = "CPU images/s of zoo models per backend (batch 1 and 8), GFLOP/s and fraction of a same-run GEMM rate"

DEFAULT_MODELS = ("simplebaseline_res50_256x192", "hrnet_w32_256x192", "lpn_50_256x192")
ORT_VARIANTS: dict[str, dict[str, Any]] = {
    "ort_plain": {},  # marker: an onnxruntime.SessionOptions() with nothing set
    "ort_parallel": {"execution_mode": "parallel", "inter_op_threads": 2},
    "ort_nospin": {"spinning": False},
    "ort_basic": {"graph_optimization": "basic"},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", default=None,
                        help=f"zoo model names (default: those of {', '.join(DEFAULT_MODELS)} that are registered)")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--input-size", nargs=2, type=int, default=[192, 256], metavar=("W", "H"),
                        help="input width and height (default 192 256 for every model)")
    parser.add_argument("--iters", type=int, default=3,
                        help="timed rounds per case; each round runs every backend once in turn (median)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch / onnxruntime threads (default: torch's)")
    parser.add_argument("--onnx", action="store_true", help="also time onnxruntime (exported once, cached)")
    parser.add_argument("--ort-options", action="store_true",
                        help="with --onnx: also time other onnxruntime session options against the tuned ones")
    parser.add_argument("--int8", action="store_true",
                        help="also time onnxruntime-int8 (static QDQ quantisation of the export, calibrated on real "
                             "COCO person crops from ../shared/data when present, else generated crops; cached)")
    parser.add_argument("--backends", nargs="+", default=None,
                        help="only these rows (torch folded folded_cl onnxruntime onnxruntime-int8 ort_plain ...; "
                             "naming onnxruntime or onnxruntime-int8 implies --onnx / --int8)")
    parser.add_argument("--no-gemm", action="store_true", help="skip the GEMM reference measurement")


def _interleaved(calls: dict[str, Callable[[], Any]], iters: int, warmup: int) -> dict[str, tuple[float, float]]:
    """Per call: (wall, CPU) seconds, medians of `iters` rounds that run every call once in turn (so a change in
    the machine's load hits every variant alike)."""
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    wall: dict[str, list[float]] = {k: [] for k in calls}
    cpu: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(max(iters, 1)):
        for k, fn in calls.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[k].append(time.perf_counter() - w0)
            cpu[k].append(time.process_time() - c0)
    return {k: (float(np.median(wall[k])), float(np.median(cpu[k]))) for k in calls}


def gemm_rate(threads: int, n: int = 1536, iters: int = 5) -> dict[str, float]:
    """fp32 GFLOP/s of an n x n matmul in numpy and in torch on `threads` threads (best of `iters`)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    flops = 2.0 * n**3
    out: dict[str, float] = {}

    def best(fn: Callable[[], Any]) -> float:
        fn()
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return flops / min(times) / 1e9

    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out["torch"] = best(lambda: torch.mm(ta, tb))
    finally:
        torch.set_num_threads(previous)
    try:  # numpy's BLAS thread count is fixed at import; threadpoolctl (when installed) limits it
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=threads):
            out["numpy"] = best(lambda: a @ b)
    except ImportError:
        out["numpy"] = best(lambda: a @ b)
    out["reference"] = max(out.values())
    return out


def _plain_session(path: Any) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def bench_model(name: str, batch_sizes: list[int], input_size: tuple[int, int], iters: int, warmup: int,
                onnx: bool, threads: int, ort_options: bool = False, only: list[str] | None = None,
                cache_dir: str | None = None, int8: bool = False) -> list[dict[str, Any]]:
    """Rows (backend, batch, images/s, GFLOP/s, max |diff| / max |eager|) for one model."""
    from posekit.models.complexity import count_macs

    model = models.build(name).eval()
    randomise(model)
    w, h = input_size
    gflop = 2.0 * count_macs(model, input_size) / 1e9
    runners: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"torch": TorchBackend(model)}
    notes = {}
    try:
        folded = fold_batchnorm(model)
        runners["folded"] = TorchBackend(folded, "folded")
        runners["folded_cl"] = TorchBackend(folded.to(memory_format=torch.channels_last), "folded_cl")
    except ConfigError as e:
        notes["folded"] = str(e)
    try:
        runners[BF16] = create(BF16, model, input_size, name=name)
    except ConfigError as e:  # no native bf16 on this CPU
        notes[BF16] = str(e)
    if onnx:
        try:
            from posekit.bench.common import bench_weights

            # the seeded weights saved once under $XDG_CACHE_HOME/posekit/bench: the export is cached across runs
            runners["onnxruntime"] = create("onnxruntime", model, input_size, name=name, weights=bench_weights(name),
                                            cache_dir=cache_dir, intra_op_threads=threads)
            if ort_options:
                path = runners["onnxruntime"].path
                sess = _plain_session(path)
                runners["ort_plain"] = _session_runner(sess)
                for variant, opts in ORT_VARIANTS.items():
                    if opts:
                        runners[variant] = OnnxBackend(path, False, intra_op_threads=threads, **opts)
        except ConfigError as e:
            notes["onnxruntime"] = str(e)
    if int8:
        try:
            from posekit.bench.common import bench_weights

            runners[INT8] = create(INT8, model, input_size, name=name, weights=bench_weights(name), cache_dir=cache_dir,
                                   calibration=calibration_crops(input_size), intra_op_threads=threads)
        except PosekitError as e:
            notes[INT8] = str(e)
    if only:
        runners = {k: v for k, v in runners.items() if k in only or k == "torch"}
    rows = []
    gen = torch.Generator().manual_seed(0)
    for batch in batch_sizes:
        x = torch.randn(batch, 3, h, w, generator=gen)
        xcl = x.contiguous(memory_format=torch.channels_last)
        ref = runners["torch"](x)
        scale = float(ref.abs().max()) or 1.0
        calls = {v: _bind(r, xcl if v.endswith("_cl") else x) for v, r in runners.items() if not only or v in only}
        timings = _interleaved(calls, iters, warmup)
        for variant, (sec, cpu) in timings.items():
            diff = None if variant == "torch" else float((calls[variant]() - ref).abs().max()) / scale
            rows.append({"model": name, "variant": variant, "batch": batch, "images_per_s": batch / sec,
                         "images_per_cpu_s": batch / cpu, "ms_per_batch": 1000 * sec, "max_rel_diff": diff,
                         "gflop_per_image": gflop, "gflops": gflop * batch / sec})
    for variant, msg in notes.items():
        rows.append({"model": name, "variant": variant, "batch": None, "images_per_s": None, "images_per_cpu_s": None,
                     "ms_per_batch": None, "max_rel_diff": None, "note": msg})
    return rows


def calibration_crops(input_size: tuple[int, int], count: int = 32) -> torch.Tensor:
    """int8 calibration inputs: `count` person crops of the COCO samples in ../shared/data (generated blurred-noise
    images with random boxes when absent) at `input_size`, normalised, with their mirrors appended (the flip test)."""
    import tempfile

    from posekit.bench.common import coco_inputs, generated_inputs
    from posekit.data.images import read_image
    from posekit.runtime.topdown import crop_boxes, to_input

    w, h = input_size
    with tempfile.TemporaryDirectory(prefix="posekit-calib-") as tmp:
        found = coco_inputs(0.3) or generated_inputs(Path(tmp), 6)
        crops = []
        for path in found[0]:
            boxes = found[1].get(path.name, np.zeros((0, 5)))
            if len(boxes):
                centers, sizes = zip(*(geometry.box_xywh_to_center_size(b[:4], aspect_ratio=w / h, padding=1.25)
                                       for b in boxes))
                crops.append(crop_boxes(read_image(path), np.array(centers), np.array(sizes), (w, h), "standard"))
    x = to_input(np.concatenate(crops)[:count])
    return torch.cat([x, torch.flip(x, dims=(3,))])


def _bind(fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> Callable[[], Any]:
    return lambda: fn(x)


def _session_runner(sess: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    name = sess.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(sess.run(None, {name: np.ascontiguousarray(x.numpy())})[0])

    return run


def run(args: argparse.Namespace) -> dict[str, Any]:
    known = models.names()
    names = args.models or [n for n in DEFAULT_MODELS if n in known]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"--models: unknown {', '.join(unknown)}; `posekit models` lists the zoo")
    if any(b < 1 for b in args.batch_sizes):
        raise ConfigError(f"--batch-sizes must be >= 1, got {args.batch_sizes}")
    threads = args.threads or torch.get_num_threads()
    only = args.backends or []
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gemm = None if args.no_gemm else gemm_rate(threads)
        rows = []
        for name in names:
            rows += bench_model(name, list(args.batch_sizes), tuple(args.input_size), args.iters, args.warmup,
                                args.onnx or "onnxruntime" in only, threads, ort_options=args.ort_options,
                                only=args.backends, int8=args.int8 or INT8 in only)
        if gemm is not None:  # measured again after the models: the best of both (a shared machine's load varies)
            after = gemm_rate(threads)
            gemm = {k: max(gemm[k], after[k]) for k in gemm}
    finally:
        torch.set_num_threads(previous)
    if gemm:
        for r in rows:
            if r.get("gflops") is not None:
                r["gemm_fraction"] = r["gflops"] / gemm["reference"]
    return {"threads": threads, "input_size": list(args.input_size), "iters": args.iters, "warmup": args.warmup,
            "torch": torch.__version__, "gemm_gflops": gemm, "rows": rows}


def render(result: dict[str, Any]) -> str:
    batches = sorted({r["batch"] for r in result["rows"] if r["batch"] is not None})
    table: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for r in result["rows"]:
        if r["batch"] is not None:
            table.setdefault((r["model"], r["variant"]), {})[r["batch"]] = r
    rows = []
    has_gemm = bool(result.get("gemm_gflops"))
    for (model, variant), by_batch in table.items():
        diffs = [r["max_rel_diff"] for r in by_batch.values() if r["max_rel_diff"] is not None]
        row = [model, variant] + [round(by_batch[b]["images_per_s"], 1) if b in by_batch else "-" for b in batches]
        row += [round(by_batch[b]["gflops"], 1) if b in by_batch else "-" for b in batches]
        if has_gemm:
            row += [f"{by_batch[b]['gemm_fraction']:.0%}" if b in by_batch else "-" for b in batches]
        row += [f"{max(diffs):.1e}" if diffs else "-"]
        rows.append(row)
    w, h = result["input_size"]
    gemm = result.get("gemm_gflops")
    gemm_text = (f"; fp32 GEMM reference {gemm['reference']:.0f} GFLOP/s (numpy {gemm['numpy']:.0f}, torch "
                 f"{gemm['torch']:.0f}) measured in this run" if gemm else "")
    head = (f"CPU inference at {h}x{w}, {result['threads']} threads, median of {result['iters']} forwards after "
            f"{result['warmup']} warm-up{gemm_text}. Wall clock: compare rows within one run on a shared machine")
    notes = [f"{r['model']} {r['variant']}: {r['note']}" for r in result["rows"] if r.get("note")]
    header = (["model", "backend"] + [f"b{b} img/s" for b in batches] + [f"b{b} GFLOP/s" for b in batches]
              + ([f"b{b} of GEMM" for b in batches] if has_gemm else []) + ["max|diff|/max|eager|"])
    return "\n".join([head, format_table(rows, header, digits=1)] + notes)
