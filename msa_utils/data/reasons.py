"""The registry of data-report reasons: every code the study writes in ``data_report.csv``.

Each :class:`Reason` says which stage writes it, which action it stands for (``repaired``,
``excluded`` or ``noted``), the input it is about and what the study does with it.
:meth:`msa_utils.data.data_report.DataReport.add` takes a code, looks it up here with :func:`lookup`
and refuses codes the registry lacks, so the report, the code and the documentation
(:func:`reasons_table`, rendered into ``docs/data-handling.md`` by ``python -m msa_utils.report.docs``)
cannot drift apart.

Most reasons are one fixed code (module constants such as :data:`EMPTY_TEXT_FILE`). Three are
*families*, registered once as a pattern with one ``{placeholder}``:

* ``mode_{mode}_to_RGB``: an image mode converted to RGB, for any Pillow mode;
* ``label_file_{repair}``: a label file whose bytes needed one of the text decoding repairs;
* ``nul_bytes_removed+{repair}``: stray NULs removed, and the rest needed another repair.

:func:`lookup` matches a concrete code such as ``mode_RGBA_to_RGB`` against them; the helper
functions (:func:`mode_to_rgb`, :func:`label_file_repair`, :func:`nul_bytes_removed`,
:func:`image_error`) build the concrete codes.
"""

from __future__ import annotations

from dataclasses import dataclass

STAGES: tuple[str, ...] = ("load", "sample", "images", "content", "clean", "translate")
"""The stages that write the report, in pipeline order."""
ACTIONS: tuple[str, ...] = ("repaired", "excluded", "noted")
"""What a stage did about an item: repaired it, left it out, or noticed it and kept it as is."""


@dataclass(frozen=True)
class Reason:
    """One reason code of the data report.

    Attributes:
        code: the exact string written in the report's ``reason`` column, or a pattern with
            one ``{placeholder}`` for a family of codes (e.g. ``"mode_{mode}_to_RGB"``).
        stage: the stage that writes it, one of :data:`STAGES`.
        action: one of :data:`ACTIONS`.
        case: the input it is about, for a person (e.g. ``"text in GBK / GB18030"``).
        handling: what the study does with that input.
        policy: where the handling is our choice rather than the only sensible one: the choice
            and why; ``None`` otherwise.
        members: for a pattern, the values the placeholder may take (``None``: any non-empty
            value); unused for a fixed code.
    """

    code: str
    stage: str
    action: str
    case: str
    handling: str
    policy: str | None = None
    members: tuple[str, ...] | None = None

    @property
    def is_pattern(self) -> bool:
        """True if :attr:`code` is a pattern with a ``{placeholder}`` rather than one code."""
        return "{" in self.code

    def _prefix_suffix(self) -> tuple[str, str]:
        """The parts of a pattern before and after its placeholder."""
        prefix, rest = self.code.split("{", 1)
        return prefix, rest.split("}", 1)[1]

    def matches(self, code: str) -> bool:
        """True if the concrete ``code`` is this reason's code, or a member of its pattern."""
        if not self.is_pattern:
            return code == self.code
        prefix, suffix = self._prefix_suffix()
        if not (code.startswith(prefix) and code.endswith(suffix)) or len(code) <= len(prefix) + len(suffix):
            return False
        value = code[len(prefix):len(code) - len(suffix)]
        return "{" not in value and (self.members is None or value in self.members)

    def format(self, value: str) -> str:
        """The concrete code of a pattern for the placeholder ``value``.

        Raises:
            ValueError: if this reason is not a pattern, or ``value`` is not one of its members.
        """
        if not self.is_pattern:
            raise ValueError(f"reason {self.code!r} is a fixed code, not a pattern")
        prefix, suffix = self._prefix_suffix()
        code = f"{prefix}{value}{suffix}"
        if not self.matches(code):
            raise ValueError(f"{value!r} is not a member of the reason pattern {self.code!r}")
        return code


# --------------------------------------------------------------------------------------------
# The codes
# --------------------------------------------------------------------------------------------

