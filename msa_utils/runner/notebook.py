"""What a notebook calls first: :func:`setup`.

Every notebook has a parameters cell of literals (papermill's convention) and then::

    cfg = setup(profile, overrides)

which resolves the profile, fixes every random seed (:mod:`msa_utils.config.runtime`), sets torch's CPU
threads and the plotting defaults (:func:`msa_utils.report.plots.set_style`), sends warnings to the
cell's stderr with a :data:`WARNING_PREFIX` (:func:`log_warnings`; ``msa-study`` reads them back with
:func:`notebook_warnings`), and prints one line saying what runs where.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import torch

from msa_utils.config.profiles import PROFILE_ENV, Profile, get_profile
from msa_utils.report.plots import set_style
from msa_utils.config.runtime import allow_tf32, set_seed

#: How a logged warning's line starts in a notebook's stderr: ``msa-study`` finds them by it
#: (:func:`notebook_warnings`) and repeats them on the terminal.
WARNING_PREFIX = "WARNING "
_HANDLER_NAME = "msa_utils.runner.notebook"


def log_warnings() -> logging.Handler:
    """Send every ``logging`` record of level WARNING or above, and every ``warnings.warn``
    (``logging.captureWarnings``), to ``sys.stderr`` as ``WARNING {logger}: {message}`` (or
    ``ERROR ...``), one handler on the root logger, added once however often this is called.

    Without it, a logged warning (e.g. a rebuilt feature cache, :mod:`msa_utils.features.feature_cache`)
    reaches the notebook through ``logging``'s last-resort handler with no level or source, and
    nothing marks it for the runner. Returns the handler.
    """
    root = logging.getLogger()
    for handler in root.handlers:
        if handler.get_name() == _HANDLER_NAME:
            return handler
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    logging.captureWarnings(True)
    return handler


def notebook_warnings(path: str | os.PathLike) -> list[str]:
    """The warnings an executed notebook logged (:func:`log_warnings`), in cell order, each once: the
    lines of the cells' stderr that start with :data:`WARNING_PREFIX` or ``ERROR ``.

    Raises:
        OSError / ValueError / KeyError: if ``path`` is not a readable notebook.
    """
    found: dict[str, None] = {}
    for cell in json.loads(Path(path).read_text(encoding="utf-8"))["cells"]:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                text = "".join(output.get("text", ""))  # a list of lines or one string
                for line in text.replace("\r", "\n").splitlines():
                    if line.startswith((WARNING_PREFIX, "ERROR ")):
                        found.setdefault(line.rstrip(), None)
    return list(found)


def setup(profile: str = "cpu", overrides: dict[str, Any] | None = None, *, announce: bool = True) -> Profile:
    """Resolve the profile and set the process up for it; the first call of every notebook.

    The profile is ``$MSA_PROFILE`` when that is set (see :data:`PROFILE_ENV`), else ``profile``;
    ``overrides`` are applied on top (:func:`msa_utils.config.profiles.get_profile`). Then: every seed
    is fixed to ``cfg.seed`` (:func:`set_seed`), TF32 is allowed on CUDA for a bf16 profile
    (:func:`msa_utils.config.runtime.allow_tf32`), torch uses ``cfg.num_threads`` CPU threads
    when set, the plotting defaults are applied (:func:`msa_utils.report.plots.set_style`),
    and warnings go to stderr marked with :data:`WARNING_PREFIX` (:func:`log_warnings`).

    Args:
        profile: the profile name of the notebook's parameters cell.
        overrides: profile fields to change (papermill passes ``msa-study --set`` values).
        announce: print one line: profile, backbone, device and results folder.

    Returns:
        The resolved :class:`~msa_utils.config.profiles.Profile`.

    Raises:
        KeyError / TypeError / ValueError: for an unknown profile, field or bad value.
    """
    cfg = get_profile(os.environ.get(PROFILE_ENV) or profile, **(overrides or {}))
    set_seed(cfg.seed)
    allow_tf32(cfg.features.precision)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    set_style()
    log_warnings()
    if announce:
        print(f"profile {cfg.name}: backbone {cfg.features.backbone}, device {cfg.device}, seed {cfg.seed}, "
              f"results in {cfg.results_dir}")
    return cfg
