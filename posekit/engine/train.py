"""The training loop: `fit(cfg, out_dir)` - a plain, readable loop in the style of torchvision's references.

Data order and augmentation are pure functions of (TRAIN.SEED, epoch, index) (see posekit.data.topdown), so a run
resumed from any checkpoint - including one written mid-epoch at TRAIN.MAX_ITERS or on Ctrl-C - sees exactly the
batches the uninterrupted run would have seen; on CPU the weights match bit for bit. Under `torchrun` (RANK /
WORLD_SIZE set) the loop uses DistributedDataParallel (nccl on GPU, gloo on CPU) with per-rank sampling.

`fit` = build (the config's Task, posekit.engine.tasks), resume (`resume_from`), loop (`train_one_epoch` per epoch),
save. Time budgets TRAIN.MAX_MINUTES (training time; evaluation excluded) / MAX_ITERS stop with a checkpoint;
TRAIN.LR_SCHEDULE multistep (official) or cosine (over the budget); TRAIN.INIT official or he; held-out evaluation at
epoch ends (VAL_EVERY) and every VAL_EVERY_MINUTES / VAL_EVERY_ITERS; mid-epoch checkpoints every
CHECKPOINT_EVERY_MINUTES / _ITERS. Ctrl-C and SIGTERM stop after the current step with a checkpoint.

Files in out_dir: checkpoint.pth (full state + config + model spec; every epoch, periodically and at every stop),
model_best.pth, final_state.pth (completed runs) / last_state.pth (stopped runs): posekit weights files (official
state_dict key names + the ModelSpec, posekit.modelspec), config.yaml (what actually ran), log.jsonl (one JSON object
per logged step / evaluation / epoch), tb/ (TensorBoard scalars, when tensorboard imports).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from posekit.config import Config, config_from_yaml, config_to_dict, config_to_yaml
from posekit.engine import checkpoint as ckpt
from posekit.engine.build import build_optimizer, build_scheduler, cosine_factor, init_weights, model_spec
from posekit.engine.predict import main_output
from posekit.engine.tasks import Batch, Criterion, task_for
from posekit.errors import CheckpointError, ConfigError, DataError, TrainingError
from posekit.modelspec import weights_file

# ----------------------------------------------------------------------------------------------------------------
# Distributed setup


@dataclass(frozen=True)
class DistInfo:
    """Process rank, world size and the device this process trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """True on the process that writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world_size > 1


def setup_distributed() -> DistInfo:
    """Init the process group when torchrun set RANK/WORLD_SIZE (nccl on GPU, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if "RANK" not in os.environ or world <= 1:
        return DistInfo(device=torch.device("cuda" if cuda else "cpu"))
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():  # long timeout: ranks > 0 wait at a barrier while rank 0 validates
        dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=datetime.timedelta(hours=2))
    return DistInfo(rank=rank, world_size=world, local_rank=local,
                    device=torch.device(f"cuda:{local}" if cuda else "cpu"))


