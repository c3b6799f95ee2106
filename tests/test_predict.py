"""msa-predict: new posts classified by the model the study chose, with the study's own numbers.

A smoke study (two variants, two folds) is trained on the user folder ``png_webp_images`` (real MVSA posts, three
of them PNG / WebP images). Its six unlabelled posts are then classified again as new posts, from the folder and
from the same posts as a CSV, TSV and Parquet table: the probabilities must equal those notebook 06's path
(the mean of the fold models' saved predictions, ``claims.mean_probabilities``) gives for them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from msa_utils.config.labels import LABELS
from msa_utils.config.profiles import get_profile
from msa_utils.data.folds import make_folds, save_folds
from msa_utils.data.posts import PostTable, build_posts, save_posts, usable
from msa_utils.experiments import claims, dataset, predict, variants
from msa_utils.experiments.inference import (PREDICTION_COLUMNS, ModelMissing, classify_posts, load_trained_model,
                                             study_profile)
from msa_utils.runner import predict_cli

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")]

CASE = Path(__file__).parent / "data" / "user_folders" / "png_webp_images"
P = [f"p_{c}" for c in LABELS]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A smoke study of the case folder: posts, folds, variants ``full`` and ``no_text``, the chosen model."""
    root = tmp_path_factory.mktemp("predict")
    cfg = get_profile("smoke", data_dir=str(CASE), results_dir=str(root / "results"), cache_dir=str(root / "cache"),
                      train_sample=None, test_sample=None)
    built = build_posts(cfg)
    save_posts(PostTable(built.posts, built.report), cfg.paths)
    labelled = built.posts[(built.posts["split"] == "train") & usable(built.posts)]
    save_folds(make_folds(labelled["guid"].to_numpy(), labelled["label"].to_numpy(int),
                          labelled["content_group"].to_numpy(), cfg.data.folds), cfg.paths.splits)
    data = dataset.prepare(cfg)
    variants.run_variants(data, ["full", "no_text"], progress=False)
    predict.write_selected_predictions(data)
    return cfg


def _choose(cfg, name: str) -> None:
    """Make ``name`` the study's chosen model (as if notebook 06 had chosen it)."""
    path = cfg.paths.metrics / predict.SELECTION_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), "model": name}))


def _table(folder: Path, out: Path, kind: str) -> Path:
    """The folder's posts as one table (ids, text files, image paths relative to the table, labels)."""
    rows = []
    for name, split in (("train.txt", "train"), ("test_without_label.txt", "test")):
        for guid, tag in pd.read_csv(folder / name).itertuples(index=False):
            image = next(p for p in (folder / "data").iterdir() if p.stem == str(guid) and p.suffix != ".txt")
            rows.append({"id": guid, "text_file": f"posts/data/{guid}.txt", "image": f"posts/data/{image.name}",
                         "label": tag if split == "train" else ""})
    shutil.copytree(folder, out / "posts")
    frame = pd.DataFrame(rows)
    path = out / f"posts.{kind}"
    if kind == "parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, sep="\t" if kind == "tsv" else ",", index=False)
    return path


@pytest.mark.parametrize("name", ["full", "no_text"])
def test_new_posts_get_the_study_s_own_probabilities(study, tmp_path, name):
    _choose(study, name)
    model = load_trained_model(study)
    assert model.name == name and len(model.classifiers) == study.data.folds
    result = classify_posts(model, CASE, tmp_path / "out", unlabelled_only=True)
    guids, expected = claims.mean_probabilities(study.paths, name, "unlabelled")
    got = result.predictions.set_index("guid").loc[guids]
    assert list(result.predictions.columns) == PREDICTION_COLUMNS
    assert len(guids) == 6 and sorted(result.predictions["guid"]) == sorted(guids)
    # the study rounds each run's probabilities to 5 decimals before averaging; we average, then round
    np.testing.assert_allclose(got[P].to_numpy(), expected, atol=2e-5)
    assert (got["tag"].to_numpy() == np.array(LABELS)[expected.argmax(1)]).all()


@pytest.mark.parametrize("kind", ["csv", "tsv", "parquet"])
def test_a_table_of_the_same_posts_gives_the_same_numbers(study, tmp_path, kind):
    if kind == "parquet":
        pytest.importorskip("pyarrow", reason="Parquet tables need pyarrow (not a dependency: docs/running.md)")
    model = load_trained_model(study)
    folder = classify_posts(model, CASE, tmp_path / "folder").predictions.set_index("guid")
    table = classify_posts(model, _table(CASE, tmp_path, kind), tmp_path / "table").predictions.set_index("guid")
    assert sorted(table.index) == sorted(folder.index) and len(folder) == 51
    np.testing.assert_allclose(table.loc[folder.index, P].to_numpy(), folder[P].to_numpy(), atol=1e-6)


def test_posts_are_classified_chunk_by_chunk_to_the_same_numbers(study, tmp_path):
    model = load_trained_model(study)
    whole = classify_posts(model, CASE, tmp_path / "whole").predictions
    pieces = classify_posts(model, CASE, tmp_path / "pieces", chunk=4).predictions
    assert whole["guid"].tolist() == pieces["guid"].tolist()
    np.testing.assert_allclose(pieces[P].to_numpy(), whole[P].to_numpy(), atol=1e-5)


