"""``REPORT.md`` and the README's results block, built only from the files the notebooks wrote.

Notebooks 04-06 write every run's scores and predictions (:mod:`msa_utils.experiments.variants`), notebook 06
the claims (:mod:`msa_utils.experiments.claims`: ``metrics/claims.csv``, ``claims.md``) and the choice of
model (``metrics/selection.json``); this module reads them back, puts the paper's numbers beside
ours and writes the report.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from msa_utils import io
from msa_utils.config.labels import LABELS
from msa_utils.experiments import claims
from msa_utils.experiments.dataset import BACKBONE_FILE
from msa_utils.data.posts import usable
from msa_utils.experiments.predict import SELECTION_FILE
from msa_utils.config.profiles import PROFILES, REPO_ROOT, Profile, StudyPaths
from msa_utils.io.tables import markdown_table, mean_std

PAPER = {
    "full": {"accuracy": 0.73, "weighted_f1": 0.73},
    "no_image": {"accuracy": 0.63, "weighted_f1": 0.62},
    "no_text": {"accuracy": 0.70, "weighted_f1": 0.70},
}
"""The paper's reported accuracy and weighted F1 (on its own validation split)."""


def split_counts(posts: pd.DataFrame, split: dict[str, np.ndarray]) -> pd.DataFrame:
    """Posts per class in each labelled part, and the usable unlabelled posts.

    Args:
        posts: the post table (:func:`msa_utils.data.posts.load_posts`).
        split: ``{"train", "val", "test"}`` guid arrays (:func:`msa_utils.data.splits.load_split`).

    Returns:
        Rows ``positive, negative, neutral, total``; columns ``train``, ``val``, ``test`` (posts
        per class) and ``unlabelled`` (the usable posts of ``test_without_label.txt``, in the
        ``total`` row only: they have no label).

    Raises:
        KeyError: if a guid of the split is not in ``posts``.
    """
    labelled = posts.set_index("guid")
    columns = {}
    for part in ("train", "val", "test"):
        labels = labelled.loc[split[part], "label"].astype(int)
        columns[part] = labels.value_counts().reindex(range(len(LABELS)), fill_value=0).to_numpy()
    table = pd.DataFrame(columns, index=list(LABELS))
    table.loc["total"] = table.sum()
    unlabelled = posts[(posts["split"] == "test") & usable(posts)]
    table["unlabelled"] = [0] * len(LABELS) + [len(unlabelled)]
    return table


def main_table(paths: StudyPaths) -> pd.DataFrame:
    """Every model's test scores (mean ± std over seeds, n) and validation weighted F1, the paper's beside.

    Columns: ``model, n, test accuracy, test weighted F1, test macro F1, val weighted F1,
    paper accuracy, paper weighted F1`` (the paper's where it reports the model).
    """
    table = claims.results_table(paths)
    out = pd.DataFrame({"model": table["title"], "n": table["n"].astype(int)})
    for part, metric, column in (("test", "accuracy", "test accuracy"), ("test", "weighted_f1", "test weighted F1"),
                                 ("test", "macro_f1", "test macro F1"), ("val", "weighted_f1", "val weighted F1")):
        out[column] = [mean_std(m, s, n) for m, s, n in
                       zip(table[f"{part}_{metric}_mean"], table[f"{part}_{metric}_std"], table["n"])]
    out["paper accuracy"] = [PAPER.get(name, {}).get("accuracy") for name in table.index]
    out["paper weighted F1"] = [PAPER.get(name, {}).get("weighted_f1") for name in table.index]
    return out.reset_index(drop=True)


def changed_settings(cfg: Profile) -> dict:
    """The fields of ``cfg`` that differ from its named profile (``--set`` overrides), except the
    results and cache folders."""
    default = PROFILES[cfg.name].to_dict()
    return {k: v for k, v in cfg.to_dict().items() if v != default[k] and k not in ("results_dir", "cache_dir")}


