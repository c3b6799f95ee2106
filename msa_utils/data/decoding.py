"""Decoding a post's bytes: which encoding, chosen by evidence rather than "the first that decodes".

Posts come as UTF-8 (with or without a byte-order mark), UTF-16, GBK/GB18030 (the whole ECNU
release of MVSA-Single: 1,131 of its 4,869 texts) or a Windows code page (phones and web forms
that still write Windows-1252, Latin-1 or Windows-1251). A byte string is often valid in several
of them: ``b"Don\\x92t"`` is Windows-1252 ``Don’t`` and also GB18030 ``Don抰``. So the
legacy encodings are not tried in turn; each candidate that decodes strictly is scored by
:func:`implausibility`, a count of the characters that mis-decoded bytes produce and real text
rarely has, and the lowest score wins (ties go to GB18030, the release's encoding, then
Windows-1252, then Windows-1251).

Why a rule of ours and not a detector: charset-normalizer (3.5.3), restricted to the same three
candidates, gives Windows-1252 for 64-65 of the release's 1,131 GB18030 texts (it prefers
``¡°`` to ``“``, the GBK bytes of a curly quote) and no answer for 7;
``benchmarks/decoding.py`` measures both on the release and on texts re-encoded in each
candidate encoding (``docs/data-handling.md`` has the figures).
"""

from __future__ import annotations

import codecs
import unicodedata
from collections import Counter

from msa_utils.data import reasons

LEGACY_ENCODINGS: tuple[str, ...] = ("gb18030", "cp1252", "cp1251")
"""The candidates for bytes that are not UTF-8 or UTF-16, in order of preference on a tie:
GB18030 (a superset of GBK and GB2312: the release's encoding), Windows-1252 (Western European;
it shares every printable character of Latin-1 / ISO-8859-1, whose 0x80-0x9F are control codes
that real text never holds), Windows-1251 (Cyrillic)."""

LEGACY_REPAIRS: dict[str, str] = {
    "gb18030": reasons.DECODED_GB18030,
    "cp1252": reasons.DECODED_WINDOWS_1252,
    "cp1251": reasons.DECODED_WINDOWS_1251,
}
"""The report reason of each legacy encoding."""

_EAST_ASIAN = {"CJK", "HIRAGANA", "KATAKANA", "HANGUL", "HALFWIDTH", "FULLWIDTH"}
_SUSPICIOUS_CATEGORIES = {"Cc", "Co", "Cn", "Cs", "Sk"}
"""Control, private-use, unassigned, surrogate and modifier-symbol (``¨ ´ ¯ ¸``) characters."""


def _script(ch: str) -> str:
    """Script of a letter: first word of its Unicode name (``LATIN``, ``CYRILLIC`` ...); ``CJK`` for
    all East Asian ones; ``LATIN`` for every letter below U+0250 (also ``º``, ``ª``, ``µ``)."""
    if ord(ch) < 0x250:
        return "LATIN"
    script = unicodedata.name(ch, "UNKNOWN").split(" ")[0]
    return "CJK" if script in _EAST_ASIAN else script


def _is_cjk(ch: str) -> bool:
    """True for CJK ideographs, kana, hangul, CJK punctuation and full-width forms."""
    cp = ord(ch)
    return (
        0x3000 <= cp <= 0x30FF  # CJK punctuation, hiragana, katakana
        or 0x3400 <= cp <= 0x4DBF  # CJK extension A
        or 0x4E00 <= cp <= 0x9FFF  # CJK unified ideographs
        or 0xAC00 <= cp <= 0xD7AF  # hangul syllables
        or 0xF900 <= cp <= 0xFAFF  # CJK compatibility ideographs
        or 0xFF00 <= cp <= 0xFFEF  # half-/full-width forms
    )


def _is_ideograph(ch: str) -> bool:
    """True for a CJK unified ideograph (U+4E00-U+9FFF) or one of extension A (U+3400-U+4DBF)."""
    return 0x3400 <= ord(ch) <= 0x9FFF


