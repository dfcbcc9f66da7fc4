"""``analyze``: every structure diagnostic of one embedding set, as one JSON-able dict.

The dict follows the ``rascal.analysis/1`` schema that ``rascal report`` reads; the CLI and the
demo both call :func:`analyze`, and so can a notebook. Every per-class result in it has one shape
(:func:`rascal_geom.runs.per_class`): ``{"classes": [name, ...], "<field>": [value, ...], ...}``.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import resource
import time
from pathlib import Path

import numpy as np
from torch import nn

from rascal_geom.embeddings import EmbeddingSet, embed_model, file_digest, load_embeddings
from rascal_geom.evaluation import probe_settings
from rascal_geom.hierarchies import Hierarchy, get_hierarchy
from rascal_geom.metrics import (
    attribute_consistency,
    calibration,
    cdnv,
    cka,
    classifier_collapse,
    fit_linear_probe,
    geodesic_variance,
    geometry_summary,
    hierarchy_retention,
    holdout_probe_accuracy,
    knn_accuracies,
    rank_stability,
    rankme,
    retrieval_k,
    retrieval_metrics,
    within_coarse_retrieval,
)
from rascal_geom import approx
from rascal_geom.knn_check import check_search
from rascal_geom.metrics._inputs import UnitRows, kept_precision
from rascal_geom.metrics.knn import KNN_TEMPERATURE, knn_correct
from rascal_geom.metrics.linear_probe import holdout_split
from rascal_geom.neighbors import knn_search, select_backend, visible_gpus
from rascal_geom.runs import ANALYSIS_SCHEMA, per_class
from rascal_geom.sampling import stratified_sample
from rascal_train.errors import RascalError
from rascal_train.names import EMBEDDINGS
from rascal_train.progress import console

# Classes larger than this use rank stability's top-k form (exact ranks cost O(n_c^2 log n_c)).
EXACT_RANK_MAX_CLASS = 2000
RANK_TOPK = 50
# Past these sizes a stage runs on a seeded subsample stratified by the analysed level, its size
# written in the JSON (``samples``). Each bounds a cost that grows faster than n * k: the probe's
# L-BFGS (n x classes logits per step), the searches within coarse classes and classes (n x class
# size), and exact rank stability (class size^2 per class). Below them every row is used.
PROBE_MAX_SAMPLES = 20_000
WITHIN_CLASS_QUERIES = 100_000
RANK_MAX_ANCHORS = 50_000
# Retrieval needs k = largest class - 1 neighbours; where the kNN stage's search is narrower, a
# seeded sample of this many queries searches the whole set (~1 s at 50,000 x 512).
RETRIEVAL_QUERIES = 2000
RETRIEVAL_KS = (1, 2, 4, 8)
CALIBRATION_BINS = 15


def run_checkpoints(run_dir: str | os.PathLike) -> tuple[Path, list[Path]]:
    """A run directory's final checkpoint and its earlier per-epoch checkpoints (by epoch)."""
    run_dir = Path(run_dir)
    epochs = sorted((run_dir / "checkpoints").glob("epoch_*.pt"))
    final = next((p for p in (run_dir / "last.pt", run_dir / "checkpoints" / "last.pt")
                  if p.is_file()), None)
    if final is None and epochs:
        final = epochs[-1]
    if final is None:
        raise RascalError(f"{run_dir} holds no checkpoint (last.pt or checkpoints/epoch_NNNN.pt); "
                          "pass a run directory written by `rascal train`.")
    # last.pt is usually a copy of the newest epoch file: compare by content, not by name.
    final_digest = file_digest(final)
    return final, [p for p in epochs if file_digest(p) != final_digest]


def _resolve_hierarchy(name, emb: EmbeddingSet) -> Hierarchy:
    if name is None:
        dataset = (emb.source.get("config") or {}).get("dataset")
        try:
            return get_hierarchy(dataset) if dataset else None
        except RascalError:
            return None
    return name if isinstance(name, Hierarchy) else get_hierarchy(name)


