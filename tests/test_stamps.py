"""Rerunning the runner redoes only what is missing or stale (the stamps of msa_utils.runner.study).

Three tiny notebooks form a chain, as the study's do: 01 reads the data folder and writes
``a.txt``, 02 reads ``a.txt`` and writes ``b.txt``, 03 reads ``b.txt`` and writes ``c.txt``. Each
appends its number to a log, so the tests see exactly which notebooks executed.
"""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_markdown_cell
from test_study import write_notebook

from msa_utils import io
from msa_utils.runner import study
from msa_utils.runner.study import DATA, run_study

CHAIN_READS = {"01": (DATA,), "02": ("a.txt",), "03": ("b.txt",)}  # as READS declares the study's


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

    write_notebook(notebooks / "01_first.ipynb", *step("01", "cfg.data.data_dir, 'posts.txt'", "a.txt"))
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
    study = lambda **kw: run_study("smoke", overrides, notebook_dir=notebooks, reads=CHAIN_READS, check=None,  # noqa: E731
                                   **kw)  # the chain's data folder holds no posts: not checked

    assert set(study()) == {"01_first.ipynb", "02_second.ipynb", "03_third.ipynb"}
    assert ran() == ["01", "02", "03"]
    assert (results / "c.txt").read_text() == "a post\n010203"

    assert study() == {} and ran() == []  # nothing changed: nothing runs
    assert capsys.readouterr().out.count("up to date, skipped") == 3

    (results / "notes.txt").write_text("a file no notebook wrote")  # not an input of any notebook
    assert study() == {} and ran() == []

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
    """With no declared reads (``reads={}``): each notebook reads the data and all that the ones before wrote."""
    kill_flag = tmp_path / "kill-the-runner"
    notebooks, results, overrides, ran = chain(tmp_path, kill_flag)
    run_study = lambda *a, **kw: study.run_study(*a, reads={}, check=None, **kw)  # noqa: E731
    run_study("smoke", overrides, notebook_dir=notebooks)  # a finished run ...
    (tmp_path / "data" / "posts.txt").write_text("new post\n")  # ... new data, and this time
    kill_flag.touch()                                          # the runner dies in notebook 02
    ran()
    code = (f"from msa_utils.runner.study import run_study\n"
            f"run_study('smoke', {overrides!r}, notebook_dir={str(notebooks)!r}, reads={{}}, check=None)")
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr  # SIGKILL, in notebook 02
    assert ran() == ["01", "02"]
    assert study.read_stamp(results, notebooks / "02_second.ipynb")["running"]
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
    inputs = {"code": "1", "profile": "2", "libraries": "3", "version": "1", "data": "4", "posts.csv": "5"}
    stamp = {"notebook": "01_x.ipynb", "inputs": inputs, "seconds": 1.0, "outputs": {"out.txt": study.file_hash(tmp_path, "out.txt")}}
    io.write_json(study.stamp_path(tmp_path, "01_x.ipynb"), stamp)
    assert study.why_stale(study.read_stamp(tmp_path, "01_x.ipynb"), inputs, tmp_path) is None
    assert study.why_stale(stamp, {**inputs, "version": "2"}, tmp_path) == "changed: STUDY_VERSION"
    assert study.why_stale(stamp, {**inputs, "posts.csv": "9", "data": "9"}, tmp_path) == "changed: the data folder; posts.csv"
    assert study.why_stale(stamp, {**inputs, "splits/val.txt": "6"}, tmp_path) == "changed: splits/val.txt"  # a new input
    (tmp_path / "out.txt").write_text("other")
    assert study.why_stale(stamp, inputs, tmp_path) == "out.txt changed"
    (tmp_path / "out.txt").unlink()
    assert study.why_stale(stamp, inputs, tmp_path) == "out.txt missing"
    assert study.why_stale(None, inputs, tmp_path) == "never run"
    assert study.why_stale({**stamp, "running": True}, inputs, tmp_path) == "interrupted or failed last time"
    path = study.stamp_path(tmp_path, "01_x.ipynb")
    for broken in ("{truncated", '{"inputs": [], "outputs": {}}', '{"inputs": {}, "outputs": []}',
                   '{"inputs": null, "outputs": {}}', '{"inputs": {"code": 1}, "outputs": {}}', "[]"):
        path.write_text(broken)  # unreadable or malformed: stale, not an error
        assert study.read_stamp(tmp_path, "01_x.ipynb") is None, broken


