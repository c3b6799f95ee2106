"""Tests of msa_utils.images: size bound, mode repair, broken files, inspect_images."""

from __future__ import annotations

import struct
import zlib

import pandas as pd
import pytest
from PIL import Image

from msa_utils.data import load_mvsa
from msa_utils.data_report import DataReport
from msa_utils.images import ImageLoadError, inspect_images, load_image, to_rgb


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
    from msa_utils import images

    Image.new("RGB", (30, 20)).save(tmp_path / "ok.jpg")
    monkeypatch.setattr(images, "MAX_FILE_BYTES", (tmp_path / "ok.jpg").stat().st_size - 1)
    with pytest.raises(ImageLoadError) as info:
        load_image(tmp_path / "ok.jpg")
    assert info.value.reason == "too_large" and "bytes" in str(info.value)
