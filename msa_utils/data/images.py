"""Safe image loading: size bounds checked on the header before any pixel is decoded (Pillow's
bomb guard stays on); each image upright, its first frame, in RGB without losing what its mode means."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from msa_utils.data import reasons
from msa_utils.data.data_report import DataReport

MAX_PIXELS = 40_000_000
"""Largest accepted image, width x height [pixels] (MVSA images are <= 0.1 MP)."""
MAX_FILE_BYTES = 100 * 2**20
"""Largest accepted image file [bytes], checked before it is opened."""
MIN_SIDE = 16
"""A side shorter than this [pixels] is noted (``image_tiny``; MVSA's smallest is 48 px)."""

_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")  # 16-bit, 32-bit integer, 32-bit float
_JPEG_FORMATS = ("JPEG", "MPO")  # an MPO (a phone's multi-picture JPEG) is a JPEG with more frames after it
_SUFFIX_FORMATS = {".jpg": _JPEG_FORMATS, ".jpeg": _JPEG_FORMATS, ".png": ("PNG",), ".webp": ("WEBP",),
                   ".gif": ("GIF",), ".bmp": ("BMP",), ".tif": ("TIFF",), ".tiff": ("TIFF",)}
"""The Pillow formats each suffix of :data:`msa_utils.data.mvsa.IMAGE_SUFFIXES` stands for (any case)."""


class ImageLoadError(ValueError):
    """An image that cannot be used; ``reason`` is its cause (``image_<reason>`` is the report code)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _open_checked(path: Path, max_pixels: int) -> Image.Image:
    """``Image.open`` (the header only), after and with the size bounds; raises :class:`ImageLoadError`."""
    if not path.is_file():
        if path.exists() or path.is_symlink():
            raise ImageLoadError("not_a_file", f"image path is not a regular file (a folder, a FIFO, a device, "
                                               f"a broken link): {path}")
        raise ImageLoadError("missing_file", f"image file not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise ImageLoadError("empty_file", f"image file is empty (0 bytes): {path}")
    if size > MAX_FILE_BYTES:
        raise ImageLoadError("too_large", f"image file {path} has {size:,} bytes, limit {MAX_FILE_BYTES:,}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # reported as exif_unreadable by inspect_images, not printed per load
            warnings.filterwarnings("ignore", message="Corrupt EXIF data", category=UserWarning)
            image = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError("too_large", f"Pillow's decompression-bomb guard refused {path}: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError("unreadable", f"not an image Pillow can identify: {path}") from exc
    except OSError as exc:
        raise ImageLoadError("unreadable", f"cannot open image {path}: {exc}") from exc
    width, height = image.size
    if width <= 0 or height <= 0 or width * height > max_pixels:
        image.close()
        raise ImageLoadError("too_large" if width * height > max_pixels else "bad_size",
                             f"image {path} is {width}x{height} px, limit {max_pixels} pixels")
    return image


def to_rgb(image: Image.Image) -> tuple[Image.Image, str | None]:
    """``(image in RGB, repair)``: ``repair`` ``None`` for an RGB input, else e.g. ``"mode_RGBA_to_RGB"``;
    converted as the reason ``mode_{mode}_to_RGB`` says (NaN and infinities go to the finite ends).
    Pillow's errors for a broken image pass through."""
    mode = image.mode
    if mode == "RGB":
        return image, None
    if mode in _WIDE_MODES:
        values = np.asarray(image, dtype=np.float64)
        finite = values[np.isfinite(values)]
        low, high = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
        values = np.nan_to_num(values, nan=low, posinf=high, neginf=low)
        if mode != "F" and low >= 0 and high <= 65535:
            scaled = values * (255 / 65535)
        elif mode == "F" and low >= 0 and high <= 1:
            scaled = values * 255
        else:
            scaled = (values - low) * (255 / (high - low)) if high > low else np.zeros_like(values)
        image = Image.fromarray(np.rint(scaled).astype(np.uint8), mode="L")
    elif mode in ("P", "L") and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _ALPHA_MODES:
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("RGB"), reasons.mode_to_rgb(mode)


def load_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """One image (any format Pillow reads, whatever the suffix) in RGB, detached from the file: upright
    by its EXIF Orientation, its first frame, :func:`to_rgb`. Raises :class:`ImageLoadError` (a
    ``ValueError``), ``reason`` one of the ``image_*`` causes of :mod:`msa_utils.data.reasons`."""
    return _load(Path(path), max_pixels)[0]


def _upright(image: Image.Image) -> tuple[Image.Image, int | None, str | None]:
    """``(upright image, Orientation applied (2-8) or None, EXIF problem or None)``; never raises."""
    try:
        problem = None
        if image.info.get("exif"):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                Image.Exif().load(image.info["exif"])
            problem = "corrupt EXIF: " + " ".join(str(caught[0].message).split()) if caught else None
        orientation = image.getexif().get(ExifTags.Base.Orientation)
        if orientation in (None, 1):
            return image, None, problem
        if orientation not in range(2, 9):
            return image, None, f"EXIF Orientation {orientation!r} is not 1-8"
        return ImageOps.exif_transpose(image), int(orientation), problem
    except Exception as exc:  # noqa: BLE001 - untrusted EXIF: whatever the parser raises
        return image, None, f"unreadable EXIF: {type(exc).__name__}: {exc}"


def _load(path: Path, max_pixels: int, draft: tuple[int, int] | None = None) -> tuple[Image.Image, dict]:
    """:func:`load_image` and its facts (upright ``width``, ``height`` [px], ``mode``, ``format``, ``frames``,
    ``orientation``, ``exif_problem``, ``repair``); ``draft``: JPEG decoded scaled down to at least this."""
    image = _open_checked(path, max_pixels)
    with image:
        facts = {"width": image.width, "height": image.height, "mode": image.mode, "format": image.format}
        if draft is not None and image.format in _JPEG_FORMATS:
            image.draft("RGB", draft)
        try:
            image.load()  # the first frame
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageLoadError("truncated", f"cannot decode image {path}: {exc}") from exc
        upright, facts["orientation"], facts["exif_problem"] = _upright(image)
        if facts["orientation"] in (5, 6, 7, 8):  # a quarter turn: the header's sides swap
            facts["width"], facts["height"] = facts["height"], facts["width"]
        rgb, facts["repair"] = to_rgb(upright)
        if rgb is image:
            rgb = image.copy()
        try:  # last: counting parses every later frame
            facts["frames"] = getattr(image, "n_frames", 1)
        except Exception:  # noqa: BLE001 - a broken later frame (EOFError to struct.error): count it, stop
            facts["frames"] = image.tell() + 2
    return rgb, facts


def _report_facts(report: DataReport, guid: int, rel: str, facts: dict) -> None:
    """Report what the ``facts`` of :func:`_load` of the usable image ``rel`` show (stage ``images``)."""
    width, height, fmt = facts["width"], facts["height"], str(facts["format"])
    if facts["orientation"]:
        report.add(reasons.EXIF_ORIENTATION_APPLIED, guid,
                   f"{rel}: EXIF Orientation={facts['orientation']} applied; upright {width}x{height} px")
    if facts["exif_problem"]:
        report.add(reasons.EXIF_UNREADABLE, guid, f"{rel}: {facts['exif_problem']}; image kept")
    if facts["repair"]:
        report.add(facts["repair"], guid, f"{rel}: mode {facts['mode']} converted to RGB at load time")
    if facts["frames"] > 1 and fmt not in _JPEG_FORMATS:
        report.add(reasons.ANIMATED_FIRST_FRAME, guid,
                   f"{rel}: {fmt} with {facts['frames']} frames; the first frame used")
    if fmt not in _SUFFIX_FORMATS.get(Path(rel).suffix.lower(), (fmt,)):
        report.add(reasons.FORMAT_MISMATCH, guid, f"{rel} holds {fmt} data; read by content")
    elif fmt not in _JPEG_FORMATS:
        report.add(reasons.image_format(fmt), guid, f"{rel}: a {fmt} image, read like any other")
    if min(width, height) < MIN_SIDE:
        report.add(reasons.IMAGE_TINY, guid,
                   f"{rel} is {width}x{height} px (< {MIN_SIDE} px a side); kept, resized like any other")


def inspect_images(frame: pd.DataFrame, data_dir: str | os.PathLike, report: DataReport) -> pd.DataFrame:
    """Load each image of ``frame`` (``guid``, ``image_file`` relative to ``data_dir``, ``has_image``) as
    :func:`load_image` would (JPEGs drafted small) and report what the reasons of stage ``images`` name.
    Returns a copy with ``width`` / ``height`` [px] upright (``Int64``, ``<NA>`` unless usable), ``mode``
    (the file's own), ``image_ok`` and ``image_phash`` (``imagehash.phash`` of the RGB image, 16 hex digits;
    ``""`` unless usable)."""
    data_dir = Path(data_dir)
    rows = []
    for guid, rel, has_image in zip(frame["guid"], frame["image_file"], frame["has_image"]):
        width, height, mode, ok, phash = None, None, "", False, ""
        if has_image:
            try:  # JPEGs drafted to >= 64 px a side, twice phash's 32 (1/8 scale moves hashes by 2 bits on average)
                image, facts = _load(data_dir / rel, MAX_PIXELS, draft=(64, 64))
                phash = str(imagehash.phash(image))
                image.close()
                width, height, mode, ok = facts["width"], facts["height"], facts["mode"], True
                _report_facts(report, guid, rel, facts)
            except ImageLoadError as exc:
                report.add(reasons.image_error(exc.reason), guid, f"{exc}; row kept with image_ok=False, the trainer skips it")
        rows.append((width, height, mode, ok, phash))
    widths, heights, modes, oks, phashes = (list(column) for column in zip(*rows)) if rows else ([],) * 5
    return frame.assign(width=pd.array(widths, dtype="Int64"), height=pd.array(heights, dtype="Int64"), mode=modes,
                        image_ok=oks, image_phash=phashes)
