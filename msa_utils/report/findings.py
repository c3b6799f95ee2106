"""Notebooks 04-07's model parts and closing findings (Markdown), from the files they wrote; test weighted F1
unless named, 95 % bootstrap intervals."""

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
    return (f"- **{row['id']}** {row['claim']} (paper: {row['paper']}): ours {row['ours']}{moved}: "
            f"**{row['verdict']}**")


def ablation(cfg: Profile) -> str:
    """Notebook 05: full vs without image vs without text, the paired differences (claims 2a, 2b, 3)."""
    table = claims.claims_table(cfg, seed=cfg.seed, ids=("2a", "2b", "3")).set_index("id", drop=False)
    moved = [f"by {-r['difference']:+.3f} [{-r['high']:+.3f}, {-r['low']:+.3f}] without the {modality}"
             for modality, i in (("image", "2a"), ("text", "2b"))
             if i in table.index and not pd.isna((r := table.loc[i])["difference"])]
    lines = [f"Against the full model, test weighted F1 moves {' and '.join(moved)} (paired over seeds and test "
             "posts).", ""] if moved else []
    return "\n".join(["### Findings: the ablation", "", *lines, *(_claim_line(row) for _, row in table.iterrows())])


def claims_summary(table: pd.DataFrame, largest: int = 3) -> str:
    """Notebook 06: the claims per verdict, and the ``largest`` differences."""
    ids = table.groupby("verdict")["id"].agg(list)
    order = ["supported", "contradicted", "inconclusive", claims.NOT_TESTED]
    counts = "; ".join(f"{v} {len(ids[v])} ({', '.join(ids[v])})" for v in sorted(ids.index, key=order.index))
    sized = table.dropna(subset=["difference"])
    top = sized.loc[sized["difference"].abs().sort_values(ascending=False, kind="stable").index[:largest]]
    return "\n".join([f"### Findings: the {len(table)} claims of this run", "", f"Verdicts: {counts}.", "",
                      f"The {len(top)} largest differences:", "", *(_claim_line(row) for _, row in top.iterrows())])


def selection(cfg: Profile) -> str:
    """Notebook 07: the chosen model's test scores with intervals, per-class F1 and confusion matrix."""
    paths = cfg.paths
    chosen = io.read_json(paths.metrics / SELECTION_FILE)
    _, gold, _ = claims.prediction_matrix(paths, chosen["model"])
    pred = claims.mean_probabilities(paths, chosen["model"], "test")[1].argmax(1)
    intervals = {m: compare.bootstrap_mean(gold, pred, m, n_resamples=claims.N_RESAMPLES, seed=cfg.seed)
                 for m in compare.METRICS}
    scores = [f"{m.replace('_f1', ' F1').replace('_', ' ')} {chosen[f'test_{m}']:.3f} [{e.low:.3f}, {e.high:.3f}]"
              for m, e in intervals.items()]
    per_class, matrix = classification_metrics(gold, pred), confusion(gold, pred)
    recall = [f"{label} {matrix[i, i] / max(matrix[i].sum(), 1):.0%} of {matrix[i].sum()}"
              for i, label in enumerate(LABELS)]
    errors = np.where(np.eye(len(LABELS), dtype=bool), -1, matrix)
    g, p = divmod(int(errors.argmax()), len(LABELS))
    return "\n".join([
        "### Findings: the chosen model", "",
        f"**{chosen['title']}** (`{chosen['model']}`), the best mean validation weighted F1 "
        f"({chosen['val_weighted_f1']:.3f} over {chosen['seeds']} seeds), averaging its seeds' probabilities, "
        f"scores on the {len(gold)} held-out test posts: {', '.join(scores)} (95% bootstrap over posts).", "",
        "F1 per class: " + ", ".join(f"{label} {per_class[f'f1_{label}']:.3f}" for label in LABELS) + ".", "",
        f"Confusion matrix: recall {', '.join(recall)}; the most frequent error is gold {LABELS[g]} predicted "
        f"{LABELS[p]}: {matrix[g, p]} posts ({matrix[g, p] / max(matrix[g].sum(), 1):.0%} of gold {LABELS[g]}).",])