def protocol_text(cfg: Profile, counts: pd.DataFrame) -> str:
    """One paragraph: the parts, how they were made, the seeds, what the intervals cover."""
    total = counts.loc["total"]
    seeds = (f"Each variant was trained with {cfg.seeds} seeds "
             f"({', '.join(str(cfg.seed + k) for k in range(cfg.seeds))}); scores are mean ± standard deviation over "
             f"them. Comparisons are paired (same seeds, same test posts): the 95% interval of a difference comes from "
             f"{claims.N_RESAMPLES} bootstrap resamples of the test posts and of the seeds "
             f"(`msa_utils.experiments.compare.paired_bootstrap`)." if cfg.seeds > 1 else
             f"Each variant was trained with one seed ({cfg.seed}), so no interval covers the variation between "
             f"seeds: the 95% interval of a difference comes from {claims.N_RESAMPLES} bootstrap resamples of the "
             f"test posts only.")
    return (
        f"The {int(total[['train', 'val', 'test']].sum())} usable labelled posts of `train.txt` were split once "
        f"(seed {cfg.seed}) into a held-out **test** part of {int(total['test'])} posts "
        f"({cfg.test_fraction:.0%}), then {int(total['train'])} training and {int(total['val'])} validation posts "
        f"(8:2, as in the paper); every split is stratified by class and grouped by content (posts with the same "
        f"text or the same image bytes stay in one part). Validation chose every epoch, variant and "
        f"hyperparameter; the test part only scores. {seeds} The paper's numbers are on its own validation split."
    )


