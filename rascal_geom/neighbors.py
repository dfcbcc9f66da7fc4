"""Inner-product neighbour search: one entry point, three backends chosen once per process.

Exact by default; ``method="approx"`` (or ``"auto"`` on a large bank) searches a FAISS IVF-Flat
index instead (:mod:`rascal_geom.approx`), on every visible GPU with the FAISS GPU build and on
the CPU otherwise.

Backends (``select_backend``):

- ``"faiss_gpu"``: FAISS brute force on a GPU (``faiss.knn_gpu``) when a GPU build of FAISS is
  importable and sees a GPU; with several GPUs the bank is sharded across all of them
  (``faiss.index_cpu_to_all_gpus`` with ``shard=True``: each GPU holds and searches 1/G of the
  rows, FAISS merges the top-k). FAISS GPU cannot return more than 2,048 neighbours; larger requests
  go to the torch path on the same GPU. FAISS's temporary memory is sized from the GPU's free
  memory (it lives outside torch's allocator), and all queries go in one call, so the bank is
  copied to the GPU once.
- ``"torch"``: blocked matmul + ``topk`` in torch, on CUDA when present, else on the CPU. On the
  2-core development CPU it is the fastest exact path (10,000 queries against 50,000 x 512,
  k = 201: 5.4 s, against 21 s for ``faiss.knn`` and ``IndexFlatIP``, whose wheel keeps its SIMD
  kernel below 128,000 queries and is slower still with BLAS forced), so it is also the CPU default.
  Given several GPUs (``devices=``), query blocks go round-robin to them, the bank copied to each.
- ``"faiss_cpu"``: ``faiss.knn`` on the CPU (selectable with ``backend=`` or
  ``RASCAL_KNN_BACKEND``).

Every backend returns the same neighbours up to ties, in the same shapes and dtypes: similarities
``float32 (n_queries, k)`` in descending order and indices ``int64 (n_queries, k)``.

The CPU and GPU builds of FAISS (``faiss-cpu``; ``faiss-gpu``) install the same ``faiss``
package, so with both installed the one that loads depends on install order:
:func:`faiss_build` says which one did, and :func:`backend_note` says so in one line.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import os

import numpy as np
import torch

from rascal_geom import approx
from rascal_train.devices import device_scope, resolve_device
from rascal_train.errors import RascalError
from rascal_train.progress import track

BACKENDS = ("faiss_gpu", "torch", "faiss_cpu")
FAISS_GPU_MAX_K = 2048
#: The distributions that install the ``faiss`` package (the FAISS project's and community builds).
FAISS_DISTRIBUTIONS = {"faiss-cpu": "cpu", "faiss-gpu": "gpu", "faiss-gpu-cu12": "gpu",
                       "faiss-gpu-cu11": "gpu"}
# Query blocks of the torch path: on the CPU at most 2,048 rows and 1 GiB of similarities; on a
# GPU at most 8,192 rows and a quarter of the free memory (top-k's workspace takes about as much
# again), so that a bank of 1.28 M rows does not ask for 10 GB per block.
MAX_CHUNK = {"cpu": 2048, "cuda": 8192}
_CPU_BLOCK_BYTES = 1 << 30
_GPU_FREE_SHARE = 0.25


def faiss_build() -> dict:
    """Which FAISS build Python loads, and which distributions claim the ``faiss`` package.

    Returns
    -------
    dict
        ``"build"``: ``"gpu"`` (the module has ``StandardGpuResources``), ``"cpu"``, or ``None``
        when ``faiss`` does not import; ``"version"``: str or None; ``"gpus"``: GPUs FAISS sees;
        ``"installed"``: the installed distributions of :data:`FAISS_DISTRIBUTIONS`;
        ``"conflict"``: one line when a CPU and a GPU build are both installed, else None.
    """
    installed = []
    for name in FAISS_DISTRIBUTIONS:
        try:
            installed.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    kinds = {FAISS_DISTRIBUTIONS[entry.split()[0]] for entry in installed}
    try:
        import faiss
    except ImportError:
        build, version, gpus = None, None, 0
    else:
        build = "gpu" if hasattr(faiss, "StandardGpuResources") else "cpu"
        version = getattr(faiss, "__version__", None)
        gpus = faiss.get_num_gpus() if build == "gpu" else 0
    conflict = None
    if kinds == {"cpu", "gpu"}:
        conflict = (f"{' and '.join(installed)} are installed and share the faiss package, so the "
                    f"{build} build loaded by install order; uninstall both and install one (pip "
                    "install -e '.[gpu]' for the GPU build).")
    return {"build": build, "version": version, "gpus": gpus, "installed": installed,
            "conflict": conflict}


def _faiss_gpu_available() -> bool:
    info = faiss_build()
    return info["build"] == "gpu" and info["gpus"] > 0


@functools.lru_cache(maxsize=1)
def select_backend() -> str:
    """The process-wide default backend (``RASCAL_KNN_BACKEND`` overrides the automatic choice)."""
    forced = os.environ.get("RASCAL_KNN_BACKEND")
    if forced:
        if forced not in BACKENDS:
            raise RascalError(f"RASCAL_KNN_BACKEND={forced!r} is not a backend; use one of "
                              f"{', '.join(BACKENDS)}.")
        return forced
    if _faiss_gpu_available():
        return "faiss_gpu"
    return "torch"


def backend_note(backend: str | None = None, device=None) -> str:
    """One line naming the neighbour-search backend and why it, for a command to print.

    E.g. ``"neighbour search: torch on cuda:0 (faiss-cpu 1.15.1: the CPU build)"``, with a warning
    appended when both FAISS builds are installed.
    """
    backend = backend or select_backend()
    info = faiss_build()
    if backend == "faiss_gpu":
        where = f"FAISS {info['version']} GPU build, {info['gpus']} GPU(s) visible"
    elif backend == "faiss_cpu":
        where = f"FAISS {info['version']} on the CPU"
    else:
        where = f"torch on {resolve_device(device)}"
    if info["build"] is None:
        why = "faiss does not import"
    elif info["build"] == "cpu":
        why = f"{', '.join(info['installed']) or 'faiss'}: the CPU build"
    else:
        why = f"FAISS GPU build, {info['gpus']} GPU(s)" if backend != "faiss_gpu" else ""
    if os.environ.get("RASCAL_KNN_BACKEND"):
        why = f"RASCAL_KNN_BACKEND={os.environ['RASCAL_KNN_BACKEND']}"
    note = f"neighbour search: {where}" + (f" ({why})" if why else "")
    return note + (f"; warning: {info['conflict']}" if info["conflict"] else "")


@functools.lru_cache(maxsize=None)
def _gpu_resources(index: int):
    """FAISS's resources on GPU ``index``, its temporary memory sized from what is free now.

    FAISS reserves that memory outside torch's allocator: a fixed default (up to 1.5 GiB and
    more on large cards) could take what torch's cache has just released.
    """
    import faiss

    res = faiss.StandardGpuResources()
    free, _ = torch.cuda.mem_get_info(index)
    res.setTempMemory(int(min(1 << 30, _GPU_FREE_SHARE * free)))
    return res


def chunk_rows(n_bank: int, device: torch.device) -> int:
    """Queries per block: a block's similarities ``rows * n_bank`` float32 fit in a budget.

    On a GPU the budget is a quarter of the free memory (torch's cache counted as free); on
    the CPU 1 GiB. At most :data:`MAX_CHUNK` of the device type, at least 1.
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        budget = _GPU_FREE_SHARE * free
    else:
        budget = _CPU_BLOCK_BYTES
    return int(max(1, min(MAX_CHUNK[device.type], budget // (4 * max(1, n_bank)))))


@contextlib.contextmanager
def _faiss_threads():
    """Cap FAISS's OpenMP pool at torch's thread count so the two never oversubscribe the cores."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _as_float32(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def _import_faiss(backend: str):
    try:
        import faiss
    except ImportError:
        raise RascalError(f"The {backend} neighbour search needs FAISS, which is not installed; "
                          "install rascal[cpu] (faiss-cpu) or rascal[gpu] (faiss-gpu), or unset "
                          "RASCAL_KNN_BACKEND to search with torch.") from None
    return faiss


def _all_gpus(cpu_index):
    """``cpu_index`` cloned onto every GPU FAISS sees, its rows sharded (1/G of the bank on
    each)."""
    faiss = _import_faiss("faiss_gpu")
    options = faiss.GpuMultipleClonerOptions()
    options.shard = True
    return faiss.index_cpu_to_all_gpus(cpu_index, co=options)


def _faiss_search(queries: np.ndarray, bank: np.ndarray, k: int, backend: str,
                  device: torch.device):
    faiss = _import_faiss(backend)
    if backend == "faiss_cpu":
        with _faiss_threads():
            sims, idx = faiss.knn(queries, bank, k, metric=faiss.METRIC_INNER_PRODUCT)
    elif faiss.get_num_gpus() > 1:
        flat = faiss.IndexFlatIP(bank.shape[1])
        flat.add(bank)
        sims, idx = _all_gpus(flat).search(queries, k)
    else:
        # One call for all queries: FAISS tiles them in its temporary memory and copies the
        # bank to the GPU once (a call per block would copy it once per block).
        index = device.index if device.type == "cuda" else torch.cuda.current_device()
        sims, idx = faiss.knn_gpu(_gpu_resources(index), queries, bank, k,
                                  metric=faiss.METRIC_INNER_PRODUCT, device=index)
    return sims, idx.astype(np.int64)


def _approx_search(queries: np.ndarray, bank: np.ndarray, k: int, exclude_self: bool, backend: str,
                   seed: int, progress: bool):
    """IVF search (:mod:`rascal_geom.approx`): a FAISS ``IndexIVFFlat`` sharded over every GPU with
    the ``faiss_gpu`` backend, else the cell-at-a-time search on the CPU."""
    bar = lambda it: track(it, "neighbours (IVF)", disable=not progress)  # noqa: E731
    if backend != "faiss_gpu":
        with _faiss_threads():
            return approx.cell_search(queries, bank, k, exclude_self, seed, progress=bar)
    faiss = _import_faiss(backend)
    index = _all_gpus(approx.ivf_index(bank, seed))
    faiss.GpuParameterSpace().set_index_parameter(index, "nprobe", approx.ivf_params(len(bank))[1])
    sims, idx = index.search(queries, k + int(exclude_self))
    if exclude_self:
        sims, idx = _drop_self(sims, idx, np.arange(len(idx)))
    sims[idx < 0] = -np.inf
    return sims, idx.astype(np.int64)


def _torch_search(queries: np.ndarray, bank: np.ndarray, k_search: int, exclude_self: bool,
                  devices: list[torch.device], chunk_size: int | None, progress: bool):
    """Blocked matmul + top-k; block ``j`` runs on ``devices[j % G]`` (CUDA launches are
    asynchronous, so one round's blocks overlap), and a round is copied back before the next
    starts."""
    banks = [torch.from_numpy(bank).to(d) for d in devices]
    chunk_size = min(chunk_size or chunk_rows(bank.shape[0], devices[0]), queries.shape[0])
    # One similarity block per device, written in place: a fresh 1 GiB block per step costs the
    # CPU its page faults again (~10% of the search at 50,000 x 512).
    sims_blocks = [torch.empty(chunk_size, bank.shape[0], device=d) for d in devices]
    starts = list(range(0, queries.shape[0], chunk_size))
    out_s, out_i, pending = [], [], []
    for j, start in enumerate(track(starts, "neighbours", disable=not progress)):
        g = j % len(devices)
        block = torch.from_numpy(queries[start:start + chunk_size]).to(devices[g])
        sims = torch.matmul(block, banks[g].T, out=sims_blocks[g][:len(block)])
        pending.append((start, torch.topk(sims, k_search, dim=1)))
        if len(pending) < len(devices) and j < len(starts) - 1:
            continue
        for first, (sims, idx) in pending:
            sims, idx = sims.cpu().numpy(), idx.cpu().numpy().astype(np.int64)
            if exclude_self:
                sims, idx = _drop_self(sims, idx, np.arange(first, first + len(idx)))
            out_s.append(sims)
            out_i.append(idx)
        pending = []
    return np.concatenate(out_s), np.concatenate(out_i)


def visible_gpus() -> list[torch.device]:
    """Every GPU torch sees (empty without CUDA)."""
    return ([torch.device("cuda", i) for i in range(torch.cuda.device_count())]
            if torch.cuda.is_available() else [])


def knn_search(queries, bank, k: int, exclude_self: bool = False, backend: str | None = None,
               chunk_size: int | None = None, progress: bool = False, device=None,
               method: str = "exact", seed: int = 0, devices=None) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` inner-product neighbours of each query row in ``bank``, exact or approximate.

    Parameters
    ----------
    queries : array-like of shape (n_queries, dim), float
        Rows to search for (L2-normalise them first for cosine neighbours).
    bank : array-like of shape (n_bank, dim), float
        Rows searched. With ``exclude_self=True`` it must be ``queries`` itself.
    k : int
        Neighbours per query, ``1 <= k <= n_bank`` (``n_bank - 1`` with ``exclude_self``).
    exclude_self : bool, default=False
        Leave-one-out search: query ``i`` never returns index ``i``, even when duplicates tie with
        it.
    backend : {"faiss_gpu", "torch", "faiss_cpu"} or None, default=None
        ``None`` uses :func:`select_backend`.
    chunk_size : int or None, default=None
        Queries per block of the torch path; bounds memory at ``chunk_size * n_bank``
        similarities. ``None`` sizes it from the device's free memory (:func:`chunk_rows`).
    progress : bool, default=False
        Show a progress bar over the query blocks.
    device : str, torch.device or None, default=None
        The GPU (or CPU) of the torch and FAISS GPU paths, as ``--device`` takes it
        (:func:`rascal_train.devices.resolve_device`; ``None``: the current GPU, else the CPU).
    method : {"exact", "approx", "auto"}, default="exact"
        ``"approx"``: FAISS IVF-Flat (:mod:`rascal_geom.approx`; FAISS GPU sharded over every
        GPU with the ``faiss_gpu`` backend, FAISS on the CPU otherwise); ``"auto"``: approximate
        from :data:`rascal_geom.approx.APPROX_MIN_ROWS` bank rows on.
    seed : int, default=0
        Seed of the approximate index's k-means.
    devices : sequence of torch.device or None, default=None
        GPUs the torch path splits its query blocks over (``None``: ``device`` alone).

    Returns
    -------
    sims : ndarray of shape (n_queries, k), float32
        Inner products, descending along each row; an approximate search pads a row whose
        probed cells held fewer than ``k`` rows with ``-inf``.
    idx : ndarray of shape (n_queries, k), int64
        Bank indices of the neighbours (``-1`` for padding).
    """
    queries, bank = _as_float32(queries), _as_float32(bank)
    backend = backend or select_backend()
    if backend not in BACKENDS:
        raise RascalError("The 'backend' parameter of knn_search must be one of "
                          f"{', '.join(BACKENDS)}. Got {backend!r} instead.")
    if queries.ndim != 2 or bank.ndim != 2 or queries.shape[1] != bank.shape[1]:
        raise RascalError(f"knn_search needs 2-D queries and bank of the same width; got shapes "
                          f"{queries.shape} and {bank.shape}.")
    if exclude_self and queries.shape[0] != bank.shape[0]:
        raise RascalError("knn_search(exclude_self=True) needs queries to be the bank itself.")
    limit = bank.shape[0] - int(exclude_self)
    if not 1 <= k <= limit:
        raise RascalError(f"The 'k' parameter of knn_search must be an int in [1, {limit}]. Got "
                          f"{k} instead.")
    if approx.resolve_method(method, bank.shape[0]) == "approx":
        return _approx_search(queries, bank, k, exclude_self, backend, seed, progress)
    k_search = k + int(exclude_self)
    device = resolve_device(device) if backend != "faiss_cpu" else torch.device("cpu")
    if backend != "torch" and not (backend == "faiss_gpu" and k_search > FAISS_GPU_MAX_K):
        with device_scope(device):
            sims, idx = _faiss_search(queries, bank, k_search, backend, device)
        if exclude_self:
            sims, idx = _drop_self(sims, idx, np.arange(len(idx)))
        return sims, idx
    # The torch path; FAISS GPU stops at k = 2,048, so larger requests come here too.
    devices = [device] if device.type != "cuda" or not devices else list(devices)
    return _torch_search(queries, bank, k_search, exclude_self, devices, chunk_size, progress)


def _drop_self(sims: np.ndarray, idx: np.ndarray, self_idx: np.ndarray):
    """Remove each row's own index (or, when a tie pushed it out, the last column)."""
    keep = idx != self_idx[:, None]
    keep[keep.all(axis=1), -1] = False
    n, k = idx.shape
    return sims[keep].reshape(n, k - 1), idx[keep].reshape(n, k - 1)


def grouped_knn(emb, groups, k: int, backend: str | None = None,
                rows=None) -> tuple[np.ndarray, np.ndarray]:
    """Exact leave-one-out neighbours of rows among the rows of their own group.

    Parameters
    ----------
    emb : array-like of shape (n_samples, dim), float
    groups : array-like of shape (n_samples,), int
        Group of each row (a class, or a coarse class).
    k : int
        Neighbours per row; a group of size ``m`` yields ``min(k, m - 1)`` of them.
    rows : array-like of shape (n_queries,), int, or None, default=None
        The rows searched for (a subsample; every group keeps all its rows as the bank);
        ``None``: every row.

    Returns
    -------
    sims : ndarray of shape (n_queries, k), float32
        Padded with ``-inf`` where the group is too small.
    idx : ndarray of shape (n_queries, k), int64
        Global row indices, padded with ``-1``.
    """
    emb = _as_float32(emb)
    groups = np.asarray(groups)
    rows = np.arange(len(emb)) if rows is None else np.asarray(rows)
    sims = np.full((len(rows), k), -np.inf, dtype=np.float32)
    idx = np.full((len(rows), k), -1, dtype=np.int64)
    row_groups = groups[rows]
    for g in np.unique(row_groups):
        members = np.flatnonzero(groups == g)
        mine = np.flatnonzero(row_groups == g)
        kk = min(k, len(members) - 1)
        if kk < 1:
            continue
        bank = emb if len(members) == len(emb) else emb[members]  # one group: no copy of the set
        s, i = knn_search(emb[rows[mine]], bank, kk + 1, backend=backend)
        s, i = _drop_self(s, members[i], rows[mine])
        sims[mine, :kk] = s
        idx[mine, :kk] = i
    return sims, idx
