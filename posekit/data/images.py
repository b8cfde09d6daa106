"""The one image reader (data pipeline, inference, demo): OpenCV decode, a small LRU cache, reduced-size and region
JPEG decoding.

Every decode first checks the file is complete (`check_complete`): a 0-byte file, a JPEG without its end-of-image
marker after the image data or a PNG without its IEND chunk is a DataError naming the file (OpenCV alone decodes a
truncated JPEG into a partly grey image with only a libjpeg warning on stderr).

Reduced decoding (`cv2.IMREAD_REDUCED_COLOR_{2,4,8}`) lets libjpeg scale the DCT, which is 30-50 % faster on
large photos. Pixel (i, j) of an image reduced by `r` covers the full-size pixels r*i .. r*i + r-1, so its
centre is at full-size coordinate r*i + (r-1)/2; `reduction_matrix(r)` is that map, and an affine matrix M
for the full image becomes M @ reduction_matrix(r) for the reduced one.

Region decoding (`posekit.data.jpeg`, libjpeg-turbo) decodes only the pixels under one training crop when the
cache has no room to gain from a whole image; the crop is bit-identical to one cut from the whole image.
"""

from __future__ import annotations

import os
from collections import OrderedDict

import cv2
import numpy as np

from posekit.data import jpeg
from posekit.errors import DataError

_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
          8: cv2.IMREAD_REDUCED_COLOR_8}
