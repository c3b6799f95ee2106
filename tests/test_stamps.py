"""Rerunning the runner redoes only what is missing or stale (msa_utils.stamps + run_study).

Three tiny notebooks form a chain, as the study's do: 01 reads the data folder and writes
``a.txt``, 02 reads ``a.txt`` and writes ``b.txt``, 03 reads ``b.txt`` and writes ``c.txt``. Each
appends its number to a log, so the tests see exactly which notebooks executed.
"""

import subprocess
import sys

import pytest
from test_study import write_notebook

from msa_utils import stamps
from msa_utils.study import run_study


def chain(tmp_path, kill_flag=None):
    """Build the data folder, the three notebooks and the overrides that point at them."""
    data, notebooks, results = tmp_path / "data", tmp_path / "notebooks", tmp_path / "results"
    data.mkdir()
    notebooks.mkdir()
    (data / "posts.txt").write_text("a post\n")
    log = tmp_path / "ran.log"

    def step(number, read, write):
        cfg = ("from pathlib import Path\nfrom msa_utils.profiles import get_profile\n"
               "cfg = get_profile(profile, **overrides)\n"
               f"open({str(log)!r}, 'a').write('{number}\\n')")
        work = f"text = Path({read}).read_text()\nPath(cfg.results_dir, {write!r}).write_text(text + '{number}')"
        return cfg, work

    write_notebook(notebooks / "01_first.ipynb", *step("01", "cfg.data_dir, 'posts.txt'", "a.txt"))
    cfg, work = step("02", "cfg.results_dir, 'a.txt'", "b.txt")
    if kill_flag is not None:  # the runner is killed (SIGKILL) in the middle of notebook 02
        cfg += (f"\nimport os, signal\nif os.path.exists({str(kill_flag)!r}):\n"
                "    os.kill(os.getppid(), signal.SIGKILL)\n    os._exit(1)")
    write_notebook(notebooks / "02_second.ipynb", cfg, work)
    write_notebook(notebooks / "03_third.ipynb", *step("03", "cfg.results_dir, 'b.txt'", "c.txt"))
    overrides = {"data_dir": str(data), "results_dir": str(results), "cache_dir": str(tmp_path / "cache")}

    def ran():
        """The notebooks that executed since the last call."""
        names = log.read_text().split() if log.exists() else []
        log.unlink(missing_ok=True)
        return names

    return notebooks, results, overrides, ran


def test_a_rerun_skips_what_is_up_to_date_and_redoes_what_is_missing_or_stale(tmp_path, capsys):
    notebooks, results, overrides, ran = chain(tmp_path)
    study = lambda **kw: run_study("smoke", overrides, notebook_dir=notebooks, **kw)  # noqa: E731

    assert set(study()) == {"01_first.ipynb", "02_second.ipynb", "03_third.ipynb"}
    assert ran() == ["01", "02", "03"]
    assert (results / "c.txt").read_text() == "a post\n010203"

    assert study() == {} and ran() == []  # nothing changed: nothing runs
    assert capsys.readouterr().out.count("up to date, skipped") == 3

    (results / "b.txt").unlink()  # a missing output: its notebook reruns; it writes the same
    study()                       # bytes, so the notebook after it stays up to date
    assert ran() == ["02"]
    assert "b.txt missing" in capsys.readouterr().out

    (results / "a.txt").write_text("edited by hand")  # a changed output: 01 reruns and restores it
    study()
    assert ran() == ["01"] and (results / "a.txt").read_text() == "a post\n01"

    (tmp_path / "data" / "posts.txt").write_text("another post\n")  # new data: everything is stale
    study()
    assert ran() == ["01", "02", "03"]
    assert (results / "c.txt").read_text() == "another post\n010203"
    assert "changed: the data folder" in capsys.readouterr().out

    study(only=["03"])  # an explicit selection runs, up to date or not
    assert ran() == ["03"]
    study(force=True)
    assert ran() == ["01", "02", "03"]


def test_killing_the_runner_and_rerunning_redoes_only_the_interrupted_notebook_and_after(tmp_path, capsys):
    kill_flag = tmp_path / "kill-the-runner"
    kill_flag.touch()
    notebooks, results, overrides, ran = chain(tmp_path, kill_flag)
    code = (f"from msa_utils.study import run_study\n"
            f"run_study('smoke', {overrides!r}, notebook_dir={str(notebooks)!r})")
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr  # SIGKILL, in notebook 02
    assert ran() == ["01", "02"]
    assert stamps.read_stamp(results, notebooks / "02_second.ipynb")["running"]

    kill_flag.unlink()
    run_study("smoke", overrides, notebook_dir=notebooks)
    assert ran() == ["02", "03"]
    assert "interrupted or failed last time" in capsys.readouterr().out
    assert (results / "c.txt").read_text() == "a post\n010203"


def test_a_stamp_names_what_changed(tmp_path):
    (tmp_path / "out.txt").write_text("result")
    inputs = {"code": "1", "profile": "2", "package": "3", "data": "4", "libraries": "5", "upstream": "6"}
    stamp = stamps.write_stamp(tmp_path, "01_x.ipynb", inputs, before={}, seconds=1.0)
    assert stamps.why_stale(stamps.read_stamp(tmp_path, "01_x.ipynb"), inputs, tmp_path) is None
    assert stamps.why_stale(stamp, {**inputs, "package": "9"}, tmp_path) == "changed: msa_utils"
    (tmp_path / "out.txt").write_text("other")
    assert stamps.why_stale(stamp, inputs, tmp_path) == "out.txt changed"
    assert stamps.why_stale(None, inputs, tmp_path) == "never run"
    stamps.stamp_path(tmp_path, "01_x.ipynb").write_text("{truncated")  # unreadable: stale, not an error
    assert stamps.read_stamp(tmp_path, "01_x.ipynb") is None


def test_a_results_folder_inside_the_data_folder_does_not_make_the_data_stale(tmp_path):
    (tmp_path / "train.txt").write_text("guid,tag\n1,positive\n")
    settings = {"data_dir": str(tmp_path), "results_dir": str(tmp_path / "results"), "cache_dir": None}
    before = stamps.RunContext.of("smoke", settings).data
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "REPORT.md").write_text("written by a run")
    assert stamps.RunContext.of("smoke", settings).data == before
    (tmp_path / "train.txt").write_text("guid,tag\n1,negative\n")
    assert stamps.RunContext.of("smoke", settings).data != before


@pytest.mark.parametrize("edit", ["rename", "content"])
def test_tree_digest_sees_renames_and_content(tmp_path, edit):
    (tmp_path / "1.txt").write_text("x")
    before = stamps.tree_digest(tmp_path)
    if edit == "rename":
        (tmp_path / "1.txt").rename(tmp_path / "2.txt")
    else:
        (tmp_path / "1.txt").write_text("y")
    assert stamps.tree_digest(tmp_path) != before
