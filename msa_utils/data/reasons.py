"""The registry of data-report reasons: each code of ``data_report.csv`` defined once, with its stage,
action, case and handling. ``DataReport.add`` refuses codes it lacks (:func:`lookup`) and
:func:`reasons_table` renders it into ``docs/data-handling.md`` (``python scripts/render_docs.py``)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

STAGES: dict[str, str] = {"load": "Reading the files", "sample": "Sampling", "images": "Checking the images",
                          "content": "Shared content", "clean": "Cleaning the text", "translate": "Translating"}
"""The stages that write the report, in pipeline order, with their titles in :func:`reasons_table`."""
ACTIONS: tuple[str, ...] = ("repaired", "excluded", "noted")
"""What a stage did about an item: repaired it, left it out, or noticed it and kept it as is."""


@dataclass(frozen=True)
class Reason:
    """One reason: ``code`` (or a pattern with one ``{placeholder}``, whose values are ``members``;
    ``None``: any), ``stage``, ``action``, the input (``case``), ``handling`` and our ``policy``, if any."""

    code: str
    stage: str
    action: str
    case: str
    handling: str
    policy: str | None = None
    members: tuple[str, ...] | None = None

    @property
    def is_pattern(self) -> bool:
        """True if :attr:`code` is a pattern rather than one code."""
        return "{" in self.code

    def matches(self, code: str) -> bool:
        """True if the concrete ``code`` is this reason's code, or a member of its pattern."""
        if not self.is_pattern:
            return code == self.code
        prefix, rest = self.code.split("{", 1)
        suffix = rest.split("}", 1)[1]
        value = code[len(prefix):len(code) - len(suffix)]
        return (code.startswith(prefix) and code.endswith(suffix) and len(code) > len(prefix) + len(suffix)
                and "{" not in value and (self.members is None or value in self.members))

    def format(self, value: str) -> str:
        """The code of this pattern for the placeholder ``value``; ValueError for a fixed code or a non-member."""
        if not self.is_pattern:
            raise ValueError(f"reason {self.code!r} is a fixed code, not a pattern")
        code = self.code.split("{", 1)[0] + value + self.code.split("}", 1)[1]
        if not self.matches(code):
            raise ValueError(f"{value!r} is not a member of the reason pattern {self.code!r}")
        return code


REASONS: dict[str, Reason] = {}
"""Every registered reason by its code (patterns included), in pipeline order."""


def _register(stage: str, code: str, action: str, case: str, handling: str, policy: str | None = None,
              members: tuple[str, ...] | None = None) -> str:
    REASONS[code] = Reason(code, stage, action, case, handling, policy, members)
    return code


_load, _sample, _images, _content, _clean, _translate = (functools.partial(_register, stage) for stage in STAGES)


_NOT_TRAINED = "the row is kept with has_text=False and the trainer skips it"
_NO_IMAGE = "the row is kept with image_ok=False and the trainer skips it"

# ---- load: a post's text ----
UTF8_BOM_REMOVED = _load("utf8_bom_removed", "repaired", "text in UTF-8 with a byte-order mark",
    "mark removed, decoded as UTF-8")
DECODED_UTF16 = _load("decoded_utf16", "repaired", "text in UTF-16 with a byte-order mark", "decoded as UTF-16")
DECODED_UTF16_NO_BOM = _load("decoded_utf16_no_bom", "repaired", "text in UTF-16 without a byte-order mark",
    "recognised by its zero bytes (at least a third of the bytes, all at odd or all at even offsets), "
    "decoded as UTF-16")
DECODED_GB18030 = _load("decoded_gb18030", "repaired", "text in GBK / GB18030",
    "decoded as GB18030 (the most plausible reading, or a tie)",
    policy="bytes valid in several legacy encodings go to the reading with the fewest signs of "
    "mis-decoding (msa_utils.data.decoding.implausibility); ties to GB18030, the release's encoding")
