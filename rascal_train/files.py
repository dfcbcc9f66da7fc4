"""Atomic file writes, output checks and untrusted-checkpoint loading.

Every file the project writes goes to a temporary file in the same directory and is renamed
into place, so an interrupted run never leaves a half-written checkpoint, log or report behind.
A temporary file is named ``.<name>.<pid>.<random>.tmp``; one whose writer is gone (a process
killed mid-write, SIGKILL included) is removed by the next write of the same name.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from rascal_train.errors import RascalError


_TEMP_PID = re.compile(r"\.(\d+)\.[^.]+\.tmp$")


def _umask() -> int:
    """The process umask, read without changing it where Linux shows it (another thread may be
    creating files); elsewhere set and restored."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _writer_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_stale_temps(directory: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove the temporary files of writers that are gone; returns what was removed.

    Parameters
    ----------
    directory : path
        Where to look (not recursive).
    name : str, optional
        Only the temporaries of this target file name; ``None``: every ``.*.tmp`` file.

    A temporary whose name carries the pid of a live process on this machine is another
    writer's work in progress and is kept; any other (a killed writer's, or one without a pid)
    is removed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for tmp in directory.glob(f".{glob.escape(name)}.*.tmp" if name else ".*.tmp"):
        match = _TEMP_PID.search(tmp.name)
        if match and _writer_alive(int(match.group(1))):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``.

    The file gets the permissions a plain ``open()`` would give it (``0o666`` less the umask),
    not the ``0o600`` of :func:`tempfile.mkstemp`, so a group can read shared results.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                               suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Records of a JSON-lines file (``train_log.jsonl``); ``[]`` when it does not exist.

    A torn last line (a run killed mid-write) is skipped; a bad line anywhere else is a
    :class:`RascalError`, since appends only ever tear the last one.
    """
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise RascalError(f"{path} is not UTF-8 text; the log is corrupt, re-run training or "
                          "remove the file.") from None
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise RascalError(f"{path} line {i + 1} is not JSON; the log is corrupt, "
                              "re-run training or remove that line.") from None
        if not isinstance(record, dict):
            raise RascalError(f"{path} line {i + 1} holds a JSON {type(record).__name__}, not a "
                              "log record (an object); the log is corrupt, re-run training or "
                              "remove that line.")
        records.append(record)
    return records


def check_output(path: str | os.PathLike, *, folder: bool = False, inputs=(),
                 suffixes: tuple[str, ...] = ()) -> Path:
    """Make sure ``path`` can be written, before any work that ends by writing it.

    Parameters
    ----------
    path : path
        The output file (or, with ``folder=True``, the output folder).
    folder : bool, default=False
    inputs : iterable of paths
        Files and folders the command reads; an output that is one of them is refused.
    suffixes : tuple of str
        Suffixes (``".json"``) of the files this output may replace; an existing file of another
        kind (a checkpoint, the input embeddings) is refused rather than overwritten.

    Returns
    -------
    Path

    Raises
    ------
    RascalError
        If the path is empty, a folder where a file is meant (or the reverse), an input, an
        existing file of another kind, or under a file or a folder that cannot be written.
    """
    if str(path) == "":
        raise RascalError("The output path is empty; pass a path.")
    path = Path(path)
    what = "folder" if folder else "file"
    refuse_input(path, inputs)
    if path.exists():
        if folder and not path.is_dir():
            raise RascalError(f"The output folder {path} is a file; pass a folder path.")
        if not folder and path.is_dir():
            raise RascalError(f"The output file {path} is a folder; pass a file path.")
        if not folder and suffixes and path.suffix.lower() not in suffixes:
            raise RascalError(f"The output {path} exists and is not a {'/'.join(suffixes)} file; "
                              "refusing to replace it, choose another output file.")
    nearest = path if folder else path.parent
    while not nearest.exists() and nearest != nearest.parent:
        nearest = nearest.parent
    if not nearest.is_dir():
        raise RascalError(f"The output {path} cannot be written: {nearest} is a file, not a "
                          f"folder; choose another output {what}.")
    try:
        with tempfile.TemporaryFile(dir=nearest):
            pass
    except OSError as exc:
        raise RascalError(f"The output {path} cannot be written: {nearest} is not writable "
                          f"({exc.strerror}); choose another output {what}.") from None
    return path


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` made atomic: serialise to memory, then write-and-rename."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


#: Classes a checkpoint may hold besides tensors and plain values: data only, nothing whose
#: unpickling can run code. ``argparse.Namespace`` is the ``opt`` of SupContrast's ``save_model``.
SAFE_GLOBALS = (argparse.Namespace,)


def refuse_input(output: str | os.PathLike, inputs) -> None:
    """One-line error when ``output`` is one of ``inputs`` (writing it would replace that input)."""
    resolved = Path(output).resolve()
    for source in inputs:
        if Path(source).resolve() == resolved:
            raise RascalError(f"The output {output} is also an input of this command; writing it "
                              "would replace the input, so choose another output.")


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a checkpoint as untrusted input (``weights_only=True``, :data:`SAFE_GLOBALS` allowed).

    Raises
    ------
    RascalError
        If the file is missing, not a checkpoint, or holds objects other than tensors and
        plain JSON-like values.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise RascalError(f"Checkpoint {path} does not exist; pass the path of a .pt file written "
                          "by `rascal train`.")
    with open(path, "rb") as fh:
        head = fh.read(2)
    # a zip archive (torch >= 1.6) or a legacy pickle stream
    if head != b"PK" and head[:1] != b"\x80":
        raise RascalError(f"{path} is not a readable PyTorch checkpoint (neither a zip archive nor "
                          "a pickle); pass a .pt file written by `rascal train`.")
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            raise RascalError(
                f"Checkpoint {path} holds objects that a weights-only load refuses (code or custom "
                "classes); only tensors, plain values and an argparse.Namespace are accepted "
                "(checkpoints of `rascal train`, SupContrast, Lightning / solo-learn, torchvision "
                "state dicts)."
            ) from None
        raise RascalError(f"{path} is not a readable PyTorch checkpoint; pass a .pt file written "
                          "by `rascal train`.") from None
    except Exception as exc:  # noqa: BLE001 - any failure to parse untrusted bytes is the same user error
        raise RascalError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}); "
                          "pass a .pt file written by `rascal train`.") from None
    if not isinstance(obj, dict):
        raise RascalError(f"{path} holds a {type(obj).__name__}, not a checkpoint dict; "
                          "pass a .pt file written by `rascal train`.")
    return obj
