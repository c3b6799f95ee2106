"""The study's models and baselines, trained on every cross-validation run ``(repeat, fold)`` and scored on its parts;
they write ``metrics/runs/<variant>.csv`` (per run), ``<variant>_history.csv`` (per run and epoch),
``predictions/runs/<variant>.csv``, ``metrics/baselines.csv``, ``predictions/runs/baselines.csv`` and
``checkpoints/<variant>/r<repeat>f<fold>/`` (the kept epoch) with ``r<repeat>f<fold>_training_state.safetensors``."""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from msa_utils import io
from msa_utils.config.enums import Modality
from msa_utils.config.labels import LABELS
from msa_utils.config.profiles import Profile
from msa_utils.config.runtime import log_warnings, progress_bar, set_seed
from msa_utils.experiments import baselines, dataset
from msa_utils.experiments.dataset import LABELLED_PARTS, PARTS, RunData, StudyData
from msa_utils.io.hashing import Digest
from msa_utils.model import factory, text_finetune
from msa_utils.train.loop import TRAINING_VERSION, fit, predict_logits
from msa_utils.train.metrics import classification_metrics


@dataclass(frozen=True)
class Variant:
    """The profile's recipe with ``settings`` (profile fields) changed, without ``drop`` if set (an ablation)."""

    name: str
    title: str
    drop: Modality | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)

    def profile(self, cfg: Profile, seed: int) -> Profile:
        return cfg.replace(seed=seed, **self.settings)


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("full", "image + text (the paper's recipe)"),
    Variant("no_image", "without image", drop=Modality.IMAGE),
    Variant("no_text", "without text", drop=Modality.TEXT),
    Variant("weighted_loss", "class-weighted loss, no re-sampling",
            settings={"resample": False, "class_weighted_loss": True}),
    Variant("plain_loss", "plain loss, no re-sampling", settings={"resample": False}),
    Variant("linear_head", "linear head on the CLS token", settings={"head": "linear"}),
    Variant("token_attention_head", "softmax-weighted sum of all output tokens", settings={"head": "token_attention"}),
    Variant("modality_sum_head", "weighted text and image sums + CLS", settings={"head": "modality_sum"}),
    Variant("attention_head", "multi-head attention in place of the MLP", settings={"head": "attention"}),
    Variant("frozen_fusion", "multimodal encoder frozen at initialisation", settings={"train_fusion": False}),
    Variant("text_top_layer", "top text-encoder layer fine-tuned", settings={"text_top_layers": 1}),
    Variant("no_regularisation", "no dropout, no early stopping",
            settings={"dropout": 0.0, "fusion_dropout": 0.0, "early_stopping": False}),
    Variant("same_size_resampling", "re-sampling, as many draws as posts", settings={"resample_to": "posts"}),
    Variant("no_image_zero_states", "without image: zero image states", drop=Modality.IMAGE,
            settings={"masking": "states"}),
    Variant("no_text_zero_states", "without text: zero text states", drop=Modality.TEXT,
            settings={"masking": "states"}),
    Variant("no_text_full_grid", "without text, all image tokens", drop=Modality.TEXT, settings={"image_grid": None}),
)}
"""Notebook 04 trains ``full``, notebook 05 the ablations, notebook 06 the rest its claims test."""

BASELINES = {
    "majority": "majority class",
    "tfidf_text": "TF-IDF text + logistic regression",
    "probe_balanced": "linear probe, balanced classes",
    "probe_unbalanced": "linear probe, unbalanced",
}

PREDICTED_PARTS = ("val", "test", "unlabelled")
"""The parts whose predictions are written (no table reads the training part's)."""


@dataclass
class VariantRuns:
    variant: Variant
    runs: pd.DataFrame
    history: pd.DataFrame
    predictions: pd.DataFrame


