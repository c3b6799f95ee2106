"""Posts as users bring them (issue 20): tables of posts, the paper's numeric labels, no posts to predict, and
the checks the runner makes before notebook 01 (msa_utils.data.sources, msa_utils.data.table)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from msa_utils.config.labels import LABEL_MAPS, resolve_label_map
from msa_utils.config.profiles import get_profile
from msa_utils.data import table
from msa_utils.data.data_report import DataReport
from msa_utils.data.folds import make_folds, run_parts
from msa_utils.data.mvsa import LOADED_COLUMNS
from msa_utils.data.posts import COLUMNS, build_posts, load_posts
from msa_utils.experiments import baselines
from msa_utils.data.sources import check_source, load_source, min_posts_per_class, source_guids, source_root
from msa_utils.runner.cli import main, parse_overrides
from msa_utils.runner.study import run_study

NUMERIC = Path(__file__).parent / "data" / "user_folders" / "paper_numeric_labels"
"""45 real posts tagged 0/1/2 (15 each) and 6 to predict (README.md there)."""


def _folder(tmp_path: Path, train: dict[int, str] | None = None, test: bool = True, name: str = "posts") -> Path:
    """A copy of :data:`NUMERIC` whose ``train.txt`` lists ``train`` (guid -> tag; default: its own, mapped to names)
    and whose ``test_without_label.txt`` is kept or left out."""
    folder = tmp_path / name
    shutil.copytree(NUMERIC, folder)
    if train is None:
        tags = pd.read_csv(NUMERIC / "train.txt", dtype=str)
        train = dict(zip(tags["guid"].astype(int), tags["tag"].map(LABEL_MAPS["paper"])))
    (folder / "train.txt").write_text("guid,tag\n" + "".join(f"{g},{t}\n" for g, t in train.items()))
    if not test:
        (folder / "test_without_label.txt").unlink()
    return folder


def _numeric_tags() -> dict[int, str]:
    tags = pd.read_csv(NUMERIC / "train.txt", dtype=str)
    return dict(zip(tags["guid"].astype(int), tags["tag"]))


def _as_table(folder: Path, path: Path, text: str = "text_file", label_column: str = "label") -> Path:
    """Write ``folder``'s posts as one table at ``path`` (suffix: CSV, TSV or Parquet): images and text files copied
    under ``media/`` beside it, texts as ``text`` cells (the folder's decoded texts) or ``text_file`` paths; labelled
    rows first, then the unlabelled ones with an empty label."""
    media = path.parent / "media"
    shutil.copytree(folder / "data", media)
    train = pd.read_csv(folder / "train.txt", dtype=str)
    test = pd.read_csv(folder / "test_without_label.txt", dtype=str) if (folder / "test_without_label.txt").exists() \
        else pd.DataFrame({"guid": [], "tag": []})
    rows = pd.concat([train, test.assign(tag="")], ignore_index=True)
    frame = pd.DataFrame({"ID": rows["guid"], "Image": "media/" + rows["guid"] + ".jpg", label_column: rows["tag"]})
    if text == "text_file":
        frame.insert(1, "Text_File", "media/" + rows["guid"] + ".txt")
    else:
        loaded = load_source(folder, DataReport()).set_index("guid")
        frame.insert(1, "Text", [loaded.loc[int(g), "text_raw"] for g in rows["guid"]])
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, sep="\t" if path.suffix == ".tsv" else ",", index=False)
    return path


def _same_posts(folder_frame: pd.DataFrame, table_frame: pd.DataFrame, text_cells: bool = False) -> None:
    """The table gives the folder's posts: every column equal, image paths under media/ instead of data/ (and, for
    text cells, the encoding of non-ASCII texts is the table file's)."""
    assert list(table_frame.columns) == LOADED_COLUMNS
    columns = [c for c in LOADED_COLUMNS if c not in ("image_file", "encoding")]
    pd.testing.assert_frame_equal(folder_frame[columns], table_frame[columns])
    assert (folder_frame["image_file"].str.replace("data/", "media/", regex=False) == table_frame["image_file"]).all()
    ascii_texts = folder_frame["encoding"] == "ascii"
    assert (folder_frame["encoding"][ascii_texts] == table_frame["encoding"][ascii_texts]).all()
    if not text_cells:
        assert (folder_frame["encoding"] == table_frame["encoding"]).all()


# ---- labels as the paper writes them ----

def test_label_map_setting_presets_json_and_refusals():
    assert get_profile("cpu", label_map="paper").data.label_map == "paper"
    assert resolve_label_map("paper") == {"0": "positive", "1": "negative", "2": "neutral"}
    assert parse_overrides(['label_map={"Pos": "positive"}']) == {"label_map": {"Pos": "positive"}}  # JSON
    assert parse_overrides(["label_map=paper"]) == {"label_map": "paper"}  # not JSON: the string
    assert resolve_label_map({" Pos ": "positive"}) == {"pos": "positive"}  # read as tags are: stripped, lower-cased
    assert get_profile("cpu").data.label_map is None
    refused = {"papers": "unknown label map 'papers'; the presets are ['paper']",
               '{"pos": "good"}': "maps to 'good', which is not a class name",
               "{}": "an empty label map maps nothing", "5": "must be a preset name",
               '{"x": 1}': "must be a preset name", '{"negative": "positive"}': "cannot be mapped",
               '{"null": "positive"}': "cannot be mapped", '{"A": "positive", "a": "negative"}': "read the same"}
    for value, message in refused.items():
        with pytest.raises(ValueError, match="profile field data.label_map: ") as error:
            get_profile("cpu", **parse_overrides([f"label_map={value}"]))
        assert message in str(error.value)


def test_the_papers_numbers_train_as_their_classes_with_the_map():
    report = DataReport()
    posts = load_source(NUMERIC, report, "paper")
    train = posts[posts["split"] == "train"]
    tags = _numeric_tags()
    assert len(train) == 45 and (posts["split"] == "test").sum() == 6
    assert train["tag"].tolist() == [LABEL_MAPS["paper"][tags[g]] for g in train["guid"]]
    assert train["label"].tolist() == [int(tags[g]) for g in train["guid"]]  # the paper's ids are the study's
    mapped = [e for e in report.entries if e.reason == "label_mapped"]
    assert sorted(e.guid for e in mapped) == sorted(tags) and "tag '0' read as 'positive'" in mapped[0].detail
    assert not report.guids(action="excluded")
    summary = check_source(get_profile("cpu", data_dir=str(NUMERIC), label_map="paper"))
    assert summary.counts == {"positive": 15, "negative": 15, "neutral": 15} and summary.to_predict == 6
    assert summary.minimum == 7 and not summary.warnings


def test_the_papers_numbers_without_the_map_stop_before_notebook_01(tmp_path, capsys):
    results = tmp_path / "results"
    assert main(["--set", f"data_dir={NUMERIC}", "--set", f"results_dir={results}"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("[msa-study] error: ") and str(NUMERIC / "train.txt") in error
    assert "'0' (15), '1' (15), '2' (15)" in error and "expected positive, negative, neutral" in error
    assert "--set label_map=paper" in error
    assert not (results / "notebooks").exists()  # refused before any notebook ran


def test_unknown_tags_are_named_with_their_counts(tmp_path):
    tags = {g: t for g, t in _numeric_tags().items()}
    tags.update(dict(zip(list(tags)[:3], ["happy", "Happy ", "sad"])))
    folder = _folder(tmp_path, {g: LABEL_MAPS["paper"].get(t, t) for g, t in tags.items()})
    with pytest.raises(ValueError) as error:
        check_source(get_profile("cpu", data_dir=str(folder)))
    message = str(error.value)
    assert "3 of 45 labelled posts have a tag that is no class name: 'sad' (1), 'happy' (2)" in message
    assert "label_map={\"sad\": \"positive\", \"happy\": \"positive\"}" in message  # a map to fill in
    with pytest.raises(ValueError, match=r"'sad' \(1\)"):  # a map that covers some tags names the others
        check_source(get_profile("cpu", data_dir=str(folder), label_map={"happy": "positive"}))
    summary = check_source(get_profile("cpu", data_dir=str(folder), label_map={"happy": "positive", "sad": "negative"}))
    assert sum(summary.counts.values()) == 45
    report = DataReport()  # without the runner, the post is excluded and reported
    posts = load_source(folder, report)
    assert len(posts[posts["split"] == "train"]) == 42 and len(report.guids(reason="unknown_label")) == 3


def test_a_map_reads_its_tags_and_the_class_names_still_read(tmp_path):
    guids = list(_numeric_tags())
    folder = _folder(tmp_path, {guids[0]: "pos", guids[1]: " Negative", guids[2]: "neutral"})
    report = DataReport()
    posts = load_source(folder, report, {"POS": "positive"})
    assert posts.loc[posts["split"] == "train", "tag"].tolist() == ["positive", "negative", "neutral"]
    assert report.guids(reason="label_mapped") == [guids[0]] and report.guids(reason="label_normalised") == [guids[1]]


# ---- a table of posts ----

@pytest.mark.parametrize("name, text", [("posts.csv", "text_file"), ("posts.tsv", "text"), ("posts.CSV", "text")])
def test_a_table_gives_the_posts_of_the_same_mvsa_folder(tmp_path, name, text):
    folder = _folder(tmp_path)
    (tmp_path / "table").mkdir()
    path = _as_table(folder, tmp_path / "table" / name, text)
    folder_report, table_report = DataReport(), DataReport()
    _same_posts(load_source(folder, folder_report), load_source(path, table_report), text_cells=text == "text")
    assert source_root(path) == path.parent and source_root(folder) == folder
    assert source_guids(path) == source_guids(folder)
    reasons = [e.reason for e in table_report.entries]  # the text files decoded alike; text cells are text already
    assert reasons == ([e.reason for e in folder_report.entries] if text == "text_file" else [])


def test_a_parquet_table_gives_the_same_posts(tmp_path):
    pytest.importorskip("pyarrow", reason="Parquet needs pyarrow, no dependency of the study (table.PARQUET_PACKAGE)")
    folder = _folder(tmp_path)
    (tmp_path / "table").mkdir()
    _same_posts(load_source(folder, DataReport()), load_source(_as_table(folder, tmp_path / "table" / "p.parquet"),
                                                               DataReport()))


def test_parquet_without_pyarrow_is_a_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "posts.parquet"
    path.write_bytes(b"PAR1")

    def no_engine(*args, **kwargs):
        raise ImportError("Unable to find a usable engine; tried using: 'pyarrow', 'fastparquet'.")
    monkeypatch.setattr(pd, "read_parquet", no_engine)
    with pytest.raises(ValueError, match=r"needs the package pyarrow, which is not installed .*: pip install "
                                         r"pyarrow==26.0.1 in the study's environment, or save the table as CSV"):
        load_source(path, DataReport())


def test_build_posts_on_a_table_equals_build_posts_on_the_folder(tmp_path):
    folder = _folder(tmp_path)
    (tmp_path / "table").mkdir()
    path = _as_table(folder, tmp_path / "table" / "posts.csv")
    tables = [build_posts(get_profile("smoke", data_dir=str(source), train_sample=None, test_sample=None,
                                      results_dir=str(tmp_path / "r"))) for source in (folder, path)]
    columns = [c for c in COLUMNS if c != "image_file"]
    pd.testing.assert_frame_equal(tables[0].posts[columns], tables[1].posts[columns])
    assert tables[1].posts["image_ok"].all()  # every image found under the table's folder and decoded


def test_table_columns_ids_labels_and_files_are_checked_and_reported(tmp_path):
    media = tmp_path / "media"
    shutil.copytree(NUMERIC / "data", media)
    guids = list(_numeric_tags())
    rows = [("ID", "Text", "Image", "Tag"),
            (str(guids[0]), "a fine day", f"media/{guids[0]}.jpg", "Positive"),  # a tag in any case
            ("0042", "padded", f"media/{guids[1]}.jpg", "positive"),  # not a guid: reported, left out
            ("12.5", "a float", f"media/{guids[1]}.jpg", "positive"),
            (str(guids[2]), "", f"media/{guids[2]}.jpg", "negative"),  # no text and no text file
            (str(guids[3]), "no image", "media/nowhere.png", "neutral"),
            (str(guids[4]), "to predict", f"media/{guids[4]}.jpg", ""),
            (str(guids[5]), "to predict too", f"media/{guids[5]}.jpg", "NULL"),
            (str(guids[6]), "too", "many", "fields", "here"),
            (str(guids[7]), "no image path", "", "negative"),
            (str(guids[0]), "the same post again", f"media/{guids[0]}.jpg", "negative")]  # conflicting copies
    path = tmp_path / "posts.csv"
    path.write_text("\n".join(",".join(row) for row in rows) + "\n", encoding="utf-8")
    report = DataReport()
    posts = load_source(path, report).set_index("guid")
    assert posts.loc[guids[2:4] + [guids[7]], "split"].eq("train").all()
    assert posts.loc[guids[4:6], "split"].eq("test").all() and posts.loc[guids[4:6], "label"].isna().all()
    assert not posts.loc[guids[2], "has_text"] and report.guids(reason="empty_text_file") == [guids[2]]
    assert not posts.loc[guids[3], "has_image"] and posts.loc[guids[3], "image_file"] == "media/nowhere.png"
    assert report.guids(reason="missing_image_file") == sorted([guids[3], guids[7]])
    assert report.guids(reason="duplicate_guid_conflicting_labels") == [guids[0]] and guids[0] not in posts.index
    details = {e.reason: e.detail for e in report.entries if e.guid is None}
    assert "posts.csv row 2: guid '0042'" in [e.detail for e in report.entries if e.reason == "bad_guid"][0]
    assert len([e for e in report.entries if e.reason == "bad_guid"]) == 2
    assert "posts.csv row 8 (line 9): 5 fields, the header has 4" in details["bad_label_line"]


@pytest.mark.parametrize("header, message", [
    ("guid,words,image,label", r"no column for text or text_file; found columns \['guid', 'words', 'image', 'label'\]"),
    ("post,text,picture,label", "no column for guid or id, image or image_file"),
    ("guid,id,text,image", r"columns \['guid', 'id'\] all give the guid"),
])
def test_a_table_without_a_required_column_is_a_clear_error(tmp_path, header, message):
    path = tmp_path / "posts.tsv"
    path.write_text(header.replace(",", "\t") + "\n1\ta\tb\tc\n")
    with pytest.raises(ValueError, match=message):
        load_source(path, DataReport())
    with pytest.raises(FileNotFoundError, match="table of posts not found"):
        load_source(tmp_path / "missing.csv", DataReport())


def test_a_table_without_a_label_column_is_all_to_predict(tmp_path):
    path = tmp_path / "new.csv"
    path.write_text("guid,text,image\n1,hello,1.jpg\n2,there,2.jpg\n")
    posts = load_source(path, DataReport())
    assert posts["split"].tolist() == ["test", "test"] and source_guids(path) == {"train": [], "test": [1, 2]}


# ---- no posts to predict ----

def test_without_a_test_file_the_check_passes_and_says_so(tmp_path):
    folder = _folder(tmp_path, test=False)
    summary = check_source(get_profile("cpu", data_dir=str(folder)))
    assert summary.to_predict is None and "no post to predict (no test_without_label.txt)" in summary.lines()[0]
    assert source_guids(folder)["test"] == []


@pytest.mark.slow
def test_numeric_labels_without_posts_to_predict_run_through_training(tmp_path, capfd):
    """The case folder with the paper's map and no test file: notebooks 01, 03 and 04 run (about 40 s), the 45 posts
    train as their classes and the recipe's prediction file holds only its header."""
    folder = tmp_path / "posts"
    shutil.copytree(NUMERIC, folder)
    (folder / "test_without_label.txt").unlink()
    results = tmp_path / "results"
    run_study("smoke", {"data_dir": str(folder), "label_map": "paper", "results_dir": str(results),
                        "cache_dir": str(tmp_path / "cache"), "train_sample": None, "max_epochs": 1},
              only=["01", "03", "04"])
    out = capfd.readouterr().out
    assert "45 labelled posts with a text and an image (positive 15, negative 15, neutral 15" in out
    assert "no post to predict (no test_without_label.txt)" in out
    posts = load_posts(get_profile("smoke", results_dir=str(results)).paths)
    tags = _numeric_tags()
    assert posts["label"].tolist() == [int(tags[g]) for g in posts["guid"]]
    assert (results / "predictions" / "test_predictions_paper_recipe.txt").read_text() == "guid,tag\n"
    assert "WARNING msa_utils.data.posts: no post to predict" in out


# ---- minimum sizes ----

def test_min_posts_per_class_is_the_papers_split_arithmetic():
    assert min_posts_per_class(5, 0.2) == 7  # max(K, K / ((K - 1) f)) = max(5, 6.25)
    assert min_posts_per_class(2, 0.2) == 10 and min_posts_per_class(10, 0.2) == 10
    assert min_posts_per_class(3, 0.25) == 6 and min_posts_per_class(5, 0.5) == 5
    assert min_posts_per_class(2, 0.5) == 8  # 4 would pass the splits, but leave 1 training post a class
    for folds, fraction in ((2, 0.2), (3, 0.25), (5, 0.2), (10, 0.1)):
        n = min_posts_per_class(folds, fraction)
        assert n == max(folds, int(np.ceil(folds / ((folds - 1) * fraction))))


@pytest.mark.parametrize("folds, fraction", [(5, 0.2), (2, 0.2), (3, 0.25)])
def test_at_the_minimum_every_test_fold_and_validation_part_holds_the_class(folds, fraction):
    n = min_posts_per_class(folds, fraction)
    labels = np.repeat([0, 1, 2], [40, 40, n])
    guids = np.arange(len(labels))
    series = pd.Series(labels, index=guids)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for seed in range(8):
            table = make_folds(guids, labels, guids, folds, 1, seed)
            for fold in range(folds):
                parts = run_parts(table, series, pd.Series(guids, index=guids), 0, fold, fraction, seed + fold)
                assert all((series.loc[parts[p]] == 2).any() for p in ("test", "val")), (seed, fold)


@pytest.mark.parametrize("folds, fraction", [(5, 0.2), (2, 0.5), (3, 0.25)])
def test_at_the_minimum_the_baselines_can_choose_their_C(folds, fraction):
    """Every class at the minimum: each run's probe fits (its C chosen by a grouped inner cross-validation),
    where one post fewer a class once failed in notebook 04 ("choosing C needs 2 cross-validation folds")."""
    n = min_posts_per_class(folds, fraction)
    labels = np.repeat([0, 1, 2], n)
    guids = np.arange(len(labels))
    series, groups = pd.Series(labels, index=guids), pd.Series(guids, index=guids)
    features = np.random.default_rng(0).normal(size=(len(labels), 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(4):
            table = make_folds(guids, labels, guids, folds, 1, seed)
            for fold in range(folds):
                train = run_parts(table, series, groups, 0, fold, fraction, seed)["train"]
                baselines.fit_linear_probe(features[train], labels[train], train, balanced=True, seed=seed)


@pytest.mark.parametrize("per_class, found, remedy", [
    ((15, 7, 3), "positive 15, negative 7, neutral 3", "--set folds=3"),  # the 25-post folder
    ((6, 4, 2), "positive 6, negative 4, neutral 2", "--set folds=2 --set val_fraction=0.333"),  # its 12-post one
    ((5, 5, 5), "positive 5, negative 5, neutral 5", "--set val_fraction=0.25"),
])
def test_too_small_folders_are_refused_before_notebook_01_with_the_numbers(tmp_path, capsys, per_class, found,
                                                                           remedy):
    tags = _numeric_tags()
    chosen = {g: LABEL_MAPS["paper"][t] for c, n in enumerate(per_class)
              for g, t in [(g, t) for g, t in tags.items() if t == str(c)][:n]}
    folder = _folder(tmp_path, chosen)
    results = tmp_path / "results"
    assert main(["--set", f"data_dir={folder}", "--set", f"results_dir={results}"]) == 2
    error = capsys.readouterr().err
    assert f"too few labelled posts per class to cross-validate: {found}" in error
    assert "With folds=5 and val_fraction=0.2, a class needs at least 5 posts" in error and "and 7 for" in error
    assert remedy in error and not (results / "notebooks").exists()
    settings = [s.removeprefix("--set ") for s in remedy.split(" --set ")]
    check_source(get_profile("cpu", data_dir=str(folder), **parse_overrides(settings)))  # the settings it names pass


def test_the_smoke_sample_passes_with_a_warning_and_the_shipped_data_without():
    smoke = check_source(get_profile("smoke"))
    assert smoke.counts == {"positive": 36, "negative": 18, "neutral": 6} and smoke.to_predict == 12
    assert smoke.warnings == ["class neutral has 6 labelled posts, fewer than 10: some validation parts (20% of the "
                              "other folds) will hold none of it (notebook 03 says which)"]
    full = check_source(get_profile("cpu"))
    assert sum(full.counts.values()) == 4000 and full.to_predict == 511 and not full.warnings


def test_missing_sources_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        check_source(get_profile("cpu", data_dir=str(tmp_path / "nowhere")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="train.txt not found: the labelled posts"):
        check_source(get_profile("cpu", data_dir=str(tmp_path / "empty")))
    assert table.is_table("x.TSV") and table.is_table("x.tab") and not table.is_table("x.txt")
