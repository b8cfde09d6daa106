"""The training loop: `fit(cfg, out_dir)` - a plain, readable loop in the style of torchvision's references.

Data order and augmentation are pure functions of (TRAIN.SEED, epoch, index) (see posekit.data.topdown), so a run
resumed from any checkpoint - including one written mid-epoch at TRAIN.MAX_ITERS or on Ctrl-C - sees exactly the
batches the uninterrupted run would have seen; on CPU the weights match bit for bit. Under `torchrun` (RANK /
WORLD_SIZE set) the loop uses DistributedDataParallel (nccl on GPU, gloo on CPU) with per-rank sampling.

Files in out_dir: checkpoint.pth (full state, every epoch and at every stop), model_best.pth and final_state.pth
(plain state_dicts, official names), config.yaml, log.jsonl (one JSON object per logged step / epoch), tb/
(TensorBoard scalars, when tensorboard imports), debug/ (DEBUG.* pictures).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from posekit.config import Config, build_model_from_config, config_from_yaml, config_to_dict, config_to_yaml, model_spec
from posekit.engine import checkpoint as ckpt
from posekit.engine.predict import (
    collate,
    configure_codec,
    load_records,
    main_output,
    make_test_dataset,
    predict,
    primary_metric,
    rgb_to_official_bgr,
    score,
)
from posekit.errors import CheckpointError, ConfigError, TrainingError
from posekit.losses import build_loss, loss_name_for

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


def build_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    """Official get_optimizer: Adam(lr) without weight decay, or SGD(lr, momentum, WD, nesterov); AdamW(lr, WD)."""
    t = cfg.TRAIN
    params = [p for p in model.parameters() if p.requires_grad]
    name = t.OPTIMIZER.lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=t.LR)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=t.LR, weight_decay=t.WD)
    return torch.optim.SGD(params, lr=t.LR, momentum=t.MOMENTUM, weight_decay=t.WD, nesterov=t.NESTEROV)


def build_scheduler(cfg: Config, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.MultiStepLR:
    """MultiStepLR(LR_STEP, LR_FACTOR), stepped once at the end of every epoch."""
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(cfg.TRAIN.LR_STEP),
                                                gamma=cfg.TRAIN.LR_FACTOR)


def build_criterion(cfg: Config, codec: Any) -> nn.Module:
    """The loss named by LOSS.NAME, else the one that goes with the codec (MSE, or OHKM with LOSS.USE_OHKM)."""
    name = cfg.LOSS.NAME or loss_name_for(codec.name, cfg.LOSS.USE_OHKM)
    return build_loss(name, cfg.LOSS.USE_TARGET_WEIGHT, cfg.LOSS.TOPK, beta=float(getattr(codec, "beta", 1.0)))


def compute_loss(criterion: nn.Module, outputs: Any, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Loss of one output, or the sum over stages when the network returns a list (stacked hourglass, MSPN)."""
    if isinstance(outputs, (list, tuple)):
        return sum(criterion(o, target, weight) for o in outputs)
    return criterion(main_output(outputs), target, weight)


