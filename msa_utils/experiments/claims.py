"""The paper's claims (:data:`CLAIMS`), each tested on the held-out test part with every variant's
seeds, from the files :mod:`msa_utils.experiments.variants` wrote; the choice of model on validation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from msa_utils import io
from msa_utils.config.labels import LABEL2ID, LABELS
from msa_utils.config.profiles import Profile, StudyPaths
from msa_utils.experiments import compare
from msa_utils.experiments.variants import BASELINES, VARIANTS
from msa_utils.io.tables import markdown_table

PRIMARY_METRIC = "weighted_f1"
"""The metric of every verdict (the paper's headline metric, monitored by early stopping)."""
NON_INFERIORITY_MARGIN = 0.02
"""For "not worse" claims: a smaller loss of weighted F1 (about one standard error on 800 posts) is no loss."""
PAPER_STRONGEST_EPOCHS = (2, 3, 6)
"""The epochs the paper reports as its full model's strongest (best: 2)."""
N_RESAMPLES = 2000
NOT_TESTED = "not tested"
BETTER_PROBE = "better_probe"
"""A model a claim names: the run's :func:`better_probe`."""


def better_probe(paths: StudyPaths) -> str:
    """The linear probe (balanced or not) with the higher VALIDATION weighted F1."""
    baselines = pd.read_csv(paths.metrics / "baselines.csv", index_col="baseline")
    return str(baselines.loc[["probe_balanced", "probe_unbalanced"], "val_weighted_f1"].idxmax())


@dataclass(frozen=True)
class Claim:
    """One claim of the paper (ids starting with ``P``: ours) as a comparison on the test part of ``better`` and
    ``worse``, each a variant of :data:`~msa_utils.experiments.variants.VARIANTS` (trained with every seed), a
    deterministic baseline of :data:`~msa_utils.experiments.variants.BASELINES` (one row) or :data:`BETTER_PROBE`
    (ValueError for another name); ``expected`` as :func:`~msa_utils.experiments.compare.verdict`, or ``"epochs"``
    (better's best epochs are :data:`PAPER_STRONGEST_EPOCHS`)."""

    id: str
    text: str
    better: str
    worse: str | None
    expected: Literal["greater", "not_worse", "at_least", "epochs"]
    paper: str
    paper_value: float | None = None

    def __post_init__(self) -> None:
        known = [*VARIANTS, *BASELINES, BETTER_PROBE]
        for name in (self.better, self.worse):
            if name is not None and name not in known:
                raise ValueError(f"unknown model {name!r} in claim {self.id}; use one of {known}")


PAPER_MLP = "+0.07 to +0.08"
CLAIMS: tuple[Claim, ...] = tuple(Claim(*fields) for fields in (
    ("1a", "the full model reaches 0.73 weighted F1", "full", None, "at_least", "0.73 (accuracy 0.73)", 0.73),
    ("1b", "the full model is best at epoch 2; its strongest epochs are 2, 3 and 6", "full", None, "epochs",
     "best epoch 2"),
    ("2a", "image + text beats text alone (without image)", "full", "no_image", "greater", "+0.11 (0.73 vs 0.62)"),
    ("2b", "image + text beats the image alone (without text)", "full", "no_text", "greater", "+0.03 (0.73 vs 0.70)"),
    ("3", "the image carries more than the text", "no_text", "no_image", "greater", "+0.08 (0.70 vs 0.62)"),
    ("4a", "re-sampling beats a class-weighted loss", "full", "weighted_loss", "greater", "not quantified"),
    ("4b", "re-sampling beats a plain loss", "full", "plain_loss", "greater", "not quantified"),
    ("5a", "CLS + MLP beats a softmax-weighted sum over all output tokens", "full", "token_attention_head", "greater",
     PAPER_MLP),
    ("5b", "CLS + MLP beats weighted text and image sums combined with the CLS", "full", "modality_sum_head",
     "greater", PAPER_MLP),
    ("5c", "CLS + MLP beats multi-head attention in place of the MLP", "full", "attention_head", "greater", PAPER_MLP),
    ("5d", "a linear head on the CLS does as well as the MLP", "linear_head", "full", "not_worse",
     "both among the best"),
    ("6a", "freezing the multimodal encoder hurts", "full", "frozen_fusion", "greater", "not quantified"),
    ("6b", "a frozen text encoder loses nothing against fine-tuning its top layer", "full", "text_top_layer",
     "not_worse", "not quantified"),
    ("7", "dropout and early stopping are needed (without them the model overfits)", "full", "no_regularisation",
     "greater", "not quantified"),
    ("P1", "(ours) the fusion model beats a linear probe on the same frozen features", "full", BETTER_PROBE,
     "greater", "–"),
    ("P2", "(ours) the fusion model beats a text-only TF-IDF model", "full", "tfidf_text", "greater", "–"),
))
"""Every claim tested, in the order of the report."""


def load_runs(paths: StudyPaths, names: list[str] | None = None) -> pd.DataFrame:
    """``metrics/runs/<variant>.csv`` of the variants (of ``names``) that ran; FileNotFoundError if none did."""
    frames = [pd.read_csv(path) for name in (names or VARIANTS)
              if (path := paths.metrics / "runs" / f"{name}.csv").exists()]
    if not frames:
        raise FileNotFoundError(f"no run under {paths.metrics / 'runs'}: run notebooks 04-06 first")
    return pd.concat(frames, ignore_index=True)


def load_predictions(paths: StudyPaths, model: str, part: str) -> pd.DataFrame:
    """The prediction rows of one model (variant or baseline) and part; FileNotFoundError if it has not run."""
    path = paths.predictions / "runs" / f"{'baselines' if model in BASELINES else model}.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run notebooks 04-06 first")
    frame = pd.read_csv(path, keep_default_na=False)
    return frame[(frame["model"] == model) & (frame["part"] == part)]


