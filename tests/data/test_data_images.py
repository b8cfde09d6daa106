"""Image reading: JPEG header sizes, reduced-decoding geometry, cache behaviour, clear errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from posekit import geometry
from posekit.data.images import ImageReader, jpeg_size, max_reduction, read_image, reduction_matrix
from posekit.errors import DataError


def _coco_images(data_dir, n=None):
    files = sorted((data_dir / "coco/coco_mini_obmutescence/val2017").glob("*.jpg"))
    return files[:n] if n else files


def test_jpeg_size_matches_decoder(data_dir):
    files = _coco_images(data_dir) + sorted((data_dir / "mpi_inf_3dhp/mmpose").glob("*.jpg"))
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        assert jpeg_size(f.read_bytes()) == (img.shape[1], img.shape[0]), f
    png = next((data_dir / "horse10/mmpose").glob("*.png"))
    assert jpeg_size(png.read_bytes()) is None
    assert jpeg_size(b"\xff\xd8\xff") is None


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_reduced_decoding_is_box_average_at_documented_centres(data_dir, factor):
    """A pixel of the 1/r decode is the mean of the r x r block whose centre is reduction_matrix(r) @ (i, j, 1)."""
    flags = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
    for f in _coco_images(data_dir, 3):
        full = cv2.imread(str(f), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION).astype(np.float32)
        reduced = cv2.imread(str(f), flags[factor] | cv2.IMREAD_IGNORE_ORIENTATION).astype(np.float32)
        box = cv2.blur(full, (factor, factor), anchor=(0, 0), borderType=cv2.BORDER_REFLECT)  # mean of [x, x+r-1]
        h, w = reduced.shape[:2]
        errors = []
        for shift in (0.0, -(factor - 1) / 2):  # documented centre, and the naive "r * i" alignment
            m = reduction_matrix(factor)
            xs = m[0, 0] * np.arange(w) + m[0, 2] + shift - (factor - 1) / 2
            ys = m[1, 1] * np.arange(h) + m[1, 2] + shift - (factor - 1) / 2
            mx, my = np.meshgrid(xs.astype(np.float32), ys.astype(np.float32))
            sampled = cv2.remap(box, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            errors.append(float(np.abs(sampled - reduced)[1:-1, 1:-1].mean()))
        assert errors[0] < 0.8 and errors[1] > 2 * errors[0], (f, errors)


def test_reduced_crop_close_to_full_crop(data_dir):
    f = str(_coco_images(data_dir)[0])
    full = ImageReader(reduced_decoding=False)
    reduced = ImageReader(reduced_decoding=True)
    img, r, (w, h) = full.read(f, 4)
    assert r == 1 and img.shape[:2] == (h, w)
    for size, rot in ((400.0, 0.0), (420.0, 30.0), (800.0, -15.0)):
        matrix = geometry.affine_matrix((w / 2, h / 2), (size, size * 4 / 3), rot, (192, 256))
        factor = max_reduction(matrix)
        assert factor == (4 if size == 800 else 2)
        small, r2, full_size = reduced.read(f, factor)
        assert r2 == factor and full_size == (w, h) and small.shape[0] == -(-h // factor)
        a = cv2.warpAffine(img, matrix, (192, 256), flags=cv2.INTER_LINEAR).astype(np.float32)
        b = cv2.warpAffine(small, matrix @ reduction_matrix(factor), (192, 256), flags=cv2.INTER_LINEAR)
        assert np.abs(a - b).mean() < 4.0  # only the anti-aliasing differs (DCT scaling averages blocks)


def test_max_reduction():
    for per_px, expected in ((1.5, 1), (0.6, 1), (0.5, 2), (0.3, 2), (0.25, 4), (0.2, 4), (0.1, 8), (0.01, 8)):
        rot = np.deg2rad(30)
        m = per_px * np.array([[np.cos(rot), -np.sin(rot), 5.0], [np.sin(rot), np.cos(rot), 7.0]])
        assert max_reduction(m) == expected, per_px


def test_cache_and_fallbacks(data_dir):
    files = [str(f) for f in _coco_images(data_dir, 3)]
    reader = ImageReader(cache_size=2)
    a, _, _ = reader.read(files[0])
    b, _, _ = reader.read(files[0])
    assert a is b and reader.hits == 1 and reader.misses == 1
    reader.read(files[0], 2)  # another factor is another entry
    reader.read(files[1])
    reader.read(files[2])
    reader.read(files[0])  # evicted by now (capacity 2)
    assert reader.misses == 5
    png = str(next((data_dir / "horse10/mmpose").glob("*.png")))
    img, factor, size = reader.read(png, 4)  # reduced decoding is for JPEG only
    assert factor == 1 and size == (img.shape[1], img.shape[0])
    rgb = read_image(files[0])
    assert a.shape[2] == 4 and (a[..., 3] == 255).all()  # BGRA: 4-channel warps are faster
    np.testing.assert_array_equal(rgb, a[..., 2::-1])
    assert ImageReader(bgra=False).read(files[0])[0].shape[2] == 3


def test_bgra_warp_equals_bgr_warp(data_dir):
    f = str(_coco_images(data_dir)[1])
    bgra, _, (w, h) = ImageReader().read(f)
    bgr = cv2.imread(f, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    for rot in (0.0, 33.0):
        m = geometry.affine_matrix((w / 3, h / 2), (150.0, 200.0), rot, (192, 256))
        np.testing.assert_array_equal(cv2.warpAffine(bgra, m, (192, 256))[..., :3], cv2.warpAffine(bgr, m, (192, 256)))


def test_bad_images(tmp_path):
    reader = ImageReader()
    with pytest.raises(DataError, match="nothere.jpg: image file not found"):
        reader.read(str(tmp_path / "nothere.jpg"))
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")  # no end-of-image marker: found before decoding
    for factor in (1, 4):
        with pytest.raises(DataError, match="corrupt.jpg: truncated JPEG"):
            reader.read(str(bad), factor)
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff\xe0 complete but not a jpeg \xff\xd9")
    for factor in (1, 4):
        with pytest.raises(DataError, match="garbage.jpg: cannot decode image"):
            reader.read(str(garbage), factor)
    with pytest.raises(DataError, match="corrupt.jpg"):
        read_image(bad)
