"""Run the whole study: notebooks 01-07 in order with papermill, on one profile.

Usage::

    msa-study                      # the default ``cpu`` profile
    msa-study --profile smoke      # seconds, for a check
    msa-study --profile paper      # the paper's FLAVA model, on a GPU with hub access
    msa-study --from 04            # rerun from notebook 04 on, up to date or not
    msa-study --force              # rerun every notebook
    msa-study --set max_epochs=5   # override a profile field (value parsed as JSON)

A notebook whose inputs (its code, the profile, ``msa_utils``, the data, the library versions,
the outputs of the notebooks before it) and outputs are unchanged since it last ran to the end
is skipped (see :mod:`msa_utils.runner.stamps`); so rerunning the same command after a crash, a
Ctrl-C or a kill redoes only what is missing or stale. Each executed notebook is saved under
``<results_dir>/notebooks/``; the warnings it logged are repeated on the terminal
(:func:`notebook_warnings`). The run stops at the first failing notebook with a message naming
the notebook, the cell and the error, and exits with 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from msa_utils import io
from msa_utils.runner import stamps
from msa_utils.config.profiles import PROFILE_ENV, PROFILES, REPO_ROOT, get_profile

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


class StudyFailed(RuntimeError):
    """A notebook of the study failed; the message names the notebook, the cell and the error.

    Attributes:
        notebook: file name of the failing notebook.
        output: the executed copy, saved with the traceback.
    """

    def __init__(self, notebook: str, output: Path, cause: Exception) -> None:
        cell = getattr(cause, "exec_count", None)
        what = f"{getattr(cause, 'ename', type(cause).__name__)}: {getattr(cause, 'evalue', cause)}"
        super().__init__(
            f"{notebook} failed" + (f" in cell [{cell}]" if cell is not None else "") + f": {what}\n"
            f"The executed notebook, with the traceback, is {output}.\n"
            "Fix the cause and rerun the same command: notebooks that are up to date are skipped."
        )
        self.notebook, self.output = notebook, output


def study_notebooks(folder: str | Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered notebooks ``NN_*.ipynb`` of ``folder``, in order.

    Raises:
        FileNotFoundError: if there are none.
    """
    found = sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no numbered notebooks in {folder}")
    return found


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Turn ``["max_epochs=5", "translate=false"]`` into ``{"max_epochs": 5, "translate": False}``.

    Values are parsed as JSON where possible, else kept as strings.

    Raises:
        ValueError: for an item without ``=``.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def run_study(
    profile: str = "cpu",
    overrides: dict[str, Any] | None = None,
    start: str | None = None,
    only: Sequence[str] | None = None,
    notebook_dir: str | Path = NOTEBOOK_DIR,
    force: bool = False,
) -> dict[str, float]:
    """Execute the numbered notebooks that are stale, in order, with papermill.

    Args:
        profile: profile name (see :mod:`msa_utils.config.profiles`).
        overrides: profile fields to override, passed to every notebook.
        start: run the notebook whose number prefix is ``start`` (e.g. ``"04"``) and all after
            it, up to date or not.
        only: run just the notebooks with these number prefixes, up to date or not.
        notebook_dir: folder of the source notebooks.
        force: run every selected notebook, up to date or not. Without ``start``, ``only`` or
            ``force``, a notebook that is up to date (:func:`msa_utils.runner.stamps.why_stale`) is
            skipped.

    Returns:
        The wall time [s] of each notebook that ran, by file name (skipped ones are left out).

    Raises:
        StudyFailed: at the first failing notebook (its executed copy is saved first); the
            notebooks after it are not run.
        KeyError / TypeError / ValueError: for an unknown profile, field or bad value (checked
            before running).
        FileNotFoundError: if the profile's ``data_dir`` is not a folder.
    """
    overrides = resolve_paths(dict(overrides or {}))
    cfg = get_profile(profile, **overrides)  # fail fast on bad names and values
    if not Path(cfg.data_dir).is_dir():
        raise FileNotFoundError(f"data_dir {cfg.data_dir} is not a folder (the MVSA layout: data/, train.txt, "
                                "test_without_label.txt)")
    out_dir = cfg.paths.notebooks
    out_dir.mkdir(parents=True, exist_ok=True)
    notebooks = study_notebooks(notebook_dir)
    start = _two_digits(start) if start is not None else None
    only = [_two_digits(n) for n in only] if only else only
    selected = [nb for nb in notebooks
                if (start is None or nb.name[:2] >= start) and (not only or nb.name[:2] in set(only))]
    if not selected:
        asked = " ".join(part for part in (f"--from {start}" if start else "",
                                           f"--only {' '.join(only)}" if only else "") if part)
        raise ValueError(f"no notebook of {notebook_dir} matches {asked}")
    force = force or start is not None or bool(only)
    results_dir = Path(cfg.results_dir)
    context = stamps.RunContext.of(profile, cfg.to_dict())
    hashes = stamps.FileHashes(results_dir)
    times: dict[str, float] = {}
    earlier: list[tuple[str, dict | None]] = []  # (notebook, its stamp) of those before this one
    for nb in notebooks:
        stamp = stamps.read_stamp(results_dir, nb)
        if nb not in selected:
            earlier.append((nb.name, stamp))
            continue
        inputs = stamps.notebook_inputs(nb, context, earlier, hashes)
        reason = "forced" if force else stamps.why_stale(stamp, inputs, hashes)
        if reason is None:
            print(f"[msa-study] {nb.name} up to date, skipped", flush=True)
            earlier.append((nb.name, stamp))
            continue
        output = out_dir / nb.name
        print(f"[msa-study] {nb.name} (profile {profile}; {reason})", flush=True)
        previous = stamps.mark_running(results_dir, nb, stamp)  # a run that dies part-way stays stale
        before = stamps.snapshot(results_dir)
        t0 = time.perf_counter()
        try:
            _execute(nb, output, profile, overrides)
        except Exception as err:  # papermill's execution error, a dead kernel, ...
            _print_warnings(nb.name, output)  # what led up to the failure, e.g. a corrupt cache
            raise StudyFailed(nb.name, output, err) from err
        times[nb.name] = round(time.perf_counter() - t0, 1)
        stamp = stamps.write_stamp(results_dir, nb, inputs, before, times[nb.name], previous, hashes)
        earlier.append((nb.name, stamp))
        print(f"[msa-study] {nb.name} done in {times[nb.name]:.1f} s; wrote {describe_outputs(stamp['outputs'])}",
              flush=True)
        _print_warnings(nb.name, output)
    _record_times(cfg.paths.metrics / "run_times.json", profile, overrides, times)
    return times


