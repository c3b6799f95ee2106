"""The paper's text cleaning ("noise removed, lower-cased") as small named steps: first the repairs
(:data:`REPAIR_STEPS`, so later steps see each character in one form), then the noise (:data:`NOISE_STEPS`)."""

from __future__ import annotations

import functools
import html
import re
import unicodedata
from typing import Callable

import emoji
import ftfy
import pandas as pd

from msa_utils.data import reasons
from msa_utils.data.data_report import DataReport

URL_RE = re.compile(
    r"(?:https?:|www\.)\S*"  # http://..., https://..., www....; also truncated "http:…"
    r"|(?-i:(?<![\w.@-])(?:[a-z0-9-]*[a-z][a-z0-9-]*\.)+[a-z]{2,24}/\S*)"
    # links without a scheme, in lower case, a letter in each label: pic.twitter.com/..., bit.ly/...,
    # youtu.be/..., bob.blog/...; not Mr.Li/Ms.Wu, U.S./Canada or 9.am/5.pm
    r"|(?<!\S)(?:h|ht|htt|http|https)(?:…|\.\.\.)",  # URLs truncated by Twitter: "h…", "htt..." (NFKC)
    re.IGNORECASE,
)
MENTION_RE = re.compile(r"(?<![\w@])@\w+:?")  # the ":" of "RT @user:"; not e-mail addresses
RETWEET_RE = re.compile(r"(?<!\w)RT(?![\w'’]):?")  # a whole word: not ART, rt, RT's
HASHTAG_RE = re.compile(r"#(?=\w)")
GARBLED_TOKEN_RE = re.compile(r"(?<!\S)[#@]?\?+(?!\S)")  # a token of only "?" (after "#"/"@"): lost characters
GARBLED_BEFORE_WORD_RE = re.compile(r"\?+(?=\w)")  # "w?r", "?200": a real question mark never is
ENTITY_RE = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
FULL_WIDTH_QUESTION_MARK = "\uff1f"
MAX_UNESCAPE_ROUNDS = 32  # unescape_html's bound (``&amp;amp;amp;lt;`` needs 4)

FTFY_CONFIG = ftfy.TextFixerConfig(
    unescape_html=False,  # done by unescape_html, also when the text holds a literal "<"
    uncurl_quotes=False,  # curly quotes are real text; the tokenizer splits them like straight ones
    fix_character_width=False, fix_latin_ligatures=False, normalization=None,  # NFKC does these
    fix_line_breaks=False,  # lines are already joined
    remove_control_chars=False,  # Cc: remove_garbled, Cf: remove_format_characters (each reported)
)
"""ftfy's repairs of mojibake and C1 controls; the rest off."""


def unescape_html(text: str) -> str:
    """Replace complete HTML entities (with their ``;``) until none is left (``&amp;amp;lt;3`` → ``<3``);
    not :func:`html.unescape` alone, which reads ``Tips&notes`` as ``Tips¬es``."""
    for _ in range(MAX_UNESCAPE_ROUNDS):
        unescaped = ENTITY_RE.sub(lambda match: html.unescape(match.group(0)), text)
        if unescaped == text:
            break
        text = unescaped
    return text


fix_with_ftfy: Callable[[str], str] = functools.partial(ftfy.fix_text, config=FTFY_CONFIG)
"""Repair mojibake (``cafÃ©`` → ``café``) and C1 controls (ftfy, :data:`FTFY_CONFIG`)."""


def emoji_to_words(text: str) -> str:
    """Each emoji (ZWJ sequences, flags) as its English CLDR name between spaces
    (``😂`` → ``face with tears of joy``)."""
    return emoji.replace_emoji(text, replace=lambda chars, data: " " + data["en"].strip(":").replace("_", " ") + " ")


def remove_format_characters(text: str) -> str:
    """Remove invisible format characters (Unicode Cf), which hide words (``#`` U+200B ``sunny``)."""
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def normalise_compatibility(text: str) -> str:
    """Unicode NFKC (``＠user`` → ``@user``, ``…`` → ``...``) but ``？``, which :func:`remove_garbled` keeps."""
    return FULL_WIDTH_QUESTION_MARK.join(unicodedata.normalize("NFKC", part)
                                         for part in text.split(FULL_WIDTH_QUESTION_MARK))