DECODED_WINDOWS_1252 = _load("decoded_windows_1252", "repaired",
    "text in Windows-1252 / Latin-1 (`Don\\x92t`, also valid GB18030 as `Don抰`)",
    "decoded as Windows-1252 when its reading is more plausible than GB18030's")
DECODED_WINDOWS_1251 = _load("decoded_windows_1251", "repaired", "text in Windows-1251 (Cyrillic)",
    "decoded as Windows-1251 when its reading is more plausible than GB18030's and Windows-1252's")
DECODED_GB18030_NOT_UTF8 = _load("decoded_gb18030_not_utf8", "repaired", "GBK bytes that happen to be valid UTF-8",
    "caught (the UTF-8 reading looks mis-decoded, the GB18030 reading is all CJK) and decoded as GB18030")
NUL_BYTES_REMOVED = _load("nul_bytes_removed", "repaired", "stray NUL bytes in a text (not UTF-16)",
    "NULs removed, the rest decoded as usual")
AFTER_NUL_REPAIRS: tuple[str, ...] = (UTF8_BOM_REMOVED, DECODED_UTF16, DECODED_GB18030, DECODED_GB18030_NOT_UTF8,
                                      DECODED_WINDOWS_1252, DECODED_WINDOWS_1251)
"""The repairs the rest of a text can need once its stray NULs are removed."""
NUL_BYTES_REMOVED_PLUS = _load("nul_bytes_removed+{repair}", "repaired",
    "stray NUL bytes in a text whose rest also needs a repair",
    "NULs removed, the rest decoded and repaired; the code joins both repairs with '+' "
    "(`{repair}`: " + ", ".join(f"`{r}`" for r in AFTER_NUL_REPAIRS) + ")", members=AFTER_NUL_REPAIRS)
TEXT_REPAIRS: tuple[str, ...] = (UTF8_BOM_REMOVED, DECODED_UTF16, DECODED_UTF16_NO_BOM, DECODED_GB18030,
                                 DECODED_GB18030_NOT_UTF8, DECODED_WINDOWS_1252, DECODED_WINDOWS_1251,
                                 NUL_BYTES_REMOVED, *(f"{NUL_BYTES_REMOVED}+{r}" for r in AFTER_NUL_REPAIRS))
"""Every repair code :func:`msa_utils.data.decoding.decode_text_bytes` returns for a usable text."""
DECODED_UTF8_WITH_REPLACEMENT = "decoded_utf8_with_replacement"
"""Not a report code: a post's text so decoded is :data:`UNDECODABLE_TEXT`, a label file ``label_file_`` + this."""
LABEL_FILE_REPAIRS: tuple[str, ...] = (*TEXT_REPAIRS, DECODED_UTF8_WITH_REPLACEMENT)
"""The values of ``label_file_{repair}``."""
UNDECODABLE_TEXT = _load("undecodable_text", "excluded",
    "text bytes that read cleanly in none of UTF-8, UTF-16, GB18030, Windows-1252, Windows-1251: invalid in "
    "each, or garbage in those they are valid in (`great \\xff\\xfe\\x80\\x81 day \\xc3` is Windows-1251 "
    "`great яюЂЃ day Г`; `msa_utils.data.decoding.reads_cleanly`)",
    f"excluded rather than trained on as garbage ({_NOT_TRAINED}; the text is kept for display as UTF-8, "
    "a U+FFFD for each bad byte: `great ���� day �`)")
UNREADABLE_TEXT_FILE = _load("unreadable_text_file", "excluded",
    "a text path that is not a regular file (a folder, a FIFO, a link to /dev/zero) or cannot be read",
    f"excluded, never read, so it cannot hang the run or fill the memory ({_NOT_TRAINED})")
TEXT_TOO_LARGE = _load("text_too_large", "excluded", "text file over 64 KiB (`msa_utils.data.mvsa.MAX_TEXT_BYTES`)",
    f"excluded, never read ({_NOT_TRAINED})", policy="a tweet is at most ~1 KiB: a file that large is not a post")
