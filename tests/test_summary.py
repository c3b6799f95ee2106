"""Results tables and REPORT.md are built from the metric files, with the paper's numbers beside."""

import pandas as pd
import pytest

from msa_utils import io
from msa_utils.profiles import get_profile
from msa_utils.summary import PAPER, ablation_table, readme_results, results_table, split_counts, write_report


def scores(acc, f1):
    return {"accuracy": acc, "weighted_f1": f1, "macro_f1": f1 - 0.1,
            "f1_positive": 0.8, "f1_negative": 0.6, "f1_neutral": 0.3}


@pytest.fixture
def metrics_dir(tmp_path):
    folder = tmp_path / "metrics"
    for name, (acc, f1) in {"full": (0.71, 0.70), "no_image": (0.66, 0.65), "no_text": (0.62, 0.61)}.items():
        io.write_json(folder / f"{name}.json", {"val": scores(acc, f1), "best_epoch": 3, "epochs_run": 3})
    io.write_json(folder / "baselines.json", {"linear_probe": scores(0.72, 0.70), "majority": scores(0.6, 0.45)})
    io.write_json(folder / "backbone.json", {"name": "compact", "description": "compact: two wheels", "fingerprint": "x"})
    pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.0, 0.8, 0.7], "val_loss": [0.9, 0.8, 0.85],
                  "val_accuracy": [0.6, 0.7, 0.71], "val_weighted_f1": [0.6, 0.69, 0.67351]}).to_csv(folder / "full_history.csv", index=False)
    return folder


def test_tables_put_the_papers_numbers_beside_ours(metrics_dir):
    table = results_table(metrics_dir)
    assert list(table.index) == ["full", "no_image", "no_text", "linear_probe", "majority"]
    assert table.loc["no_image", "accuracy"] == 0.66 and table.loc["no_image", "paper_accuracy"] == PAPER["no_image"]["accuracy"]
    assert pd.isna(table.loc["linear_probe", "paper_accuracy"])
    ablation = ablation_table(metrics_dir)
    assert ablation["paper_weighted_f1"].tolist() == [0.73, 0.62, 0.70]


def test_missing_variant_names_the_notebook_to_run(metrics_dir):
    (metrics_dir / "no_text.json").unlink()
    with pytest.raises(FileNotFoundError, match="05_ablation"):
        results_table(metrics_dir)


def test_report_has_the_tables(metrics_dir, tmp_path):
    cfg = get_profile("smoke", results_dir=str(tmp_path))
    counts = pd.DataFrame({"train": [3, 2, 1, 6], "val": [1, 1, 1, 3], "test": [0, 0, 0, 4]},
                          index=["positive", "negative", "neutral", "total"])
    summary = pd.DataFrame({"stage": ["load"], "action": ["repaired"], "reason": ["decoded_gb18030"],
                            "count": [2], "example_guids": ["2, 71"]})
    text = write_report(cfg, summary, counts, pd.Series({"positive": 3, "neutral": 1})).read_text()
    assert "| image + text | 0.710 | 0.700 | 0.600 | 0.730 | 0.730 |" in text
    assert "decoded_gb18030" in text and "positive 3, neutral 1" in text
    assert "Backbone: compact: two wheels." in text  # as notebook 04 described the backbone it loaded
    assert "| 3 | 0.700 | 0.850 | 0.710 | 0.674 |" in text  # rounded once: 0.67351 -> 0.674, not 0.673
    assert "With 3 validation posts" in text and "(0.710) is ±0.262" in text  # sqrt(.71 * .29 / 3)


def test_readme_block_gives_each_claim_the_direction_our_run_shows(metrics_dir, tmp_path):
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "val_guids.txt").write_text("".join(f"{g}\n" for g in range(100)))
    (tmp_path / "splits" / "train_guids.txt").write_text("".join(f"{g}\n" for g in range(100, 500)))
    text = readme_results(tmp_path)
    assert "| image + text | 0.710 | 0.700 | 0.600 | 0.730 | 0.730 |" in text
    assert "| image + text beats text alone | +0.100 | +0.050 | yes |" in text  # full 0.71 vs no_image 0.66
    assert "| the image carries more than the text | +0.070 | -0.040 | no |" in text  # no_text 0.62 vs no_image 0.66
    assert "| +0.000 weighted F1 |" in text  # full ties the probe (0.70 vs 0.70): no "-0.000"
    assert "One seed (100 validation posts" in text and "best epoch was 3 of 3" in text


def test_split_counts_per_class_with_the_usable_test_posts():
    posts = pd.DataFrame({"guid": [1, 2, 3, 4, 5, 6], "label": pd.array([0, 1, 2, 0, None, None], dtype="Int64"),
                          "split": ["train"] * 4 + ["test"] * 2, "has_text": [True] * 6,
                          "has_image": [True] * 6, "image_ok": [True] * 5 + [False]})
    table = split_counts(posts, {"train": [1, 2, 3], "val": [4]})
    assert table.loc["total"].tolist() == [3, 1, 1]  # one of the two test posts is unusable
    assert table.loc["positive"].tolist() == [1, 1, 0]
