"""``REPORT.md`` and the README's results block, from the files notebooks 04-06 wrote and the paper's numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from msa_utils import io
from msa_utils.experiments import claims
from msa_utils.experiments.dataset import BACKBONE_FILE
from msa_utils.experiments.predict import SELECTION_FILE
from msa_utils.experiments.variants import BASELINES, VARIANTS
from msa_utils.config.profiles import PROFILES, REPO_ROOT, Profile, StudyPaths
from msa_utils.io.tables import markdown_table, mean_std

PAPER = {"full": {"accuracy": 0.73, "weighted_f1": 0.73}, "no_image": {"accuracy": 0.63, "weighted_f1": 0.62},
         "no_text": {"accuracy": 0.70, "weighted_f1": 0.70}}
"""The paper's reported accuracy and weighted F1 (on its own validation split)."""


def main_table(paths: StudyPaths) -> pd.DataFrame:
    """Every variant that ran, then every baseline (n 1): test scores and val weighted F1 (mean ± std over
    seeds), with the paper's."""
    runs = claims.load_runs(paths).assign(title=lambda r: r["variant"].map(lambda n: VARIANTS[n].title))
    baselines = pd.read_csv(paths.metrics / "baselines.csv").rename(columns={"baseline": "variant"})
    baselines["title"] = baselines["variant"].map(BASELINES)
    grouped = pd.concat([runs, baselines], ignore_index=True).groupby("variant", sort=False)
    out = pd.DataFrame({"model": grouped["title"].first(), "n": grouped.size()})
    for column in ("test accuracy", "test weighted F1", "test macro F1", "val weighted F1"):
        key = column.replace(" ", "_").replace("F1", "f1")
        out[column] = [mean_std(*v) for v in zip(grouped[key].mean(), grouped[key].std(ddof=1))]
    for metric, column in (("accuracy", "paper accuracy"), ("weighted_f1", "paper weighted F1")):
        out[column] = [PAPER.get(name, {}).get(metric) for name in out.index]
    return out.reset_index(drop=True)


