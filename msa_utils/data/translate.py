"""Language detection (lingua) and cached, time-bounded translation to English (deep-translator).

About 5% of MVSA-Single texts are not English. The paper translates them to English before
encoding; we do the same when the network allows, and otherwise keep the cleaned original text
and say so in the data report, post by post.

* :func:`detect_language`: lingua-language-detector restricted to :data:`DETECTION_LANGUAGES`
  (high-accuracy mode), with a "too little text" rule and confidence thresholds chosen by
  reading the MVSA texts, so that short English tweets are not flagged.
* :class:`TranslationCache`: a JSON file keyed by target language and source text, saved
  atomically, so a rerun never asks twice for the same text.
* :func:`translate_posts`: every call bounded by a timeout (deep-translator calls ``requests``
  without one), a circuit breaker that stops after the first network failure, and bounded
  exponential backoff on rate limiting (HTTP 429).
"""

from __future__ import annotations

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
from msa_utils.data.text import (
    clean_text,
    collapse_whitespace,
    remove_garbled,
    remove_mentions,
    remove_noise,
    remove_retweet_markers,
    remove_urls,
    unescape_html,
)

UNDETERMINED = "und"
"""Code for texts too short or too ambiguous to tell; treated as English."""

DETECTION_LANGUAGES = (
    "ENGLISH", "SPANISH", "PORTUGUESE", "FRENCH", "GERMAN", "ITALIAN", "DUTCH", "SWEDISH", "POLISH",
    "TURKISH", "INDONESIAN", "MALAY", "TAGALOG", "RUSSIAN", "ARABIC", "JAPANESE", "CHINESE",
    "KOREAN", "THAI",
)
"""lingua ``Language`` names the detector chooses from (the languages seen in MVSA; lingua has
both Malay and Indonesian). Restricting the list keeps short tweets from being assigned to
rare languages and keeps loading fast (~1 s, instead of ~10 s and ~1 GB for all 75)."""

MIN_WORDS = 3
"""Fewer whitespace words with letters than this (hashtags, URLs, mentions not counted) → ``und``."""
MIN_UNSPACED_LETTERS = 3
"""... unless the text has at least this many letters of a script written without spaces (CJK, Thai)."""
MIN_CONFIDENCE = 0.3
"""A non-English language must have at least this lingua confidence (0..1) ..."""
MAX_ENGLISH_CONFIDENCE = 0.1
"""... and English at most this one; otherwise the text counts as English. Chosen by reading
the MVSA texts: English tweets with names or product codes often get a foreign top language
with confidence 0.1-0.45 but keep an English confidence above 0.1."""

_HASHTAG_RE = re.compile(r"#\w+")
_DETECTOR = None
_DETECTOR_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------
# Language detection
# --------------------------------------------------------------------------------------------

def get_detector():
    """The lingua detector, built once per process (high-accuracy mode, languages preloaded lazily)."""
    global _DETECTOR
    with _DETECTOR_LOCK:
        if _DETECTOR is None:
            languages = [getattr(Language, name) for name in DETECTION_LANGUAGES]
            _DETECTOR = LanguageDetectorBuilder.from_languages(*languages).build()
        return _DETECTOR


def detection_body(text: str) -> str:
    """The part of a tweet that says which language it is in.

    HTML entities unescaped; URLs, mentions, ``RT``, garbled characters and whole hashtags
    removed (hashtags are often English tags on non-English text, or the reverse).
    """
    for step in (unescape_html, remove_urls, remove_mentions, remove_retweet_markers, remove_garbled):
        text = step(text)
    return collapse_whitespace(_HASHTAG_RE.sub(" ", text))


def _is_unspaced_script(ch: str) -> bool:
    """Letters of scripts written without spaces between words (Thai, kana, CJK ideographs)."""
    cp = ord(ch)
    return 0x0E00 <= cp <= 0x0E7F or 0x3040 <= cp <= 0x30FF or 0x3400 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF


def has_enough_text(body: str) -> bool:
    """True if ``body`` has >= :data:`MIN_WORDS` words with letters, or >= :data:`MIN_UNSPACED_LETTERS` CJK/Thai letters."""
    words = sum(1 for word in body.split() if any(ch.isalpha() for ch in word))
    unspaced = sum(1 for ch in body if ch.isalpha() and _is_unspaced_script(ch))
    return words >= MIN_WORDS or unspaced >= MIN_UNSPACED_LETTERS


