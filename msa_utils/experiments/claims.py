"""The paper's claims, each tested on the held-out test part with the seeds of every variant.

Reads what :mod:`msa_utils.experiments.variants` wrote (``metrics/runs/``, ``predictions/runs/``) and gives:

- :func:`results_table`: every variant and baseline, validation and test scores as mean ± std
  over seeds with ``n``;
- :func:`claims_table`: one row per claim (:data:`CLAIMS`): the paper's figure, ours, the 95%
  interval of the paired difference on the test part (:func:`msa_utils.experiments.compare.paired_bootstrap`,
  over test posts and seeds) and a verdict (:func:`msa_utils.experiments.compare.verdict`);
- :func:`choose_model`: the variant with the best mean VALIDATION weighted F1, whose seeds'
  mean probabilities give the study's test predictions.

Verdicts are on :data:`PRIMARY_METRIC` (the paper's headline metric, which early stopping also
monitors); accuracy is in every table beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from msa_utils import io
from msa_utils.config.labels import LABEL2ID, LABELS
from msa_utils.experiments import compare
from msa_utils.config.profiles import Profile, StudyPaths
from msa_utils.io.tables import markdown_table
from msa_utils.experiments.variants import BASELINES, VARIANTS

PRIMARY_METRIC = "weighted_f1"
"""The metric every verdict is on."""

NON_INFERIORITY_MARGIN = 0.02
"""For "not worse" claims: a loss smaller than this (weighted F1; about one standard error of a
score on 800 test posts) counts as no loss."""

PAPER_STRONGEST_EPOCHS = (2, 3, 6)
"""The epochs the paper reports as its full model's strongest (best: 2)."""

N_RESAMPLES = 2000
"""Bootstrap resamples per comparison."""


@dataclass(frozen=True)
class Claim:
    """One claim of the paper (or of ours, ids starting with ``P``) as a comparison on the test part.

    Attributes:
        id: ``"1"``, ``"2a"``, ...
        text: the claim in words.
        better: the model the claim says is better (a variant, a baseline, or ``"probe"``: the
            linear probe with the better validation weighted F1).
        worse: the model it says is worse; ``None`` for a claim about one model's score.
        expected: ``"greater"`` (better > worse), ``"not_worse"`` (better is not worse than
            worse by more than :data:`NON_INFERIORITY_MARGIN`), ``"at_least"`` (better reaches
            ``paper_value``) or ``"epochs"`` (the full model's best epochs are the paper's).
        paper: the paper's figure, as text.
        paper_value: the paper's score, for ``"at_least"``.
    """

    id: str
    text: str
    better: str
    worse: str | None
    expected: Literal["greater", "not_worse", "at_least", "epochs"]
    paper: str
    paper_value: float | None = None


CLAIMS: tuple[Claim, ...] = (
    Claim("1a", "the full model reaches 0.73 weighted F1", "full", None, "at_least", "0.73 (accuracy 0.73)", 0.73),
    Claim("1b", "the full model is best at epoch 2; its strongest epochs are 2, 3 and 6", "full", None, "epochs",
          "best epoch 2"),
    Claim("2a", "image + text beats text alone (without image)", "full", "no_image", "greater", "+0.11 (0.73 vs 0.62)"),
    Claim("2b", "image + text beats the image alone (without text)", "full", "no_text", "greater",
          "+0.03 (0.73 vs 0.70)"),
    Claim("3", "the image carries more than the text", "no_text", "no_image", "greater", "+0.08 (0.70 vs 0.62)"),
    Claim("4a", "re-sampling beats a class-weighted loss", "full", "weighted_loss", "greater", "not quantified"),
    Claim("4b", "re-sampling beats a plain loss", "full", "plain_loss", "greater", "not quantified"),
    Claim("5a", "CLS + MLP beats a softmax-weighted sum over all output tokens", "full", "token_attention_head",
          "greater", "+0.07 to +0.08"),
    Claim("5b", "CLS + MLP beats weighted text and image sums combined with the CLS", "full", "modality_sum_head",
          "greater", "+0.07 to +0.08"),
    Claim("5c", "CLS + MLP beats multi-head attention in place of the MLP", "full", "attention_head", "greater",
          "+0.07 to +0.08"),
    Claim("5d", "a linear head on the CLS does as well as the MLP", "linear_head", "full", "not_worse",
          "both among the best"),
    Claim("6a", "freezing the multimodal encoder hurts", "full", "frozen_fusion", "greater", "not quantified"),
    Claim("6b", "a frozen text encoder loses nothing against fine-tuning its top layer", "full", "text_top_layer",
          "not_worse", "not quantified"),
    Claim("7", "dropout and early stopping are needed (without them the model overfits)", "full", "no_regularisation",
          "greater", "not quantified"),
    Claim("P1", "(ours) the fusion model beats a linear probe on the same frozen features", "full", "probe",
          "greater", "–"),
    Claim("P2", "(ours) the fusion model beats a text-only TF-IDF model", "full", "tfidf_text", "greater", "–"),
)
"""Every claim tested, in the order of the report."""


