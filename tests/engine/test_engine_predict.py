"""predict / score: an oracle network (perfect codec outputs) must give back the ground truth and AP ~ 1."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_coco import micro_config_dict
from torch import nn

from posekit import skeletons
from posekit.config import config_from_dict
from posekit.data.topdown import IMAGENET_MEAN, IMAGENET_STD, normalize_crop
from posekit.engine.build import build_codec_from_config, model_spec
from posekit.engine.datasets import data_paths, load_records, make_test_dataset, resolve_boxes
from posekit.engine.predict import Predictions, predict, rgb_to_official_bgr, score
from posekit.evaluation.coco import coco_keypoints
from posekit.skeletons import COCO17


class Oracle(nn.Module):
    """Returns the codec's ideal output for each dataset item in order; for the flipped crop, its mirror."""

    def __init__(self, outputs: np.ndarray, codec, flip_index) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.outputs = torch.from_numpy(outputs)
        self.codec, self.flip_index = codec, flip_index
        self.pos = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """A batch is [crops; mirrored crops] (the flip test runs in the same batch): ideal outputs for both."""
        n = x.shape[0] // 2
        out = self.outputs[self.pos:self.pos + n]
        self.pos += n
        return torch.cat([out, torch.as_tensor(self.codec.flip_back(out, self.flip_index))])


@pytest.mark.parametrize("codec_name", ["msra", "dark", "udp", "grmi_offset"])
def test_oracle_predictions_recover_ground_truth(tiny_data, codec_name):
    raw = micro_config_dict(tiny_data, MODEL={"IMAGE_SIZE": [192, 256], "HEATMAP_SIZE": [48, 64], "SIGMA": 2,
                                              "CODEC": codec_name},
                            TEST={"SHIFT_HEATMAP": False})
    cfg = config_from_dict(raw)
    codec = build_codec_from_config(cfg)
    ds = make_test_dataset(cfg, codec, COCO17, resolve_boxes(cfg))
    ideal = np.stack([codec.perfect_outputs(ds.sample(i).joints_crop) for i in range(len(ds))])
    model = Oracle(ideal, codec, COCO17.flip_index)
    preds = predict(model, ds, codec, flip_test=True, batch_size=4)
    assert model.pos == len(ds)  # every crop went through the flip branch too
    gt = np.stack([r.keypoints for r in ds.records])
    vis = gt[:, :, 2] > 0
    err = np.linalg.norm(preds.keypoints[:, :, :2] - gt[:, :, :2], axis=2)[vis]
    # heatmap quantisation bound: half a heatmap pixel per axis, times box size / input size (~0.5 here)
    assert err.max() < 1.5, err.max()
    np.testing.assert_array_equal(preds.image_ids, [r.image_id for r in ds.records])
    metrics, results = score(cfg, preds, COCO17)
    assert metrics["AP .5"] == pytest.approx(1.0) and metrics["AP"] > 0.9
    # the results list alone gives the same numbers through pycocotools
    again = coco_keypoints(data_paths(cfg).test_gt, results)
    assert again == metrics
    assert model_spec(cfg).codec == codec_name


def test_rgb_to_official_bgr_matches_the_official_normalisation():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    x = torch.from_numpy(normalize_crop(rgb, bgr=False))[None]
    got = rgb_to_official_bgr(x)[0].numpy()
    bgr = rgb[..., ::-1].astype(np.float64) / 255.0  # official: cv2 BGR image, RGB-ordered mean/std
    want = ((bgr - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)).transpose(2, 0, 1)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_boxes_resolution_order(tiny_data):
    cfg = config_from_dict(micro_config_dict(tiny_data))
    assert resolve_boxes(cfg) == "gt" and resolve_boxes(cfg, "d.json") == "d.json"
    cfg.TEST.USE_GT_BBOX, cfg.TEST.COCO_BBOX_FILE = False, "dets.json"
    assert resolve_boxes(cfg) == "dets.json"
    cfg.TEST.BOXES = "gt"
    assert resolve_boxes(cfg) == "gt"


