"""Tests of msa_utils.data.translate: detection, cache, timeouts, circuit breaker, backoff (no network)."""

from __future__ import annotations

import json
import socket
import threading
import time

import pandas as pd
import pytest
import requests

from msa_utils.data.mvsa import load_mvsa
from msa_utils.data.data_report import DataReport
from msa_utils.data.text import clean_posts
from msa_utils.data.translate import (
    TranslationCache,
    TranslationTimeout,
    call_with_timeout,
    detect_language,
    is_rate_limited,
    translate_posts,
)

from conftest import NetworkAccessBlocked


class TooManyRequests(Exception):
    """Same class name as deep-translator's rate-limit error."""


@pytest.mark.parametrize("text, code", [
    ("Wow", "und"),
    ("#happy #sunset #love http://t.co/x", "und"),
    ("RT @a: Happy birthday to me", "en"),
    ("Finished today training chest and triceps", "en"),
    ("Le mec n'a pas bougé en 6 ans", "fr"),
    ("El daño que te hacen te hace más fuerte #strong", "es"),
    ("だいぶ眠い。仮眠とるか。#廃墟 #abandoned", "ja"),
    ("Когда увидел учителей на каникулах", "ru"),
])
def test_detect_language(text, code):
    assert detect_language(text) == code


def _posts(texts: dict[int, str]) -> pd.DataFrame:
    frame = pd.DataFrame({"guid": list(texts), "text_raw": list(texts.values()), "has_text": True})
    return clean_posts(frame, DataReport())


FOREIGN = {
    1: "Le mec n'a pas bougé en 6 ans #France",
    2: "Finished today training chest and triceps",
    3: "El daño que te hacen te hace más fuerte",
    4: "Когда увидел учителей на каникулах",
}


class FakeTranslator:
    """Records every call and answers with a numbered English sentence."""

    def __init__(self):
        self.calls: list[str] = []

    def __call__(self, text: str) -> str:
        self.calls.append(text)
        return f"TRANSLATED {len(self.calls)}: Hello World"


def test_translate_with_fake_and_cache_reuse(tmp_path):
    cache_path = tmp_path / "cache.json"
    fake, report = FakeTranslator(), DataReport()
    out = translate_posts(_posts(FOREIGN), cache_path, report, translator=fake, sleep=pytest.fail)
    assert out["lang"].tolist() == ["fr", "en", "es", "ru"]
    assert out["translated"].tolist() == [True, False, True, True]
    assert fake.calls[0] == "Le mec n'a pas bougé en 6 ans France"  # noise removed, case kept
    assert out.loc[0, "text_en"] == "translated 1: hello world"  # cleaned again
    assert out.loc[1, "text_en"] == out.loc[1, "text_clean"] == "finished today training chest and triceps"
    assert out["text"].tolist() == out["text_en"].tolist()
    assert report.guids(stage="translate", reason="translated") == [1, 3, 4]
    assert json.loads(cache_path.read_text())["en"]["Le mec n'a pas bougé en 6 ans France"].startswith("TRANSLATED 1")

    rerun, report2 = FakeTranslator(), DataReport()
    again = translate_posts(_posts(FOREIGN), cache_path, report2, translator=rerun)
    assert rerun.calls == []
    assert again["text_en"].tolist() == out["text_en"].tolist()
    assert all("(cache)" in e.detail for e in report2.entries)
    # a disabled run still uses the cache
    assert translate_posts(_posts(FOREIGN), cache_path, DataReport(), enabled=False)["translated"].sum() == 3


def test_connection_error_opens_the_circuit_breaker(tmp_path):
    calls = []

    def offline(text):
        calls.append(text)
        raise requests.exceptions.ConnectionError("Failed to resolve 'translate.google.com'")

    report = DataReport()
    out = translate_posts(_posts(FOREIGN), tmp_path / "c.json", report, translator=offline)
    assert len(calls) == 1
    assert not out["translated"].any()
    assert out["text_en"].tolist() == out["text_clean"].tolist()
    assert report.guids(stage="translate", action="noted", reason="untranslated_network_unavailable") == [1, 3, 4]
    assert "not tried" in [e for e in report.entries if e.guid == 3][0].detail
    assert not (tmp_path / "c.json").exists()  # nothing to save


def test_a_hanging_call_is_cut_off_by_the_timeout(tmp_path):
    release = threading.Event()
    calls = []

    def hanging(text):
        calls.append(text)
        release.wait(30)  # stands for a request that never returns
        return "late"

    report = DataReport()
    start = time.perf_counter()
    try:
        out = translate_posts(_posts(FOREIGN), tmp_path / "c.json", report, translator=hanging, timeout_s=0.2)
    finally:
        release.set()
    assert time.perf_counter() - start < 5
    assert len(calls) == 1  # the breaker stopped after the first timeout
    assert not out["translated"].any()
    assert report.guids(reason="untranslated_timeout") == [1, 3, 4]


