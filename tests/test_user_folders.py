"""Folders of posts as users bring them (issue 20): load_mvsa and inspect_images on each kind.

``tests/data/user_folders/`` holds copies of real cases (see the README in each folder); the other
kinds are built in ``tmp_path`` by the tests themselves.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from msa_utils.data import images
from msa_utils.data.data_report import DataReport
from msa_utils.data.images import inspect_images, load_image
from msa_utils.data.mvsa import IMAGE_SUFFIXES, data_files, load_mvsa
from msa_utils.data.posts import usable

USER_FOLDERS = Path(__file__).parent / "data" / "user_folders"


def _load_and_inspect(folder: Path) -> tuple[pd.DataFrame, DataReport]:
    """load_mvsa then inspect_images of ``folder``, indexed by guid, with their report."""
    report = DataReport()
    frame = inspect_images(load_mvsa(folder, report), folder, report)
    return frame.set_index("guid"), report


def _details(report: DataReport, reason: str) -> dict[int, str]:
    return {e.guid: e.detail for e in report.entries if e.reason == reason}


def _codes(report: DataReport, stage: str) -> set[str]:
    return {e.reason for e in report.entries if e.stage == stage}


# --- png_webp_images: 4208.png, 1502.webp, 8.PNG next to .jpg images -------------------------

def test_png_and_webp_images_are_each_posts_image():
    folder = USER_FOLDERS / "png_webp_images"
    frame, report = _load_and_inspect(folder)
    assert len(frame) == 51 and (frame["split"] == "train").sum() == 45
    assert frame.loc[[4208, 1502, 8], "image_file"].tolist() == ["data/4208.png", "data/1502.webp", "data/8.PNG"]
    assert frame["has_image"].all() and frame["image_ok"].all()
    assert usable(frame.reset_index()).all()  # no post trains (or is predicted) text-only
    assert frame.loc[4208, ["width", "height"]].tolist() == [180, 320]
    assert frame.loc[1502, ["width", "height"]].tolist() == [320, 213]
    assert frame.loc[8, ["width", "height"]].tolist() == [320, 239]
    assert report.guids(action="excluded") == []
    assert _codes(report, "images") == {"image_format_PNG", "image_format_WEBP"}  # no format_mismatch
    assert report.guids(reason="image_format_PNG") == [8, 4208]
    assert report.guids(reason="image_format_WEBP") == [1502]
    assert "PNG" in _details(report, "image_format_PNG")[8] and "data/8.PNG" in _details(report, "image_format_PNG")[8]
    assert load_image(folder / "data" / "1502.webp").size == (320, 213)


# --- built here: every suffix, upper case, conflicts, content that is not what the suffix says --

COLOUR = (200, 40, 90)


def _image_bytes(fmt: str) -> bytes:
    """A 24 x 18 image of :data:`COLOUR` in Pillow format ``fmt``."""
    buffer = io.BytesIO()
    Image.new("RGB", (24, 18), COLOUR).save(buffer, format=fmt)
    return buffer.getvalue()


IMAGES = {  # guid: (file names, Pillow format of the bytes in each)
    1: (["1.jpeg"], "JPEG"), 2: (["2.gif"], "GIF"), 3: (["3.bmp"], "BMP"), 4: (["4.tiff"], "TIFF"),
    6: (["6.tif"], "TIFF"), 7: (["7.webp"], "WEBP"), 8: (["8.PNG"], "PNG"), 9: (["9.JPG"], "JPEG"),
    10: (["10.Jpeg"], "JPEG"), 11: (["11.png"], "JPEG"), 14: (["14.Tiff"], "TIFF"),
    5: (["5.jpg", "5.png"], "JPEG"), 12: ([], None), 13: (["13.heic", "13.jpg.bak"], "JPEG"),
}


@pytest.fixture
def suffix_folder(tmp_path) -> Path:
    """An MVSA folder whose posts' images have every accepted suffix, and the odd cases of :data:`IMAGES`."""
    (tmp_path / "data").mkdir()
    for guid, (names, fmt) in IMAGES.items():
        (tmp_path / "data" / f"{guid}.txt").write_text(f"post number {guid}")
        for name in names:
            (tmp_path / "data" / name).write_bytes(_image_bytes(fmt))
    tags = ["positive", "negative", "neutral"]
    (tmp_path / "train.txt").write_text("guid,tag\n" + "".join(f"{g},{tags[g % 3]}\n" for g in IMAGES if g != 14))
    (tmp_path / "test_without_label.txt").write_text("guid,tag\n14,null\n")
    return tmp_path


