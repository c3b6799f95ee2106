"""Language detection (lingua) and cached, time-bounded translation to English (deep-translator) of
the ~5% of MVSA-Single texts that are not English, as the paper does; without network the cleaned
original is kept, and the data report says so post by post."""

from __future__ import annotations

import functools
import itertools
import os
import re
import threading
import time
from pathlib import Path
from typing import Callable

import pandas as pd
from deep_translator import GoogleTranslator
from lingua import Language, LanguageDetectorBuilder

from msa_utils import io
from msa_utils.data import reasons
from msa_utils.data.data_report import DataReport
from msa_utils.data.text import (clean_text, collapse_whitespace, remove_garbled, remove_mentions, remove_noise,
                                 remove_retweet_markers, remove_urls, unescape_html)

UNDETERMINED = "und"
"""The language of texts too short or too ambiguous to tell; treated as English."""
DETECTION_LANGUAGES = (
    "ENGLISH", "SPANISH", "PORTUGUESE", "FRENCH", "GERMAN", "ITALIAN", "DUTCH", "SWEDISH", "POLISH",
    "TURKISH", "INDONESIAN", "MALAY", "TAGALOG", "RUSSIAN", "ARABIC", "JAPANESE", "CHINESE", "KOREAN", "THAI",
)
"""lingua ``Language`` names the detector chooses from: those seen in MVSA (all 75: ~10 s, ~1 GB to load)."""
MIN_WORDS = 3
"""Fewer words with letters than this (hashtags, URLs, mentions not counted) → ``und`` ..."""
MIN_UNSPACED_LETTERS = 3
"""... unless the text has this many letters of a script written without spaces (CJK, Thai)."""
MIN_CONFIDENCE = 0.3
"""A non-English language needs this lingua confidence (0..1) ..."""
MAX_ENGLISH_CONFIDENCE = 0.1
"""... and English at most this one, else the text counts as English (names, product codes; read on MVSA)."""


@functools.lru_cache(maxsize=1)
def _detector():
    return LanguageDetectorBuilder.from_languages(*(getattr(Language, name) for name in DETECTION_LANGUAGES)).build()


def detect_language(text: str) -> str:
    """ISO 639-1 code of a raw tweet's language (``"en"``, ``"ja"`` ...) or ``"und"``, read by lingua on
    the text without entities, URLs, mentions, ``RT``, lost characters and hashtags, by the thresholds above."""
    for step in (unescape_html, remove_urls, remove_mentions, remove_retweet_markers, remove_garbled):
        text = step(text)
    body = collapse_whitespace(re.sub(r"#\w+", " ", text))
    words = sum(1 for word in body.split() if any(ch.isalpha() for ch in word))
    unspaced = sum(1 for ch in body if ch.isalpha() and (0x0E00 <= ord(ch) <= 0x0E7F or 0x3040 <= ord(ch) <= 0x30FF
                                                         or 0x3400 <= ord(ch) <= 0x9FFF or 0xF900 <= ord(ch) <= 0xFAFF))
    if words < MIN_WORDS and unspaced < MIN_UNSPACED_LETTERS:
        return UNDETERMINED
    values = _detector().compute_language_confidence_values(body)
    if not values:
        return UNDETERMINED
    code = values[0].language.iso_code_639_1.name.lower()
    english = next((v.value for v in values if v.language.iso_code_639_1.name == "EN"), 0.0)
    if code == "en" or (values[0].value >= MIN_CONFIDENCE and english <= MAX_ENGLISH_CONFIDENCE):
        return code
    return "en"


