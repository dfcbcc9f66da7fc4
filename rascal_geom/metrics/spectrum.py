"""RankMe (Garrido et al. 2023): the exponential of the entropy of the normalised singular values.

:func:`rankme` reads the raw (unnormalised) rows, as the paper does; ``geometry.effective_rank``
is the same formula without ``eps`` on the L2-normalised rows, which reads the spread of
directions only, whatever the norms.
"""

from __future__ import annotations

import numpy as np

from rascal_geom.metrics._inputs import as_matrix, gram64, kept_precision
from rascal_train.errors import RascalError


def rankme(emb, eps: float = 1e-7) -> float:
    """RankMe ``exp(-sum_k p_k log p_k)`` with ``p_k = sigma_k / ||sigma||_1 + eps``.

    Parameters
    ----------
    emb : array-like of shape (n_samples, dim), float
        The raw rows (not centred, not normalised), as Garrido et al. use them.
    eps : float, default=1e-7
        The paper's constant (chosen for float32); ``0`` gives the plain entropy rank with
        ``0 log 0 = 0``.

    Returns
    -------
    float
        In [1, min(n_samples, dim)] (up to ``eps``); NaN for an all-zero matrix.

    Notes
    -----
    Singular values come from the eigenvalues of the ``dim x dim`` Gram matrix, accumulated in
    float64 over blocks of rows (``sigma_k^2``), so memory is ``O(dim^2)`` past the rows themselves
    (float32 and float16 rows, memory-mapped ones included, are read as stored).
    """
    if not eps >= 0:
        raise RascalError(f"The 'eps' parameter of rankme must be a float in [0, inf). Got {eps!r} "
                          "instead.")
    x = as_matrix(emb, "emb", kept_precision(emb))
    gram = gram64(x) if x.shape[0] >= x.shape[1] else gram64(x.T)
    sigma = np.sqrt(np.clip(np.linalg.eigvalsh(gram), 0.0, None))[::-1][:min(x.shape)]
    if sigma.sum() == 0:
        return float("nan")
    p = sigma / sigma.sum() + eps
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))
