"""Checkpoints of other code, read as the model they describe: which layout, which architecture,
which preprocessing.

Layouts recognised (the file says which; ``arch`` is needed only where it cannot):

- ``rascal``: written by ``rascal train`` (``format`` = ``rascal.ckpt/1``, config inside);
- ``supcontrast``: HobbitLong/SupContrast's ``save_model`` (``{'opt': argparse.Namespace, 'model',
  'optimizer', 'epoch'}``); ``SupConResNet`` keys ``encoder.*`` (``encoder.module.*`` under its
  DataParallel wrapper) and ``head.{0,2}.*``, ``SupCEResNet`` keys ``fc.*``; its CIFAR ResNet has
  torchvision's parameters with ``shortcut`` for ``downsample``; architecture ``opt.model``;
- ``lightning``: a Lightning / solo-learn ``.ckpt`` (``state_dict`` with ``backbone.*`` (a
  torchvision ResNet; solo-learn's CIFAR stem is a 3×3 convolution with padding 2) and
  ``projector.*``, optional ``hyper_parameters``);
- ``torchvision``: a torchvision ResNet state dict (``conv1.weight``, ``layer1.0...``, ``fc.*``),
  bare or under ``state_dict`` / ``model``, ``module.`` prefixes stripped (timm's
  ``clean_state_dict``).

Preprocessing follows the origin: each layout's own test transform (mean, std, size) is applied
to the images, so the features equal those the original code computes. It is carried out by
re-normalising, at the encoder's input, the images that ``rascal_train.features`` normalises with
the project's statistics, and is recorded in :attr:`LoadedModel.preprocessing`.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass, field

import torch
from torch import nn

from rascal_train.errors import RascalError
from rascal_train.models import (CHECKPOINT_FORMAT, ProjectionHead, RascalModel,
                                 model_from_checkpoint, resnet_encoder)

LAYOUTS = ("rascal", "supcontrast", "lightning", "torchvision")
#: ``--arch`` names a foreign ResNet checkpoint may be read as: (depth, stem).
ARCHS = {"resnet18": (18, "imagenet"), "resnet50": (50, "imagenet"),
         "cifar_resnet18": (18, "cifar"), "cifar_resnet50": (50, "cifar")}
#: Test-time normalisation of each origin, as its code states it.
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
SUPCONTRAST = {"cifar10": {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]},
               "cifar100": {"mean": [0.5071, 0.4867, 0.4408], "std": [0.2675, 0.2565, 0.2761]}}
SOLO_CIFAR = {"mean": [0.4914, 0.4822, 0.4465], "std": [0.247, 0.243, 0.261]}
#: Dataset names of other code that are registered datasets here.
DATASET_NAMES = {"cifar100": "cifar100", "imagenet": "imagefolder", "imagenet100": "imagefolder"}
#: (bottleneck blocks, blocks in layer3) -> depth of torchvision's ResNets.
_DEPTHS = {(False, 2): 18, (False, 6): 34, (True, 6): 50, (True, 23): 101}


@dataclass
class LoadedModel:
    """A checkpoint's model with what is known of its training.

    Attributes
    ----------
    model : RascalModel
        On CPU, in eval mode; ``encoder(x)`` takes images normalised with the project's statistics.
    config : dict
        A training config (``dataset`` None when the file does not name a registered one).
    layout : str
        One of :data:`LAYOUTS`.
    arch : str
        ``resnet<depth>`` and its stem, or the ``rascal`` config's ``arch``.
    preprocessing : dict
        ``origin``, ``mean``, ``std`` and ``image_size`` of the test transform applied.
    epoch : int or None
    missing, unexpected : list of str
        Keys of the model the file lacks (none of the encoder's), and keys of the file not used.
    """

    model: RascalModel
    config: dict
    layout: str
    arch: str
    preprocessing: dict
    epoch: int | None = None
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: layout, architecture, preprocessing, missing and unexpected keys."""
        def keys(names):
            return ("none" if not names
                    else f"{len(names)} ({', '.join(names[:3])}"
                         f"{', ...' if len(names) > 3 else ''})")

        return (f"{self.layout} checkpoint, {self.arch}, preprocessing: "
                f"{self.preprocessing['origin']}; missing keys: {keys(self.missing)}; unexpected "
                f"keys: {keys(self.unexpected)}")


def detect_layout(obj: dict, path="The checkpoint") -> str:
    """The layout of a loaded checkpoint dict (one of :data:`LAYOUTS`); a one-line error naming
    ``path`` otherwise."""
    if obj.get("format") == CHECKPOINT_FORMAT:
        return "rascal"
    if "opt" in obj and isinstance(obj.get("model"), dict):
        return "supcontrast"
    state = obj.get("state_dict")
    if isinstance(state, dict) and ("pytorch-lightning_version" in obj
                                    or any(k.startswith("backbone.") for k in state)):
        return "lightning"
    if "conv1.weight" in _clean(_state_of(obj)):
        return "torchvision"
    raise RascalError(f"{path} is none of the checkpoint layouts read here ({CHECKPOINT_FORMAT} of "
                      "`rascal train`, SupContrast save_model, Lightning / solo-learn .ckpt, "
                      "torchvision ResNet state dict); save the encoder's state_dict in one of "
                      "those.")


def load_model(path: str | os.PathLike, arch: str | None = None) -> LoadedModel:
    """Read a checkpoint of any layout in :data:`LAYOUTS` as a :class:`LoadedModel`.

    Parameters
    ----------
    path : path
        Loaded weights-only (:func:`rascal_train.files.load_checkpoint`).
    arch : str or None
        For foreign layouts, one of :data:`ARCHS`; default: read off the weights' shapes.

    Raises
    ------
    RascalError
        Unknown layout, an architecture the weights do not fit, or encoder weights missing.
    """
    from rascal_train.files import load_checkpoint
    from rascal_train.transforms import MEAN, STD

    obj = load_checkpoint(path)
    layout = detect_layout(obj, path)
    if layout == "rascal":
        model, config = model_from_checkpoint(obj)
        pre = {"origin": "rascal train (ImageNet mean/std)", "mean": list(MEAN), "std": list(STD),
               "image_size": config.get("image_size")}
        return LoadedModel(model, config, layout, config.get("arch"), pre,
                           int(obj["epoch"]) if "epoch" in obj else None)
    if arch is not None and arch not in ARCHS:
        raise RascalError(f"--arch {arch!r} cannot read a {layout} checkpoint; choose one of "
                          f"{', '.join(ARCHS)}.")
    return _READERS[layout](obj, arch)


# --- layouts -------------------------------------------------------------------------------------

def _state_of(obj: dict) -> dict:
    for key in ("state_dict", "model"):
        if isinstance(obj.get(key), dict):
            return obj[key]
    return obj


def _clean(state: dict) -> dict:
    """Tensors only, without the ``module.`` that DataParallel / DDP wrappers leave anywhere in a
    key."""
    return {re.sub(r"(^|\.)module\.", r"\1", k): v for k, v in state.items()
            if isinstance(v, torch.Tensor)}


def _renamed(state: dict, prefixes: dict[str, str],
             replace: tuple[str, str] = ("", "")) -> tuple[dict, dict]:
    """Keys under a prefix of ``prefixes`` (tried in order) moved to its value, ``replace[0]``
    inside them replaced by ``replace[1]``; returns the renamed state and, for each new key or
    unused key, its name in the file (for the load report)."""
    out, origin = {}, {}
    for key, value in state.items():
        old = next((p for p in prefixes if key.startswith(p)), None)
        new = key if old is None else (prefixes[old] + key[len(old):]).replace(*replace)
        origin[new] = key
        if old is not None:
            out[new] = value
    return out, origin


def _supcontrast(obj: dict, arch: str | None) -> LoadedModel:
    opt = vars(obj["opt"]) if hasattr(obj["opt"], "__dict__") else dict(obj["opt"])
    state, origin = _renamed(_clean(obj["model"]),
                             {"encoder.": "encoder.", "head.": "head.mlp.", "fc.": "classifier."},
                             replace=(".shortcut.", ".downsample."))
    dataset = str(opt.get("dataset", ""))
    if dataset in SUPCONTRAST:
        stats = SUPCONTRAST[dataset]
        described = (f"SupContrast {dataset} test transform (ToTensor, "
                     f"Normalize(mean={stats['mean']}, std={stats['std']}))")
    else:
        try:
            stats = {"mean": list(ast.literal_eval(str(opt["mean"]))),
                     "std": list(ast.literal_eval(str(opt["std"])))}
        except (KeyError, ValueError, SyntaxError):
            raise RascalError(f"The SupContrast checkpoint's opt has dataset {dataset!r} without a "
                              "readable mean and std; it cannot be preprocessed as it was "
                              "trained.") from None
        described = ("SupContrast opt.mean / opt.std "
                     f"(Normalize(mean={stats['mean']}, std={stats['std']}))")
    size = int(opt.get("size", 32) or 32)
    pre = {"origin": described, **stats, "image_size": size}
    model_name = arch or f"cifar_{opt.get('model', '')}"
    depth, stem = (ARCHS[arch] if arch else (_depth_of(opt.get("model")), "cifar"))
    return _assemble(state, origin, "supcontrast", depth, stem, pre,
                     {"dataset": DATASET_NAMES.get(dataset), "data_root": opt.get("data_folder"),
                      "arch": model_name}, obj.get("epoch"))


def _depth_of(name) -> int:
    match = re.fullmatch(r"resnet(18|34|50|101)", str(name))
    if match is None:
        raise RascalError(f"The checkpoint's architecture {name!r} is not a ResNet read here; "
                          f"pass --arch ({', '.join(ARCHS)}).")
    return int(match.group(1))


def _infer_resnet(encoder_state: dict, prefix: str) -> tuple[int, bool]:
    """(depth, 3×3 stem) of a torchvision-named ResNet state dict under ``prefix``."""
    conv1 = encoder_state.get(f"{prefix}conv1.weight")
    if conv1 is None:
        raise RascalError(f"The checkpoint has no {prefix}conv1.weight: its encoder is not a "
                          "ResNet read here, or it is missing; pass a ResNet checkpoint.")
    bottleneck = f"{prefix}layer1.0.conv3.weight" in encoder_state
    layer3 = {int(m.group(1)) for k in encoder_state
              if (m := re.match(rf"{re.escape(prefix)}layer3\.(\d+)\.", k))}
    key = (bottleneck, len(layer3))
    if key not in _DEPTHS:
        raise RascalError("The checkpoint's ResNet has an unusual block layout; pass --arch "
                          f"({', '.join(ARCHS)}).")
    return _DEPTHS[key], conv1.shape[-1] == 3


def _lightning(obj: dict, arch: str | None) -> LoadedModel:
    state, origin = _renamed(_clean(obj["state_dict"]),
                             {"backbone.": "encoder.", "projector.": "head.mlp."})
    if arch:
        depth, small = ARCHS[arch][0], ARCHS[arch][1] == "cifar"
    else:
        depth, small = _infer_resnet(state, "encoder.")
    stem = "cifar_pad2" if small else "imagenet"  # solo-learn pads its 3×3 CIFAR stem by 2
    hp = obj.get("hyper_parameters") if isinstance(obj.get("hyper_parameters"), dict) else {}
    if small:
        pre = {"origin": "solo-learn CIFAR test transform (ToTensor, "
                         f"Normalize(mean={SOLO_CIFAR['mean']}, std={SOLO_CIFAR['std']}))",
               **SOLO_CIFAR, "image_size": 32}
    else:
        pre = {"origin": "ImageNet test transform (Resize 256, CenterCrop 224, ImageNet mean/std)",
               **IMAGENET, "image_size": 224}
    dataset = _find(hp, "dataset")
    config = {"dataset": DATASET_NAMES.get(str(dataset)) if dataset else None, "data_root": None,
              "arch": f"{'cifar_' if small else ''}resnet{depth}"}
    return _assemble(state, origin, "lightning", depth, stem, pre, config, obj.get("epoch"))


def _find(tree, key):
    """The first value under ``key`` in nested dicts (Lightning ``hyper_parameters`` nest a
    config)."""
    if isinstance(tree, dict):
        if key in tree and not isinstance(tree[key], dict):
            return tree[key]
        for value in tree.values():
            found = _find(value, key)
            if found is not None:
                return found
    return None


def _torchvision(obj: dict, arch: str | None) -> LoadedModel:
    state, origin = _renamed(_clean(_state_of(obj)), {"fc.": "classifier.", "": "encoder."})
    if arch:
        depth, stem = ARCHS[arch]
    else:
        depth, small = _infer_resnet(state, "encoder.")
        stem = "cifar" if small else "imagenet"
    pre = {"origin": "torchvision ImageNet test transform (Resize 256, CenterCrop 224, ImageNet "
                     "mean/std)",
           **IMAGENET, "image_size": 224}
    config = {"dataset": None, "data_root": None,
              "arch": f"{'cifar_' if stem == 'cifar' else ''}resnet{depth}"}
    return _assemble(state, origin, "torchvision", depth, stem, pre, config, obj.get("epoch"))


_READERS = {"supcontrast": _supcontrast, "lightning": _lightning, "torchvision": _torchvision}


# --- assembly ------------------------------------------------------------------------------------

def _head(state: dict, feature_dim: int) -> ProjectionHead | None:
    """The MLP head the ``head.mlp.*`` keys describe (Linear-[BN]-ReLU-Linear), or None."""
    first = state.get("head.mlp.0.weight")
    if first is None or first.ndim != 2 or first.shape[1] != feature_dim:
        return None
    bn = "head.mlp.1.running_mean" in state
    last = state.get(f"head.mlp.{3 if bn else 2}.weight")
    if last is None or last.ndim != 2:
        return None
    return ProjectionHead(feature_dim, last.shape[0], batch_norm=bn, hidden_dim=first.shape[0])


def _assemble(state: dict, origin: dict, layout: str, depth: int, stem: str, pre: dict,
              config: dict, epoch) -> LoadedModel:
    encoder, dim = resnet_encoder(depth, stem)
    head = _head(state, dim)
    classifier = state.get("classifier.weight")
    if head is not None:
        model = RascalModel(encoder, dim, loss="supcon", proj_dim=head.mlp[-1].out_features)
        model.head = head
    elif classifier is not None:
        model = RascalModel(encoder, dim, loss="ce", num_classes=classifier.shape[0])
    else:
        # No head in the file: its embedding is the L2-normalised features, as for a CE model.
        model = RascalModel(encoder, dim, loss="supcon")
        model.head = None
    # A head that is not an MLP, or a classifier beside the head
    # (solo-learn's online probe), is not used.
    unused = {k for k in state if (head is None and k.startswith("head."))
              or (head is not None and k.startswith("classifier."))}
    state = {k: v for k, v in state.items() if k not in unused}
    arch = f"resnet{depth} ({stem} stem)"
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        mismatch = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line),
                        str(exc).strip().splitlines()[0])
        raise RascalError(f"The {layout} checkpoint does not fit {arch}: {mismatch}; pass the "
                          f"right --arch ({', '.join(ARCHS)}).") from None
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    encoder_missing = [k for k in missing if k.startswith("encoder.")]
    if encoder_missing:
        raise RascalError(f"The {layout} checkpoint lacks {len(encoder_missing)} encoder weight(s) "
                          f"of {arch} (first: {encoder_missing[0]}); it is not this architecture "
                          f"or is incomplete: pass the right --arch ({', '.join(ARCHS)}) or a "
                          "complete checkpoint.")
    _normalise_input(model.encoder, pre["mean"], pre["std"])
    config = {"loss": model.loss, "image_size": pre["image_size"], "label_level": None, **config,
              "layout": layout, "preprocessing": pre}
    return LoadedModel(model.eval(), config, layout, arch, pre,
                       None if epoch is None else int(epoch), missing,
                       sorted(origin[k] for k in (set(origin) - set(state))
                              | set(result.unexpected_keys)))


def _normalise_input(encoder: nn.Module, mean, std) -> None:
    """Make ``encoder`` see images normalised with ``mean``/``std`` instead of the project's
    statistics.

    ``rascal_train.features`` (and the probe) normalise every image with
    ``transforms.MEAN``/``STD``; ``x * S / s + (M - m) / s`` turns that into ``(pixel - m) / s``,
    the origin's own normalisation.
    """
    from rascal_train.transforms import MEAN, STD

    if list(mean) == list(MEAN) and list(std) == list(STD):
        return
    M, S, m, s = (torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1)
                  for v in (MEAN, STD, mean, std))
    scale, shift = S / s, (M - m) / s

    def hook(module, args):
        x = args[0]
        return (x * scale.to(x.device, x.dtype) + shift.to(x.device, x.dtype),) + tuple(args[1:])

    encoder.register_forward_pre_hook(hook)