def test_a_post_no_model_can_read_is_listed_with_its_reason(study, tmp_path):
    folder = tmp_path / "posts"
    shutil.copytree(CASE, folder)
    guids = pd.read_csv(CASE / "test_without_label.txt")["guid"].tolist()
    next(p for p in (folder / "data").glob(f"{guids[0]}.*") if p.suffix != ".txt").unlink()  # its image
    (folder / "data" / f"{guids[1]}.txt").write_bytes(b"great \xff\xfe\x80\x81 day \xc3")  # no encoding reads it
    result = classify_posts(load_trained_model(study), folder, tmp_path / "out", unlabelled_only=True)
    table = result.predictions.set_index("guid")
    assert table.loc[guids[0], "tag"] == table.loc[guids[1], "tag"] == "null"
    assert table.loc[guids[:2], P].isna().all().all() and table.loc[guids[2:], P].notna().all().all()
    unclassified = pd.read_csv(result.files["unclassified"]).set_index("guid")["reason"]
    assert set(unclassified.index) == set(guids[:2])
    assert "missing_image_file" in unclassified[guids[0]] and "text" in unclassified[guids[1]]
    assert result.files["data_report"].is_file()


def test_a_folder_of_posts_to_classify_only_needs_no_train_file(study, tmp_path):
    folder = tmp_path / "posts"
    shutil.copytree(CASE, folder)
    (folder / "train.txt").unlink()
    table = classify_posts(load_trained_model(study), folder, tmp_path / "out").predictions
    assert table["guid"].tolist() == pd.read_csv(CASE / "test_without_label.txt")["guid"].tolist()
    assert (table["tag"] != "null").all()


def test_the_command_writes_its_files_and_names_what_is_missing(study, tmp_path, capsys):
    code = predict_cli.main([str(CASE), "--results", str(study.results_dir), "--out", str(tmp_path / "out"),
                             "--profile", "smoke"])
    assert code == 0, capsys.readouterr().err
    table = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert list(table.columns) == PREDICTION_COLUMNS and len(table) == 51
    assert "51 of 51 posts classified" in capsys.readouterr().out

    assert predict_cli.main([str(CASE), "--results", str(tmp_path / "empty"), "--profile", "smoke"]) == 3
    err = capsys.readouterr().err
    assert "msa-study --profile smoke" in err and "min" in err


def test_tags_are_not_read_so_no_post_is_lost_for_its_tag(study, tmp_path, capsys):
    """The paper's numeric tags, without the map the study would need: every post is still classified; a row
    without a usable id is counted on the console and named in the report."""
    numeric = CASE.parent / "paper_numeric_labels"
    table = classify_posts(load_trained_model(study), numeric, tmp_path / "folder").predictions
    assert len(table) == 51 and (table["tag"] != "null").all()
    rows = pd.DataFrame({"id": ["8", "0042", "abc", "1576"], "text": ["so happy", "x", "y", "sad day"],
                         "image": ["data/8.jpg"] * 4, "label": ["pos", "", "", "0"]})
    rows.to_csv(numeric_copy := tmp_path / "posts.csv", index=False)
    shutil.copytree(numeric / "data", tmp_path / "data")
    assert predict_cli.main([str(numeric_copy), "--results", str(study.results_dir), "--out", str(tmp_path / "o"),
                             "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "2 of 2 posts classified" in out and "2 lines or rows without a usable id left out" in out
    assert pd.read_csv(tmp_path / "o" / "data_report.csv")["reason"].eq("bad_guid").sum() == 2


def test_no_post_to_classify_is_an_error_not_an_empty_file(study, tmp_path, capsys):
    (tmp_path / "posts.csv").write_text("id,text,image\nabc,hello,x.jpg\n")
    assert predict_cli.main([str(tmp_path / "posts.csv"), "--results", str(study.results_dir), "--profile",
                             "smoke", "--out", str(tmp_path / "out")]) == 2
    assert "no post to classify" in capsys.readouterr().err and not (tmp_path / "out" / "predictions.csv").exists()
    assert predict_cli.main([str(tmp_path / "nowhere"), "--results", str(study.results_dir)]) == 2
    assert "not found" in capsys.readouterr().err


def test_the_recorded_profile_is_the_default(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "run_times.json").write_text(json.dumps({"profile": "smoke", "overrides": {"lr": 0.01}}))
    cfg = study_profile(tmp_path)
    assert (cfg.name, cfg.train.lr, Path(cfg.results_dir)) == ("smoke", 0.01, tmp_path.resolve())
    assert study_profile(tmp_path, "smoke").train.lr == 0.01  # the recorded profile keeps its settings
    assert study_profile(tmp_path, "cpu").train.lr == get_profile("cpu").train.lr
    assert study_profile(tmp_path / "none").name == "cpu"
    with pytest.raises(ModelMissing, match=f"results folder {tmp_path / 'none'} not found"):
        load_trained_model(study_profile(tmp_path / "none"))
    with pytest.raises(ModelMissing, match=f"msa-study --profile smoke --set lr=0.01 --set results_dir={tmp_path}"):
        load_trained_model(cfg)
