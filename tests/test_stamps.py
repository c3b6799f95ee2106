"""Rerunning the runner redoes only what is missing or stale (msa_utils.runner.stamps + run_study).

Three tiny notebooks form a chain, as the study's do: 01 reads the data folder and writes
``a.txt``, 02 reads ``a.txt`` and writes ``b.txt``, 03 reads ``b.txt`` and writes ``c.txt``. Each
appends its number to a log, so the tests see exactly which notebooks executed.
"""

import subprocess
import sys

import pytest
from test_study import write_notebook

from msa_utils.runner import stamps
from msa_utils.runner.study import run_study


def chain(tmp_path, kill_flag=None):
    """Build the data folder, the three notebooks and the overrides that point at them."""
    data, notebooks, results = tmp_path / "data", tmp_path / "notebooks", tmp_path / "results"
    data.mkdir()
    notebooks.mkdir()
    (data / "posts.txt").write_text("a post\n")
    log = tmp_path / "ran.log"

    def step(number, read, write):
        cfg = ("from pathlib import Path\nfrom msa_utils.config.profiles import get_profile\n"
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


@pytest.mark.slow
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

    (results / "b.txt").write_text("edited by hand")  # 03 is then forced on the edited file ...
    study(only=["03"])
    assert ran() == ["03"] and (results / "c.txt").read_text() == "edited by hand03"
    study()  # ... so when 02 restores b.txt, 03 must run again
    assert ran() == ["02", "03"] and (results / "c.txt").read_text() == "another post\n010203"
    study(force=True)
    assert ran() == ["01", "02", "03"]


@pytest.mark.slow
def test_killing_the_runner_and_rerunning_redoes_only_the_interrupted_notebook_and_after(tmp_path, capsys):
    kill_flag = tmp_path / "kill-the-runner"
    notebooks, results, overrides, ran = chain(tmp_path, kill_flag)
    run_study("smoke", overrides, notebook_dir=notebooks)  # a finished run ...
    (tmp_path / "data" / "posts.txt").write_text("new post\n")  # ... new data, and this time
    kill_flag.touch()                                          # the runner dies in notebook 02
    ran()
    code = (f"from msa_utils.runner.study import run_study\n"
            f"run_study('smoke', {overrides!r}, notebook_dir={str(notebooks)!r})")
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr  # SIGKILL, in notebook 02
    assert ran() == ["01", "02"]
    assert stamps.read_stamp(results, notebooks / "02_second.ipynb")["running"]
    assert (results / "b.txt").read_text() == "a post\n0102"  # the old file, never updated

    kill_flag.unlink()
    run_study("smoke", overrides, only=["03"], notebook_dir=notebooks)  # forced while 02 is unfinished
    assert ran() == ["03"]
    capsys.readouterr()
    run_study("smoke", overrides, notebook_dir=notebooks)
    assert ran() == ["02", "03"]  # 03 ran on the old b.txt: it runs again
    assert "interrupted or failed last time" in capsys.readouterr().out
    assert (results / "c.txt").read_text() == "new post\n010203"


def test_a_stamp_names_what_changed(tmp_path):
    (tmp_path / "out.txt").write_text("result")
    inputs = {"code": "1", "profile": "2", "package": "3", "data": "4", "libraries": "5", "upstream": "6"}
    stamp = stamps.write_stamp(tmp_path, "01_x.ipynb", inputs, before={}, seconds=1.0)
    assert stamps.why_stale(stamps.read_stamp(tmp_path, "01_x.ipynb"), inputs, stamps.FileHashes(tmp_path)) is None
    assert stamps.why_stale(stamp, {**inputs, "package": "9"}, stamps.FileHashes(tmp_path)) == "changed: msa_utils"
    (tmp_path / "out.txt").write_text("other")
    assert stamps.why_stale(stamp, inputs, stamps.FileHashes(tmp_path)) == "out.txt changed"
    assert stamps.why_stale(None, inputs, stamps.FileHashes(tmp_path)) == "never run"
    path = stamps.stamp_path(tmp_path, "01_x.ipynb")
    for broken in ("{truncated", '{"inputs": [], "outputs": {}}', '{"inputs": {}, "outputs": []}',
                   '{"inputs": null, "outputs": {}}', '{"inputs": {"code": 1}, "outputs": {}}', "[]"):
        path.write_text(broken)  # unreadable or malformed: stale, not an error
        assert stamps.read_stamp(tmp_path, "01_x.ipynb") is None, broken


def test_a_results_folder_inside_the_data_folder_does_not_make_the_data_stale(tmp_path):
    (tmp_path / "train.txt").write_text("guid,tag\n1,positive\n")
    settings = {"data_dir": str(tmp_path), "results_dir": str(tmp_path / "results"), "cache_dir": None}
    before = stamps.RunContext.of("smoke", settings).data
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "REPORT.md").write_text("written by a run")
    assert stamps.RunContext.of("smoke", settings).data == before
    (tmp_path / "train.txt").write_text("guid,tag\n1,negative\n")
    assert stamps.RunContext.of("smoke", settings).data != before


@pytest.mark.parametrize("edit", ["rename", "content", "linked_folder"])
def test_the_data_digest_sees_renames_edits_and_files_behind_links(tmp_path, edit):
    data, real = tmp_path / "data", tmp_path / "elsewhere"
    data.mkdir()
    real.mkdir()
    (data / "1.txt").write_text("x")
    (real / "2.txt").write_text("y")
    (data / "images").symlink_to(real, target_is_directory=True)  # data/ as a link, say
    (real / "loop").symlink_to(real, target_is_directory=True)  # a link loop ends
    before = stamps.data_digest(data)
    if edit == "rename":
        (data / "1.txt").rename(data / "3.txt")
    elif edit == "content":
        (data / "1.txt").write_text("a longer text")
    else:
        (real / "2.txt").write_text("changed behind the link")
    assert stamps.data_digest(data) != before


def test_a_results_folder_that_holds_the_data_does_not_hide_it(tmp_path):
    (tmp_path / "posts").mkdir()
    (tmp_path / "posts" / "train.txt").write_text("guid,tag\n1,positive\n")
    for results in (tmp_path, tmp_path / "posts"):
        before = stamps.data_digest(tmp_path / "posts", exclude=[results])
        (tmp_path / "posts" / "train.txt").write_text("guid,tag\n1,negative, edited\n")
        assert stamps.data_digest(tmp_path / "posts", exclude=[results]) != before
