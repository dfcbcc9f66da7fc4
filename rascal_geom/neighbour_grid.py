"""Pictures of what got merged: seeded query images and their nearest neighbours
within the coarse class.

For a few seeded queries per coarse class, the ``k`` most similar other members of that coarse
class (cosine similarity, the neighbours hierarchy retention scores), each marked by whether it
shares the query's fine label. Thumbnails are small PNGs kept as base64 text, so the analysis
JSON and the report carry them without external files; :data:`MAX_BYTES` caps their total.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

import numpy as np

#: Total base64 bytes of thumbnails in one grid; rows past it are left out (and counted).
MAX_BYTES = 250_000
THUMB_PX = 48
MAX_COARSE = 10


def thumbnail(image, size: int = THUMB_PX) -> str:
    """A base64 PNG of ``image`` (HWC uint8 array or PIL image) fitted into ``size`` x ``size``."""
    from PIL import Image

    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    img = img.convert("RGB")
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def neighbour_grid(
    x: np.ndarray,
    coarse: np.ndarray,
    fine: np.ndarray,
    image: Callable[[int], object],
    coarse_names,
    fine_names,
    queries_per_class: int = 2,
    k: int = 6,
    seed: int = 0,
    max_bytes: int = MAX_BYTES,
) -> dict:
    """Rows ``{"coarse", "query": {...}, "neighbours": [{...}]}`` of thumbnails.

    Parameters
    ----------
    x : ndarray of shape (n_samples, dim)
        L2-normalised rows.
    coarse, fine : ndarray of shape (n_samples,), int
    image : callable
        ``image(index)`` -> the sample's untransformed image.
    coarse_names, fine_names : sequence of str
    queries_per_class : int, default=2
        Seeded queries per coarse class (the first :data:`MAX_COARSE` coarse classes by label).
    k : int, default=6
        Neighbours shown per query.
    max_bytes : int
        Cap on the thumbnails' total base64 size; a row that would pass it is dropped and counted.

    Returns
    -------
    dict
        ``rows``, ``k``, ``queries_per_class``, ``seed``, ``bytes``, ``max_bytes``,
        ``dropped_rows``, ``coarse_classes_shown``, ``coarse_classes``.
    """
    rng = np.random.default_rng(seed)
    classes = np.unique(coarse)
    rows, used, dropped = [], 0, 0
    for c in classes[:MAX_COARSE]:
        members = np.flatnonzero(coarse == c)
        if len(members) < 2:
            continue
        for q in np.sort(rng.choice(members, min(queries_per_class, len(members)), replace=False)):
            others = members[members != q]
            nearest = others[np.argsort(-(x[others] @ x[q]), kind="stable")[:k]]

            def cell(i):
                return {
                    "index": int(i),
                    "fine": str(fine_names[fine[i]]),
                    "png": thumbnail(image(int(i))),
                }

            row = {
                "coarse": str(coarse_names[c]),
                "query": cell(q),
                "neighbours": [{**cell(i), "same": bool(fine[i] == fine[q])} for i in nearest],
            }
            size = len(row["query"]["png"]) + sum(len(n["png"]) for n in row["neighbours"])
            if used + size > max_bytes:  # a row that would pass the cap is left out whole
                dropped += 1
                continue
            used += size
            rows.append(row)
    return {
        "rows": rows,
        "k": k,
        "queries_per_class": queries_per_class,
        "seed": seed,
        "bytes": used,
        "max_bytes": max_bytes,
        "dropped_rows": dropped,
        "coarse_classes_shown": min(len(classes), MAX_COARSE),
        "coarse_classes": len(classes),
    }
