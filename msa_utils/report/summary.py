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
    """Every variant that ran, then every baseline: test-fold scores and val weighted F1 (mean ± std over runs; n
    runs), with the paper's."""
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
    d, runs_text = cfg.data, f"{cfg.data.folds * cfg.data.repeats} runs"
    protocol = (
        f"The {int(counts.loc['total', 'labelled'])} usable labelled posts of `train.txt`: {d.repeats} repeat(s) of a {d.folds}-fold cross-validation stratified by class and grouped by "
        f"content (same cleaned text, same image bytes or a near-identical image stay in one fold; "
        f"`splits/folds.csv`), seeds {cfg.seed}-{cfg.seed + d.folds * d.repeats - 1}. Each run ({runs_text} per "
        f"variant) tests on its fold and trains on the others, less a grouped validation part "
        f"({d.val_fraction:.0%}) that chose its epoch; variants and hyperparameters were chosen on validation "
        f"scores only. Scores are mean ± standard deviation over runs; comparisons are paired by run, with 95% "
        f"corrected resampled t intervals (Nadeau & Bengio 2003), p-values and Holm's correction over the family "
        f"of claims (`docs/protocol.md`). The paper's numbers are on its own validation split.")
    stopping = (f"Early stopping on validation weighted F1, patience {cfg.train.patience}" if cfg.train.early_stopping
                else f"No early stopping ({cfg.train.max_epochs} epochs, the last kept)")
    resampling = (f"inverse-class-frequency re-sampling ({'3 x the majority class' if cfg.train.resample_to == 'majority' else 'as many draws as posts'} per epoch)"
                  if cfg.train.resample else "no re-sampling")
    sections = [
        f"# Results: multimodal sentiment analysis, profile `{cfg.name}`",
        f"Produced by `{command}` (notebooks 01-07) on `{data_dir}`. "
        f"Backbone: {io.read_json(paths.metrics / BACKBONE_FILE)['description']}.",
        protocol,
        "## The paper's claims (test folds)",
        claims.claims_markdown(claims_table),
        f"Verdicts on weighted F1 from Holm-adjusted p-values at {claims.ALPHA} (sensitivity rows, outside the family: "
        f"their own p): *supported* / *contradicted* when the difference is significant in / against the paper's "
        f"direction, else *inconclusive*; on a stand-in for FLAVA they read *reproduced on the proxy*, *opposite on "
        f"the proxy*, *not reproduced on the proxy (inconclusive)*. \"Does as well\" claims are equivalence tests "
        f"(TOST) with a margin of ±{claims.EQUIVALENCE_MARGIN}; 1a compares our best-epoch validation score with the "
        f"paper's 0.73 and its standard error ({claims.PAPER_SE:.3f}); 1b asks whether every run's best epoch is one "
        f"of the paper's strongest ({', '.join(map(str, claims.PAPER_STRONGEST_EPOCHS))}).",
        "## Every model (test folds: mean ± std over runs; n runs)",
        markdown_table(main_table(paths)),
        "## The paper's recipe, run by run",
        markdown_table(runs[["repeat", "fold", "seed", "best_epoch", "epochs_run", "mean_epoch_seconds", "val_weighted_f1",
                             "test_accuracy", "test_weighted_f1", "test_macro_f1"]]),
        f"{stopping}; Adam lr {cfg.train.lr:g}, batch "
        f"{cfg.train.batch_size}, {resampling}.",
        "## Test predictions",
        f"`predictions/test_predictions.txt` (format `guid,tag` as in `test_without_label.txt`) comes from "
        f"**{selection['title']}** (`{selection['model']}`), the variant with the best mean validation weighted F1 "
        f"({selection['val_weighted_f1']:.3f}), averaging the class probabilities of its {selection['runs']} fold "
        f"models; their out-of-fold predictions score weighted F1 {selection['test_weighted_f1']:.3f}. Tags: "
        + ", ".join(f"{tag} {n}" for tag, n in test_counts.items()) + ". The paper's recipe's own predictions "
        "(mean of its fold models) are in `predictions/test_predictions_paper_recipe.txt`.",
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
    sensitivity = table["id"].str.contains("-")
    return "\n".join([
        claims.claims_markdown(table[~sensitivity], notes=False), "",
        f"`{profile}` profile, {len(runs)} cross-validation runs per model over all "
        f"{int(runs['n_test'].sum() / max(runs['repeat'].nunique(), 1)):,} labelled posts (the paper's recipe: test-fold "
        f"weighted F1 {spread}); differences paired by run, 95% corrected resampled t intervals, p-values Holm-adjusted "
        f"over the family (TOST for 1a and 5d; `docs/protocol.md`). The sensitivity rows "
        f"({', '.join(table.loc[sensitivity, 'id'])}), the notes and what each row was tested on are in "
        f"[`results/claims.md`](results/claims.md); the prediction file comes from {selection['title']} (best "
        "validation score). Rendered from `results/` by `python scripts/render_docs.py`; everything else is in "
        "[`results/REPORT.md`](results/REPORT.md).",
    ])


def load_claims_table(paths: StudyPaths) -> pd.DataFrame:
    """``metrics/claims_table.csv`` (claims not tested: NaN intervals and post counts)."""
    return pd.read_csv(paths.metrics / "claims_table.csv", keep_default_na=False,
                       na_values={column: [""] for column in ("difference", "low", "high", "p", "p_holm")})
