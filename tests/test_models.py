"""Models by name: shapes, stems, heads, checkpoint round trip."""

import pytest
import torch
from torch import nn

from rascal_train.errors import RascalError
from rascal_train.files import atomic_torch_save, load_checkpoint
from rascal_train.models import (CHECKPOINT_FORMAT, ProjectionHead, build_model, create_encoder,
                                 list_models, model_from_checkpoint)


def test_registry_lists_the_issue_archs():
    assert set(list_models()) >= {"small_cnn", "cifar_resnet18", "cifar_resnet50", "resnet18",
                                  "resnet50"}
    with pytest.raises(RascalError, match="Unknown architecture 'vgg'.*small_cnn"):
        create_encoder("vgg")


@pytest.mark.parametrize("arch", list_models())
def test_every_model_projects_to_unit_rows(arch):
    torch.manual_seed(0)
    model = build_model({"arch": arch, "loss": "rascal"}).eval()
    x = torch.randn(2, 3, 16, 16)  # every encoder ends in a global pool; small keeps the test fast
    with torch.no_grad():
        features = model.encoder(x)
        z = model(x)
    assert features.shape == (2, model.feature_dim)
    assert z.shape == (2, 128)
    assert torch.allclose(z.double().norm(dim=1), torch.ones(2, dtype=torch.float64), atol=1e-6)
    assert torch.equal(z, model.project(features))


def test_feature_dims_match_the_backbones():
    dims = {name: build_model({"arch": name, "loss": "supcon"}).feature_dim
            for name in list_models()}
    assert dims["small_cnn"] == 256
    assert dims["cifar_resnet18"] == dims["resnet18"] == 512
    assert dims["cifar_resnet50"] == dims["resnet50"] == 2048


def test_cifar_stem_is_3x3_stride_1_without_maxpool():
    cifar, _ = create_encoder("cifar_resnet18")
    imagenet, _ = create_encoder("resnet18")
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1)
    assert isinstance(cifar.maxpool, nn.Identity)
    assert imagenet.conv1.kernel_size == (7, 7) and isinstance(imagenet.maxpool, nn.MaxPool2d)
    # 32 px: the CIFAR stem keeps 32×32 into layer1, the ImageNet stem only 8×8.
    x = torch.zeros(1, 3, 32, 32)
    assert cifar.maxpool(cifar.relu(cifar.bn1(cifar.conv1(x)))).shape[-1] == 32
    assert imagenet.maxpool(imagenet.relu(imagenet.bn1(imagenet.conv1(x)))).shape[-1] == 8


def test_projection_head_matches_a_float64_restatement():
    torch.manual_seed(1)
    head = ProjectionHead(6, 3, batch_norm=False).double()
    f = torch.randn(4, 6, dtype=torch.float64)
    lin1, lin2 = head.mlp[0], head.mlp[2]
    h = torch.relu(f @ lin1.weight.T + lin1.bias) @ lin2.weight.T + lin2.bias
    expected = h / h.norm(dim=1, keepdim=True)
    assert torch.allclose(head(f), expected, atol=1e-12)
    with_bn = ProjectionHead(6, 3, batch_norm=True)
    assert isinstance(with_bn.mlp[1], nn.BatchNorm1d)


def test_ce_model_has_a_classifier_and_no_projection_head():
    torch.manual_seed(0)
    model = build_model({"arch": "small_cnn", "loss": "ce", "num_classes": 7}).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        f = model.encoder(x)
        assert model(x).shape == (3, 7)
        assert torch.allclose(model.project(f), f / f.norm(dim=1, keepdim=True), atol=1e-6)
    assert model.head is None
    with pytest.raises(RascalError, match="needs num_classes"):
        build_model({"arch": "small_cnn", "loss": "ce"})
    contrastive = build_model({"arch": "small_cnn", "loss": "supcon"})
    with pytest.raises(RascalError, match="no classifier"):
        contrastive.classify(f)


def test_checkpoint_round_trip_is_weights_only_and_exact(tmp_path):
    torch.manual_seed(0)
    config = {"arch": "small_cnn", "loss": "rascal", "head_bn": True, "proj_dim": 16}
    model = build_model(config)
    model.train()(torch.randn(4, 3, 32, 32))  # move the BN running stats off their init
    path = atomic_torch_save({"format": CHECKPOINT_FORMAT, "config": config,
                              "model": model.state_dict()},
                             tmp_path / "m.pt")
    rebuilt, cfg = model_from_checkpoint(load_checkpoint(path))
    assert cfg == config and not rebuilt.training
    for (name, a), (_, b) in zip(model.state_dict().items(), rebuilt.state_dict().items()):
        assert torch.equal(a, b), name
    with pytest.raises(RascalError, match="not a rascal.ckpt/1 checkpoint"):
        model_from_checkpoint({"config": config})
    wrong = {"format": CHECKPOINT_FORMAT, "config": {**config, "arch": "cifar_resnet18"},
             "model": model.state_dict()}
    with pytest.raises(RascalError, match="do not fit its config"):
        model_from_checkpoint(wrong)
