"""Where a model runs and in which precision: the one resolution every command shares.

``resolve_device`` turns ``"auto" | "cpu" | "cuda" | "cuda:N"`` into a ``torch.device`` with an
explicit index, so that everything downstream (the model, the kNN search, FAISS, pinned memory,
the precision check) names the same GPU rather than whichever one is current. Under ``torchrun``
each process takes the GPU of its ``LOCAL_RANK``. ``autocast_dtype`` picks the training
precision from the chosen device's compute capability and ``autocast`` enters it;
``device_scope`` makes that device the current one for code that only looks at the current device.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import warnings

import torch

from rascal_train.errors import RascalError
from rascal_train.names import PRECISIONS

# The device of the command in progress (see device_scope): what ``device=None`` means inside it.
_SCOPE: contextvars.ContextVar[torch.device | None] = contextvars.ContextVar("rascal_device",
                                                                             default=None)

#: The first compute capability with bf16 tensor cores (Ampere); older GPUs only emulate bf16,
#: and ``torch.cuda.is_bf16_supported()`` says yes to emulation unless told otherwise.
BF16_MIN_CAPABILITY = 8


def _local_rank() -> int | None:
    """This process's ``LOCAL_RANK`` under ``torchrun`` (more than one process), else ``None``."""
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1:
        return None
    return int(os.environ.get("LOCAL_RANK", 0))


def resolve_device(device=None) -> torch.device:
    """The device a command runs on, with the GPU index made explicit.

    Parameters
    ----------
    device : str, torch.device or None, default=None
        ``None``: the device of the enclosing :func:`device_scope`, else as ``"auto"``.
        ``"auto"``: a GPU when CUDA sees one, else the CPU. ``"cuda"``: a GPU.
        ``"cuda:N"``: GPU ``N`` (under ``torchrun``, where each process takes the GPU of its
        ``LOCAL_RANK``, only ``N = LOCAL_RANK``). ``"cpu"``. Resolving a resolved device returns it.

    Returns
    -------
    torch.device
        ``cpu``, or ``cuda:N`` with ``N`` below ``torch.cuda.device_count()``: the current GPU
        in one process, ``LOCAL_RANK``'s under ``torchrun``.

    Raises
    ------
    RascalError
        For an unknown device, a GPU asked for where CUDA sees none, an index past the visible
        GPUs, or ``cuda:N`` other than ``LOCAL_RANK``'s under ``torchrun``.
    """
    if device is None and _SCOPE.get() is not None:
        return _SCOPE.get()
    if device is None or device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        device = "cuda"
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise RascalError(f"Unknown device {device!r}; pass --device auto, cpu, cuda or "
                          "cuda:N.") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise RascalError(f"Unknown device {str(device)!r}; pass --device auto, cpu, cuda or "
                          "cuda:N.")
    if not torch.cuda.is_available():
        raise RascalError(f"--device {device} was asked for but no CUDA device is visible; pass "
                          "--device cpu.")
    local = _local_rank()
    if device.index is not None and local is not None and device.index != local:
        # (cuda:LOCAL_RANK itself passes: it is what this function returned for "cuda".)
        raise RascalError(f"--device {device} under torchrun would put every process on one GPU; "
                          "pass --device cuda (each process takes the GPU of its LOCAL_RANK) and "
                          "choose the GPUs with CUDA_VISIBLE_DEVICES.")
    index = device.index if device.index is not None else (local if local is not None
                                                           else torch.cuda.current_device())
    count = torch.cuda.device_count()
    if index >= count:
        what = f"LOCAL_RANK={index}" if device.index is None else f"--device cuda:{index}"
        raise RascalError(f"{what} names a GPU that does not exist: {count} visible "
                          f"(cuda:0..cuda:{count - 1}); start at most {count} processes per node "
                          "or pick another GPU.")
    return torch.device("cuda", index)


@contextlib.contextmanager
def device_scope(device: torch.device):
    """Run a command on ``device``: inside, ``resolve_device(None)`` is ``device``, and on a GPU
    it is also CUDA's current device.

    Library functions called without a device (the neighbour search inside a metric, say) then
    follow the command's ``--device`` (``cpu`` included), and FAISS and pinned memory, which read
    CUDA's current device, create no context on GPU 0.
    """
    token = _SCOPE.set(device)
    try:
        with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
            yield device
    finally:
        _SCOPE.reset(token)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a training run, ``None`` for float32.

    Parameters
    ----------
    precision : {"auto", "fp32", "bf16", "fp16"}
        ``"auto"``: bf16 on a GPU of compute capability 8 or more (Ampere and later), fp16 with a
        ``GradScaler`` on older GPUs (V100, T4), where bf16 is only emulated.
    device : torch.device
        The resolved device; a CPU always trains in float32.

    Returns
    -------
    torch.dtype or None
    """
    if precision not in PRECISIONS:
        raise RascalError(f"The 'precision' parameter must be one of {', '.join(PRECISIONS)}. "
                          f"Got {precision!r} instead.")
    if device.type != "cuda" or precision == "fp32":
        return None
    major, minor = torch.cuda.get_device_capability(device)
    if precision == "auto":
        dtype = torch.bfloat16 if major >= BF16_MIN_CAPABILITY else torch.float16
    else:
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        if dtype == torch.bfloat16 and major < BF16_MIN_CAPABILITY:
            warnings.warn(f"{device} (compute capability {major}.{minor}) has no bf16 tensor "
                          "cores: bf16 runs emulated and slowly; --precision fp16 or auto is "
                          "faster there.", stacklevel=2)
    return dtype


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast to ``dtype`` on ``device``, or autocast off (float32) where ``dtype`` is ``None``.

    Parameters
    ----------
    device : torch.device
    dtype : torch.dtype or None
        As :func:`autocast_dtype` returns it.

    Returns
    -------
    torch.autocast
        A context manager.
    """
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def describe(device: torch.device, dtype: torch.dtype | None = None) -> str:
    """One line saying where and how a command runs: ``"cuda:0 (NVIDIA H100, capability 9.0), bf16
    autocast"``, ``"cpu, fp32"``."""
    where = str(device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        where += f" ({torch.cuda.get_device_name(device)}, capability {major}.{minor})"
    return f"{where}, " + ("fp32" if dtype is None else f"{str(dtype).removeprefix('torch.')} "
                                                        "autocast")
