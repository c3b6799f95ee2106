"""Safe image loading: a size bound before decoding, and every image mode repaired to RGB.

Pillow decodes lazily: ``Image.open`` reads only the header, so the size can be checked before
any pixel is decoded. Pillow's own decompression-bomb guard (``Image.MAX_IMAGE_PIXELS``) stays
on; :data:`MAX_PIXELS` is a tighter bound of ours.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd
from PIL import Image, UnidentifiedImageError

from . import reasons
from .data_report import DataReport

MAX_PIXELS = 40_000_000
"""Largest accepted image, width x height [pixels] (40 megapixels; MVSA images are <= 0.1 MP)."""
MAX_FILE_BYTES = 100 * 2**20
"""Largest accepted image file [bytes] (100 MiB), checked before it is opened."""
MIN_SIDE = 16
"""Images with a side shorter than this [pixels] are kept but noted (``image_tiny``): a 1 x 1
tracking pixel or a broken thumbnail carries next to nothing (MVSA's smallest side is 48 px)."""

_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")


class ImageLoadError(ValueError):
    """An image that cannot be used; ``reason`` is a short machine-friendly cause."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _open_checked(path: Path, max_pixels: int) -> Image.Image:
    """``Image.open`` + the size bound; raises :class:`ImageLoadError`."""
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
    """Convert any Pillow mode to RGB; return ``(rgb_image, repair)``.

    Palette images with transparency and every alpha mode are composited on white (so that
    transparent pixels do not turn black); grayscale, CMYK, YCbCr, 16-bit etc. use
    ``Image.convert("RGB")``. ``repair`` is ``None`` for an RGB input, else e.g.
    ``"mode_RGBA_to_RGB"``.
    """
    mode = image.mode
    if mode == "RGB":
        return image, None
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(background, rgba).convert("RGB")
    else:
        rgb = image.convert("RGB")
    return rgb, reasons.mode_to_rgb(mode)


def load_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS, draft: tuple[int, int] | None = None) -> Image.Image:
    """Open, bound, fully decode and convert one image to RGB.

    Args:
        path: image file (any format Pillow reads; the content decides, not the suffix).
        max_pixels: refuse images with more than this many pixels (width x height), checked
            on the header before decoding.
        draft: optional ``(width, height)``: let the JPEG decoder scale down by a power of two
            while decoding, to at least this size (faster; the whole stream is still read).

    Returns:
        A decoded ``PIL.Image.Image`` in mode ``"RGB"``, detached from the file.

    Raises:
        ImageLoadError: (a ``ValueError``) with ``reason`` ``"missing_file"``, ``"not_a_file"``
            (a folder, FIFO, device or broken link: never opened), ``"empty_file"``,
            ``"unreadable"`` (not an image), ``"too_large"`` (a file over :data:`MAX_FILE_BYTES`,
            over ``max_pixels``, or refused by Pillow's decompression-bomb guard), ``"bad_size"``
            or ``"truncated"`` (decoding failed).
    """
    return _load(Path(path), max_pixels, draft)[0]


def _load(path: Path, max_pixels: int, draft: tuple[int, int] | None = None) -> tuple[Image.Image, dict]:
    """:func:`load_image`, also returning header facts (size, mode, format, repair)."""
    image = _open_checked(path, max_pixels)
    with image:
        facts = {"width": image.width, "height": image.height, "mode": image.mode, "format": image.format}
        if draft is not None and image.format == "JPEG":
            image.draft("RGB", draft)
        try:
            image.load()
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageLoadError("truncated", f"cannot decode image {path}: {exc}") from exc
        rgb, repair = to_rgb(image)
        if rgb is image:
            rgb = image.copy()
    facts["repair"] = repair
    return rgb, facts


def inspect_images(frame: pd.DataFrame, data_dir: str | os.PathLike, report: DataReport,
                   max_pixels: int = MAX_PIXELS) -> pd.DataFrame:
    """Check every image of ``frame`` and add ``width``, ``height`` [px], ``mode``, ``image_ok``.

    Each image is opened, size-checked and decoded (JPEGs at 1/8 scale with ``draft``, which
    still reads the whole stream, so truncation is caught; ~0.2 ms per MVSA image).
    Reported under the stage ``"images"``: every unreadable image (``excluded``, reason
    ``image_<reason>`` as in :class:`ImageLoadError`), every mode that needs a repair
    (``repaired``, e.g. ``mode_RGBA_to_RGB``), content that does not match a ``.jpg`` name
    (``noted``, ``format_mismatch``) and images with a side under :data:`MIN_SIDE` (``noted``,
    ``image_tiny``; kept, resized like any other). Rows with ``has_image`` False (already reported by the
    load stage) get ``image_ok`` False and no new entry.

    Args:
        frame: has columns ``guid``, ``image_file`` (relative to ``data_dir``), ``has_image``.

    Returns:
        A copy of ``frame`` with ``width``/``height`` (``Int64``, ``<NA>`` when unknown),
        ``mode`` (str, the file's original mode) and ``image_ok`` (bool).
    """
    data_dir = Path(data_dir)
    widths, heights, modes, oks = [], [], [], []
    for guid, rel, has_image in zip(frame["guid"], frame["image_file"], frame["has_image"]):
        width = height = None
        mode = ""
        ok = False
        if has_image:
            try:
                image, facts = _load(data_dir / rel, max_pixels, draft=(1, 1))
                image.close()
                width, height, mode, ok = facts["width"], facts["height"], facts["mode"], True
                if facts["repair"]:
                    report.add(facts["repair"], guid, f"{rel}: mode {mode} converted to RGB at load time")
                if str(rel).lower().endswith((".jpg", ".jpeg")) and facts["format"] != "JPEG":
                    report.add(reasons.FORMAT_MISMATCH, guid, f"{rel} holds {facts['format']} data; read by content")
                if min(width, height) < MIN_SIDE:
                    report.add(reasons.IMAGE_TINY, guid,
                               f"{rel} is {width}x{height} px (< {MIN_SIDE} px a side); kept, resized like any other")
            except ImageLoadError as exc:
                report.add(reasons.image_error(exc.reason), guid, f"{exc}; row kept with image_ok=False, the trainer skips it")
        widths.append(width)
        heights.append(height)
        modes.append(mode)
        oks.append(ok)
    out = frame.copy()
    out["width"] = pd.array(widths, dtype="Int64")
    out["height"] = pd.array(heights, dtype="Int64")
    out["mode"] = modes
    out["image_ok"] = oks
    return out