def run_variants(data: StudyData, names: Sequence[str], progress: bool = True) -> dict[str, VariantRuns]:
    """Train each variant of ``names`` (KeyError if unknown) on every run of ``data.runs()`` with the run's seed, each
    early-stopped on its val part and resuming the state of its :func:`run_key`; score, predict
    :data:`PREDICTED_PARTS`, write. ``cfg.parallel_runs`` > 1 shares the runs among as many spawned processes (at most
    torch's threads; a script starts them under ``if __name__ == "__main__":``), each loading the data again
    (RuntimeError if its posts, labels or folds differ from ``data``'s) and training on an equal share of the threads:
    a run learns what it would alone on as many."""
    cfg, variants, threads = data.cfg, [VARIANTS[name] for name in names], torch.get_num_threads()
    jobs = [(v.name, repeat, fold) for v in variants for repeat, fold in data.runs()]
    if (workers := min(cfg.parallel_runs, len(jobs), threads)) == 1:
        done = [_train_run(data, *job, progress) for job in jobs]
    else:
        for v in variants:  # caches the text-below states here, not in two workers at once
            _run_data(data.run(0, 0), v.profile(cfg, cfg.seed))
        task = functools.partial(_train_in_worker, cfg, threads // workers, _parts(data))
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            try:
                done = list(progress_bar(pool.map(task, *zip(*jobs)), show=progress, total=len(jobs),
                                         desc=f"{len(jobs)} runs, {workers} at once"))
            except BaseException as error:  # an interrupted kernel, a failed run: stop the others now (states are kept)
                for process in pool._processes.values():  # no public API for this
                    process.terminate()
                if isinstance(error, BrokenProcessPool):  # e.g. a script without `if __name__ == "__main__":`
                    raise RuntimeError(f"a worker process died ({error}); see docs/running.md#several-runs-at-once "
                                       "(a script must start them under `if __name__ == '__main__':`)") from error
                raise
    out = {}
    for v in variants:  # each variant's runs in seed order
        rows, histories, tables = zip(*(run for job, run in zip(jobs, done) if job[0] == v.name))
        out[v.name] = VariantRuns(v, pd.DataFrame(rows), pd.concat(histories, ignore_index=True),
                                  pd.concat([table for part in tables for table in part], ignore_index=True))
        io.write_csv(cfg.paths.metrics / "runs" / f"{v.name}.csv", out[v.name].runs.round(6))
        io.write_csv(cfg.paths.metrics / "runs" / f"{v.name}_history.csv", out[v.name].history.round(6))
        io.write_csv(cfg.paths.predictions / "runs" / f"{v.name}.csv", out[v.name].predictions)
    return out


def _parts(data: StudyData) -> list[np.ndarray]:
    """Every post's guid, the labels, the folds: what a worker's data must match."""
    return [data.features.guids.numpy(), data.unlabelled, data.labels.index.to_numpy(), data.labels.to_numpy(),
            data.folds.to_numpy()]


_WORKER: dict[str, StudyData] = {}  # a worker process's data, loaded by its first run


def _train_in_worker(cfg: Profile, threads: int, parts: list[np.ndarray], name: str, repeat: int, fold: int):
    """:func:`_train_run` in a worker process of :func:`run_variants`, on ``threads`` torch threads."""
    if "data" not in _WORKER:
        torch.set_num_threads(threads)
        log_warnings()  # marked on the notebook's stderr, as msa-study finds them
        if not all(map(np.array_equal, _parts(data := dataset.prepare(cfg)), parts)):
            raise RuntimeError("a worker process loaded other posts, labels or folds than the notebook's data: "
                               "train in the notebook's process (parallel_runs=1)")
        _WORKER["data"] = data
    return _train_run(_WORKER["data"], name, repeat, fold, progress=False)


def _train_run(data: StudyData, name: str, repeat: int, fold: int, progress: bool) -> tuple[dict, pd.DataFrame, list]:
    """Run ``(repeat, fold)`` of variant ``name``: its ``metrics/runs`` row, its history and its prediction tables."""
    variant, paths, run = VARIANTS[name], data.cfg.paths, f"r{repeat}f{fold}"
    run_cfg, predictions = variant.profile(data.cfg, data.seed(repeat, fold)), []
    base = data.run(repeat, fold, run_cfg)
    run_data, top_layers = _run_data(base, run_cfg), run_cfg.model.text_top_layers
    nulls = base.nulls if run_cfg.model.masking == "inputs" else base.nulls.zero_states()
    set_seed(base.seed)
    classifier = factory.build_classifier(base.backbone, run_cfg)
    if top_layers:
        classifier = text_finetune.TextTopClassifier(text_finetune.text_top(base.backbone, top_layers), classifier)
    checkpoint = paths.checkpoints / name / run
    result = fit(classifier, run_data.features["train"], run_data.labels["train"], run_data.features["val"],
                 run_data.labels["val"], run_cfg.train, seed=base.seed, device=run_cfg.device, drop=variant.drop,
                 nulls=nulls, on_best=lambda m, epoch: m.save_pretrained(checkpoint), progress=progress,
                 state_path=paths.checkpoints / name / f"{run}_training_state.safetensors",
                 state_key=run_key(run_data, name, run_cfg))
    classifier.save_pretrained(checkpoint)  # the kept epoch's weights, also when a finished run was reused
    history, train = result.history, run_cfg.train
    row = {"variant": name, "repeat": repeat, "fold": fold, "seed": base.seed, "best_epoch": result.best_epoch,
           "best_val_epoch": int(history.loc[history["val_weighted_f1"].idxmax(), "epoch"]),
           "epochs_run": len(history), "stopped_early": result.stopped_early,
           "batches_per_epoch": result.batches_per_epoch,
           **{f"n_{part}": len(run_data.labels[part]) for part in LABELLED_PARTS},
           "mean_epoch_seconds": round(float(history["seconds"].mean()), 2),
           "trainable_parameters": sum(p.numel() for p in classifier.parameters() if p.requires_grad)}
    for part in PREDICTED_PARTS:
        logits = predict_logits(classifier, run_data.features[part], drop=variant.drop, nulls=nulls,
                                device=run_cfg.device, precision=train.train_precision)
        row.update(_score(run_data, name, part, torch.softmax(logits, dim=1).numpy(), predictions))
    history = history.assign(repeat=repeat, fold=fold, seed=base.seed)[["repeat", "fold", "seed", *history.columns]]
    return row, history, predictions


def _run_data(data: RunData, run_cfg: Profile) -> RunData:
    """``data``, with the cached text states below the top layers that ``run_cfg`` fine-tunes, if any."""
    if not (top_layers := run_cfg.model.text_top_layers):
        return data
    return dataclasses.replace(data, features={part: text_finetune.text_below_features(
        data.backbone, data.features[part], _texts(data, part), top_layers, run_cfg.cache_dir,
        dtype=run_cfg.features.cache_dtype, batch_size=run_cfg.features.encode_batch_size) for part in PARTS})


def run_baselines(data: StudyData) -> pd.DataFrame:
    """Fit the :data:`BASELINES` on every run's train part (``C`` by a cross-validation grouped by content), score and
    predict, write their files; return ``metrics/baselines.csv`` (per baseline and run: ``val_*``, ``test_*``, ``C``)."""
    rows, predictions = [], []
    for repeat, fold in data.runs():
        run = data.run(repeat, fold)
        y, groups = run.labels["train"], data.posts.set_index("guid").loc[run.features["train"].guids.numpy(),
                                                                           "content_group"].to_numpy()
        pooled = {part: baselines.pooled_feature_set(run.features[part]) for part in PARTS}
        texts = {part: _texts(run, part) for part in PARTS}
        fitted = {
            "majority": (baselines.fit_majority(y), pooled),
            "tfidf_text": (baselines.fit_tfidf_probe(texts["train"], y, groups, seed=run.seed), texts),
            "probe_balanced": (baselines.fit_linear_probe(pooled["train"], y, groups, balanced=True, seed=run.seed),
                               pooled),
            "probe_unbalanced": (baselines.fit_linear_probe(pooled["train"], y, groups, balanced=False, seed=run.seed),
                                 pooled),
        }
        for name, (estimator, inputs) in fitted.items():
            row = {"baseline": name, "title": BASELINES[name], "repeat": repeat, "fold": fold, "seed": run.seed}
            for part in PREDICTED_PARTS:
                # every class a column, 0 for one the estimator never saw in training
                probabilities = np.zeros((len(inputs[part]), len(LABELS)))
                if len(inputs[part]):  # no post to predict: nothing to ask (scikit-learn refuses 0 rows)
                    probabilities[:, estimator.classes_.astype(int)] = estimator.predict_proba(inputs[part])
                row.update(_score(run, name, part, probabilities, predictions))
            row["C"] = float(np.ravel(estimator[-1].C_)[0]) if hasattr(estimator, "steps") else float("nan")
            rows.append(row)
    table = pd.DataFrame(rows)
    io.write_csv(data.cfg.paths.metrics / "baselines.csv", table.round(6))
    io.write_csv(data.cfg.paths.predictions / "runs" / "baselines.csv", pd.concat(predictions, ignore_index=True))
    return table


def run_key(data: RunData, name: str, cfg: Profile) -> str:
    """SHA-256 (hex) of a training run, to resume it: :data:`~msa_utils.train.loop.TRAINING_VERSION` (not
    the source), the variant, ``cfg.run_key_settings()`` and every byte of the train and val data."""
    digest = Digest().add("training_version", TRAINING_VERSION).add("variant", name)
    digest.add("settings", cfg.run_key_settings())
    for part in ("train", "val"):
        features = data.features[part]
        for tensor_name, column in features.tensors().items():  # streamed: the digest of the whole tensor
            chunks = (column[start:start + 1024] for start in range(0, len(features), 1024))
            digest.add_tensor_chunks(f"{part}.{tensor_name}", column.dtype, column.shape, chunks)
        digest.add(f"{part}.labels", np.asarray(data.labels[part]))
    return digest.hexdigest()


def _texts(data: RunData, part: str) -> list[str]:
    """``posts.text`` of ``part``, in its feature order."""
    by_guid = data.posts.set_index("guid")["text"].fillna("")
    return by_guid.loc[data.features[part].guids.numpy()].astype(str).tolist()


def _score(data: RunData, model: str, part: str, probabilities: np.ndarray,
           predictions: list[pd.DataFrame]) -> dict[str, float]:
    """Append the rows (``model, repeat, fold, seed, part, guid, gold`` (empty if unlabelled), ``pred, p_<class>``) of
    ``probabilities`` (N, 3) to ``predictions``; return ``{part_<metric>: value}`` for a labelled part."""
    pred = probabilities.argmax(1)
    gold = [LABELS[i] for i in data.labels[part]] if part in data.labels else [""] * len(pred)
    predictions.append(pd.DataFrame({
        "model": model, "repeat": data.repeat, "fold": data.fold, "seed": data.seed, "part": part,
        "guid": data.features[part].guids.numpy(), "gold": gold, "pred": [LABELS[i] for i in pred],
        **{f"p_{c}": np.round(probabilities[:, i], 5) for i, c in enumerate(LABELS)},
    }))
    scores = classification_metrics(data.labels[part], pred) if part in LABELLED_PARTS else {}
    return {f"{part}_{metric}": value for metric, value in scores.items()}
