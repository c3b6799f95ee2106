"""The papermill runner: order, parameters, and a clear stop at the first failing notebook."""

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from msa_utils.config.profiles import PROFILES
from msa_utils.config.runtime import progress_bar
from msa_utils.runner.cli import main, parse_overrides
from msa_utils.runner.notebook import describe_outputs, notebook_warnings
from msa_utils.runner.study import StudyFailed, resolve_paths, run_study, study_notebooks


def write_notebook(path, *sources):
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = new_code_cell("profile = 'cpu'\noverrides = {}")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(new_code_cell(s) for s in sources)]
    nbformat.write(nb, path)


def test_parse_overrides_reads_json_values():
    assert parse_overrides(["max_epochs=5", "translate=false", "device=cuda", "head_hidden=[8, 4]"]) == {
        "max_epochs": 5, "translate": False, "device": "cuda", "head_hidden": [8, 4]}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["max_epochs"])


@pytest.mark.slow
def test_runs_in_order_with_parameters_and_stops_at_the_first_failure(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("MSA_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("MSA_PROFILE", "cpu")  # the runner's profile wins in its kernels
    folder = tmp_path / "notebooks"
    folder.mkdir()
    log = tmp_path / "log.jsonl"
    record = (f"import json, os, pathlib\nopen({str(log)!r}, 'a').write(json.dumps([profile, overrides, "
              "os.environ['MSA_PROFILE']]) + '\\n')\n"
              "out = pathlib.Path(os.environ['MSA_RESULTS_DIR']) / 'tables'\nout.mkdir(exist_ok=True)\n"
              "(out / 'a.csv').write_text('x')")
    warn = ("from msa_utils.runner.notebook import setup\nsetup(profile, overrides, announce=False)\n"
            "import logging, warnings\nlogging.getLogger('msa_utils.features.feature_cache').warning('cache x rebuilt')\n"
            "warnings.warn('odd input')")
    bars = ("from tqdm import tqdm\nfrom msa_utils.config.runtime import progress_bar\n"  # a library's bar, the package's
            "for _ in tqdm(range(50), desc='epoch 0', mininterval=0):\n    pass\n"
            "for _ in progress_bar(range(50), desc='epoch 1', mininterval=0):\n    pass")
    write_notebook(folder / "01_first.ipynb", record, warn, bars)
    write_notebook(folder / "02_broken.ipynb", record, warn.replace("cache x", "cache y"),
                   "raise ValueError('bad input in cell two')")
    write_notebook(folder / "03_never.ipynb", record)
    assert [p.name for p in study_notebooks(folder)] == ["01_first.ipynb", "02_broken.ipynb", "03_never.ipynb"]

    with pytest.raises(StudyFailed) as failure:
        run_study("smoke", {"max_epochs": 1}, notebook_dir=folder)
    message = str(failure.value)
    assert "02_broken.ipynb" in message and "bad input in cell two" in message and "rerun the same command" in message
    assert [json.loads(line) for line in log.read_text().splitlines()] == [["smoke", {"max_epochs": 1}, "smoke"]] * 2
    printed = capfd.readouterr()
    assert "[msa-study] 01_first.ipynb done in" in printed.out and "wrote tables/ (1 file)" in printed.out
    assert "[msa-study] 01_first.ipynb: 2 warnings" in printed.out  # repeated on the terminal
    assert "\n  WARNING msa_utils.features.feature_cache: cache x rebuilt\n" in printed.out
    assert "\n  WARNING py.warnings: " in printed.out and "UserWarning: odd input" in printed.out
    assert "[msa-study] 02_broken.ipynb: 2 warnings" in printed.out  # a failing notebook's too: they may explain it
    assert "\n  WARNING msa_utils.features.feature_cache: cache y rebuilt\n" in printed.out
    assert "without encryption" not in printed.out + printed.err  # the kernels talk over IPC, not TCP
    assert "Executing:" in printed.err  # papermill's bar over the cells, on the terminal ...
    saved = (tmp_path / "results" / "notebooks" / "01_first.ipynb").read_text()
    assert "epoch 0:" not in saved and "epoch 1:" not in saved and "%|" not in saved  # ... but no bar fragment in the executed notebook
    assert (tmp_path / "results" / "notebooks" / "02_broken.ipynb").exists()  # saved with the traceback
    assert not (tmp_path / "results" / "notebooks" / "03_never.ipynb").exists()


def test_notebook_warnings_reads_the_marked_stderr_lines_in_cell_order(tmp_path):
    nb = new_notebook()
    first, second = new_code_cell("a"), new_code_cell("b")
    first.outputs = [new_output("stream", name="stderr", text="[encode] 10/20\r[encode] 20/20\n"),
                     new_output("stream", name="stderr", text="WARNING msa_utils.features.feature_cache: rebuilt\n"),
                     new_output("stream", name="stdout", text="WARNING printed, not logged\n")]
    second.outputs = [new_output("stream", name="stderr", text="ERROR root: lost\nWARNING msa_utils.features.feature_cache: "
                                 "rebuilt\n  a continuation line\n")]
    nb.cells = [first, second]
    nbformat.write(nb, tmp_path / "run.ipynb")
    assert notebook_warnings(tmp_path / "run.ipynb") == ["WARNING msa_utils.features.feature_cache: rebuilt", "ERROR root: lost"]
    nb.cells = [new_code_cell("c")]
    nbformat.write(nb, tmp_path / "quiet.ipynb")
    assert notebook_warnings(tmp_path / "quiet.ipynb") == []


def test_bars_are_off_under_tqdm_disable(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert not progress_bar(range(3)).disable and progress_bar(range(3), show=False).disable  # JupyterLab: bars
    monkeypatch.setenv("TQDM_DISABLE", "1")  # a kernel of msa-study
    assert progress_bar(range(3)).disable  # tqdm itself reads the variable when it is imported (in the kernel)


def test_unknown_profile_fails_before_running(tmp_path):
    with pytest.raises(KeyError, match="unknown profile"):
        run_study("fast", notebook_dir=tmp_path)


def test_relative_folders_are_resolved_where_the_user_typed_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flava").mkdir()
    out = resolve_paths({"results_dir": "res", "data_dir": "../d", "flava_name_or_path": "flava", "max_epochs": 2})
    assert out == {"results_dir": str(tmp_path / "res"), "data_dir": str(tmp_path.parent / "d"),
                   "flava_name_or_path": str(tmp_path / "flava"), "max_epochs": 2}
    assert resolve_paths({"flava_name_or_path": "facebook/flava-full"}) == {"flava_name_or_path": "facebook/flava-full"}


def test_a_selection_that_matches_no_notebook_is_an_error(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(folder / "01_first.ipynb", "pass")
    with pytest.raises(ValueError, match="no notebook"):
        run_study("smoke", only=["99"], notebook_dir=folder)
    with pytest.raises(ValueError, match="no notebook"):
        run_study("smoke", start="abc", notebook_dir=folder)


def test_an_empty_folder_is_refused_not_taken_for_the_current_one():
    assert resolve_paths({"data_dir": ""}) == {"data_dir": ""}
    with pytest.raises(ValueError, match="data.data_dir: string should have at least 1 character"):
        run_study("smoke", {"data_dir": ""}, only=["99"])


def test_help_lists_every_profile_field(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    shown = capsys.readouterr().out
    assert all(f"  {name} = " in shown for name in PROFILES["cpu"].flat() if name != "name")
    assert "  train.lr = 0.0001" in shown and "leaf name (lr)" in shown


def test_describe_outputs_groups_folders_and_skips_executed_notebooks():
    outputs = ["REPORT.md", "metrics/full.json", "metrics/full_history.csv", "notebooks/04_finetune.ipynb"]
    assert describe_outputs(outputs) == "REPORT.md, metrics/ (2 files)"
    assert describe_outputs(["notebooks/01_explore.ipynb"]) == "no result files"
    assert describe_outputs([f"f{i}.txt" for i in range(6)], shown=4) == "f0.txt, f1.txt, f2.txt, f3.txt and 2 more"


def test_a_bad_name_or_data_folder_fails_before_any_notebook_runs(tmp_path, capsys):
    assert main(["--set", "name=mine"]) == 2
    assert "cannot be overridden" in capsys.readouterr().err
    assert main(["--set", f"data_dir={tmp_path / 'nowhere'}", "--set", f"results_dir={tmp_path / 'r'}"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "r" / "notebooks" / "01_explore.ipynb").exists()