def load_pretrained(cfg: Config, model: nn.Module) -> Any:
    """MODEL.PRETRAINED (ImageNet backbone) into the model, keys under EXTRA.PRETRAINED_LAYERS when given."""
    from posekit import models
    from posekit.models.checkpoint import BACKBONE_ROOTS, HRNET_BACKBONE_ROOTS, load_imagenet_backbone

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
    """Ctrl-C sets a flag the loop checks after each step; a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.stop = False
        self._old: Any = None

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True

    def __exit__(self, *exc: Any) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _tensorboard(path: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed: scalars go to log.jsonl only
        return None
    return SummaryWriter(str(path))


def _same_model(saved_yaml: str, cfg: Config, path: Path) -> None:
    """Refuse to resume a checkpoint of a different network or codec."""
    saved = config_from_yaml(saved_yaml, f"{path} (stored config)")
    a, b = config_to_dict(saved)["MODEL"], config_to_dict(cfg)["MODEL"]
    keys = ("NAME", "ZOO", "CODEC", "NUM_JOINTS", "IMAGE_SIZE", "HEATMAP_SIZE", "EXTRA")
    diff = [k for k in keys if a.get(k) != b.get(k)]
    if diff:
        raise CheckpointError(f"{path} was trained with a different MODEL ({', '.join(f'MODEL.{k}' for k in diff)}); "
                              "use another --out folder or the same model settings")


def _reduce_mean(value: torch.Tensor, info: DistInfo) -> float:
    if info.distributed:
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= info.world_size
    return float(value)


# ----------------------------------------------------------------------------------------------------------------
# The loop


def fit(cfg: Config, out_dir: str | os.PathLike, resume: bool = False, progress: Callable[..., Any] | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None, device: str | None = None) -> dict[str, Any]:
    """Train `cfg` into `out_dir`; returns a summary (epochs, iterations, best metric, stop reason, files).

    progress: a tqdm-like factory `progress(total=, initial=, desc=)` whose bars get update()/set_postfix()/close();
    on_epoch: called with each epoch's summary dict (the CLI prints it). Only rank 0 reports and writes files.
    """
    info = setup_distributed()
    if device is not None:
        info = DistInfo(info.rank, info.world_size, info.local_rank, torch.device(device))
    out = Path(out_dir)
    t = cfg.TRAIN
    if info.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(config_to_yaml(cfg))
    if info.device.type == "cuda":
        torch.backends.cudnn.benchmark = cfg.CUDNN.BENCHMARK
        torch.backends.cudnn.deterministic = cfg.CUDNN.DETERMINISTIC
        torch.backends.cudnn.enabled = cfg.CUDNN.ENABLED

    torch.manual_seed(t.SEED)  # weight initialisation
    model, codec, skeleton = build_model_from_config(cfg)
    configure_codec(cfg, codec)
    if cfg.MODEL.PRETRAINED and cfg.MODEL.INIT_WEIGHTS:
        load_pretrained(cfg, model)
    model.to(info.device)

    from posekit.data import TopDownDataset

    records = load_records(cfg, "train", skeleton)
    if not records:
        raise ConfigError(f"no training people found in {cfg.DATASET.TRAIN_ANN or cfg.DATASET.ROOT}")
    train_ds = TopDownDataset(records, codec, skeleton, augment=augment_config(cfg), train=True, seed=t.SEED,
                              joint_weights=cfg.LOSS.USE_DIFFERENT_JOINTS_WEIGHT)
    val_ds = make_test_dataset(cfg, codec, skeleton, "gt") if (t.VAL_EVERY > 0 and info.main) else None
    sampler = ResumableSampler(train_ds, num_replicas=info.world_size, rank=info.rank, shuffle=t.SHUFFLE,
                               seed=t.SEED)
    steps_per_epoch = math.ceil(sampler.num_samples / t.BATCH_SIZE_PER_GPU)

    if t.SYNC_BN and info.distributed and info.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer)
    use_amp = bool(t.AMP and info.device.type == "cuda")
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    criterion = build_criterion(cfg, codec)

    epoch, skip, iteration, best = t.BEGIN_EPOCH, 0, 0, None
    if t.BEGIN_EPOCH:  # the schedule starts at BEGIN_EPOCH: the LR of that epoch, counting from it
        for group in optimizer.param_groups:
            group["lr"] = t.LR * t.LR_FACTOR ** sum(m <= t.BEGIN_EPOCH for m in t.LR_STEP)
        scheduler.last_epoch = t.BEGIN_EPOCH
    ckpt_path = Path(t.CHECKPOINT) if t.CHECKPOINT else out / "checkpoint.pth"
    if resume or t.RESUME or (cfg.AUTO_RESUME and ckpt_path.is_file()):
        state = ckpt.load_training_checkpoint(ckpt_path)
        _same_model(state["config"], cfg, ckpt_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        ckpt.restore_scheduler(scheduler, state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        epoch, skip, iteration = state["epoch"], state["epoch_iteration"], state["iteration"]
        best = state["best_metric"]
        ckpt.set_rng_state(state["rng"])
    net = model
    if info.distributed:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[info.local_rank] if info.device.type == "cuda" else None)

    writer = _tensorboard(out / "tb") if info.main else None
    log = open(out / "log.jsonl", "a") if info.main else None  # noqa: SIM115 - closed in finally
    metric_name = primary_metric(cfg)
    history: list[dict[str, Any]] = []
    start_time = time.monotonic()
    stop_reason = "completed"

    def save(epoch_: int, epoch_iteration: int) -> None:
        if info.main:
            ckpt.save_training_checkpoint(out / "checkpoint.pth", model=net, optimizer=optimizer, scheduler=scheduler,
                                          epoch=epoch_, iteration=iteration, epoch_iteration=epoch_iteration,
                                          best_metric=best, config_yaml=config_to_yaml(cfg), scaler=scaler,
                                          extra={"metric": metric_name})

    def record(entry: dict[str, Any]) -> None:
        if log is not None:
            log.write(json.dumps(entry) + "\n")
            log.flush()

    try:
        with _StopFlag() as flag:
            while epoch < t.END_EPOCH:
                sampler.set_epoch(epoch)
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
                step = skip
                try:
                    for step, (crops, target, weight, meta) in enumerate(loader, start=skip):
                        crops = crops.to(info.device, non_blocking=True)
                        if not cfg.DATASET.COLOR_RGB:
                            crops = rgb_to_official_bgr(crops)
                        target = target.to(info.device, non_blocking=True)
                        weight = weight.to(info.device, non_blocking=True)
                        with torch.autocast(info.device.type, enabled=use_amp):
                            outputs = model(crops)
                            loss = compute_loss(criterion, outputs, target, weight)
                        if not _all_finite(loss, info):
                            raise TrainingError(
                                f"non-finite loss ({float(loss.detach()):.4g}) at epoch {epoch} step {step} (iteration "
                                f"{iteration + 1}); the last good checkpoint is {out / 'checkpoint.pth'} - lower "
                                "TRAIN.LR, check the data, or turn TRAIN.AMP off")
                        optimizer_step(loss, model, optimizer, scaler, t.CLIP_MAX_NORM)
                        iteration += 1
                        log_now = iteration == 1 or iteration % max(1, cfg.PRINT_FREQ) == 0
                        acc = heatmap_accuracy(main_output(outputs), target, codec.num_keypoints) if (
                            log_now or bar is not None) else None
                        stats.add(float(loss.detach()), acc, len(crops))
                        if log_now:
                            entry = {"iteration": iteration, "epoch": epoch, "step": step,
                                     "loss": _reduce_mean(loss.detach(), info), "acc": acc,
                                     "lr": optimizer.param_groups[0]["lr"], "world_size": info.world_size}
                            record(entry)
                            _add_scalars(writer, "train", {k: entry[k] for k in ("loss", "acc", "lr")}, iteration)
                            if cfg.DEBUG.DEBUG and info.main:
                                from posekit.engine.debug import save_debug_images

                                save_debug_images(cfg, out / "debug", f"train_e{epoch}_i{iteration}", crops, target,
                                                  main_output(outputs), meta, codec, skeleton)
                        if bar is not None:
                            bar.update(1)
                            bar.set_postfix(loss=f"{stats.last_loss:.3g}", acc="-" if acc is None else f"{acc:.3f}",
                                            img_s=f"{stats.images_per_s * info.world_size:.1f}")
                        stop_reason = _stop_reason(cfg, iteration, start_time, flag.stop, info)
                        if stop_reason != "completed":
                            break
                finally:
                    if bar is not None:
                        bar.close()
                if stop_reason != "completed":
                    save(epoch, step + 1)  # mid-epoch checkpoint: --resume continues at the next step
                    break

                summary = stats.summary(epoch, iteration, optimizer.param_groups[0]["lr"])
                scheduler.step()
                epoch, skip = epoch + 1, 0
                if val_ds is not None and (epoch % t.VAL_EVERY == 0 or epoch == t.END_EPOCH):
                    metrics, _ = _validate(cfg, net, val_ds, codec, skeleton, info)
                    summary["metrics"] = metrics
                    value = metrics.get(metric_name)
                    if value is not None and (best is None or value > best):
                        best = float(value)
                        ckpt.atomic_save(net.state_dict(), out / "model_best.pth")
                        summary["best"] = True
                    _add_scalars(writer, "val", metrics, epoch)
                if info.distributed:
                    dist.barrier()  # ranks > 0 wait for rank 0's validation
                save(epoch, 0)
                record({"epoch_end": summary})
                history.append(summary)
                if on_epoch is not None and info.main:
                    on_epoch(summary)
        if stop_reason == "completed" and info.main:
            ckpt.atomic_save(net.state_dict(), out / "final_state.pth")
    finally:
        if writer is not None:
            writer.close()
        if log is not None:
            log.close()
        if info.distributed and dist.is_initialized():
            dist.destroy_process_group()
    return {
        "stop_reason": stop_reason,
        "epoch": epoch,
        "iteration": iteration,
        "best_metric": best,
        "metric": metric_name,
        "history": history,
        "checkpoint": str(out / "checkpoint.pth"),
        "best_weights": str(out / "model_best.pth") if (out / "model_best.pth").exists() else None,
        "final_weights": str(out / "final_state.pth") if (out / "final_state.pth").exists() else None,
        "rank": info.rank,
        "world_size": info.world_size,
    }


def _all_finite(loss: torch.Tensor, info: DistInfo) -> bool:
    """Whether the loss is finite on every rank (so all ranks stop together)."""
    ok = torch.isfinite(loss.detach()).all().to(torch.int32).reshape(1)
    if info.distributed:
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item())


def _stop_reason(cfg: Config, iteration: int, start_time: float, interrupted: bool, info: DistInfo) -> str:
    """'completed' to go on, else why to stop now (agreed by all ranks under DDP)."""
    t = cfg.TRAIN
    reason = 0
    if t.MAX_ITERS and iteration >= t.MAX_ITERS:
        reason = 1
    elif t.MAX_MINUTES and time.monotonic() - start_time >= 60.0 * t.MAX_MINUTES:
        reason = 2
    elif interrupted:
        reason = 3
    if info.distributed:
        flag = torch.tensor([reason], device=info.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        reason = int(flag.item())
    return ("completed", "max_iters", "max_minutes", "interrupted")[reason]


def _validate(cfg: Config, net: nn.Module, val_ds: Any, codec: Any, skeleton: Any,
              info: DistInfo) -> tuple[dict[str, float], list[dict]]:
    preds = predict(net, val_ds, codec, flip_test=cfg.TEST.FLIP_TEST, flip_index=skeleton.flip_index,
                    batch_size=cfg.TEST.BATCH_SIZE_PER_GPU, workers=cfg.WORKERS, device=info.device,
                    color_rgb=cfg.DATASET.COLOR_RGB)
    return score(cfg, preds, skeleton)


def spec_summary(cfg: Config) -> dict[str, Any]:
    """What a config trains, for the CLI header."""
    s = model_spec(cfg)
    return {"model": s.name, "input_size": list(s.input_size), "heatmap_size": list(s.heatmap_size),
            "codec": s.codec, "skeleton": s.skeleton, "num_joints": s.num_joints}