# load: decoding a post's text (also the repairs a label file can need, see LABEL_FILE_REPAIR)
UTF8_BOM_REMOVED = "utf8_bom_removed"
DECODED_UTF16 = "decoded_utf16"
DECODED_UTF16_NO_BOM = "decoded_utf16_no_bom"
DECODED_GB18030 = "decoded_gb18030"
DECODED_GB18030_NOT_UTF8 = "decoded_gb18030_not_utf8"
DECODED_WINDOWS_1252 = "decoded_windows_1252"
DECODED_WINDOWS_1251 = "decoded_windows_1251"
DECODED_GB18030_WITH_REPLACEMENT = "decoded_gb18030_with_replacement"
"""Not a report code of its own: the decoding of bytes valid in no encoding tried. A post's text
decoded so is reported as :data:`UNDECODABLE_TEXT`; a label file as ``label_file_`` + this."""
NUL_BYTES_REMOVED = "nul_bytes_removed"
NUL_BYTES_REMOVED_PLUS = "nul_bytes_removed+{repair}"
UNDECODABLE_TEXT = "undecodable_text"
UNREADABLE_TEXT_FILE = "unreadable_text_file"
TEXT_TOO_LARGE = "text_too_large"
MISSING_TEXT_FILE = "missing_text_file"
EMPTY_TEXT_FILE = "empty_text_file"
MISSING_IMAGE_FILE = "missing_image_file"
# load: label files
LABEL_FILE_REPAIR = "label_file_{repair}"
BAD_LABEL_LINE = "bad_label_line"
BAD_GUID = "bad_guid"
LABEL_NORMALISED = "label_normalised"
UNKNOWN_LABEL = "unknown_label"
UNEXPECTED_TEST_TAG = "unexpected_test_tag"
DUPLICATE_GUID_SAME_LABEL = "duplicate_guid_same_label"
DUPLICATE_GUID_CONFLICTING_LABELS = "duplicate_guid_conflicting_labels"
GUID_IN_TRAIN_AND_TEST = "guid_in_train_and_test"
UNLABELLED_UNUSED = "unlabelled_unused"
# sample
NOT_IN_SAMPLE = "not_in_sample"
# images (IMAGE_* of ImageLoadError's causes: image_error(cause) gives the code)
IMAGE_MISSING_FILE = "image_missing_file"
IMAGE_NOT_A_FILE = "image_not_a_file"
IMAGE_EMPTY_FILE = "image_empty_file"
IMAGE_TOO_LARGE = "image_too_large"
IMAGE_BAD_SIZE = "image_bad_size"
IMAGE_UNREADABLE = "image_unreadable"
IMAGE_TRUNCATED = "image_truncated"
MODE_TO_RGB = "mode_{mode}_to_RGB"
FORMAT_MISMATCH = "format_mismatch"
IMAGE_TINY = "image_tiny"
EXIF_ORIENTATION_APPLIED = "exif_orientation_applied"
EXIF_UNREADABLE = "exif_unreadable"
ANIMATED_FIRST_FRAME = "animated_first_frame"
# content
DUPLICATE_CONTENT = "duplicate_content"
DUPLICATE_CONTENT_CONFLICTING_LABELS = "duplicate_content_conflicting_labels"
# clean
HTML_ENTITIES_UNESCAPED = "html_entities_unescaped"
REPAIRED_BY_FTFY = "repaired_by_ftfy"
COMPATIBILITY_FORMS_NORMALISED = "compatibility_forms_normalised"
EMOJI_TO_WORDS = "emoji_to_words"
FORMAT_CHARACTERS_REMOVED = "format_characters_removed"
GARBLED_CHARACTERS_REMOVED = "garbled_characters_removed"
EMPTY_AFTER_CLEANING = "empty_after_cleaning"
# translate
TRANSLATED = "translated"
UNTRANSLATED_DISABLED = "untranslated_disabled"
UNTRANSLATED_NETWORK_UNAVAILABLE = "untranslated_network_unavailable"
UNTRANSLATED_TIMEOUT = "untranslated_timeout"
UNTRANSLATED_RATE_LIMITED = "untranslated_rate_limited"
UNTRANSLATED_ERROR = "untranslated_error"
UNTRANSLATED_EMPTY_RESULT = "untranslated_empty_result"

