"""msa-study: run notebooks 01-08 in order with papermill, on one profile, redoing only what is stale.

E.g. msa-study --profile smoke | --from 04 | --only 05 06 | --force | --set max_epochs=5.
A notebook is skipped when it last ran to the end with the same inputs and every file it wrote is
unchanged. Inputs: its code cells, the resolved profile, the library versions, STUDY_VERSION and
what READS declares: the data folder (paths, sizes, mtimes, as make does) and the bytes of the
files the notebooks before it wrote there. The msa_utils source is not one: bump STUDY_VERSION
when a change there changes results. The records (stamps) are in <results>/notebooks/.stamps/;
one is marked running while its notebook runs, so after a crash, Ctrl-C or kill the same command
redoes only what is missing or stale. docs/running.md tells the rest."""

import argparse
import json
import sys
from typing import Any, Sequence

from msa_utils.config.profiles import PROFILES
from msa_utils.runner.study import StudyFailed, run_study


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["max_epochs=5", "device=cuda"]`` -> ``{"max_epochs": 5, "device": "cuda"}`` (JSON, else a string)."""
    out: dict[str, Any] = {}
    for key, sep, value in (item.partition("=") for item in items):
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {key + sep + value!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """The command ``msa-study``; returns the exit code (1: a notebook failed, 2: bad arguments)."""
    fields = "".join(f"\n  {k} = {json.dumps(v)}" for k, v in PROFILES["cpu"].flat().items() if k != "name")
    parser = argparse.ArgumentParser(
        prog="msa-study", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="profile fields for --set KEY=VALUE, by dotted name (train.lr) or leaf name (lr); defaults of the cpu "
               "profile, msa_utils/config/profiles.py documents them:" + fields)
    parser.add_argument("--profile", default="cpu", choices=sorted(PROFILES), help="smoke: seconds; paper: a GPU")
    number = lambda n: f"{int(n):02d}" if n.isdigit() else n  # noqa: E731 ("4" -> "04")
    parser.add_argument("--from", dest="start", type=number, metavar="NN",
                        help="run notebook NN (e.g. 04) and after, stale or not")
    parser.add_argument("--only", nargs="+", type=number, metavar="NN", help="run only these notebooks, stale or not")
    parser.add_argument("--force", action="store_true", help="rerun every notebook, stale or not")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a profile field; VALUE is JSON, else a string (repeatable)")
    args = parser.parse_args(argv)
    try:
        times = run_study(args.profile, parse_overrides(args.overrides), args.start, args.only, force=args.force)
    except StudyFailed as err:
        print(f"\n[msa-study] FAILED: {err}", file=sys.stderr)
        return 1
    except (KeyError, TypeError, ValueError, OSError) as err:
        print(f"[msa-study] error: {err}", file=sys.stderr)
        return 2
    print(f"[msa-study] done: {len(times)} notebook(s) ran in {sum(times.values()):.0f} s; the others were up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