MISSING_TEXT_FILE = _load("missing_text_file", "excluded", "post with no text file (or no files at all)",
    f"excluded ({_NOT_TRAINED})")
EMPTY_TEXT_FILE = _load("empty_text_file", "excluded",
    "empty (zero-byte or blank) text file, or a table row with no text and no text file",
    f"excluded ({_NOT_TRAINED})", policy="an empty file is a failed download, not a post")
MISSING_IMAGE_FILE = _load("missing_image_file", "excluded",
    "post with no image file (`data/<guid>` with a suffix of `msa_utils.data.mvsa.IMAGE_SUFFIXES`: "
    "`.jpg .jpeg .png .webp .gif .bmp .tif .tiff`, in any case)",
    "excluded (the row is kept with has_image=False and the trainer skips it)")
CONFLICTING_IMAGE_FILES = _load("conflicting_image_files", "excluded",
    "post with two or more image files (`5.jpg` and `5.png`; `5.jpg` and `5.JPG`)",
    "none is used: excluded (the row is kept with has_image=False and an empty image_file, and the trainer "
    "skips it); the detail names every file",
    policy="we cannot tell which picture is the post's and will not pick one silently")
# ---- load: label files ----
LABEL_FILE_REPAIR = _load("label_file_{repair}", "repaired",
    "label file with a byte-order mark, in UTF-16 or GB18030, with stray NULs or bytes that read cleanly nowhere",
    "decoded like a post's text; reported once for the file, without a guid "
    "(`{repair}`: one of the text repairs above, or `decoded_utf8_with_replacement`: UTF-8 with a U+FFFD for each "
    "bad byte, ASCII kept)", members=LABEL_FILE_REPAIRS)
BAD_LABEL_LINE = _load("bad_label_line", "excluded",
    "label line (or a table's row) with too many or too few fields, a stray quote, a field over 128 KiB",
    "that line is excluded, named by its file and line (or row) number; the rest of the file is read")
BAD_GUID = _load("bad_guid", "excluded",
    "guid not written like the file names (`abc`, `0042`, `-5`, `+12`, `12.0`, non-ASCII digits, over 2^63 - 1)",
    "that line (or a table's row) is excluded, named by its file and line (or row) number",
    policy="`0042` is not silently read as `42`: the file names are `data/<guid>.txt` and its image `data/<guid>.jpg`")
LABEL_NORMALISED = _load("label_normalised", "repaired", "tag with odd case or spaces (` Negative `)",
    "stripped and lower-cased")
LABEL_MAPPED = _load("label_mapped", "repaired", "tag written another way, e.g. the paper's class numbers `0`, `1`, `2`",
    "read as the class `--set label_map=...` maps it to (preset `paper`: 0 positive, 1 negative, 2 neutral; "
    "docs/running.md); without a map such tags stop the study before notebook 01, named with their counts")
UNKNOWN_LABEL = _load("unknown_label", "excluded", "unknown tag in train.txt (`happy`)",
    "`msa-study` stops before notebook 01, naming each unknown tag with its count (map them with `label_map`); "
    "where the post table is built without the runner, the post is excluded")
UNEXPECTED_TEST_TAG = _load("unexpected_test_tag", "noted", "a tag other than `null` in test_without_label.txt",
    "kept, not used (the test tags are what the study predicts)")
DUPLICATE_GUID_SAME_LABEL = _load("duplicate_guid_same_label", "repaired",
    "guid listed twice in a label file with the same tag", "kept once (the first line)")
DUPLICATE_GUID_CONFLICTING_LABELS = _load("duplicate_guid_conflicting_labels", "excluded",
    "guid listed twice in a label file with conflicting tags", "every copy excluded",
    policy="we cannot tell which tag is right and will not guess")
GUID_IN_TRAIN_AND_TEST = _load("guid_in_train_and_test", "excluded",
    "guid in both train.txt and test_without_label.txt", "the test row is excluded, the labelled train row kept",
    policy="a post cannot be trained on and predicted; its label is the information we have")