AFTER_NUL_REPAIRS: tuple[str, ...] = (UTF8_BOM_REMOVED, DECODED_UTF16, DECODED_GB18030, DECODED_GB18030_NOT_UTF8,
                                      DECODED_WINDOWS_1252, DECODED_WINDOWS_1251)
"""The repairs the rest of a text can need once its stray NULs are removed (the rest has no NULs,
so no UTF-16 without a mark; bytes valid nowhere are reported as undecodable, not joined)."""
TEXT_REPAIRS: tuple[str, ...] = (
    UTF8_BOM_REMOVED, DECODED_UTF16, DECODED_UTF16_NO_BOM, DECODED_GB18030, DECODED_GB18030_NOT_UTF8,
    DECODED_WINDOWS_1252, DECODED_WINDOWS_1251, NUL_BYTES_REMOVED, *(f"{NUL_BYTES_REMOVED}+{repair}" for repair in AFTER_NUL_REPAIRS),
)
"""Every repair code :func:`msa_utils.data.decoding.decode_text_bytes` returns for a usable text."""
LABEL_FILE_REPAIRS: tuple[str, ...] = (*TEXT_REPAIRS, DECODED_GB18030_WITH_REPLACEMENT)
"""The values of ``label_file_{repair}``: a label file is decoded like a text, and also read
when some bytes are valid nowhere (the lines they spoil are then excluded on their own)."""

_NOT_TRAINED = "the row is kept with has_text=False and the trainer skips it"
_NO_IMAGE = "the row is kept with image_ok=False and the trainer skips it"

