"""Atomic file writes and untrusted-checkpoint loading.

Every file the project writes goes to a temporary file in the same directory and is renamed
into place, so an interrupted run never leaves a half-written checkpoint, log or report behind.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from rascal_train.errors import RascalError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
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
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise RascalError(f"{path} line {i + 1} is not JSON; the log is corrupt, "
                              "re-run training or remove that line.") from None
    return records


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` made atomic: serialise to memory, then write-and-rename."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


#: Classes a checkpoint may hold besides tensors and plain values: data only, nothing whose
#: unpickling can run code. ``argparse.Namespace`` is the ``opt`` of SupContrast's ``save_model``.
SAFE_GLOBALS = (argparse.Namespace,)


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
        raise RascalError(f"Checkpoint {path} does not exist; pass the path of a .pt file written by `rascal train`.")
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            raise RascalError(
                f"Checkpoint {path} holds objects that a weights-only load refuses (code or custom "
                "classes); only tensors, plain values and an argparse.Namespace are accepted (checkpoints of "
                "`rascal train`, SupContrast, Lightning / solo-learn, torchvision state dicts)."
            ) from None
        raise RascalError(f"{path} is not a readable PyTorch checkpoint; pass a .pt file written by "
                          "`rascal train`.") from None
    except Exception as exc:  # noqa: BLE001 - any failure to parse untrusted bytes is the same user error
        raise RascalError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}); "
                          "pass a .pt file written by `rascal train`.") from None
    if not isinstance(obj, dict):
        raise RascalError(f"{path} holds a {type(obj).__name__}, not a checkpoint dict; "
                          "pass a .pt file written by `rascal train`.")
    return obj
