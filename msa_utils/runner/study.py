"""The study's runner: execute the numbered notebooks in order with papermill, redoing only the stale ones.

A notebook is stale unless it last ran to the end with the same inputs (:func:`notebook_inputs`: its code cells,
the profile, the library versions, :data:`STUDY_VERSION`, and what :data:`READS` declares) and every file it wrote
is unchanged. Stamps live in ``<results>/notebooks/.stamps/``; ``msa-study`` (:mod:`msa_utils.runner.cli`) is its
command line, docs/running.md the guide."""

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence
from unittest import mock

import papermill as pm
from traitlets.config import Config

from msa_utils import io
from msa_utils.config.profiles import PROFILE_ENV, REPO_ROOT, Profile, get_profile
from msa_utils.config.runtime import library_versions
from msa_utils.data.sources import LAYOUTS, SourceSummary, check_source, is_table, source_root
from msa_utils.io.hashing import Digest, file_sha256, sha256_of
from msa_utils.runner.notebook import describe_outputs, print_warnings

STUDY_VERSION = 3  # bump when a change in msa_utils changes what a notebook writes
DATA = "<data>"  # in READS: the data folder
#: What each notebook reads: :data:`DATA`, files or folders under the results folder; unlisted: the data and all before.
READS: dict[str, tuple[str, ...]] = {
    "01": (DATA,), "02": (DATA, "posts.csv", "data_report.csv"), "03": ("posts.csv",),
    "04": (DATA, "posts.csv", "data_report.csv", "splits"),
    "05": (DATA, "posts.csv", "splits", "metrics", "predictions"),
    "06": (DATA, "posts.csv", "data_report.csv", "splits", "metrics", "predictions"),
    "07": ("posts.csv", "data_report.csv", "splits", "metrics", "predictions"),
    "08": (DATA, "metrics", "predictions", "checkpoints", "translation_cache.json")}
INPUT_NAMES = {"code": "the notebook's code", "profile": "the profile or an override", "data": "the data folder",
               "libraries": "a library version", "version": "STUDY_VERSION"}


class StudyFailed(RuntimeError):
    """A notebook failed; the message names it, the cell, the error and its executed copy."""


def study_notebooks(folder: str | Path = REPO_ROOT / "notebooks") -> list[Path]:
    """The numbered notebooks ``NN_*.ipynb`` of ``folder``, in order (FileNotFoundError if none)."""
    if not (found := sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))):
        raise FileNotFoundError(f"no numbered notebooks in {folder}")
    return found


def resolve_paths(overrides: dict[str, Any]) -> dict[str, Any]:
    """Relative folders (and a local ``flava_name_or_path``) made absolute here: the notebooks run in notebooks/."""
    out = dict(overrides)
    for key, value in overrides.items():
        leaf = key.rpartition(".")[2]  # a field by its dotted or its leaf name
        if isinstance(value, str) and value and (leaf in ("data_dir", "results_dir", "cache_dir")
                                       or leaf == "flava_name_or_path" and Path(value).expanduser().exists()):
            out[key] = str(Path(value).expanduser().resolve())
    return out


def data_digest(folder: str | os.PathLike, exclude: Sequence[str | os.PathLike] = ()) -> str:
    """SHA-256 over the path, size and mtime of every file under ``folder`` (links followed, each real folder
    once; no file read), but those in ``exclude`` folders strictly inside it (a results folder)."""
    root = Path(folder).resolve()
    skipped = {e for e in (Path(p).resolve() for p in exclude) if e != root and e.is_relative_to(root)}
    digest, seen = Digest(), set()
    for current, dirs, files in os.walk(root, followlinks=True):
        here, real = Path(current), Path(current).resolve()
        dirs[:] = [] if real in seen else sorted(d for d in dirs if here / d not in skipped)
        for name in [] if real in seen else sorted(files):
            try:
                state = f"{(stat := (here / name).stat()).st_size}:{stat.st_mtime_ns}"
            except OSError as error:
                state = f"error:{error.errno}"
            digest.add((here / name).relative_to(root).as_posix(), state)
        seen.add(real)
    return digest.hexdigest()


def file_hash(folder: Path, name: str) -> str | None:
    """SHA-256 of ``folder/name``, or None if it is not a readable file."""
    with contextlib.suppress(OSError):
        return file_sha256(folder / name)
    return None


