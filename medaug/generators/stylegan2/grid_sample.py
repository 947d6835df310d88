"""Bilinear ``grid_sample`` that can be differentiated twice w.r.t. its input on every device.

R1 is taken through ADA's resampling: its penalty is the squared gradient of D with
respect to the un-augmented reals, and training D on it differentiates that gradient
again. PyTorch's CUDA ``grid_sample`` has no second derivative
(``derivative for aten::grid_sampler_2d_backward is not implemented``, found on an
H200 by scripts/gpu-check), while its CPU path has one. Sampling is linear in the
input for a fixed grid, so its input gradient is the adjoint (transpose) of sampling,
and the adjoint's own gradient is sampling again: two small autograd functions that
call each other give every order. The sampling grid gets no gradient (ADA's grids
come from random parameters, never learned), the role NVlabs' ``grid_sample_gradfix``
plays in the reference implementation.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["grid_sample"]

_BILINEAR = 0
_PADDING = {"zeros": 0, "border": 1, "reflection": 2}


def grid_sample(images: torch.Tensor, grid: torch.Tensor, padding_mode: str = "reflection",
                align_corners: bool = False) -> torch.Tensor:
    """``F.grid_sample(images, grid, mode="bilinear", ...)``, twice differentiable w.r.t. ``images``."""
    return _Sample.apply(images, grid.detach(), padding_mode, align_corners)


class _Sample(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, images: torch.Tensor, grid: torch.Tensor, padding_mode: str,
                align_corners: bool) -> torch.Tensor:
        ctx.save_for_backward(grid)
        ctx.options = (images.shape, padding_mode, align_corners)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode=padding_mode, align_corners=align_corners)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        (grid,) = ctx.saved_tensors
        shape, padding_mode, align_corners = ctx.options
        grad_in = _Adjoint.apply(grad_out, grid, shape, padding_mode, align_corners) if ctx.needs_input_grad[0] else None
        return grad_in, None, None, None


class _Adjoint(torch.autograd.Function):
    """The transpose of bilinear sampling on ``grid``: maps an output-shaped tensor to an input-shaped one."""

    @staticmethod
    def forward(ctx: Any, grad_out: torch.Tensor, grid: torch.Tensor, shape: torch.Size, padding_mode: str,
                align_corners: bool) -> torch.Tensor:
        ctx.save_for_backward(grid)
        ctx.options = (padding_mode, align_corners)
        like = grad_out.new_empty(shape)  # only its shape is read: bilinear sampling is linear in the input
        grad_in, _ = torch.ops.aten.grid_sampler_2d_backward(grad_out, like, grid.to(grad_out.dtype), _BILINEAR,
                                                            _PADDING[padding_mode], align_corners, [True, False])
        return grad_in

    @staticmethod
    def backward(ctx: Any, grad_grad_in: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None, None]:
        (grid,) = ctx.saved_tensors
        padding_mode, align_corners = ctx.options
        out = _Sample.apply(grad_grad_in, grid, padding_mode, align_corners) if ctx.needs_input_grad[0] else None
        return out, None, None, None, None
