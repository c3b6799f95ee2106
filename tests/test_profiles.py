"""Profiles: one place, overrides checked at once, folders from the environment."""

import pytest

from msa_utils.config.profiles import FIELDS, PROFILES, get_profile


def test_profiles_keep_the_papers_recipe():
    for name in ("paper", "cpu"):
        p = PROFILES[name]
        assert (p.train.lr, p.train.batch_size, p.train.max_epochs, p.model.dropout, p.data.val_fraction, p.train.resample) == (1e-4, 32, 10, 0.3, 0.2, True)
    assert PROFILES["paper"].features.backbone == "flava" and PROFILES["cpu"].features.backbone == "compact"
    assert not PROFILES["smoke"].data.translate  # the tests run the notebooks on smoke: no network


@pytest.mark.parametrize("override, message", [
    ({"max_epochs": "abc"}, "profile field train.max_epochs: input should be a valid integer, got 'abc'"),
    ({"max_epochs": 0}, "train.max_epochs: input should be greater than or equal to 1, got 0"),
    ({"val_fraction": 1.0}, r"data.val_fraction: input should be less than or equal to 0.5, got 1.0"),
    ({"folds": 1}, r"data.folds: input should be greater than or equal to 2"),
    ({"head": "mlp3"}, r"model.head: input should be 'mlp', 'linear', .* got 'mlp3'"),
    ({"repeats": 0}, r"data.repeats: input should be greater than or equal to 1"),
    ({"resample_to": "minority"}, r"train.resample_to: input should be 'majority' or 'posts'"),
    ({"masking": "noise"}, r"model.masking: input should be 'inputs' or 'states'"),
    ({"text_top_layers": -1}, r"model.text_top_layers: input should be greater than or equal to 0"),
    ({"early_stopping": "no"}, r"train.early_stopping: input should be a valid boolean, got 'no'"),
    ({"early_stopping": 1}, r"train.early_stopping: input should be a valid boolean, got 1"),
    ({"dropout": -0.1}, "model.dropout: input should be greater than or equal to 0"),
    ({"translate": "yes"}, "data.translate: input should be a valid boolean"),
    ({"backbone": "clip"}, "features.backbone: input should be 'flava' or 'compact', got 'clip'"),
    ({"head_hidden": [8]}, "model.head_hidden"),
    ({"device": "tpu"}, "device: .*cpu|cuda|auto"),
    ({"train.lr": 0}, "train.lr: input should be greater than 0"),
    ({"lr": float("inf")}, "train.lr: input should be a finite number"),
    ({"fusion_hidden": 30}, r"fusion_hidden \(30\) must be a multiple of fusion_heads \(4\)"),
])
def test_bad_overrides_fail_at_once(override, message):
    with pytest.raises(ValueError, match=message):
        get_profile("cpu", **override)


def test_leaf_names_are_unique_so_either_name_finds_one_field():
    assert len(FIELDS) == len(PROFILES["cpu"].flat()) and set(FIELDS.values()) == set(PROFILES["cpu"].flat())


def test_fields_by_dotted_or_leaf_name():
    assert get_profile("cpu", lr=2e-3) == get_profile("cpu", **{"train.lr": 2e-3})
    assert get_profile("cpu", lr=2e-3).train.lr == 2e-3 and PROFILES["cpu"].train.lr == 1e-4  # a copy
    assert get_profile("cpu", lr=1).train.lr == 1.0  # JSON's 1 is a number
    cfg = get_profile("cpu", head="linear", seed=4)
    assert (cfg.model.head, cfg.seed, cfg.flat()["model.head"]) == ("linear", 4, "linear")
    assert "results_dir" not in cfg.run_key_settings() and cfg.run_key_settings()["train.lr"] == 1e-4


def test_unknown_or_repeated_field_and_unknown_profile():
    with pytest.raises(TypeError, match="unknown profile field 'epochs'; did you mean max_epochs"):
        get_profile("cpu", epochs=3)
    with pytest.raises(TypeError, match=r"unknown profile field 'model.lr'; did you mean train.lr\?"):
        get_profile("cpu", **{"model.lr": 3})
    with pytest.raises(TypeError, match="set twice"):
        get_profile("cpu", lr=1e-3, **{"train.lr": 2e-3})
    with pytest.raises(KeyError, match="unknown profile"):
        get_profile("fast")


def test_environment_folders_are_resolved(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MSA_RESULTS_DIR", "out")
    cfg = get_profile("smoke", head_hidden=[4, 2])
    assert cfg.results_dir == str(tmp_path / "out") and cfg.model.head_hidden == (4, 2)
    assert get_profile("smoke", results_dir=None).results_dir == str(tmp_path / "out")