def prediction_matrix(paths: StudyPaths, model: str, part: str = "test") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(guids (N,), gold (N,), pred (S, N))`` class ids of one model on a labelled part, by guid."""
    frame = load_predictions(paths, model, part)
    wide = frame.pivot(index="guid", columns="seed", values="pred").sort_index()
    gold = frame.drop_duplicates("guid").set_index("guid").loc[wide.index, "gold"].map(LABEL2ID).to_numpy()
    return wide.index.to_numpy(), gold, wide.apply(lambda c: c.map(LABEL2ID)).to_numpy().T


def claims_table(cfg: Profile, seed: int = 0, ids: tuple[str, ...] | None = None) -> pd.DataFrame:
    """One row per claim (of ``ids``) whose models ran: ``ours`` (test :data:`PRIMARY_METRIC` over
    seeds), ``difference`` better minus worse (``at_least``: ours minus the paper's) in its 95 % interval
    ``[low, high]`` (bootstrap seeded with ``seed``); the verdict, or :data:`NOT_TESTED` with why."""
    paths = cfg.paths
    runs = load_runs(paths)
    available = set(runs["variant"]) | set(BASELINES)
    rows = []
    for claim in (c for c in CLAIMS if ids is None or c.id in ids):
        better, worse = (better_probe(paths) if name == BETTER_PROBE else name for name in (claim.better, claim.worse))
        if better not in available or (worse is not None and worse not in available):
            continue
        row = {"id": claim.id, "claim": claim.text, "paper": claim.paper, "n_posts": np.nan, "note": "", "ours": "–",
               "difference": np.nan, "low": np.nan, "high": np.nan, "n_seeds": cfg.seeds, "verdict": NOT_TESTED}
        untestable = _untestable(cfg, claim)
        rows.append({**row, "note": untestable} if untestable else
                    _claim_row(paths, runs, claim, better, worse, seed, row))
    return pd.DataFrame(rows)


def _untestable(cfg: Profile, claim: Claim) -> str:
    """Why ``claim`` cannot be tested under ``cfg`` (``""`` if it can)."""
    if claim.expected == "epochs" and not (cfg.train.early_stopping
                                           and cfg.train.max_epochs >= max(PAPER_STRONGEST_EPOCHS)):
        return (f"needs early stopping and at least {max(PAPER_STRONGEST_EPOCHS)} epochs (this run: "
                f"early_stopping={cfg.train.early_stopping}, max_epochs={cfg.train.max_epochs})")
    if claim.better in VARIANTS and claim.worse in VARIANTS:
        a, b = VARIANTS[claim.better], VARIANTS[claim.worse]
        if a.drop == b.drop and a.profile(cfg, 0).run_key_settings() == b.profile(cfg, 0).run_key_settings():
            return (f"{a.name} and {b.name} have the same settings in this run "
                    "(an override gave the recipe the variant's)")
    return ""


def _claim_row(paths: StudyPaths, runs: pd.DataFrame, claim: Claim, better: str, worse: str | None, seed: int,
               row: dict) -> dict:
    """``row`` filled in for a claim that can be tested."""
    _, gold, pred_a = prediction_matrix(paths, better)
    row = {**row, "n_posts": len(gold), "ours": _scores_text(gold, pred_a), "n_seeds": pred_a.shape[0]}
    if claim.expected == "epochs":
        epochs = runs.loc[runs["variant"] == better, "best_val_epoch"].astype(int).tolist()
        inside = sum(e in PAPER_STRONGEST_EPOCHS for e in epochs)
        verdict = "supported" if inside == len(epochs) else "contradicted" if inside == 0 else "inconclusive"
        return {**row, "ours": f"best epochs {', '.join(map(str, epochs))}", "n_seeds": len(epochs), "verdict": verdict,
                "note": f"{inside} of {len(epochs)} seeds' best validation epoch in {list(PAPER_STRONGEST_EPOCHS)}"}
    if claim.expected == "at_least":
        est, paper = compare.bootstrap_mean(gold, pred_a, PRIMARY_METRIC, N_RESAMPLES, seed), claim.paper_value
        return {**row, "difference": est.mean - paper, "low": est.low - paper, "high": est.high - paper,
                "verdict": est.verdict_against(paper)}
    _, gold_b, pred_b = prediction_matrix(paths, worse)
    if not np.array_equal(gold, gold_b):
        raise ValueError(f"{better} and {worse} were not scored on the same test posts")
    result = compare.paired_bootstrap(gold, pred_a, pred_b, PRIMARY_METRIC, n_resamples=N_RESAMPLES, seed=seed)
    margin = NON_INFERIORITY_MARGIN if claim.expected == "not_worse" else 0.0
    return {**row, "ours": f"{row['ours']} vs {_scores_text(gold, pred_b)}", "difference": result.difference,
            "low": result.low, "high": result.high, "verdict": result.verdict(claim.expected, margin),
            "note": _note(runs, claim, better, worse)}


def _scores_text(gold: np.ndarray, pred: np.ndarray) -> str:
    """``"0.674 ± 0.010 (n=3)"``: the test :data:`PRIMARY_METRIC` over the seeds (rows of ``pred``)."""
    scores = compare.metric_from_confusion(compare.confusion_matrices(gold, pred), PRIMARY_METRIC)
    return str(compare.seed_summary(scores))


def _note(runs: pd.DataFrame, claim: Claim, better: str, worse: str) -> str:
    """What a comparison needs beside its interval: cost, convergence, or the probe used."""
    def both(column: str, fmt: str) -> str:
        return " vs ".join(format(runs.loc[runs["variant"] == n, column].mean(), fmt) for n in (better, worse))

    if claim.id.startswith("4"):
        return (f"batches per epoch {both('batches_per_epoch', '.0f')} (paper: about 190 vs 100); "
                f"seconds per epoch {both('mean_epoch_seconds', '.1f')}")
    if claim.id in ("6a", "6b"):
        return (f"epochs run {both('epochs_run', '.1f')}, best validation epoch {both('best_val_epoch', '.1f')}, "
                f"seconds per epoch {both('mean_epoch_seconds', '.1f')}")
    if claim.id == "7":
        kept = runs.loc[runs["variant"] == worse]
        return (f"without them each seed trained {int(kept['epochs_run'].mean())} epochs and kept the last; their "
                f"best validation epochs were {', '.join(map(str, kept['best_val_epoch'].astype(int)))}")
    probe = [n for r, n in ((claim.better, better), (claim.worse, worse)) if r == BETTER_PROBE]
    return f"the probe with the better validation score: {BASELINES[probe[0]]}" if probe else ""


def choose_model(paths: StudyPaths) -> str:
    """The variant with the highest mean VALIDATION weighted F1 over its seeds (never the test part)."""
    return str(load_runs(paths).groupby("variant", sort=False)["val_weighted_f1"].mean().idxmax())


def mean_probabilities(paths: StudyPaths, model: str, part: str) -> tuple[np.ndarray, np.ndarray]:
    """``(guids (N,), probabilities (N, 3))`` of a model on a part, mean over seeds, by guid."""
    mean = load_predictions(paths, model, part).groupby("guid")[[f"p_{c}" for c in LABELS]].mean().sort_index()
    return mean.index.to_numpy(), mean.to_numpy()


def write_claims(cfg: Profile) -> pd.DataFrame:
    """Write ``metrics/claims.csv`` (every run), ``metrics/claims_table.csv`` (:func:`claims_table` seeded
    with ``cfg.seed``) and ``claims.md``; return the claims table."""
    paths = cfg.paths
    io.write_csv(paths.metrics / "claims.csv", load_runs(paths).round(6))
    table = claims_table(cfg, seed=cfg.seed)
    io.write_csv(paths.metrics / "claims_table.csv", table.round(6))
    io.write_text(paths.results / "claims.md", claims_markdown(table))
    return table


def claims_markdown(table: pd.DataFrame, notes: bool = True) -> str:
    """The claims table as Markdown (with ``notes``, the notes too)."""
    interval = [("–" if pd.isna(d) else f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]")
                for d, lo, hi in zip(table["difference"], table["low"], table["high"])]
    shown = pd.DataFrame({"#": table["id"], "claim": table["claim"], "paper": table["paper"],
                          "ours: test weighted F1, mean ± std (n seeds)": table["ours"],
                          "difference [95% interval]": interval, "verdict": table["verdict"], "note": table["note"]})
    return markdown_table(shown if notes else shown.drop(columns="note"))