def load_runs(paths: StudyPaths, names: list[str] | None = None) -> pd.DataFrame:
    """The per-seed rows of the variants that have run (``metrics/runs/<variant>.csv``), in
    :data:`msa_utils.experiments.variants.VARIANTS` order; ``names`` restricts them.

    Raises:
        FileNotFoundError: if none has run (run notebooks 04-06).
    """
    frames = [pd.read_csv(path) for name in (names or VARIANTS)
              if (path := paths.metrics / "runs" / f"{name}.csv").exists()]
    if not frames:
        raise FileNotFoundError(f"no run under {paths.metrics / 'runs'}: run notebooks 04-06 first")
    return pd.concat(frames, ignore_index=True)


def load_predictions(paths: StudyPaths, model: str, part: str) -> pd.DataFrame:
    """The prediction rows (:data:`msa_utils.experiments.variants.PREDICTION_COLUMNS`) of one model and part.

    Raises:
        FileNotFoundError: if the model has not run.
    """
    file = "baselines" if model in BASELINES else model
    path = paths.predictions / "runs" / f"{file}.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run notebooks 04-06 first")
    frame = pd.read_csv(path, keep_default_na=False)
    return frame[(frame["model"] == model) & (frame["part"] == part)]


def prediction_matrix(paths: StudyPaths, model: str, part: str = "test") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gold and predicted class ids of one model on one labelled part, one row per seed.

    Returns:
        ``(guids (N,), gold (N,), pred (S, N))``, posts in guid order.
    """
    frame = load_predictions(paths, model, part)
    wide = frame.pivot(index="guid", columns="seed", values="pred").sort_index()
    gold = frame.drop_duplicates("guid").set_index("guid").loc[wide.index, "gold"].map(LABEL2ID).to_numpy()
    return wide.index.to_numpy(), gold, wide.apply(lambda c: c.map(LABEL2ID)).to_numpy().T


def results_table(paths: StudyPaths) -> pd.DataFrame:
    """Every model's validation and test scores: mean, std and n over seeds.

    Returns:
        One row per variant that has run, then per baseline (n = 1: deterministic), indexed by
        name; columns ``title, n, <part>_<metric>_mean, <part>_<metric>_std`` for parts ``val``,
        ``test`` and metrics accuracy, weighted_f1, macro_f1.
    """
    runs = load_runs(paths).assign(title=lambda r: r["variant"].map(lambda n: VARIANTS[n].title))
    baselines = pd.read_csv(paths.metrics / "baselines.csv").rename(columns={"baseline": "variant"})
    baselines["title"] = baselines["variant"].map(BASELINES)  # one deterministic row each: n 1, std NaN
    scores = pd.concat([runs, baselines], ignore_index=True)
    columns = [f"{part}_{metric}" for part in ("val", "test") for metric in ("accuracy", "weighted_f1", "macro_f1")]
    grouped = scores.groupby("variant", sort=False)
    table = pd.DataFrame({"title": grouped["title"].first(), "n": grouped.size()})
    for column in columns:
        table[f"{column}_mean"] = grouped[column].mean()
        table[f"{column}_std"] = grouped[column].std(ddof=1)
    return table.rename_axis("model")


def better_probe(paths: StudyPaths) -> str:
    """The linear probe (balanced or not) with the higher VALIDATION weighted F1."""
    baselines = pd.read_csv(paths.metrics / "baselines.csv", index_col="baseline")
    return str(baselines.loc[["probe_balanced", "probe_unbalanced"], "val_weighted_f1"].idxmax())


def claims_table(cfg: Profile, seed: int = 0) -> pd.DataFrame:
    """One row per claim of :data:`CLAIMS` whose models have run under the profile ``cfg``.

    A claim this run cannot test gets the verdict ``"not tested"`` and a note saying why: its two
    models have the same settings (an override gave the recipe the variant's setting, e.g.
    ``--set head=attention``), or, for the best epochs (1b), training stops before epoch 6 or
    keeps no best epoch.

    Columns: ``id, claim, paper, ours, difference, low, high, n_seeds, n_posts, verdict, note``:
    ``ours`` the models' test scores (mean ± std over seeds, n), ``difference`` the paired
    difference of :data:`PRIMARY_METRIC` on the test part (better minus worse; for ``at_least``:
    ours minus the paper's figure) with its 95% interval ``[low, high]``.

    Args:
        cfg: the profile of the run (its results folder, recipe and epochs).
        seed: seed of the bootstrap.
    """
    paths = cfg.paths
    runs = load_runs(paths)
    available = set(runs["variant"]) | set(BASELINES)
    probe = better_probe(paths)
    rows = []
    for claim in CLAIMS:
        better = probe if claim.better == "probe" else claim.better
        worse = probe if claim.worse == "probe" else claim.worse
        if better not in available or (worse is not None and worse not in available):
            continue
        untestable = _untestable(cfg, claim, better, worse)
        if untestable:
            rows.append({"id": claim.id, "claim": claim.text, "paper": claim.paper, "ours": "–", "difference": np.nan,
                         "low": np.nan, "high": np.nan, "n_seeds": cfg.seeds, "n_posts": np.nan,
                         "verdict": NOT_TESTED, "note": untestable})
            continue
        rows.append(_claim_row(paths, runs, claim, better, worse, seed))
    return pd.DataFrame(rows)


NOT_TESTED = "not tested"
"""The verdict of a claim a run cannot test (:func:`claims_table` says why in the note)."""


def _untestable(cfg: Profile, claim: Claim, better: str, worse: str | None) -> str:
    """Why ``claim`` cannot be tested under ``cfg`` (``""`` if it can)."""
    if claim.expected == "epochs" and (not cfg.early_stopping or cfg.max_epochs < max(PAPER_STRONGEST_EPOCHS)):
        return (f"needs early stopping and at least {max(PAPER_STRONGEST_EPOCHS)} epochs (this run: "
                f"early_stopping={cfg.early_stopping}, max_epochs={cfg.max_epochs})")
    if better in VARIANTS and worse in VARIANTS:
        a, b = VARIANTS[better], VARIANTS[worse]
        if a.drop == b.drop and a.profile(cfg, 0).run_key_settings() == b.profile(cfg, 0).run_key_settings():
            return f"{better} and {worse} have the same settings in this run (an override gave the recipe the variant's)"
    return ""


def _claim_row(paths: StudyPaths, runs: pd.DataFrame, claim: Claim, better: str, worse: str | None, seed: int) -> dict:
    """The :func:`claims_table` row of one claim."""
    _, gold, pred_a = prediction_matrix(paths, better)
    row = {"id": claim.id, "claim": claim.text, "paper": claim.paper, "n_posts": len(gold), "note": ""}
    ours = _scores_text(gold, pred_a)
    if claim.expected == "epochs":
        epochs = runs.loc[runs["variant"] == better, "best_val_epoch"].astype(int).tolist()
        inside = sum(e in PAPER_STRONGEST_EPOCHS for e in epochs)
        verdict = "supported" if inside == len(epochs) else "contradicted" if inside == 0 else "inconclusive"
        return {**row, "ours": f"best epochs {', '.join(map(str, epochs))}", "difference": np.nan, "low": np.nan,
                "high": np.nan, "n_seeds": len(epochs), "verdict": verdict,
                "note": f"{inside} of {len(epochs)} seeds' best validation epoch in {list(PAPER_STRONGEST_EPOCHS)}"}
    if claim.expected == "at_least":
        estimate = compare.bootstrap_mean(gold, pred_a, PRIMARY_METRIC, n_resamples=N_RESAMPLES, seed=seed)
        low, high = estimate.low - claim.paper_value, estimate.high - claim.paper_value
        return {**row, "ours": ours, "difference": estimate.mean - claim.paper_value, "low": low, "high": high,
                "n_seeds": pred_a.shape[0], "verdict": compare.verdict(low, high, "at_least")}
    _, gold_b, pred_b = prediction_matrix(paths, worse)
    if not np.array_equal(gold, gold_b):
        raise ValueError(f"{better} and {worse} were not scored on the same test posts")
    result = compare.paired_bootstrap(gold, pred_a, pred_b, PRIMARY_METRIC, n_resamples=N_RESAMPLES, seed=seed)
    margin = NON_INFERIORITY_MARGIN if claim.expected == "not_worse" else 0.0
    note = _note(runs, claim, better, worse)
    return {**row, "ours": f"{ours} vs {_scores_text(gold, pred_b)}", "difference": result.difference,
            "low": result.low, "high": result.high, "n_seeds": pred_a.shape[0],
            "verdict": compare.verdict(result.low, result.high, claim.expected, margin=margin),
            "note": note}


def _scores_text(gold: np.ndarray, pred: np.ndarray) -> str:
    """``"0.674 ± 0.010 (n=3)"``: the test :data:`PRIMARY_METRIC` over seeds (rows of ``pred``)."""
    conf = compare.confusion_matrices(gold, pred)
    return compare.format_summary(compare.seed_summary(compare.metric_from_confusion(conf, PRIMARY_METRIC)))


def _note(runs: pd.DataFrame, claim: Claim, better: str, worse: str) -> str:
    """What a claim needs beside its interval: cost, convergence, or the probe used."""
    def mean(name: str, column: str) -> float:
        return float(runs.loc[runs["variant"] == name, column].mean())

    if claim.id.startswith("4"):
        return (f"batches per epoch {mean(better, 'batches_per_epoch'):.0f} vs {mean(worse, 'batches_per_epoch'):.0f} "
                f"(paper: about 190 vs 100); seconds per epoch {mean(better, 'mean_epoch_seconds'):.1f} vs "
                f"{mean(worse, 'mean_epoch_seconds'):.1f}")
    if claim.id in ("6a", "6b"):
        return (f"epochs run {mean(better, 'epochs_run'):.1f} vs {mean(worse, 'epochs_run'):.1f}, best validation "
                f"epoch {mean(better, 'best_val_epoch'):.1f} vs {mean(worse, 'best_val_epoch'):.1f}, seconds per "
                f"epoch {mean(better, 'mean_epoch_seconds'):.1f} vs {mean(worse, 'mean_epoch_seconds'):.1f}")
    if claim.id == "7":
        best = runs.loc[runs["variant"] == worse, "best_val_epoch"].astype(int).tolist()
        return (f"without them each seed trained {int(mean(worse, 'epochs_run'))} epochs and kept the last; their best "
                f"validation epochs were {', '.join(map(str, best))}")
    if claim.better == "probe" or claim.worse == "probe":
        return f"the probe with the better validation score: {BASELINES[better if claim.better == 'probe' else worse]}"
    return ""


def choose_model(paths: StudyPaths) -> str:
    """The variant with the highest mean VALIDATION weighted F1 over its seeds (never the test part)."""
    runs = load_runs(paths)
    return str(runs.groupby("variant", sort=False)["val_weighted_f1"].mean().idxmax())


def mean_probabilities(paths: StudyPaths, model: str, part: str) -> tuple[np.ndarray, np.ndarray]:
    """The mean over seeds of a model's class probabilities on one part.

    Returns:
        ``(guids (N,), probabilities (N, 3))``, posts in guid order.
    """
    frame = load_predictions(paths, model, part)
    columns = [f"p_{c}" for c in LABELS]
    mean = frame.groupby("guid")[columns].mean().sort_index()
    return mean.index.to_numpy(), mean.to_numpy()


def write_claims(cfg: Profile) -> pd.DataFrame:
    """Write ``metrics/claims.csv`` (every run of every variant, one row per variant x seed),
    ``metrics/claims_table.csv`` (:func:`claims_table`, bootstrap seeded with ``cfg.seed``) and
    ``claims.md`` (:func:`claims_markdown`); return the claims table."""
    paths = cfg.paths
    io.write_csv(paths.metrics / "claims.csv", load_runs(paths).round(6))
    table = claims_table(cfg, seed=cfg.seed)
    io.write_csv(paths.metrics / "claims_table.csv", table.round(6))
    io.write_text(paths.results / "claims.md", claims_markdown(table))
    return table


def claims_markdown(table: pd.DataFrame, notes: bool = True) -> str:
    """The claims table as Markdown: claim, the paper's figure, ours, the interval, the verdict
    (and, with ``notes``, each claim's note: cost, convergence, the probe used)."""
    def interval(row) -> str:
        if pd.isna(row["difference"]):
            return "–"
        return f"{row['difference']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]"

    shown = pd.DataFrame({
        "#": table["id"], "claim": table["claim"], "paper": table["paper"],
        "ours: test weighted F1, mean ± std (n seeds)": table["ours"],
        "difference [95% interval]": [interval(r) for _, r in table.iterrows()],
        "verdict": table["verdict"], "note": table["note"],
    })
    return markdown_table(shown if notes else shown.drop(columns="note"))