class TranslationCache:
    """Translations on disk, JSON ``{"<target>": {"<source text>": "<translation>"}}``: read when
    created (ValueError if the file is not such an object), written by :meth:`save` if changed."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._data: dict[str, dict[str, str]] = {}
        self._dirty = False
        if self.path.exists():
            try:
                data = io.read_json(self.path)
            except ValueError as exc:
                raise ValueError(f"translation cache {self.path} is not valid JSON: {exc}") from exc
            if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
                raise ValueError(f"translation cache {self.path} must map target language -> {{source: translation}}")
            self._data = data

    def get(self, text: str, target: str = "en") -> str | None:
        """The cached translation of ``text`` into ``target``, or ``None``."""
        return self._data.get(target, {}).get(text)

    def put(self, text: str, translation: str, target: str = "en") -> None:
        """Remember a translation (in memory until :meth:`save`)."""
        self._data.setdefault(target, {})[text] = translation
        self._dirty = True

    def __contains__(self, key: tuple[str, str]) -> bool:  # (text, target)
        return key[0] in self._data.get(key[1], {})

    def __len__(self) -> int:
        return sum(len(v) for v in self._data.values())

    def save(self) -> None:
        """Write the cache if it changed."""
        if self._dirty:
            io.write_json(self.path, self._data)
            self._dirty = False


class TranslationTimeout(TimeoutError):
    """A translation call did not return within its time limit."""


def call_with_timeout(fn: Callable[[str], str], text: str, timeout_s: float) -> str:
    """``fn(text)`` in a daemon thread, so a hanging call blocks neither the run nor its exit. Raises
    :class:`TranslationTimeout` after ``timeout_s`` seconds, else what ``fn`` raised."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = fn(text)
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    worker = threading.Thread(target=run, name="translate-call", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise TranslationTimeout(f"translation did not return within {timeout_s} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def is_rate_limited(exc: BaseException) -> bool:
    """True for deep-translator's ``TooManyRequests`` and any error carrying HTTP status 429."""
    response = getattr(exc, "response", None)
    return (type(exc).__name__ == "TooManyRequests" or getattr(response, "status_code", None) == 429
            or getattr(exc, "status_code", None) == 429)


def translate_posts(frame: pd.DataFrame, cache_path: str | os.PathLike, report: DataReport, enabled: bool = True,
                    timeout_s: float = 10.0, translator: Callable[[str], str] | None = None, *, max_retries: int = 3,
                    backoff_s: float = 1.0, max_backoff_s: float = 30.0, max_consecutive_errors: int = 3,
                    sleep: Callable[[float], None] = time.sleep, save_every: int = 50) -> pd.DataFrame:
    """A copy of ``frame`` (``guid``, ``text_raw``, ``text_clean``) with ``lang`` (:func:`detect_language`),
    ``text_en`` (the cleaned translation, or ``text_clean``), ``translated`` and ``text`` (= ``text_en``);
    each post neither ``en`` nor ``und`` reported. The translator (default ``GoogleTranslator``) gets
    :func:`remove_noise` of ``text_raw``; answers are cached (saved every ``save_every`` new calls;
    ``enabled=False``: the cache only). Rate limiting is retried ``max_retries`` times after
    ``sleep(min(max_backoff_s, backoff_s * 2**attempt))``; the ``untranslated_*`` reasons say when calls stop."""
    failures, stopped = 0, None  # errors in a row; (reason, why) once no more calls are made

    def call(guid, lang: str, source: str) -> str | None:
        nonlocal translator, failures, stopped
        if stopped is not None:
            report.add(stopped[0], guid, f"lang {lang}; not tried: {stopped[1]}; kept the cleaned original text")
            return None
        if translator is None:
            translator = GoogleTranslator(source="auto", target="en").translate
        try:
            for attempt in itertools.count():
                try:
                    result = call_with_timeout(translator, source, timeout_s)
                    break
                except Exception as exc:
                    if not is_rate_limited(exc) or attempt >= max_retries:
                        raise
                    sleep(min(max_backoff_s, backoff_s * 2**attempt))
        except TimeoutError as exc:
            reason, detail = reasons.UNTRANSLATED_TIMEOUT, f"{exc}"
        except Exception as exc:
            reason, detail = reasons.UNTRANSLATED_ERROR, f"{type(exc).__name__}: {exc}"
            if is_rate_limited(exc):
                reason = reasons.UNTRANSLATED_RATE_LIMITED
                detail = f"still rate-limited after {max_retries} retries: {exc!r}"
            elif isinstance(exc, OSError):
                reason = reasons.UNTRANSLATED_NETWORK_UNAVAILABLE
        else:
            if isinstance(result, str) and result.strip():
                failures = 0
                return result
            reason, detail = reasons.UNTRANSLATED_EMPTY_RESULT, f"translator returned {result!r}"
        # a failure of this post alone is counted; a timeout, the rate limit or no network stops all calls at once
        own_failure = reason in (reasons.UNTRANSLATED_ERROR, reasons.UNTRANSLATED_EMPTY_RESULT)
        failures += own_failure
        report.add(reason, guid, f"lang {lang}; {detail[:200]}; kept the cleaned original text")
        if not own_failure or failures >= max_consecutive_errors:
            stopped = (reason, f"translation stopped after {reason} on guid {guid} ({detail[:120]})")
        return None

    out = frame.assign(lang=[detect_language(str(t)) for t in frame["text_raw"]])
    cache = TranslationCache(cache_path)
    text_en, translated, new_calls = list(out["text_clean"]), [False] * len(out), 0
    try:
        for i, (guid, lang, raw) in enumerate(zip(out["guid"], out["lang"], out["text_raw"])):
            if lang in ("en", UNDETERMINED):
                continue
            source = remove_noise(raw)
            result, origin = cache.get(source), "cache"
            if result is None and not enabled:
                report.add(reasons.UNTRANSLATED_DISABLED, guid,
                           f"lang {lang}; translation disabled by the profile; kept the cleaned original text")
                continue
            if result is None:
                result, origin = call(guid, lang, source), "new call"
                if result is None:
                    continue
                cache.put(source, result)
                new_calls += 1
                if new_calls % save_every == 0:
                    cache.save()
            text_en[i], translated[i] = clean_text(result), True
            report.add(reasons.TRANSLATED, guid, f"lang {lang} -> en ({origin})")
    finally:
        cache.save()
    out["text_en"], out["translated"] = text_en, translated
    out["text"] = out["text_en"]
    return out
