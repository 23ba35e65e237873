"""Multiply-accumulate counter: forward hooks on the layers that do the arithmetic.

Counted per forward pass (all batch elements):

- ``Conv2d``: ``out.numel() * (C_in / groups) * k_h * k_w``.
- ``ConvTranspose2d``: every input pixel is scattered through the kernel,
  ``in.numel() * (C_out / groups) * k_h * k_w``. ``transposed_as_conv=True`` counts it as a
  convolution over the output instead (``out.numel() * (C_in / groups) * k_h * k_w``, 4x more
  for stride 2), the convention of the ``thop`` profiler behind the papers' figures: with it
  LiRCDepth counts 28.7 G at 352x704 (paper 28.1 G; our uncertainty head adds 1.2 G), with
  the exact count 21.7 G. CaFNet has no transposed convs: 118.2 G (paper 118.5 G).
- ``Linear``: ``out.numel() * in_features``.
- ``BatchNorm`` (optional, ``include_norm=True``): one per output element; off by default
  because inference folds it into the preceding convolution.

Activations, pooling, interpolation and element-wise sums are not MACs and are left out, as
in the usual profilers the papers quote. On the ``meta`` device the forward pass computes
shapes only, so a 896x1600 count takes seconds on CPU and no memory.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .variants import build_model

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm,
          nn.InstanceNorm2d)


def module_macs(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor,
                include_norm: bool = False, transposed_as_conv: bool = False) -> int:
    """MACs of one leaf-module call, 0 for modules that do no multiply-accumulates."""
    if isinstance(module, nn.Conv2d) or (transposed_as_conv
                                         and isinstance(module, nn.ConvTranspose2d)):
        k_h, k_w = module.kernel_size
        return output.numel() * (module.in_channels // module.groups) * k_h * k_w
    if isinstance(module, nn.ConvTranspose2d):
        k_h, k_w = module.kernel_size
        return inputs[0].numel() * (module.out_channels // module.groups) * k_h * k_w
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    if include_norm and isinstance(module, _NORMS):
        return output.numel()
    return 0


def count_macs(model: nn.Module, inputs: tuple[Tensor, ...], include_norm: bool = False,
               transposed_as_conv: bool = False) -> int:
    """Run ``model(*inputs)`` once without grad and return the summed MACs of its layers."""
    total = 0

    def hook(module: nn.Module, args: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        total += module_macs(module, args, output, include_norm, transposed_as_conv)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if not list(m.children())]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(*inputs)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total


def model_macs(model: nn.Module, height: int, width: int, radar_channels: int = 4,
               include_norm: bool = False, transposed_as_conv: bool = False) -> int:
    """MACs of a depth network for one ``(image, radar)`` pair of ``height x width``.

    The inputs are created on the model's device; a model built on ``meta`` counts from
    shapes alone.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f'height and width must be positive, got {height}x{width}')
    param = next(model.parameters())
    image = torch.zeros(1, 3, height, width, device=param.device)  # (1, 3, H, W)
    radar = torch.zeros(1, radar_channels, height, width, device=param.device)  # (1, 4, H, W)
    return count_macs(model, (image, radar), include_norm, transposed_as_conv)


def config_macs(config: object, height: int, width: int, include_norm: bool = False,
                transposed_as_conv: bool = False) -> int:
    """MACs of the network a config describes, built on the ``meta`` device (no memory)."""
    with torch.device('meta'):
        model = build_model(config)
    return model_macs(model, height, width, getattr(config, 'radar_channels', 4), include_norm,
                      transposed_as_conv)


def format_count(value: float, digits: int = 2) -> str:
    """``12649981 -> '12.65 M'``, ``28.1e9 -> '28.10 G'``."""
    for scale, prefix in ((1e9, 'G'), (1e6, 'M'), (1e3, 'k')):
        if abs(value) >= scale:
            return f'{value / scale:.{digits}f} {prefix}'
    return f'{value:.0f}'