def looks_like_mojibake(text: str) -> bool:
    """True if a (valid UTF-8) text contains characters typical of mis-decoded bytes.

    Suspicious are: private-use, unassigned, C1-control and modifier-symbol characters (e.g.
    ``¯`` U+00AF) and letters of a script that makes up less than half of the text's letters
    (e.g. one Cyrillic ``Ц`` in Latin text). A text in one foreign script (Russian, Greek ...)
    or Latin text with accents (``está``) is not suspicious.
    """
    letters = [ch for ch in text if ch.isalpha()]
    scripts = Counter(_script(ch) for ch in letters)
    for ch in text:
        if ord(ch) < 128:
            continue
        if unicodedata.category(ch) in _SUSPICIOUS_CATEGORIES:
            return True
        if ch.isalpha():
            script = _script(ch)
            if script not in ("LATIN", "CJK") and scripts[script] * 2 < len(letters):
                return True
    return False


def _swallowed_ascii(ch: str) -> bool:
    """True for an ideograph whose GB18030 bytes end in an ASCII character (``抰`` = 0x92 ``t``).

    GB2312, the common part of GBK, uses trail bytes 0xA1-0xFE only; an ideograph whose second
    byte is ASCII (0x40-0x7E: ``@``, letters, ``[\\]^_`{|}~``) lies in GBK's rarer extension rows,
    and is what a single-byte text turns into when a Windows-1252 ``’`` (0x92) or ``“`` (0x93) and
    the next character are read as one GB18030 character (``“@`` → ``揁``).
    """
    if not _is_ideograph(ch):
        return False
    encoded = ch.encode("gb18030")
    return len(encoded) == 2 and 0x40 <= encoded[1] <= 0x7E


def _rare_ideographs(text: str) -> bool:
    """True if ``text`` has an ideograph outside GB2312's 3,755 common ones (level 1, lead bytes
    0xB0-0xD7): what a single-byte text read as GB18030 mostly gives (``Привет`` → ``橡桠弪``);
    real Chinese text is about 99% level 1 (Japanese posts use rarer kanji more often)."""
    for ch in text:
        if _is_ideograph(ch):
            encoded = ch.encode("gb18030")
            if len(encoded) != 2 or not 0xB0 <= encoded[0] <= 0xD7 or encoded[1] < 0xA1:
                return True
    return False


def _odd_word(word: str) -> bool:
    """True for a word whose letters mix scripts (``trиs``), a Cyrillic or Greek word with a
    capital after a small letter (``ЕнУЪкМ``, GBK read as Windows-1251), or a Latin word of
    accented letters only (``äà``) or of 4+ letters, more accented than plain (``Ïðèâåò``:
    Cyrillic read as Windows-1252; ``süß`` and ``à`` are fine)."""
    scripts = {_script(ch) for ch in word}
    if len(scripts) > 1 and "CJK" not in scripts:  # "pixivに" mixes Latin and kana, and is real
        return True
    if scripts and scripts <= {"CYRILLIC", "GREEK"} and any(
            a.islower() and b.isupper() for a, b in zip(word, word[1:])):
        return True  # "ЕнУЪкМ": GBK read as Windows-1251 (Latin camelCase hashtags are real)
    if scripts == {"LATIN"} and len(word) >= 2:
        accented = sum(not ch.isascii() for ch in word)
        return accented == len(word) or (len(word) >= 4 and accented * 2 > len(word))
    return False


