"""Up-to-date checks for the notebook runner: rerun only what is missing or stale.

After a notebook runs to the end, the runner writes a *stamp*,
``<results>/notebooks/.stamps/NN_name.json``, holding

* its **inputs**: a SHA-256 of each thing its results depend on: its code cells, the resolved
  profile (every field, folders included), the source of ``msa_utils``, the data folder, the
  versions of Python and of the declared dependencies, and what the notebooks before it left
  (for each: whether it finished, and the bytes of each file it wrote, as they are *now*);
* its **outputs**: every file under the results folder that it created or changed, with its
  SHA-256.

A notebook is up to date when its stamp is complete, its inputs are the same, and every output
is still there with the same bytes. Just before a notebook runs its stamp is marked *running*,
so a run that is killed or fails part-way stays stale and runs again next time, and so does
every later notebook that ran while it was unfinished. This is the logic of ``make``. A later
notebook depends on the earlier notebooks' files, not on the fact that they ran, so one that
reruns and writes the same bytes does not make the ones after it stale.

The data folder is fingerprinted like ``make`` does, by each file's path, size and modification
time (following links), so that no data file is read and huge files cost nothing; editing a file
changes its modification time. Results and stamps are compared by content.

Not part of the inputs: the feature cache under ``cache/`` (it checks itself) and the network.
A rerun with a network that was missing before does not retranslate by itself: run with
``--from 01`` (or ``--force``).
"""

from __future__ import annotations

import json
import os
import platform
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

from msa_utils import io
from msa_utils.io.hashing import Digest, file_sha256, sha256_of

STAMP_FOLDER = ".stamps"
DISTRIBUTION = "msa-utils"  # this package's name on the index (pyproject.toml)


def source_digest(folder: str | os.PathLike, pattern: str = "*.py") -> str:
    """SHA-256 (hex) over the names and bytes of the files ``pattern`` matches in ``folder``.

    Raises:
        OSError: if a file cannot be read.
    """
    folder = Path(folder)
    digest = Digest()
    for path in sorted(p for p in folder.glob(pattern) if p.is_file()):
        digest.add_file(path.relative_to(folder).as_posix(), path)
    return digest.hexdigest()


def data_digest(folder: str | os.PathLike, exclude: Sequence[str | os.PathLike] = ()) -> str:
    """SHA-256 (hex) over the relative path, size and modification time of every file under ``folder``.

    Linked files and folders are followed (each real folder once, so a link loop ends); a path
    that cannot be examined (a broken link, no permission) counts with its error. No file is
    read. A missing folder has the digest of an empty one.

    Args:
        folder: the data folder.
        exclude: folders left out when they lie strictly inside ``folder`` (a results folder
            kept inside the data folder, say; one that *is* the data folder or holds it is not
            left out, so the data always counts).
    """
    root = Path(folder).resolve()
    skipped = {Path(e).resolve() for e in exclude}
    skipped = {e for e in skipped if e != root and e.is_relative_to(root)}
    digest = Digest()
    seen: set[Path] = set()
    for current, dirs, files in os.walk(root, followlinks=True):
        here = Path(current)
        real = here.resolve()
        if real in seen or here in skipped:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if here / d not in skipped)
        for name in sorted(files):
            path = here / name
            try:
                stat = path.stat()
                state = f"{stat.st_size}:{stat.st_mtime_ns}"
            except OSError as error:
                state = f"error:{error.errno}"
            digest.add(path.relative_to(root).as_posix(), state)
    return digest.hexdigest()


