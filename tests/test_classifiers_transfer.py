"""Transfer-learning classifiers: shapes, local ImageNet weights, channel adaptation, aux logits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision import models

import medaug.classifiers.transfer as transfer
from medaug.classifiers.base import CLASSIFIERS, build_classifier
from medaug.classifiers.transfer import (
    WEIGHTS_DIR_ENV,
    build_transfer,
    classifier_loss,
    main_logits,
    set_backbone_trainable,
)
from medaug.errors import MedaugError

SMALLEST = {"inception_v3": 75, "efficientnet_b0": 28, "vgg11_bn": 32, "resnet18_tv": 28, "resnet50_tv": 28}


@pytest.fixture(autouse=True)
def _no_weights_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WEIGHTS_DIR_ENV, raising=False)
    torch.manual_seed(0)


def _random_state(builder, **kw) -> dict[str, torch.Tensor]:
    """A state dict of torchvision's ImageNet model with random values, built without its slow init."""
    with torch.device("meta"):
        shapes = builder(weights=None, **kw).state_dict()
    state = {}
    for k, v in shapes.items():
        if k.endswith("num_batches_tracked"):
            state[k] = torch.zeros((), dtype=torch.long)
        elif k.endswith("running_var"):
            state[k] = torch.ones(v.shape)
        elif k.endswith("running_mean"):
            state[k] = torch.zeros(v.shape)
        else:
            state[k] = torch.randn(v.shape) * 0.05
    return state


def _save_fresh(tmp_path: Path, builder, file_name: str, **kw) -> tuple[Path, dict[str, torch.Tensor]]:
    state = _random_state(builder, **kw)
    path = tmp_path / file_name
    torch.save(state, path)
    return path, state


TV_BUILDERS = {"inception_v3": (models.inception_v3, {"aux_logits": True, "init_weights": False}),
               "efficientnet_b0": (models.efficientnet_b0, {}), "vgg11_bn": (models.vgg11_bn, {}),
               "resnet18_tv": (models.resnet18, {}), "resnet50_tv": (models.resnet50, {})}


@pytest.mark.parametrize("name", sorted(SMALLEST))
def test_builds_for_1_and_3_channels_at_the_smallest_size(name: str, tmp_path: Path) -> None:
    """3 channels from torchvision's random init; 1 channel from a weights file (RGB first conv summed)."""
    assert name in CLASSIFIERS.names()
    size = SMALLEST[name]
    rgb = build_classifier(name, 3, 5, size).eval()
    builder, kw = TV_BUILDERS[name]
    path, state = _save_fresh(tmp_path, builder, f"{name}.pth", **kw)
    gray = build_transfer(name, 1, 2, size, weights=path).eval()
    first = transfer.ARCHS[name].first_conv
    torch.testing.assert_close(gray.net.get_submodule(first).weight, state[f"{first}.weight"].sum(1, keepdim=True))
    for model, channels, classes in ((rgb, 3, 5), (gray, 1, 2)):
        with torch.no_grad():
            out = model(torch.rand(2, channels, size, size) * 2 - 1)
        assert out.shape == (2, classes) and torch.isfinite(out).all()
    with pytest.raises(MedaugError, match=f"size {size - 1}; expected an integer >= {size}"):
        build_transfer(name, 1, 2, size - 1)


def test_weights_from_a_local_file_and_rgb_sum(tmp_path: Path) -> None:
    path, state = _save_fresh(tmp_path, models.resnet18, "my-resnet18.pth")
    gray = build_transfer("resnet18_tv", 1, 4, 32, weights=path)
    torch.testing.assert_close(gray.net.conv1.weight, state["conv1.weight"].sum(dim=1, keepdim=True))
    torch.testing.assert_close(gray.net.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])
    torch.testing.assert_close(gray.net.bn1.running_var, state["bn1.running_var"])
    assert gray.net.fc.weight.shape == (4, 512) and gray.weights == str(path)
    rgb = build_transfer("resnet18_tv", 3, 4, 32, weights=path)
    torch.testing.assert_close(rgb.net.conv1.weight, state["conv1.weight"])
    # the summed conv gives a gray image the response the RGB net gives to it in all 3 channels
    gray.eval(), rgb.eval()
    rgb.net.fc = gray.net.fc
    x = torch.rand(2, 1, 40, 40) * 2 - 1
    rgb.scale.copy_(gray.scale.expand_as(rgb.scale)), rgb.shift.copy_(gray.shift.expand_as(rgb.shift))
    with torch.no_grad():
        torch.testing.assert_close(gray(x), rgb(x.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4)


def test_weights_dir_env_with_torchvision_file_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, state = _save_fresh(tmp_path, models.efficientnet_b0, "efficientnet_b0_rwightman-7f5810bc.pth")
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path))
    model = build_classifier("efficientnet_b0", 1, 3, 32)  # the registry path reads the env
    torch.testing.assert_close(model.net.features[0][0].weight, state["features.0.0.weight"].sum(1, keepdim=True))
    torch.testing.assert_close(model.net.features[6][0].block[1][0].weight, state["features.6.0.block.1.0.weight"])
    assert model.net.classifier[1].out_features == 3
    with pytest.raises(MedaugError, match="no ImageNet weights for resnet50_tv; expected one of") as err:
        build_classifier("resnet50_tv", 3, 2, 32)  # the env is set but holds no resnet50 file
    assert "resnet50-11ad3fa6.pth" in str(err.value) and "\n" not in str(err.value)


