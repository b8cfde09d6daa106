"""Whole-image bottom-up inference: input convention (NHWC RGB/255 for official checkpoints), people, boxes."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from posekit.codecs import associative_embedding as ae
from posekit.models.hourglass import AEPoseNet
from posekit.runtime import Pose, bottomup
from posekit.skeletons import COCO17


class Spy(nn.Module):
    """Records its inputs; outputs the ideal maps of two people placed in input px (official [N, S, C, h, w])."""

    def __init__(self, layout: str, maps: np.ndarray) -> None:
        super().__init__()
        self.input_layout = layout
        self.w = nn.Parameter(torch.zeros(1))
        self.maps = torch.from_numpy(maps)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        return self.maps[None, None].repeat(len(x), 2, 1, 1, 1)


def _people(codec: ae.AssociativeEmbeddingCodec) -> np.ndarray:
    rng = np.random.default_rng(0)
    kp = np.zeros((2, 17, 3))
    kp[0, :, :2] = rng.integers(10, 100, (17, 2)) * 4 + 2
    kp[1, :, :2] = rng.integers(140, 240, (17, 2)) * 4 + 2
    kp[:, :, 2] = 2
    return kp


def test_official_input_convention_and_people_in_image_px():
    codec = ae.AssociativeEmbeddingCodec(input_size=(1024, 1024), heatmap_size=(256, 256), sigma=2.0, refine=False)
    image = np.random.default_rng(1).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    kp_in = _people(codec)  # input px of the 1024 input = 2 x image px (the image is square)
    spy = Spy("NHWC", codec.perfect_outputs(kp_in))
    poses = bottomup.estimate_bottomup(spy, codec, image, flip_index=COCO17.flip_index, flip=False)
    x = spy.seen[0]
    assert x.shape == (1, 1024, 1024, 3)  # NHWC, as the official PoseNet
    warped, _, _ = bottomup.warp_for_scale(image, 1.0, 1024)
    np.testing.assert_allclose(x[0].numpy(), warped.astype(np.float32) / 255)  # RGB / 255, no mean/std
    assert len(poses) == 2 and all(isinstance(p, Pose) for p in poses)
    got = sorted(poses, key=lambda p: p.keypoints[0, 0])
    for p, want in zip(got, kp_in):
        # input 4m + 2 -> map m + 0.5 -> peak at m -> adjust (tie) m + 0.25 -> input 4m + 1 -> image (4m + 1) / 2
        np.testing.assert_allclose(p.keypoints[:, :2], (want[:, :2] - 1) / 2, atol=1e-4)
        assert p.score == 1.0
    coco = bottomup.people_to_coco(poses, image_id=7)
    assert len(coco) == 2 and coco[0]["image_id"] == 7 and len(coco[0]["keypoints"]) == 51
    boxes, scores = bottomup.people_boxes(poses, image_size=(512, 512))
    assert boxes.shape == (2, 4) and (boxes[:, 2:] > 0).all() and (scores == 1).all()


def test_imagenet_option_and_nchw_models():
    codec = ae.AssociativeEmbeddingCodec(input_size=(256, 256), heatmap_size=(64, 64), sigma=1.0,
                                         normalize="imagenet")
    image = np.full((100, 80, 3), 128, dtype=np.uint8)
    spy = Spy("NCHW", np.zeros((34, 64, 64), np.float32))
    assert bottomup.estimate_bottomup(spy, codec, image, flip_index=COCO17.flip_index) == []
    x = spy.seen[0]
    assert x.shape == (2, 3, 256, 256)  # original + mirrored input in one batch
    centre = x[0, :, 128, 128].numpy()
    np.testing.assert_allclose(centre, (128 / 255 - bottomup.IMAGENET_MEAN) / bottomup.IMAGENET_STD, rtol=1e-5)


def test_real_hourglass_runs_end_to_end():
    model = AEPoseNet(nstack=1, inp_dim=8, oup_dim=34, increase=4, inner_increase=4, stem_dims=(8, 8),
                      input_layout="NHWC").eval()
    codec = ae.AssociativeEmbeddingCodec(input_size=(128, 128), heatmap_size=(32, 32), sigma=1.0)
    image = np.random.default_rng(2).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    poses = bottomup.estimate_bottomup(model, codec, image, flip_index=COCO17.flip_index,
                                       scales=ae.OFFICIAL_SCALES)
    assert isinstance(poses, list)


def test_pose_ae_train_checkpoint_layout_loads_strictly(tmp_path):
    """pose-ae-train saves {'state_dict': Trainer(DataParallel(PoseNet)).state_dict(), 'optimizer', 'epoch'}:
    keys 'model.module.<PoseNet key>'; they load strictly into the NHWC network."""
    from posekit.models.weights import load_checkpoint

    src = AEPoseNet(nstack=1, inp_dim=8, oup_dim=34, increase=4, inner_increase=4, stem_dims=(8, 8))
    state = {f"model.module.{k}": v for k, v in src.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 3, "optimizer": {"state": {}, "param_groups": []}}, tmp_path / "c.tar")
    dst = AEPoseNet(nstack=1, inp_dim=8, oup_dim=34, increase=4, inner_increase=4, stem_dims=(8, 8))
    report = load_checkpoint(dst, tmp_path / "c.tar", strict=True)
    assert report.ok and any("model.module." in n for n in report.notes)
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))


def _person(x0: float, y0: float, x1: float, y1: float, score: float) -> Pose:
    kp = np.zeros((17, 3), np.float32)
    kp[0] = (x0, y0, 0.9)
    kp[16] = (x1, y1, 0.9)
    kp[5] = ((x0 + x1) / 2, (y0 + y1) / 2, 0.9)
    return Pose(keypoints=kp, box=np.array([x0, y0, x1 - x0, y1 - y0]), score=score)


def test_people_boxes_keep_one_box_per_person():
    """Score floor drops a fragment, IoU suppression a duplicate; two overlapping people (IoU 0.25) both stay."""
    standing = _person(10, 10, 50, 110, 0.8)  # pad 0: box 40 x 100
    twice = _person(12, 14, 50, 110, 0.6)  # IoU with standing = 38*96 / 4000 = 0.912 -> suppressed
    crouching = _person(30, 60, 80, 110, 0.7)  # 50 x 50; overlap 20 x 50 = 1000; IoU 1000 / 5500 = 0.18
    fragment = _person(60, 20, 70, 30, 0.05)  # below the 0.1 floor
    boxes, scores = bottomup.people_boxes([twice, fragment, standing, crouching], pad=0.0)
    np.testing.assert_array_equal(scores, [0.8, 0.7])
    np.testing.assert_allclose(boxes, [[10, 10, 40, 100], [30, 60, 50, 50]])
    everything, _ = bottomup.people_boxes([twice, fragment, standing, crouching], pad=0.0, min_score=0.0, iou=1.0)
    assert len(everything) == 4
    assert bottomup.suppress_duplicates(np.zeros((0, 4)), np.zeros(0)).tolist() == []