def write_report(cfg: Profile, data_summary: pd.DataFrame, counts: pd.DataFrame, test_counts: pd.Series,
                 claims_table: pd.DataFrame) -> Path:
    """Write ``<results_dir>/REPORT.md``: protocol, results ours beside the paper's, the claims, data, figures.

    Args:
        cfg: the profile of the run.
        data_summary: :meth:`msa_utils.data.data_report.DataReport.summary` of the run.
        counts: :func:`split_counts`.
        test_counts: predicted tag -> number of posts in ``test_predictions.txt``.
        claims_table: :func:`msa_utils.experiments.claims.claims_table`.

    Returns:
        The path written.
    """
    paths = cfg.paths
    backbone = io.read_json(paths.metrics / BACKBONE_FILE)["description"]
    selection = io.read_json(paths.metrics / SELECTION_FILE)
    runs = claims.load_runs(paths, ["full"])
    changed = changed_settings(cfg)
    command = " ".join([f"msa-study --profile {cfg.name}",
                        *(f"--set {k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in changed.items())])
    data_dir = Path(cfg.data_dir)
    data_dir = data_dir.relative_to(REPO_ROOT) if data_dir.is_relative_to(REPO_ROOT) else data_dir
    stopping = (f"Early stopping on validation weighted F1, patience {cfg.patience}" if cfg.early_stopping
                else f"No early stopping ({cfg.max_epochs} epochs, the last kept)")
    lines = [
        f"# Results: multimodal sentiment analysis, profile `{cfg.name}`",
        "",
        f"Produced by `{command}` (notebooks 01-07) on `{data_dir}`. Backbone: {backbone}.",
        "",
        protocol_text(cfg, counts),
        "",
        "## The paper's claims (held-out test part)",
        "",
        claims.claims_markdown(claims_table),
        "",
        f"Verdicts on weighted F1: *supported* when the 95% interval of the difference excludes 0 in the "
        f"paper's direction, *contradicted* when it excludes 0 in the other, else *inconclusive*; \"does as well\" "
        f"claims are non-inferiority tests with a margin of {claims.NON_INFERIORITY_MARGIN}; 1a asks whether our "
        f"interval reaches the paper's figure; 1b whether every seed's best epoch is one of the paper's strongest "
        f"({', '.join(map(str, claims.PAPER_STRONGEST_EPOCHS))}).",
        "",
        "## Every model (test part: mean ± std over seeds; n seeds)",
        "",
        markdown_table(main_table(paths)),
        "",
        "## The paper's recipe, seed by seed",
        "",
        markdown_table(runs[["seed", "best_epoch", "epochs_run", "mean_epoch_seconds", "val_weighted_f1",
                             "test_accuracy", "test_weighted_f1", "test_macro_f1"]]),
        "",
        f"{stopping}; Adam lr {cfg.lr:g}, batch "
        f"{cfg.batch_size}, {'inverse-class-frequency re-sampling' if cfg.resample else 'no re-sampling'}.",
        "",
        "## Test predictions",
        "",
        f"`predictions/test_predictions.txt` (format `guid,tag` as in `test_without_label.txt`) comes from "
        f"**{selection['title']}** (`{selection['model']}`), the variant with the best mean validation weighted F1 "
        f"({selection['val_weighted_f1']:.3f}), averaging the class probabilities of its {selection['seeds']} seeds; "
        f"on the held-out test part that average scores weighted F1 {selection['test_weighted_f1']:.3f}. Tags: "
        + ", ".join(f"{tag} {n}" for tag, n in test_counts.items()) + ". The paper's recipe's own predictions "
        "(mean of its seeds) are in `predictions/test_predictions_paper_recipe.txt`.",
        "",
        "## Data",
        "",
        markdown_table(counts.reset_index().rename(columns={"index": "class"}), floatfmt=".0f"),
        "",
        "Every item that was repaired, excluded or noted (full list: `data_report.csv`):",
        "",
        markdown_table(data_summary),
        "",
        "## Figures",
        "",
        "![validation loss](figures/07_val_loss.png) ![validation accuracy](figures/07_val_accuracy.png) "
        "![validation weighted F1](figures/07_val_f1.png)",
        "",
        "![test scores](figures/07_scores.png) ![claims](figures/06_claims.png) "
        "![confusion matrix](figures/07_confusion_selected.png)",
        "",
    ]
    return io.write_text(paths.results / "REPORT.md", "\n".join(lines))


def readme_results(results_dir: str | Path, profile: str = "cpu") -> str:
    """The README's results block, rendered from the files of one results folder.

    The claims table (without notes) and where the numbers come from.
    Written into README.md by ``python -m msa_utils.report.docs``; a test checks that README.md holds
    exactly this text.

    Raises:
        FileNotFoundError: if the results folder lacks the files of notebooks 04-06.
    """
    paths = StudyPaths(Path(results_dir))
    table = load_claims_table(paths)
    runs = claims.load_runs(paths, ["full"])
    selection = io.read_json(paths.metrics / SELECTION_FILE)
    spread = mean_std(runs["test_weighted_f1"].mean(), runs["test_weighted_f1"].std(ddof=1), len(runs))
    return "\n".join([
        claims.claims_markdown(table, notes=False),
        "",
        f"Test weighted F1 on a held-out part of {int(table['n_posts'].max())} posts that no choice read, "
        f"`{profile}` profile, {len(runs)} seeds per model (the paper's recipe: {spread}); intervals: paired "
        f"bootstrap over test posts and seeds. The prediction file comes from {selection['title']} "
        f"(best validation score). Rendered from `results/` by `python -m msa_utils.report.docs`; every model, "
        "note and figure is in [`results/REPORT.md`](results/REPORT.md).",
    ])


def load_claims_table(paths: StudyPaths) -> pd.DataFrame:
    """``metrics/claims_table.csv`` (:func:`msa_utils.experiments.claims.write_claims`) as written, empty
    notes as ``""``, missing intervals and post counts (claims not tested) as NaN.

    Raises:
        FileNotFoundError: if notebook 06 has not run.
    """
    return pd.read_csv(paths.metrics / "claims_table.csv", keep_default_na=False,
                       na_values={column: [""] for column in ("difference", "low", "high", "n_posts")})