_REGISTRY: tuple[Reason, ...] = (
    # ---- load: a post's text ----
    Reason(UTF8_BOM_REMOVED, "load", "repaired", "text in UTF-8 with a byte-order mark",
           "mark removed, decoded as UTF-8"),
    Reason(DECODED_UTF16, "load", "repaired", "text in UTF-16 with a byte-order mark", "decoded as UTF-16"),
    Reason(DECODED_UTF16_NO_BOM, "load", "repaired", "text in UTF-16 without a byte-order mark",
           "recognised by its zero bytes (at least a third of the bytes, all at odd or all at even offsets), "
           "decoded as UTF-16"),
    Reason(DECODED_GB18030, "load", "repaired", "text in GBK / GB18030",
           "decoded as GB18030 (the most plausible reading, or a tie)",
           policy="bytes valid in several legacy encodings go to the reading with the fewest signs of "
                  "mis-decoding (msa_utils.data.decoding.implausibility); ties to GB18030, the release's encoding"),
    Reason(DECODED_WINDOWS_1252, "load", "repaired",
           "text in Windows-1252 / Latin-1 (`Don\\x92t`, also valid GB18030 as `Don抰`)",
           "decoded as Windows-1252 when its reading is more plausible than GB18030's"),
    Reason(DECODED_WINDOWS_1251, "load", "repaired", "text in Windows-1251 (Cyrillic)",
           "decoded as Windows-1251 when its reading is more plausible than GB18030's and Windows-1252's"),
    Reason(DECODED_GB18030_NOT_UTF8, "load", "repaired", "GBK bytes that happen to be valid UTF-8",
           "caught (the UTF-8 reading looks mis-decoded, the GB18030 reading is all CJK) and decoded as GB18030"),
    Reason(NUL_BYTES_REMOVED, "load", "repaired", "stray NUL bytes in a text (not UTF-16)",
           "NULs removed, the rest decoded as usual"),
    Reason(NUL_BYTES_REMOVED_PLUS, "load", "repaired",
           "stray NUL bytes in a text whose rest also needs a repair",
           "NULs removed, the rest decoded and repaired; the code joins both repairs with '+' "
           "(`{repair}`: " + ", ".join(f"`{r}`" for r in AFTER_NUL_REPAIRS) + ")",
           members=AFTER_NUL_REPAIRS),
    Reason(UNDECODABLE_TEXT, "load", "excluded", "text bytes that decode to text in none of UTF-8, UTF-16, GB18030, Windows-1252, Windows-1251",
           f"excluded rather than trained on as garbage ({_NOT_TRAINED}; the text is kept for display, "
           "with U+FFFD for the bad bytes)"),
    Reason(UNREADABLE_TEXT_FILE, "load", "excluded",
           "a text path that is not a regular file (a folder, a FIFO, a link to /dev/zero) or cannot be read",
           f"excluded, never read, so it cannot hang the run or fill the memory ({_NOT_TRAINED})"),
    Reason(TEXT_TOO_LARGE, "load", "excluded",
           "text file over 64 KiB (`msa_utils.data.mvsa.MAX_TEXT_BYTES`)",
           f"excluded, never read ({_NOT_TRAINED})",
           policy="a tweet is at most ~1 KiB: a file that large is not a post"),
    Reason(MISSING_TEXT_FILE, "load", "excluded", "post with no text file (or no files at all)",
           f"excluded ({_NOT_TRAINED})"),
    Reason(EMPTY_TEXT_FILE, "load", "excluded", "empty (zero-byte or blank) text file",
           f"excluded ({_NOT_TRAINED})",
           policy="an empty file is a failed download, not a post"),
    Reason(MISSING_IMAGE_FILE, "load", "excluded", "post with no image file",
           "excluded (the row is kept with has_image=False and the trainer skips it)"),
    # ---- load: label files ----
    Reason(LABEL_FILE_REPAIR, "load", "repaired",
           "label file with a byte-order mark, in UTF-16 or GB18030, with stray NULs or bytes valid nowhere",
           "decoded like a post's text; reported once for the file, without a guid "
           "(`{repair}`: one of the text repairs above, or `decoded_gb18030_with_replacement`)",
           members=LABEL_FILE_REPAIRS),
    Reason(BAD_LABEL_LINE, "load", "excluded",
           "label line with too many or too few fields, a stray quote, a field over 128 KiB",
           "that line is excluded, named by its file and line number; the rest of the file is read"),
    Reason(BAD_GUID, "load", "excluded",
           "guid not written like the file names (`abc`, `0042`, `-5`, `+12`, `12.0`, non-ASCII digits, "
           "over 2^63 - 1)",
           "that line is excluded, named by its file and line number",
           policy="`0042` is not silently read as `42`: the file names are `data/<guid>.txt|jpg`"),
    Reason(LABEL_NORMALISED, "load", "repaired", "tag with odd case or spaces (` Negative `)",
           "stripped and lower-cased"),
    Reason(UNKNOWN_LABEL, "load", "excluded", "unknown tag in train.txt (`happy`)", "excluded"),
    Reason(UNEXPECTED_TEST_TAG, "load", "noted", "a tag other than `null` in test_without_label.txt",
           "kept, not used (the test tags are what the study predicts)"),
    Reason(DUPLICATE_GUID_SAME_LABEL, "load", "repaired", "guid listed twice in a label file with the same tag",
           "kept once (the first line)"),
    Reason(DUPLICATE_GUID_CONFLICTING_LABELS, "load", "excluded",
           "guid listed twice in a label file with conflicting tags", "every copy excluded",
           policy="we cannot tell which tag is right and will not guess"),
    Reason(GUID_IN_TRAIN_AND_TEST, "load", "excluded", "guid in both train.txt and test_without_label.txt",
           "the test row is excluded, the labelled train row kept",
           policy="a post cannot be trained on and predicted; its label is the information we have"),
    Reason(UNLABELLED_UNUSED, "load", "noted", "files in `data/` that no label file lists", "not used"),
    # ---- sample ----
    Reason(NOT_IN_SAMPLE, "sample", "noted", "post left out of a sampled run (`train_sample`, `test_sample`, "
           "e.g. the `smoke` profile)", "not used in this run; a test post keeps the tag `null`"),
    # ---- images ----
    Reason(IMAGE_MISSING_FILE, "images", "excluded", "image file gone by the time it is checked",
           f"excluded ({_NO_IMAGE})"),
    Reason(IMAGE_NOT_A_FILE, "images", "excluded", "image path that is a folder, a FIFO, a device or a broken link",
           f"excluded, never opened ({_NO_IMAGE})"),
    Reason(IMAGE_EMPTY_FILE, "images", "excluded", "zero-byte image", f"excluded ({_NO_IMAGE})"),
    Reason(IMAGE_TOO_LARGE, "images", "excluded",
           "decompression bomb (say 30000 x 30000 px), or an image file over 100 MiB",
           "refused from its header before any pixel is decoded: over 40 megapixels "
           f"(`msa_utils.data.images.MAX_PIXELS`); Pillow's own bomb guard stays on ({_NO_IMAGE})"),
    Reason(IMAGE_BAD_SIZE, "images", "excluded", "image whose header gives a zero width or height",
           f"excluded ({_NO_IMAGE})"),
    Reason(IMAGE_UNREADABLE, "images", "excluded", "not an image (Pillow cannot identify or open it)",
           f"excluded ({_NO_IMAGE})"),
    Reason(IMAGE_TRUNCATED, "images", "excluded", "truncated or corrupt image (decoding fails)",
           f"excluded ({_NO_IMAGE})"),
    Reason(EXIF_ORIENTATION_APPLIED, "images", "repaired",
           "camera picture stored sideways or mirrored, with an EXIF Orientation (2-8) saying how to show it",
           "turned upright when loaded (Pillow's `ImageOps.exif_transpose`), before its size or pixels are used; "
           "`width` / `height` in `posts.csv` are the upright ones; the detail gives the Orientation value"),
    Reason(EXIF_UNREADABLE, "images", "noted",
           "an EXIF block Pillow cannot parse, or an Orientation outside 1-8",
           "the image is kept, never excluded for its EXIF: what Pillow could read of the block is used "
           "(no readable Orientation: not turned)"),
    Reason(MODE_TO_RGB, "images", "repaired",
           "image not in RGB: alpha, a palette (with a transparent colour or not), grayscale, CMYK, "
           "16-bit, 32-bit or float, ...",
           "converted to RGB when loaded; alpha and transparent palette colours are composited on white, "
           "so transparent pixels do not turn black; 16-bit, 32-bit and float images are scaled to 8 bit, "
           "not clipped (16-bit and integers in 0..65535: value x 255 / 65535; floats in [0, 1]: x 255; "
           "others: their min..max to 0..255) (`{mode}`: the Pillow mode, e.g. `RGBA`, `P`, `L`, `CMYK`, `I;16`)"),
    Reason(ANIMATED_FIRST_FRAME, "images", "noted", "animated image (GIF, PNG, WebP) or a multi-page one",
           "the first frame is used, transparency composited on white; the detail gives the frame count",
           policy="one picture per post, as it shows before it moves"),
    Reason(FORMAT_MISMATCH, "images", "noted", "a `.jpg` file holding another format (PNG, GIF, ...)",
           "read by its content; an MPO (a phone's multi-picture JPEG) is JPEG: its first picture is used, "
           "not noted"),
    Reason(IMAGE_TINY, "images", "noted", "tiny image (a side under 16 px, e.g. a 1 x 1 tracking pixel)",
           "kept, resized like any other",
           policy="it still is the post's image; the note lets a reader find it"),
    # ---- content ----
    Reason(DUPLICATE_CONTENT, "content", "noted",
           "labelled post with the same decoded text or image bytes as another labelled post, same tag",
           "kept; every copy goes to the same part of every split (`msa_utils.data.splits`)",
           policy="a copy in training would score its twin in validation or test by memory"),
    Reason(DUPLICATE_CONTENT_CONFLICTING_LABELS, "content", "noted",
           "labelled post with the same decoded text or image bytes as another labelled post, another tag",
           "kept with its own tag; every copy goes to the same part of every split",
           policy="we cannot tell which tag is right; grouping keeps either copy from being scored against a "
                  "model trained on the other"),
    # ---- clean ----
    Reason(HTML_ENTITIES_UNESCAPED, "clean", "repaired", "HTML entities, also escaped twice (`&amp;amp;lt;3`)",
           "unescaped until none is left (`<3`)"),
    Reason(REPAIRED_BY_FTFY, "clean", "repaired", "mojibake (`cafÃ©`) or C1 control characters",
           "repaired by ftfy (`café`); curly quotes are kept"),
    Reason(COMPATIBILITY_FORMS_NORMALISED, "clean", "repaired",
           "compatibility forms: full-width `＠user ＃tag`, ligatures, `…`, ideographic space",
           "Unicode NFKC (`@user #tag`, `fi`, `...`, a plain space), before mentions and hashtags are read"),
    Reason(EMOJI_TO_WORDS, "clean", "repaired", "emoji (the text encoders' vocabulary reads them as `[UNK]`)",
           "replaced by their English names (`😂` → `face with tears of joy`, the `emoji` package's table)"),
    Reason(FORMAT_CHARACTERS_REMOVED, "clean", "repaired",
           "invisible format characters (Unicode Cf: zero-width space and joiners, word joiner, BOM, "
           "direction marks)",
           "removed before mentions, hashtags and URLs are read (`#` U+200B `sunny` → `sunny`)"),
    Reason(GARBLED_CHARACTERS_REMOVED, "clean", "repaired",
           "lost characters (`?` before a letter or digit, tokens of only `?`, U+FFFD, control characters)",
           "removed",
           policy="a `?` that ends a word is kept as a question mark, although some are lost characters "
                  "too: we cannot tell them apart"),
    Reason(EMPTY_AFTER_CLEANING, "clean", "noted", "text that cleans to nothing (only `RT`, mentions, URLs, invisible characters)",
           "kept with an empty text; the image still speaks"),
    # ---- translate ----
    Reason(TRANSLATED, "translate", "noted", "non-English text, translated",
           "English translation used; cached in `<results>/translation_cache.json`, never asked twice"),
    Reason(UNTRANSLATED_DISABLED, "translate", "noted",
           "non-English text, translation off (`--set translate=false`, the `smoke` profile)",
           "kept in its language, cleaned"),
    Reason(UNTRANSLATED_NETWORK_UNAVAILABLE, "translate", "noted", "non-English text, no network",
           "kept in its language, cleaned; the first network error stops all calls, so the run goes on "
           "within seconds"),
    Reason(UNTRANSLATED_TIMEOUT, "translate", "noted", "non-English text, translation too slow",
           "each call is bounded (`translate_timeout_s`, 10 s); a timeout stops all calls; kept in its language"),
    Reason(UNTRANSLATED_RATE_LIMITED, "translate", "noted", "non-English text, translation rate-limited",
           "HTTP 429 retried with exponential backoff a bounded number of times, then all calls stop; "
           "kept in its language"),
    Reason(UNTRANSLATED_ERROR, "translate", "noted", "non-English text, the translator fails",
           "that post is kept in its language; `max_consecutive_errors` (3) failures in a row stop all calls"),
    Reason(UNTRANSLATED_EMPTY_RESULT, "translate", "noted", "non-English text, the translator returns nothing",
           "kept in its language, counted as a failure like an error"),
)