class ResumableSampler(DistributedSampler):
    """DistributedSampler (seeded permutation per epoch, rank slice) that can skip the first `start` samples."""

    def __init__(self, dataset: Any, num_replicas: int = 1, rank: int = 0, shuffle: bool = True,
                 seed: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.start = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start


# ----------------------------------------------------------------------------------------------------------------
# Pieces built from the config


def augment_config(cfg: Config) -> Any:
    """posekit.data.AugmentConfig from DATASET.SCALE_FACTOR / ROT_FACTOR / FLIP / PROB_HALF_BODY."""
    from posekit.data import AugmentConfig

    d = cfg.DATASET
    return AugmentConfig(scale_factor=d.SCALE_FACTOR, rotation_factor=d.ROT_FACTOR, flip=d.FLIP,
                         half_body_prob=d.PROB_HALF_BODY, num_joints_half_body=d.NUM_JOINTS_HALF_BODY)


def load_pretrained(cfg: Config, model: nn.Module) -> Any:
    """MODEL.PRETRAINED (ImageNet backbone) into the model, keys under EXTRA.PRETRAINED_LAYERS when given."""
    from posekit import models
    from posekit.models.weights import BACKBONE_ROOTS, HRNET_BACKBONE_ROOTS, load_imagenet_backbone

    path = Path(cfg.MODEL.PRETRAINED)
    if not path.is_file():
        raise ConfigError(f"MODEL.PRETRAINED {path} not found; download it or override MODEL.PRETRAINED=''")
    layers = cfg.MODEL.EXTRA.get("PRETRAINED_LAYERS") or []
    hrnet = cfg.MODEL.NAME == "pose_hrnet" or (cfg.MODEL.ZOO and models.entry(cfg.MODEL.ZOO).family == "hrnet")
    roots = tuple(f"{name}." for name in layers if name != "*") or (HRNET_BACKBONE_ROOTS if hrnet else BACKBONE_ROOTS)
    return load_imagenet_backbone(model, path, roots)


def set_bn_eval(model: nn.Module) -> None:
    """Put every BatchNorm layer in eval mode (running statistics are used and not updated)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def heatmap_accuracy(output: torch.Tensor, target: torch.Tensor, num_joints: int) -> float | None:
    """Official training accuracy (PCK of heatmap argmaxes) when the output holds one map per joint."""
    if output.shape[1] != num_joints or target.shape != output.shape:
        return None
    from posekit.evaluation.pck import accuracy

    _, avg, count, _ = accuracy(output.detach().float().cpu().numpy(), target.detach().float().cpu().numpy())
    return float(avg) if count > 0 else None


def optimizer_step(loss: torch.Tensor, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: Any,
                   clip_max_norm: float = 0.0) -> None:
    """Backward and one optimizer step (through the AMP GradScaler when there is one), with optional clipping."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        if clip_max_norm > 0:
            nn.utils.clip_grad_norm_(model.parameters(), clip_max_norm)
        optimizer.step()
        return
    scaler.scale(loss).backward()
    if clip_max_norm > 0:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), clip_max_norm)
    scaler.step(optimizer)
    scaler.update()


@dataclass
class EpochStats:
    """Running loss / accuracy / throughput of one epoch (this process)."""

    loss: float = 0.0
    acc: float = 0.0
    acc_images: int = 0
    images: int = 0
    last_loss: float = 0.0
    start: float = field(default_factory=time.monotonic)

    def add(self, loss: float, acc: float | None, n: int) -> None:
        """Account one batch of n images."""
        self.last_loss = loss
        self.loss += loss * n
        self.images += n
        if acc is not None:
            self.acc += acc * n
            self.acc_images += n

    @property
    def images_per_s(self) -> float:
        """Training throughput of this process so far."""
        return self.images / max(time.monotonic() - self.start, 1e-9)

    def summary(self, epoch: int, iteration: int, lr: float) -> dict[str, Any]:
        """The per-epoch dict given to `on_epoch` and written to log.jsonl."""
        return {"epoch": epoch, "iteration": iteration, "lr": lr, "loss": self.loss / max(self.images, 1),
                "acc": self.acc / self.acc_images if self.acc_images else None,
                "seconds": time.monotonic() - self.start}


def _add_scalars(writer: Any, prefix: str, values: dict[str, Any], step: int) -> None:
    if writer is not None:
        for k, v in values.items():
            if v is not None:
                writer.add_scalar(f"{prefix}/{k}", v, step)


class _StopFlag:
    """Ctrl-C / SIGTERM set a flag the loop checks after each step; a second one interrupts at once."""

    def __init__(self) -> None:
        self.stop = False
        self._old: Any = None

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._old = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True

    def __exit__(self, *exc: Any) -> None:
        if self._old is not None:
            for sig, old in self._old.items():
                signal.signal(sig, old)


