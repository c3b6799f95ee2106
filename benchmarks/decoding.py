"""How often the study's decoding (:mod:`msa_utils.data.decoding`) and charset-normalizer pick the right encoding.

Two sets of byte strings with a known answer:

1. **the release**: the 1,133 texts of ``data/mvsa_ecnu`` that are not ASCII; the answer is
   GB18030 (SOURCE.md; 2 of them are also valid UTF-8 by accident);
2. **re-encoded**: every non-ASCII text of the release, decoded, then written again in each of
   GB18030, Windows-1252 and Windows-1251 where that encoding can hold it (Latin texts with
   curly quotes or accents go to all three, Cyrillic ones to GB18030 and Windows-1251, CJK ones
   to GB18030 only); the answer is the text itself.

For each, the share decoded to the right text by :func:`msa_utils.data.decoding.decode_text_bytes`
and by ``charset_normalizer.from_bytes(raw, cp_isolation=[the three]).best()``.

Usage::

    python benchmarks/decoding.py [--data data/mvsa_ecnu]

from the repository root, after ``pip install -e '.[bench]'`` (charset-normalizer). Prints a
Markdown table; takes a few seconds.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

try:
    from charset_normalizer import from_bytes
except ImportError as error:  # not a dependency of msa_utils: the extra `bench`
    raise SystemExit("benchmarks/decoding.py needs charset-normalizer: pip install -e '.[bench]'") from error

from msa_utils.data.decoding import LEGACY_ENCODINGS, decode_text_bytes


def charset_normalizer_text(raw: bytes) -> str | None:
    """charset-normalizer's reading of ``raw``, restricted to :data:`LEGACY_ENCODINGS` (None: no answer)."""
    best = from_bytes(raw, cp_isolation=list(LEGACY_ENCODINGS)).best()
    return None if best is None else str(best)


def cases(data_dir: Path) -> list[tuple[str, bytes, str]]:
    """``(set, raw bytes, right text)`` for both sets (see the module docstring)."""
    out = []
    for path in sorted((data_dir / "data").glob("*.txt")):
        raw = path.read_bytes()
        if raw.isascii():
            continue
        text = raw.decode("gb18030")
        out.append(("release (GB18030)", raw, text))
        for encoding in LEGACY_ENCODINGS:
            try:
                out.append((f"re-encoded {encoding}", text.encode(encoding), text))
            except UnicodeEncodeError:
                pass
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/mvsa_ecnu"))
    args = parser.parse_args()
    total, ours, theirs = Counter(), Counter(), Counter()
    for name, raw, right in cases(args.data):
        total[name] += 1
        ours[name] += decode_text_bytes(raw)[0] == right
        theirs[name] += charset_normalizer_text(raw) == right
    print("| bytes | n | msa_utils.data.decoding right | charset-normalizer right |")
    print("|---|---:|---:|---:|")
    for name in total:
        n = total[name]
        print(f"| {name} | {n} | {ours[name]} ({ours[name] / n:.1%}) | {theirs[name]} ({theirs[name] / n:.1%}) |")


if __name__ == "__main__":
    main()