NO_POSTS_TO_PREDICT = _load("no_posts_to_predict", "noted", "no `test_without_label.txt` (or a table without "
    "unlabelled rows): only labelled posts", "the study runs; the prediction files hold only their header; reported "
    "once, without a guid")
UNLABELLED_UNUSED = _load("unlabelled_unused", "noted", "files in `data/` that no label file lists", "not used")
NOT_IN_SAMPLE = _sample("not_in_sample", "noted",
    "post left out of a sampled run (`train_sample`, `test_sample`, e.g. the `smoke` profile)",
    "not used in this run; a test post keeps the tag `null`")
# ---- images: IMAGE_* are "image_" + an ImageLoadError cause (image_error) ----
IMAGE_MISSING_FILE = _images("image_missing_file", "excluded", "image file gone by the time it is checked",
    f"excluded ({_NO_IMAGE})")
IMAGE_NOT_A_FILE = _images("image_not_a_file", "excluded",
    "image path that is a folder, a FIFO, a device or a broken link", f"excluded, never opened ({_NO_IMAGE})")
IMAGE_EMPTY_FILE = _images("image_empty_file", "excluded", "zero-byte image", f"excluded ({_NO_IMAGE})")
IMAGE_TOO_LARGE = _images("image_too_large", "excluded",
    "decompression bomb (say 30000 x 30000 px), or an image file over 100 MiB",
    "refused from its header before any pixel is decoded: over 40 megapixels "
    f"(`msa_utils.data.images.MAX_PIXELS`); Pillow's own bomb guard stays on ({_NO_IMAGE})")
IMAGE_BAD_SIZE = _images("image_bad_size", "excluded", "image whose header gives a zero width or height",
    f"excluded ({_NO_IMAGE})")
IMAGE_UNREADABLE = _images("image_unreadable", "excluded", "not an image (Pillow cannot identify or open it)",
    f"excluded ({_NO_IMAGE})")
IMAGE_TRUNCATED = _images("image_truncated", "excluded", "truncated or corrupt image (decoding fails)",
    f"excluded ({_NO_IMAGE})")
EXIF_ORIENTATION_APPLIED = _images("exif_orientation_applied", "repaired",
    "camera picture stored sideways or mirrored, with an EXIF Orientation (2-8) saying how to show it",
    "turned upright when loaded (Pillow's `ImageOps.exif_transpose`), before its size or pixels are used; "
    "`width` / `height` in `posts.csv` are the upright ones; the detail gives the Orientation value")
EXIF_UNREADABLE = _images("exif_unreadable", "noted",
    "an EXIF block Pillow cannot parse, or an Orientation outside 1-8",
    "the image is kept, never excluded for its EXIF: what Pillow could read of the block is used "
    "(no readable Orientation: not turned)")
MODE_TO_RGB = _images("mode_{mode}_to_RGB", "repaired",
    "image not in RGB: alpha, a palette (with a transparent colour or not), grayscale, CMYK, 16-bit, 32-bit or "
    "float, ...",
    "converted to RGB when loaded; alpha and transparent palette colours are composited on white, "
    "so transparent pixels do not turn black; 16-bit, 32-bit and float images are scaled to 8 bit, "
    "not clipped (16-bit and integers in 0..65535: value x 255 / 65535; floats in [0, 1]: x 255; "
    "others: their min..max to 0..255) (`{mode}`: the Pillow mode, e.g. `RGBA`, `P`, `L`, `CMYK`, `I;16`)")
ANIMATED_FIRST_FRAME = _images("animated_first_frame", "noted", "animated image (GIF, PNG, WebP) or a multi-page one",
    "the first frame is used, transparency composited on white; the detail gives the frame count",
    policy="one picture per post, as it shows before it moves")
