"""Tests of msa_utils.data.text: each cleaning step, their composition, and clean_posts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from msa_utils.data import text as T
from msa_utils.data.mvsa import load_mvsa
from msa_utils.data.data_report import DataReport


@pytest.mark.parametrize("raw, expected", [
    ("see http://t.co/AbC123 now", "see now"),
    ("https://example.com/a?b=c&d=e end", "end"),
    ("visit www.example.org today", "visit today"),
    ("t.co/xyz link", "link"),
    ("truncated http:…", "truncated"),
    ("truncated htt…", "truncated"),
    ("truncated h…", "truncated"),
    ("truncated htt...", "truncated"),  # the same after NFKC
    ("a hat… stays", "a hat… stays"),
    ("Look at this pic.twitter.com/AbC123xyz so cute!", "Look at this so cute!"),  # no scheme
    ("more at bit.ly/3xYzAbc", "more at"),
    ("watch youtu.be/dQw4w9 and instagr.am/p/x1 and goo.gl/maps/abc", "watch and and"),
    ("see WWW.Example.co.uk/page", "see"),
    ("St.Louis/Missouri and U.S./Canada, 1.5kg/day, and/or", "St.Louis/Missouri and U.S./Canada, 1.5kg/day, and/or"),
    ("bob.blog/2014/summer and myshop.store/item and alice.dev/x", "and and"),  # any top-level domain
    ("open 9.am/5.pm, Mr.Li/Ms.Wu, Yes.No/Maybe, 5.30/6pm, $5.99/lb", "open 9.am/5.pm, Mr.Li/Ms.Wu, Yes.No/Maybe, 5.30/6pm, $5.99/lb"),
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
    ("bad\ufffdchar\x07 here", "bad char here"),
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


# --- repairs before the noise removal (posts from phones and the web; tests/data/mvsa_wild) ---

WILD = Path(__file__).parent / "data" / "mvsa_wild"


@pytest.mark.parametrize("raw, expected", [
    ("fish &amp;amp; chips &amp;lt;3", "fish & chips <3"),  # escaped twice
    ("a < b &amp; c", "a < b & c"),  # a literal "<" (ftfy would leave this text alone)
    ("&amp;amp;amp;lt;", "<"),  # four rounds
    ("Fish &amp;amp;amp;amp;amp; chips", "Fish & chips"),  # six
    ("Tips&notes &copy 2015 &#8217; &#x1F602;", "Tips&notes &copy 2015 ’ 😂"),  # only complete entities
    ("AT&T and 5 &lt; 6", "AT&T and 5 < 6"),
])
def test_unescape_html_undoes_repeated_escaping(raw, expected):
    assert T.unescape_html(raw) == expected


def test_ftfy_repairs_mojibake_but_keeps_curly_quotes():
    assert T.fix_with_ftfy("cafÃ© time, donâ€™t") == "café time, don’t"
    assert T.fix_with_ftfy("don’t “quote”") == "don’t “quote”"
    assert T.fix_with_ftfy("今天很好 Привет") == "今天很好 Привет"


@pytest.mark.parametrize("raw, expected", [
    ("ＲＴ ＠ｕｓｅｒ：ｈｉ ＃ｈａｐｐｙ", "hi happy"),  # full-width retweet marker, mention, hashtag
    ("ﬁne day…", "fine day..."),  # ligature, ellipsis
    ("a\u3000b", "a b"),  # ideographic space
    ("くらいまで？なw", "くらいまで?なw"),  # a full-width question mark is real, not a lost character
])
def test_full_width_and_compatibility_forms_behave_like_ascii(raw, expected):
    assert T.clean_text(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("love it 😍🔥", "love it smiling face with heart-eyes fire"),
    ("family 👨‍👩‍👧 day", "family family man woman girl day"),  # a ZWJ sequence is one emoji
    ("go 🇫🇷!", "go france !"),  # a flag is a pair of regional indicators
])
def test_emoji_become_words_the_encoder_can_read(raw, expected):
    assert T.clean_text(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("RT @user_a: \u200bgreat day\u2060 #\u200bsunny \u200b", "great day sunny"),  # zero-width, word joiner
    ("\u200f@user \u202bمرحبا\u202c #\u200etag", "مرحبا tag"),  # direction marks and embeddings
    ("soft\u00adhyphen, \ufeffbom, zero\u200cwidth\u200djoiners", "softhyphen, bom, zerowidthjoiners"),
])
def test_invisible_format_characters_go_before_mentions_and_hashtags(raw, expected):
    assert T.clean_text(raw) == expected


def test_clean_posts_reports_each_repair_under_its_own_reason():
    texts = {
        1: "Fish &amp;amp; chips",
        2: "cafÃ© time",
        3: "＃ｈａｐｐｙ day",
        4: "so good 😍",
        5: "great\u200b day",
        6: "@user_b \u200b\u2060\ufeff\u200b",  # a mention and invisible characters only
        7: "plain text",
    }
    frame = pd.DataFrame({"guid": list(texts), "text_raw": list(texts.values()), "has_text": True})
    report = DataReport()
    out = T.clean_posts(frame, report)
    assert out["text_clean"].tolist() == ["fish & chips", "café time", "happy day",
                                          "so good smiling face with heart-eyes", "great day", "", "plain text"]
    reported = report.to_frame().groupby("reason")["guid"].apply(sorted).to_dict()
    assert reported == {
        "html_entities_unescaped": [1], "repaired_by_ftfy": [2], "compatibility_forms_normalised": [3],
        "emoji_to_words": [4], "format_characters_removed": [5, 6], "empty_after_cleaning": [6],
    }


def test_wild_posts_clean_as_a_careful_person_would():
    report = DataReport()
    frame = T.clean_posts(load_mvsa(WILD, report), report).set_index("guid")
    clean = frame["text_clean"]
    assert clean[9506] == "don’t stop me now, i’m having such a good time"
    assert clean[9507] == "“best day ever” – can’t stop smiling..."
    assert clean[9508] == "fish & chips tonight <3 friday"
    assert clean[9509] == "great day at the beach sunny"
    assert clean[9510] == ""
    assert clean[9512] == "look at this so cute! more at"
    assert clean[9514] == "won $5 at bingo and $10 more!"
    empty = report.guids(stage="clean", reason="empty_after_cleaning")
    assert [guid for guid in empty if guid >= 9500] == [9510]  # 4001 and 4442 are real posts of only links
    assert frame.loc[9510, "has_text"]  # reported as empty after cleaning, not as an empty file