def _execute(notebook: Path, output: Path, profile: str, overrides: dict[str, Any]) -> None:
    """Run one notebook with papermill: parameters injected, a tqdm bar over its cells.

    The kernel talks to papermill over IPC (Unix sockets in a temporary folder), not TCP: nothing
    listens on a network port, and ipykernel has no reason to warn about unencrypted TCP.
    ``$MSA_PROFILE`` is set to ``profile`` for the kernel, so that
    :func:`msa_utils.runner.notebook.setup` cannot pick up another profile from the caller's environment.

    Raises:
        Exception: papermill's ``PapermillExecutionError`` (with the failing cell), or a kernel error.
    """
    import papermill as pm  # imported here so that ``--help`` stays fast
    from traitlets.config import Config

    saved = os.environ.get(PROFILE_ENV)
    os.environ[PROFILE_ENV] = profile
    try:
        with tempfile.TemporaryDirectory(prefix="msa-kernel-") as sockets:
            pm.execute_notebook(
                str(notebook), str(output),
                parameters={"profile": profile, "overrides": overrides},
                cwd=str(notebook.parent), kernel_name="python3", progress_bar=True,
                config=Config({"KernelManager": {"transport": "ipc", "ip": str(Path(sockets) / "kernel")}}),
            )
    finally:
        if saved is None:
            os.environ.pop(PROFILE_ENV, None)
        else:
            os.environ[PROFILE_ENV] = saved


def _print_warnings(name: str, output: Path) -> None:
    """Print the warnings of the executed notebook ``output`` (:func:`notebook_warnings`), if any;
    a notebook that died before papermill saved it has none to print."""
    try:
        warned = notebook_warnings(output)
    except Exception:  # noqa: BLE001 (no readable executed copy: nothing to repeat)
        return
    if warned:
        print(f"[msa-study] {name}: {len(warned)} warning{'s' if len(warned) > 1 else ''} (in {output}):\n  "
              + "\n  ".join(warned), flush=True)