REASONS: dict[str, Reason] = {reason.code: reason for reason in _REGISTRY}
"""Every registered reason by its code (pattern codes such as ``"mode_{mode}_to_RGB"`` included),
in pipeline order."""

_PATTERNS: tuple[Reason, ...] = tuple(reason for reason in _REGISTRY if reason.is_pattern)


def lookup(code: str) -> Reason:
    """The registered reason of a concrete report code.

    A fixed code is found as is; a member of a family (``mode_RGBA_to_RGB``,
    ``label_file_utf8_bom_removed``, ``nul_bytes_removed+decoded_gb18030``) is matched against
    its pattern. A pattern itself (``"mode_{mode}_to_RGB"``) is not a code and is not found.

    Raises:
        ValueError: if no registered reason has this code.
    """
    reason = REASONS.get(code)
    if reason is not None and not reason.is_pattern:
        return reason
    for pattern in _PATTERNS:
        if pattern.matches(code):
            return pattern
    raise ValueError(f"unknown data-report reason {code!r}: register it in msa_utils/data/reasons.py")


def is_registered(code: str) -> bool:
    """True if :func:`lookup` finds ``code``."""
    try:
        lookup(code)
    except ValueError:
        return False
    return True


def mode_to_rgb(mode: str) -> str:
    """The code of an image in Pillow mode ``mode`` converted to RGB, e.g. ``"mode_RGBA_to_RGB"``.

    Raises:
        ValueError: if ``mode`` is empty.
    """
    return REASONS[MODE_TO_RGB].format(mode)


