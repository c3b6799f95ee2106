"""Profiles: one place, overrides checked at once, folders from the environment."""

import pytest

from msa_utils.config.profiles import PROFILES, get_profile


def test_profiles_keep_the_papers_recipe():
    for name in ("paper", "cpu"):
        p = PROFILES[name]
        assert (p.lr, p.batch_size, p.max_epochs, p.dropout, p.val_fraction, p.resample) == (1e-4, 32, 10, 0.3, 0.2, True)
    assert PROFILES["paper"].backbone == "flava" and PROFILES["cpu"].backbone == "compact"
    assert not PROFILES["smoke"].translate  # the tests run the notebooks on smoke: no network


@pytest.mark.parametrize("override, message", [
    ({"max_epochs": "abc"}, "max_epochs must be a positive integer"),
    ({"max_epochs": 0}, "max_epochs must be a positive integer"),
    ({"val_fraction": 1.0}, r"val_fraction must be a number in \[0.05, 0.5\]"),
    ({"test_fraction": 0.0}, r"test_fraction must be a number in \[0.05, 0.5\]"),
    ({"head": "mlp3"}, r"head must be 'mlp' or"),
    ({"seeds": 0}, r"seeds must be a positive integer"),
    ({"text_top_layers": -1}, r"text_top_layers must be a non-negative integer"),
    ({"early_stopping": "no"}, r"early_stopping must be true or false"),
    ({"dropout": -0.1}, "dropout"),
    ({"translate": "yes"}, "translate must be true or false"),
    ({"backbone": "clip"}, "backbone"),
    ({"head_hidden": [8]}, "head_hidden"),
    ({"device": "tpu"}, "device"),
])
def test_bad_overrides_fail_at_once(override, message):
    with pytest.raises(ValueError, match=message):
        get_profile("cpu", **override)


def test_unknown_field_and_profile():
    with pytest.raises(TypeError, match="unknown profile fields"):
        get_profile("cpu", epochs=3)
    with pytest.raises(KeyError, match="unknown profile"):
        get_profile("fast")


def test_environment_folders_are_resolved(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MSA_RESULTS_DIR", "out")
    cfg = get_profile("smoke", head_hidden=[4, 2])
    assert cfg.results_dir == str(tmp_path / "out") and cfg.head_hidden == (4, 2)
    assert get_profile("smoke", results_dir=None).results_dir == str(tmp_path / "out")
