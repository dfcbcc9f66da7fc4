"""Representations at any depth: the output of a named module of an encoder, pooled to one row per
image.

:func:`embedder` turns a model into what ``rascal_train.features.extract_features`` runs
(``encoder(x) -> features``, ``project(features) -> z``): a ``rascal`` model as it is, a plain
``nn.Module`` as its own encoder, and either one cut at module ``layer`` of its encoder.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from rascal_train.errors import RascalError


class _Reached(Exception):
    """Raised by the hook once the tapped module has run, so the layers after it are skipped."""


def pool(output) -> Tensor:
    """One row per sample: feature maps ``[B, C, H, W]`` averaged over space, token sequences
    ``[B, N, C]`` over tokens, ``[B, C]`` as it is; a tuple output contributes its first element."""
    if isinstance(output, (tuple, list)):
        output = output[0]
    if output.ndim == 4:
        return output.mean(dim=(2, 3))
    if output.ndim == 3:
        return output.mean(dim=1)
    return output.flatten(1)


def layer_names(model: nn.Module) -> list[str]:
    """Names ``--layer`` accepts: every named module of the model's encoder (the model itself if it
    has none)."""
    encoder = getattr(model, "encoder", model)
    return [name for name, _ in encoder.named_modules() if name]


class Embedder(nn.Module):
    """``encoder(x)``: the pooled output of module ``layer`` of ``model``'s encoder (its whole
    output when ``layer`` is None); ``project(f)``: ``f`` L2-normalised.

    Parameters
    ----------
    model : nn.Module
        A model with an ``encoder`` attribute, or an encoder itself (``x -> features`` or feature
        maps).
    layer : str or None
        A name from :func:`layer_names`; an unknown one is a :class:`RascalError` listing them.
    """

    def __init__(self, model: nn.Module, layer: str | None = None):
        super().__init__()
        self.net = getattr(model, "encoder", model)
        self.layer = layer
        # Callers restore the mode they found (extract_features does): it must be the model's own.
        self.train(model.training)
        if layer is not None and layer not in layer_names(model):
            raise RascalError(f"The encoder has no module {layer!r}; choose --layer from "
                              f"{', '.join(layer_names(model))}.")

    def encoder(self, x: Tensor) -> Tensor:
        if self.layer is None:
            return pool(self.net(x))
        captured = []

        def hook(module, args, output):
            captured.append(output)
            raise _Reached

        handle = self.net.get_submodule(self.layer).register_forward_hook(hook)
        try:
            self.net(x)
        except _Reached:
            pass
        finally:
            handle.remove()
        return pool(captured[0])

    def project(self, features: Tensor) -> Tensor:
        return F.normalize(features, dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.project(self.encoder(x))


def embedder(model: nn.Module, layer: str | None = None) -> nn.Module:
    """``model`` itself when it has ``encoder`` and ``project`` and no layer is asked, else an
    :class:`Embedder`."""
    if layer is None and hasattr(model, "encoder") and hasattr(model, "project"):
        return model
    return Embedder(model, layer)

