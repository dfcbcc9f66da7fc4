"""``compare``: how similar representations of the same samples are (``rascal compare``).

Between every pair of inputs: linear CKA with the biased and the unbiased HSIC estimator, the
angular shape metric and the normalised Procrustes distance (:mod:`rascal_geom.metrics.similarity`);
above :data:`MINIBATCH_ABOVE` samples also minibatch CKA, with its number of batches. With
``layers``, the layer x layer CKA map between two models. The CLI only wires :func:`compare` and
:func:`render_comparison`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rascal_geom.embeddings import EmbeddingSet, load_embeddings
from rascal_geom.metrics import cka_matrix, minibatch_cka, shape_distances
from rascal_train.errors import RascalError
from rascal_train.names import EMBEDDINGS
from rascal_train.progress import track

COMPARE_SCHEMA = "rascal.compare/1"
#: Above this many samples minibatch CKA (Nguyen et al. 2021) is added beside the exact one.
MINIBATCH_ABOVE = 10_000
MINIBATCH_SIZE = 1024


def _checkpoint(source: Path) -> Path:
    if source.is_dir():
        from rascal_geom.analysis import run_checkpoints

        return run_checkpoints(source)[0]
    return source


def _name(source: Path) -> str:
    return source.resolve().name if source.is_dir() else source.stem


def _check_same_samples(embs: Sequence[EmbeddingSet], names: Sequence[str]) -> None:
    """Every input must describe the same samples in the same order: same count, same labels."""
    first = embs[0]
    for emb, name in zip(embs[1:], names[1:]):
        same = (
            len(emb) == len(first)
            and set(emb.labels) == set(first.labels)
            and all(np.array_equal(emb.labels[lvl], y) for lvl, y in first.labels.items())
        )
        if not same:
            raise RascalError(
                f"{name} does not hold the same samples as {names[0]} ({len(emb)} vs "
                f"{len(first)} samples, or other labels); compare representations of one split "
                "of one dataset."
            )


def _layer_list(spec: str, ckpt: Path, arch: str | None) -> list[str]:
    """``all``: the top-level children of the encoder (a ResNet's stem parts and its blocks)."""
    if spec != "all":
        names = [s.strip() for s in spec.split(",") if s.strip()]
        if not names:
            raise RascalError("--layers is empty; pass NAME,NAME,... or all.")
        return names
    from rascal_train.checkpoint_formats import load_model

    model = load_model(ckpt, arch=arch).model
    encoder = getattr(model, "encoder", model)
    return [name for name, _ in encoder.named_children()]


def compare(
    sources: Sequence[str | os.PathLike],
    layers: str | None = None,
    split: str = "test",
    data_root=None,
    embedding: str = "projection",
    alpha: float = 1.0,
    seed: int = 0,
    batch_size: int = 256,
    device=None,
    arch: str | None = None,
    progress: bool = True,
) -> dict:
    """Similarity between representations of the same samples.

    Parameters
    ----------
    sources : sequence of path, at least 2
        Checkpoints, run directories (their last checkpoint) or ``.npz`` embedding files.
    layers : str or None
        ``"NAME,NAME,..."`` or ``"all"``: the layer x layer CKA map between exactly two models
        (checkpoints or run directories), each named module's output pooled to one row per image.
    split, data_root, batch_size, device, arch
        How checkpoints are embedded (:func:`~rascal_geom.embeddings.extract_embeddings`).
    embedding : {"projection", "feature"}, default="projection"
        Which rows of each input are compared.
    alpha : float, default=1.0
        Partial whitening of the shape distances (1: rotations only).
    seed : int, default=0
        Seed of the minibatch CKA shuffle.

    Returns
    -------
    dict
        ``rascal.compare/1``: ``names``, ``sources``, ``n_samples``, ``dims``, ``matrices``
        (``cka``, ``cka_debiased``, ``angular``, ``procrustes``, and ``minibatch_cka`` above
        :data:`MINIBATCH_ABOVE` samples: lists of lists), ``minibatch`` (batches used, or None),
        ``layers`` (or None): ``{"a", "b", "names_a", "names_b", "cka", "cka_debiased"}``.
    """
    if embedding not in EMBEDDINGS:
        raise RascalError(
            f"The 'embedding' parameter of compare must be one of {', '.join(EMBEDDINGS)}. "
            f"Got {embedding!r} instead."
        )
    paths = [Path(s) for s in sources]
    if len(paths) < 2:
        raise RascalError("compare needs at least two representations; pass A B [C ...].")
    names = [_name(p) for p in paths]
    names = [n if names.count(n) == 1 else f"{n} ({i + 1})" for i, n in enumerate(names)]
    load = {
        "split": split,
        "data_root": data_root,
        "batch_size": batch_size,
        "device": device,
        "progress": progress,
        "arch": arch,
    }
    if layers is not None:
        return _compare_layers(paths, names, layers, load)
    embs = [
        load_embeddings(_checkpoint(p), **load) if p.suffix != ".npz" else load_embeddings(p)
        for p in paths
    ]
    _check_same_samples(embs, names)
    xs = [e.rows(embedding) for e in embs]
    k = len(xs)
    angular, procrustes = np.zeros((k, k)), np.zeros((k, k))
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    for i, j in track(pairs, "shape distances", disable=not progress):
        d = shape_distances(xs[i], xs[j], alpha=alpha)
        angular[i, j] = angular[j, i] = d["angular"]
        procrustes[i, j] = procrustes[j, i] = d["procrustes"]
    matrices = {
        "cka": cka_matrix(xs),
        "cka_debiased": cka_matrix(xs, debiased=True),
        "angular": angular,
        "procrustes": procrustes,
    }
    minibatch = None
    if len(xs[0]) > MINIBATCH_ABOVE:
        mb = np.eye(k)
        for i, j in pairs:
            r = minibatch_cka(xs[i], xs[j], batch_size=MINIBATCH_SIZE, seed=seed)
            mb[i, j] = mb[j, i] = r["cka"]
        matrices["minibatch_cka"] = mb
        minibatch = {"n_batches": r["n_batches"], "batch_size": r["batch_size"], "seed": seed}
    return {
        "schema": COMPARE_SCHEMA,
        "names": names,
        "sources": [str(p) for p in paths],
        "n_samples": len(xs[0]),
        "dims": [int(x.shape[1]) for x in xs],
        "embedding": embedding,
        "split": split,
        "alpha": alpha,
        "levels": list(embs[0].labels),
        "matrices": {key: m.tolist() for key, m in matrices.items()},
        "minibatch": minibatch,
        "layers": None,
    }


def _compare_layers(paths: list[Path], names: list[str], spec: str, load: dict) -> dict:
    if len(paths) != 2 or any(p.suffix == ".npz" for p in paths):
        raise RascalError(
            "--layers compares the layers of exactly two models: pass two checkpoints or run "
            "directories (an .npz file holds one representation only)."
        )
    ckpts = [_checkpoint(p) for p in paths]
    per_model = [_layer_list(spec, c, load["arch"]) for c in ckpts]
    sets = [
        [load_embeddings(c, layer=layer, **load) for layer in layer_names]
        for c, layer_names in zip(ckpts, per_model)
    ]
    _check_same_samples([s[0] for s in sets], names)
    xs, ys = ([e.features for e in s] for s in sets)
    return {
        "schema": COMPARE_SCHEMA,
        "names": names,
        "sources": [str(p) for p in paths],
        "n_samples": len(xs[0]),
        "dims": None,
        "embedding": "pooled layer outputs",
        "split": load["split"],
        "alpha": None,
        "levels": list(sets[0][0].labels),
        "matrices": None,
        "minibatch": None,
        "layers": {
            "a": names[0],
            "b": names[1],
            "names_a": per_model[0],
            "names_b": per_model[1],
            "cka": cka_matrix(xs, ys).tolist(),
            "cka_debiased": cka_matrix(xs, ys, debiased=True).tolist(),
        },
    }


def render_comparison(result: dict, out_html: str | Path) -> Path:
    """The comparison page: each matrix as an annotated heatmap (SVG inline,
    also SVG/PDF beside it)."""
    from rascal_geom.figures import export_figure
    from rascal_geom.report import template_environment
    from rascal_geom.similarity_figure import similarity_heatmap
    from rascal_train.files import atomic_write_text

    out_html = Path(out_html)
    fig_dir = out_html.with_name(out_html.stem + "_figures")
    names = result["names"]
    panels = []
    titles = {
        "cka": ("linear CKA (biased HSIC)", 1.0),
        "cka_debiased": ("linear CKA (unbiased HSIC)", 1.0),
        "minibatch_cka": ("minibatch CKA (unbiased HSIC)", 1.0),
        "angular": ("angular shape distance (radians)", np.pi / 2),
        "procrustes": ("normalised Procrustes distance", np.sqrt(2)),
    }
    for key, matrix in (result.get("matrices") or {}).items():
        title, vmax = titles[key]
        panels.append(
            {
                "title": title,
                "key": key,
                "svg": export_figure(
                    similarity_heatmap(matrix, names, names, title, vmax=vmax),
                    f"compare_{key}",
                    fig_dir,
                ),
            }
        )
    lay = result.get("layers")
    if lay:
        for key in ("cka", "cka_debiased"):
            title = titles[key][0] + f": layers of {lay['a']} vs {lay['b']}"
            panels.append(
                {
                    "title": title,
                    "key": f"layers_{key}",
                    "svg": export_figure(
                        similarity_heatmap(
                            lay[key],
                            lay["names_a"],
                            lay["names_b"],
                            title,
                            xlabel=lay["b"],
                            ylabel=lay["a"],
                        ),
                        f"compare_layers_{key}",
                        fig_dir,
                    ),
                }
            )
    html = (
        template_environment()
        .get_template("compare.html")
        .render(result=result, panels=panels, figures_dir=fig_dir.name)
    )
    return atomic_write_text(out_html, html)
