"""Decoding a post's bytes: UTF-8, UTF-16, GBK/GB18030 (1,131 of the release's 4,869 texts) or a
Windows code page. Bytes valid in several (``b"Don\\x92t"``: Windows-1252 ``Don’t``, GB18030
``Don抰``) go to the reading with the least :func:`implausibility` (charset-normalizer compared in
``benchmarks/decoding.py`` and ``docs/data-handling.md``); bytes whose best reading is still garbage
(:func:`reads_cleanly`) are read as UTF-8 with U+FFFD and reported as such."""

from __future__ import annotations

import codecs
import unicodedata
from collections import Counter
from itertools import groupby

from msa_utils.data import reasons

LEGACY_REPAIRS: dict[str, str] = {"gb18030": reasons.DECODED_GB18030, "cp1252": reasons.DECODED_WINDOWS_1252,
                                  "cp1251": reasons.DECODED_WINDOWS_1251}
"""Candidates for bytes neither UTF-8 nor UTF-16, preferred in this order on a tie, with their repair codes."""
LEGACY_ENCODINGS: tuple[str, ...] = tuple(LEGACY_REPAIRS)
MAX_POINTS_PER_NON_ASCII = 0.1
"""A legacy reading with more :func:`implausibility` points per non-ASCII character, those of
:func:`_gbk_own` characters left out, is garbage (:func:`reads_cleanly`; measured in ``docs/data-handling.md``)."""

_EAST_ASIAN = {"CJK", "HIRAGANA", "KATAKANA", "HANGUL", "HALFWIDTH", "FULLWIDTH"}
_SUSPICIOUS_CATEGORIES = {"Cc", "Co", "Cn", "Cs", "Sk"}  # control, private-use, unassigned, surrogate, ``¨ ´ ¯ ¸``


def _script(ch: str) -> str:
    """A letter's script: first word of its Unicode name; ``CJK`` for East Asian ones, ``LATIN`` below U+0250."""
    if ord(ch) < 0x250:
        return "LATIN"
    script = unicodedata.name(ch, "UNKNOWN").split(" ")[0]
    return "CJK" if script in _EAST_ASIAN else script


def _is_cjk(ch: str) -> bool:
    """CJK punctuation, kana, ideographs (with extension A and compatibility ones), hangul, half-/full-width forms."""
    cp = ord(ch)
    return (0x3000 <= cp <= 0x30FF or 0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF or 0xAC00 <= cp <= 0xD7AF
            or 0xF900 <= cp <= 0xFAFF or 0xFF00 <= cp <= 0xFFEF)


def _gb_ideograph_bytes(ch: str) -> bytes | None:
    """The GB18030 bytes of a CJK unified ideograph (extension A included), else ``None``."""
    return ch.encode("gb18030") if 0x3400 <= ord(ch) <= 0x9FFF else None


def looks_like_mojibake(text: str) -> bool:
    """True if a non-ASCII character is suspicious (:data:`_SUSPICIOUS_CATEGORIES`) or a letter of a
    script (not Latin or CJK) under half of the text's letters (one ``Ц`` in Latin text)."""
    letters = [ch for ch in text if ch.isalpha()]
    scripts = Counter(_script(ch) for ch in letters)
    return any(unicodedata.category(ch) in _SUSPICIOUS_CATEGORIES
               or (ch.isalpha() and _script(ch) not in ("LATIN", "CJK") and scripts[_script(ch)] * 2 < len(letters))
               for ch in text if not ch.isascii())


def _rare_ideographs(text: str) -> bool:
    """True for an ideograph outside GB2312 level 1 (lead bytes 0xB0-0xD7): ``Привет`` read as GB18030 → ``橡桠弪``."""
    return any((gb := _gb_ideograph_bytes(ch)) is not None
               and (len(gb) != 2 or not 0xB0 <= gb[0] <= 0xD7 or gb[1] < 0xA1) for ch in text)


