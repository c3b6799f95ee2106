"""The study's figures (msa_utils.report.plots, msa_utils.report.explore)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from msa_utils.config.labels import LABELS
from msa_utils.report import explore, plots
from msa_utils.report.summary import PAPER  # noqa: E402

VARIANTS = ("full", "no_image", "no_text")


@pytest.fixture(autouse=True)
def _study_theme():
    """Draw with the notebooks' seaborn theme, restoring matplotlib's settings afterwards."""
    with matplotlib.rc_context():
        plots.set_style()
        yield
    plt.close("all")


def _history(epochs: int, seed: int) -> pd.DataFrame:
    """Two training seeds, the second stopping one epoch earlier."""
    rng = np.random.default_rng(seed)
    epoch = np.concatenate([np.arange(1, epochs + 1), np.arange(1, epochs)])
    epochs = len(epoch)
    return pd.DataFrame({
        "seed": [0] * (len(epoch) // 2 + 1) + [1] * (len(epoch) // 2),
        "epoch": epoch,
        "train_loss": 0.9 / epoch,
        "val_loss": 0.8 + 0.05 * rng.random(epochs),
        "val_accuracy": 0.6 + 0.1 * rng.random(epochs),
        "val_weighted_f1": 0.6 + 0.1 * rng.random(epochs),
    })


@pytest.fixture
def runs():
    rng = np.random.default_rng(0)
    return pd.DataFrame([{"variant": name, "seed": seed, "test_accuracy": acc + 0.02 * rng.random(),
                          "test_weighted_f1": acc - 0.01 + 0.02 * rng.random()}
                         for name, acc in zip(VARIANTS, (0.7, 0.6, 0.55)) for seed in range(3)])


@pytest.fixture
def claims():
    return pd.DataFrame({"id": ["1b", "2a", "3"], "claim": ["epochs", "full beats no image", "image over text"],
                         "difference": [np.nan, 0.04, -0.05], "low": [np.nan, 0.01, -0.09],
                         "high": [np.nan, 0.07, 0.01], "verdict": ["inconclusive", "supported", "inconclusive"]})


TITLES = {"full": "image + text", "no_image": "without image", "no_text": "without text"}


@pytest.fixture
def histories():
    return {name: _history(epochs, seed) for seed, (name, epochs) in enumerate(zip(VARIANTS, (4, 6, 5)))}


@pytest.fixture
def posts():
    rng = np.random.default_rng(0)
    n = 60
    return pd.DataFrame({
        "split": ["train"] * 45 + ["test"] * 15,
        "tag": [LABELS[i] for i in rng.integers(0, 3, 45)] + ["null"] * 15,
        "text_raw": [" ".join(["word"] * int(k)) + " #tag http://t.co/x" for k in rng.integers(1, 20, n)],
        "text_clean": [" ".join(["word"] * int(k)) for k in rng.integers(1, 18, n)],
        "lang": rng.choice(["en", "en", "und", "es", "fr"], n),
        "width": rng.integers(200, 1200, n),
        "height": rng.integers(200, 1200, n),
    })


def _png_bytes(fig: Figure, path) -> bytes:
    return plots.save_figure(fig, path).read_bytes()


def _text_chunk_keys(png: bytes) -> list[bytes]:
    """Keywords of the tEXt/iTXt/zTXt chunks of a PNG."""
    keys, pos = [], 8
    while pos < len(png):
        length = int.from_bytes(png[pos:pos + 4], "big")
        kind = png[pos + 4:pos + 8]
        if kind in (b"tEXt", b"iTXt", b"zTXt"):
            keys.append(png[pos + 8:pos + 8 + length].split(b"\0", 1)[0])
        pos += 12 + length
    return keys


def _axes_labels(fig: Figure) -> list[tuple[str, str, str]]:
    return [(ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) for ax in fig.axes]


# --- the saver ------------------------------------------------------------------------------

def test_save_figure_writes_png_without_software_and_closes(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    path = plots.save_figure(fig, tmp_path / "sub" / "dir" / "line.png")
    png = path.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert b"Software" not in _text_chunk_keys(png) and b"matplotlib" not in png.lower()
    assert not plt.fignum_exists(fig.number)  # closed after saving
    assert [p.name for p in path.parent.iterdir()] == ["line.png"]  # no temporary left behind


def test_only_one_saver():
    assert not hasattr(plots, "save")


# --- the figures ----------------------------------------------------------------------------

def test_scores_chart(runs):
    baselines = pd.DataFrame({"title": ["majority class"], "test_accuracy": [0.6], "test_weighted_f1": [0.45]},
                             index=["majority"])
    fig = plots.scores_chart(runs, PAPER, TITLES, baselines)
    assert isinstance(fig, Figure)
    assert [(ax.get_ylabel(), ax.get_title()) for ax in fig.axes] == [("test accuracy", "accuracy"),
                                                                       ("test weighted F1", "weighted F1")]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["image + text", "without image", "without text"]
    drawn = np.concatenate([line.get_ydata() for line in fig.axes[0].lines])
    full = runs.loc[runs["variant"] == "full", "test_accuracy"]
    # seaborn's error bar is the mean ± one standard deviation over the seeds
    assert np.isclose(drawn, full.mean() - full.std(ddof=1)).any() and np.isclose(drawn, full.mean() + full.std(ddof=1)).any()
    assert np.isclose(drawn, PAPER["full"]["accuracy"]).any() and np.isclose(drawn, 0.6).any()
    with pytest.raises(ValueError):
        plots.scores_chart(runs.iloc[:0], PAPER, TITLES)


def test_claims_chart_draws_each_interval_and_skips_rows_without_one(claims):
    fig = plots.claims_chart(claims)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["2a: full beats no image", "3: image over text"]
    with pytest.raises(ValueError):
        plots.claims_chart(claims.iloc[:1])


def test_training_curves(histories):
    for metric, ylabel in (("loss", "loss (cross-entropy)"), ("accuracy", "validation accuracy"),
                           ("f1", "validation weighted F1")):
        fig = plots.training_curve(histories, metric, TITLES)
        (ax,) = fig.axes
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("epoch", ylabel)
        assert ax.get_title().endswith("per epoch (mean ± std over seeds)")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(label.startswith("image + text (best epochs ") for label in labels)
    with pytest.raises(KeyError):
        plots.training_curve(histories, "recall", TITLES)


def test_confusion_matrix_plot():
    matrix = np.array([[30, 5, 5], [4, 12, 4], [0, 0, 0]])
    fig = plots.confusion_matrix_plot(matrix, "full model, validation")
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "gold")
    assert ax.get_title() == "full model, validation\n(n = 60)"
    assert [t.get_text() for t in ax.get_xticklabels()] == list(LABELS)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(LABELS)
    cells = [t.get_text() for t in ax.texts]
    assert cells[:3] == ["30\n75%", "5\n12%", "5\n12%"] and cells[-1] == "0\n0%"
    with pytest.raises(ValueError):
        plots.confusion_matrix_plot(np.ones((2, 2)))


def test_exploration_figures(posts):
    assert explore.class_balance_figure(posts).axes[0].get_ylabel() == "posts"
    fig = explore.text_length_figure(posts)
    assert [ax.get_xlabel() for ax in fig.axes] == ["characters", "whitespace tokens"]
    assert fig._suptitle.get_text() == "Text length"
    assert explore.language_figure(posts).axes[0].get_xlabel() == "posts"
    assert [ax.get_xlabel() for ax in explore.image_size_figure(posts).axes] == ["width [px]", "height [px]", "megapixels"]


def test_every_figure_is_deterministic(tmp_path, runs, claims, histories, posts):
    makers = {
        "scores": lambda: plots.scores_chart(runs, PAPER, TITLES),
        "claims": lambda: plots.claims_chart(claims),
        "loss": lambda: plots.training_curve(histories, "loss", TITLES),
        "f1": lambda: plots.training_curve(histories, "f1", TITLES),
        "confusion": lambda: plots.confusion_matrix_plot(np.array([[30, 5, 5], [4, 12, 4], [2, 1, 3]]), "t"),
        "class_counts": lambda: plots.class_counts_chart(
            pd.DataFrame({"before": [60, 30, 10], "after": [34, 33, 33]}, index=list(LABELS))),
        "class_balance": lambda: explore.class_balance_figure(posts),
        "text_length": lambda: explore.text_length_figure(posts),
        "languages": lambda: explore.language_figure(posts),
        "image_sizes": lambda: explore.image_size_figure(posts),
    }
    for name, make in makers.items():
        first = _png_bytes(make(), tmp_path / f"{name}_1.png")
        second = _png_bytes(make(), tmp_path / f"{name}_2.png")
        assert first == second, name
        assert b"Software" not in _text_chunk_keys(first), name
    assert plt.get_fignums() == []  # the saver closed every figure
