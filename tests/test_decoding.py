"""Tests of msa_utils.data.decoding: the encoding of a text is chosen by evidence, not by the first that decodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from msa_utils.data.mvsa import load_mvsa
from msa_utils.data.data_report import DataReport
from msa_utils.data.decoding import decode_legacy, decode_text_bytes, implausibility

WILD = Path(__file__).parent / "data" / "mvsa_wild"


def test_windows_1252_text_that_is_also_valid_gb18030_is_not_read_as_chinese():
    raw = (WILD / "data" / "9506.txt").read_bytes()
    assert raw.decode("gb18030").startswith("Don抰")  # the wrong reading exists ...
    text, encoding, repair = decode_text_bytes(raw)
    assert (text.strip(), encoding, repair) == (  # ... and is not chosen
        "Don’t stop me now, I’m having such a good time", "cp1252", "decoded_windows_1252")


def test_windows_1252_text_that_is_not_gb18030_is_kept_not_excluded():
    raw = (WILD / "data" / "9507.txt").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("gb18030")
    text, encoding, repair = decode_text_bytes(raw)
    assert (text.strip(), encoding, repair) == ("“Best day ever” – can’t stop smiling…", "cp1252", "decoded_windows_1252")


@pytest.mark.parametrize("text", [
    "“@anna: we’re off to the café” — à bientôt",  # “@ would be one GB18030 character
    "Ça va très bien, merci à toi ½ £5",
    "Señor Muñoz: ¿qué tal? ¡olé!",
    "I‘m sure it’s fine… • really",
])
def test_other_windows_1252_texts(text):
    assert decode_text_bytes(text.encode("cp1252")) == (text, "cp1252", "decoded_windows_1252")


@pytest.mark.parametrize("text", ["Привет, как дела? Отличный день", "Москва — лучший город «на земле»"])
def test_windows_1251_cyrillic(text):
    assert decode_text_bytes(text.encode("cp1251")) == (text, "cp1251", "decoded_windows_1251")


@pytest.mark.parametrize("text", [
    "“this is all yours” has arrived",  # GBK curly quotes: ¡° in Windows-1252
    "last winter – whatever happened",  # GBK en dash: ¨C in Windows-1252
    "Comment #spiderman est mort et ressuscité",  # GBK pinyin letters
    "Chillin' #хлебивино #party",  # GBK Cyrillic
    "iPhone用 pixivに投稿しました",
    "今天天气很好，我们去公园吧！",
])
def test_gbk_texts_stay_gb18030(text):
    assert decode_text_bytes(text.encode("gb18030")) == (text, "gb18030", "decoded_gb18030")


def test_the_release_decodes_as_before():
    """The release's 1,063 listed GB18030 texts (1,061 + 2 valid UTF-8 by accident) keep their encoding."""
    frame = load_mvsa(Path(__file__).resolve().parent.parent / "data" / "mvsa_ecnu", report := DataReport())
    assert frame["encoding"].value_counts().to_dict() == {"ascii": 3448, "gb18030": 1063}
    counts = report.to_frame().query("stage == 'load'").groupby("reason").size().to_dict()
    assert counts == {"decoded_gb18030": 1061, "decoded_gb18030_not_utf8": 2, "unlabelled_unused": 358}


def test_implausibility_counts_the_signs_of_a_wrong_reading():
    assert implausibility("plain ascii, 100% fine") == 0
    assert implausibility("Don’t stop, I’m fine") == 0
    assert implausibility("Don抰 stop, I抦 fine") == 2  # ideographs that swallowed an ASCII letter
    assert implausibility("¡°quoted¡±") == 4  # Latin-1 symbols next to each other
    assert implausibility("Ïðèâåò") == 1  # a Latin word of mostly accented letters
    assert implausibility("trиs") == 1  # a word that mixes scripts


def test_bytes_that_are_text_in_no_candidate_are_left_to_the_caller():
    raw = b"bad \x81\x98\xff byte"  # 0x81 undefined in Windows-1252, 0x98 in Windows-1251, 0xFF no GB18030 lead
    assert decode_legacy(raw) is None
    assert decode_text_bytes(raw)[2] == "decoded_gb18030_with_replacement"
    assert decode_legacy(b"ctrl \x01 char \xe9") is None  # control characters: not text in any candidate


@pytest.mark.parametrize("text", ["1º de mayo", "Nº 1 fan", "Mi 1ª vez", "5µm chip", "Happy π day!", "café Ω 😀 Я"])
def test_utf8_with_a_stray_symbol_or_letter_stays_utf8(text):
    """Not taken for GBK bytes that happen to be valid UTF-8 (the rescue of guids 3323 and 4499)."""
    assert decode_text_bytes(text.encode("utf-8")) == (text, "utf-8", None)


@pytest.mark.parametrize("text, encoding", [
    ("Привет", "cp1251"), ("Москва", "cp1251"), ("Доброе утро", "cp1251"), ("Всем привет!", "cp1251"),
    ("déçu", "cp1252"), ("coração", "cp1252"), ("Ação", "cp1252"), ("süß", "cp1252"), ("café", "cp1252"),
])
def test_short_single_byte_texts_whose_gb18030_reading_is_rare_ideographs(text, encoding):
    assert decode_text_bytes(text.encode(encoding))[:2] == (text, encoding)


def test_utf16_without_a_mark_for_a_text_with_no_latin_letters():
    raw = "Привет мир".encode("utf-16-le")  # its only zero bytes are those of the space
    assert decode_text_bytes(raw) == ("Привет мир", "utf-16", "decoded_utf16_no_bom")

