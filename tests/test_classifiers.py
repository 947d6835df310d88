"""medaug.classifiers: seed architectures, shapes, size forms, registry errors, trainability."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from medaug.classifiers import CLASSIFIERS, build_classifier, count_parameters
from medaug.errors import MedaugError

NAMES = ["cnn", "fricker-cnn", "resnet18", "resnet50"]


def test_registry_holds_the_seed_classifiers():
    assert set(NAMES) <= set(CLASSIFIERS.names())


def test_cnn_has_seed_000_parameter_count():
    # seed 000, Fig. 9 (PathMNIST: 3 channels, 9 classes): "Total params: 235,225"
    model = build_classifier("cnn", 3, 9, 28)
    assert count_parameters(model) == 235_225
    assert isinstance(model.pool, nn.Identity)  # the 28-px model is the seed's, unchanged
    # the adaptive pool for larger sizes adds no parameters
    assert count_parameters(build_classifier("cnn", 3, 9, 64)) == 235_225


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("channels", [1, 3])
def test_logit_shape_at_28_px(name, channels, one_thread):
    torch.manual_seed(0)
    model = build_classifier(name, channels, 7, 28).eval()
    with torch.no_grad():
        out = model(torch.rand(2, channels, 28, 28) * 2 - 1)
    assert out.shape == (2, 7)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["cnn", "fricker-cnn", "resnet18"])
def test_forward_at_64_px(name, one_thread):
    model = build_classifier(name, 3, 4, 64).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 4)


def _has_maxpool(model: nn.Module) -> bool:
    return any(isinstance(m, nn.MaxPool2d) for m in model.modules())


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_resnet_small_form_has_3x3_stem_and_no_maxpool(name):
    model = build_classifier(name, 1, 2, 28)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert not _has_maxpool(model)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
@pytest.mark.parametrize("size", [64, 224])
def test_resnet_large_form_has_7x7_stem_and_maxpool(name, size):
    model = build_classifier(name, 3, 2, size)
    assert model.conv1.kernel_size == (7, 7) and model.conv1.stride == (2, 2)
    assert _has_maxpool(model)


def test_resnet_forms_match_known_parameter_counts():
    # MedMNIST's 28-px ResNet-18 (the CIFAR-style ResNet-18): 11,173,962 for 3 channels, 10 classes
    assert count_parameters(build_classifier("resnet18", 3, 10, 28)) == 11_173_962
    # the 224-px form is torchvision's: same count and the same state-dict keys and shapes
    ours = build_classifier("resnet18", 3, 1000, 224)
    ref = torchvision.models.resnet18()
    assert count_parameters(ours) == count_parameters(ref) == 11_689_512
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert count_parameters(build_classifier("resnet50", 3, 1000, 224)) == 25_557_032


def test_unknown_name_is_refused_with_the_valid_names():
    with pytest.raises(MedaugError, match="unknown classifier 'vgg'.*resnet18"):
        build_classifier("vgg", 3, 2, 28)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [16, 27, 28.0, True])
def test_unsupported_size_is_refused(name, size):
    with pytest.raises(MedaugError, match="image size"):
        build_classifier(name, 1, 2, size)


@pytest.mark.parametrize("field,args", [("in_channels", (0, 2)), ("num_classes", (3, 0))])
def test_bad_channels_or_classes_are_refused(field, args):
    with pytest.raises(MedaugError, match=field):
        build_classifier("cnn", *args, 28)


@pytest.mark.parametrize("name", NAMES)
def test_a_few_sgd_steps_lower_the_loss(name, one_thread):
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    y = torch.arange(4) % 2
    # noise in [-.5, .5] shifted by -/+ .25 per class: learnable in a few steps
    x = torch.rand(4, 3, 28, 28, generator=gen) - 0.5 + (y.float() * 0.5 - 0.25).view(-1, 1, 1, 1)
    model = build_classifier(name, 3, 2, 28).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def loss() -> torch.Tensor:
        torch.manual_seed(1)  # the same dropout mask at every measurement
        return loss_fn(model(x), y)

    with torch.no_grad():
        first = loss().item()
    for _ in range(3):
        opt.zero_grad()
        loss().backward()
        opt.step()
    with torch.no_grad():
        last = loss().item()
    assert last < 0.9 * first