class FileHashes:
    """SHA-256 of files under one folder, computed once per (size, modification time) in a run."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self._memo: dict[tuple[str, int, int], str] = {}

    def __call__(self, name: str) -> str | None:
        """The SHA-256 of ``folder/name``, or ``None`` if it is not a readable regular file."""
        path = self.folder / name
        try:
            if not path.is_file():
                return None
            stat = path.stat()
            key = (name, stat.st_size, stat.st_mtime_ns)
            if key not in self._memo:
                self._memo[key] = file_sha256(path)
            return self._memo[key]
        except OSError:
            return None


def library_versions() -> dict[str, str]:
    """Python and the installed version of each dependency this package declares.

    The dependencies are read from the installed ``msa-utils`` metadata (``pyproject.toml``),
    without the test extras; any of them can change a number in ``results/``.
    """
    versions = {"python": platform.python_version()}
    try:
        requirements = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:  # running from a source tree that was not installed
        return versions | {DISTRIBUTION: "not installed"}
    for requirement in requirements:
        if "extra ==" in requirement:
            continue
        name = re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def notebook_code(notebook: str | os.PathLike) -> list[str]:
    """The sources of a notebook's code cells, in order (outputs and metadata do not count).

    Raises:
        OSError / json.JSONDecodeError: if the notebook cannot be read.
    """
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in cells if c.get("cell_type") == "code"]


@dataclass(frozen=True)
class RunContext:
    """What every notebook of one run depends on, computed once per run.

    Attributes:
        profile: profile name.
        settings: the resolved profile as a plain dict (``Profile.to_dict()``).
        package: :func:`source_digest` of the ``msa_utils`` sources.
        data: :func:`data_digest` of the data folder.
        libraries: :func:`library_versions`.
    """

    profile: str
    settings: Mapping[str, Any]
    package: str
    data: str
    libraries: Mapping[str, str]

    @classmethod
    def of(cls, profile: str, settings: Mapping[str, Any]) -> "RunContext":
        """Fingerprint the package, the data folder ``settings["data_dir"]`` and the libraries.

        The results and cache folders are left out of the data folder's digest when they are
        inside it.
        """
        written = [settings[k] for k in ("results_dir", "cache_dir") if settings.get(k)]
        return cls(profile, dict(settings), source_digest(Path(__file__).parents[1], "**/*.py"),
                   data_digest(settings["data_dir"], exclude=written), library_versions())


def notebook_inputs(notebook: str | os.PathLike, context: RunContext,
                    earlier: Sequence[tuple[str, Mapping[str, Any] | None]], hashes: FileHashes) -> dict[str, str]:
    """SHA-256 (hex) of each thing a notebook's results depend on (see the module docstring).

    Args:
        notebook: the source notebook.
        context: the run's :class:`RunContext`.
        earlier: ``(file name, stamp or None)`` of every notebook before it, in order.
        hashes: hashes of the files under the results folder.

    Returns:
        ``{"code", "profile", "package", "data", "libraries", "upstream"}`` -> digest; two runs
        with equal dicts give the same results.
    """
    upstream = []
    for name, stamp in earlier:
        if stamp is None or stamp.get("running"):
            upstream.append([name, "unfinished"])
        else:
            upstream.append([name, {out: hashes(out) for out in passed_on(stamp["outputs"])}])
    return {"code": sha256_of(notebook_code(notebook)), "profile": sha256_of(context.profile, context.settings),
            "package": context.package, "data": context.data, "libraries": sha256_of(context.libraries),
            "upstream": sha256_of(upstream)}


INPUT_NAMES = {"code": "the notebook's code", "profile": "the profile or an override", "package": "msa_utils",
               "data": "the data folder", "libraries": "a library version",
               "upstream": "the outputs of the notebooks before it"}


def passed_on(outputs: Mapping[str, str]) -> list[str]:
    """The outputs a later notebook depends on: all but the executed notebooks.

    An executed notebook holds wall times and progress bars that differ from run to run; what the
    later notebooks read are the data files.
    """
    return sorted(name for name in outputs if not name.startswith("notebooks/"))


def stamp_path(results_dir: str | os.PathLike, notebook: str | os.PathLike) -> Path:
    """Where the stamp of ``notebook`` lives under ``results_dir``."""
    return Path(results_dir) / "notebooks" / STAMP_FOLDER / f"{Path(notebook).stem}.json"


def read_stamp(results_dir: str | os.PathLike, notebook: str | os.PathLike) -> dict[str, Any] | None:
    """The stamp of ``notebook``, or ``None`` if it is missing, unreadable or malformed (then the
    notebook is stale)."""
    path = stamp_path(results_dir, notebook)
    try:
        stamp = io.read_json(path)
    except (OSError, ValueError):
        return None

    def str_map(value: Any) -> bool:
        return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())

    valid = isinstance(stamp, dict) and str_map(stamp.get("inputs")) and str_map(stamp.get("outputs"))
    return stamp if valid else None


def why_stale(stamp: Mapping[str, Any] | None, inputs: Mapping[str, str], hashes: FileHashes) -> str | None:
    """Why a notebook must run, or ``None`` if it is up to date.

    Args:
        stamp: from :func:`read_stamp`.
        inputs: from :func:`notebook_inputs`, for this run.
        hashes: hashes of the files under the results folder the stamp's outputs are relative to.

    Returns:
        A short reason (``"never run"``, ``"interrupted or failed last time"``, ``"changed:
        msa_utils"``, ``"figures/x.png missing"``, ``"REPORT.md changed"``, ...) or ``None``.
    """
    if stamp is None:
        return "never run"
    if stamp.get("running"):
        return "interrupted or failed last time"
    changed = [INPUT_NAMES.get(name, name) for name in inputs if stamp["inputs"].get(name) != inputs[name]]
    if changed:
        return "changed: " + "; ".join(changed)
    for name, sha in sorted(stamp["outputs"].items()):
        now = hashes(name)
        if now is None:
            return f"{name} missing"
        if now != sha:
            return f"{name} changed"
    return None


def snapshot(results_dir: str | os.PathLike) -> dict[str, tuple[int, int]]:
    """``{relative path: (size, mtime_ns)}`` of every file under ``results_dir`` except the stamps."""
    results_dir = Path(results_dir)
    if not results_dir.exists():
        return {}
    out = {}
    for path in results_dir.rglob("*"):
        name = path.relative_to(results_dir).as_posix()
        if path.is_file() and f"/{STAMP_FOLDER}/" not in f"/{name}":
            stat = path.stat()
            out[name] = (stat.st_size, stat.st_mtime_ns)
    return out


def mark_running(results_dir: str | os.PathLike, notebook: str | os.PathLike,
                 stamp: Mapping[str, Any] | None) -> list[str]:
    """Mark ``notebook``'s stamp as running (so it is stale until it ends) and return its outputs.

    Args:
        stamp: its current stamp (:func:`read_stamp`), or ``None``.

    The output names are kept in the stamp: a rerun that reuses finished work (a trained variant,
    say) does not rewrite those files, and they must stay recorded as the notebook's outputs.
    """
    stamp = stamp or {"inputs": {}, "outputs": {}}
    io.write_json(stamp_path(results_dir, notebook), {**stamp, "running": True})
    return sorted(stamp["outputs"])


def write_stamp(results_dir: str | os.PathLike, notebook: str | os.PathLike, inputs: Mapping[str, str],
                before: Mapping[str, tuple[int, int]], seconds: float, previous: Sequence[str] = (),
                hashes: FileHashes | None = None) -> dict[str, Any]:
    """Record that ``notebook`` ran to the end: its inputs and the files it wrote.

    Args:
        inputs: from :func:`notebook_inputs`.
        before: :func:`snapshot` of the results folder taken just before the notebook ran.
        seconds: its wall time [s].
        previous: its outputs from the last run (:func:`mark_running`); those still present
            stay outputs even if this run did not rewrite them.
        hashes: the run's :class:`FileHashes` of ``results_dir``, so that the later notebooks'
            checks reuse these hashes instead of reading the files again.

    Returns:
        The stamp written: ``{"notebook", "inputs", "seconds", "outputs": {path: sha256}}``.
    """
    hashes = hashes or FileHashes(results_dir)
    after = snapshot(results_dir)
    written = {name for name, state in after.items() if before.get(name) != state}
    kept = {name for name in previous if name in after}
    stamp = {"notebook": Path(notebook).name, "inputs": dict(inputs), "seconds": seconds,
             "outputs": {name: hashes(name) for name in sorted(written | kept)}}
    io.write_json(stamp_path(results_dir, notebook), stamp)
    return stamp