FORMAT_MISMATCH = _images("format_mismatch", "noted",
    "an image file holding another format than its suffix says (a `.jpg` holding PNG or GIF, a `.png` holding JPEG)",
    "read by its content; the detail names the format. An MPO (a phone's multi-picture JPEG) is JPEG: its "
    "first picture is used, not noted")
IMAGE_FORMAT = _images("image_format_{format}", "noted",
    "image in another format than JPEG (PNG, WebP, GIF, BMP, TIFF), its suffix saying so",
    "read like any other image (its first frame, in RGB as the `mode_{mode}_to_RGB` rows say); noted once "
    "(`{format}`: the format Pillow found, e.g. `PNG`, `WEBP`, `GIF`, `BMP`, `TIFF`)",
    policy="the release's images are all JPEG: the note lets a reader find the posts that differ")
IMAGE_TINY = _images("image_tiny", "noted", "tiny image (a side under 16 px, e.g. a 1 x 1 tracking pixel)",
    "kept, resized like any other", policy="it still is the post's image; the note lets a reader find it")
DUPLICATE_CONTENT = _content("duplicate_content", "noted",
    "labelled post with the same cleaned text, image bytes or near-identical image as another labelled post, same tag",
    "kept; every copy goes to the same fold of every cross-validation (`msa_utils.data.splits`)",
    policy="a copy in training would score its twin in validation or test by memory")
DUPLICATE_CONTENT_CONFLICTING_LABELS = _content("duplicate_content_conflicting_labels", "noted",
    "labelled post with the same cleaned text, image bytes or near-identical image as another labelled post, "
    "another tag",
    "kept with its own tag; every copy goes to the same fold of every cross-validation",
    policy="we cannot tell which tag is right; grouping keeps either copy from being scored against a "
    "model trained on the other")
# ---- clean (the case is also the detail of the report entry: msa_utils.data.text.clean_posts) ----
HTML_ENTITIES_UNESCAPED = _clean("html_entities_unescaped", "repaired",
    "HTML entities, also escaped twice (`&amp;amp;lt;3`)", "unescaped until none is left (`<3`)")
REPAIRED_BY_FTFY = _clean("repaired_by_ftfy", "repaired", "mojibake (`cafÃ©`) or C1 control characters",
    "repaired by ftfy (`café`); curly quotes are kept")
COMPATIBILITY_FORMS_NORMALISED = _clean("compatibility_forms_normalised", "repaired",
    "compatibility forms: full-width `＠user ＃tag`, ligatures, `…`, ideographic space",
    "Unicode NFKC (`@user #tag`, `fi`, `...`, a plain space), before mentions and hashtags are read")
EMOJI_TO_WORDS = _clean("emoji_to_words", "repaired", "emoji (the text encoders' vocabulary reads them as `[UNK]`)",
    "replaced by their English names (`😂` → `face with tears of joy`, the `emoji` package's table)")
FORMAT_CHARACTERS_REMOVED = _clean("format_characters_removed", "repaired",
    "invisible format characters (Unicode Cf: zero-width space and joiners, word joiner, BOM, direction marks)",
    "removed before mentions, hashtags and URLs are read (`#` U+200B `sunny` → `sunny`)")
GARBLED_CHARACTERS_REMOVED = _clean("garbled_characters_removed", "repaired",
    "lost characters (`?` before a letter or digit, tokens of only `?`, U+FFFD, control characters)", "removed",
    policy="a `?` that ends a word is kept as a question mark, although some are lost characters too: we cannot "
    "tell them apart")
EMPTY_AFTER_CLEANING = _clean("empty_after_cleaning", "noted",
    "text that cleans to nothing (only `RT`, mentions, URLs, invisible characters)",
    "kept with an empty text; the image still speaks")
TRANSLATED = _translate("translated", "noted", "non-English text, translated",
    "English translation used; cached in `<results>/translation_cache.json`, never asked twice")
UNTRANSLATED_DISABLED = _translate("untranslated_disabled", "noted",
    "non-English text, translation off (`--set translate=false`, the `smoke` profile)", "kept in its language, cleaned")