def notebook_inputs(notebook: Path, context: Mapping[str, str], reads: Sequence[str], written: Sequence[str],
                    results: Path) -> dict[str, str]:
    """Its code cells, ``context`` (profile, libraries, version; ``data`` only if it reads :data:`DATA`) and
    the hash of each file in ``written`` (by the notebooks before it) that it ``reads``."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    inputs = {"code": sha256_of(["".join(c["source"]) for c in cells if c.get("cell_type") == "code"])}
    inputs |= {key: value for key, value in context.items() if key != "data" or DATA in reads}
    for name in sorted(set(written)):
        if any(r == "" or name == r or name.startswith(r.rstrip("/") + "/") for r in reads if r != DATA):
            inputs[name] = file_hash(results, name) or "missing"
    return inputs


def stamp_path(results: str | os.PathLike, notebook: str | os.PathLike) -> Path:
    return Path(results) / "notebooks" / ".stamps" / f"{Path(notebook).stem}.json"


def read_stamp(results: str | os.PathLike, notebook: str | os.PathLike) -> dict[str, Any] | None:
    """The notebook's stamp, or None if it is missing, unreadable or malformed (then it is stale)."""
    try:
        stamp = io.read_json(stamp_path(results, notebook))
    except (OSError, ValueError):
        return None
    ok = lambda v: isinstance(v, dict) and all(isinstance(x, str) for kv in v.items() for x in kv)  # noqa: E731
    return stamp if isinstance(stamp, dict) and ok(stamp.get("inputs")) and ok(stamp.get("outputs")) else None


def why_stale(stamp: Mapping[str, Any] | None, inputs: Mapping[str, str], results: Path) -> str | None:
    """Why the notebook must run (``"never run"``, ``"changed: posts.csv"``, ``"x.png missing"``...), or None."""
    if stamp is None or stamp.get("running"):
        return "interrupted or failed last time" if stamp else "never run"
    if changed := [k for k in {**inputs, **stamp["inputs"]} if inputs.get(k) != stamp["inputs"].get(k)]:
        return "changed: " + "; ".join(INPUT_NAMES.get(k, k) for k in changed)
    for name, sha in sorted(stamp["outputs"].items()):
        if (now := file_hash(Path(results), name)) != sha:
            return f"{name} {'missing' if now is None else 'changed'}"
    return None


def run_study(profile: str = "cpu", overrides: dict[str, Any] | None = None, start: str | None = None,
              only: Sequence[str] | None = None, notebook_dir: str | Path = REPO_ROOT / "notebooks",
              force: bool = False, reads: Mapping[str, Sequence[str]] = READS,
              check: Callable[[Profile], SourceSummary] | None = check_source) -> dict[str, float]:
    """Execute the stale notebooks in order; the wall time [s] of each that ran. ``start`` (``"04"``: it and after),
    ``only`` and ``force`` run the selected ones, stale or not; ``check`` checks the posts first and its summary is
    printed (``None``: not checked, for notebooks other than the study's). StudyFailed at the first failing
    notebook; before running, KeyError / TypeError / ValueError / FileNotFoundError for a bad profile, field,
    value, choice or data (:func:`~msa_utils.data.sources.check_source`)."""
    overrides = resolve_paths(dict(overrides or {}))
    cfg = get_profile(profile, **overrides)  # fail fast on bad names and values
    if not (Path(cfg.data.data_dir).is_dir() or is_table(cfg.data.data_dir) and Path(cfg.data.data_dir).is_file()):
        raise FileNotFoundError(f"data_dir {cfg.data.data_dir} is not a folder nor a table file: give {LAYOUTS}")
    notebooks, forced = study_notebooks(notebook_dir), force or start is not None or bool(only)
    selected = [nb for nb in notebooks if nb.name[:2] >= (start or "") and (not only or nb.name[:2] in only)]
    if not selected:
        asked = " ".join(filter(None, (start and f"--from {start}", only and f"--only {' '.join(only)}")))
        raise ValueError(f"no notebook of {notebook_dir} matches {asked}")
    for line in check(cfg).lines() if check is not None else []:
        print(f"[msa-study] {line}", flush=True)
    results = Path(cfg.results_dir)
    cfg.paths.notebooks.mkdir(parents=True, exist_ok=True)
    context = {"profile": sha256_of(profile, cfg.flat()), "libraries": sha256_of(library_versions()),
               "version": str(STUDY_VERSION), "data": data_digest(source_root(cfg.data.data_dir),
                                                                   [cfg.results_dir, cfg.cache_dir])}
    times, written = {}, []  # written: the files the notebooks so far wrote
    for nb in notebooks:
        stamp = read_stamp(results, nb)
        if nb in selected:
            inputs = notebook_inputs(nb, context, reads.get(nb.name[:2], (DATA, "")), written, results)
            if (reason := "forced" if forced else why_stale(stamp, inputs, results)) is None:
                print(f"[msa-study] {nb.name} up to date, skipped", flush=True)
            else:
                print(f"[msa-study] {nb.name} (profile {profile}; {reason})", flush=True)
                stamp = _run(nb, results, cfg.paths.notebooks / nb.name, profile, overrides, stamp, inputs)
                times[nb.name] = stamp["seconds"]
        written += [name for name in (stamp or {}).get("outputs", {}) if not name.startswith("notebooks/")]
    record = cfg.paths.metrics / "run_times.json"  # this run's times merged in: a partial run keeps the others
    old = io.read_json(record) if record.exists() else {}
    seconds = old.get("seconds", {}) if (old.get("profile"), old.get("overrides")) == (profile, overrides) else {}
    io.write_json(record, {"profile": profile, "overrides": overrides,
                           "seconds": dict(sorted({**seconds, **times}.items()))})
    return times


