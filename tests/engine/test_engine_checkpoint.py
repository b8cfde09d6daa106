"""Checkpoint writes: a failed write (disk full) is a clear CheckpointError, the previous checkpoint survives intact
and no temporary file is left behind."""

from __future__ import annotations

import errno

import pytest
import torch

from posekit.engine import checkpoint as ckpt
from posekit.engine.train import fit
from posekit.errors import CheckpointError


def _full_disk_after(nbytes: int, kind: type = OSError):
    """A torch.save that writes `nbytes` and then fails as a full disk does."""

    def save(obj, f, *args, **kwargs):
        f.write(b"x" * nbytes)
        if kind is OSError:
            raise OSError(errno.ENOSPC, "No space left on device")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    return save


@pytest.mark.parametrize("kind", [OSError, RuntimeError])
def test_disk_full_keeps_the_previous_file_and_says_so(tmp_path, monkeypatch, kind):
    path = tmp_path / "checkpoint.pth"
    ckpt.atomic_save({"step": 1, "w": torch.arange(4)}, path)
    before = path.read_bytes()
    monkeypatch.setattr(torch, "save", _full_disk_after(1000, kind))
    with pytest.raises(CheckpointError, match=r"cannot write .*checkpoint.pth: .*previous checkpoint.pth there is "
                                              r"unchanged") as e:
        ckpt.atomic_save({"step": 2}, path)
    if kind is OSError:
        assert "disk full" in str(e.value)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["checkpoint.pth"]
    with pytest.raises(CheckpointError, match=r"no weights.pth was written"):
        ckpt.atomic_save({}, tmp_path / "weights.pth")


def test_training_stops_with_the_error_and_a_resumable_checkpoint(micro_cfg, tmp_path, monkeypatch):
    real, calls = torch.save, {"n": 0}

    def save(obj, f, *args, **kwargs):  # the first checkpoint is written, the second hits a full disk
        calls["n"] += 1
        if calls["n"] >= 2:
            return _full_disk_after(10)(obj, f)
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(CheckpointError, match=r"No space left on device \(disk full"):
        fit(micro_cfg(TRAIN={"END_EPOCH": 2, "CHECKPOINT_EVERY_ITERS": 1, "MAX_ITERS": 4}), tmp_path / "run")
    state = ckpt.load_training_checkpoint(tmp_path / "run" / "checkpoint.pth")
    assert state["iteration"] >= 1