def _mpii_cfg(data_dir):
    ann = data_dir / "mpii" / "derived_hrnet_format" / "valid.json"
    return config_from_dict({"MODEL": {"ZOO": "hrnet_w32_256x256_mpii"},
                             "DATASET": {"DATASET": "mpii", "TEST_SET": "valid", "TEST_ANN": str(ann),
                                         "TEST_IMAGES": str(data_dir / "mpii" / "images")}})


def _predictions(keypoints: np.ndarray, records) -> Predictions:
    n = len(records)
    return Predictions(keypoints=keypoints.astype(np.float32), image_ids=np.array([r.image_id for r in records]),
                       box_scores=np.ones(n), centers=np.stack([r.center for r in records]),
                       sizes=np.stack([r.size for r in records]), ann_ids=np.arange(n))


def test_mpii_scoring_reproduces_the_reference_pckh(data_dir):
    from scipy.io import loadmat

    cfg = _mpii_cfg(data_dir)
    records = load_records(cfg, "test", skeletons.MPII16)
    assert len(records) == 2958
    gt = np.stack([r.keypoints for r in records])
    metrics, _ = score(cfg, _predictions(gt, records), skeletons.MPII16)
    assert metrics["Mean"] > 99.9  # valid.json joints vs gt_valid.mat: a few differ by more than the threshold
    # Tompson et al. predictions (1-based [16,2,N]) -> 0-based [N,16,2]; reference PCKh from data/INDEX.md
    mat = loadmat(data_dir / "mpii" / "tompson_valid_bearpaw" / "detections_our_format.mat")
    pred = mat["pos_pred_src"].transpose(2, 0, 1) - 1.0
    kpts = np.concatenate([pred, np.ones(pred.shape[:2] + (1,))], axis=2)
    metrics, _ = score(cfg, _predictions(kpts, records), skeletons.MPII16)
    ref = {"Head": 95.6003, "Shoulder": 92.714, "Elbow": 83.3646, "Wrist": 76.7357, "Hip": 81.9283,
           "Knee": 73.3628, "Ankle": 65.4462, "Mean": 82.3367}
    for k, v in ref.items():
        assert metrics[k] == pytest.approx(v, abs=1e-3), k


def test_detection_boxes_are_loaded_and_thresholded(tiny_data, tmp_path):
    cfg = config_from_dict(micro_config_dict(tiny_data, TEST={"IMAGE_THRE": 0.1}))
    gt = json.loads(tiny_data["val_ann"].read_text())
    dets = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9 if i % 2 else 0.05}
            for i, a in enumerate(gt["annotations"])]
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(dets))
    records = load_records(cfg, "test", COCO17, boxes=str(path))
    assert len(records) == sum(d["score"] >= 0.1 for d in dets)
    assert all(r.score == pytest.approx(0.9) and not r.keypoints.any() for r in records)


def test_oracle_on_real_coco_images_scores_near_one(data_dir):
    """Real val2017 people (crowd, truncated, unlabelled joints): ideal heatmaps give AP ~ 1 through the pipeline."""
    root = data_dir / "coco" / "coco_mini_obmutescence"
    cfg = config_from_dict({"MODEL": {"ZOO": "hrnet_w32_256x192"},
                            "DATASET": {"TEST_ANN": str(root / "person_keypoints_val2017.json"),
                                        "TEST_IMAGES": str(root / "val2017")},
                            "TEST": {"SHIFT_HEATMAP": False, "OKS_THRE": 0.9, "IN_VIS_THRE": 0.2}})
    codec = build_codec_from_config(cfg)
    ds = make_test_dataset(cfg, codec, COCO17, "gt")
    assert len(ds) == 68
    ideal = np.stack([codec.perfect_outputs(ds.sample(i).joints_crop) for i in range(len(ds))])
    preds = predict(Oracle(ideal, codec, COCO17.flip_index), ds, codec, batch_size=16)
    metrics, results = score(cfg, preds, COCO17)
    assert metrics["AP .5"] == pytest.approx(1.0) and metrics["AP"] > 0.97
    assert {r["image_id"] for r in results} == {r.image_id for r in ds.records}
