"""Tests of msa_utils.data.images: size bound, mode repair, broken files, inspect_images."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import ExifTags, Image

from msa_utils.data.mvsa import load_mvsa
from msa_utils.data.data_report import DataReport
from msa_utils.data.images import ImageLoadError, inspect_images, load_image, to_rgb

WILD = Path(__file__).resolve().parent / "data" / "mvsa_wild"


def _png_with_header_size(path, width: int, height: int) -> None:
    """A PNG whose IHDR claims width x height (no real pixel data)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b""))


def test_real_jpeg_loads_as_rgb(mvsa_sample):
    image = load_image(mvsa_sample / "data" / "2.jpg")
    assert image.mode == "RGB" and max(image.size) <= 320 and min(image.size) > 0
    assert image.getpixel((0, 0)) is not None  # decoded, file closed


def test_alpha_png_saved_as_jpg_is_composited_on_white(tmp_path):
    path = tmp_path / "alpha.jpg"
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    image.putpixel((0, 0), (0, 0, 255, 255))
    image.save(path, format="PNG")
    rgb = load_image(path)
    assert rgb.mode == "RGB"
    assert rgb.getpixel((1, 1)) == (255, 255, 255)  # white, not black or red
    assert rgb.getpixel((0, 0)) == (0, 0, 255)


def test_palette_with_transparency_and_modes(tmp_path):
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    palette.putpixel((0, 0), 1)
    palette.save(tmp_path / "p.png", transparency=0)
    rgb = load_image(tmp_path / "p.png")
    assert rgb.getpixel((2, 2)) == (255, 255, 255) and rgb.getpixel((0, 0)) == (10, 200, 30)

    Image.new("L", (4, 4), 77).save(tmp_path / "gray.jpg")
    assert load_image(tmp_path / "gray.jpg").getpixel((1, 1)) == (77, 77, 77)
    Image.new("CMYK", (4, 4), (0, 0, 0, 0)).save(tmp_path / "cmyk.jpg")
    cmyk = load_image(tmp_path / "cmyk.jpg")
    assert cmyk.mode == "RGB" and all(v > 240 for v in cmyk.getpixel((1, 1)))


def test_to_rgb_names_the_repair():
    assert to_rgb(Image.new("RGB", (2, 2)))[1] is None
    assert to_rgb(Image.new("LA", (2, 2)))[1] == "mode_LA_to_RGB"
    assert to_rgb(Image.new("1", (2, 2)))[0].mode == "RGB"