def test_the_inputs_are_the_code_cells_the_declared_files_and_no_package_source(tmp_path):
    """Not the source of msa_utils (STUDY_VERSION stands for it), nor outputs, markdown or files not declared."""
    results = tmp_path / "results"
    (results / "splits").mkdir(parents=True)
    for name in ("posts.csv", "splits/train.txt", "figures.png", "c.txt"):
        (results / name).write_text(name)
    write_notebook(tmp_path / "04_x.ipynb", "print(1)")
    context = {"profile": "p", "libraries": "l", "version": str(study.STUDY_VERSION), "data": "d"}
    written = ["posts.csv", "splits/train.txt", "figures.png"]  # c.txt: by no notebook before this one
    inputs = study.notebook_inputs(tmp_path / "04_x.ipynb", context, (DATA, "posts.csv", "splits"), written, results)
    assert inputs.keys() == {"code", "profile", "libraries", "version", "data", "posts.csv", "splits/train.txt"}
    assert inputs["posts.csv"] == study.file_hash(results, "posts.csv")
    assert "data" not in study.notebook_inputs(tmp_path / "04_x.ipynb", context, ("posts.csv",), written, results)
    everything = study.notebook_inputs(tmp_path / "04_x.ipynb", context, (DATA, ""), written, results)
    assert everything.keys() == inputs.keys() | {"figures.png"}  # a notebook READS does not list

    nb = nbformat.read(tmp_path / "04_x.ipynb", as_version=4)
    nb.cells.append(new_markdown_cell("a note"))
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    nbformat.write(nb, tmp_path / "04_x.ipynb")  # saved from JupyterLab, say
    assert study.notebook_inputs(tmp_path / "04_x.ipynb", context, (DATA, "posts.csv", "splits"), written, results) == inputs


def test_every_notebook_of_the_study_declares_its_reads():
    assert [nb.name[:2] for nb in study.study_notebooks()] == sorted(study.READS)
    assert all(r == DATA or not Path(r).is_absolute() for reads in study.READS.values() for r in reads)


def test_a_results_folder_inside_the_data_folder_does_not_make_the_data_stale(tmp_path):
    (tmp_path / "train.txt").write_text("guid,tag\n1,positive\n")
    before = study.data_digest(tmp_path, exclude=[tmp_path / "results"])
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "REPORT.md").write_text("written by a run")
    assert study.data_digest(tmp_path, exclude=[tmp_path / "results"]) == before
    (tmp_path / "train.txt").write_text("guid,tag\n1,negative\n")
    assert study.data_digest(tmp_path, exclude=[tmp_path / "results"]) != before


@pytest.mark.parametrize("edit", ["rename", "content", "linked_folder"])
def test_the_data_digest_sees_renames_edits_and_files_behind_links(tmp_path, edit):
    data, real = tmp_path / "data", tmp_path / "elsewhere"
    data.mkdir()
    real.mkdir()
    (data / "1.txt").write_text("x")
    (real / "2.txt").write_text("y")
    (data / "images").symlink_to(real, target_is_directory=True)  # data/ as a link, say
    (real / "loop").symlink_to(real, target_is_directory=True)  # a link loop ends
    before = study.data_digest(data)
    if edit == "rename":
        (data / "1.txt").rename(data / "3.txt")
    elif edit == "content":
        (data / "1.txt").write_text("a longer text")
    else:
        (real / "2.txt").write_text("changed behind the link")
    assert study.data_digest(data) != before


def test_a_results_folder_that_holds_the_data_does_not_hide_it(tmp_path):
    (tmp_path / "posts").mkdir()
    (tmp_path / "posts" / "train.txt").write_text("guid,tag\n1,positive\n")
    for results in (tmp_path, tmp_path / "posts"):
        before = study.data_digest(tmp_path / "posts", exclude=[results])
        (tmp_path / "posts" / "train.txt").write_text("guid,tag\n1,negative, edited\n")
        assert study.data_digest(tmp_path / "posts", exclude=[results]) != before
