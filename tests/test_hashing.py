"""The one hashing helper: fields are labelled and length-prefixed, every value type counts."""

import hashlib
import os

import numpy as np
import pytest
import torch

from msa_utils.io import hashing
from msa_utils.io.hashing import Digest, file_sha256, sha256_of


def test_file_sha256_reads_in_chunks(tmp_path):
    data = os.urandom(600_000)  # several of hashlib.file_digest's 256 KiB reads
    (tmp_path / "blob").write_bytes(data)
    assert file_sha256(tmp_path / "blob") == hashlib.sha256(data).hexdigest()


def test_field_boundaries_cannot_collide():
    assert Digest().add("x", "ab").add("y", "c").hexdigest() != Digest().add("x", "a").add("y", "bc").hexdigest()
    assert Digest().add("a", "v").hexdigest() != Digest().add("b", "v").hexdigest()
    assert sha256_of("1") != sha256_of(1)  # a string and a JSON number are different values


def test_tensors_hash_by_dtype_shape_and_bytes():
    t = torch.arange(6, dtype=torch.float32)
    assert sha256_of(t) == sha256_of(t.clone())
    assert sha256_of(t) != sha256_of(t.reshape(2, 3))
    assert sha256_of(t) != sha256_of(t.to(torch.float64))
    assert sha256_of(t.T if t.dim() > 1 else t) == sha256_of(t.contiguous())
    assert sha256_of(t.to(torch.bfloat16)) != sha256_of(t.to(torch.float16))
    assert sha256_of(np.arange(6)) != sha256_of(np.arange(6).reshape(2, 3))


def test_json_is_canonical_and_modules_are_refused():
    assert sha256_of({"a": 1, "b": [1, 2]}) == sha256_of({"b": [1, 2], "a": 1})
    with pytest.raises(TypeError, match="not source text"):
        sha256_of(hashing)  # a key never hashes source text: a docstring edit must not change it


def test_file_field_depends_on_content(tmp_path):
    (tmp_path / "a").write_bytes(b"one")
    (tmp_path / "b").write_bytes(b"two")
    assert Digest().add_file("f", tmp_path / "a").hexdigest() != Digest().add_file("f", tmp_path / "b").hexdigest()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.int64])
def test_tensor_chunks_hash_like_the_whole_tensor(dtype):
    whole = (torch.arange(7 * 3 * 2) - 20).reshape(7, 3, 2).to(dtype)
    chunks = [whole[:3], whole[3:3], whole[3:]]
    assert (Digest().add("x", 1).add_tensor_chunks("t", dtype, whole.shape, chunks).hexdigest()
            == Digest().add("x", 1).add("t", whole).hexdigest())
    with pytest.raises(ValueError, match="bytes"):
        Digest().add_tensor_chunks("t", dtype, whole.shape, chunks[:1])
    with pytest.raises(ValueError, match="chunk of"):
        Digest().add_tensor_chunks("t", torch.float64, whole.shape, chunks)