REDUCTIONS = (1, 2, 4, 8)
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(data: bytes | np.ndarray) -> tuple[int, int] | None:
    """(w, h) from a JPEG's frame header (stored orientation), or None if `data` is not a readable JPEG."""
    buf = memoryview(np.asarray(data, dtype=np.uint8).reshape(-1)) if isinstance(data, np.ndarray) else data
    n = len(buf)
    if n < 4 or buf[0] != 0xFF or buf[1] != 0xD8:
        return None
    i = 2
    while i + 3 < n:
        if buf[i] != 0xFF:
            return None
        marker = buf[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = (buf[i + 2] << 8) | buf[i + 3]
        if marker in _SOF:
            if i + 8 >= n:
                return None
            h = (buf[i + 5] << 8) | buf[i + 6]
            w = (buf[i + 7] << 8) | buf[i + 8]
            return (w, h) if w > 0 and h > 0 else None
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        i += 2 + length
    return None


def reduction_matrix(factor: int) -> np.ndarray:
    """[3,3] map from pixel coordinates of an image decoded at 1/factor size to full-size coordinates."""
    off = (factor - 1) / 2.0
    return np.array([[factor, 0.0, off], [0.0, factor, off], [0.0, 0.0, 1.0]], dtype=np.float64)


def max_reduction(matrix: np.ndarray, allowed: tuple[int, ...] = REDUCTIONS) -> int:
    """Largest factor r in `allowed` such that a crop with this image->crop `matrix` samples at most one
    reduced-image pixel per crop pixel (crop pixels per image pixel <= 1/r)."""
    m = np.asarray(matrix, dtype=np.float64)
    per_px = max(float(np.hypot(m[0, 0], m[1, 0])), float(np.hypot(m[0, 1], m[1, 1])))
    best = 1
    for r in allowed:
        if per_px * r <= 1.0 + 1e-9:
            best = max(best, r)
    return best


def _jpeg_scan_start(buf: bytes) -> int:
    """Offset of the first start-of-scan marker of a JPEG (after its header segments), or -1."""
    i, n = 2, len(buf)
    while i + 3 < n:
        if buf[i] != 0xFF:
            return -1
        marker = buf[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker == 0xDA:
            return i
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        i += 2 + ((buf[i + 2] << 8) | buf[i + 3])
    return -1


def check_complete(data: np.ndarray, path: str) -> None:
    """Raise DataError for an empty file or a truncated JPEG / PNG (OpenCV would decode those with a grey fill
    and only a libjpeg warning on stderr). JPEG: an end-of-image marker after the first scan; PNG: an IEND chunk.
    Other formats are left to the decoder."""
    n = int(data.size)
    if n == 0:
        raise DataError(f"{path}: empty (0-byte) image file")
    if n >= 3 and data[0] == 0xFF and data[1] == 0xD8 and data[2] == 0xFF:
        if n >= 4 and data[-2] == 0xFF and data[-1] == 0xD9:
            return  # the usual case: EOI is the last two bytes
        buf = data.tobytes()
        sos = _jpeg_scan_start(buf)
        if sos < 0 or buf.rfind(b"\xff\xd9") < sos:
            raise DataError(f"{path}: truncated JPEG ({n} bytes, no end-of-image marker after the image data)")
    elif n >= 8 and data[:8].tobytes() == b"\x89PNG\r\n\x1a\n":
        if data[-12:].tobytes().find(b"IEND") < 0 and data.tobytes().rfind(b"IEND") < 0:
            raise DataError(f"{path}: truncated PNG ({n} bytes, no IEND chunk)")


def _decode(data: np.ndarray, factor: int, path: str) -> np.ndarray:
    check_complete(data, path)
    flags = _FLAGS[factor] | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        img = cv2.imdecode(data, flags)
    except cv2.error as e:
        raise DataError(f"{path}: cannot decode image ({e})") from None
    if img is None or img.size == 0:
        raise DataError(f"{path}: cannot decode image (missing, truncated or not an image file)")
    return img


def read_file(path: str | os.PathLike) -> np.ndarray:
    """Raw bytes of a file as uint8 array; DataError naming the file when missing or unreadable."""
    try:
        return np.fromfile(os.fspath(path), dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read image file ({e})") from None


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to H x W x 3 uint8 RGB (EXIF orientation ignored, as the official code)."""
    bgr = _decode(read_file(path), 1, str(path))
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class ImageReader:
    """Decodes images as BGR(A) uint8, optionally at 1/2, 1/4, 1/8 size (JPEG only), with an LRU cache.

    Entries are keyed by (path, factor), so a crop's pixels never depend on what else is cached. With `bgra`
    (default) a constant alpha channel is added after decoding: OpenCV warps 4-channel images with SIMD, about
    2.5x faster than 3-channel ones, bit-identical in the colour channels. With `region_decoding` (default; needs
    libjpeg-turbo, see posekit.data.jpeg), a read that names its crop and misses a full cache decodes only that
    crop's source region of a JPEG: the image is then valid only there and only until the next read (it lives in
    one reused buffer, so a region read allocates nothing), and is not cached. A reader is for one thread, as its
    cache is.
    """

    def __init__(self, cache_size: int = 8, reduced_decoding: bool = True, bgra: bool = True,
                 region_decoding: bool = True) -> None:
        self.cache_size = int(cache_size)
        self.reduced_decoding = bool(reduced_decoding)
        self.bgra = bool(bgra)
        self.region_decoding = bool(region_decoding)
        self._cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._sizes: dict[str, tuple[int, int]] = {}
        self._is_jpeg: dict[str, bool] = {}
        self._pending: tuple[str, tuple[np.ndarray, int, tuple[int, int]]] | None = None  # what `size` decoded
        self._scratch = np.empty(0, np.uint8)  # the buffer region reads decode into
        self.hits = 0
        self.misses = 0
        self.regions = 0

    def clear(self) -> None:
        """Drop the cached images and statistics."""
        self._cache.clear()
        self._pending = None
        self.hits = self.misses = self.regions = 0

    def size(self, path: str) -> tuple[int, int]:
        """Full-size (w, h) of an image: from the JPEG header (the file is decoded only if it is not a JPEG)."""
        path = os.fspath(path)
        size = self._sizes.get(path)
        if size is None:
            size = jpeg_size(read_file(path))  # once per path: later calls find it in _sizes
            if size is None:  # not a JPEG: decode it now and hand the image to the next read
                self._is_jpeg[path] = False
                decoded = self.read(path, 1)
                self._pending = (path, decoded)
                return decoded[2]
            self._sizes[path] = size
        return size

    def allowed_factor(self, path: str, factor: int) -> int:
        """The reduction that will actually be used for `path` when up to `factor` is allowed."""
        if not self.reduced_decoding or factor <= 1 or not self._is_jpeg.get(path, path.lower().endswith(
                (".jpg", ".jpeg"))):
            return 1
        return max(r for r in REDUCTIONS if r <= factor)

    def read(self, path: str, factor: int = 1, crop: tuple[np.ndarray, tuple[int, int]] | None = None,
             ) -> tuple[np.ndarray, int, tuple[int, int]]:
        """(BGR(A) image, reduction factor used, full-size (w, h)); `factor` is the largest reduction allowed.

        `crop` = (full-size image px -> crop px [2, 3] matrix, crop (w, h)) allows a region decode (see the class).
        """
        path = os.fspath(path)
        factor = self.allowed_factor(path, factor)
        if self._pending is not None and self._pending[0] == path and factor == 1:
            decoded, self._pending = self._pending[1], None
            return decoded
        key = (path, factor)
        img = self._cache.get(key)
        if img is not None:
            self._cache.move_to_end(key)
            self.hits += 1
            return img, factor, self._sizes[path]
        self.misses += 1
        data = read_file(path)
        if factor > 1 or crop is not None:
            size = self._sizes.get(path) or jpeg_size(data)
            if size is None:  # not a JPEG after all: decode at full size
                self._is_jpeg[path] = False
                factor = 1
            else:
                self._sizes[path] = size
                if crop is not None and self._wants_region():
                    region = self._read_region(data, path, factor, size, crop)
                    if region is not None:
                        return region, factor, size
        img = _decode(data, factor, path)
        if factor == 1:
            self._sizes[path] = (img.shape[1], img.shape[0])
        elif img.shape[:2] != (-(-self._sizes[path][1] // factor), -(-self._sizes[path][0] // factor)):
            # unexpected reduced size (not libjpeg DCT scaling): fall back to a full decode
            self._is_jpeg[path] = False
            return self.read(path, 1)
        if self.bgra:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2BGRA)
        if self.cache_size > 0:
            self._cache[(path, factor)] = img
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return img, factor, self._sizes[path]

    def _wants_region(self) -> bool:
        # a whole image is worth decoding while the cache has room for it; once full, only the crop is
        return self.region_decoding and len(self._cache) >= self.cache_size and jpeg.available()

    def _read_region(self, data: np.ndarray, path: str, factor: int, size: tuple[int, int],
                     crop: tuple[np.ndarray, tuple[int, int]]) -> np.ndarray | None:
        matrix, out_size = crop
        m = np.asarray(matrix, dtype=np.float64)[:2]
        if factor > 1:
            m = m @ reduction_matrix(factor)
        check_complete(data, path)
        shape = (-(-size[1] // factor), -(-size[0] // factor), 4 if self.bgra else 3)
        if self._scratch.size < shape[0] * shape[1] * shape[2]:
            self._scratch = np.empty(shape[0] * shape[1] * shape[2], np.uint8)
        out = jpeg.decode_region(data, jpeg.source_box(m, out_size), factor, alpha=self.bgra, scratch=self._scratch)
        if out is None or out[0].shape != shape:
            return None
        self.regions += 1
        return out[0]
