"""The paper's text cleaning, as small named steps.

The paper (FLAVA on MVSA-Single) states only that tweet text had its "noise removed" and was
"lower-cased". We make "noise" concrete, one function per kind, each tested on its own:
URLs, @mentions, retweet markers, the ``#`` of hashtags (the word is kept), garbled characters
(the ``?`` that replaced characters GBK could not encode before the release, U+FFFD, control
characters) and HTML entities. :func:`remove_noise` applies them (case kept, so that translation
sees normal text); :func:`clean_text` also lower-cases.
"""

from __future__ import annotations

import html
import re
import unicodedata

import pandas as pd

from . import reasons
from .data_report import DataReport


URL_RE = re.compile(
    r"(?:https?:|www\.)\S*"  # http://..., https://..., www....; also truncated "http:…"
    r"|\bt\.co/\S*"  # bare t.co links
    r"|(?<!\S)(?:h|ht|htt|http|https)…",  # URLs truncated by Twitter: "h…", "htt…", "http…"
    re.IGNORECASE,
)
MENTION_RE = re.compile(r"(?<![\w@])@\w+:?")
"""``@user`` (and the ``:`` of ``RT @user:``); e-mail addresses are left alone."""
RETWEET_RE = re.compile(r"(?<!\w)RT(?![\w'’]):?")
"""The upper-case retweet marker ``RT`` as a whole word (``ART``, ``rt``, ``RT's`` are left alone)."""
HASHTAG_RE = re.compile(r"#(?=\w)")
GARBLED_TOKEN_RE = re.compile(r"(?<!\S)[#@]?\?+(?!\S)")
"""A whitespace-delimited token made only of ``?`` (optionally after ``#``/``@``): lost characters."""
GARBLED_BEFORE_WORD_RE = re.compile(r"\?+(?=\w)")
"""``?`` directly followed by a letter/digit (``w?r``, ``?200``): a real question mark never is."""
WHITESPACE_RE = re.compile(r"\s+")


def unescape_html(text: str) -> str:
    """Replace HTML entities (``&amp;`` → ``&``) using :func:`html.unescape`."""
    return html.unescape(text)


def remove_urls(text: str) -> str:
    """Remove URLs: ``http(s)://...``, ``www....``, ``t.co/...`` and Twitter-truncated ``h…``/``htt…``."""
    return URL_RE.sub(" ", text)


def remove_mentions(text: str) -> str:
    """Remove ``@user`` mentions (with a trailing ``:``); e-mail addresses are kept."""
    return MENTION_RE.sub(" ", text)


def remove_retweet_markers(text: str) -> str:
    """Remove the retweet marker ``RT`` (upper case, whole word, optional ``:``)."""
    return RETWEET_RE.sub(" ", text)


def strip_hashtag_signs(text: str) -> str:
    """Drop the ``#`` of hashtags and keep the word (``#happy`` → ``happy``; not split)."""
    return HASHTAG_RE.sub("", text)


def remove_garbled(text: str) -> str:
    """Remove characters that stand for lost text.

    * U+FFFD (replacement character), U+FEFF (byte-order mark) and control characters
      (Unicode category ``Cc``) other than whitespace;
    * ``?`` directly followed by a letter or digit (``w?r`` → ``wr``, ``?200`` → ``200``);
    * tokens made only of ``?`` (``?``, ``???``, ``#???``).

    A ``?`` at the end of a word or after punctuation (``really?``, ``what??``, ``!?``) is a real
    question mark and is kept, although some of them are lost characters too (we cannot tell).
    """
    text = "".join(
        " " if ch in "\ufffd\ufeff" or (unicodedata.category(ch) == "Cc" and not ch.isspace()) else ch
        for ch in text
    )
    text = GARBLED_BEFORE_WORD_RE.sub("", text)
    return GARBLED_TOKEN_RE.sub(" ", text)


def collapse_whitespace(text: str) -> str:
    """Replace every run of whitespace by one space and strip the ends."""
    return WHITESPACE_RE.sub(" ", text).strip()


def remove_noise(text: str) -> str:
    """All of :func:`clean_text` except lower-casing (the input of translation).

    Order: unescape HTML → remove URLs → mentions → retweet markers → garbled characters →
    ``#`` of hashtags → collapse whitespace. URLs go before the garbled-character step because
    URLs may contain ``?``.
    """
    text = unescape_html(text)
    text = remove_urls(text)
    text = remove_mentions(text)
    text = remove_retweet_markers(text)
    text = remove_garbled(text)
    text = strip_hashtag_signs(text)
    return collapse_whitespace(text)


def clean_text(text: str) -> str:
    """The paper's cleaning: "noise removed, lower-cased".

    Order: :func:`unescape_html`, :func:`remove_urls`, :func:`remove_mentions`,
    :func:`remove_retweet_markers`, :func:`remove_garbled`, :func:`strip_hashtag_signs`,
    :func:`collapse_whitespace` (together :func:`remove_noise`), then ``str.lower``.

    Example: ``"RT @bob: Love it!! #sunset http://t.co/x"`` → ``"love it!! sunset"``.
    """
    return remove_noise(text).lower()


def clean_posts(frame: pd.DataFrame, report: DataReport) -> pd.DataFrame:
    """Return a copy of ``frame`` with a ``text_clean`` column (:func:`clean_text` of ``text_raw``).

    Texts that clean down to nothing (only URLs, mentions, garbled ``?`` ...) are kept as ``""``
    and reported (stage ``"clean"``, ``noted``, reason ``"empty_after_cleaning"``), except rows
    without a text file, which the load stage has already reported. Texts whose lost characters
    were removed by :func:`remove_garbled` are reported as ``repaired``, reason
    ``"garbled_characters_removed"``.
    """
    out = frame.copy()
    out["text_clean"] = [clean_text(t) for t in out["text_raw"]]
    for guid, raw in zip(out.loc[out["has_text"], "guid"], out.loc[out["has_text"], "text_raw"]):
        body = remove_retweet_markers(remove_mentions(remove_urls(unescape_html(raw))))
        if remove_garbled(body) != body:
            report.add(reasons.GARBLED_CHARACTERS_REMOVED, guid,
                       f"lost characters ('?', U+FFFD, control characters) removed from {raw[:80]!r}")
    empty = (out["text_clean"] == "") & out["has_text"]
    for guid, raw in zip(out.loc[empty, "guid"], out.loc[empty, "text_raw"]):
        report.add(reasons.EMPTY_AFTER_CLEANING, guid, f"raw text {raw[:80]!r} is empty after cleaning; kept as ''")
    return out