def label_file_repair(repair: str) -> str:
    """The code of a label file decoded with the text repair ``repair``, e.g. ``"label_file_utf8_bom_removed"``.

    Raises:
        ValueError: if ``repair`` is not one of :data:`LABEL_FILE_REPAIRS`.
    """
    return REASONS[LABEL_FILE_REPAIR].format(repair)


def nul_bytes_removed(repair: str | None) -> str:
    """The code of a text whose NULs were removed and whose rest needed ``repair`` (or nothing: ``None``).

    Raises:
        ValueError: if ``repair`` is not one of :data:`AFTER_NUL_REPAIRS`.
    """
    return NUL_BYTES_REMOVED if repair is None else REASONS[NUL_BYTES_REMOVED_PLUS].format(repair)


def image_error(cause: str) -> str:
    """The code of an image refused with :class:`msa_utils.data.images.ImageLoadError` ``cause``: ``"image_" + cause``.

    Raises:
        ValueError: if that code is not registered (a new cause must be added here first).
    """
    code = f"image_{cause}"
    reason = lookup(code)
    if reason.stage != "images" or reason.action != "excluded":
        raise ValueError(f"{cause!r} is not a registered image-load failure")
    return code


# --------------------------------------------------------------------------------------------
# Documentation
# --------------------------------------------------------------------------------------------

