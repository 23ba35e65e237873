"""Normalised sparse convolution for sparse radar images (Uhrig et al., 3DV 2017)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
import torch.nn.functional as F


class SparseConv2d(nn.Module):
    """Convolution over valid pixels only, renormalised by the number of valid inputs.

    ``y = act(conv(x * m) / (sum_window(m) + eps) + b)`` and the output mask is the max-pooled
    input mask, so validity spreads by one kernel footprint per layer.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 activation: type[nn.Module] = nn.ELU) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f'sparse conv kernel size must be odd, got {kernel_size}')
        self.kernel_size = kernel_size
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size,
                              padding=kernel_size // 2, bias=False)
        # The bias is added after normalisation, so it cannot live inside the convolution.
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.act = activation()

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Convolve ``x (B, C, H, W)`` under ``mask (B, 1, H, W)``; return (features, mask)."""
        k, pad = self.kernel_size, self.kernel_size // 2
        y = self.conv(x * mask)  # (B, C_out, H, W)
        # Count of valid pixels under each window: a box filter of ones (no learnt weights).
        support = F.avg_pool2d(mask, k, stride=1, padding=pad, count_include_pad=True) * (k * k)
        y = y / (support + 1e-8) + self.bias.view(1, -1, 1, 1)
        return self.act(y), F.max_pool2d(mask, k, stride=1, padding=pad)


class SparseConvStem(nn.Module):
    """Stack of normalised sparse convolutions over a raw radar image.

    The validity mask is taken from channel 0 (radar z-depth > 0).
    """

    def __init__(self, channels: Sequence[int], kernel_sizes: Sequence[int],
                 activation: type[nn.Module] = nn.ELU) -> None:
        super().__init__()
        if len(channels) != len(kernel_sizes) + 1:
            raise ValueError('sparse stem needs len(channels) == len(kernel_sizes) + 1, got '
                             f'{len(channels)} channels and {len(kernel_sizes)} kernels')
        self.layers = nn.ModuleList(
            SparseConv2d(c_in, c_out, k, activation)
            for c_in, c_out, k in zip(channels[:-1], channels[1:], kernel_sizes))
        self.out_channels = channels[-1]

    def forward(self, radar: Tensor) -> Tensor:
        """Map ``radar (B, C_in, H, W)`` to dense features ``(B, C_out, H, W)``."""
        mask = (radar[:, :1] > 0).to(radar.dtype)  # (B, 1, H, W)
        x = radar
        for layer in self.layers:
            x, mask = layer(x, mask)
        return x
