"""The run directory: which run it holds, where a resume starts, and who may write it.

A run directory is ``config.json`` (written first), ``train_log.jsonl``, ``checkpoints/`` and a
``.lock`` file. A run killed before its first checkpoint has a config and perhaps a log but no
checkpoint; it continues from epoch 0, which (the run being deterministic) ends where an
uninterrupted run ends.

One process trains in a run directory at a time: :func:`lock_run_dir` holds an exclusive
``flock`` on ``.lock`` (released by the kernel when the process dies, SIGKILL included) and
writes ``pid N on HOST`` into it, so a second writer is refused with the holder's name.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path
from typing import Iterator

from rascal_train.errors import RascalError

CONFIG_NAME = "config.json"
LOCK_NAME = ".lock"


def last_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """``checkpoints/last.pt`` of ``run_dir`` when it exists, else ``None``."""
    last = Path(run_dir) / "checkpoints" / "last.pt"
    return last if last.is_file() else None


def resume_source(path: str | os.PathLike) -> tuple[Path, Path | None]:
    """Where ``--resume PATH`` continues: ``(run_dir, checkpoint or None)``.

    ``PATH`` is a checkpoint or a run directory; a run directory without a checkpoint yet (a
    run killed in its first epoch) gives ``None`` and the run restarts from epoch 0.

    Raises
    ------
    RascalError
        If ``PATH`` is a folder that holds no run.
    """
    path = Path(path)
    if path.is_dir():
        run_dir = path.resolve()
        ckpt = last_checkpoint(run_dir)
        if ckpt is None and not (run_dir / CONFIG_NAME).is_file():
            raise RascalError(f"{path} holds no run (no checkpoints/last.pt, no config.json); pass "
                              "the run directory or a checkpoint written by `rascal train`.")
        return run_dir, ckpt
    resolved = path.resolve()
    run_dir = resolved.parent.parent if resolved.parent.name == "checkpoints" else resolved.parent
    return run_dir, path


def read_run_config(run_dir: str | os.PathLike) -> dict | None:
    """The ``config.json`` of ``run_dir`` as a dict, or ``None`` when there is none.

    Raises
    ------
    RascalError
        If the file is not a JSON object (not a rascal run's config).
    """
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        values = None
    if not isinstance(values, dict) or "loss" not in values or "seed" not in values:
        raise RascalError(f"{path} is not the config of a rascal run; choose another --out "
                          "(nothing there was changed).")
    return values


@contextlib.contextmanager
def lock_run_dir(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold the run directory's lock for the body; a second holder gets a one-line error.

    Creates the directory. The lock is advisory (``fcntl.flock``), taken by every ``rascal``
    process that writes a run, and dies with its holder.

    Raises
    ------
    RascalError
        If another process holds the lock; the message names it (pid and host).
    """
    import fcntl

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise RascalError(f"Run directory {run_dir} is being written by {holder}; wait for it "
                              "to finish or choose another --out.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield run_dir
    finally:
        os.close(fd)  # releases the lock