def test_every_image_suffix_in_any_case_is_read(suffix_folder):
    frame, report = _load_and_inspect(suffix_folder)
    single = {guid: names[0] for guid, (names, _) in IMAGES.items() if len(names) == 1 and guid != 13}
    for guid, name in single.items():
        assert frame.loc[guid, "image_file"] == f"data/{name}", guid
        assert frame.loc[guid, "has_image"] and frame.loc[guid, "image_ok"], guid
        assert (frame.loc[guid, "width"], frame.loc[guid, "height"]) == (24, 18), guid
        pixel = load_image(suffix_folder / "data" / name).getpixel((12, 9))
        assert all(abs(a - b) <= 8 for a, b in zip(pixel, COLOUR)), (guid, pixel)  # JPEG: close, others: exact
    assert report.guids(reason="image_format_GIF") == [2]
    assert report.guids(reason="image_format_BMP") == [3]
    assert report.guids(reason="image_format_TIFF") == [4, 6, 14]
    assert report.guids(reason="image_format_WEBP") == [7]
    assert report.guids(reason="image_format_PNG") == [8]
    for guid in (1, 9, 10):  # JPEG under .jpeg, .JPG, .Jpeg: nothing to note
        assert guid not in report.guids(), guid


def test_a_png_holding_jpeg_bytes_is_read_by_content_and_noted(suffix_folder):
    frame, report = _load_and_inspect(suffix_folder)
    assert frame.loc[11, "image_ok"]
    assert report.guids(reason="format_mismatch") == [11]
    assert _details(report, "format_mismatch")[11] == "data/11.png holds JPEG data; read by content"
    assert not any(code.startswith("image_format_") for code in {e.reason for e in report.entries if e.guid == 11})


def test_two_image_files_for_one_guid_are_a_reported_conflict(suffix_folder):
    frame, report = _load_and_inspect(suffix_folder)
    assert report.guids(stage="load", action="excluded", reason="conflicting_image_files") == [5]
    detail = _details(report, "conflicting_image_files")[5]
    assert "data/5.jpg" in detail and "data/5.png" in detail
    assert frame.loc[5, "image_file"] == "" and not frame.loc[5, "has_image"] and not frame.loc[5, "image_ok"]
    assert frame.loc[5, "has_text"]  # the text is fine; the post is not trained on
    assert 5 not in report.guids(stage="images")
    assert not usable(frame.reset_index().query("guid == 5")).any()


def test_same_name_in_two_cases_is_a_conflict(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "5.jpg").write_bytes(_image_bytes("JPEG"))
    (tmp_path / "data" / "5.JPG").write_bytes(_image_bytes("JPEG"))
    if len(list((tmp_path / "data").iterdir())) < 2:
        pytest.skip("case-insensitive file system: 5.jpg and 5.JPG are one file")
    (tmp_path / "data" / "5.txt").write_text("hello")
    (tmp_path / "train.txt").write_text("guid,tag\n5,positive\n")
    (tmp_path / "test_without_label.txt").write_text("guid,tag\n")
    frame, report = _load_and_inspect(tmp_path)
    assert not frame.loc[5, "has_image"]
    assert _details(report, "conflicting_image_files")[5].startswith("2 image files: data/5.JPG, data/5.jpg;")


def test_no_image_or_only_other_suffixes_is_a_missing_image(suffix_folder):
    frame, report = _load_and_inspect(suffix_folder)
    assert report.guids(stage="load", reason="missing_image_file") == [12, 13]  # 13.heic, 13.jpg.bak: not images
    assert not frame.loc[[12, 13], "has_image"].any()
    assert frame.loc[12, "image_file"] == "data/12.jpg"
    assert _details(report, "missing_image_file")[12].startswith(
        "no image file data/12.{jpg,jpeg,png,webp,gif,bmp,tif,tiff} (any case); row kept with has_image=False")


def test_data_files_lists_texts_and_images_by_guid(tmp_path):
    for name in ("5.jpg", "5.PNG", "7.txt", "7.webp", "0042.jpg", "abc.png", "8.tar.gz", "9.jpg.bak", "10.Tif", "11"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "12.png").mkdir()  # a folder: listed, inspect_images reports it as not a file
    texts, found = data_files(tmp_path)
    assert texts == {7}
    assert found == {5: ["5.PNG", "5.jpg"], 7: ["7.webp"], 10: ["10.Tif"], 12: ["12.png"]}
    assert set(IMAGE_SUFFIXES) == {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
    assert set(images._SUFFIX_FORMATS) == set(IMAGE_SUFFIXES)  # each suffix has the formats it stands for