UNTRANSLATED_NETWORK_UNAVAILABLE = _translate("untranslated_network_unavailable", "noted",
    "non-English text, no network",
    "kept in its language, cleaned; the first network error stops all calls, so the run goes on within seconds")
UNTRANSLATED_TIMEOUT = _translate("untranslated_timeout", "noted", "non-English text, translation too slow",
    "each call is bounded (`translate_timeout_s`, 10 s); a timeout stops all calls; kept in its language")
UNTRANSLATED_RATE_LIMITED = _translate("untranslated_rate_limited", "noted",
    "non-English text, translation rate-limited",
    "HTTP 429 retried with exponential backoff a bounded number of times, then all calls stop; kept in its language")
UNTRANSLATED_ERROR = _translate("untranslated_error", "noted", "non-English text, the translator fails",
    "that post is kept in its language; `max_consecutive_errors` (3) failures in a row stop all calls")
UNTRANSLATED_EMPTY_RESULT = _translate("untranslated_empty_result", "noted",
    "non-English text, the translator returns nothing", "kept in its language, counted as a failure like an error")


def lookup(code: str) -> Reason:
    """The reason of a concrete code: a fixed code or a family member (``mode_RGBA_to_RGB``; a
    pattern itself is not a code). Raises ValueError if no registered reason has it."""
    for reason in REASONS.values():
        if reason.matches(code):
            return reason
    raise ValueError(f"unknown data-report reason {code!r}: register it in msa_utils/data/reasons.py")


def mode_to_rgb(mode: str) -> str:
    """``"mode_<mode>_to_RGB"``: an image in Pillow mode ``mode`` converted to RGB. Raises ValueError if empty."""
    return REASONS[MODE_TO_RGB].format(mode)


def image_format(format_name: str) -> str:
    """``"image_format_<format_name>"``: a usable image in Pillow format ``format_name`` (``PNG``). Raises ValueError if empty."""
    return REASONS[IMAGE_FORMAT].format(format_name)


def label_file_repair(repair: str) -> str:
    """``"label_file_<repair>"``. Raises ValueError unless ``repair`` is one of :data:`LABEL_FILE_REPAIRS`."""
    return REASONS[LABEL_FILE_REPAIR].format(repair)


def nul_bytes_removed(repair: str | None) -> str:
    """NULs removed and the rest needed ``repair`` (``None``: nothing). Raises ValueError unless
    ``repair`` is ``None`` or one of :data:`AFTER_NUL_REPAIRS`."""
    return NUL_BYTES_REMOVED if repair is None else REASONS[NUL_BYTES_REMOVED_PLUS].format(repair)


def image_error(cause: str) -> str:
    """``"image_<cause>"`` for an :class:`msa_utils.data.images.ImageLoadError` cause; ValueError
    if that is not a registered image-load failure."""
    reason = lookup(f"image_{cause}")
    if reason.stage != "images" or reason.action != "excluded":
        raise ValueError(f"{cause!r} is not a registered image-load failure")
    return reason.code


def reasons_table() -> str:
    """The registry as Markdown, one table per stage in pipeline order (columns: input / case,
    what the study does, ``reason``, action, policy), ending with a newline."""
    def cell(text: str) -> str:  # one line, pipes escaped
        return " ".join(text.split()).replace("|", "\\|")

    parts = []
    for stage, title in STAGES.items():
        parts += [f"### {title} (stage `{stage}`)\n",
                  "| input / case | what the study does | `reason` | action | policy |", "|---|---|---|---|---|"]
        for r in (reason for reason in REASONS.values() if reason.stage == stage):
            policy = f"**policy:** {cell(r.policy)}" if r.policy else ""
            parts.append(f"| {cell(r.case)} | {cell(r.handling)} | `{r.code}` | {r.action} | {policy} |")
        parts.append("")
    return "\n".join(parts)
