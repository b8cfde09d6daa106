"""3DMPPE L1 coordinate loss on mixed 2-D / 3-D batches: a 2-D-only sample (have_depth 0) contributes no z gradient.

Gradient checks through the real network and data path: the batch is collated from a MixedDataset of a 3-D set and
a 2-D set (COCO records remapped into the 18-joint synthetic skeleton), the loss is the engine's criterion.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

import posekit.models
from posekit.data.body3d import Body3DDataset, Body3DRecord, MixedDataset, collate_body3d, records_from_2d
from posekit.data.records import PoseRecord
from posekit.losses.body3d import Body3DL1Loss, body3d_l1_loss
from posekit.skeletons import get as get_skeleton

SK = get_skeleton("coco_pelvis")
COCO = get_skeleton("coco")


def _batch(tmp_path) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    rng = np.random.default_rng(0)
    path = str(tmp_path / "noise.png")
    cv2.imwrite(path, rng.integers(0, 255, (120, 120, 3), dtype=np.uint8))
    uv = np.stack([rng.uniform(40, 80, 18), rng.uniform(30, 90, 18)], axis=1)
    z = 4000.0 + rng.uniform(-600, 600, 18)
    rec3 = Body3DRecord(image_path=path, image_id=1, bbox=np.array([20.0, 10.0, 80.0, 100.0]),
                        joints_img=np.column_stack([uv, z]), joints_vis=np.ones(18, np.float32),
                        root_cam=np.array([0.0, 0.0, z[17]]), image_size=(120, 120))
    kp = np.zeros((17, 3), np.float32)
    kp[:, :2], kp[:, 2] = uv[:17], 2
    pr = PoseRecord(image_path=path, image_id=2, center=np.array([60.0, 60.0]), size=np.array([80.0, 100.0]),
                    keypoints=kp, box=np.array([20.0, 10.0, 80.0, 100.0]), image_size=(120, 120))
    rec2 = records_from_2d([pr], COCO.keypoints, SK.keypoints, aspect_ratio=2 / 3)[0]
    ds = [Body3DDataset([r], SK.flip_pairs, input_size=(64, 96), output_size=(16, 24), depth_dim=8, train=False)
          for r in (rec3, rec2)]
    images, targets, _ = collate_body3d([MixedDataset(ds)[i] for i in range(2)])
    return images, targets


def _grads(model: torch.nn.Module, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> tuple:
    model.zero_grad()
    coord = model(images)
    coord.retain_grad()
    loss, _ = Body3DL1Loss()(coord, targets)
    loss.backward()
    return coord.grad.clone(), [p.grad.clone() for p in model.parameters()]


def test_two_d_sample_gives_no_z_gradient(tmp_path):
    images, targets = _batch(tmp_path)
    assert targets["have_depth"].flatten().tolist() == [1.0, 0.0]
    vis2 = targets["vis"][1, :, 0]
    assert vis2[:17].sum() > 0 and vis2[17] == 0  # COCO has no pelvis: absent joint, visibility 0
    torch.manual_seed(0)
    model = posekit.models.build("posenet3d_hrnet_w16_tiny_128x96", depth_dim=8).train()
    g_coord, g_params = _grads(model, images, targets)
    assert torch.all(g_coord[1, :, 2] == 0)  # the 2-D sample's z receives exactly nothing ...
    assert torch.all(g_coord[1, vis2 > 0, :2] != 0)  # ... while its visible x, y are trained
    vis3 = targets["vis"][0, :, 0]
    assert vis3.sum() >= 12 and torch.all(g_coord[0, vis3 > 0, 2] != 0)  # the 3-D sample's z is trained
    # Whatever the 2-D sample's z target says, every network gradient is bit-identical.
    moved = {k: v.clone() for k, v in targets.items()}
    moved["coord"][1, :, 2] = torch.linspace(0, 7, 18)
    g_coord2, g_params2 = _grads(model, images, moved)
    assert torch.equal(g_coord, g_coord2)
    assert all(torch.equal(a, b) for a, b in zip(g_params, g_params2, strict=True))


def test_loss_formula_on_a_mixed_batch():
    coord = torch.tensor([[[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]]])
    target = torch.tensor([[[2.0, 4.0, 9.0]], [[2.0, 4.0, 9.0]]])
    per = body3d_l1_loss(coord, target, torch.ones(2, 1), torch.tensor([1.0, 0.0]), reduction="none")
    assert per.tolist() == [[(1 + 2 + 6) / 3], [(1 + 2) / 3]]  # official (|dx| + |dy| + |dz| * have_depth) / 3
