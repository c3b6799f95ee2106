"""Safe image loading: a size bound before decoding, and every image mode repaired to RGB.

Pillow decodes lazily: ``Image.open`` reads only the header, so the size can be checked before
any pixel is decoded. Pillow's own decompression-bomb guard (``Image.MAX_IMAGE_PIXELS``) stays
on; :data:`MAX_PIXELS` is a tighter bound of ours.

Images as phones and the web write them: the EXIF Orientation of a camera picture is applied
(the image is turned upright; a corrupt EXIF block is ignored), 16-bit, 32-bit and float images
are scaled to 8 bit (not clipped), an MPO (a phone's multi-picture JPEG) is read as the JPEG it
is, and of an animated GIF / PNG / WebP the first frame is used.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from msa_utils.data import reasons
from msa_utils.data.data_report import DataReport

MAX_PIXELS = 40_000_000
"""Largest accepted image, width x height [pixels] (40 megapixels; MVSA images are <= 0.1 MP)."""
MAX_FILE_BYTES = 100 * 2**20
"""Largest accepted image file [bytes] (100 MiB), checked before it is opened."""
MIN_SIDE = 16
"""Images with a side shorter than this [pixels] are kept but noted (``image_tiny``): a 1 x 1
tracking pixel or a broken thumbnail carries next to nothing (MVSA's smallest side is 48 px)."""

_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
"""16-bit, 32-bit integer and 32-bit float modes: scaled to 8 bit by :func:`_to_8bit`."""
_JPEG_FORMATS = ("JPEG", "MPO")
"""Pillow's names of JPEG data: an MPO (multi-picture JPEG) is a JPEG with more frames after it."""


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
            # reported as exif_unreadable by inspect_images (_exif_complaint), not printed per load
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


def _to_8bit(image: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit integer or float image (:data:`_WIDE_MODES`) scaled to an 8-bit ``L`` image.

    Integers are scaled by their type's range: 16-bit modes, and mode ``I`` when every value lies
    in 0..65535, as ``value * 255 / 65535``; float values in [0, 1] as ``value * 255``; any other
    ``I`` or ``F`` image from its own min..max to 0..255 (NaN and infinities to the finite ends).
    ``convert("RGB")`` would clip instead: a 16-bit image would come out almost all white.
    """
    values = np.asarray(image, dtype=np.float64)
    finite = values[np.isfinite(values)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
    values = np.nan_to_num(values, nan=low, posinf=high, neginf=low)
    if image.mode != "F" and low >= 0 and high <= 65535:
        scaled = values * (255 / 65535)
    elif image.mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255
    else:
        scaled = (values - low) * (255 / (high - low)) if high > low else np.zeros_like(values)
    return Image.fromarray(np.rint(scaled).astype(np.uint8), mode="L")


def to_rgb(image: Image.Image) -> tuple[Image.Image, str | None]:
    """Convert any Pillow mode to RGB; return ``(rgb_image, repair)``.

    Palette and grey images with a transparent colour (a transparent GIF frame too) and every alpha mode are
    composited on white (so that transparent pixels do not turn black); 16-bit, 32-bit integer
    and float images (``I;16``, ``I;16B``, ``I``, ``F``, ...) are scaled to 8 bit, not clipped
    (see :func:`_to_8bit`); grayscale, CMYK, YCbCr etc. use ``Image.convert("RGB")``.
    ``repair`` is ``None`` for an RGB input, else e.g. ``"mode_RGBA_to_RGB"``. Raises nothing of
    its own (Pillow's errors for a not yet decoded, broken image pass through).
    """
    mode = image.mode
    if mode == "RGB":
        return image, None
    if mode in _WIDE_MODES:
        return _to_8bit(image).convert("RGB"), reasons.mode_to_rgb(mode)
    if mode in ("P", "L") and "transparency" in image.info:  # a palette or grey PNG/GIF with a transparent colour
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
        A decoded ``PIL.Image.Image`` in mode ``"RGB"``, detached from the file: turned upright by
        its EXIF Orientation (an unreadable EXIF block is ignored), the first frame of an
        animated or multi-picture file, 16-bit and float images scaled to 8 bit (:func:`to_rgb`).

    Raises:
        ImageLoadError: (a ``ValueError``) with ``reason`` ``"missing_file"``, ``"not_a_file"``
            (a folder, FIFO, device or broken link: never opened), ``"empty_file"``,
            ``"unreadable"`` (not an image), ``"too_large"`` (a file over :data:`MAX_FILE_BYTES`,
            over ``max_pixels``, or refused by Pillow's decompression-bomb guard), ``"bad_size"``
            or ``"truncated"`` (decoding failed).
    """
    return _load(Path(path), max_pixels, draft)[0]


def _exif_complaint(image: Image.Image) -> str | None:
    """Pillow's first complaint about the raw EXIF block of ``image``, or ``None`` (no block, or sound).

    Pillow skips, with a warning, the entries it cannot parse; a block that is no TIFF structure
    at all raises (``SyntaxError``, ``struct.error``, ...), which is passed on.
    """
    raw = image.info.get("exif")
    if not raw:
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Image.Exif().load(raw)
    return "corrupt EXIF: " + " ".join(str(caught[0].message).split()) if caught else None


def _upright(image: Image.Image) -> tuple[Image.Image, int | None, str | None]:
    """``(image turned upright, EXIF Orientation applied (2-8) or None, EXIF problem or None)``.

    A corrupt EXIF block, or one that makes Pillow raise anything at all, never stops a post:
    what Pillow could read is used (none of it if it raised) and the problem is returned.
    """
    try:
        problem = _exif_complaint(image)
        orientation = image.getexif().get(ExifTags.Base.Orientation)
        if orientation in (None, 1):
            return image, None, problem
        if orientation not in range(2, 9):
            return image, None, f"EXIF Orientation {orientation!r} is not 1-8"
        return ImageOps.exif_transpose(image), int(orientation), problem
    except Exception as exc:  # noqa: BLE001 - untrusted EXIF: whatever the parser raises
        return image, None, f"unreadable EXIF: {type(exc).__name__}: {exc}"


def _load(path: Path, max_pixels: int, draft: tuple[int, int] | None = None) -> tuple[Image.Image, dict]:
    """:func:`load_image`, also returning facts: upright ``width``/``height`` [px], ``mode``,
    ``format``, ``frames``, ``orientation``, ``exif_problem``, ``repair``."""
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
        facts["frames"] = _frame_count(image)  # last: counting seeks through the file
    return rgb, facts


def _frame_count(image: Image.Image) -> int:
    """Frames in an animated or multi-picture file, 1 for a still image.

    Counting parses every later frame; where one is cut off or corrupt (Pillow raises anything
    from ``EOFError`` to ``struct.error`` or ``IndexError``), the count is the frames read so
    far plus that broken one. The first frame, already decoded, is unaffected.
    """
    try:
        return getattr(image, "n_frames", 1)
    except Exception:  # noqa: BLE001 - a broken later frame of an untrusted file
        return image.tell() + 2


def inspect_images(frame: pd.DataFrame, data_dir: str | os.PathLike, report: DataReport,
                   max_pixels: int = MAX_PIXELS) -> pd.DataFrame:
    """Check every image of ``frame`` and add ``width``, ``height`` [px], ``mode``, ``image_ok``.

    Each image is opened, size-checked and decoded (JPEGs at 1/8 scale with ``draft``, which
    still reads the whole stream, so truncation is caught; ~0.2 ms per MVSA image), as
    :func:`load_image` would load it. Reported under the stage ``"images"``: every unreadable
    image (``excluded``, reason ``image_<reason>`` as in :class:`ImageLoadError`), an EXIF
    Orientation applied (``repaired``, ``exif_orientation_applied``), an EXIF block that cannot
    be read (``noted``, ``exif_unreadable``; the image is kept as stored), every mode that needs
    a repair (``repaired``, e.g. ``mode_RGBA_to_RGB``; 16-bit and float images scaled to 8 bit),
    an animated or multi-page image (``noted``, ``animated_first_frame``, with the frame count;
    not an MPO), content that does not match a ``.jpg`` name (``noted``, ``format_mismatch``; an
    MPO is JPEG) and images with a side under :data:`MIN_SIDE` (``noted``, ``image_tiny``; kept,
    resized like any other). Rows with ``has_image`` False (already reported by the load stage)
    get ``image_ok`` False and no new entry.

    Args:
        frame: has columns ``guid``, ``image_file`` (relative to ``data_dir``), ``has_image``.

    Returns:
        A copy of ``frame`` with ``width``/``height`` [px] of the upright image (EXIF
        Orientation applied; ``Int64``, ``<NA>`` when unknown), ``mode`` (str, the file's
        original mode) and ``image_ok`` (bool).

    Raises:
        KeyError: if ``frame`` lacks one of the columns above. An unusable image raises
        nothing: it is reported and its row gets ``image_ok`` False.
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
                if facts["orientation"]:
                    report.add(reasons.EXIF_ORIENTATION_APPLIED, guid,
                               f"{rel}: EXIF Orientation={facts['orientation']} applied; upright {width}x{height} px")
                if facts["exif_problem"]:
                    report.add(reasons.EXIF_UNREADABLE, guid, f"{rel}: {facts['exif_problem']}; image kept")
                if facts["repair"]:
                    report.add(facts["repair"], guid, f"{rel}: mode {mode} converted to RGB at load time")
                if facts["frames"] > 1 and facts["format"] not in _JPEG_FORMATS:
                    report.add(reasons.ANIMATED_FIRST_FRAME, guid,
                               f"{rel}: {facts['format']} with {facts['frames']} frames; the first frame used")
                if str(rel).lower().endswith((".jpg", ".jpeg")) and facts["format"] not in _JPEG_FORMATS:
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
