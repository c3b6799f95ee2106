"""Tests of msa_utils.data.mvsa: decoding, label parsing, the report, sampling (real MVSA files)."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from msa_utils.data.decoding import decode_text_bytes, looks_like_mojibake
from msa_utils.data.mvsa import LOADED_COLUMNS, load_mvsa
from msa_utils.data.posts import sample_posts
from msa_utils.data.data_report import DataReport

from conftest import MVSA_DIR


def _write_labels(root, train: str, test: str = "guid,tag\n") -> None:
    (root / "train.txt").write_text(train)
    (root / "test_without_label.txt").write_text(test)


def _entries(report: DataReport, reason: str) -> list[int]:
    return report.guids(reason=reason)


def test_sample_columns_types_and_splits(mvsa_sample):
    report = DataReport()
    frame = load_mvsa(mvsa_sample, report)
    assert list(frame.columns) == LOADED_COLUMNS
    assert len(frame) == 8
    assert frame["label"].dtype == "Int64"
    train = frame[frame["split"] == "train"].set_index("guid")
    test = frame[frame["split"] == "test"].set_index("guid")
    assert train.loc[4211, "label"] == 1 and train.loc[2, "label"] == 0
    assert test["label"].isna().all() and set(test["tag"]) == {"null"}
    assert train.loc[4211, "image_file"] == "data/4211.jpg"
    assert frame["has_text"].all() and frame["has_image"].all()
    assert not frame["text_raw"].str.contains("[\r\n]").any()


def test_decoding_of_real_files(mvsa_sample):
    report = DataReport()
    frame = load_mvsa(mvsa_sample, report).set_index("guid")
    assert frame.loc[4211, "text_raw"] == "Wow" and frame.loc[4211, "encoding"] == "ascii"
    assert frame.loc[55, "text_raw"].startswith("だいぶ眠い。仮眠とるか。")
    assert "€" in frame.loc[824, "text_raw"]  # needs GB18030, not plain GBK
    assert "“@_noo_remorse" in frame.loc[5084, "text_raw"]
    assert "(笑)" in frame.loc[4499, "text_raw"] and "Ц" not in frame.loc[4499, "text_raw"]
    assert "炉500" in frame.loc[3323, "text_raw"]
    assert set(frame.loc[[2, 55, 71, 824, 3323, 4499, 5084], "encoding"]) == {"gb18030"}
    assert _entries(report, "decoded_gb18030") == [2, 55, 71, 824, 5084]
    assert _entries(report, "decoded_gb18030_not_utf8") == [3323, 4499]
    assert {e.action for e in report.entries} == {"repaired"}


@pytest.mark.parametrize("text", ["está bien, mañana", "Привет, как дела", "日本語のテキスト", "café ☕ time"])
def test_genuine_utf8_is_kept(text):
    decoded, encoding, repair = decode_text_bytes(text.encode("utf-8"))
    assert (decoded, encoding, repair) == (text, "utf-8", None)
    assert not looks_like_mojibake(text)


def test_bytes_invalid_everywhere_are_excluded_not_trained_on(mvsa_sample):
    # 0x81: undefined in Windows-1252; 0x98: in Windows-1251; 0xFF: no GB18030 lead byte
    (mvsa_sample / "data" / "4211.txt").write_bytes(b"bad \x81\x98\xff byte\r\n")
    report = DataReport()
    frame = load_mvsa(mvsa_sample, report).set_index("guid")
    assert frame.loc[4211, "text_raw"].endswith("\ufffd byte")  # kept for display
    assert not frame.loc[4211, "has_text"]
    assert report.guids(action="excluded", reason="undecodable_text") == [4211]


def test_garbage_that_one_encoding_decodes_is_excluded_with_replacement_characters(mvsa_sample):
    (mvsa_sample / "data" / "4211.txt").write_bytes(b"great \xff\xfe\x80\x81 day \xc3\r\n")  # Windows-1251: `яюЂЃ`, `Г`
    report = DataReport()
    frame = load_mvsa(mvsa_sample, report).set_index("guid")
    assert frame.loc[4211, ["text_raw", "encoding", "has_text"]].tolist() == ["great \ufffd\ufffd\ufffd\ufffd day \ufffd",
                                                                           "utf-8", False]
    assert report.guids(action="excluded", reason="undecodable_text") == [4211]
    assert "reads cleanly in none of" in next(e.detail for e in report.entries if e.reason == "undecodable_text")


@pytest.mark.parametrize("raw, encoding, reason", [
    ("Café très bon".encode("utf-8-sig"), "utf-8", "utf8_bom_removed"),
    ("Café très bon".encode("utf-16"), "utf-16", "decoded_utf16"),
])
def test_byte_order_marks_are_honoured(raw, encoding, reason):
    assert decode_text_bytes(raw) == ("Café très bon", encoding, reason)


def test_multiline_text_is_joined(mvsa_sample):
    (mvsa_sample / "data" / "4211.txt").write_bytes(b"first line\r\n\r\nsecond line\r\n")
    frame = load_mvsa(mvsa_sample, DataReport()).set_index("guid")
    assert frame.loc[4211, "text_raw"] == "first line second line"


def test_label_parsing_case_whitespace_unknown_duplicates(mvsa_sample):
    _write_labels(
        mvsa_sample,
        "guid,tag\n2, Positive \n71,NEGATIVE\t\n3323,happy\n4211,neutral\n4211,Neutral\n"
        "4499,positive\n4499,negative\nabc,positive\n5084,positive\n",
        "guid,tag\n55,null\n5084,null\n824,null\n",
    )
    report = DataReport()
    frame = load_mvsa(mvsa_sample, report).set_index("guid")
    assert frame.loc[2, "tag"] == "positive" and frame.loc[71, "label"] == 1
    assert frame.loc[4211, "label"] == 2 and frame.index.is_unique
    assert 3323 not in frame.index and 4499 not in frame.index
    assert frame.loc[5084, "split"] == "train"
    assert report.guids(action="excluded", reason="unknown_label") == [3323]
    assert report.guids(action="repaired", reason="label_normalised") == [2, 71, 4211]
    assert report.guids(action="repaired", reason="duplicate_guid_same_label") == [4211]
    assert report.guids(action="excluded", reason="duplicate_guid_conflicting_labels") == [4499]
    assert report.guids(action="excluded", reason="guid_in_train_and_test") == [5084]
    assert [e.reason for e in report.entries if e.guid is None] == ["bad_guid"]
    # excluded guids whose files exist are not also reported as unlabelled
    assert _entries(report, "unlabelled_unused") == []


def test_every_listed_guid_is_in_the_frame_or_the_report(mvsa_sample):
    _write_labels(mvsa_sample, "guid,tag\n2,positive\n71,meh\n4499,positive\n4499,neutral\n",
                  "guid,tag\n55,null\n")
    report = DataReport()
    frame = load_mvsa(mvsa_sample, report)
    listed = {2, 71, 4499, 55}
    assert listed == set(frame["guid"]) | set(report.guids(action="excluded"))
    assert _entries(report, "unlabelled_unused") == [824, 3323, 4211, 5084]


def test_missing_text_and_image_keep_the_row(mvsa_sample):
    (mvsa_sample / "data" / "2.txt").unlink()
    (mvsa_sample / "data" / "55.jpg").unlink()
    (mvsa_sample / "data" / "71.txt").write_bytes(b"\r\n")
    report = DataReport()
    frame = load_mvsa(mvsa_sample, report).set_index("guid")
    assert not frame.loc[2, "has_text"] and frame.loc[2, "text_raw"] == "" and frame.loc[2, "has_image"]
    assert not frame.loc[55, "has_image"] and frame.loc[55, "has_text"]
    assert not frame.loc[71, "has_text"]
    assert report.guids(action="excluded", reason="missing_text_file") == [2]
    assert report.guids(action="excluded", reason="missing_image_file") == [55]
    assert report.guids(action="excluded", reason="empty_text_file") == [71]
    assert all("trainer skips it" in e.detail for e in report.entries if e.action == "excluded")


def test_clear_errors_for_missing_inputs(tmp_path, mvsa_sample):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_mvsa(tmp_path / "nowhere", DataReport())
    (mvsa_sample / "test_without_label.txt").unlink()  # optional: only labelled posts, said in the report
    report = DataReport()
    assert set(load_mvsa(mvsa_sample, report)["split"]) == {"train"}
    assert [e.reason for e in report.entries if e.guid is None] == ["no_posts_to_predict"]
    (mvsa_sample / "train.txt").unlink()
    with pytest.raises(FileNotFoundError, match="train.txt"):
        load_mvsa(mvsa_sample, DataReport())
    shutil.rmtree(mvsa_sample / "data")
    with pytest.raises(FileNotFoundError, match="data"):
        load_mvsa(mvsa_sample, DataReport())


def test_a_malformed_label_line_is_excluded_with_its_line_number_not_fatal(mvsa_sample):
    train = ("guid,tag\r\n2,positive\r\n\r\n   \r\n71,negative,extra\r\n\"4211,neutral\r\n"
             "0042,positive\r\n\u0664\u0664\u0669\u0669,positive\r\n4499,positive\r\n")
    (mvsa_sample / "train.txt").write_bytes(b"\xef\xbb\xbf" + train.encode("utf-8"))  # BOM, CRLF
    (mvsa_sample / "test_without_label.txt").write_bytes("guid,tag\n55,null\n".encode("utf-16"))
    report = DataReport()
    frame = load_mvsa(mvsa_sample, report)
    assert frame["guid"].tolist() == [2, 4499, 55]
    bad = [(e.reason, e.detail.split(":")[0]) for e in report.entries if e.guid is None and e.action == "excluded"]
    assert bad == [("bad_label_line", "train.txt line 5"), ("bad_label_line", "train.txt line 6"),
                   ("bad_guid", "train.txt line 7"), ("bad_guid", "train.txt line 8")]
    assert {e.reason for e in report.entries if e.guid is None and e.action == "repaired"} == {
        "label_file_utf8_bom_removed", "label_file_decoded_utf16"}


def test_label_columns_may_come_in_any_order(mvsa_sample):
    _write_labels(mvsa_sample, "Tag,GUID,source\npositive,2,web\n", "guid,tag\n55,null\n")
    frame = load_mvsa(mvsa_sample, DataReport())
    assert frame[["guid", "tag"]].values.tolist() == [[2, "positive"], [55, "null"]]


def test_bad_header_is_a_value_error(mvsa_sample):
    _write_labels(mvsa_sample, "id,label\n2,positive\n")
    with pytest.raises(ValueError, match="guid,tag"):
        load_mvsa(mvsa_sample, DataReport())


def _toy_frame() -> pd.DataFrame:
    labels = [0] * 60 + [1] * 30 + [2] * 10
    frame = pd.DataFrame({"guid": range(100), "split": "train", "label": pd.array(labels, dtype="Int64")})
    test = pd.DataFrame({"guid": range(100, 120), "split": "test", "label": pd.array([pd.NA] * 20, dtype="Int64")})
    return pd.concat([frame, test], ignore_index=True)


def test_sample_posts_is_stratified_seeded_and_reported():
    frame = _toy_frame()
    report = DataReport()
    sample = sample_posts(frame, 20, 5, seed=0, report=report)
    train = sample[sample["split"] == "train"]
    assert train["label"].value_counts().to_dict() == {0: 12, 1: 6, 2: 2}
    assert list(sample.loc[sample["split"] == "test", "guid"]) == [100, 101, 102, 103, 104]
    assert sample.index.is_monotonic_increasing
    assert sample["guid"].tolist() == sample_posts(frame, 20, 5, seed=0)["guid"].tolist()
    assert sample["guid"].tolist() != sample_posts(frame, 20, 5, seed=1)["guid"].tolist()
    assert len(report.guids(stage="sample", reason="not_in_sample")) == 120 - 25
    assert set(report.guids()) | set(sample["guid"]) == set(frame["guid"])


def test_sample_posts_none_keeps_all_and_small_samples_keep_the_class_shares():
    frame = _toy_frame()
    assert sample_posts(frame, None, None, seed=0).equals(frame)
    small = sample_posts(frame, 10, 0, seed=0)
    assert small["label"].value_counts().to_dict() == {0: 6, 1: 3, 2: 1}
    assert len(sample_posts(frame, 1000, 0, seed=0)) == 100  # more than there are: all train posts
    with pytest.raises(ValueError):
        sample_posts(frame, -1, None, seed=0)


@pytest.mark.skipif(not (MVSA_DIR / "data").is_dir(), reason="MVSA data not checked out")
def test_full_data_counts():
    report = DataReport()
    frame = load_mvsa(MVSA_DIR, report)
    assert frame["split"].value_counts().to_dict() == {"train": 4000, "test": 511}
    assert frame["label"].value_counts().to_dict() == {0: 2388, 1: 1193, 2: 419}
    assert len(report.guids(reason="unlabelled_unused")) == 358
    assert report.guids(reason="decoded_gb18030_not_utf8") == [3323, 4499]
    assert frame["has_text"].all() and frame["has_image"].all()
    assert not report.guids(action="excluded")


def test_a_text_path_that_cannot_be_read_is_excluded_not_fatal(mvsa_sample):
    (mvsa_sample / "data" / "4211.txt").unlink()
    (mvsa_sample / "data" / "4211.txt").mkdir()  # a directory where a file should be
    report = DataReport()
    frame = load_mvsa(mvsa_sample, report).set_index("guid")
    assert not frame.loc[4211, "has_text"]
    assert report.guids(action="excluded", reason="unreadable_text_file") == [4211]


def test_text_paths_that_are_not_files_or_too_big_are_excluded_without_reading_them(mvsa_sample):
    import os

    from msa_utils.data.mvsa import MAX_TEXT_BYTES

    data = mvsa_sample / "data"
    (data / "2.txt").unlink()
    (data / "2.txt").symlink_to("/dev/zero")  # endless: reading it would exhaust memory
    (data / "71.txt").unlink()
    os.mkfifo(data / "71.txt")  # a FIFO: reading it would block forever
    (data / "4211.txt").write_bytes(b"word " * (MAX_TEXT_BYTES // 5 + 1))
    (data / "4499.txt").write_bytes(b"word " * (MAX_TEXT_BYTES // 5))  # at the limit: read
    report = DataReport()
    frame = load_mvsa(mvsa_sample, report).set_index("guid")
    assert report.guids(action="excluded", reason="unreadable_text_file") == [2, 71]
    assert report.guids(action="excluded", reason="text_too_large") == [4211]
    assert not frame.loc[[2, 71, 4211], "has_text"].any() and frame.loc[4499, "has_text"]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_byte_order_mark_is_recognised(codec):
    assert decode_text_bytes("hello world, ¿qué tal? 今天".encode(codec)) == (
        "hello world, ¿qué tal? 今天", "utf-16", "decoded_utf16_no_bom")


def test_stray_nul_bytes_are_removed_not_read_as_utf16():
    assert decode_text_bytes(b"I love it\x00") == ("I love it", "ascii", "nul_bytes_removed")
    assert decode_text_bytes("\x00今天很好".encode("gb18030")) == ("今天很好", "gb18030", "nul_bytes_removed+decoded_gb18030")
    assert decode_text_bytes(b"abc\x00\x81\x98\xff") == ("abc\ufffd\ufffd\ufffd", "utf-8", "decoded_utf8_with_replacement")


def test_label_lines_that_break_csv_or_int64_are_excluded_not_fatal(mvsa_sample):
    _write_labels(mvsa_sample, "guid,tag\n2,positive\n" + "71,positive," + "x" * 140_000 + "\n"
                  "99999999999999999999,positive\n9223372036854775808,negative\n",
                  "guid,tag\n55,null\n")
    report = DataReport()
    frame = load_mvsa(mvsa_sample, report)
    assert frame["guid"].tolist() == [2, 55]
    assert [e.reason for e in report.entries if e.guid is None] == ["bad_label_line", "bad_guid", "bad_guid"]


def test_zero_padded_names_are_not_read_as_another_guid(mvsa_sample):
    data = mvsa_sample / "data"
    (data / "2.txt").rename(data / "002.txt")  # not guid 2's text
    _write_labels(mvsa_sample, "guid,tag\n2,positive\n002,positive\n", "guid,tag\n55,null\n")
    report = DataReport()
    frame = load_mvsa(mvsa_sample, report).set_index("guid")
    assert not frame.loc[2, "has_text"] and report.guids(reason="missing_text_file") == [2]
    assert [e.reason for e in report.entries if e.guid is None] == ["bad_guid"]