def _odd_word(word: str) -> bool:
    """True for mixed scripts but Latin + CJK (``trиs``), a Cyrillic/Greek capital after a small letter
    (``ЕнУЪкМ``), or a Latin word all accented (``äà``) or of 4+ letters mostly accented (``Ïðèâåò``)."""
    scripts = {_script(ch) for ch in word}
    if len(scripts) > 1 and "CJK" not in scripts:
        return True
    if scripts <= {"CYRILLIC", "GREEK"} and any(a.islower() and b.isupper() for a, b in zip(word, word[1:])):
        return True
    if scripts == {"LATIN"} and len(word) >= 2:
        accented = sum(not ch.isascii() for ch in word)
        return accented == len(word) or (len(word) >= 4 and accented * 2 > len(word))
    return False


def implausibility(text: str) -> int:
    """The signs (>= 0; 0 for ASCII) that a decoding used the wrong encoding, one point each: a
    suspicious character (``¨``: GBK's ``–`` as Windows-1252; a private-use one); a Latin-1 symbol
    U+00A1-U+00BF next to non-ASCII (``¡°``: GBK's ``“``); an ideograph with an ASCII GB18030 trail
    byte (``抰`` = 0x92 ``t``, GB2312 trails are 0xA1-0xFE); an odd word (:func:`_odd_word`)."""
    return sum(_signs(text).values())


def _signs(text: str) -> Counter:
    """:func:`implausibility`'s points by kind: ``gbk_own`` (those of :func:`_gbk_own` characters,
    ideographs with an ASCII trail byte among them), ``suspicious``, ``latin1_symbol``, ``odd_word``."""
    signs = Counter()
    for i, ch in enumerate(text):
        if ch.isascii() and (ch.isprintable() or ch in "\t\r\n"):
            continue
        gb = _gb_ideograph_bytes(ch)
        if unicodedata.category(ch) in _SUSPICIOUS_CATEGORIES:
            kind = "suspicious"
        elif 0xA1 <= ord(ch) <= 0xBF and any(0 <= j < len(text) and not text[j].isascii() for j in (i - 1, i + 1)):
            kind = "latin1_symbol"
        elif gb is not None and len(gb) == 2 and 0x40 <= gb[1] <= 0x7E:
            kind = "gbk_own"
        else:
            continue
        signs["gbk_own" if _gbk_own(ch) else kind] += 1
    signs["odd_word"] = sum(_odd_word("".join(run)) for letters, run in groupby(text, str.isalpha) if letters)
    return signs


def _gbk_own(ch: str) -> bool:
    """True for a character real GBK text has although it scores: one GBK added to GB2312 with an
    ASCII second byte (kanji ``発``, kaomoji's ``˙ ゜``), or a private-use one (old phones' emoji)."""
    if unicodedata.category(ch) == "Co":
        return True
    try:
        gb = ch.encode("gb18030")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return len(gb) == 2 and 0x40 <= gb[1] <= 0x7E


def reads_cleanly(text: str) -> bool:
    """True if ``text`` has at most :data:`MAX_POINTS_PER_NON_ASCII` points of :func:`implausibility`
    per non-ASCII character, not counting those of :func:`_gbk_own` characters: a legacy reading of
    garbage bytes (Windows-1251 ``great яюЂЃ day Г``: an odd word in 5 characters) is not clean."""
    signs = _signs(text)
    return sum(signs.values()) - signs["gbk_own"] <= MAX_POINTS_PER_NON_ASCII * sum(not ch.isascii() for ch in text)


def decode_legacy(raw: bytes) -> tuple[str, str] | None:
    """``(text, encoding)``: the strict decoding of ``raw`` in :data:`LEGACY_ENCODINGS` with the least
    :func:`implausibility`, or ``None`` if none is without controls or the best one is garbage (not
    :func:`reads_cleanly`). On a tie a GB18030 reading with rare ideographs (``déçu`` → ``d殓u``)
    yields to a single-byte one with 2+ non-ASCII letters."""
    readings = [(implausibility(text), text, encoding) for encoding in LEGACY_ENCODINGS
                if (text := _decode_or_none(raw, encoding)) is not None and not _has_controls(text)]
    if not readings:
        return None
    fewest = min(score for score, _, _ in readings)
    tied = [(text, encoding) for score, text, encoding in readings if score == fewest]
    best = tied[0]
    if best[1] == "gb18030" and _rare_ideographs(best[0]):
        best = next(((text, encoding) for text, encoding in tied[1:]
                     if sum(ch.isalpha() and not ch.isascii() for ch in text) >= 2), best)
    return best if reads_cleanly(best[0]) else None