def test_inception_weights_and_aux_head(tmp_path: Path) -> None:
    path, state = _save_fresh(tmp_path, models.inception_v3, "inception.pth", aux_logits=True, init_weights=False)
    small = build_transfer("inception_v3", 1, 2, 75, weights=path)
    assert small.net.AuxLogits is None and small.head_names == ("fc",)
    torch.testing.assert_close(small.net.Conv2d_1a_3x3.conv.weight,
                               state["Conv2d_1a_3x3.conv.weight"].sum(1, keepdim=True))
    torch.testing.assert_close(small.net.Mixed_7c.branch_pool.conv.weight, state["Mixed_7c.branch_pool.conv.weight"])
    small.train()
    assert isinstance(small(torch.zeros(2, 1, 75, 75)), torch.Tensor)
    big = build_transfer("inception_v3", 3, 2, 299, weights=path)
    assert big.net.AuxLogits.fc.out_features == 2 and big.head_names == ("fc", "AuxLogits.fc")
    torch.testing.assert_close(big.net.AuxLogits.conv1.conv.weight, state["AuxLogits.conv1.conv.weight"])
    big.train()
    outputs = big(torch.rand(2, 3, 299, 299) * 2 - 1)
    assert isinstance(outputs, models.InceptionOutputs) and outputs.aux_logits.shape == (2, 2)
    targets = torch.tensor([0, 1])
    loss = classifier_loss(outputs, targets, nn.CrossEntropyLoss())
    ce = nn.CrossEntropyLoss()
    torch.testing.assert_close(loss, ce(outputs.logits, targets) + 0.4 * ce(outputs.aux_logits, targets))
    big.eval()
    with torch.no_grad():
        assert big(torch.rand(2, 3, 299, 299)).shape == (2, 2)
    with pytest.raises(MedaugError, match="auxiliary head needs size >= 299"):
        build_transfer("inception_v3", 3, 2, 256, aux_logits=True)


