"""Region JPEG decoding: the decoded pixels are OpenCV's full-decode pixels, and crops cut from a region decode are
bit-identical to crops cut from the whole image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from posekit import codecs, geometry, skeletons
from posekit.bench.pipeline import synthetic_records
from posekit.data import jpeg
from posekit.data.augment import AugmentConfig
from posekit.data.coco import load_coco
from posekit.data.images import ImageReader
from posekit.data.topdown import TopDownDataset

needs_turbojpeg = pytest.mark.skipif(not jpeg.available(), reason="needs libturbojpeg 3: pip install posekit[fast]")

_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}


def _photo(w: int, h: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 0.7 + yy * 0.3) % 255, (xx * 0.2 + yy * 0.9) % 255, (xx + yy) % 255], -1)
    img = img + rng.normal(0, 20, img.shape)
    for _ in range(40):
        cv2.circle(img, tuple(int(v) for v in rng.integers(0, (w, h))), int(rng.integers(4, 40)),
                   tuple(float(v) for v in rng.integers(0, 255, 3)), -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def _jpegs() -> dict[str, np.ndarray]:
    img = _photo(333, 251, 0)  # sizes that are not multiples of the block grid
    out = {}
    for name, params in {"420": [], "422": [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422],
                         "444": [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444],
                         "progressive": [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]}.items():
        out[name] = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92] + params)[1].reshape(-1)
    out["grey"] = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))[1].reshape(-1)
    return out


@needs_turbojpeg
@pytest.mark.parametrize("kind", ["420", "422", "444", "progressive", "grey"])
def test_region_pixels_are_the_full_decode(kind):
    data = _jpegs()[kind]
    rng = np.random.default_rng(1)
    for factor in (1, 2, 4, 8):
        full = cv2.imdecode(data, _REDUCED[factor])
        h, w = full.shape[:2]
        for _ in range(40):
            x0, y0 = int(rng.integers(-10, w)), int(rng.integers(-10, h))
            box = (x0, y0, x0 + int(rng.integers(11, w)), y0 + int(rng.integers(11, h)))
            img, (rx0, ry0, rx1, ry1) = jpeg.decode_region(data, box, factor)
            assert img.shape == (h, w, 4)
            assert (rx0, ry0, rx1, ry1) == (max(box[0], 0), max(box[1], 0), min(box[2], w), min(box[3], h))
            inside = np.zeros((h, w), bool)
            inside[ry0:ry1, rx0:rx1] = True
            np.testing.assert_array_equal(img[inside][:, :3], full[inside], err_msg=f"{kind} x{factor} {box}")
            assert (img[inside][:, 3] == 255).all() and not img[~inside].any()
        bgr, _ = jpeg.decode_region(data, (0, 0, w, h), factor, alpha=False)
        np.testing.assert_array_equal(bgr, full)


@needs_turbojpeg
def test_region_into_scratch_buffer():
    data = _jpegs()["420"]
    full = cv2.imdecode(data, cv2.IMREAD_COLOR)
    scratch = np.full(333 * 251 * 4 + 100, 7, np.uint8)
    img, box = jpeg.decode_region(data, (40, 30, 200, 120), scratch=scratch)
    assert np.shares_memory(img, scratch) and box == (40, 30, 200, 120)
    np.testing.assert_array_equal(img[30:120, 40:200, :3], full[30:120, 40:200])
    assert (img[:30] == 7).all()  # outside the box: left as it was
    with pytest.raises(ValueError, match="scratch"):
        jpeg.decode_region(data, (0, 0, 8, 8), scratch=np.empty(100, np.uint8))


@needs_turbojpeg
def test_region_refuses_what_it_cannot_decode_exactly():
    png = cv2.imencode(".png", _photo(64, 48, 2))[1].reshape(-1)
    assert jpeg.decode_region(png, (0, 0, 10, 10)) is None
    data = _jpegs()["420"].copy()
    data[len(data) // 2: len(data) // 2 + 400] = 0x55  # damaged entropy-coded data: libjpeg warns
    assert jpeg.decode_region(data, (0, 0, 333, 251)) is None
    assert jpeg.decode_region(_jpegs()["420"], (0, 0, 10, 10), factor=3) is None


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("POSEKIT_TURBOJPEG", "off")
    assert jpeg._load() is None
    monkeypatch.setenv("POSEKIT_TURBOJPEG", "/nonexistent/libturbojpeg.so")
    assert jpeg._load() is None


def test_source_box_holds_every_pixel_a_warp_reads():
    """A bilinear warp of an image zeroed outside source_box equals the warp of the whole image."""
    rng = np.random.default_rng(3)
    img = cv2.cvtColor(_photo(320, 240, 4), cv2.COLOR_BGR2BGRA)
    for _ in range(60):
        center = rng.uniform((-40, -40), (360, 280))
        size = rng.uniform(10, 400, 2)
        m = geometry.affine_matrix(center, size, float(rng.uniform(-90, 90)), (48, 64))
        x0, y0, x1, y1 = jpeg.source_box(m, (48, 64))
        masked = np.zeros_like(img)
        masked[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = img[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)]
        np.testing.assert_array_equal(cv2.warpAffine(masked, m, (48, 64)), cv2.warpAffine(img, m, (48, 64)))


def _dataset_pairs(records, skeleton):
    codec = codecs.build("msra", input_size=(192, 256), heatmap_size=(48, 64), num_keypoints=17)
    region = TopDownDataset(records, codec, skeleton, AugmentConfig(), cache_size=0)
    whole = TopDownDataset(records, codec, skeleton, AugmentConfig(), cache_size=0, region_decoding=False)
    for epoch in range(3):
        region.set_epoch(epoch)
        whole.set_epoch(epoch)
        for i in range(len(records)):
            a, b = region.sample(i), whole.sample(i)
            np.testing.assert_array_equal(a.crop, b.crop, err_msg=f"epoch {epoch} sample {i}")
            np.testing.assert_array_equal(a.encoded["target"], b.encoded["target"])
            np.testing.assert_array_equal(a.matrix, b.matrix)
    assert region.reader.regions == region.reader.misses == 3 * len(records) and whole.reader.regions == 0


@needs_turbojpeg
def test_dataset_crops_bit_identical_generated(tmp_path):
    _dataset_pairs(synthetic_records(tmp_path, num_images=6), skeletons.get("coco"))


@needs_turbojpeg
def test_dataset_crops_bit_identical_coco(data_dir):
    root = data_dir / "coco/coco_mini_obmutescence"
    records, skeleton = load_coco(root / "person_keypoints_val2017.json", root / "val2017")
    _dataset_pairs(records, skeleton)


@needs_turbojpeg
def test_reader_regions_only_when_the_cache_is_full(tmp_path):
    records = synthetic_records(tmp_path, num_images=3)
    paths = sorted({r.image_path for r in records})
    reader = ImageReader(cache_size=2)
    m = geometry.affine_matrix((100.0, 100.0), (60.0, 80.0), 0.0, (48, 64))
    for p in paths:
        reader.read(p, 1, crop=(m, (48, 64)))
    assert (reader.misses, reader.regions) == (3, 1)  # two whole images fill the cache, then a region
    assert reader.read(paths[0], 1, crop=(m, (48, 64)))[0][0, 0, 3] == 255  # cached whole image
    img, factor, size = reader.read(paths[2], 1, crop=(m, (48, 64)))
    assert reader.regions == 2 and factor == 1 and size == (640, 480)
    x0, y0, x1, y1 = jpeg.source_box(m, (48, 64))
    whole = cv2.imread(paths[2])
    np.testing.assert_array_equal(img[y0:y1, x0:x1, :3], whole[y0:y1, x0:x1])  # valid inside the crop's source
    np.testing.assert_array_equal(cv2.warpAffine(img, m, (48, 64))[..., :3], cv2.warpAffine(whole, m, (48, 64)))


def test_reader_without_the_library_decodes_whole_images(monkeypatch, tmp_path):
    monkeypatch.setattr(jpeg, "_LIB", None)
    monkeypatch.setattr(jpeg, "_LOADED", True)
    path = synthetic_records(tmp_path, num_images=1)[0].image_path
    reader = ImageReader(cache_size=0)
    m = geometry.affine_matrix((100.0, 100.0), (60.0, 80.0), 0.0, (48, 64))
    img, _, _ = reader.read(path, 1, crop=(m, (48, 64)))
    assert reader.regions == 0 and (img[..., 3] == 255).all()


def test_size_of_a_png_decodes_it_once(tmp_path):
    path = str(tmp_path / "a.png")
    cv2.imwrite(path, _photo(90, 70, 5))
    reader = ImageReader(cache_size=0)
    assert reader.size(path) == (90, 70)
    img, factor, size = reader.read(path, 4, crop=(np.eye(3)[:2], (8, 8)))
    assert reader.misses == 1 and factor == 1 and size == (90, 70) and img.shape == (70, 90, 4)
    reader.read(path, 1)
    assert reader.misses == 2


def test_region_decoding_defaults_to_training(tmp_path):
    records = synthetic_records(tmp_path, num_images=1)
    codec = codecs.build("msra", input_size=(192, 256), heatmap_size=(48, 64), num_keypoints=17)
    sk = skeletons.get("coco")
    assert TopDownDataset(records, codec, sk, AugmentConfig()).reader.region_decoding
    # evaluation reads the boxes of an image in a row: whole images from the cache
    assert not TopDownDataset(records, codec, sk, None, train=False).reader.region_decoding
    assert TopDownDataset(records, codec, sk, None, train=False, region_decoding=True).reader.region_decoding
