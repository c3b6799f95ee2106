"""Tests of msa_utils.data.decoding: the encoding of a text is chosen by evidence, not by the first that decodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from msa_utils.data.mvsa import load_mvsa
from msa_utils.data.data_report import DataReport
from msa_utils.data.decoding import decode_legacy, decode_text_bytes, implausibility, reads_cleanly

WILD = Path(__file__).parent / "data" / "mvsa_wild"
MVSA = Path(__file__).resolve().parent.parent / "data" / "mvsa_ecnu"


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
    assert decode_text_bytes(raw) == ("bad \ufffd\ufffd\ufffd byte", "utf-8", "decoded_utf8_with_replacement")
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



# --- garbage: bytes that no candidate reads cleanly (issue 20) ------------------------------------

@pytest.mark.parametrize("raw, valid_in", [
    (b"great \xff\xfe\x80\x81 day \xc3", ["cp1251"]),  # read as Windows-1251 `great яюЂЃ day Г` before
    (b"ok \xf0\x9f\x98 party \xba\xdd\xbb", ["cp1252"]),  # a cut emoji: `ok ðŸ˜ party ºÝ»`
    (b"hello \xb6\xe5\xb3\xa9\xd7 world", ["cp1252", "cp1251"]),  # `¶å³©×`, `¶еі©Ч`
    (b"so happy \xfd\xfd\xda\xdf today", ["gb18030", "cp1252", "cp1251"]),  # `ýýÚß`, `ээЪЯ`, private use
    (b"so happy \x90\xe4\xac\xbd today", ["gb18030", "cp1251"]),  # `ђд¬Ѕ`
])
def test_garbage_in_every_encoding_gets_replacement_characters(raw, valid_in):
    for encoding in valid_in:  # each candidate does decode it ...
        raw.decode(encoding)
    assert decode_legacy(raw) is None  # ... into something that is not text
    text, encoding, repair = decode_text_bytes(raw)
    assert (text, encoding, repair) == (raw.decode("utf-8", errors="replace"), "utf-8", "decoded_utf8_with_replacement")
    assert "\ufffd" in text and text.split()[0] == raw.split()[0].decode()  # ASCII words kept as they are


def test_the_garbage_of_the_issue_reads_as_replacement_characters():
    assert decode_text_bytes(b"great \xff\xfe\x80\x81 day \xc3")[0] == "great \ufffd\ufffd\ufffd\ufffd day \ufffd"
    assert not reads_cleanly("great яюЂЃ day Г")  # an odd word (`яюЂЃ`) in 5 non-ASCII characters


@pytest.mark.parametrize("guid", [
    4761,  # kaomoji `˙`: a modifier letter GBK added with an ASCII second byte
    5084,  # four phone emoji in the private-use area
    4537,  # Japanese kanji from GBK's extension, ASCII second bytes (`絶賛発`)
    4094,  # both
])
def test_release_texts_whose_gbk_signs_score_still_decode(guid):
    raw = (MVSA / "data" / f"{guid}.txt").read_bytes()
    assert implausibility(raw.decode("gb18030")) > 0
    assert decode_text_bytes(raw) == (raw.decode("gb18030"), "gb18030", "decoded_gb18030")


def test_every_non_ascii_text_of_the_release_reads_cleanly_as_gb18030():
    """The measurement of docs/data-handling.md: no text of the release is near the limit."""
    texts = [raw.decode("gb18030") for path in sorted((MVSA / "data").glob("*.txt"))
             if not (raw := path.read_bytes()).isascii()]
    assert len(texts) == 1133
    assert all(reads_cleanly(text) for text in texts)
    assert sum(implausibility(text) > 0 for text in texts) == 45


@pytest.mark.parametrize("text, encoding", [
    ("#ностальгия #домМейерхольда #nostalgia #пенза", "cp1251"),  # one odd (CamelCase) word in 30 letters
    ("Не могу поверить, что лето закончилось", "cp1251"),
    ("Très bien! On se voit à 20h, d’accord?", "cp1252"),
    ("caf\xff", "cp1252"),  # a stray 0xFF in English: Latin-1 `ÿ`, as before
])
def test_real_single_byte_texts_still_decode(text, encoding):
    assert decode_text_bytes(text.encode(encoding))[:2] == (text, encoding)