def _run(nb: Path, results: Path, output: Path, profile: str, overrides: dict[str, Any], stamp: dict[str, Any] | None,
         inputs: dict[str, str]) -> dict[str, Any]:
    """Execute ``nb`` into ``output`` with papermill (its bar over the cells on the terminal; the kernel over IPC,
    not TCP, with ``MSA_PROFILE=profile`` and ``TQDM_DISABLE=1``: no bars saved); return its new stamp."""
    previous = set(stamp["outputs"]) if stamp else set()  # kept: a rerun may reuse finished work
    io.write_json(stamp_path(results, nb), {"inputs": {}, "outputs": {}, **(stamp or {}), "running": True})

    def files() -> dict[str, tuple[int, int]]:  # (size, mtime) of every file but the stamps
        found = (p for p in results.rglob("*") if p.is_file() and ".stamps" not in p.relative_to(results).parts)
        return {p.relative_to(results).as_posix(): (s.st_size, s.st_mtime_ns) for p in found if (s := p.stat())}
    # the kernels run in notebooks/: a relative MSA_RESULTS_DIR / MSA_CACHE_DIR means the caller's, as --set paths do
    folders = {v: str(Path(os.environ[v]).resolve()) for v in ("MSA_RESULTS_DIR", "MSA_CACHE_DIR") if os.environ.get(v)}
    before, t0 = files(), time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="msa-kernel-") as sockets, \
                mock.patch.dict(os.environ, {PROFILE_ENV: profile, "TQDM_DISABLE": "1", **folders}):  # restored after
            pm.execute_notebook(str(nb), str(output), parameters={"profile": profile, "overrides": overrides},
                                cwd=str(nb.parent), kernel_name="python3", progress_bar=True, config=Config(
                                    {"KernelManager": {"transport": "ipc", "ip": str(Path(sockets) / "kernel")}}))
    except Exception as err:  # papermill's execution error, a dead kernel, ...
        print_warnings(nb.name, output)  # what led up to the failure, e.g. a corrupt cache
        cell = f" in cell [{err.exec_count}]" if getattr(err, "exec_count", None) is not None else ""
        what = f"{getattr(err, 'ename', type(err).__name__)}: {getattr(err, 'evalue', err)}"
        raise StudyFailed(f"{nb.name} failed{cell}: {what}\nThe executed notebook, with the traceback, is {output}.\n"
                          "Fix the cause and rerun the same command: notebooks that are up to date are skipped."
                          ) from err
    seconds, after = round(time.perf_counter() - t0, 1), files()
    outputs = sorted({n for n, s in after.items() if before.get(n) != s} | previous & set(after))
    stamp = {"notebook": nb.name, "inputs": inputs, "seconds": seconds,
             "outputs": {name: file_hash(results, name) for name in outputs}}
    io.write_json(stamp_path(results, nb), stamp)
    print(f"[msa-study] {nb.name} done in {seconds:.1f} s; wrote {describe_outputs(outputs)}", flush=True)
    print_warnings(nb.name, output)
    return stamp
