"""Small building blocks shared by the student networks.

Attribute names are the checkpoint contract: they are named by role and must not change.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class ConvReLU(nn.Sequential):
    """Bias-free convolution followed by ReLU (the adapters and side heads of LiRCDepth)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                      bias=False),
            nn.ReLU(inplace=True),
        )


class TransposedInvertedResidual(nn.Module):
    """MobileNetV2 inverted residual with transposed convolutions, optionally upsampling x2.

    expand 1x1 (C_in -> t*C_in) + BN + ReLU6, depthwise 3x3 transposed conv (stride 1 or 2)
    + BN + ReLU6, point-wise 1x1 transposed conv (t*C_in -> C_out) + BN. No residual: the
    LiRCDepth decoder changes width or scale in most blocks.
    """

    def __init__(self, in_channels: int, out_channels: int, expansion: int = 6,
                 stride: int = 1) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f'stride must be 1 or 2, got {stride}')
        hidden = in_channels * expansion
        self.expand = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
        )
        self.depthwise = nn.Sequential(
            nn.ConvTranspose2d(hidden, hidden, 3, stride=stride, padding=1,
                               output_padding=stride - 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
        )
        self.project = nn.Sequential(
            nn.ConvTranspose2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.project(self.depthwise(self.expand(x)))


def transposed_stage(in_channels: int, bottleneck: int, out_channels: int, blocks: int,
                     expansion: int) -> nn.Sequential:
    """``blocks`` transposed inverted residuals: in -> bottleneck ... -> out, the last one x2.

    The width drops to ``bottleneck`` in the first block and rises to ``out_channels`` in the
    upsampling last block, as in the LiRCDepth decoder.
    """
    if blocks < 2:
        raise ValueError(f'a decoder stage needs at least 2 blocks, got {blocks}')
    layers = [TransposedInvertedResidual(in_channels, bottleneck, expansion)]
    layers += [TransposedInvertedResidual(bottleneck, bottleneck, expansion)
               for _ in range(blocks - 2)]
    layers.append(TransposedInvertedResidual(bottleneck, out_channels, expansion, stride=2))
    return nn.Sequential(*layers)


class PointwiseUpsample(nn.Sequential):
    """x2 up-sampling in point-wise form: 1x1 conv at the input scale, nearest x2, depthwise 3x3.

    The light alternative (XD-RCDepth) to a dense stride-2 3x3 transposed conv: the channel
    mixing runs at the coarse scale and only a depthwise 3x3 at the fine one. Linear, like
    the transposed conv it replaces.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.upsample = nn.Upsample(scale_factor=2.0, mode='nearest')
        self.depthwise = nn.Conv2d(out_channels, out_channels, 3, padding=1,
                                   groups=out_channels, bias=False)


class SeparableAtrousBranch(nn.Module):
    """One point-wise DASPP branch: 1x1 squeeze, dilated depthwise 3x3, 1x1 projection."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int, dilation: int) -> None:
        super().__init__()
        self.squeeze = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True))
        self.depthwise = nn.Sequential(
            nn.Conv2d(hidden, hidden, 3, padding=dilation, dilation=dilation, groups=hidden,
                      bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU(inplace=True))
        self.project = nn.Sequential(
            nn.Conv2d(hidden, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        return self.project(self.depthwise(self.squeeze(x)))


class PointwiseDenseASPP(nn.Module):
    """Densely connected atrous pyramid with depthwise-separable branches (XD-RCDepth).

    Branch k sees the input concatenated with the outputs of branches 0..k-1 (DenseASPP);
    each branch is point-wise 1x1 convolutions around a dilated depthwise 3x3, so the
    receptive field grows with the rates at a fraction of the cost of dense 3x3 convs.
    A 1x1 fuse conv maps ``[x, all branches]`` back to ``channels``.
    """

    def __init__(self, channels: int, branch_channels: int, rates: Sequence[int]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            SeparableAtrousBranch(channels + k * branch_channels, branch_channels,
                                  branch_channels, rate)
            for k, rate in enumerate(rates))
        self.fuse = ConvReLU(channels + len(rates) * branch_channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        features = x
        for branch in self.branches:
            features = torch.cat([features, branch(features)], dim=1)  # (B, C + k*g, h, w)
        return self.fuse(features)