_STAGE_TITLES = {
    "load": "Reading the files (stage `load`)",
    "sample": "Sampling (stage `sample`)",
    "images": "Checking the images (stage `images`)",
    "content": "Shared content (stage `content`)",
    "clean": "Cleaning the text (stage `clean`)",
    "translate": "Translating (stage `translate`)",
}


def _cell(text: str) -> str:
    """``text`` made safe for one Markdown table cell (pipes escaped, no line breaks)."""
    return " ".join(text.split()).replace("|", "\\|")


def reasons_table() -> str:
    """The registry as Markdown: one table per stage, in pipeline order.

    Columns: input / case, what the study does, the ``reason`` code, the action, and the policy
    where the handling is our choice. Deterministic (registry order), ending with a newline.

    Returns:
        The Markdown text.
    """
    parts = []
    for stage in STAGES:
        rows = [reason for reason in _REGISTRY if reason.stage == stage]
        if not rows:
            continue
        parts.append(f"### {_STAGE_TITLES[stage]}\n")
        parts.append("| input / case | what the study does | `reason` | action | policy |")
        parts.append("|---|---|---|---|---|")
        for reason in rows:
            policy = f"**policy:** {_cell(reason.policy)}" if reason.policy else ""
            parts.append(f"| {_cell(reason.case)} | {_cell(reason.handling)} | `{reason.code}` | "
                         f"{reason.action} | {policy} |")
        parts.append("")
    return "\n".join(parts)