def _tensorboard(path: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed: scalars go to log.jsonl only
        return None
    return SummaryWriter(str(path))


def _reduce_mean(value: torch.Tensor, info: DistInfo) -> float:
    if info.distributed:
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= info.world_size
    return float(value)


# ----------------------------------------------------------------------------------------------------------------
# Resume


# Keys that only say how long / how often a run goes on: a resumed run may change them.
RUN_LENGTH_KEYS = {"TRAIN.END_EPOCH", "TRAIN.MAX_ITERS", "TRAIN.MAX_MINUTES", "TRAIN.VAL_EVERY", "TRAIN.RESUME",
                   "TRAIN.VAL_EVERY_MINUTES", "TRAIN.VAL_EVERY_ITERS", "TRAIN.CHECKPOINT_EVERY_MINUTES",
                   "TRAIN.CHECKPOINT_EVERY_ITERS", "TRAIN.CHECKPOINT", "AUTO_RESUME", "PRINT_FREQ", "WORKERS",
                   "PIN_MEMORY", "OUTPUT_DIR", "DEBUG.DEBUG", "TEST.BATCH_SIZE_PER_GPU", "TRAIN.BAD_SAMPLES"}


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "EXTRA":
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(saved: Config, cfg: Config) -> list[str]:
    """'KEY: saved -> now' for every key that differs, run-length keys excepted."""
    a, b = _flat(config_to_dict(saved)), _flat(config_to_dict(cfg))
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if k not in RUN_LENGTH_KEYS and not k.startswith("DEBUG.") and a.get(k) != b.get(k)]


@dataclass
class Progress:
    """Where a run is: epoch in progress, steps done in it, optimizer steps, training seconds, best metric."""

    epoch: int = 0
    epoch_iteration: int = 0
    iteration: int = 0
    train_seconds: float = 0.0
    best: float | None = None