remove_urls: Callable[[str], str] = functools.partial(URL_RE.sub, " ")
"""Remove URLs: with a scheme, ``www.``, lower-case ``domain.tld/path``, Twitter-truncated ``h…``."""
remove_mentions: Callable[[str], str] = functools.partial(MENTION_RE.sub, " ")
"""Remove ``@user`` mentions (with a trailing ``:``); e-mail addresses are kept."""
remove_retweet_markers: Callable[[str], str] = functools.partial(RETWEET_RE.sub, " ")
"""Remove the retweet marker ``RT`` (upper case, whole word, optional ``:``)."""
strip_hashtag_signs: Callable[[str], str] = functools.partial(HASHTAG_RE.sub, "")
"""``#happy`` → ``happy`` (not split)."""


def remove_garbled(text: str) -> str:
    """Remove U+FFFD, control characters (not whitespace), ``?`` before a letter or digit (``w?r`` →
    ``wr``) and tokens of only ``?`` (``#???``); a ``?`` ending a word and ``？`` are kept."""
    text = "".join(" " if ch == "\ufffd" or (unicodedata.category(ch) == "Cc" and not ch.isspace()) else ch
                   for ch in text)
    return GARBLED_TOKEN_RE.sub(" ", GARBLED_BEFORE_WORD_RE.sub("", text))


def ascii_question_marks(text: str) -> str:
    """``？`` → ``?``: the rest of NFKC, once :func:`remove_garbled` has run."""
    return text.replace(FULL_WIDTH_QUESTION_MARK, "?")


def collapse_whitespace(text: str) -> str:
    """Every run of whitespace as one space, the ends stripped."""
    return " ".join(text.split())


REPAIR_STEPS: tuple[tuple[Callable[[str], str], str], ...] = (
    (unescape_html, reasons.HTML_ENTITIES_UNESCAPED),
    (fix_with_ftfy, reasons.REPAIRED_BY_FTFY),
    (emoji_to_words, reasons.EMOJI_TO_WORDS),  # before the format characters: a ZWJ sequence is one emoji
    (remove_format_characters, reasons.FORMAT_CHARACTERS_REMOVED),
    (normalise_compatibility, reasons.COMPATIBILITY_FORMS_NORMALISED),
)
"""The repairs, in order, each with the reason reported for a text it changed."""
NOISE_STEPS: tuple[tuple[Callable[[str], str], str | None], ...] = (
    (remove_urls, None),  # before the garbled-character step: URLs may contain "?"
    (remove_mentions, None),
    (remove_retweet_markers, None),
    (remove_garbled, reasons.GARBLED_CHARACTERS_REMOVED),
    (ascii_question_marks, reasons.COMPATIBILITY_FORMS_NORMALISED),  # the rest of the NFKC repair
    (strip_hashtag_signs, None),
    (collapse_whitespace, None),
)
"""The noise removal, in order; only lost characters are reported."""


def trace_noise_removal(text: str) -> tuple[str, list[str]]:
    """``(remove_noise(text), reasons of the steps that changed it, each once, in step order)``."""
    changed = []
    for step, reason in (*REPAIR_STEPS, *NOISE_STEPS):
        after = step(text)
        if reason is not None and after != text and reason not in changed:
            changed.append(reason)
        text = after
    return text, changed


def remove_noise(text: str) -> str:
    """:data:`REPAIR_STEPS` then :data:`NOISE_STEPS`, case kept (the input of translation)."""
    return trace_noise_removal(text)[0]


def clean_text(text: str) -> str:
    """:func:`remove_noise`, lower-cased: ``"RT @bob: Love it!! #sunset http://t.co/x"`` → ``"love it!! sunset"``."""
    return remove_noise(text).lower()


def clean_posts(frame: pd.DataFrame, report: DataReport) -> pd.DataFrame:
    """A copy of ``frame`` with ``text_clean`` (:func:`clean_text` of ``text_raw``); reports, for rows
    with ``has_text``, each step that changed a text and a text that cleans to ``""``."""
    out = frame.copy()
    cleaned = []
    for guid, raw, has_text in zip(out["guid"], out["text_raw"], out["has_text"]):
        text, changed = trace_noise_removal(raw)
        cleaned.append(text.lower())
        if not has_text:
            continue
        for reason in changed:
            report.add(reason, guid, f"{reasons.lookup(reason).case}: {raw[:80]!r}")
        if not text:
            report.add(reasons.EMPTY_AFTER_CLEANING, guid, f"raw text {raw[:80]!r} is empty after cleaning; kept as ''")
    out["text_clean"] = cleaned
    return out
