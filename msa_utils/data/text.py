"""The paper's text cleaning, as small named steps.

The paper (FLAVA on MVSA-Single) states only that tweet text had its "noise removed" and was
"lower-cased". We make "noise" concrete, one function per kind, each tested on its own. First
the text is repaired and normalised so that the later steps see each character in one form:

1. :func:`unescape_html` (``&amp;amp;`` → ``&``, however many times it was escaped);
2. :func:`fix_with_ftfy`: ftfy (Speer, https://ftfy.readthedocs.io) repairs mojibake
   (``cafÃ©`` → ``café``) and C1 controls;
3. :func:`emoji_to_words`: emoji become their English names (``😍`` → ``smiling face with
   heart-eyes``), which the text encoder's WordPiece vocabulary can read (it maps emoji to
   ``[UNK]``);
4. :func:`remove_format_characters`: every invisible format character (Unicode category Cf:
   zero-width space and joiners, word joiner, BOM, direction marks and embeddings);
5. :func:`normalise_compatibility`: Unicode NFKC, so that full-width ``＠``/``＃``/``ＲＴ``,
   ligatures and other compatibility forms behave like their ASCII twins;

then the noise goes: URLs with or without a scheme, @mentions, retweet markers, garbled
characters (the ``?`` that replaced characters GBK could not encode before the release,
U+FFFD, control characters), the ``#`` of hashtags (the word is kept). :func:`remove_noise`
applies them all (case kept, so that translation sees normal text); :func:`clean_text` also
lower-cases. :func:`clean_posts` reports every repair under its own reason.
"""

from __future__ import annotations

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
FULL_WIDTH_QUESTION_MARK = "\uff1f"
MAX_UNESCAPE_ROUNDS = 32
"""How many times :func:`unescape_html` undoes HTML escaping at most (``&amp;amp;amp;lt;`` needs 4);
a bound only against texts built to make it loop long."""
ENTITY_RE = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
"""A complete HTML entity: numeric (``&#8217;``, ``&#x1F602;``) or named (``&amp;``), with its ``;``."""

FTFY_CONFIG = ftfy.TextFixerConfig(
    unescape_html=False,  # done by unescape_html, also when the text holds a literal "<"
    uncurl_quotes=False,  # curly quotes are real text; the tokenizer splits them like straight ones
    fix_character_width=False, fix_latin_ligatures=False, normalization=None,  # NFKC does these
    fix_line_breaks=False,  # lines are already joined
    remove_control_chars=False,  # Cc: remove_garbled, Cf: remove_format_characters (each reported)
)
"""ftfy's settings: its repairs of mojibake and C1 controls; the rest off."""


def unescape_html(text: str) -> str:
    """Replace HTML entities, however many times they were escaped (``&amp;amp;lt;3`` → ``<3``).

    Only complete entities, with their ``;`` (``&amp;``, ``&#8217;``, ``&#x1F602;``), are
    replaced, as often as the text still holds one (at most :data:`MAX_UNESCAPE_ROUNDS` times):
    :func:`html.unescape` alone would also read the old entities that need no ``;`` inside words
    (``Tips&notes`` → ``Tips¬es``), and ftfy skips a text that holds a literal ``<``.
    """
    for _ in range(MAX_UNESCAPE_ROUNDS):
        unescaped = ENTITY_RE.sub(lambda match: html.unescape(match.group(0)), text)
        if unescaped == text:
            break
        text = unescaped
    return text


def fix_with_ftfy(text: str) -> str:
    """Repair mojibake (``cafÃ©`` → ``café``) and C1 controls: ``ftfy.fix_text`` with :data:`FTFY_CONFIG`."""
    return ftfy.fix_text(text, FTFY_CONFIG)


def normalise_compatibility(text: str) -> str:
    """Unicode NFKC (``＠user`` → ``@user``, ``ＲＴ`` → ``RT``, ``ﬁ`` → ``fi``, ``…`` → ``...``), but
    the full-width question mark ``？`` is kept.

    ``？`` is the real question mark of Japanese and Chinese posts, often followed by a letter;
    turned into ``?`` here, it would look like the release's lost characters to
    :func:`remove_garbled`; :func:`ascii_question_marks` turns it into ``?`` once those are gone.
    """
    return FULL_WIDTH_QUESTION_MARK.join(unicodedata.normalize("NFKC", part)
                                         for part in text.split(FULL_WIDTH_QUESTION_MARK))


def _emoji_name(chars: str, data: dict) -> str:
    return " " + data["en"].strip(":").replace("_", " ") + " "


def emoji_to_words(text: str) -> str:
    """Replace each emoji (also ZWJ sequences and flags) by its English CLDR name between spaces.

    Uses the ``emoji`` package's table (``😂`` → ``face with tears of joy``, ``👨‍👩‍👧`` → ``family
    man woman girl``): the text encoders' WordPiece vocabulary (bert-base-uncased, 30,522 tokens)
    has no emoji and maps them to ``[UNK]``.
    """
    return emoji.replace_emoji(text, replace=_emoji_name)


