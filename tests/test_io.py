"""Atomic writes and checkpoint loading as untrusted input."""

import os

import pytest
import torch

from rascal_train.errors import RascalError
from rascal_train.io import atomic_torch_save, atomic_write_json, atomic_write_text, load_checkpoint


class Payload:
    """A custom class: a weights-only load must refuse it (it could run code)."""


def test_atomic_write_replaces_whole_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "a.json"
    atomic_write_json(target, {"x": 1})
    atomic_write_text(target, "second\n")
    assert target.read_text() == "second\n"
    assert os.listdir(target.parent) == ["a.json"]


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "ckpt.pt"
    atomic_torch_save({"w": torch.ones(2)}, target)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_torch_save({"w": torch.zeros(2)}, target)
    assert torch.equal(load_checkpoint(target)["w"], torch.ones(2))
    assert os.listdir(tmp_path) == ["ckpt.pt"]


@pytest.mark.parametrize("content,match", [
    (None, "does not exist"),
    (b"hello\n", "not a readable PyTorch checkpoint"),
    ("custom", "weights-only load refuses"),
    ("list", "not a checkpoint dict"),
])
def test_bad_checkpoints_are_one_line_errors(tmp_path, content, match):
    path = tmp_path / "x.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "custom":
        torch.save({"obj": Payload()}, path)
    elif content == "list":
        torch.save([torch.ones(1)], path)
    with pytest.raises(RascalError, match=match) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_read_jsonl_skips_only_a_torn_last_line(tmp_path):
    from rascal_train.io import read_jsonl

    log = tmp_path / "train_log.jsonl"
    assert read_jsonl(log) == []
    log.write_text('{"epoch": 1}\n\n{"epoch": 2}\n{"epo')
    assert read_jsonl(log) == [{"epoch": 1}, {"epoch": 2}]
    log.write_text('{"epoch": 1}\n{"epo\n{"epoch": 2}\n')
    with pytest.raises(RascalError, match="line 2 is not JSON"):
        read_jsonl(log)