def _levels(hierarchy: Hierarchy | None,
            emb: EmbeddingSet) -> tuple[list[str], list[tuple[str, str]]]:
    if hierarchy is None:
        levels = emb.levels
        return levels, list(itertools.pairwise(levels))
    missing = [lvl for lvl in hierarchy.levels if lvl not in emb.labels]
    if missing:
        raise RascalError(f"The embeddings have no labels for level(s) {', '.join(missing)} of "
                          f"hierarchy {hierarchy.name!r} (they have {', '.join(emb.levels)}); pick "
                          "the matching --hierarchy or add labels_<level> arrays.")
    return list(hierarchy.levels), list(hierarchy.comparisons)


def _jsonable(obj):
    """NumPy values to plain Python; NaN and infinities to None (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _check_same_samples(others: list[EmbeddingSet], emb: EmbeddingSet) -> None:
    """Compared embeddings must describe the same samples in the same order (same labels)."""
    for other in others:
        same = len(other) == len(emb) and all(
            lvl in other.labels and np.array_equal(other.labels[lvl], y)
            for lvl, y in emb.labels.items())
        if not same:
            raise RascalError(f"{other.source.get('path')} does not hold the same samples as "
                              f"{emb.source.get('path')}; compare checkpoints of one run on one "
                              "split.")


def _peak_rss_gib() -> float:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def _subsample(labels: np.ndarray, cap: int, seed: int) -> np.ndarray | None:
    """A seeded stratified subsample of ``cap`` rows when there are more, else None (every row)."""
    return stratified_sample(labels, cap, seed) if len(labels) > cap else None


def _sample_note(rows: np.ndarray | None, n: int, seed: int) -> dict:
    return {"n": n if rows is None else int(len(rows)), "of": n,
            "seed": None if rows is None else seed}


def _knn_check(x: np.ndarray, neighbours, labels: dict[str, np.ndarray], knn_ks, seed: int,
               backend) -> dict:
    """Recall of the approximate neighbours and the move of every kNN accuracy, on exact queries."""
    rows = stratified_sample(labels[list(labels)[-1]], approx.CHECK_QUERIES, seed)
    k_max = neighbours[1].shape[1]

    def accuracy(y, kk):
        classes = int(y.max()) + 1
        return lambda s, i, r: knn_correct(s, y[i], y[r], classes, kk).astype(float)

    metrics = {f"knn_accuracy[{lvl}][{min(kk, k_max)}]": accuracy(y, min(kk, k_max))
               for lvl, y in labels.items() for kk in knn_ks}
    return check_search(x, neighbours, rows, knn_ks, metrics, backend=backend, seed=seed)


def _epochs(prev: EmbeddingSet, cur: EmbeddingSet) -> dict:
    """The pair of checkpoints a curve point compares."""
    return {"epoch": cur.source.get("epoch"), "previous_epoch": prev.source.get("epoch")}


def _stability_curve(embs: list[EmbeddingSet], labels: np.ndarray, names: list[str], embedding: str,
                     backend, anchors: np.ndarray | None = None,
                     last: UnitRows | None = None) -> dict | None:
    """Rank stability between consecutive checkpoints, ordered by epoch (the analysed one last,
    its rows ``last`` when already normalised)."""
    if len(embs) < 2:
        return None
    counts = np.bincount(labels)
    topk = None if counts.max() <= EXACT_RANK_MAX_CLASS else RANK_TOPK
    rows = [e.rows(embedding) for e in embs]
    if last is not None and kept_precision(rows[-1]) == last.dtype:
        rows[-1] = last  # the same rows rank_stability would normalise, normalised already
    curve = []
    for (prev, cur), (a, b) in zip(itertools.pairwise(embs), itertools.pairwise(rows)):
        rs = rank_stability(a, b, labels, topk=topk, backend=backend, anchors=anchors)
        curve.append({**_epochs(prev, cur), "spearman": rs["spearman"], "drift": rs["drift"],
                      "jaccard": rs["jaccard"]})
    return {"spearman": curve[-1]["spearman"], "drift": curve[-1]["drift"],
            "jaccard": curve[-1]["jaccard"], "topk": topk,
            "per_class": per_class(names, spearman=rs["per_class"]), "curve": curve}


def _similarity_curve(embs: list[EmbeddingSet], embedding: str) -> dict | None:
    """Linear CKA between consecutive checkpoints (unbiased HSIC), ordered as the rank-stability
    curve: how much the representation as a whole moved, beside how much each class's
    neighbourhood order did."""
    if len(embs) < 2:
        return None
    curve = [{**_epochs(prev, cur),
              "cka_debiased": cka(prev.rows(embedding), cur.rows(embedding), debiased=True)}
             for prev, cur in itertools.pairwise(embs)]
    return {"cka_debiased": curve[-1]["cka_debiased"], "curve": curve,
            "estimator": "linear CKA, unbiased HSIC (Song et al. 2012)",
            "rows": f"{embedding} rows as stored (column-centred, not normalised)"}


def _retrieval_stage(x: UnitRows, labels: dict, level: str, comparisons, neighbours, seed: int,
                     backend) -> dict:
    """Leave-one-out retrieval at ``level`` and fine-label MAP@R within each coarse class.

    The kNN stage's search is reused when it is as wide as exact MAP@R needs (largest class - 1);
    otherwise a seeded sample of :data:`RETRIEVAL_QUERIES` queries searches the whole set.
    """
    y = labels[level]
    need = retrieval_k(y, RETRIEVAL_KS)
    if neighbours[1].shape[1] >= need:
        out = retrieval_metrics(x, y, RETRIEVAL_KS, neighbours=neighbours)
        how = f"exact, all {len(x)} queries (the kNN stage's search, k={need})"
    else:
        sample = min(RETRIEVAL_QUERIES, len(x))
        out = retrieval_metrics(x, y, RETRIEVAL_KS, max_queries=sample, seed=seed, backend=backend)
        how = (f"estimate: {sample} seeded queries of {len(x)} searching the whole set, k={need}"
               if sample < len(x) else f"exact, all {len(x)} queries, k={need}")
    out.update(level=level, queries=how)
    # Within-coarse retrieval needs k = largest (coarse, fine) group - 1 inside each coarse class,
    # wider than hierarchy retention's k, so it makes its own search: for every row up to
    # RETRIEVAL_QUERIES rows (the all-rows grouped search costs ~5 s at 50,000 x 512), else for a
    # seeded sample of that many queries.
    sample = RETRIEVAL_QUERIES if len(x) > RETRIEVAL_QUERIES else None
    within = []
    for c, f in comparisons:
        w = within_coarse_retrieval(x, labels[c], labels[f], backend=backend, max_queries=sample,
                                    seed=seed)
        how = (f"estimate: {sample} seeded queries of {len(x)}, each against its whole coarse class"
               if sample else f"exact, all {len(x)} queries")
        within.append({"coarse": c, "fine": f, **w, "queries": how})
    return {"leave_one_out": out, "within_coarse": within}


def _norm_text(rows: np.ndarray) -> str:
    """``L2-normalised`` or ``raw (not normalised)``, as the rows are: an honest label."""
    norms = np.linalg.norm(rows[:1000], axis=1)
    return "L2-normalised" if np.allclose(norms, 1.0, atol=1e-3) else "raw (not normalised)"


def _probe_stage(rows: np.ndarray, y: np.ndarray, seed: int) -> dict:
    """One linear probe at the analysed level, and what it says besides its accuracy.

    The probe is :func:`holdout_probe_accuracy`'s (same split, same fit): its top-1, the
    calibration of its held-out logits, and NC2 (classifier rows) / NC3 / NC4 against the rows it
    was fitted on.
    """
    train, test = holdout_split(y, 0.5, seed)
    probe = fit_linear_probe(rows[train], y[train], num_classes=int(y.max()) + 1)
    logits = probe.logits(rows[test])
    return {"top1": float((logits.argmax(1) == y[test]).mean()),
            "calibration": calibration(logits, y[test], n_bins=CALIBRATION_BINS, from_logits=True),
            "collapse": classifier_collapse(rows[train], y[train], probe)}


def _grid_stage(emb: EmbeddingSet, x: np.ndarray, comparisons, dataset, data_root, split: str,
                seed: int) -> dict | None:
    """Nearest-neighbour thumbnails (:mod:`rascal_geom.neighbour_grid`) where the source has images:
    a checkpoint whose dataset opens here, or a model in memory given a dataset. ``None`` for an
    embedding file; ``{"skipped": why}`` when the images cannot be matched to the rows."""
    from rascal_geom.neighbour_grid import neighbour_grid
    from rascal_train.datasets.base import HierDataset, get_dataset

    if not comparisons:
        return None
    config = emb.source.get("config") or {}
    if not isinstance(dataset, HierDataset):
        name = dataset if isinstance(dataset, str) else config.get("dataset")
        if emb.source.get("kind") != "checkpoint" or not name:
            return None
        import rascal_train.datasets  # noqa: F401  (registers every loader)

        try:
            root = data_root if data_root is not None else config.get("data_root")
            dataset = get_dataset(name, root=root, split=split,
                                  label_level=config.get("label_level"))
        except RascalError as exc:
            return {"skipped": f"the images of {name} did not open here ({exc})"}
    coarse, fine = comparisons[-1]
    if len(dataset) != len(x) or not all(np.array_equal(dataset.labels.get(lvl), emb.labels[lvl])
                                         for lvl in (coarse, fine)):
        return {"skipped": "the dataset's samples do not match the embedded rows"}
    grid = neighbour_grid(x, emb.labels[coarse], emb.labels[fine], dataset.raw_image,
                          emb.class_names[coarse], emb.class_names[fine], seed=seed)
    return {"coarse_level": coarse, "fine_level": fine, **grid}


def analyze(source, hierarchy=None, data_root=None, split: str = "test", compare=(), k: int = 20,
            knn_ks=(1, 20, 200), seed: int = 0, embedding: str = "projection",
            level: str | None = None, umap: bool = True, umap_points: int = 2000, cache_dir=None,
            use_cache: bool = True, batch_size: int = 256, backend: str | None = None,
            progress: bool = True, device=None, knn: str = "auto", dataset=None,
            arch: str | None = None, layer: str | None = None) -> dict:
    """Every structure diagnostic of one checkpoint, run directory or embedding file.

    Parameters
    ----------
    source : path, EmbeddingSet or nn.Module
        A checkpoint (``.pt``, ``.pth``, ``.ckpt``: ``rascal train``, SupContrast, Lightning /
        solo-learn or torchvision), a run directory (its last checkpoint; its per-epoch checkpoints
        give the rank-stability curve unless ``compare`` is given), an ``.npz`` embedding file, an
        :class:`~rascal_geom.embeddings.EmbeddingSet`, or a model in memory (with ``dataset``).
    hierarchy : str, Hierarchy or None
        Levels and compared pairs; ``None`` uses the checkpoint dataset's hierarchy, or the
        embedding file's own levels.
    data_root : path or None
        Overrides the checkpoint config's data root.
    split : str, default="test"
    compare : sequence of (path or EmbeddingSet)
        Other checkpoints (or embedding files) of the same samples: rank stability between
        consecutive ones, ordered by epoch, the analysed source last.
    k : int, default=20
        Neighbours for hierarchy retention and attribute consistency (10 at most there).
    knn_ks : sequence of int, default=(1, 20, 200)
        kNN accuracies reported at every level (leave-one-out on the split).
    seed : int, default=0
        Drives every subsample (probe split, random pairs, uniformity, UMAP).
    embedding : {"projection", "feature"}, default="projection"
        Which rows are analysed (the neural-collapse numbers use the features when present).
    dataset : str, HierDataset, DataLoader or None
        For a checkpoint, a registered dataset name to embed instead of the one its config names
        (needed where it names none); for a model in memory, the data to embed
        (:func:`~rascal_geom.embeddings.embed_model`).
    arch : str or None
        Architecture of a foreign checkpoint, when its weights do not say.
    layer : str or None
        Analyse the pooled output of this named module of the encoder (``rascal_geom.layers``).
    level : str or None
        The level the model was trained on; default: the checkpoint config's ``label_level``,
        else the hierarchy's default level, else the finest level.
    umap : bool, default=True
        Add a 2-D UMAP map of ``umap_points`` points (~10 s on 2 cores, most of it numba compiling
        UMAP on first use).
    device : str, torch.device or None
        Where a checkpoint's encoder runs (``--device``: auto, cpu, cuda, cuda:N). Unpinned
        (``None``, ``"auto"``, ``"cuda"``), the torch neighbour search splits its query blocks
        over every visible GPU.
    knn : {"auto", "exact", "approx"}, default="auto"
        The all-rows neighbour search: exact, approximate (IVF, :mod:`rascal_geom.approx`), or
        approximate from :data:`~rascal_geom.approx.APPROX_MIN_ROWS` rows on. An approximate
        search is checked against exact search on a seeded sample of queries
        (``neighbour_search.check``: recall@k and how much each kNN accuracy moved there), and
        a recall below :data:`~rascal_geom.approx.RECALL_FLOOR` is a warning.

    Returns
    -------
    dict
        The ``rascal.analysis/1`` document, plus ``timings`` (seconds per stage), ``peak_rss_gib``
        (the process's peak resident memory at the end of each stage), ``samples`` (how many rows
        each subsampled stage used) and ``warnings``.
    """
    if embedding not in EMBEDDINGS:
        raise RascalError("The 'embedding' parameter of analyze must be one of "
                          f"{', '.join(EMBEDDINGS)}. Got {embedding!r} instead.")
    backend = backend or select_backend()
    approx.resolve_method(knn, 0)  # a bad --knn fails before anything is loaded
    timings: dict[str, float] = {}
    peak_rss: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage):
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = now - clock
        peak_rss[stage] = _peak_rss_gib()
        clock = now

    load = {"split": split, "data_root": data_root, "cache_dir": cache_dir, "use_cache": use_cache,
            "batch_size": batch_size, "progress": progress, "device": device, "dataset": dataset,
            "arch": arch, "layer": layer}

    def open_source(s):
        if isinstance(s, EmbeddingSet):
            return s
        if isinstance(s, nn.Module):
            if dataset is None or isinstance(dataset, str):
                raise RascalError("A model in memory is analysed on data: pass "
                                  "dataset=get_dataset(...) or a DataLoader.")
            return embed_model(s, dataset, layer=layer, batch_size=batch_size, device=device,
                               progress=progress)
        if Path(s).suffix == ".npz":
            return load_embeddings(s)
        return load_embeddings(s, **load)

    compare = list(compare)
    chosen = "as given"
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        source, earlier = run_checkpoints(source)
        compare = compare or earlier
        chosen = "the run directory's last checkpoint (last.pt, else its newest epoch file)"
    emb = open_source(source)
    others = [open_source(c) for c in compare]
    _check_same_samples(others, emb)
    lap("embeddings")

    hier = _resolve_hierarchy(hierarchy, emb)
    levels, comparisons = _levels(hier, emb)
    config = emb.source.get("config") or {}
    level = level or config.get("label_level") or (hier.default_level if hier else levels[-1])
    if level not in levels:
        raise RascalError(f"Level {level!r} is not one of {', '.join(levels)}; pass one of those.")
    # Normalised once: each metric below would otherwise check and copy the whole set again.
    unit = UnitRows(emb.rows(embedding), f"{embedding} rows")
    x = unit.array
    y = emb.labels[level]
    n = len(x)
    warnings = []

    kmax = min(max(knn_ks), n - 1)
    method = approx.resolve_method(knn, n)
    pinned = device is not None and str(device) not in ("auto", "cuda")
    neighbours = knn_search(x, x, kmax, exclude_self=True, backend=backend, progress=progress,
                            method=method, seed=seed, device=device,
                            devices=None if pinned else visible_gpus())
    level_labels = {lvl: emb.labels[lvl] for lvl in levels}
    knn_acc = {lvl: knn_accuracies(x, emb.labels[lvl], knn_ks, neighbours=neighbours)
               for lvl in levels}
    search = {"requested": knn, "method": method, "approx_min_rows": approx.APPROX_MIN_ROWS,
              "k": kmax}
    if method == "approx":
        nlist, nprobe = approx.ivf_params(n)
        search["index"] = {"type": "IVF-Flat", "nlist": nlist, "nprobe": nprobe,
                           "where": "FAISS GPU, sharded over every GPU" if backend == "faiss_gpu"
                           else "CPU, a cell of queries at a time"}
        lap("knn")
        search["check"] = _knn_check(x, neighbours, level_labels, knn_ks, seed, backend)
        for kk in search["check"]["below_floor"]:
            warnings.append(f"Approximate neighbour search: recall@{kk} is "
                            f"{search['check']['recall_at_k'][kk]:.3f} on "
                            f"{search['check']['queries']} exact queries, below the floor "
                            f"{approx.RECALL_FLOOR}; kNN numbers may be off (see "
                            "neighbour_search.check), or rerun with --knn exact.")
        lap("knn_check")
    else:
        lap("knn")
    retrieval = _retrieval_stage(unit, emb.labels, level, comparisons, neighbours, seed, backend)
    retrieval["leave_one_out"]["per_class"] = per_class(emb.class_names[level],
                                                        **retrieval["leave_one_out"]["per_class"])
    for entry in retrieval["within_coarse"]:
        entry["per_class"] = per_class(emb.class_names[entry["coarse"]], **entry["per_class"])
    lap("retrieval")
    del neighbours  # (n, k) arrays: the largest this process holds; nothing below reads them
    samples = {}
    probe_rows = _subsample(y, PROBE_MAX_SAMPLES, seed)
    samples["linear_probe"] = _sample_note(probe_rows, n, seed)
    raw = emb.rows(embedding)
    probe_x = raw if probe_rows is None else raw[probe_rows]
    probe_labels = {lvl: emb.labels[lvl] if probe_rows is None else emb.labels[lvl][probe_rows]
                    for lvl in levels}
    fitted = _probe_stage(probe_x, probe_labels[level], seed)
    probe = {lvl: fitted["top1"] if lvl == level
             else holdout_probe_accuracy(probe_x, probe_labels[lvl], seed=seed)["top1"]
             for lvl in levels}
    lap("linear_probe")
    probed = ("" if probe_rows is None
              else f" (the probe's seeded sample of {len(probe_rows)} of {n})")
    collapse = {**fitted["collapse"], "cdnv": cdnv(probe_x, probe_labels[level])["cdnv"],
                "rows": f"{_norm_text(probe_x)} {embedding} rows{probed}, as the probe reads them; "
                        "NC2-W/NC3/NC4 on the probe's training half, CDNV on all of them"}
    del probe_x
    # RankMe reads raw rows: a checkpoint's projections are stored L2-normalised, so its backbone
    # features are used where present.
    spectral = emb.features if emb.features is not None and not emb.source.get("layer") else raw
    spectrum = {"rankme": rankme(spectral),
                "rankme_rows": (f"{_norm_text(spectral)} backbone features" if spectral is not raw
                                else f"{_norm_text(spectral)} {embedding} rows"),
                "effective_rank": None, "effective_rank_rows": f"L2-normalised {embedding} rows"}
    lap("collapse_spectrum")
    query_rows = _subsample(y, WITHIN_CLASS_QUERIES, seed)
    retention = []
    for coarse, fine in comparisons:
        r = hierarchy_retention(unit, emb.labels[coarse], emb.labels[fine], k=k, backend=backend,
                                rows=query_rows)
        retention.append({"coarse": coarse, "fine": fine, **r,
                          "per_class": per_class(emb.class_names[coarse], **r["per_class"])})
    if comparisons:
        samples["hierarchy_retention"] = _sample_note(query_rows, n, seed)
    lap("hierarchy_retention")
    names = emb.class_names[level]
    geo = geodesic_variance(unit, y)
    geo["per_class"] = per_class(names, variance=geo["per_class"])
    lap("geodesic_variance")
    attrs = None
    if emb.attributes is not None:
        groups = None
        if emb.attribute_names is not None:
            groups = (hier.attribute_groups(emb.attribute_names) if hier
                      else [n.split("::", 1)[0] for n in emb.attribute_names])
        attrs = attribute_consistency(unit, y, emb.attributes, k=min(k, 10), groups=groups,
                                      seed=seed, backend=backend, rows=query_rows)
        attrs["per_class"] = per_class(names, **attrs["per_class"])
        samples["attribute_consistency"] = _sample_note(query_rows, n, seed)
    lap("attribute_consistency")
    embs = sorted(others, key=lambda e: e.source.get("epoch") or 0) + [emb]
    anchors = _subsample(y, RANK_MAX_ANCHORS, seed)
    stability = _stability_curve(embs, y, names, embedding, backend, anchors, last=unit)
    if stability:
        samples["rank_stability"] = _sample_note(anchors, n, seed)
    lap("rank_stability")
    similarity = _similarity_curve(embs, embedding)
    lap("cka")
    geometry = geometry_summary(unit, y, features=emb.features, seed=seed)
    samples["uniformity"] = {"n": min(n, 5000), "of": n, "seed": seed if n > 5000 else None}
    samples["margin_violation"] = {"n": min(n, 2000), "of": n, "seed": seed if n > 2000 else None}
    spectrum["effective_rank"] = geometry["effective_rank"]
    lap("geometry")
    grid = _grid_stage(emb, x, comparisons, dataset, data_root, split, seed)
    lap("neighbour_grid")
    umap_out = None
    if umap:
        from rascal_geom.umap_map import umap_map

        with (console.status("UMAP map (the first import compiles numba)", spinner="dots")
              if progress else contextlib.nullcontext()):
            umap_out = umap_map(x, level_labels, max_points=umap_points, seed=seed)
        samples["umap"] = {"n": umap_out["n"], "of": n, "seed": seed if umap_out["n"] < n else None,
                           "rest": umap_out["rest"]}
        lap("umap")

    fine_levels = {r["fine"]: r["retention"] for r in retention}
    # the headline's k, as clipped by the split's size
    knn_k = min(k if k in knn_ks else knn_ks[0], kmax)
    src = emb.source
    protocol = {
        "split": src.get("split"),
        "checkpoint": {"path": src.get("path"), "epoch": src.get("epoch"),
                       "kind": src.get("kind", "embeddings"), "chosen": chosen},
        "features": (f"encoder module {src['layer']} (pooled)" if src.get("layer")
                     else "projection head" if embedding == "projection" else "backbone"),
        "knn": {"protocol": "leave-one-out within the split",
                "ks": [int(kk) for kk in knn_acc[level]], "headline_k": knn_k,
                "temperature": KNN_TEMPERATURE, "neighbours": method},
        "linear": {**probe_settings("full_batch", probe_epochs=0, batch_size=0),
                   "protocol": "stratified 50/50 holdout within the split"
                               + ("" if probe_rows is None
                                  else f" of a seeded stratified subsample of {len(probe_rows)} "
                                       f"of {n} rows")},
        "neighbours_within_class": {"k_requested": k, "attribute_k_requested": min(k, 10)},
        "seed": seed, "training_seed": config.get("seed"),
        "extraction": src.get("extraction"),
    }
    doc = {
        "schema": ANALYSIS_SCHEMA,
        "protocol": protocol,
        "source": {"kind": src.get("kind", "embeddings"), "path": src.get("path"),
                   "run_dir": src.get("run_dir"), "epoch": src.get("epoch"), "config": config,
                   "layout": src.get("layout"), "arch": src.get("arch"),
                   "preprocessing": src.get("preprocessing"), "layer": src.get("layer"),
                   "load": src.get("load")},
        "settings": {"hierarchy": hier.name if hier else None, "split": src.get("split"), "k": k,
                     "knn_ks": list(knn_ks), "seed": seed, "embedding": embedding, "level": level,
                     "backend": backend, "n_samples": len(x), "dim": int(x.shape[1]),
                     "compare": [e.source.get("path") for e in embs[:-1]]},
        "levels": levels,
        "class_names": {lvl: emb.class_names[lvl] for lvl in levels},
        "metrics": {
            "knn_accuracy": knn_acc,
            "linear_probe": probe,
            "hierarchy_retention": retention,
            "geodesic_variance": geo,
            "attribute_consistency": attrs,
            "rank_stability": stability,
            "similarity_over_training": similarity,
            "geometry": geometry,
            "retrieval": retrieval,
            "collapse": collapse,
            "spectrum": spectrum,
            "calibration": {**fitted["calibration"], "level": level,
                            "protocol": "linear probe's held-out half (stratified 50/50), "
                                        "softmax of its logits"},
        },
        "headline": {
            "knn_top1": knn_acc[level][str(knn_k)],
            "retention": fine_levels,
            "attribute_lift": attrs["lift"] if attrs else None,
            "geodesic_variance": geo["mean"],
            "collapse_ratio": geo["collapse_ratio"],
            "rank_stability": stability["spearman"] if stability else None,
        },
        "umap": umap_out,
        "neighbour_search": search,
        "samples": samples,
        "warnings": warnings,
        "neighbour_grid": grid,
        "timings": timings,
        "peak_rss_gib": peak_rss,
    }
    return _jsonable(doc)