def notebook_warnings(path: str | Path) -> list[str]:
    """The warnings an executed notebook logged, in cell order: the first line of each record that
    :func:`msa_utils.runner.notebook.log_warnings` wrote to a cell's stderr (``WARNING {logger}: ...``
    or ``ERROR ...``), repeats of the same line kept once.

    Raises:
        OSError / nbformat errors: if ``path`` is not a readable notebook.
    """
    import nbformat

    from msa_utils.runner.notebook import WARNING_PREFIX

    found: dict[str, None] = {}
    for cell in nbformat.read(path, as_version=4).cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                for line in output.get("text", "").replace("\r", "\n").splitlines():
                    if line.startswith((WARNING_PREFIX, "ERROR ")):
                        found.setdefault(line.rstrip(), None)
    return list(found)


def describe_outputs(outputs: Sequence[str] | dict[str, str], shown: int = 4) -> str:
    """A short account of the files a notebook wrote, for the runner's one line per notebook.

    ``["metrics/full.json", "metrics/full_history.csv", "REPORT.md"]`` gives
    ``"REPORT.md, metrics/ (2 files)"``: top-level files by name, folders with their file count,
    the executed notebooks left out; at most ``shown`` items, then ``"and N more"``.
    """
    groups: dict[str, int] = {}
    for name in sorted(outputs):
        if name.startswith("notebooks/"):
            continue
        top, sep, _ = name.partition("/")
        key = f"{top}/" if sep else top
        groups[key] = groups.get(key, 0) + 1
    items = [key if not key.endswith("/") else f"{key} ({n} file{'s' if n > 1 else ''})" for key, n in groups.items()]
    if not items:
        return "no result files"
    more = len(items) - shown
    return ", ".join(items[:shown]) + (f" and {more} more" if more > 0 else "")


def _two_digits(number: str) -> str:
    """``"4"`` -> ``"04"`` (notebook prefixes); anything else unchanged."""
    return f"{int(number):02d}" if str(number).isdigit() else str(number)


PATH_FIELDS = ("data_dir", "results_dir", "cache_dir")


def resolve_paths(overrides: dict[str, Any]) -> dict[str, Any]:
    """Make relative folder overrides absolute, relative to the current directory.

    The notebooks run with ``notebooks/`` as their working directory, so a relative path must be
    resolved where the user typed it. A ``flava_name_or_path`` that exists as a local folder is
    resolved too; otherwise it is a hub id and kept.
    """
    out = dict(overrides)
    for key in PATH_FIELDS:
        if isinstance(out.get(key), str):
            out[key] = str(Path(out[key]).expanduser().resolve())
    flava = out.get("flava_name_or_path")
    if isinstance(flava, str) and Path(flava).expanduser().exists():
        out["flava_name_or_path"] = str(Path(flava).expanduser().resolve())
    return out


def _record_times(path: Path, profile: str, overrides: dict[str, Any], times: dict[str, float]) -> None:
    """Merge this run's notebook times into ``run_times.json`` (a partial run keeps the others)."""
    old = io.read_json(path) if path.exists() else {}
    seconds = old.get("seconds", {}) if old.get("profile") == profile and old.get("overrides") == overrides else {}
    seconds.update(times)
    io.write_json(path, {"profile": profile, "overrides": overrides, "seconds": dict(sorted(seconds.items()))})


def _fields_help() -> str:
    """The profile fields ``--set`` accepts, with their defaults in the ``cpu`` profile."""
    defaults = PROFILES["cpu"].to_dict()
    lines = [f"  {name} = {json.dumps(value)}" for name, value in defaults.items() if name != "name"]
    return "profile fields for --set KEY=VALUE (defaults of the cpu profile; msa_utils/config/profiles.py documents them):\n" + "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point ``msa-study``; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="msa-study", description=__doc__, epilog=_fields_help(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    parser.add_argument("--from", dest="start", metavar="NN", help="start at notebook NN (e.g. 04)")
    parser.add_argument("--only", nargs="+", metavar="NN", help="run only these notebooks")
    parser.add_argument("--force", action="store_true", help="rerun every notebook, even those up to date")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a profile field (repeatable)")
    args = parser.parse_args(argv)
    try:
        times = run_study(args.profile, parse_overrides(args.overrides), args.start, args.only, force=args.force)
    except StudyFailed as err:
        print(f"\n[msa-study] FAILED: {err}", file=sys.stderr)
        return 1
    except (KeyError, TypeError, ValueError, OSError) as err:
        print(f"[msa-study] error: {err}", file=sys.stderr)
        return 2
    print(f"[msa-study] done: {len(times)} notebook(s) ran in {sum(times.values()):.0f} s; "
          "the others were up to date", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