def resume_from(path: Path, cfg: Config, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                scaler: Any) -> Progress:
    """Load a training checkpoint into model/optimizer/scheduler/RNGs; refuse one of a different experiment."""
    state = ckpt.load_training_checkpoint(path)
    saved = config_from_yaml(state["config"], f"{path} (stored config)")
    diffs = config_differences(saved, cfg)
    if diffs:
        raise CheckpointError(f"{path} was trained with other settings ({'; '.join(diffs[:8])}"
                              f"{' ...' if len(diffs) > 8 else ''}); resume with the same settings (only run-length "
                              "keys such as TRAIN.END_EPOCH / MAX_MINUTES may change) or train into a new --out")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    ckpt.restore_scheduler(scheduler, state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    ckpt.set_rng_state(state["rng"])
    extra = state.get("extra") or {}
    return Progress(epoch=state["epoch"], epoch_iteration=state["epoch_iteration"], iteration=state["iteration"],
                    train_seconds=float(extra.get("train_seconds", 0.0)), best=state["best_metric"])


# ----------------------------------------------------------------------------------------------------------------
# One epoch


@dataclass(frozen=True)
class BadSample:
    """A training item whose loading failed (TRAIN.BAD_SAMPLES=skip): its index and the error message."""

    index: int
    message: str


class SkipBadSamples(torch.utils.data.Dataset):
    """A dataset whose items that raise DataError (corrupt image, bad record) become BadSample markers."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation of `epoch` (when the dataset has one)."""
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __getitem__(self, index: int) -> Any:
        try:
            return self.dataset[index]
        except DataError as e:
            return BadSample(int(index), str(e))


def skipping_collate(collate: Callable[[Sequence[Any]], Batch]) -> Callable[[Sequence[Any]], Batch]:
    """collate over the good items; the bad ones go to batch.meta['skipped'] (inputs None when all are bad)."""

    def wrapped(items: Sequence[Any]) -> Batch:
        bad = [x for x in items if isinstance(x, BadSample)]
        good = [x for x in items if not isinstance(x, BadSample)]
        batch = collate(good) if good else Batch(inputs=None)  # type: ignore[arg-type]
        batch.meta["skipped"] = [(b.index, b.message) for b in bad]
        return batch

    return wrapped


def unwrap_worker_error(e: BaseException) -> str:
    """The original message of an error raised in a DataLoader worker (not 'Caught X in DataLoader worker')."""
    text = str(e)
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = [line for line in text.strip().splitlines() if line.strip()][-1]
        return last.split(": ", 1)[1] if ": " in last else last
    return text


def train_one_epoch(model: nn.Module, criterion: Criterion, loader: Any, optimizer: torch.optim.Optimizer, *,
                    device: torch.device, epoch: int, start_step: int = 0, iteration: int = 0, scaler: Any = None,
                    clip_max_norm: float = 0.0, use_amp: bool = False, set_lr: Callable[[int], None] | None = None,
                    after_step: Callable[[int, int, torch.Tensor, dict[str, float], Batch, Any], str] | None = None,
                    all_finite: Callable[[torch.Tensor], bool] | None = None,
                    on_skip: Callable[[int, list], None] | None = None) -> tuple[str, int, int]:
    """Train over `loader` (Batches) from `start_step`; returns (stop reason or 'completed', last step + 1, iteration).

    Each step: LR (set_lr), forward (autocast when use_amp), loss, non-finite check (TrainingError), backward,
    clipping, optimizer step; then `after_step(step, iteration, loss, logs, batch, outputs)` says whether to stop.
    Items skipped by SkipBadSamples are reported to `on_skip(step, [(index, message)])`.
    """
    step = start_step - 1
    stop = "completed"
    batches = iter(loader)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            break
        except DataError as e:
            raise DataError(unwrap_worker_error(e)) from None
        step += 1
        if batch.meta.get("skipped") and on_skip is not None:
            on_skip(step, batch.meta["skipped"])
        if batch.inputs is None:  # every item of this batch was bad (TRAIN.BAD_SAMPLES=skip): no step
            continue
        batch = batch.to(device)
        if set_lr is not None:
            set_lr(iteration)
        with torch.autocast(device.type, enabled=use_amp):
            outputs = model(batch.inputs)
            loss, logs = criterion(outputs, batch.targets)
        finite = all_finite(loss) if all_finite is not None else bool(torch.isfinite(loss.detach()).all())
        if not finite:
            raise TrainingError(f"non-finite loss ({float(loss.detach()):.4g}) at epoch {epoch} step {step} "
                                f"(iteration {iteration + 1})")
        optimizer_step(loss, model, optimizer, scaler, clip_max_norm)
        iteration += 1
        if after_step is not None:
            stop = after_step(step, iteration, loss, logs, batch, outputs)
            if stop != "completed":
                break
    return stop, step + 1, iteration


# ----------------------------------------------------------------------------------------------------------------
# The loop


def fit(cfg: Config, out_dir: str | os.PathLike, resume: bool = False, progress: Callable[..., Any] | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None, device: str | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train `cfg` into `out_dir` (build, resume, loop, save); returns a summary of the run.

    progress: a tqdm-like factory `progress(total=, initial=, desc=)`; on_epoch: called with each epoch's summary;
    on_event(kind, info): 'resume', 'eval' (periodic held-out metrics), 'checkpoint'. Only rank 0 reports and writes.
    """
    info = setup_distributed()
    if device is not None:
        info = DistInfo(info.rank, info.world_size, info.local_rank, torch.device(device))
    out, t = Path(out_dir), cfg.TRAIN
    task = task_for(cfg)
    if info.main:
        ckpt.ensure_writable_dir(out)
        if cfg.MODEL.PRETRAINED and cfg.MODEL.INIT_WEIGHTS and not Path(cfg.MODEL.PRETRAINED).is_file():
            raise ConfigError(f"MODEL.PRETRAINED {cfg.MODEL.PRETRAINED} not found; download it or override "
                              "MODEL.PRETRAINED=''")
        task.preflight(cfg)
    if info.device.type == "cuda":
        torch.backends.cudnn.benchmark = cfg.CUDNN.BENCHMARK
        torch.backends.cudnn.deterministic = cfg.CUDNN.DETERMINISTIC
        torch.backends.cudnn.enabled = cfg.CUDNN.ENABLED
    event = on_event if (on_event is not None and info.main) else (lambda kind, data: None)

    torch.manual_seed(t.SEED)  # weight initialisation
    built = task.build(cfg)
    init_weights(built.model, t.INIT)
    if cfg.MODEL.PRETRAINED and cfg.MODEL.INIT_WEIGHTS:
        load_pretrained(cfg, built.model)
    model = built.model.to(info.device)
    train_ds = task.train_dataset(cfg, built)
    collate = task.collate
    if t.BAD_SAMPLES == "skip":
        train_ds, collate = SkipBadSamples(train_ds), skipping_collate(task.collate)
    sampler = ResumableSampler(train_ds, num_replicas=info.world_size, rank=info.rank, shuffle=t.SHUFFLE,
                               seed=t.SEED)
    steps_per_epoch = math.ceil(sampler.num_samples / t.BATCH_SIZE_PER_GPU)
    if t.SYNC_BN and info.distributed and info.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer = build_optimizer(cfg, task.param_groups(cfg, model))
    for group in optimizer.param_groups:
        group.setdefault("base_lr", group["lr"])
    scheduler = build_scheduler(cfg, optimizer)
    use_amp = bool(t.AMP and info.device.type == "cuda")
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    criterion = task.criterion(cfg, built)
    metric_name = task.primary_metric(cfg)
    higher = task.higher_is_better(cfg)

    prog = Progress(epoch=t.BEGIN_EPOCH)
    if t.BEGIN_EPOCH and scheduler is not None:  # the schedule starts at BEGIN_EPOCH
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * t.LR_FACTOR ** sum(m <= t.BEGIN_EPOCH for m in t.LR_STEP)
        scheduler.last_epoch = t.BEGIN_EPOCH
    ckpt_path = Path(t.CHECKPOINT) if t.CHECKPOINT else out / "checkpoint.pth"
    if resume or t.RESUME or (cfg.AUTO_RESUME and ckpt_path.is_file()):
        prog = resume_from(ckpt_path, cfg, model, optimizer, scheduler, scaler)
        event("resume", {"checkpoint": str(ckpt_path), "epoch": prog.epoch, "step": prog.epoch_iteration,
                         "iteration": prog.iteration})
    if info.main:
        (out / "config.yaml").write_text(config_to_yaml(cfg))  # what actually runs
    spec = built.spec
    net = model
    if info.distributed:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[info.local_rank] if info.device.type == "cuda" else None)

    writer = _tensorboard(out / "tb") if info.main else None
    log = open(out / "log.jsonl", "a") if info.main else None  # noqa: SIM115 - closed in finally
    history: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    stop_reason = "completed"
    clock = {"segment": time.monotonic(), "base": prog.train_seconds, "ckpt": time.monotonic(),
             "val": prog.train_seconds}

    def train_seconds() -> float:
        return clock["base"] + time.monotonic() - clock["segment"]

    def pause() -> None:  # evaluation time is not training time
        clock["base"] = train_seconds()
        clock["segment"] = time.monotonic()

    def unpause() -> None:
        clock["segment"] = time.monotonic()

    def record(entry: dict[str, Any]) -> None:
        if log is not None:
            log.write(json.dumps(entry) + "\n")
            log.flush()

    def save(epoch_: int, epoch_iteration: int) -> None:
        if info.main:
            ckpt.save_training_checkpoint(ckpt_path if t.CHECKPOINT else out / "checkpoint.pth", model=net,
                                          optimizer=optimizer, scheduler=scheduler, epoch=epoch_,
                                          iteration=prog.iteration, epoch_iteration=epoch_iteration,
                                          best_metric=prog.best, config_yaml=config_to_yaml(cfg), scaler=scaler,
                                          spec=spec.to_dict() if spec is not None else None,
                                          extra={"metric": metric_name, "train_seconds": train_seconds()})
            clock["ckpt"] = time.monotonic()

    def validate(where: dict[str, Any]) -> dict[str, float]:
        pause()
        metrics, _ = task.evaluate(cfg, net, built, info.device, split="test")
        net.train()
        if t.FREEZE_BN:
            set_bn_eval(net)
        value = metrics.get(metric_name)
        improved = value is not None and (prog.best is None or (value > prog.best if higher else value < prog.best))
        if improved:
            prog.best = float(value)
            ckpt.atomic_save(weights_file(net.state_dict(), spec), out / "model_best.pth")
        entry = {**where, "train_minutes": clock["base"] / 60.0, "metrics": metrics, "best": improved}
        evals.append(entry)
        record({"eval": entry})
        _add_scalars(writer, "val", metrics, prog.iteration)
        event("eval", entry)
        unpause()
        return metrics

    skipped: list[dict[str, Any]] = []

    def on_skip(step: int, items: list) -> None:
        for index, message in items:
            skipped.append({"epoch": prog.epoch, "step": step, "index": index, "error": message})
            record({"skipped": skipped[-1]})
            if info.main:
                with open(out / "skipped_samples.jsonl", "a") as f:
                    f.write(json.dumps(skipped[-1]) + "\n")

    def fraction() -> float:
        if t.MAX_MINUTES:
            return train_seconds() / (60.0 * t.MAX_MINUTES)
        if t.MAX_ITERS:
            return prog.iteration / t.MAX_ITERS
        return prog.iteration / max(1, steps_per_epoch * (t.END_EPOCH - t.BEGIN_EPOCH))

    def set_lr(iteration: int) -> None:
        if scheduler is None:  # cosine over the budget
            factor = cosine_factor(fraction())
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * factor

    try:
        with _StopFlag() as flag:
            while prog.epoch < t.END_EPOCH:
                epoch, skip = prog.epoch, prog.epoch_iteration
                sampler.set_epoch(epoch)
                if hasattr(train_ds, "set_epoch"):
                    train_ds.set_epoch(epoch)
                sampler.start = skip * t.BATCH_SIZE_PER_GPU
                loader = DataLoader(train_ds, batch_size=t.BATCH_SIZE_PER_GPU, sampler=sampler,
                                    num_workers=cfg.WORKERS, pin_memory=cfg.PIN_MEMORY and info.device.type == "cuda",
                                    collate_fn=collate, generator=torch.Generator().manual_seed(t.SEED + epoch))
                model.train()
                if t.FREEZE_BN:
                    set_bn_eval(model)
                bar = progress(total=steps_per_epoch, initial=skip, desc=f"epoch {epoch}") if (
                    progress and info.main) else None
                stats = EpochStats()

                def after_step(step: int, iteration: int, loss: torch.Tensor, logs: dict[str, float],
                               batch: Batch, outputs: Any, epoch: int = epoch, stats: EpochStats = stats,
                               bar: Any = bar) -> str:
                    prog.iteration, prog.epoch_iteration = iteration, step + 1
                    reason = _stop_reason(cfg, iteration, train_seconds(), flag.stop, info)
                    log_now = iteration == 1 or iteration % max(1, cfg.PRINT_FREQ) == 0 or reason != "completed"
                    if task.name == "topdown" and (log_now or bar is not None):
                        logs = {**logs, "acc": heatmap_accuracy(main_output(outputs), batch.targets["target"],
                                                                built.codec.num_keypoints)}
                    stats.add(float(loss.detach()), logs.get("acc"), len(batch.inputs))
                    if log_now:
                        entry = {"iteration": iteration, "epoch": epoch, "step": step,
                                 "loss": _reduce_mean(loss.detach(), info), "lr": optimizer.param_groups[0]["lr"],
                                 "train_minutes": train_seconds() / 60.0, "world_size": info.world_size, **logs}
                        record(entry)
                        _add_scalars(writer, "train", {k: v for k, v in entry.items() if k not in (
                            "iteration", "epoch", "step", "world_size")}, iteration)
                        if cfg.DEBUG.DEBUG and info.main and task.name == "topdown":
                            from posekit.engine.debug import save_debug_images

                            save_debug_images(cfg, out / "debug", f"train_e{epoch}_i{iteration}", batch.inputs,
                                              batch.targets["target"], main_output(outputs), batch.meta, built.codec,
                                              built.skeleton)
                    if bar is not None:
                        bar.update(1)
                        acc = logs.get("acc")
                        bar.set_postfix(loss=f"{stats.last_loss:.3g}", acc="-" if acc is None else f"{acc:.3f}",
                                        img_s=f"{stats.images_per_s * info.world_size:.1f}")
                    if info.main and ((t.VAL_EVERY_ITERS and iteration % t.VAL_EVERY_ITERS == 0) or (
                            t.VAL_EVERY_MINUTES and train_seconds() - clock["val"] >= 60.0 * t.VAL_EVERY_MINUTES)):
                        clock["val"] = train_seconds()
                        validate({"epoch": epoch, "iteration": iteration})
                    reason = _stop_reason(cfg, iteration, train_seconds(), flag.stop, info)  # after this step's work
                    if reason == "completed" and ((t.CHECKPOINT_EVERY_ITERS and iteration % t.CHECKPOINT_EVERY_ITERS
                                                   == 0) or (t.CHECKPOINT_EVERY_MINUTES and time.monotonic()
                                                             - clock["ckpt"] >= 60.0 * t.CHECKPOINT_EVERY_MINUTES)):
                        save(epoch, step + 1)
                        event("checkpoint", {"epoch": epoch, "step": step + 1, "iteration": iteration})
                    return reason

                try:
                    stop_reason, end_step, _ = train_one_epoch(
                        model, criterion, loader, optimizer, device=info.device, epoch=epoch, start_step=skip,
                        iteration=prog.iteration, scaler=scaler, clip_max_norm=t.CLIP_MAX_NORM, use_amp=use_amp,
                        set_lr=set_lr, after_step=after_step, all_finite=lambda x: _all_finite(x, info),
                        on_skip=on_skip)
                except TrainingError as e:
                    raise TrainingError(f"{e}; the last good checkpoint is {out / 'checkpoint.pth'} - lower "
                                        "TRAIN.LR, check the data, or turn TRAIN.AMP off") from None
                except DataError as e:
                    save(epoch, prog.epoch_iteration)  # nothing lost: resume continues after the last good step
                    raise DataError(f"{e} (training stopped at epoch {epoch} step {prog.epoch_iteration}; the "
                                    f"checkpoint {out / 'checkpoint.pth'} continues from there; "
                                    "TRAIN.BAD_SAMPLES=skip skips bad samples and lists them)") from None
                finally:
                    if bar is not None:
                        bar.close()
                if stop_reason != "completed":
                    save(epoch, end_step)  # mid-epoch checkpoint: resume continues at the next step
                    break

                summary = stats.summary(epoch, prog.iteration, optimizer.param_groups[0]["lr"])
                if scheduler is not None:
                    scheduler.step()
                prog.epoch, prog.epoch_iteration = epoch + 1, 0
                if info.main and t.VAL_EVERY > 0 and (prog.epoch % t.VAL_EVERY == 0 or prog.epoch == t.END_EPOCH):
                    summary["metrics"] = validate({"epoch": prog.epoch, "iteration": prog.iteration})
                    summary["best"] = evals[-1]["best"]
                if info.distributed:
                    dist.barrier()  # ranks > 0 wait for rank 0's validation
                save(prog.epoch, 0)
                record({"epoch_end": summary})
                history.append(summary)
                if on_epoch is not None and info.main:
                    on_epoch(summary)
        if info.main:
            name = "final_state.pth" if stop_reason == "completed" else "last_state.pth"
            ckpt.atomic_save(weights_file(net.state_dict(), spec), out / name)
    finally:
        if writer is not None:
            writer.close()
        if log is not None:
            log.close()
        if info.distributed and dist.is_initialized():
            dist.destroy_process_group()
    return {
        "stop_reason": stop_reason,
        "epoch": prog.epoch,
        "iteration": prog.iteration,
        "train_minutes": train_seconds() / 60.0,
        "best_metric": prog.best,
        "metric": metric_name,
        "history": history,
        "evals": evals,
        "skipped_samples": skipped,
        "checkpoint": str(out / "checkpoint.pth"),
        "best_weights": str(out / "model_best.pth") if (out / "model_best.pth").exists() else None,
        "final_weights": str(out / "final_state.pth") if (out / "final_state.pth").exists() else None,
        "last_weights": str(out / "last_state.pth") if (out / "last_state.pth").exists() else None,
        "rank": info.rank,
        "world_size": info.world_size,
    }


def _all_finite(loss: torch.Tensor, info: DistInfo) -> bool:
    """Whether the loss is finite on every rank (so all ranks stop together)."""
    ok = torch.isfinite(loss.detach()).all().to(torch.int32).reshape(1)
    if info.distributed:
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item())


def _stop_reason(cfg: Config, iteration: int, train_seconds: float, interrupted: bool, info: DistInfo) -> str:
    """'completed' to go on, else why to stop now (agreed by all ranks under DDP)."""
    t = cfg.TRAIN
    reason = 0
    if t.MAX_ITERS and iteration >= t.MAX_ITERS:
        reason = 1
    elif t.MAX_MINUTES and train_seconds >= 60.0 * t.MAX_MINUTES:
        reason = 2
    elif interrupted:
        reason = 3
    if info.distributed:
        flag = torch.tensor([reason], device=info.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        reason = int(flag.item())
    return ("completed", "max_iters", "max_minutes", "interrupted")[reason]


def spec_summary(cfg: Config) -> dict[str, Any]:
    """What a config trains, for the CLI header."""
    s = model_spec(cfg)
    return {"model": s.name, "task": s.task, "input_size": list(s.input_size), "heatmap_size": list(s.heatmap_size),
            "codec": s.codec, "skeleton": s.skeleton, "num_joints": s.num_joints}
