"""Encoders by name, the projection head, the linear classifier: one ``RascalModel``.

Backbones come from a timm-style registry (``@register_model``, ``list_models()``): the CIFAR
ResNets (3×3 stem, stride 1, no max-pool, as in SupCon's code), torchvision's ImageNet ResNets,
and ``small_cnn``, which trains in minutes on a CPU. A contrastive model carries SupCon's MLP
projection head (Linear → [BatchNorm] → ReLU → Linear to ``proj_dim``, L2-normalised); a
cross-entropy model carries a linear classifier instead.
"""

from __future__ import annotations

from typing import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from rascal_train.errors import RascalError
from rascal_train.names import LOSSES
from rascal_train.registry import Registry

CHECKPOINT_FORMAT = "rascal.ckpt/1"

_MODELS: Registry[Callable[[], tuple[nn.Module, int]]] = Registry("architecture", "--arch")


def register_model(name: str):
    """Decorator: record ``fn() -> (encoder, feature_dim)`` under ``name``.

    The encoder maps ``x [B, 3, H, W]`` float to features ``[B, feature_dim]``.
    """
    return _MODELS.register(name)


def list_models() -> list[str]:
    return _MODELS.names()


def create_encoder(name: str) -> tuple[nn.Module, int]:
    """Build the backbone ``name``; returns ``(encoder, feature_dim)``."""
    return _MODELS[name]()


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]


@register_model("small_cnn")
def small_cnn() -> tuple[nn.Module, int]:
    """Four 3×3 conv-BN-ReLU blocks (32-64-128-256 channels), max-pool between, global mean."""
    widths = (32, 64, 128, 256)
    layers: list[nn.Module] = []
    c_in = 3
    for i, c in enumerate(widths):
        layers += _conv_bn_relu(c_in, c)
        if i < len(widths) - 1:
            layers.append(nn.MaxPool2d(2))
        c_in = c
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), widths[-1]


#: ResNet stems: ImageNet's 7×7/2 convolution and max-pool; the CIFAR stem of SupCon's code (3×3/1,
#: padding 1, no max-pool); solo-learn's CIFAR stem (3×3/1 with padding 2, no max-pool).
STEMS = {"imagenet": None, "cifar": 1, "cifar_pad2": 2}


def resnet_encoder(depth: int, stem: str = "imagenet") -> tuple[nn.Module, int]:
    """torchvision's ResNet-``depth`` (18, 34, 50 or 101) without ``fc``, with stem ``stem`` (see
    :data:`STEMS`).

    Returns ``(encoder, feature_dim)``; parameter names are torchvision's (``conv1``,
    ``layer1.0.downsample.0``...).
    """
    from torchvision import models

    net = getattr(models, f"resnet{depth}")(weights=None)
    if STEMS[stem] is not None:
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=STEMS[stem], bias=False)
        net.maxpool = nn.Identity()
    dim = net.fc.in_features
    net.fc = nn.Identity()
    return net, dim


def _torchvision_resnet(depth: int, cifar_stem: bool) -> tuple[nn.Module, int]:
    return resnet_encoder(depth, "cifar" if cifar_stem else "imagenet")


@register_model("cifar_resnet18")
def cifar_resnet18() -> tuple[nn.Module, int]:
    return _torchvision_resnet(18, cifar_stem=True)


@register_model("cifar_resnet50")
def cifar_resnet50() -> tuple[nn.Module, int]:
    return _torchvision_resnet(50, cifar_stem=True)


@register_model("resnet18")
def resnet18() -> tuple[nn.Module, int]:
    return _torchvision_resnet(18, cifar_stem=False)


@register_model("resnet50")
def resnet50() -> tuple[nn.Module, int]:
    return _torchvision_resnet(50, cifar_stem=False)


class ProjectionHead(nn.Module):
    """SupCon's MLP head: ``Linear(F, H) → [BatchNorm1d] → ReLU → Linear(H, out_dim)``,
    L2-normalised.

    The hidden width ``H`` is ``in_dim`` (SupCon's) unless ``hidden_dim`` is given (solo-learn's
    projectors).
    """

    def __init__(self, in_dim: int, out_dim: int = 128, batch_norm: bool = False,
                 hidden_dim: int | None = None):
        super().__init__()
        hidden = hidden_dim or in_dim
        layers: list[nn.Module] = [nn.Linear(in_dim, hidden)]
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden))
        layers += [nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)]
        self.mlp = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> Tensor:
        return F.normalize(self.mlp(features), dim=1)


