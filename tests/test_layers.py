"""Representations at any depth (`--layer`) and `analyze` of a model in memory."""

import numpy as np
import pytest
import torch

from rascal_geom.analysis import analyze
from rascal_geom.embeddings import embed_model
from rascal_geom.layers import Embedder, embedder, layer_names, pool
from rascal_train.datasets import get_dataset
from rascal_train.errors import RascalError
from rascal_train.models import build_model


def _resnet():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    return resnet18(weights=None).eval()


def test_layer_output_is_the_pooled_output_of_that_module():
    net = _resnet()
    x = torch.randn(3, 3, 48, 48)
    seen = {}
    handle = net.layer2.register_forward_hook(lambda module, args, out: seen.setdefault("out", out))
    with torch.no_grad():
        net(x)
    handle.remove()
    with torch.no_grad():
        rows = Embedder(net, "layer2").encoder(x)
    assert rows.shape == (3, 128)
    torch.testing.assert_close(rows, seen["out"].mean(dim=(2, 3)))
    assert (pool(torch.ones(2, 5, 7)).shape == (2, 7)
            and pool((torch.ones(2, 4), None)).shape == (2, 4))


def test_unknown_layer_lists_the_names():
    net = _resnet()
    assert layer_names(net)[:5] == ["conv1", "bn1", "relu", "maxpool", "layer1"]
    with pytest.raises(RascalError,
                       match=r"^The encoder has no module 'layer5'; choose --layer from conv1, "
                             r"bn1, relu, maxpool, layer1, layer1\.0, .*, avgpool, fc\.$"):
        Embedder(net, "layer5")


def test_a_rascal_model_is_used_as_it_is_and_its_layers_are_its_encoder_s():
    model = build_model({"arch": "small_cnn", "loss": "supcon", "proj_dim": 8})
    assert embedder(model) is model
    assert layer_names(model)[0] == "0" and isinstance(embedder(model, "3"), Embedder)


def test_analyze_takes_a_module_with_a_dataset_or_a_dataloader():
    ds = get_dataset("synthetic", split="test", size=320)
    model = build_model({"arch": "small_cnn", "loss": "supcon", "proj_dim": 8}).eval()
    doc = analyze(model, dataset=ds, umap=False, progress=False, knn_ks=(1, 5))
    assert doc["levels"] == list(ds.levels) and doc["settings"]["n_samples"] == len(ds)
    assert doc["source"]["kind"] == "model"

    from rascal_train.transforms import normalize_batch

    x = normalize_batch(torch.from_numpy(ds.images))
    y = torch.from_numpy(ds.labels["variant"])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    emb = embed_model(model, loader, layer="3")
    assert not model.training  # left in the mode it was found in
    with torch.no_grad():
        expected = model.encoder[:4](x).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(emb.features, expected, rtol=1e-5, atol=1e-6)
    assert emb.levels == ["label"] and emb.labels["label"].tolist() == y.tolist()
    doc = analyze(model, dataset=loader, umap=False, progress=False, knn_ks=(1, 5), layer="3")
    assert doc["levels"] == ["label"] and doc["settings"]["dim"] == 32
    with pytest.raises(RascalError, match="A model in memory is analysed on data"):
        analyze(model)