def detect_language(text: str) -> str:
    """ISO 639-1 code of the language of a raw tweet, or ``"und"`` (treated as English).

    Steps: :func:`detection_body`; ``"und"`` if not :func:`has_enough_text` (e.g. hashtag-only);
    lingua confidences over :data:`DETECTION_LANGUAGES`; the top language is returned if it is
    English, or if its confidence is >= :data:`MIN_CONFIDENCE` while English's is <=
    :data:`MAX_ENGLISH_CONFIDENCE`; otherwise ``"en"``.

    Args:
        text: raw tweet text (hashtags still marked with ``#``).

    Returns:
        e.g. ``"en"``, ``"es"``, ``"ja"``, or ``"und"``.
    """
    body = detection_body(text)
    if not has_enough_text(body):
        return UNDETERMINED
    values = get_detector().compute_language_confidence_values(body)
    if not values:
        return UNDETERMINED
    top = values[0]
    code = top.language.iso_code_639_1.name.lower()
    if code == "en":
        return "en"
    english = next((v.value for v in values if v.language.iso_code_639_1.name == "EN"), 0.0)
    if top.value >= MIN_CONFIDENCE and english <= MAX_ENGLISH_CONFIDENCE:
        return code
    return "en"


def detect_languages(texts) -> list[str]:
    """:func:`detect_language` of each text (an iterable of str), in order."""
    return [detect_language(str(t)) for t in texts]


def is_english(code: str) -> bool:
    """True for ``"en"`` and ``"und"`` (undetermined texts are treated as English)."""
    return code in ("en", UNDETERMINED)


# --------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------

class TranslationCache:
    """Translations on disk: JSON ``{"<target>": {"<source text>": "<translation>"}}``.

    Loaded once when created, written atomically (:func:`msa_utils.io.write_json`) by
    :meth:`save`, only if something changed.

    Raises:
        ValueError: (constructor) if the file exists but is not such a JSON object.
    """

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

    def __contains__(self, key: tuple[str, str]) -> bool:
        text, target = key
        return text in self._data.get(target, {})

    def __len__(self) -> int:
        return sum(len(v) for v in self._data.values())

    def save(self) -> Path:
        """Write the cache atomically if it changed; return its path."""
        if self._dirty:
            io.write_json(self.path, self._data)
            self._dirty = False
        return self.path


# --------------------------------------------------------------------------------------------
# Time-bounded calls
# --------------------------------------------------------------------------------------------

class TranslationTimeout(TimeoutError):
    """A translation call did not return within its time limit."""


def call_with_timeout(fn: Callable[[str], str], text: str, timeout_s: float) -> str:
    """Run ``fn(text)`` in a daemon thread and wait at most ``timeout_s`` seconds.

    A daemon thread (not a ``ThreadPoolExecutor`` worker, which the interpreter joins at exit)
    so that a call hanging on the network can neither block this run nor its exit.

    Raises:
        TranslationTimeout: if ``fn`` has not returned after ``timeout_s``.
        Exception: whatever ``fn`` raised.
    """
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
    if type(exc).__name__ == "TooManyRequests":
        return True
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None) == 429 or getattr(exc, "status_code", None) == 429


def default_translator(target: str = "en") -> Callable[[str], str]:
    """deep-translator's ``GoogleTranslator(source="auto", target=target).translate``."""
    return GoogleTranslator(source="auto", target=target).translate


class _Breaker:
    """Circuit breaker: open after a network failure or ``max_failures`` errors in a row."""

    def __init__(self, max_failures: int):
        self.max_failures = max_failures
        self.failures = 0
        self.open_reason: str | None = None
        self.open_detail = ""

    def trip(self, reason: str, detail: str) -> None:
        """Open the breaker: every later post is reported with ``reason`` and not tried."""
        self.open_reason, self.open_detail = reason, detail


def _translate_one(text: str, translator: Callable[[str], str], timeout_s: float, max_retries: int,
                   backoff_s: float, max_backoff_s: float, sleep: Callable[[float], None]) -> str:
    """One bounded call, retrying rate-limit errors with exponential backoff."""
    attempt = 0
    while True:
        try:
            return call_with_timeout(translator, text, timeout_s)
        except Exception as exc:
            if not is_rate_limited(exc) or attempt >= max_retries:
                raise
            sleep(min(max_backoff_s, backoff_s * 2**attempt))
            attempt += 1


# --------------------------------------------------------------------------------------------
# Posts
# --------------------------------------------------------------------------------------------