def remove_format_characters(text: str) -> str:
    """Remove every invisible format character (Unicode category Cf).

    Zero-width space (U+200B) and (non-)joiners, word joiner (U+2060), BOM (U+FEFF), soft
    hyphen, left-to-right / right-to-left marks and embeddings: they are invisible, split or
    hide words from the tokenizer and from the mention/hashtag/URL patterns (``#`` U+200B
    ``sunny`` is not a hashtag to a regex). Removed without a space (they sit inside words).
    """
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def remove_urls(text: str) -> str:
    """Remove URLs: ``http(s)://...``, ``www....``, ``domain.tld/path`` without a scheme
    (``bit.ly/x``, ``pic.twitter.com/x``; lower case) and Twitter-truncated ``h…``/``htt…``."""
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

    * U+FFFD (replacement character) and control characters (Unicode category ``Cc``) other
      than whitespace (U+FEFF and the other format characters go in :func:`remove_format_characters`);
    * ``?`` directly followed by a letter or digit (``w?r`` → ``wr``, ``?200`` → ``200``);
    * tokens made only of ``?`` (``?``, ``???``, ``#???``).

    A ``?`` at the end of a word or after punctuation (``really?``, ``what??``, ``!?``) is a real
    question mark and is kept, although some of them are lost characters too (we cannot tell).
    A full-width ``？`` is always real and is left alone (:func:`ascii_question_marks`).
    """
    text = "".join(
        " " if ch == "\ufffd" or (unicodedata.category(ch) == "Cc" and not ch.isspace()) else ch
        for ch in text
    )
    text = GARBLED_BEFORE_WORD_RE.sub("", text)
    return GARBLED_TOKEN_RE.sub(" ", text)


def ascii_question_marks(text: str) -> str:
    """The full-width ``？`` as ``?``: the last compatibility form, kept by
    :func:`normalise_compatibility` until :func:`remove_garbled` has run (it is a real question mark)."""
    return text.replace(FULL_WIDTH_QUESTION_MARK, "?")


def collapse_whitespace(text: str) -> str:
    """Replace every run of whitespace by one space and strip the ends."""
    return WHITESPACE_RE.sub(" ", text).strip()


REPAIR_STEPS: tuple[tuple[Callable[[str], str], str], ...] = (
    (unescape_html, reasons.HTML_ENTITIES_UNESCAPED),
    (fix_with_ftfy, reasons.REPAIRED_BY_FTFY),
    (emoji_to_words, reasons.EMOJI_TO_WORDS),  # before the format characters: a ZWJ sequence is one emoji
    (remove_format_characters, reasons.FORMAT_CHARACTERS_REMOVED),
    (normalise_compatibility, reasons.COMPATIBILITY_FORMS_NORMALISED),
)
"""The repairs, in order, each with the report reason of a text it changed."""
NOISE_STEPS: tuple[tuple[Callable[[str], str], str | None], ...] = (
    (remove_urls, None),  # before the garbled-character step: URLs may contain "?"
    (remove_mentions, None),
    (remove_retweet_markers, None),
    (remove_garbled, reasons.GARBLED_CHARACTERS_REMOVED),
    (ascii_question_marks, reasons.COMPATIBILITY_FORMS_NORMALISED),  # the rest of the NFKC repair
    (strip_hashtag_signs, None),
    (collapse_whitespace, None),
)
"""The noise removal, in order; only the removal of lost characters is reported (the rest is
the paper's cleaning of every tweet)."""


def trace_noise_removal(text: str) -> tuple[str, list[str]]:
    """:func:`remove_noise` of ``text``, and the report reasons of the steps that changed it.

    Returns:
        ``(text, reasons)``: the text after :data:`REPAIR_STEPS` and :data:`NOISE_STEPS` (case
        kept), and the reasons (in step order, each once) of the steps that changed it.
    """
    changed = []
    for step, reason in (*REPAIR_STEPS, *NOISE_STEPS):
        after = step(text)
        if reason is not None and after != text and reason not in changed:
            changed.append(reason)
        text = after
    return text, changed


def remove_noise(text: str) -> str:
    """All of :func:`clean_text` except lower-casing (the input of translation).

    Order: the repairs (:data:`REPAIR_STEPS`: HTML entities, ftfy, emoji names, format
    characters, NFKC), then remove URLs → mentions → retweet markers → garbled characters →
    ``？`` as ``?`` → ``#`` of hashtags → collapse whitespace (:data:`NOISE_STEPS`).
    """
    return trace_noise_removal(text)[0]


def clean_text(text: str) -> str:
    """The paper's cleaning: "noise removed, lower-cased": :func:`remove_noise`, then ``str.lower``.

    Example: ``"RT @bob: Love it!! #sunset http://t.co/x"`` → ``"love it!! sunset"``.
    """
    return remove_noise(text).lower()


def clean_posts(frame: pd.DataFrame, report: DataReport) -> pd.DataFrame:
    """Return a copy of ``frame`` with a ``text_clean`` column (:func:`clean_text` of ``text_raw``).

    Every step that changed a text is reported under its reason (stage ``"clean"``,
    ``repaired``): ``html_entities_unescaped``, ``repaired_by_ftfy``,
    ``compatibility_forms_normalised``, ``emoji_to_words``, ``format_characters_removed``,
    ``garbled_characters_removed``. Texts that clean down to nothing (only URLs, mentions,
    garbled ``?``, invisible characters ...) are kept as ``""`` and reported (``noted``, reason
    ``"empty_after_cleaning"``), except rows without a text file, which the load stage has
    already reported.
    """
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
