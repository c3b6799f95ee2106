"""Results tables and REPORT.md are built from the metric files, with the paper's numbers beside."""

import pandas as pd
import pytest

from msa_utils import io
from msa_utils.profiles import get_profile
from msa_utils.summary import PAPER, ablation_table, results_table, write_report


def scores(acc, f1):
    return {"accuracy": acc, "weighted_f1": f1, "macro_f1": f1 - 0.1,
            "f1_positive": 0.8, "f1_negative": 0.6, "f1_neutral": 0.3}


@pytest.fixture
def metrics_dir(tmp_path):
    folder = tmp_path / "metrics"
    for name, (acc, f1) in {"full": (0.71, 0.70), "no_image": (0.66, 0.65), "no_text": (0.62, 0.61)}.items():
        io.write_json(folder / f"{name}.json", {"val": scores(acc, f1), "best_epoch": 3})
    io.write_json(folder / "baselines.json", {"linear_probe": scores(0.72, 0.70), "majority": scores(0.6, 0.45)})
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
    assert "| 3 | 0.700 | 0.850 | 0.710 | 0.674 |" in text  # rounded once: 0.67351 -> 0.674, not 0.673
    assert "With 3 validation posts" in text and "(0.710) is ±0.262" in text  # sqrt(.71 * .29 / 3)
