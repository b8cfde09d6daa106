"""Region JPEG decoding with libjpeg-turbo's TurboJPEG 3 API (ctypes; no compiled code of ours).

A training crop of a person needs only the source pixels under the warped crop, often a quarter of a COCO photo.
`tj3SetCroppingRegion` makes libjpeg-turbo skip the colour conversion and inverse DCT outside that region and stop
reading after its last row (rows above it are still entropy-decoded), about half the time of a full decode. The
decoded pixels are the ones a full decode gives (same library, same default inverse DCT and fancy upsampling),
which tests/data/test_data_jpeg.py checks against OpenCV's own decoder.

The library is looked up, in order, at $POSEKIT_TURBOJPEG (a path; `off` disables region decoding), in the
`turbojpeg` wheel (`pip install posekit[fast]` on Linux x86-64; it bundles libturbojpeg 3), and as a system
libturbojpeg with the version-3 API (e.g. Debian's libturbojpeg0, as PyTurboJPEG users have). Without one,
`available()` is False and callers decode whole images with OpenCV. Any TurboJPEG error or warning makes
`decode_region` return None, so the caller's OpenCV path keeps deciding what a bad file is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.metadata
import math
import os
import threading
from collections.abc import Iterator

import numpy as np

_INIT_DECOMPRESS = 1
_PARAM_SUBSAMP, _PARAM_WIDTH, _PARAM_HEIGHT, _PARAM_PRECISION, _PARAM_COLORSPACE = 4, 5, 6, 7, 8
_PARAM_LOSSLESS = 15
_PF_BGR, _PF_BGRA = 1, 8
_COLORSPACES = (0, 1, 2)  # RGB, YCbCr, grey: what libjpeg converts to BGR(A) as OpenCV's decoder does
_MCU_WIDTH = (8, 16, 16, 8, 8, 32, 8)  # per TJSAMP_* (444, 422, 420, gray, 440, 411, 441)


class _Region(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_int), ("w", ctypes.c_int), ("h", ctypes.c_int)]


class _Scale(ctypes.Structure):
    _fields_ = [("num", ctypes.c_int), ("denom", ctypes.c_int)]


def _candidates() -> Iterator[str]:
    env = os.environ.get("POSEKIT_TURBOJPEG", "")
    if env:
        yield env
        return
    try:
        dist = importlib.metadata.distribution("turbojpeg")
        for f in dist.files or []:
            if f.name.startswith("libturbojpeg"):
                yield str(dist.locate_file(f))
    except importlib.metadata.PackageNotFoundError:
        pass
    name = ctypes.util.find_library("turbojpeg")
    if name:
        yield name


def _load() -> ctypes.CDLL | None:
    if os.environ.get("POSEKIT_TURBOJPEG", "").lower() in ("off", "0", "none"):
        return None
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        if not hasattr(lib, "tj3SetCroppingRegion"):
            continue  # TurboJPEG 2 or older: no version-3 API
        vp, c_int = ctypes.c_void_p, ctypes.c_int
        lib.tj3Init.restype, lib.tj3Init.argtypes = vp, [c_int]
        lib.tj3Destroy.restype, lib.tj3Destroy.argtypes = None, [vp]
        lib.tj3Get.restype, lib.tj3Get.argtypes = c_int, [vp, c_int]
        lib.tj3DecompressHeader.restype, lib.tj3DecompressHeader.argtypes = c_int, [vp, vp, ctypes.c_size_t]
        lib.tj3SetScalingFactor.restype, lib.tj3SetScalingFactor.argtypes = c_int, [vp, _Scale]
        lib.tj3SetCroppingRegion.restype, lib.tj3SetCroppingRegion.argtypes = c_int, [vp, _Region]
        lib.tj3Decompress8.restype = c_int
        lib.tj3Decompress8.argtypes = [vp, vp, ctypes.c_size_t, vp, c_int, c_int]
        return lib
    return None


_LIB: ctypes.CDLL | None = None
_LOADED = False
_LOCAL = threading.local()  # a TurboJPEG handle is not thread-safe: one per thread


def library() -> ctypes.CDLL | None:
    """The loaded libturbojpeg (version-3 API), or None."""
    global _LIB, _LOADED
    if not _LOADED:
        _LIB, _LOADED = _load(), True
    return _LIB


def available() -> bool:
    """Whether region decoding can be used in this process."""
    return library() is not None


def _handle(lib: ctypes.CDLL) -> int:
    h = getattr(_LOCAL, "handle", None)
    if h is None:
        h = lib.tj3Init(_INIT_DECOMPRESS)
        if not h:
            raise RuntimeError("tj3Init failed")
        _LOCAL.handle = h
    return h


def decode_region(data: np.ndarray, box: tuple[int, int, int, int], factor: int = 1, alpha: bool = True,
                  scratch: np.ndarray | None = None) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """Decode the pixels of `box` (x0, y0, x1, y1 in the 1/`factor`-size image) of a JPEG into an image of the
    whole 1/`factor` size, zero outside the box; (image, box clipped to the image), or None when TurboJPEG cannot
    decode this file exactly as a full decode would (not a JPEG, CMYK, 12-bit, lossless, corrupt data, ...).

    `alpha` gives BGRA with alpha 255 (as cv2.COLOR_BGR2BGRA), else BGR. With `scratch` (a flat uint8 array of at
    least h * w * channels bytes) the image is a view of it and its pixels outside the box are left as they were:
    no allocation and no zeroing, for a caller that reads only the box.
    """
    lib = library()
    if lib is None or factor not in (1, 2, 4, 8):
        return None
    buf = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
    h = _handle(lib)
    ptr, size = buf.ctypes.data, int(buf.size)
    if lib.tj3DecompressHeader(h, ptr, size) != 0:
        return None
    samp = lib.tj3Get(h, _PARAM_SUBSAMP)
    if (lib.tj3Get(h, _PARAM_PRECISION) != 8 or lib.tj3Get(h, _PARAM_LOSSLESS) == 1
            or lib.tj3Get(h, _PARAM_COLORSPACE) not in _COLORSPACES or not 0 <= samp < len(_MCU_WIDTH)):
        return None
    width, height = lib.tj3Get(h, _PARAM_WIDTH), lib.tj3Get(h, _PARAM_HEIGHT)
    if lib.tj3SetScalingFactor(h, _Scale(1, factor)) != 0:
        return None
    sw, sh = -(-width // factor), -(-height // factor)
    mcu = max(_MCU_WIDTH[samp] // factor, 1)
    x0, y0 = max(int(box[0]), 0), max(int(box[1]), 0)
    x1, y1 = min(int(box[2]), sw), min(int(box[3]), sh)
    channels = 4 if alpha else 3
    if scratch is None:
        out = np.zeros((sh, sw, channels), np.uint8)
    elif scratch.dtype == np.uint8 and scratch.ndim == 1 and scratch.size >= sh * sw * channels:
        out = scratch[:sh * sw * channels].reshape(sh, sw, channels)
    else:
        raise ValueError(f"scratch: expected a flat uint8 array of >= {sh * sw * channels} bytes")
    if x1 <= x0 or y1 <= y0:
        return out, (0, 0, 0, 0)
    # horizontal chroma upsampling treats the region's left and right edges as image edges: decode one block
    # more on both sides (rows need no margin: libjpeg keeps the context rows when it skips or stops)
    rx0, ry0 = max(x0 - mcu, 0), y0
    rx0 -= rx0 % mcu
    rx1, ry1 = min(x1 + mcu, sw), y1
    if lib.tj3SetCroppingRegion(h, _Region(rx0, ry0, rx1 - rx0, ry1 - ry0)) != 0:
        return None
    pitch = out.strides[0]
    dst = out.ctypes.data + ry0 * pitch + rx0 * channels
    if lib.tj3Decompress8(h, ptr, size, dst, pitch, _PF_BGRA if alpha else _PF_BGR) != 0:
        return None  # errors and warnings alike: the caller's full decode decides
    if scratch is None:
        out[y0:y1, rx0:x0] = 0
        out[y0:y1, x1:rx1] = 0
    return out, (x0, y0, x1, y1)


def source_box(matrix: np.ndarray, out_size: tuple[int, int], margin: int = 2) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), x1/y1 exclusive: the source pixels a bilinear warp with this source->output `matrix` to
    an `out_size` (w, h) output reads, widened by `margin` px (OpenCV rounds source positions to 1/32 px)."""
    (a, b, c), (d, e, f) = np.asarray(matrix, dtype=np.float64)[:2].tolist()
    det = a * e - b * d
    w, h = out_size
    xs, ys = [], []
    for u, v in ((0.0, 0.0), (w - 1.0, 0.0), (0.0, h - 1.0), (w - 1.0, h - 1.0)):  # crop corners -> source
        du, dv = u - c, v - f
        xs.append((e * du - b * dv) / det)
        ys.append((a * dv - d * du) / det)
    return (math.floor(min(xs)) - margin, math.floor(min(ys)) - margin,
            math.floor(max(xs)) + 2 + margin, math.floor(max(ys)) + 2 + margin)