def test_call_with_timeout_passes_results_and_errors():
    assert call_with_timeout(str.upper, "ab", 1.0) == "AB"
    with pytest.raises(KeyError):
        call_with_timeout(lambda t: {}[t], "missing", 1.0)
    event = threading.Event()
    with pytest.raises(TranslationTimeout):
        call_with_timeout(lambda t: event.wait(30), "x", 0.05)
    event.set()


def test_rate_limit_is_retried_with_bounded_backoff(tmp_path):
    sleeps, attempts = [], []

    def limited_twice(text):
        attempts.append(text)
        if len(attempts) <= 2:
            raise TooManyRequests("429")
        return "Hello"

    report = DataReport()
    out = translate_posts(_posts({1: FOREIGN[1]}), tmp_path / "c.json", report, translator=limited_twice,
                          sleep=sleeps.append, backoff_s=1.0, max_backoff_s=1.5)
    assert out["translated"].tolist() == [True] and out.loc[0, "text_en"] == "hello"
    assert sleeps == [1.0, 1.5]  # 1 * 2**0, min(1.5, 1 * 2**1)


def test_persistent_rate_limit_gives_up_and_opens_the_breaker(tmp_path):
    sleeps, calls = [], []

    def always_limited(text):
        calls.append(text)
        response = requests.Response()
        response.status_code = 429
        raise requests.exceptions.HTTPError("429 Too Many Requests", response=response)

    report = DataReport()
    out = translate_posts(_posts(FOREIGN), tmp_path / "c.json", report, translator=always_limited,
                          sleep=sleeps.append, max_retries=2)
    assert len(calls) == 3 and len(sleeps) == 2
    assert not out["translated"].any()
    assert report.guids(reason="untranslated_rate_limited") == [1, 3, 4]


def test_other_errors_skip_the_post_then_open_the_breaker(tmp_path):
    calls = []

    def flaky(text):
        calls.append(text)
        raise ValueError("no translation found")

    texts = {i: f"Le mec n'a pas bougé en {i} ans" for i in range(1, 6)}
    report = DataReport()
    translate_posts(_posts(texts), tmp_path / "c.json", report, translator=flaky, max_consecutive_errors=2)
    assert len(calls) == 2
    assert report.guids(reason="untranslated_error") == [1, 2, 3, 4, 5]


def test_disabled_translation_reports_every_foreign_post(tmp_path):
    report = DataReport()
    out = translate_posts(_posts(FOREIGN), tmp_path / "c.json", report, enabled=False, translator=pytest.fail)
    assert not out["translated"].any()
    assert report.guids(reason="untranslated_disabled") == [1, 3, 4]


def test_is_rate_limited():
    assert is_rate_limited(TooManyRequests())
    assert not is_rate_limited(requests.exceptions.ConnectionError())


def test_cache_round_trip_and_corrupt_file(tmp_path):
    cache = TranslationCache(tmp_path / "c.json")
    assert len(cache) == 0 and cache.get("hola") is None
    cache.put("hola", "hello")
    cache.put("hola", "salut", target="fr")
    cache.save()
    reloaded = TranslationCache(tmp_path / "c.json")
    assert reloaded.get("hola") == "hello" and reloaded.get("hola", "fr") == "salut"
    assert ("hola", "en") in reloaded and len(reloaded) == 2
    assert not list(tmp_path.glob(".c.json.*"))  # no temporary file left behind
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        TranslationCache(tmp_path / "bad.json")


def test_real_samples_without_network_finish_fast(mvsa_sample, tmp_path):
    """The default translator (deep-translator) with the network blocked: no hang, every foreign post reported."""
    report = DataReport()
    frame = clean_posts(load_mvsa(mvsa_sample, report), report)
    start = time.perf_counter()
    out = translate_posts(frame, tmp_path / "c.json", report, timeout_s=2.0)
    assert time.perf_counter() - start < 10
    foreign = out.loc[~out["lang"].isin(["en", "und"]), "guid"].tolist()
    assert 55 in foreign  # Japanese
    assert not out["translated"].any()
    assert sorted(report.guids(stage="translate")) == sorted(foreign)
    assert all(e.reason.startswith("untranslated_") for e in report.entries if e.stage == "translate")


def test_the_network_guard_is_active():
    with pytest.raises(NetworkAccessBlocked):
        socket.create_connection(("translate.google.com", 443), timeout=1)
    with pytest.raises(NetworkAccessBlocked):
        socket.getaddrinfo("example.com", 80)