def translate_posts(
    frame: pd.DataFrame,
    cache_path: str | os.PathLike,
    report: DataReport,
    enabled: bool = True,
    timeout_s: float = 10.0,
    translator: Callable[[str], str] | None = None,
    *,
    target: str = "en",
    max_retries: int = 3,
    backoff_s: float = 1.0,
    max_backoff_s: float = 30.0,
    max_consecutive_errors: int = 3,
    sleep: Callable[[float], None] = time.sleep,
    save_every: int = 50,
) -> pd.DataFrame:
    """Detect the language of each post and translate non-English text to English.

    What is translated: :func:`msa_utils.data.text.remove_noise` of ``text_raw`` (noise removed, case
    kept, hashtag words kept), so the translator sees normal text; the translation is then
    cleaned with :func:`msa_utils.data.text.clean_text`. Posts detected as ``"en"`` or ``"und"`` are
    not translated.

    Failure handling: each call runs at most ``timeout_s`` seconds (:func:`call_with_timeout`).
    A network failure (any ``OSError``: ``requests`` ``ConnectionError``, DNS, timeout) opens a
    circuit breaker: no further calls this run. Rate limiting (:func:`is_rate_limited`) is
    retried up to ``max_retries`` times, sleeping ``backoff_s * 2**attempt`` (at most
    ``max_backoff_s``) with the injectable ``sleep``; if it persists the breaker opens. Other
    errors skip that post; ``max_consecutive_errors`` of them in a row open the breaker.
    Every non-English post left untranslated is reported (stage ``"translate"``, ``noted``,
    reason ``untranslated_<why>``: ``disabled``, ``network_unavailable``, ``timeout``,
    ``rate_limited``, ``error``, ``empty_result``); every translated post is reported as
    ``noted``, reason ``translated`` (detail: language and whether it came from the cache).

    Args:
        frame: has ``guid``, ``text_raw``, ``text_clean`` (and optionally ``lang``, which is
            then used instead of running :func:`detect_language`).
        cache_path: JSON file of the :class:`TranslationCache` (read, and written atomically).
        enabled: if False, only the cache is used (no calls).
        translator: callable ``text -> translation``; default :func:`default_translator`,
            built only if a call is needed.
        sleep: the backoff sleep (tests pass a fake).

    Returns:
        A copy of ``frame`` with ``lang`` (str), ``text_en`` (str: cleaned English translation,
        or ``text_clean`` where not translated), ``translated`` (bool) and ``text`` (= ``text_en``,
        the model's input text).
    """
    out = frame.copy()
    if "lang" not in out.columns:
        out["lang"] = detect_languages(out["text_raw"])
    cache = TranslationCache(cache_path)
    breaker = _Breaker(max_consecutive_errors)
    text_en = list(out["text_clean"])
    translated = [False] * len(out)
    new_calls = 0
    try:
        for i, (guid, lang, raw) in enumerate(zip(out["guid"], out["lang"], out["text_raw"])):
            if is_english(lang):
                continue
            source = remove_noise(raw)
            result = cache.get(source, target)
            from_cache = result is not None
            if result is None:
                if not enabled:
                    report.add(reasons.UNTRANSLATED_DISABLED, guid,
                               f"lang {lang}; translation disabled by the profile; kept the cleaned original text")
                    continue
                if breaker.open_reason is not None:
                    report.add(breaker.open_reason, guid,
                               f"lang {lang}; not tried: {breaker.open_detail}; kept the cleaned original text")
                    continue
                if translator is None:
                    translator = default_translator(target)
                result = _attempt(guid, lang, source, translator, breaker, report, timeout_s, max_retries,
                                  backoff_s, max_backoff_s, sleep)
                if result is None:
                    continue
                cache.put(source, result, target)
                new_calls += 1
                if new_calls % save_every == 0:
                    cache.save()
            text_en[i] = clean_text(result)
            translated[i] = True
            report.add(reasons.TRANSLATED, guid, f"lang {lang} -> {target} ({'cache' if from_cache else 'new call'})")
    finally:
        cache.save()
    out["text_en"] = text_en
    out["translated"] = translated
    out["text"] = out["text_en"]
    return out


def _attempt(guid, lang, source, translator, breaker: _Breaker, report: DataReport, timeout_s, max_retries,
             backoff_s, max_backoff_s, sleep) -> str | None:
    """Translate one post; on failure report it, update the breaker and return ``None``."""
    try:
        result = _translate_one(source, translator, timeout_s, max_retries, backoff_s, max_backoff_s, sleep)
    except TimeoutError as exc:
        reason, detail, fatal = reasons.UNTRANSLATED_TIMEOUT, f"{exc}", True
    except Exception as exc:
        if is_rate_limited(exc):
            reason, detail, fatal = reasons.UNTRANSLATED_RATE_LIMITED, f"still rate-limited after {max_retries} retries: {exc!r}", True
        elif isinstance(exc, OSError):
            reason, detail, fatal = reasons.UNTRANSLATED_NETWORK_UNAVAILABLE, f"{type(exc).__name__}: {exc}", True
        else:
            breaker.failures += 1
            reason, detail = reasons.UNTRANSLATED_ERROR, f"{type(exc).__name__}: {exc}"
            fatal = breaker.failures >= breaker.max_failures
    else:
        if isinstance(result, str) and result.strip():
            breaker.failures = 0
            return result
        breaker.failures += 1
        reason, detail = reasons.UNTRANSLATED_EMPTY_RESULT, f"translator returned {result!r}"
        fatal = breaker.failures >= breaker.max_failures
    report.add(reason, guid, f"lang {lang}; {detail[:200]}; kept the cleaned original text")
    if fatal:
        breaker.trip(reason, f"translation stopped after {reason} on guid {guid} ({detail[:120]})")
    return None
