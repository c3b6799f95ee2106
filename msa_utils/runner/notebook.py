"""What a notebook calls first, after its parameters cell of literals (papermill's convention):
``cfg = setup(profile, overrides)``; and how ``msa-study`` reports a notebook's run (its warnings, the
files it wrote)."""

import contextlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import torch

from msa_utils.config.profiles import PROFILE_ENV, Profile, get_profile
from msa_utils.report.plots import set_style
from msa_utils.config.runtime import WARNING_PREFIX, allow_tf32, log_warnings, set_seed


def notebook_warnings(path: str | os.PathLike) -> list[str]:
    """The warnings an executed notebook logged: its cells' stderr lines that start with :data:`WARNING_PREFIX` or
    ``ERROR ``, in order, each once. OSError / ValueError / KeyError if ``path`` is not a readable notebook."""
    outputs = (output for cell in json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
               for output in cell.get("outputs", []))
    texts = ("".join(o.get("text", "")) for o in outputs  # text: a list of lines or one string
             if o.get("output_type") == "stream" and o.get("name") == "stderr")
    return list(dict.fromkeys(line.rstrip() for text in texts for line in text.replace("\r", "\n").splitlines()
                              if line.startswith((WARNING_PREFIX, "ERROR "))))


def print_warnings(name: str, output: Path) -> None:
    """Print the warnings the executed notebook ``output`` logged (none if it cannot be read), as ``msa-study`` does."""
    with contextlib.suppress(Exception):  # a notebook that died before papermill saved it has none
        if warned := notebook_warnings(output):
            print(f"[msa-study] {name}: {len(warned)} warning{'s' if len(warned) > 1 else ''} (in {output}):\n  "
                  + "\n  ".join(warned), flush=True)


def describe_outputs(outputs: Sequence[str], shown: int = 4) -> str:
    """``"REPORT.md, metrics/ (2 files)"``: top-level files, folders with their file count (executed
    notebooks left out), at most ``shown`` items, then ``"and N more"``."""
    groups = Counter(top + sep for top, sep, _ in (n.partition("/") for n in sorted(outputs)))
    groups.pop("notebooks/", None)
    items = [k if not k.endswith("/") else f"{k} ({n} file{'s' if n > 1 else ''})" for k, n in groups.items()]
    more = len(items) - shown
    return (", ".join(items[:shown]) + (f" and {more} more" if more > 0 else "")) if items else "no result files"


def setup(profile: str = "cpu", overrides: dict[str, Any] | None = None, *, announce: bool = True) -> Profile:
    """The profile ``$MSA_PROFILE`` (else ``profile``) with ``overrides``, the process set up for it: every seed
    fixed, TF32 allowed for a bf16 profile on CUDA, ``cfg.num_threads`` torch threads, the plotting defaults and
    :func:`log_warnings`; ``announce`` prints one line (profile, backbone, device, results folder).
    KeyError / TypeError / ValueError for an unknown profile, field or bad value."""
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
