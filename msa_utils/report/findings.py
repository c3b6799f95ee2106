"""Notebooks 04-07's model parts and closing findings (Markdown), from the files they wrote; test-fold weighted F1
unless named, 95 % corrected resampled t intervals over the cross-validation runs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from msa_utils import io
from msa_utils.config.labels import LABELS
from msa_utils.config.profiles import Profile
from msa_utils.experiments import claims, compare
from msa_utils.experiments.predict import SELECTION_FILE
from msa_utils.train.metrics import classification_metrics, confusion


def model_parts(backbone, model) -> pd.DataFrame:
    """Columns ``part, parameters, trained``: ``backbone``'s encoders, ``model``'s top modules, a ``total`` row."""
    parts = [("text encoder", backbone.text_encoder), ("image encoder", backbone.image_encoder),
             *(({"multimodal": "multimodal encoder"}.get(name, name.replace("_", " ")), module)
               for name, module in model.named_children())]
    table = pd.DataFrame([{"part": name, "parameters": sum(p.numel() for p in module.parameters()),
                           "trained": any(p.requires_grad for p in module.parameters())} for name, module in parts])
    trained = table.loc[table["trained"], "parameters"].sum()
    total = {"part": f"total ({trained:,} trained)", "parameters": table["parameters"].sum(), "trained": trained > 0}
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


def _claim_line(row: pd.Series) -> str:
    moved = "" if pd.isna(row["difference"]) else (
        f"; difference {row['difference']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]")
    holm = "" if pd.isna(row.get("p_holm", np.nan)) else f", Holm-adjusted p {row['p_holm']:.3f}"
    return (f"- **{row['id']}** {row['claim']} (paper: {row['paper']}): ours {row['ours']}{moved}{holm}: "
            f"**{row['verdict']}**")


def ablation(cfg: Profile) -> str:
    """Notebook 05: full vs without image vs without text, the paired differences (claims 2a, 2b, 3), before the
    family's correction (notebook 06)."""
    table = claims.claims_table(cfg, ids=("2a", "2b", "3")).set_index("id", drop=False)
    lines = [f"- **{r['id']}** {r['claim']} (paper: {r['paper']}): {r['ours']}; difference {r['difference']:+.3f} "
             f"[{r['low']:+.3f}, {r['high']:+.3f}], p {r['p']:.3f}" for _, r in table.iterrows()
             if not pd.isna(r["difference"])]
    return "\n".join(["### Findings: the ablation", "", "Paired over the cross-validation runs (95% corrected "
                      "resampled t intervals); verdicts, after Holm's correction over every claim: notebook 06.", "",
                      *lines])


def claims_summary(table: pd.DataFrame, largest: int = 3) -> str:
    """Notebook 06: the claims per verdict, and the ``largest`` differences."""
    ids = table.groupby("verdict", sort=False)["id"].agg(list)
    counts = "; ".join(f"{v} {len(ids[v])} ({', '.join(ids[v])})" for v in ids.index)
    sized = table.dropna(subset=["difference"])
    top = sized.loc[sized["difference"].abs().sort_values(ascending=False, kind="stable").index[:largest]]
    return "\n".join([f"### Findings: the {len(table)} rows of this run", "", f"Verdicts: {counts}.", "",
                      f"The {len(top)} largest differences:", "", *(_claim_line(row) for _, row in top.iterrows())])


def selection(cfg: Profile) -> str:
    """Notebook 07: the chosen model's test scores with intervals, per-class F1 and confusion matrix."""
    paths = cfg.paths
    chosen = io.read_json(paths.metrics / SELECTION_FILE)
    _, gold, _ = claims.prediction_matrix(paths, chosen["model"])
    pred = claims.mean_probabilities(paths, chosen["model"], "test")[1].argmax(1)
    runs = claims.load_runs(paths, [chosen["model"]])
    intervals = {m: compare.corrected_t(runs[f"test_{m}"].to_numpy(), claims.ratio_tested_to_fitted(runs))
                 for m in ("accuracy", "weighted_f1", "macro_f1")}
    scores = [f"{m.replace('_f1', ' F1').replace('_', ' ')} {e.estimate:.3f} [{e.low:.3f}, {e.high:.3f}]"
              for m, e in intervals.items()]
    per_class, matrix = classification_metrics(gold, pred), confusion(gold, pred)
    recall = [f"{label} {matrix[i, i] / max(matrix[i].sum(), 1):.0%} of {matrix[i].sum()}"
              for i, label in enumerate(LABELS)]
    errors = np.where(np.eye(len(LABELS), dtype=bool), -1, matrix)
    g, p = divmod(int(errors.argmax()), len(LABELS))
    return "\n".join([
        "### Findings: the chosen model", "",
        f"**{chosen['title']}** (`{chosen['model']}`), the best mean validation weighted F1 "
        f"({chosen['val_weighted_f1']:.3f} over {chosen['runs']} runs), scores on its test folds (mean over runs, 95% "
        f"corrected resampled t intervals): {', '.join(scores)}. Below: the out-of-fold predictions of its fold "
        f"models for the {len(gold)} labelled posts, averaged over repeats.", "",
        "F1 per class: " + ", ".join(f"{label} {per_class[f'f1_{label}']:.3f}" for label in LABELS) + ".", "",
        f"Confusion matrix: recall {', '.join(recall)}; the most frequent error is gold {LABELS[g]} predicted "
        f"{LABELS[p]}: {matrix[g, p]} posts ({matrix[g, p] / max(matrix[g].sum(), 1):.0%} of gold {LABELS[g]}).",])
