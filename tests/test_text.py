"""Tests of msa_utils.text: each cleaning step, their composition, and clean_posts."""

from __future__ import annotations

import pandas as pd
import pytest

from msa_utils import text as T
from msa_utils.data import load_mvsa
from msa_utils.data_report import DataReport


@pytest.mark.parametrize("raw, expected", [
    ("see http://t.co/AbC123 now", "see now"),
    ("https://example.com/a?b=c&d=e end", "end"),
    ("visit www.example.org today", "visit today"),
    ("t.co/xyz link", "link"),
    ("truncated http:…", "truncated"),
    ("truncated htt…", "truncated"),
    ("truncated h…", "truncated"),
    ("a hat… stays", "a hat… stays"),
])
def test_remove_urls(raw, expected):
    assert T.collapse_whitespace(T.remove_urls(raw)) == expected


def test_remove_mentions_keeps_emails():
    assert T.collapse_whitespace(T.remove_mentions("RT @bob_1: hi @al and mail me@x.com")) == "RT hi and mail me@x.com"


def test_remove_retweet_markers_only_whole_upper_case_word():
    assert T.collapse_whitespace(T.remove_retweet_markers("RT: ART rt RTX RT's RT")) == "ART rt RTX RT's"


def test_strip_hashtag_signs_keeps_the_word_unsplit():
    assert T.strip_hashtag_signs("#HappyBirthday to #me # !") == "HappyBirthday to me # !"


@pytest.mark.parametrize("raw, expected", [
    ("ich w?r bereit", "ich wr bereit"),  # lost character mid-word
    ("only ?200 today", "only 200 today"),  # lost currency sign
    ("nice ??? #???", "nice"),  # tokens made only of '?'
    ("really? what?? ok!?", "really? what?? ok!?"),  # real question marks kept
    ("Is it you?", "Is it you?"),
    ("bad\ufffdchar\x07 here\ufeff", "bad char here"),
])
def test_remove_garbled(raw, expected):
    assert T.collapse_whitespace(T.remove_garbled(raw)) == expected


def test_unescape_html_and_collapse_whitespace():
    assert T.unescape_html("fish &amp; chips &lt;3") == "fish & chips <3"
    assert T.collapse_whitespace("  a \t b\n\nc  ") == "a b c"


def test_clean_text_composes_all_steps():
    raw = "RT @bob: Love it!! ?? #Sunset &amp; sea? http://t.co/x"
    assert T.clean_text(raw) == "love it!! sunset & sea?"
    assert T.remove_noise(raw) == "Love it!! Sunset & sea?"
    assert T.clean_text("") == ""


def test_clean_text_on_real_texts(mvsa_sample):
    frame = load_mvsa(mvsa_sample, DataReport()).set_index("guid")
    clean = frame["text_raw"].map(T.clean_text)
    assert clean[4211] == "wow"
    assert clean[824] == "cheetah's eyes, namibia 2004 print 40x40cm from 180€ - contact@laurentbaheux.com - wild"
    assert clean[55] == "だいぶ眠い。仮眠とるか。廃墟 abandoned ruins haikyo urbex 写真好きな人と繋がりたい"
    assert clean[3323] == "炉500 | ham pixiv"
    assert clean[71].startswith("wenn jim carry will, ich wr bereit für")


def test_clean_posts_reports_empty_texts():
    frame = pd.DataFrame({
        "guid": [1, 2, 3],
        "text_raw": ["RT @a: http://t.co/x ???", "Fine day", ""],
        "has_text": [True, True, False],
    })
    report = DataReport()
    out = T.clean_posts(frame, report)
    assert out["text_clean"].tolist() == ["", "fine day", ""]
    assert report.guids(stage="clean", action="noted", reason="empty_after_cleaning") == [1]
    assert "text_clean" not in frame.columns  # input not modified
    assert len(out) == 3


def test_clean_posts_reports_removed_lost_characters():
    frame = pd.DataFrame({
        "guid": [1, 2, 3],
        "text_raw": ["don?t stop", "what? http://x.co/a?b=1", "caf\ufffd open"],
        "has_text": [True, True, True],
    })
    report = DataReport()
    out = T.clean_posts(frame, report)
    assert out["text_clean"].tolist() == ["dont stop", "what?", "caf open"]
    # a real question mark and a '?' inside a URL are not lost characters
    assert report.guids(stage="clean", action="repaired", reason="garbled_characters_removed") == [1, 3]
