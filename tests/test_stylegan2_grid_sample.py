"""ADA's twice-differentiable bilinear grid_sample: the same values and first and second
derivatives as PyTorch's (whose CPU path has a second derivative and whose CUDA path has
none), and R1 through it on CUDA."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medaug.generators.stylegan2.grid_sample import grid_sample


def _case(padding: str, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 2, 9, 7, generator=gen, dtype=torch.float64)
    theta = torch.eye(2, 3, dtype=torch.float64).repeat(3, 1, 1) + 0.3 * torch.randn(3, 2, 3, generator=gen,
                                                                                     dtype=torch.float64)
    grid = F.affine_grid(theta, [3, 2, 9, 7], align_corners=False)
    weight = torch.randn(3, 2, 9, 7, generator=gen, dtype=torch.float64)
    return x, grid, weight


def _r1_like(sample, x, grid, weight):
    """(value, d value / d x, d |d value / d x|^2 / d x): what R1 through the augmentation differentiates."""
    x = x.clone().requires_grad_(True)
    y = sample(x, grid)
    value = (torch.tanh(y) * weight).sum()
    (grad,) = torch.autograd.grad(value, x, create_graph=True)
    (grad2,) = torch.autograd.grad(grad.square().sum(), x)
    return y.detach(), grad.detach(), grad2


@pytest.mark.parametrize("padding", ["reflection", "zeros", "border"])
def test_matches_torch_values_and_first_and_second_derivatives(padding):
    x, grid, weight = _case(padding)
    ours = _r1_like(lambda a, g: grid_sample(a, g, padding_mode=padding), x, grid, weight)
    ref = _r1_like(lambda a, g: F.grid_sample(a, g, mode="bilinear", padding_mode=padding, align_corners=False),
                   x, grid, weight)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    assert ours[2].abs().max() > 0  # the second derivative is not trivially zero here


def test_gradcheck_through_two_orders():
    x, grid, _ = _case("reflection", seed=1)
    x = x[:1, :1, :5, :4].clone().requires_grad_(True)
    grid = F.affine_grid(torch.tensor([[[0.9, 0.2, 0.1], [-0.1, 1.1, 0.05]]], dtype=torch.float64), [1, 1, 5, 4],
                         align_corners=False)
    assert torch.autograd.gradcheck(lambda a: grid_sample(a, grid), (x,))
    assert torch.autograd.gradgradcheck(lambda a: grid_sample(a, grid), (x,))


def test_the_grid_gets_no_gradient():
    x, grid, weight = _case("reflection")
    grid = grid.clone().requires_grad_(True)
    (grid_sample(x.requires_grad_(True), grid) * weight).sum().backward()
    assert grid.grad is None and x.grad is not None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_second_derivative_on_cuda_matches_the_cpu():
    x, grid, weight = _case("reflection")
    cpu = _r1_like(lambda a, g: grid_sample(a, g), x, grid, weight)
    cuda = _r1_like(lambda a, g: grid_sample(a, g), x.cuda(), grid.cuda(), weight.cuda())
    for a, b in zip(cpu, cuda):
        torch.testing.assert_close(a, b.cpu(), rtol=1e-8, atol=1e-8)
