"""Atomic writes and checkpoint loading as untrusted input."""

import os
import re

import pytest
import torch

from rascal_train.errors import RascalError
from rascal_train.files import (atomic_torch_save, atomic_write_json, atomic_write_text,
                                load_checkpoint)


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
    from rascal_train.files import read_jsonl

    log = tmp_path / "train_log.jsonl"
    assert read_jsonl(log) == []
    log.write_text('{"epoch": 1}\n\n{"epoch": 2}\n{"epo')
    assert read_jsonl(log) == [{"epoch": 1}, {"epoch": 2}]
    log.write_text('{"epoch": 1}\n{"epo\n{"epoch": 2}\n')
    with pytest.raises(RascalError, match="line 2 is not JSON"):
        read_jsonl(log)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_honour_the_umask_like_open(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "report.html", "<p>")
        atomic_torch_save({"w": torch.ones(1)}, tmp_path / "ckpt.pt")
        with open(tmp_path / "plain.txt", "w") as fh:
            fh.write("x")
    finally:
        os.umask(old)
    for name in ("report.html", "ckpt.pt", "plain.txt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name


def test_a_killed_writers_temporary_is_swept_by_the_next_write(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".fig.svg.{dead}.k3j2x9aa.tmp"       # its writer is gone
    # written before temporaries carried a pid
    legacy = tmp_path / ".fig.svg.abcdefgh.tmp"
    live = tmp_path / f".fig.svg.{os.getppid()}.zzzzzzzz.tmp"  # a live writer's work in progress
    # another file's: left to its own next write
    other = tmp_path / f".other.svg.{dead}.k3j2x9aa.tmp"
    for path in (stale, legacy, live, other):
        path.write_text("partial")
    atomic_write_text(tmp_path / "fig.svg", "<svg/>")
    assert sorted(os.listdir(tmp_path)) == sorted(["fig.svg", live.name, other.name])


def test_check_output_refuses_what_cannot_or_must_not_be_written(tmp_path):
    from rascal_train.files import check_output

    blocker = tmp_path / "file"
    blocker.write_text("x")
    ckpt = tmp_path / "epoch_0001.pt"
    ckpt.write_bytes(b"PK")
    cases = [
        (dict(path=""), "The output path is empty"),
        (dict(path=blocker / "sub" / "r.html"), f"{blocker} is a file, not a folder"),
        (dict(path="/proc/r.html"), "/proc is not writable"),
        (dict(path=blocker, folder=True), f"The output folder {blocker} is a file"),
        (dict(path=tmp_path, folder=False), f"The output file {tmp_path} is a folder"),
        (dict(path=ckpt, suffixes=(".json",)), f"The output {ckpt} exists and is not a .json file"),
        (dict(path=ckpt, inputs=[ckpt]), "is also an input"),
    ]
    for kwargs, message in cases:
        with pytest.raises(RascalError, match=re.escape(message)):
            check_output(**kwargs)
    assert (check_output(tmp_path / "new" / "deeper" / "r.html")
            == tmp_path / "new" / "deeper" / "r.html")
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_a_json_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "eval.json"
    path.write_text('{"epoch": 1}')
    with pytest.raises(RascalError,
                       match="not a readable PyTorch checkpoint \\(neither a zip archive nor a "
                             "pickle\\)"):
        load_checkpoint(path)


@pytest.mark.parametrize("text", ['[1, 2]\n', '"step"\n', b'\xff\xfe{"epoch": 1}\n'])
def test_read_jsonl_refuses_records_that_are_not_objects(tmp_path, text):
    from rascal_train.files import read_jsonl

    log = tmp_path / "train_log.jsonl"
    log.write_bytes(text if isinstance(text, bytes) else ('{"epoch": 1}\n' + text).encode())
    with pytest.raises(RascalError, match="the log is corrupt"):
        read_jsonl(log)
