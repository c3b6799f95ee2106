"""What a notebook calls first: :func:`setup`.

Every notebook has a parameters cell of literals (papermill's convention) and then::

    cfg = setup(profile, overrides)

which resolves the profile, fixes every random seed (:mod:`msa_utils.runtime`), sets torch's CPU
threads and the plotting defaults (:func:`msa_utils.plots.set_style`), and prints one line
saying what runs where.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from .profiles import PROFILE_ENV, Profile, get_profile
from .plots import set_style
from .runtime import allow_tf32, set_seed

def setup(profile: str = "cpu", overrides: dict[str, Any] | None = None, *, announce: bool = True) -> Profile:
    """Resolve the profile and set the process up for it; the first call of every notebook.

    The profile is ``$MSA_PROFILE`` when that is set (see :data:`PROFILE_ENV`), else ``profile``;
    ``overrides`` are applied on top (:func:`msa_utils.profiles.get_profile`). Then: every seed
    is fixed to ``cfg.seed`` (:func:`set_seed`), TF32 is allowed on CUDA for a bf16 profile
    (:func:`msa_utils.runtime.allow_tf32`), torch uses ``cfg.num_threads`` CPU threads
    when set, and the plotting defaults are applied (:func:`msa_utils.plots.set_style`).

    Args:
        profile: the profile name of the notebook's parameters cell.
        overrides: profile fields to change (papermill passes ``msa-study --set`` values).
        announce: print one line: profile, backbone, device and results folder.

    Returns:
        The resolved :class:`~msa_utils.profiles.Profile`.

    Raises:
        KeyError / TypeError / ValueError: for an unknown profile, field or bad value.
    """
    cfg = get_profile(os.environ.get(PROFILE_ENV) or profile, **(overrides or {}))
    set_seed(cfg.seed)
    allow_tf32(cfg.precision)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    set_style()
    if announce:
        print(f"profile {cfg.name}: backbone {cfg.backbone}, device {cfg.device}, seed {cfg.seed}, "
              f"results in {cfg.results_dir}")
    return cfg
