"""The paper's claims (:data:`CLAIMS`), each a paired comparison over the cross-validation runs of the files
:mod:`msa_utils.experiments.variants` wrote, one family under Holm's correction; the choice of model on validation.
The protocol (family, margin, tests) is ``docs/protocol.md``, fixed before the results."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from msa_utils import io
from msa_utils.config.labels import LABEL2ID, LABELS
from msa_utils.config.profiles import Profile, StudyPaths
from msa_utils.data.folds import load_folds
from msa_utils.experiments import compare
from msa_utils.experiments.variants import BASELINES, VARIANTS
from msa_utils.io.tables import markdown_table

PRIMARY_METRIC = "weighted_f1"
"""The metric of every verdict but the sensitivity rows that name another (the paper's headline metric)."""
EQUIVALENCE_MARGIN = 0.02
""""Does as well" claims (TOST): a difference of weighted F1 inside +-0.02 is no difference (docs/protocol.md)."""
PAPER_STRONGEST_EPOCHS = (2, 3, 6)
"""The epochs the paper reports as its full model's strongest (best: 2)."""
PAPER_SE = math.sqrt(0.73 * 0.27 / 800)
"""Standard error of the paper's 0.73 on its 800 validation posts (binomial, as for an accuracy): 0.016."""
ALPHA = 0.05
NOT_TESTED = "not tested"
BETTER_PROBE = "better_probe"
"""A model a claim names: the run's :func:`better_probe`."""
PROXY_WORDS = {"supported": "reproduced on the proxy", "contradicted": "opposite on the proxy",
               "inconclusive": "not reproduced on the proxy (inconclusive)", NOT_TESTED: "not testable on the proxy"}
"""Verdicts of a run on a stand-in for FLAVA (the ``compact`` backbone), in words that say so."""


def better_probe(paths: StudyPaths) -> str:
    """The linear probe (balanced or not) with the higher mean VALIDATION weighted F1 over runs."""
    baselines = pd.read_csv(paths.metrics / "baselines.csv").groupby("baseline")["val_weighted_f1"].mean()
    return str(baselines.loc[["probe_balanced", "probe_unbalanced"]].idxmax())


@dataclass(frozen=True)
class Claim:
    """One claim of the paper (ids starting with ``P``: ours) as a paired comparison over runs of ``better`` and
    ``worse``, each a variant of :data:`~msa_utils.experiments.variants.VARIANTS`, a baseline of
    :data:`~msa_utils.experiments.variants.BASELINES` or :data:`BETTER_PROBE` (ValueError for another name), on
    ``metric`` of ``part``; ``expected``: ``greater``, ``equivalent`` (TOST, :data:`EQUIVALENCE_MARGIN`),
    with ``worse`` None: ``better`` lies within the margin of ``effect``, the paper's figure, whose standard error
    :data:`PAPER_SE` joins the interval) or ``epochs`` (better's best epochs are
    :data:`PAPER_STRONGEST_EPOCHS`). ``effect``: the paper's difference (a value or a range), where it states one;
    ``family``: False for a sensitivity row (another reading of the recipe), outside Holm's family."""

    id: str
    text: str
    better: str
    worse: str | None
    expected: Literal["greater", "equivalent", "epochs"]
    paper: str
    effect: float | tuple[float, float] | None = None
    metric: str = PRIMARY_METRIC
    part: Literal["test", "val"] = "test"
    family: bool = True

    def __post_init__(self) -> None:
        known = [*VARIANTS, *BASELINES, BETTER_PROBE]
        for name in (self.better, self.worse):
            if name is not None and name not in known:
                raise ValueError(f"unknown model {name!r} in claim {self.id}; use one of {known}")


PAPER_MLP, REACH = (0.07, 0.08), "the full model reaches the paper's 0.73"
CLAIMS: tuple[Claim, ...] = tuple(Claim(*fields[:6], **fields[6] if len(fields) > 6 else {}) for fields in (
    ("1a", f"{REACH} weighted F1 (best-epoch validation score, as the paper reports)", "full", None, "equivalent",
     "0.73 (its validation split)", {"effect": 0.73, "part": "val"}),
    ("1a-m", f"{REACH} in macro F1 (the paper does not say which F1)", "full", None, "equivalent", "0.73",
     {"effect": 0.73, "part": "val", "metric": "macro_f1", "family": False}),
    ("1a-t", f"{REACH} weighted F1 on held-out test folds", "full", None, "equivalent", "0.73",
     {"effect": 0.73, "family": False}),
    ("1b", "the full model is best at epoch 2; its strongest epochs are 2, 3 and 6", "full", None, "epochs",
     "best epoch 2"),
    ("2a", "image + text beats text alone (without image)", "full", "no_image", "greater", "+0.11 (0.73 vs 0.62)",
     {"effect": 0.11}),
    ("2b", "image + text beats the image alone (without text)", "full", "no_text", "greater", "+0.03 (0.73 vs 0.70)",
     {"effect": 0.03}),
    ("3", "the image carries more than the text", "no_text", "no_image", "greater", "+0.08 (0.70 vs 0.62)",
     {"effect": 0.08}),
    ("4a", "re-sampling beats a class-weighted loss", "full", "weighted_loss", "greater", "not quantified"),
    ("4b", "re-sampling beats a plain loss", "full", "plain_loss", "greater", "not quantified"),
    ("5a", "CLS + MLP beats a softmax-weighted sum over all output tokens", "full", "token_attention_head", "greater",
     "+0.07 to +0.08", {"effect": PAPER_MLP}),
    ("5b", "CLS + MLP beats weighted text and image sums combined with the CLS", "full", "modality_sum_head",
     "greater", "+0.07 to +0.08", {"effect": PAPER_MLP}),
    ("5c", "CLS + MLP beats multi-head attention in place of the MLP", "full", "attention_head", "greater",
     "+0.07 to +0.08", {"effect": PAPER_MLP}),
    ("5d", "a linear head on the CLS does as well as the MLP", "linear_head", "full", "equivalent",
     "both among the best"),
    ("6a", "freezing the multimodal encoder hurts", "full", "frozen_fusion", "greater", "not quantified"),
    ("6b", "a frozen text encoder loses nothing against fine-tuning it", "full", "text_top_layer", "equivalent",
     "not quantified"),
    ("7", "dropout and early stopping are needed (without them the model overfits)", "full", "no_regularisation",
     "greater", "not quantified"),
    ("P1", "(ours) the fusion model beats a linear probe on the same frozen features", "full", BETTER_PROBE,
     "greater", "–"),
    ("P2", "(ours) the fusion model beats a text-only TF-IDF model", "full", "tfidf_text", "greater", "–"),
    ("2a-s", "2a with the other reading of \"zero tokens\": zero image states", "full", "no_image_zero_states",
     "greater", "+0.11", {"effect": 0.11, "family": False}),
    ("2b-s", "2b with zero text states", "full", "no_text_zero_states", "greater", "+0.03",
     {"effect": 0.03, "family": False}),
    ("3-s", "3 with zero states for the missing modality", "no_text_zero_states", "no_image_zero_states", "greater",
     "+0.08", {"effect": 0.08, "family": False}),
    ("2b-g", "2b with the image alone read as all its tokens (7 x 7 at 224 px), not 2 x 2", "full", "no_text_full_grid", "greater", "+0.03",
     {"effect": 0.03, "family": False}),
    ("3-g", "3 with the image alone read as all its tokens", "no_text_full_grid", "no_image", "greater", "+0.08",
     {"effect": 0.08, "family": False}),
    ("4a-e", "4a at equal compute: re-sampling with as many draws as posts", "same_size_resampling",
     "weighted_loss", "greater", "not quantified", {"family": False}),
    ("4b-e", "4b at equal compute", "same_size_resampling", "plain_loss", "greater", "not quantified",
     {"family": False}),
))
"""Every claim tested, in the order of the report: the paper's, ours (``P``), then the sensitivity rows."""


def needed_variants(cfg: Profile) -> list[str]:
    """The variants the claims that ``cfg`` can test compare, in :data:`VARIANTS` order."""
    named = {name for c in CLAIMS if not _untestable(cfg, c) for name in (c.better, c.worse)}
    return [name for name in VARIANTS if name in named]


def load_runs(paths: StudyPaths, names: list[str] | None = None) -> pd.DataFrame:
    """``metrics/runs/<variant>.csv`` of the variants (of ``names``) that ran on every run of the current folds
    (``splits/folds.csv``; a file of other runs, e.g. of an older protocol, is skipped with a warning);
    FileNotFoundError if none did."""
    runs = load_folds(paths.splits)[["repeat", "fold"]].drop_duplicates()
    expected, frames = set(map(tuple, runs.to_numpy().tolist())), []
    for path in (paths.metrics / "runs" / f"{name}.csv" for name in (names or VARIANTS)):
        frame = pd.read_csv(path) if path.exists() else None
        if frame is not None and {"repeat", "fold"} <= set(frame) and \
                set(map(tuple, frame[["repeat", "fold"]].to_numpy().tolist())) == expected:
            frames.append(frame)
        elif frame is not None:
            warnings.warn(f"{path} holds other runs than the folds of {paths.splits}: left out (stale)", stacklevel=2)
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
    """``(guids (N,), gold (N,), pred (R, N))`` class ids of one model on the test folds, by guid, one row per repeat
    (each post is tested once per repeat)."""
    frame = load_predictions(paths, model, part)
    wide = frame.pivot(index="guid", columns="repeat", values="pred").sort_index()
    gold = frame.drop_duplicates("guid").set_index("guid").loc[wide.index, "gold"].map(LABEL2ID).to_numpy()
    return wide.index.to_numpy(), gold, wide.apply(lambda c: c.map(LABEL2ID)).to_numpy().T


def load_scores(paths: StudyPaths) -> pd.DataFrame:
    """Every run's scores, variants and baselines alike: ``model, repeat, fold``, ``n_*``, ``val_*``, ``test_*``."""
    runs = load_runs(paths).rename(columns={"variant": "model"})
    baselines = pd.read_csv(paths.metrics / "baselines.csv").rename(columns={"baseline": "model"})
    sizes = runs.drop_duplicates(["repeat", "fold"]).set_index(["repeat", "fold"])[["n_train", "n_val", "n_test"]]
    return pd.concat([runs, baselines.join(sizes, on=["repeat", "fold"])], ignore_index=True)


def ratio_tested_to_fitted(runs: pd.DataFrame, part: str = "test") -> float:
    """Nadeau & Bengio's n_test / n_train of :func:`~msa_utils.experiments.compare.corrected_t`: the posts of
    ``part`` scored over those fitted on (the train part), mean over ``runs`` (rows with ``n_<part>``, ``n_train``)."""
    return float((runs[f"n_{part}"] / runs["n_train"]).mean())


def claims_table(cfg: Profile, ids: tuple[str, ...] | None = None) -> pd.DataFrame:
    """One row per claim (of ``ids``): ``ours`` (mean ± std over runs), ``difference`` better minus
    worse (against the paper's figure: ours minus it) in its 95 % corrected resampled t interval ``[low, high]``,
    ``p`` and Holm's ``p_holm`` over the family, whether the paper's effect lies inside, the ``verdict`` (worded for
    the proxy when the backbone is not FLAVA), or why the claim is not tested (e.g. a model that has not run)."""
    scores, proxy = load_scores(cfg.paths), cfg.features.backbone != "flava"
    rows = []
    for claim in (c for c in CLAIMS if ids is None or c.id in ids):
        better, worse = (better_probe(cfg.paths) if n == BETTER_PROBE else n for n in (claim.better, claim.worse))
        missing = sorted({better, worse} - {None} - set(scores["model"]))
        why = _untestable(cfg, claim) or (f"{' and '.join(missing)}: no runs on the current folds" if missing else "")
        row = {"id": claim.id, "claim": claim.text, "paper": claim.paper, "family": claim.family,
               "tested_on": f"proxy ({cfg.features.backbone} backbone)" if proxy else "FLAVA, as stated",
               "ours": "–", "difference": np.nan, "low": np.nan, "high": np.nan, "p": np.nan, "paper_effect": "",
               "n_runs": 0, "verdict": NOT_TESTED, "note": why}
        rows.append(row if row["note"] else _claim_row(scores, claim, better, worse, row))
    table = pd.DataFrame(rows)
    family = table["family"] & table["p"].notna()
    table["p_holm"] = np.nan
    table.loc[family, "p_holm"] = compare.holm(table.loc[family, "p"].to_numpy())
    table["verdict"] = [_verdict(row) for _, row in table.iterrows()]
    if proxy:
        table["verdict"] = table["verdict"].map(lambda v: PROXY_WORDS.get(v, v))
    return table


def _untestable(cfg: Profile, claim: Claim) -> str:
    """Why ``claim`` cannot be tested under ``cfg`` (``""`` if it can)."""
    if claim.id == "6a" and cfg.features.backbone != "flava":
        return ("the proxy's multimodal encoder is trained from scratch: frozen, it stays random, so freezing it "
                "could only hurt (the paper froze FLAVA's pretrained one)")
    if "no_text_full_grid" in (claim.better, claim.worse) and (
            cfg.features.backbone == "flava" or cfg.model.image_grid in (None, cfg.features.image_size // 32)):
        return "the image tokens are not pooled in this run: the image alone is read whole in 2b and 3"
    if claim.id == "6b":
        return ("the paper fine-tuned whole encoders (which failed to converge); only fine-tuning the top text layer "
                "is built, which is another comparison")
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


def _column(scores: pd.DataFrame, model: str, claim: Claim) -> pd.Series:
    """``model``'s ``claim.part``'s ``claim.metric`` per run, indexed by ``(repeat, fold)``."""
    return scores[scores["model"] == model].set_index(["repeat", "fold"])[f"{claim.part}_{claim.metric}"].sort_index()


def _claim_row(scores: pd.DataFrame, claim: Claim, better: str, worse: str | None, row: dict) -> dict:
    """``row`` filled in for a claim that can be tested (its verdict after Holm's correction: :func:`_verdict`)."""
    a, runs = _column(scores, better, claim), scores[scores["model"] == better]
    row = {**row, "ours": str(compare.seed_summary(a.to_numpy())), "n_runs": len(a), "expected": claim.expected,
           "note": _note(scores, claim, better, worse)}
    if claim.expected == "epochs":
        epochs = runs["best_val_epoch"].astype(int).tolist()
        inside = sum(e in PAPER_STRONGEST_EPOCHS for e in epochs)
        return {**row, "ours": f"best epochs {', '.join(map(str, epochs))}", "n_runs": len(epochs),
                "verdict": "supported" if inside == len(epochs) else "contradicted" if inside == 0 else "inconclusive",
                "note": f"{inside} of {len(epochs)} runs' best validation epoch in {list(PAPER_STRONGEST_EPOCHS)}"}
    ratio = ratio_tested_to_fitted(runs, claim.part)
    if worse is None:  # against the paper's figure, its standard error joining ours
        differences, extra, b = a.to_numpy() - claim.effect, PAPER_SE, None
    else:
        b = _column(scores, worse, claim)
        if not a.index.equals(b.index):
            raise ValueError(f"{better} and {worse} did not run on the same folds: comparisons are paired")
        differences, extra = (a - b).to_numpy(), 0.0
    interval = compare.corrected_t(differences, ratio, extra_se=extra)
    p = (compare.equivalence(differences, ratio, EQUIVALENCE_MARGIN, extra) if claim.expected == "equivalent"
         else interval.p)
    if b is None:
        return {**row, "difference": interval.estimate, "low": interval.low, "high": interval.high, "p": p}
    effect = "" if claim.effect is None else (
        f"paper's {_signed(claim.effect)}: {'inside' if compare.paper_effect_inside(interval, claim.effect) else 'outside'}")
    paper = np.atleast_1d(claim.effect if claim.effect is not None else np.nan)
    return {**row, "ours": f"{row['ours']} vs {compare.seed_summary(b.to_numpy())}", "difference": interval.estimate,
            "low": interval.low, "high": interval.high, "p": p, "paper_effect": effect, "paper_low": paper.min(),
            "paper_high": paper.max()}


def _signed(effect: float | tuple[float, float]) -> str:
    return " to ".join(f"{e:+.2f}" for e in np.atleast_1d(effect))


def _verdict(row: pd.Series) -> str:
    """A tested row's verdict on its Holm-adjusted p (a sensitivity row: its own p), :func:`compare.verdict`."""
    if row["verdict"] != NOT_TESTED or pd.isna(row["p"]):
        return row["verdict"]
    p = row["p_holm"] if row["family"] else row["p"]
    margin = EQUIVALENCE_MARGIN if row["expected"] == "equivalent" else 0.0
    interval = compare.Interval(row["difference"], row["low"], row["high"], np.nan, 0, row["p"], row["n_runs"], 0.95)
    return compare.verdict(interval, p, row["expected"], margin, ALPHA)


def _note(scores: pd.DataFrame, claim: Claim, better: str, worse: str | None) -> str:
    """What a comparison needs beside its interval: cost, convergence, the probe used, the paper's protocol."""
    def both(column: str, fmt: str) -> str:
        return " vs ".join(format(scores.loc[scores["model"] == n, column].mean(), fmt) for n in (better, worse))

    if worse is None:
        n_train = scores.loc[scores["model"] == better, "n_train"].mean()
        return (f"reproduced: within ±{EQUIVALENCE_MARGIN} of the paper's figure (TOST), a best epoch on its own 800 "
                f"validation posts whose standard error {PAPER_SE:.3f} joins the interval; "
                f"{claim.metric.replace('_f1', ' F1')}; it trained on 3,200 posts, each run here on {n_train:,.0f}")
    if claim.id.startswith("4"):
        return (f"batches per epoch {both('batches_per_epoch', '.0f')} (paper: about 190 vs 100); "
                f"seconds per epoch {both('mean_epoch_seconds', '.1f')}")
    if claim.id == "7":
        kept = scores.loc[scores["model"] == worse]
        return (f"without them each run trained {int(kept['epochs_run'].mean())} epochs and kept the last; their "
                f"best validation epochs were {', '.join(map(str, kept['best_val_epoch'].astype(int)))}")
    probe = [n for r, n in ((claim.better, better), (claim.worse, worse)) if r == BETTER_PROBE]
    return f"the probe with the better validation score: {BASELINES[probe[0]]}" if probe else ""


def choose_model(paths: StudyPaths) -> str:
    """The variant with the highest mean VALIDATION weighted F1 over its runs (never a test fold)."""
    return str(load_runs(paths).groupby("variant", sort=False)["val_weighted_f1"].mean().idxmax())


def mean_probabilities(paths: StudyPaths, model: str, part: str) -> tuple[np.ndarray, np.ndarray]:
    """``(guids (N,), probabilities (N, 3))`` of a model on a part, mean over the runs that predicted each post,
    by guid."""
    mean = load_predictions(paths, model, part).groupby("guid")[[f"p_{c}" for c in LABELS]].mean().sort_index()
    return mean.index.to_numpy(), mean.to_numpy()


def write_claims(cfg: Profile) -> pd.DataFrame:
    """Write ``metrics/claims.csv`` (every run's scores), ``metrics/claims_table.csv`` (:func:`claims_table`) and
    ``claims.md``; return the claims table."""
    paths = cfg.paths
    io.write_csv(paths.metrics / "claims.csv", load_scores(paths).round(6))
    table = claims_table(cfg)
    io.write_csv(paths.metrics / "claims_table.csv", table.round(6))
    io.write_text(paths.results / "claims.md", claims_markdown(table))
    return table


def claims_markdown(table: pd.DataFrame, notes: bool = True) -> str:
    """The claims table as Markdown (with ``notes``, the notes too)."""
    interval = [("–" if pd.isna(d) else f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]")
                for d, lo, hi in zip(table["difference"], table["low"], table["high"])]
    p = [("–" if pd.isna(raw) else f"{raw:.3f} ({'–' if pd.isna(holm) else f'{holm:.3f}'})")
         for raw, holm in zip(table["p"], table["p_holm"])]
    shown = pd.DataFrame({"#": table["id"], "claim": table["claim"], "tested on": table["tested_on"],
                          "paper": table["paper"], "ours: mean ± std over runs (n)": table["ours"],
                          "difference [95% interval]": interval, "paper's effect": table["paper_effect"],
                          "p (Holm)": p, "verdict": table["verdict"], "note": table["note"]})
    return markdown_table(shown if notes else shown.drop(columns=["note", "tested on"]))