def test_broken_files_raise_image_load_error(tmp_path, mvsa_sample):
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_bytes(b"not an image at all")
    data = (mvsa_sample / "data" / "2.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "folder.jpg").mkdir()
    (tmp_path / "device.jpg").symlink_to("/dev/zero")
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    expected = {"zero.jpg": "empty_file", "text.jpg": "unreadable", "cut.jpg": "truncated", "gone.jpg": "missing_file",
                "folder.jpg": "not_a_file", "device.jpg": "not_a_file", "dangling.jpg": "not_a_file"}
    for name, reason in expected.items():
        with pytest.raises(ImageLoadError) as info:
            load_image(tmp_path / name)
        assert info.value.reason == reason, name
        assert isinstance(info.value, ValueError)


def test_size_bound_is_checked_before_decoding(tmp_path):
    _png_with_header_size(tmp_path / "big.png", 10_000, 5_000)  # 50 MP claimed
    with pytest.raises(ImageLoadError) as info:
        load_image(tmp_path / "big.png")
    assert info.value.reason == "too_large" and "limit" in str(info.value)
    # Pillow's own guard stays on: an error above 2 x MAX_IMAGE_PIXELS, a warning (made an error) above 1 x
    for name, side in (("bomb.png", 100_000), ("warn.png", 10_000)):
        _png_with_header_size(tmp_path / name, side, side)
        assert side * side > Image.MAX_IMAGE_PIXELS
        with pytest.raises(ImageLoadError) as info:
            load_image(tmp_path / name, max_pixels=10**12)
        assert info.value.reason == "too_large" and "decompression-bomb" in str(info.value), name
    Image.new("RGB", (30, 20)).save(tmp_path / "small.jpg")
    with pytest.raises(ImageLoadError):
        load_image(tmp_path / "small.jpg", max_pixels=599)
    assert load_image(tmp_path / "small.jpg", max_pixels=600).size == (30, 20)


def test_inspect_images_reports_and_adds_columns(mvsa_sample):
    report = DataReport()
    frame = load_mvsa(mvsa_sample, report)
    data = mvsa_sample / "data"
    (data / "71.jpg").write_bytes((data / "71.jpg").read_bytes()[:300])  # truncated
    Image.new("LA", (8, 6)).save(data / "4211.jpg", format="PNG")  # alpha PNG named .jpg
    Image.new("L", (5, 7)).save(data / "2.jpg")  # grayscale JPEG, and tiny
    Image.new("RGB", (1, 1)).save(data / "5084.jpg")  # a tracking pixel
    frame.loc[frame["guid"] == 55, "has_image"] = False  # as if the file were missing
    out = inspect_images(frame, mvsa_sample, report).set_index("guid")
    assert not out.loc[71, "image_ok"] and pd.isna(out.loc[71, "width"])
    assert not out.loc[55, "image_ok"]
    assert out.loc[4211, "image_ok"] and out.loc[4211, "mode"] == "LA" and out.loc[4211, "width"] == 8
    assert out.loc[2, "height"] == 7 and out.loc[2, "mode"] == "L"
    assert out.loc[[824, 3323, 4499, 5084], "image_ok"].all()
    assert report.guids(stage="images", reason="image_tiny") == [2, 4211, 5084]
    assert out["width"].dtype == "Int64"
    assert report.guids(stage="images", action="excluded") == [71]
    assert report.guids(stage="images", action="repaired") == [2, 4211]
    assert report.guids(stage="images", reason="format_mismatch") == [4211]
    assert 55 not in report.guids(stage="images")


def test_a_file_over_the_byte_limit_is_refused_before_it_is_opened(tmp_path, monkeypatch):
    from msa_utils.data import images

    Image.new("RGB", (30, 20)).save(tmp_path / "ok.jpg")
    monkeypatch.setattr(images, "MAX_FILE_BYTES", (tmp_path / "ok.jpg").stat().st_size - 1)
    with pytest.raises(ImageLoadError) as info:
        load_image(tmp_path / "ok.jpg")
    assert info.value.reason == "too_large" and "bytes" in str(info.value)


# --- images as phones and the web write them (tests/data/mvsa_wild, guids 95xx) ---------------

def _inspect(folder, names: dict[int, str]) -> tuple[pd.DataFrame, DataReport]:
    """inspect_images on ``{guid: file name}`` under ``folder`` (no label files needed)."""
    frame = pd.DataFrame({"guid": list(names), "image_file": list(names.values()), "has_image": True})
    report = DataReport()
    return inspect_images(frame, folder, report).set_index("guid"), report


def _details(report: DataReport, reason: str) -> dict[int, str]:
    return {e.guid: e.detail for e in report.entries if e.reason == reason}


def _is(pixel, colour, tolerance=40) -> bool:
    return all(abs(int(a) - int(b)) <= tolerance for a, b in zip(pixel, colour))


def test_wild_9501_exif_orientation_6_is_loaded_upright():
    image = load_image(WILD / "data" / "9501.jpg")
    assert image.size == (60, 80)
    assert _is(image.getpixel((30, 5)), (255, 0, 0)) and _is(image.getpixel((30, 75)), (0, 0, 255))
    out, report = _inspect(WILD, {9501: "data/9501.jpg"})
    assert (out.loc[9501, "width"], out.loc[9501, "height"]) == (60, 80)  # what posts.csv records
    assert report.guids(stage="images", action="repaired", reason="exif_orientation_applied") == [9501]
    assert "Orientation=6" in _details(report, "exif_orientation_applied")[9501]


def test_wild_9503_mpo_is_read_as_jpeg_first_frame():
    with Image.open(WILD / "data" / "9503.jpg") as raw:
        assert raw.format == "MPO" and raw.n_frames == 2
        first = np.asarray(raw.convert("RGB"), dtype=float)
        raw.seek(1)
        second = np.asarray(raw.convert("RGB"), dtype=float)
    image = np.asarray(load_image(WILD / "data" / "9503.jpg"), dtype=float)
    assert np.abs(image - first).max() == 0 and np.abs(image - second).mean() > 50
    out, report = _inspect(WILD, {9503: "data/9503.jpg"})
    assert out.loc[9503, "image_ok"] and (out.loc[9503, "width"], out.loc[9503, "height"]) == (80, 60)
    assert report.entries == []  # no format_mismatch, no animated_first_frame: a phone's JPEG


def test_wild_9504_16_bit_png_is_scaled_not_clipped():
    image = load_image(WILD / "data" / "9504.jpg")
    pixels = np.asarray(image, dtype=float)
    assert image.mode == "RGB"
    assert all(abs(mean - 127) <= 5 for mean in pixels.mean(axis=(0, 1)))
    assert len(np.unique(pixels[..., 0])) >= 40
    assert pixels[:, 0].max() <= 5 and pixels[:, -1].min() >= 250  # ramp 0..65535 -> 0..255
    out, report = _inspect(WILD, {9504: "data/9504.jpg"})
    assert out.loc[9504, "mode"] == "I;16"
    assert report.guids(stage="images", action="repaired", reason="mode_I;16_to_RGB") == [9504]


_UPRIGHT_COLOURS = np.array([[(255, 0, 0), (0, 255, 0), (0, 0, 255)],
                             [(255, 255, 0), (0, 255, 255), (255, 0, 255)]], dtype=np.uint8)
"""An asymmetric upright picture: 2 x 3 blocks of 8 x 8 px (24 px wide, 16 high)."""
# How a camera stores the upright picture U for each EXIF Orientation, from the EXIF spec (where
# the stored row 0 / column 0 lie in the picture shown): S[r, c] = U[...] as numpy slicing.
_STORED = {
    2: lambda u: u[:, ::-1],                       # row 0 top, column 0 right
    3: lambda u: u[::-1, ::-1],                    # row 0 bottom, column 0 right
    4: lambda u: u[::-1, :],                       # row 0 bottom, column 0 left
    5: lambda u: u.transpose(1, 0, 2),             # row 0 left, column 0 top
    6: lambda u: u[:, ::-1].transpose(1, 0, 2),    # row 0 right, column 0 top
    7: lambda u: u[::-1, ::-1].transpose(1, 0, 2),  # row 0 right, column 0 bottom
    8: lambda u: u[::-1, :].transpose(1, 0, 2),    # row 0 left, column 0 bottom
}


@pytest.mark.parametrize("orientation", sorted(_STORED))
def test_every_exif_orientation_comes_out_upright(tmp_path, orientation):
    upright = _UPRIGHT_COLOURS.repeat(8, axis=0).repeat(8, axis=1)  # 16 x 24 px
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    stored = Image.fromarray(np.ascontiguousarray(_STORED[orientation](upright)))
    stored.save(tmp_path / "photo.jpg", exif=exif, quality=95, subsampling=0)
    image = load_image(tmp_path / "photo.jpg")
    assert image.size == (24, 16)
    for (by, bx), colour in np.ndenumerate(_UPRIGHT_COLOURS[..., 0]):
        assert _is(image.getpixel((8 * bx + 4, 8 * by + 4)), tuple(_UPRIGHT_COLOURS[by, bx])), (by, bx)
    out, report = _inspect(tmp_path, {1: "photo.jpg"})
    assert (out.loc[1, "width"], out.loc[1, "height"]) == (24, 16)  # the upright size, though drafted
    assert f"Orientation={orientation}" in _details(report, "exif_orientation_applied")[1]


def test_phone_mpo_with_orientation_6_is_upright_and_not_noted_as_animated(tmp_path):
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    stored = Image.new("RGB", (32, 16), (255, 0, 0))
    stored.paste((0, 0, 255), (16, 0, 32, 16))  # left red, right blue: upright, red on top
    stored.save(tmp_path / "phone.jpg", "MPO", save_all=True, append_images=[Image.new("RGB", (32, 16), (0, 255, 0))],
                exif=exif)
    image = load_image(tmp_path / "phone.jpg")
    assert image.size == (16, 32)
    assert _is(image.getpixel((8, 4)), (255, 0, 0)) and _is(image.getpixel((8, 28)), (0, 0, 255))
    out, report = _inspect(tmp_path, {1: "phone.jpg"})
    assert (out.loc[1, "width"], out.loc[1, "height"]) == (16, 32)
    assert [e.reason for e in report.entries] == ["exif_orientation_applied"]


def test_corrupt_exif_is_noted_and_the_image_kept(tmp_path):
    image = Image.new("RGB", (8, 4), (10, 200, 10))
    garbage = b"Exif\x00\x00" + b"\xde\xad\xbe\xef" * 8  # an APP1 Exif segment that is no TIFF
    cut = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x05\x01\x12"  # 5 entries announced, none there
    bad_value = Image.Exif()
    bad_value[ExifTags.Base.Orientation] = 9
    image.save(tmp_path / "garbage.jpg", exif=garbage)
    image.save(tmp_path / "cut.jpg", exif=cut)
    image.save(tmp_path / "nine.jpg", exif=bad_value)
    for name in ("garbage.jpg", "cut.jpg", "nine.jpg"):
        loaded = load_image(tmp_path / name)
        assert loaded.size == (8, 4) and _is(loaded.getpixel((4, 2)), (10, 200, 10), 10), name
    out, report = _inspect(tmp_path, {1: "garbage.jpg", 2: "cut.jpg", 3: "nine.jpg"})
    assert out["image_ok"].all() and (out["width"] == 8).all() and (out["height"] == 4).all()
    assert report.guids(stage="images", action="noted", reason="exif_unreadable") == [1, 2, 3]
    assert report.guids(stage="images", action="excluded") == []
    details = _details(report, "exif_unreadable")
    assert "SyntaxError" in details[1] and "corrupt EXIF" in details[2] and "Orientation 9" in details[3]


@pytest.mark.parametrize(("mode", "values", "expected"), [
    ("I;16B", [0, 32768, 65535], [0, 128, 255]),     # 16-bit: x 255 / 65535
    ("I", [0, 1000, 65535], [0, 4, 255]),            # 32-bit within 0..65535: read as 16-bit
    ("I", [-100, 0, 155], [0, 100, 255]),            # other 32-bit values: min..max
    ("I", [0, 100_000, 255_000], [0, 100, 255]),
    ("F", [0.0, 0.2, 1.0], [0, 51, 255]),            # float in [0, 1]: x 255
    ("F", [-1.0, 0.0, 4.0], [0, 51, 255]),           # other floats: min..max
    ("F", [float("nan"), 0.0, 4.0], [0, 0, 255]),    # NaN to the low end
])
def test_wide_modes_are_scaled_to_8_bit(mode, values, expected):
    dtype = {"I;16B": ">u2", "I": "<i4", "F": "<f4"}[mode]
    image = Image.frombytes(mode, (3, 1), np.array(values, dtype=dtype).tobytes())
    rgb, repair = to_rgb(image)
    assert rgb.mode == "RGB" and repair == f"mode_{mode}_to_RGB"
    assert [rgb.getpixel((x, 0)) for x in range(3)] == [(v, v, v) for v in expected]


def test_32_bit_and_float_tiffs_load_scaled(tmp_path):
    ramp = np.linspace(0, 1, 64, dtype=np.float32)[None, :].repeat(8, axis=0)
    Image.fromarray(ramp, mode="F").save(tmp_path / "float.tif")
    Image.fromarray((ramp * 1_000_000).astype(np.int32), mode="I").save(tmp_path / "int32.tif")
    for name in ("float.tif", "int32.tif"):
        pixels = np.asarray(load_image(tmp_path / name), dtype=float)[..., 0]
        assert pixels[:, 0].max() == 0 and pixels[:, -1].min() == 255, name
        assert abs(pixels.mean() - 127.5) < 3 and len(np.unique(pixels)) == 64, name


def _animated_frames() -> list[Image.Image]:
    """Three 8 x 8 frames: a 3 x 3 square (red, then blue, then green) moving on a transparent ground."""
    frames = []
    for step, colour in enumerate([(255, 0, 0), (0, 0, 255), (0, 255, 0)]):
        frame = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
        frame.paste(colour + (255,), (step, step, step + 3, step + 3))
        frames.append(frame)
    return frames


@pytest.mark.parametrize("suffix", [".gif", ".png", ".webp"])
def test_animated_image_gives_its_first_frame_on_white(tmp_path, suffix):
    frames = _animated_frames()
    options = {".gif": {"disposal": 2, "loop": 0}, ".png": {}, ".webp": {"lossless": True}}[suffix]
    frames[0].save(tmp_path / f"moving{suffix}", save_all=True, append_images=frames[1:], duration=100, **options)
    with Image.open(tmp_path / f"moving{suffix}") as raw:
        assert raw.n_frames == 3
    image = load_image(tmp_path / f"moving{suffix}")
    assert image.size == (8, 8)
    assert image.getpixel((0, 0)) == (255, 0, 0) and image.getpixel((2, 2)) == (255, 0, 0)  # frame 0
    assert image.getpixel((3, 3)) == (255, 255, 255) and image.getpixel((7, 7)) == (255, 255, 255)  # not black
    out, report = _inspect(tmp_path, {7: f"moving{suffix}"})
    assert out.loc[7, "image_ok"]
    assert report.guids(stage="images", action="noted", reason="animated_first_frame") == [7]
    assert "3 frames" in _details(report, "animated_first_frame")[7]


def test_animated_gif_cut_in_a_later_frame_keeps_its_first(tmp_path):
    frames = _animated_frames()
    frames[0].save(tmp_path / "whole.gif", save_all=True, append_images=frames[1:], duration=100)
    data = (tmp_path / "whole.gif").read_bytes()
    cuts = []
    for cut in range(len(data) // 2, len(data)):  # Pillow raises struct.error, IndexError, ... counting frames
        (tmp_path / f"cut{cut}.jpg").write_bytes(data[:cut])
        cuts.append(cut)
    out, report = _inspect(tmp_path, {cut: f"cut{cut}.jpg" for cut in cuts})  # never raises
    readable = out[out["image_ok"]]
    assert len(readable) > len(cuts) // 2
    for cut in readable.index:
        assert load_image(tmp_path / f"cut{cut}.jpg").getpixel((1, 1)) == (255, 0, 0)


def test_grey_png_with_a_transparent_colour_is_composited_on_white(tmp_path):
    grey = Image.new("L", (4, 2), 0)
    grey.putpixel((3, 1), 200)
    path = tmp_path / "grey.png"
    grey.save(path, transparency=0)  # every black pixel is transparent
    pixels = load_image(path).load()
    assert pixels[0, 0] == (255, 255, 255) and pixels[3, 1] == (200, 200, 200)
