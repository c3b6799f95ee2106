"""Atomic writes: the target is either the old file or the whole new one, never a truncated one."""

import os
import stat

import pytest
import torch
from safetensors.torch import load_file, save_file

from msa_utils import io


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = io.write_text(tmp_path / "report.csv", "guid,reason\n1,old\n")
    with pytest.raises(RuntimeError, match="crash"):
        with io.atomic_path(target) as tmp:
            tmp.write_text("guid,reason\n1,new, half writ")
            raise RuntimeError("crash in the middle of a write")
    assert target.read_text() == "guid,reason\n1,old\n"
    assert os.listdir(tmp_path) == ["report.csv"]


def test_files_get_the_usual_permissions_even_when_the_writer_replaces_the_temporary(tmp_path):
    expected = 0o666 & ~io._umask()
    with io.atomic_path(tmp_path / "state.safetensors") as tmp:
        save_file({"w": torch.arange(4.0)}, str(tmp))  # safetensors writes a new file over tmp
    written = tmp_path / "state.safetensors"
    assert stat.S_IMODE(written.stat().st_mode) == expected
    assert torch.equal(load_file(str(written))["w"], torch.arange(4.0))
    assert stat.S_IMODE(io.write_json(tmp_path / "m.json", {"a": 1}).stat().st_mode) == expected