class RascalModel(nn.Module):
    """An encoder with the head its loss trains.

    Parameters
    ----------
    encoder : nn.Module
        ``x [B, 3, H, W] float -> features [B, feature_dim]``.
    feature_dim : int
    loss : {"ce", "supcon", "rascal", "simclr"}
        ``"ce"`` builds a linear classifier (``classifier``); the others a projection head
        (``head``).
    num_classes : int, optional
        Required for ``loss="ce"``.
    proj_dim : int, default=128
    head_bn : bool, default=False
        BatchNorm inside the projection head.

    Notes
    -----
    ``forward(x)`` is the training output (L2-normalised projections ``[B, proj_dim]``, or logits
    ``[B, num_classes]`` for CE), so that DistributedDataParallel sees every parameter used.
    ``project`` on a CE model returns the L2-normalised features: it has no projection head, and
    its features are its embedding.
    """

    def __init__(self, encoder: nn.Module, feature_dim: int, loss: str,
                 num_classes: int | None = None, proj_dim: int = 128, head_bn: bool = False):
        super().__init__()
        if loss not in LOSSES:
            raise RascalError(f"Unknown loss {loss!r}; choose --loss from {', '.join(LOSSES)}.")
        self.encoder = encoder
        self.feature_dim = feature_dim
        self.loss = loss
        if loss == "ce":
            if not num_classes or num_classes < 1:
                raise RascalError("A cross-entropy model needs num_classes >= 1; pass the "
                                  "dataset's class count.")
            self.classifier = nn.Linear(feature_dim, num_classes)
            self.head = None
        else:
            self.head = ProjectionHead(feature_dim, proj_dim, head_bn)
            self.classifier = None

    def project(self, features: Tensor) -> Tensor:
        """L2-normalised embedding ``[B, proj_dim]`` (``[B, feature_dim]`` for a CE model)."""
        if self.head is None:
            return F.normalize(features, dim=1)
        return self.head(features)

    def classify(self, features: Tensor) -> Tensor:
        """Logits ``[B, num_classes]``; only cross-entropy models have a classifier."""
        if self.classifier is None:
            raise RascalError(f"A model trained with --loss {self.loss} has no classifier; "
                              "train a linear probe on its features (`rascal eval --linear`).")
        return self.classifier(features)

    def forward(self, x: Tensor) -> Tensor:
        features = self.encoder(x)
        return self.classify(features) if self.head is None else self.project(features)


def build_model(config: dict) -> RascalModel:
    """Build the model a training config describes.

    Parameters
    ----------
    config : dict
        Keys ``"arch"`` (a name from :func:`list_models`), ``"loss"``, ``"num_classes"`` (needed
        for CE), optional ``"proj_dim"`` (default 128) and ``"head_bn"`` (default False).
        ``"image_size"`` is not needed: every encoder ends with a global pool.
    """
    encoder, dim = create_encoder(config.get("arch", "small_cnn"))
    return RascalModel(encoder, dim, loss=config.get("loss", "rascal"),
                       num_classes=config.get("num_classes"),
                       proj_dim=int(config.get("proj_dim", 128)),
                       head_bn=bool(config.get("head_bn", False)))


def model_from_checkpoint(ckpt: dict) -> tuple[RascalModel, dict]:
    """Rebuild the trained model of a checkpoint from :func:`rascal_train.files.load_checkpoint`.

    Returns
    -------
    model : RascalModel
        On CPU, in eval mode, with the checkpoint's weights.
    config : dict
        The full training config stored with it.
    """
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT or "model" not in ckpt:
        raise RascalError(f"This file is not a {CHECKPOINT_FORMAT} checkpoint; pass a .pt file "
                          "written by `rascal train` (checkpoints/epoch_NNNN.pt or last.pt).")
    config = dict(ckpt["config"])
    model = build_model(config)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise RascalError("The checkpoint's weights do not fit its config (arch "
                          f"{config.get('arch')!r}): {first}; the file is damaged or was "
                          "edited.") from None
    return model.eval(), config