def implausibility(text: str) -> int:
    """Count the characters and words of a decoding that point to the wrong encoding.

    One point for each:

    * control (other than tab, CR, LF), private-use, unassigned or modifier-symbol character
      (``¨`` is the Windows-1252 reading of GBK's en dash ``–``: bytes 0xA8 0x43);
    * Latin-1 symbol U+00A1-U+00BF next to another non-ASCII character (``¡°`` is the
      Windows-1252 reading of GBK's ``“``; a real ``£5`` or ``¿Qué`` has ASCII next to it);
    * ideograph that swallowed an ASCII character (:func:`_swallowed_ascii`);
    * word (run of letters) that mixes scripts or is mostly accented letters (:func:`_odd_word`).

    Returns:
        The number of points, ``>= 0``; 0 for plain ASCII.
    """
    points = 0
    for i, ch in enumerate(text):
        if ch.isascii() and (ch.isprintable() or ch in "\t\r\n"):
            continue
        if unicodedata.category(ch) in _SUSPICIOUS_CATEGORIES:
            points += 1
        elif 0xA1 <= ord(ch) <= 0xBF and any(
                0 <= j < len(text) and not text[j].isascii() for j in (i - 1, i + 1)):
            points += 1
        elif _swallowed_ascii(ch):
            points += 1
    word: list[str] = []
    for ch in text + " ":
        if ch.isalpha():
            word.append(ch)
            continue
        if word and _odd_word("".join(word)):
            points += 1
        word = []
    return points


def decode_legacy(raw: bytes) -> tuple[str, str] | None:
    """Decode bytes that are not UTF-8 with the most plausible of :data:`LEGACY_ENCODINGS`.

    Each candidate is tried strictly; a decoding with control characters (other than tab, CR,
    LF) is not text and drops out; the rest are ranked by :func:`implausibility`. On a tie, a
    GB18030 reading with rare ideographs (:func:`_rare_ideographs`: ``Да`` → ``泥`` is common,
    ``déçu`` → ``d殓u`` is not) gives way to a single-byte reading with at least two non-ASCII
    letters (one, as in ``#Ќ№`` for GBK ``#嵐``, is too little evidence); otherwise the order of
    :data:`LEGACY_ENCODINGS` decides.

    Returns:
        ``(text, encoding)``, or ``None`` if no candidate decodes to text.
    """
    readings = []
    for encoding in LEGACY_ENCODINGS:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        if not _has_controls(text):
            readings.append((implausibility(text), text, encoding))
    if not readings:
        return None
    fewest = min(score for score, _, _ in readings)
    tied = [(text, encoding) for score, text, encoding in readings if score == fewest]
    if tied[0][1] == "gb18030" and _rare_ideographs(tied[0][0]):
        for text, encoding in tied[1:]:
            if sum(ch.isalpha() and not ch.isascii() for ch in text) >= 2:
                return text, encoding
    return tied[0]