def decode_text_bytes(raw: bytes) -> tuple[str, str, str | None]:
    """``(text, encoding, repair)`` of one text file's bytes (line endings kept; ``repair`` a reason
    code or ``None``), by the first rule that applies: a byte-order mark; NULs (:func:`_decode_nul_bytes`);
    ASCII; strict UTF-8, unless it :func:`looks_like_mojibake` and reads as common CJK only in GB18030
    (GBK bytes valid as UTF-8, guids 3323, 4499); :func:`decode_legacy`; else UTF-8 with a U+FFFD
    for each bad byte (``great \\xff\\xfe day`` → ``great �� day``, ``decoded_utf8_with_replacement``,
    which the caller excludes)."""
    if raw.startswith(codecs.BOM_UTF8) and (text := _decode_or_none(raw[len(codecs.BOM_UTF8):], "utf-8")) is not None:
        return text, "utf-8", reasons.UTF8_BOM_REMOVED
    if (raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
            and (text := _decode_or_none(raw, "utf-16")) is not None):
        return text, "utf-16", reasons.DECODED_UTF16
    if b"\x00" in raw:
        return _decode_nul_bytes(raw)
    if raw.isascii():
        return raw.decode("ascii"), "ascii", None
    text = _decode_or_none(raw, "utf-8")
    if text is None:
        legacy = decode_legacy(raw)
        if legacy is not None:
            return legacy[0], legacy[1], LEGACY_REPAIRS[legacy[1]]
        return _replaced(raw)
    if looks_like_mojibake(text) and all(ord(ch) <= 0xFFFF for ch in text):
        gb = _decode_or_none(raw, "gb18030")
        if gb is not None and all(_is_cjk(ch) for ch in gb if ord(ch) >= 128) and not _rare_ideographs(gb):
            return gb, "gb18030", reasons.DECODED_GB18030_NOT_UTF8
    return text, "utf-8", None


def _replaced(raw: bytes) -> tuple[str, str, str]:
    """``raw`` as UTF-8, U+FFFD for each byte that is not (its ASCII bytes always kept), and the code that says so."""
    return raw.decode("utf-8", errors="replace"), "utf-8", reasons.DECODED_UTF8_WITH_REPLACEMENT


def _decode_or_none(raw: bytes, encoding: str) -> str | None:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        return None


def _decode_nul_bytes(raw: bytes) -> tuple[str, str, str]:
    """Bytes with NULs and no mark: UTF-16 if a third or more of the code units have a zero byte,
    all at one parity, and it decodes without controls; else the NULs removed and the rest decoded.
    A rest with controls was UTF-16 of non-Latin text: UTF-16 if fully plausible, else not text."""
    odd, even = raw[1::2].count(0), raw[0::2].count(0)
    utf16 = None
    if len(raw) % 2 == 0 and min(odd, even) == 0:
        utf16 = _decode_or_none(raw, "utf-16-le" if odd else "utf-16-be")
        utf16 = None if utf16 is None or _has_controls(utf16) else utf16
    if utf16 is not None and max(odd, even) >= len(raw) // 2 / 3:
        return utf16, "utf-16", reasons.DECODED_UTF16_NO_BOM
    text, encoding, repair = decode_text_bytes(raw.replace(b"\x00", b""))
    if repair == reasons.DECODED_UTF8_WITH_REPLACEMENT:
        return text, encoding, repair
    if _has_controls(text):
        if utf16 is not None and implausibility(utf16) == 0:
            return utf16, "utf-16", reasons.DECODED_UTF16_NO_BOM
        return _replaced(raw)
    return text, encoding, reasons.nul_bytes_removed(repair)


def _has_controls(text: str) -> bool:
    """True if ``text`` holds control characters (but tab, CR, LF) or surrogates."""
    return any(unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\t\r\n" for ch in text)


def join_lines(text: str) -> str:
    """The non-empty lines of ``text``, stripped, joined with one space."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())
