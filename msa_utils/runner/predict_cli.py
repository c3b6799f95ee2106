"""msa-predict: classify new posts with the model the study chose on validation, without retraining.

E.g. msa-predict my_posts/ | msa-predict posts.csv --results results/ --out predictions/.
POSTS is a folder in the MVSA layout (data/<guid>.txt and an image each, train.txt and/or
test_without_label.txt listing the guids) or one CSV, TSV or Parquet table of posts
(docs/running.md#your-own-posts). Every listed post is read, cleaned and translated as notebooks
01-02 do, encoded by the study's frozen encoders and classified by the mean of the chosen
variant's fold models (results/metrics/selection.json), as notebook 06 predicts
test_without_label.txt. The profile is the one msa-study recorded in the results folder
(metrics/run_times.json), else cpu. Writes predictions.csv (guid,tag,p_positive,p_negative,
p_neutral), data_report.csv and unclassified.csv."""

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from msa_utils.config.profiles import PROFILES, REPO_ROOT
from msa_utils.data.sources import LAYOUTS
from msa_utils.experiments.inference import ModelMissing, classify_posts, load_trained_model, study_profile
from msa_utils.runner.cli import parse_overrides


def main(argv: Sequence[str] | None = None) -> int:
    """The command ``msa-predict``; returns the exit code (2: bad arguments or input, 3: no trained model)."""
    parser = argparse.ArgumentParser(prog="msa-predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("posts", metavar="POSTS", help="an MVSA folder or a .csv/.tsv/.parquet table of posts")
    parser.add_argument("--results", default=str(REPO_ROOT / "results"),
                        help="the study's results folder (default: the repository's results/)")
    parser.add_argument("--out", help="output folder (default: <results>/new_posts/<POSTS name, dots as _>/)")
    parser.add_argument("--profile", choices=sorted(PROFILES),
                        help="the study's profile (default: the recorded one, with its recorded --set options)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a profile field, as msa-study --set (default: the recorded ones)")
    args = parser.parse_args(argv)
    t0, posts = time.perf_counter(), Path(args.posts).expanduser()
    try:
        if not posts.exists():
            raise FileNotFoundError(f"POSTS {posts} not found: give {LAYOUTS}")
        cfg = study_profile(args.results, args.profile, parse_overrides(args.overrides) or None)
        out = Path(args.out) if args.out else cfg.paths.results / "new_posts" / posts.resolve().name.replace(".", "_")
        model = load_trained_model(cfg)
        print(f"[msa-predict] model {model.name!r}: {len(model.classifiers)} fold models on {model.backbone.name} "
              f"(profile {cfg.name}), loaded in {time.perf_counter() - t0:.1f} s", flush=True)
        result = classify_posts(model, args.posts, out)
    except ModelMissing as err:
        print(f"[msa-predict] no trained model: {err}", file=sys.stderr)
        return 3
    except (KeyError, TypeError, ValueError, OSError) as err:
        print(f"[msa-predict] error: {err}", file=sys.stderr)
        return 2
    table = result.predictions
    done = table["tag"] != "null"
    counts = ", ".join(f"{tag} {n}" for tag, n in table.loc[done, "tag"].value_counts().items())
    unread = sum(e.guid is None and e.action == "excluded" for e in result.report.entries)
    print(f"[msa-predict] {int(done.sum())} of {len(table)} posts classified ({counts}) in "
          f"{time.perf_counter() - t0:.1f} s; {int((~done).sum())} not classified (unclassified.csv says why)"
          + (f"; {unread} lines or rows without a usable id left out (data_report.csv)" if unread else ""))
    print(f"[msa-predict] wrote {result.files['predictions']}, {result.files['data_report'].name} and "
          f"{result.files['unclassified'].name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