def write_report(cfg: Profile, data_summary: pd.DataFrame, counts: pd.DataFrame, test_counts: pd.Series,
                 claims_table: pd.DataFrame) -> Path:
    """Write ``<results_dir>/REPORT.md``; return its path."""
    paths = cfg.paths
    selection = io.read_json(paths.metrics / SELECTION_FILE)
    runs = claims.load_runs(paths, ["full"])
    default = PROFILES[cfg.name].flat()  # --set overrides (by leaf name), except the results and cache folders:
    command = " ".join([f"msa-study --profile {cfg.name}", *(
        f"--set {k.rpartition('.')[2]}={v if isinstance(v, str) else json.dumps(v)}" for k, v in cfg.flat().items()
        if v != default[k] and k not in ("results_dir", "cache_dir"))])
    data_dir = Path(cfg.data.data_dir)
    data_dir = data_dir.relative_to(REPO_ROOT) if data_dir.is_relative_to(REPO_ROOT) else data_dir
    total = counts.loc["total"]
    seeds = (f"Each variant was trained with {cfg.seeds} seeds "
             f"({', '.join(str(cfg.seed + k) for k in range(cfg.seeds))}); scores are mean ± standard deviation over "
             f"them. Comparisons are paired (same seeds, same test posts): the 95% interval of a difference comes from "
             f"{claims.N_RESAMPLES} bootstrap resamples of the test posts and of the seeds "
             f"(`msa_utils.experiments.compare.paired_bootstrap`)." if cfg.seeds > 1 else
             f"Each variant was trained with one seed ({cfg.seed}), so no interval covers the variation between "
             f"seeds: the 95% interval of a difference comes from {claims.N_RESAMPLES} bootstrap resamples of the "
             f"test posts only.")
    stopping = (f"Early stopping on validation weighted F1, patience {cfg.train.patience}" if cfg.train.early_stopping
                else f"No early stopping ({cfg.train.max_epochs} epochs, the last kept)")
    sections = [
        f"# Results: multimodal sentiment analysis, profile `{cfg.name}`",
        f"Produced by `{command}` (notebooks 01-07) on `{data_dir}`. "
        f"Backbone: {io.read_json(paths.metrics / BACKBONE_FILE)['description']}.",
        f"The {int(total[['train', 'val', 'test']].sum())} usable labelled posts of `train.txt` were split once "
        f"(seed {cfg.seed}) into a held-out **test** part of {int(total['test'])} posts "
        f"({cfg.data.test_fraction:.0%}), then {int(total['train'])} training and {int(total['val'])} validation posts "
        f"(8:2, as in the paper); every split is stratified by class and grouped by content (posts with the same "
        f"text or the same image bytes stay in one part). Validation chose every epoch, variant and "
        f"hyperparameter; the test part only scores. {seeds} The paper's numbers are on its own validation split.",
        "## The paper's claims (held-out test part)",
        claims.claims_markdown(claims_table),
        f"Verdicts on weighted F1: *supported* when the 95% interval of the difference excludes 0 in the "
        f"paper's direction, *contradicted* when it excludes 0 in the other, else *inconclusive*; \"does as well\" "
        f"claims are non-inferiority tests with a margin of {claims.NON_INFERIORITY_MARGIN}; 1a asks whether our "
        f"interval reaches the paper's figure; 1b whether every seed's best epoch is one of the paper's strongest "
        f"({', '.join(map(str, claims.PAPER_STRONGEST_EPOCHS))}).",
        "## Every model (test part: mean ± std over seeds; n seeds)",
        markdown_table(main_table(paths)),
        "## The paper's recipe, seed by seed",
        markdown_table(runs[["seed", "best_epoch", "epochs_run", "mean_epoch_seconds", "val_weighted_f1",
                             "test_accuracy", "test_weighted_f1", "test_macro_f1"]]),
        f"{stopping}; Adam lr {cfg.train.lr:g}, batch "
        f"{cfg.train.batch_size}, {'inverse-class-frequency re-sampling' if cfg.train.resample else 'no re-sampling'}.",
        "## Test predictions",
        f"`predictions/test_predictions.txt` (format `guid,tag` as in `test_without_label.txt`) comes from "
        f"**{selection['title']}** (`{selection['model']}`), the variant with the best mean validation weighted F1 "
        f"({selection['val_weighted_f1']:.3f}), averaging the class probabilities of its {selection['seeds']} seeds; "
        f"on the held-out test part that average scores weighted F1 {selection['test_weighted_f1']:.3f}. Tags: "
        + ", ".join(f"{tag} {n}" for tag, n in test_counts.items()) + ". The paper's recipe's own predictions "
        "(mean of its seeds) are in `predictions/test_predictions_paper_recipe.txt`.",
        "## Data",
        markdown_table(counts.reset_index().rename(columns={"index": "class"}), floatfmt=".0f"),
        "Every item that was repaired, excluded or noted (full list: `data_report.csv`):",
        markdown_table(data_summary),
        "## Figures",
        "![validation loss](figures/07_val_loss.png) ![validation accuracy](figures/07_val_accuracy.png) "
        "![validation weighted F1](figures/07_val_f1.png)",
        "![test scores](figures/07_scores.png) ![claims](figures/06_claims.png) "
        "![confusion matrix](figures/07_confusion_selected.png)",
    ]
    return io.write_text(paths.results / "REPORT.md", "\n\n".join(sections) + "\n")


def readme_results(results_dir: str | Path, profile: str = "cpu") -> str:
    """The README's results block; FileNotFoundError if the folder lacks the files of notebooks 04-06."""
    paths = StudyPaths(Path(results_dir))
    table = load_claims_table(paths)
    runs = claims.load_runs(paths, ["full"])
    selection = io.read_json(paths.metrics / SELECTION_FILE)
    spread = mean_std(runs["test_weighted_f1"].mean(), runs["test_weighted_f1"].std(ddof=1))
    return "\n".join([
        claims.claims_markdown(table, notes=False), "",
        f"Test weighted F1 on a held-out part of {int(table['n_posts'].max())} posts that no choice read, "
        f"`{profile}` profile, {len(runs)} seeds per model (the paper's recipe: {spread}); intervals: paired "
        f"bootstrap over test posts and seeds. The prediction file comes from {selection['title']} "
        f"(best validation score). Rendered from `results/` by `python scripts/render_docs.py`; every model, "
        "note and figure is in [`results/REPORT.md`](results/REPORT.md).",
    ])


def load_claims_table(paths: StudyPaths) -> pd.DataFrame:
    """``metrics/claims_table.csv`` (claims not tested: NaN intervals and post counts)."""
    return pd.read_csv(paths.metrics / "claims_table.csv", keep_default_na=False,
                       na_values={column: [""] for column in ("difference", "low", "high", "n_posts")})
