"""A fast linear probe: full-batch multinomial logistic regression on frozen features, in torch.

Features are standardised with the training mean and std; the objective is the mean
cross-entropy plus ``weight_decay / 2 * ||W||^2`` (bias unpenalised), minimised with L-BFGS and a
strong-Wolfe line search. This is scikit-learn's ``LogisticRegression(C=1 / (weight_decay * n))``
on the same standardised features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rascal_geom.metrics._inputs import as_labels, as_matrix
from rascal_geom.metrics.knn import topk_correct
from rascal_train.devices import resolve_device
from rascal_train.errors import RascalError


@dataclass
class LinearProbe:
    """A fitted probe: ``logits = ((x - mean) / std) @ weight.T + bias``."""

    mean: torch.Tensor
    std: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor

    def logits(self, x) -> np.ndarray:
        """Class scores, ndarray of shape (n_samples, n_classes), float."""
        xt = torch.as_tensor(as_matrix(x, "x", np.float32), device=self.weight.device,
                             dtype=self.weight.dtype)
        with torch.no_grad():
            return (((xt - self.mean) / self.std) @ self.weight.T + self.bias).cpu().numpy()

    def predict(self, x) -> np.ndarray:
        return self.logits(x).argmax(axis=1)


def fit_linear_probe(x, y, num_classes: int | None = None, weight_decay: float = 1e-4,
                     max_iter: int = 100, tol: float = 1e-6, dtype: torch.dtype = torch.float32,
                     device: str | torch.device | None = None) -> LinearProbe:
    """Fit a multinomial logistic probe on ``x`` (see the module docstring).

    Parameters
    ----------
    x : array-like of shape (n_samples, dim), float
    y : array-like of shape (n_samples,), int
    num_classes : int or None
        Defaults to ``y.max() + 1``.
    weight_decay : float, default=1e-4
    max_iter : int, default=100
        L-BFGS iterations.
    tol : float, default=1e-6
        Stop when the gradient's largest entry is below it.
    """
    if not weight_decay >= 0:
        raise RascalError("The 'weight_decay' parameter of fit_linear_probe must be a float in "
                          f"[0, inf). Got {weight_decay!r} instead.")
    device = resolve_device(device)  # None: the command's --device (a GPU when present)
    xt = torch.as_tensor(as_matrix(x, "x", np.float64), dtype=dtype, device=device)
    yt = torch.as_tensor(as_labels(y, len(xt), "y"), device=device)
    c = int(num_classes or int(yt.max()) + 1)
    mean = xt.mean(0)
    std = xt.std(0).clamp_min(1e-6)
    xs = (xt - mean) / std
    w = torch.zeros(c, xt.shape[1], dtype=dtype, device=device, requires_grad=True)
    b = torch.zeros(c, dtype=dtype, device=device, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, tolerance_grad=tol,
                            tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (torch.nn.functional.cross_entropy(xs @ w.T + b, yt)
                + 0.5 * weight_decay * (w * w).sum())
        loss.backward()
        return loss

    opt.step(closure)
    return LinearProbe(mean, std, w.detach(), b.detach())


def linear_probe_accuracy(train_x, train_y, test_x, test_y, weight_decay: float = 1e-4,
                          max_iter: int = 100, topk: tuple[int, ...] = (1, 5),
                          **fit_kwargs) -> dict:
    """Top-k test accuracy of a probe fitted on the training split.

    Parameters
    ----------
    train_x : array-like of shape (n_train, dim), float
    train_y : array-like of shape (n_train,), int
    test_x : array-like of shape (n_test, dim), float
    test_y : array-like of shape (n_test,), int
        One label per row of ``test_x`` (checked, like ``train_y`` against ``train_x``).

    Returns
    -------
    dict
        ``{"top1": float, "top5": float}`` (one ``"topK"`` key per entry of ``topk``).
    """
    train_x = as_matrix(train_x, "train_x", np.float32)
    test_x = as_matrix(test_x, "test_x", np.float32)
    train_y = as_labels(train_y, len(train_x), "train_y")
    test_y = as_labels(test_y, len(test_x), "test_y")
    c = int(max(train_y.max(), test_y.max())) + 1
    probe = fit_linear_probe(train_x, train_y, num_classes=c, weight_decay=weight_decay,
                             max_iter=max_iter, **fit_kwargs)
    scores = probe.logits(test_x)
    return {f"top{t}": float(topk_correct(scores, test_y, t).mean()) for t in topk}


def holdout_split(labels, test_fraction: float = 0.5,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded stratified split of sample indices into (train, test): each class is split alike."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_test = round(len(members) * test_fraction) if len(members) > 1 else 0
        test.append(members[:n_test])
        train.append(members[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def holdout_probe_accuracy(x, y, test_fraction: float = 0.5, seed: int = 0, **kwargs) -> dict:
    """Linear-probe accuracy on one labelled set: fit on a stratified part, score on the rest."""
    x = as_matrix(x, "x", np.float32)
    y = as_labels(y, len(x), "y")
    tr, te = holdout_split(y, test_fraction, seed)
    return linear_probe_accuracy(x[tr], y[tr], x[te], y[te], **kwargs)