def test_wrong_architecture_missing_and_unreadable_files(tmp_path: Path) -> None:
    path, _ = _save_fresh(tmp_path, models.resnet18, "resnet18.pth")
    with pytest.raises(MedaugError, match="not resnet50_tv ImageNet weights: .*missing.*wrong shape") as err:
        build_transfer("resnet50_tv", 3, 2, 32, weights=path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(MedaugError, match="not efficientnet_b0 ImageNet weights"):
        build_transfer("efficientnet_b0", 3, 2, 32, weights=path)
    with pytest.raises(MedaugError, match="nothing.pth: ImageNet weights file for resnet18_tv not found"):
        build_transfer("resnet18_tv", 3, 2, 32, weights=tmp_path / "nothing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(MedaugError, match="junk.pth: not a readable PyTorch state dict"):
        build_transfer("resnet18_tv", 3, 2, 32, weights=tmp_path / "junk.pth")
    torch.save({"fc": nn.Linear(2, 2)}, tmp_path / "module.pth")  # a pickled module, refused by weights_only
    with pytest.raises(MedaugError, match="module.pth: not a readable PyTorch state dict"):
        build_transfer("resnet18_tv", 3, 2, 32, weights=tmp_path / "module.pth")
    # a head of another class count is not a wrong architecture: it is replaced anyway
    other = _random_state(models.resnet18, num_classes=7)
    torch.save({"state_dict": {f"module.{k}": v for k, v in other.items()}}, tmp_path / "ft.pth")
    model = build_transfer("resnet18_tv", 3, 2, 32, weights=tmp_path / "ft.pth")
    torch.testing.assert_close(model.net.layer1[0].conv1.weight, other["layer1.0.conv1.weight"])


def test_frozen_backbone_warm_up(tmp_path: Path) -> None:
    model = build_transfer("resnet18_tv", 1, 3, 32, freeze_backbone=True)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["net.fc.weight", "net.fc.bias"]
    before = model.net.layer1[0].conv1.weight.clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = classifier_loss(model(torch.rand(4, 1, 32, 32)), torch.tensor([0, 1, 2, 0]), nn.CrossEntropyLoss())
    loss.backward()
    opt.step()
    torch.testing.assert_close(model.net.layer1[0].conv1.weight, before)
    set_backbone_trainable(model, True)
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(MedaugError, match="transfer classifier"):
        set_backbone_trainable(nn.Linear(2, 2), False)


def test_classifier_loss_handles_inception_aux_outputs() -> None:
    criterion = nn.CrossEntropyLoss()
    targets = torch.tensor([0, 1])
    logits, aux = torch.randn(2, 2), torch.randn(2, 2)
    outputs = models.InceptionOutputs(logits, aux)
    expected = criterion(logits, targets) + 0.4 * criterion(aux, targets)
    torch.testing.assert_close(classifier_loss(outputs, targets, criterion), expected)
    torch.testing.assert_close(classifier_loss(outputs, targets, criterion, aux_weight=0.0), criterion(logits, targets))
    torch.testing.assert_close(classifier_loss(logits, targets, criterion), criterion(logits, targets))
    assert main_logits(outputs) is logits and main_logits(logits) is logits


def test_input_normalisation_matches_the_weights() -> None:
    """[-1, 1] input becomes ImageNet-normalised (Inception: stays [-1, 1], Google's convention)."""
    r = transfer.TransferClassifier(transfer.ARCHS["resnet18_tv"], nn.Identity(), 3, ("fc",), None)
    x = torch.rand(1, 3, 4, 4)
    mean = torch.tensor(transfer.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(transfer.IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(r(x * 2 - 1), (x - mean) / std)
    g = transfer.TransferClassifier(transfer.ARCHS["resnet18_tv"], nn.Identity(), 1, ("fc",), None)
    torch.testing.assert_close(g(x[:, :1] * 2 - 1), (x[:, :1] - mean.mean()) / std.mean())
    i = transfer.TransferClassifier(transfer.ARCHS["inception_v3"], nn.Identity(), 1, ("fc",), None)
    torch.testing.assert_close(i(x[:, :1] * 2 - 1), x[:, :1] * 2 - 1)


def test_pretrained_is_required_ignored_or_recorded_through_run(tmp_path: Path, tiny_root: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """spec.pretrained: true without weights is refused before anything is written (never a
    silent random start); with weights the row names the file and its digest; false
    ignores configured weights; null (the default) keeps pre-existing run ids."""
    from medaug.experiment import ExperimentSpec, run
    from medaug.hashing import file_digest

    spec = ExperimentSpec(dataset="breastmnist", size=28, classifier="resnet18_tv", epochs=1, batch_size=32,
                          pretrained=True)
    with pytest.raises(MedaugError, match=r"'pretrained' = true: no ImageNet weights for resnet18_tv; set \$MEDAUG"):
        run(spec, tmp_path / "none", data_root=tiny_root, verify_md5=False)
    assert not (tmp_path / "none").exists()
    with pytest.raises(MedaugError, match="only transfer classifiers"):
        run(spec.replace(classifier="cnn"), tmp_path / "cnn", data_root=tiny_root, verify_md5=False)
    with pytest.raises(MedaugError, match="spec field 'pretrained'"):
        ExperimentSpec(dataset="breastmnist", pretrained="yes")

    (tmp_path / "w").mkdir()
    weights, _ = _save_fresh(tmp_path / "w", models.resnet18, "resnet18-f37072fd.pth")
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(weights.parent))
    row = run(spec, tmp_path / "out", data_root=tiny_root, verify_md5=False)
    assert row["pretrained"] is True
    assert row["classifier_weights"] == f"resnet18-f37072fd.pth sha256:{file_digest(weights)[:16]}"
    scratch = run(spec.replace(pretrained=False), tmp_path / "out", data_root=tiny_root, verify_md5=False)
    assert scratch["classifier_weights"] is None and scratch["run_id"] != row["run_id"]
    default = spec.replace(pretrained=None)
    assert "pretrained" not in default.canonical_json()  # run ids from before the field are unchanged
    assert run(default, tmp_path / "out", data_root=tiny_root, verify_md5=False)["classifier_weights"] \
        == row["classifier_weights"]