def decode_text_bytes(raw: bytes) -> tuple[str, str, str | None]:
    """Decode the bytes of one text file (a post, or a label file).

    Order:

    0. a byte-order mark: UTF-8 (``"utf-8"``, reason ``"utf8_bom_removed"``) or UTF-16
       (``"utf-16"``, reason ``"decoded_utf16"``). Bytes with NULs and no mark: UTF-16 in the
       byte order the zeros point to (reason ``"decoded_utf16_no_bom"``) if they look like it,
       else the NULs are removed and the rest decoded as below (reason ``"nul_bytes_removed"``).
    1. ASCII → encoding ``"ascii"``.
    2. strict UTF-8 → ``"utf-8"``, unless the result :func:`looks_like_mojibake`, has no
       character beyond U+FFFF (an emoji), and the GB18030 decode gives only CJK characters
       outside ASCII, all common ones; then it is GBK bytes that happen to be valid UTF-8 (guids
       3323 and 4499) → ``"gb18030"``, reason ``"decoded_gb18030_not_utf8"``.
    3. the most plausible legacy encoding (:func:`decode_legacy`): ``"gb18030"`` (reason
       ``"decoded_gb18030"``), ``"cp1252"`` (``"decoded_windows_1252"``) or ``"cp1251"``
       (``"decoded_windows_1251"``).
    4. else GB18030 with ``errors="replace"`` (U+FFFD for bad bytes) → ``"gb18030"``, reason
       ``"decoded_gb18030_with_replacement"`` (the caller excludes such a text as undecodable).

    Returns:
        ``(text, encoding, repair_reason)``; ``repair_reason`` is ``None`` when nothing was
        repaired. ``text`` is not yet stripped of line endings.
    """
    if raw.startswith(codecs.BOM_UTF8):
        try:
            return raw[len(codecs.BOM_UTF8):].decode("utf-8"), "utf-8", reasons.UTF8_BOM_REMOVED
        except UnicodeDecodeError:
            pass
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16"), "utf-16", reasons.DECODED_UTF16
        except UnicodeDecodeError:
            pass
    if b"\x00" in raw:  # no text holds NUL characters: UTF-16 without a byte-order mark, or not text
        return _decode_nul_bytes(raw)
    try:
        return raw.decode("ascii"), "ascii", None
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        # GBK bytes never form UTF-8's 4-byte sequences (emoji): their trail bytes are >= 0xA1
        if looks_like_mojibake(text) and all(ord(ch) <= 0xFFFF for ch in text):
            try:
                gb = raw.decode("gb18030")
            except UnicodeDecodeError:
                gb = None
            if gb is not None and all(_is_cjk(ch) for ch in gb if ord(ch) >= 128) and not _rare_ideographs(gb):
                return gb, "gb18030", reasons.DECODED_GB18030_NOT_UTF8
        return text, "utf-8", None
    legacy = decode_legacy(raw)
    if legacy is not None:
        return legacy[0], legacy[1], LEGACY_REPAIRS[legacy[1]]
    return raw.decode("gb18030", errors="replace"), "gb18030", reasons.DECODED_GB18030_WITH_REPLACEMENT


def _decode_nul_bytes(raw: bytes) -> tuple[str, str, str]:
    """Bytes with NULs: UTF-16 without a byte-order mark, or text with stray NULs.

    UTF-16 if the zero bytes look like the high bytes of Latin text (at least a third of the
    code units, all at one parity: odd offsets for little-endian) and the decode has no control
    characters; else the NULs are removed (reason ``"nul_bytes_removed"``, joined with ``+`` to
    the reason of decoding the rest, which must succeed as for any text). A rest that holds
    control characters was UTF-16 of a non-Latin text (Cyrillic has zero bytes only in its
    spaces): UTF-16 if that reads as plausible text, else the bytes are not text.
    """
    units = len(raw) // 2
    odd, even = raw[1::2].count(0), raw[0::2].count(0)
    if len(raw) % 2 == 0 and units and max(odd, even) >= units / 3 and min(odd, even) == 0:
        try:
            text = raw.decode("utf-16-le" if odd else "utf-16-be")
        except UnicodeDecodeError:
            text = None
        if text is not None and not _has_controls(text):
            return text, "utf-16", reasons.DECODED_UTF16_NO_BOM
    text, encoding, repair = decode_text_bytes(raw.replace(b"\x00", b""))
    if repair == reasons.DECODED_GB18030_WITH_REPLACEMENT:
        return text, encoding, repair
    if _has_controls(text):  # e.g. Cyrillic UTF-16: its only zero bytes are those of the spaces
        if len(raw) % 2 == 0 and min(odd, even) == 0:
            try:
                utf16 = raw.decode("utf-16-le" if odd else "utf-16-be")
            except UnicodeDecodeError:
                utf16 = None
            if utf16 is not None and not _has_controls(utf16) and implausibility(utf16) == 0:
                return utf16, "utf-16", reasons.DECODED_UTF16_NO_BOM
        return raw.decode("gb18030", errors="replace"), "gb18030", reasons.DECODED_GB18030_WITH_REPLACEMENT
    return text, encoding, reasons.nul_bytes_removed(repair)


def _has_controls(text: str) -> bool:
    """True if ``text`` holds control characters other than tab, CR and LF (or surrogates): not text."""
    return any(unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\t\r\n" for ch in text)


def join_lines(text: str) -> str:
    """Strip CR/LF: join the non-empty lines of ``text`` with one space, strip the ends."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())
