"""Decoder blocks of BTS (Lee et al., arXiv 1907.10326) as used by CaFNet.

Up-convolutions, dense ASPP, 1x1 reduction heads and local planar guidance (LPG).
"""

from __future__ import annotations

from collections.abc import Sequence
import math

import torch
from torch import Tensor, nn
import torch.nn.functional as F

# BTS batch-norm settings (TensorFlow-style slow running statistics).
BN_MOMENTUM = 0.01
BN_EPS = 1.1e-5


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """Return a BatchNorm2d with the BTS momentum and epsilon."""
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM, eps=BN_EPS)


class UpConv(nn.Module):
    """Nearest-neighbour upsampling followed by conv3x3 (no bias) and ELU."""

    def __init__(self, in_channels: int, out_channels: int, ratio: int = 2) -> None:
        super().__init__()
        self.ratio = ratio
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.act = nn.ELU()

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=self.ratio, mode='nearest')  # (B, C, rH, rW)
        return self.act(self.conv(x))


class UpConvBlock(nn.Module):
    """Up-convolution, batch norm, then conv3x3 + ELU: one stage of CaFNet's stage-1 decoder."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.upconv = UpConv(in_channels, out_channels)
        self.bn = batch_norm(out_channels)
        self.conv = nn.Sequential(
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), nn.ELU())

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.bn(self.upconv(x)))  # (B, C_out, 2H, 2W)


class AtrousConv(nn.Module):
    """Dense-ASPP branch: [BN] -> ReLU -> conv1x1 (2c) -> BN -> ReLU -> dilated conv3x3 (c)."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int,
                 bn_first: bool = True) -> None:
        super().__init__()
        self.bn_in = batch_norm(in_channels) if bn_first else nn.Identity()
        self.body = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(in_channels, 2 * out_channels, 1, bias=False),
            # BTS leaves this one norm at the default epsilon.
            nn.BatchNorm2d(2 * out_channels, momentum=BN_MOMENTUM),
            nn.ReLU(),
            nn.Conv2d(2 * out_channels, out_channels, 3, padding=dilation, dilation=dilation,
                      bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(self.bn_in(x))


class DenseASPP(nn.Module):
    """Densely connected atrous pyramid (BTS at 1/8).

    Branch 0 sees the decoder feature only; branch i > 0 sees the running concatenation of
    the pre-convolution input (up-sampled features + skip) and all earlier branches. The
    output fuses the feature and all branches with conv3x3 + ELU.
    """

    def __init__(self, feature_channels: int, concat_channels: int, branch_channels: int,
                 out_channels: int, rates: Sequence[int]) -> None:
        super().__init__()
        if len(rates) < 1:
            raise ValueError('dense ASPP needs at least one dilation rate')
        branches = [AtrousConv(feature_channels, branch_channels, rates[0], bn_first=False)]
        for i, rate in enumerate(rates[1:], start=1):
            branches.append(AtrousConv(concat_channels + i * branch_channels, branch_channels,
                                       rate))
        self.branches = nn.ModuleList(branches)
        self.fuse = nn.Sequential(
            nn.Conv2d(feature_channels + len(rates) * branch_channels, out_channels, 3,
                      padding=1, bias=False),
            nn.ELU())

    def forward(self, feature: Tensor, concat: Tensor) -> Tensor:
        """Fuse ``feature (B, Cf, h, w)`` with a pyramid grown from ``concat (B, Cc, h, w)``."""
        outs = [self.branches[0](feature)]
        dense = torch.cat([concat, outs[0]], dim=1)
        for branch in self.branches[1:]:
            outs.append(branch(dense))
            dense = torch.cat([dense, outs[-1]], dim=1)
        return self.fuse(torch.cat([feature, *outs], dim=1))  # (B, C_out, h, w)


def _reduction_layers(in_channels: int, out_channels: int) -> tuple[nn.Sequential, int]:
    """1x1 conv + ELU layers halving the width from ``out_channels`` down to 8."""
    layers = nn.Sequential()
    while out_channels >= 8:
        layers.append(nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                    nn.ELU()))
        in_channels, out_channels = out_channels, out_channels // 2
    return layers, in_channels


class PlaneReduction(nn.Module):
    """Reduce features to local plane coefficients ``(n1, n2, n3, d)`` per cell.

    The normal is parameterised by polar angle theta in [0, pi/3] and azimuth phi in
    [0, 2 pi] (unit length by construction); the distance d lies in (0, max_depth).
    """

    def __init__(self, in_channels: int, out_channels: int, max_depth: float) -> None:
        super().__init__()
        self.max_depth = max_depth
        self.reduce, width = _reduction_layers(in_channels, out_channels)
        self.plane = nn.Conv2d(width, 3, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        p = torch.sigmoid(self.plane(self.reduce(x)))  # (B, 3, h, w)
        theta = p[:, 0:1] * (math.pi / 3)
        phi = p[:, 1:2] * (2 * math.pi)
        dist = p[:, 2:3] * self.max_depth
        normal = [torch.sin(theta) * torch.cos(phi), torch.sin(theta) * torch.sin(phi),
                  torch.cos(theta)]
        return torch.cat([*normal, dist], dim=1)  # (B, 4, h, w)


class DepthReduction(nn.Module):
    """Reduce full-resolution features to one sigmoid channel (BTS ``reduc1x1``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.reduce, width = _reduction_layers(in_channels, out_channels)
        self.head = nn.Sequential(nn.Conv2d(width, 1, 1, bias=False), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.reduce(x))  # (B, 1, H, W) in (0, 1)


class LocalPlanarGuidance(nn.Module):
    """Expand per-cell planes to an ``upratio`` times finer depth map.

    Inside each cell the pixel offset ``(u, v)`` (column, row, centred, in cell units) gives
    depth ``d / (n1 u + n2 v + n3)`` from the ray-plane intersection of BTS.
    """

    def __init__(self, upratio: int) -> None:
        super().__init__()
        self.upratio = upratio

    def forward(self, plane: Tensor) -> Tensor:
        """Map ``plane (B, 4, h, w)`` to depth ``(B, 1, h * r, w * r)`` in metres."""
        r = self.upratio
        _, _, h, w = plane.shape
        plane = plane.repeat_interleave(r, dim=2).repeat_interleave(r, dim=3)  # (B, 4, rh, rw)
        offsets = (torch.arange(r, device=plane.device, dtype=plane.dtype) - (r - 1) / 2) / r
        u = offsets.repeat(w).view(1, 1, 1, w * r)
        v = offsets.repeat(h).view(1, 1, h * r, 1)
        n1, n2, n3, dist = plane.split(1, dim=1)
        return dist / (n1 * u + n2 * v + n3)
