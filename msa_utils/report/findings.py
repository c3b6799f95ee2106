"""What notebooks 04-07 show, generated from the files they wrote: the model's parts (04) and the
closing findings, in Markdown (05: the ablation, 06: the claims, 07: the chosen model). Numbers
are test weighted F1 unless named; intervals are 95 % bootstrap intervals (:mod:`msa_utils.experiments.compare`).
"""

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
    """Parameters of each part of a classifier built on ``backbone``: its frozen encoders
    (``text_encoder``, ``image_encoder``), then the classifier ``model``'s top-level modules. Columns ``part,
    parameters, trained`` (any parameter with ``requires_grad``), and a ``total`` row."""
    parts = [("text encoder", backbone.text_encoder), ("image encoder", backbone.image_encoder),
             *(({"multimodal": "multimodal encoder"}.get(name, name.replace("_", " ")), module)
               for name, module in model.named_children())]
    table = pd.DataFrame([{"part": name, "parameters": sum(p.numel() for p in module.parameters()),
                           "trained": any(p.requires_grad for p in module.parameters())} for name, module in parts])
    trained = table.loc[table["trained"], "parameters"].sum()
    total = {"part": f"total ({trained:,} trained)", "parameters": table["parameters"].sum(), "trained": trained > 0}
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


def _claim_line(row: pd.Series) -> str:
    """One claims-table row as a Markdown bullet: claim, the paper's figure, ours, difference, verdict."""
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
    """Notebook 06: how many claims of ``table`` (:func:`msa_utils.experiments.claims.claims_table`)
    got each verdict, and the ``largest`` differences by size."""
    ids = table.groupby("verdict")["id"].agg(list)
    order = ["supported", "contradicted", "inconclusive", claims.NOT_TESTED]
    counts = "; ".join(f"{v} {len(ids[v])} ({', '.join(ids[v])})" for v in sorted(ids.index, key=order.index))
    sized = table.dropna(subset=["difference"])
    top = sized.loc[sized["difference"].abs().sort_values(ascending=False, kind="stable").index[:largest]]
    return "\n".join([f"### Findings: the {len(table)} claims of this run", "", f"Verdicts: {counts}.", "",
                      f"The {len(top)} largest differences:", "", *(_claim_line(row) for _, row in top.iterrows())])


def selection(cfg: Profile) -> str:
    """Notebook 07: the model chosen on validation, its test scores with intervals, per-class F1 and
    what its confusion matrix shows (mean of its seeds' probabilities)."""
    paths = cfg.paths
    chosen = io.read_json(paths.metrics / SELECTION_FILE)
    _, gold, _ = claims.prediction_matrix(paths, chosen["model"])
    pred = claims.mean_probabilities(paths, chosen["model"], "test")[1].argmax(1)
    scores = []
    for metric in compare.METRICS:
        est = compare.bootstrap_mean(gold, pred, metric, n_resamples=claims.N_RESAMPLES, seed=cfg.seed)
        scores.append(f"{metric.replace('_f1', ' F1').replace('_', ' ')} {chosen[f'test_{metric}']:.3f} "
                      f"[{est.low:.3f}, {est.high:.3f}]")
    per_class = classification_metrics(gold, pred)
    matrix = confusion(gold, pred)
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
        f"{LABELS[p]}: {matrix[g, p]} posts ({matrix[g, p] / max(matrix[g].sum(), 1):.0%} of gold {LABELS[g]}).",
    ])
