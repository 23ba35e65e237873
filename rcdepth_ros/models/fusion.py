"""Radar-into-image feature fusion at one scale: addition, concatenation, attention, FiLM.

Every module maps ``(f_i (B, C_i, h, w), f_r (B, C_r, h, w)) -> (B, C_i, h, w)``, so the
decoder does not depend on the fusion kind. Widths are the adapted (teacher) widths of the
two encoders. The extra cost of each kind over addition is what the XD-RCDepth ablation
compares (see :mod:`rcdepth_ros.models.student`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .blocks import ConvReLU

FUSION_KINDS = ('add', 'concat', 'attention', 'film')


class AddFusion(nn.Module):
    """``f = f_i + ReLU(W f_r)``: LiRCDepth's fusion (1x1 radar -> image width, then add)."""

    def __init__(self, image_channels: int, radar_channels: int) -> None:
        super().__init__()
        self.radar_proj = ConvReLU(radar_channels, image_channels)

    def forward(self, image: Tensor, radar: Tensor) -> Tensor:
        return image + self.radar_proj(radar)


class ConcatFusion(nn.Module):
    """``f = ReLU(BN(Conv_k([f_i, ReLU(W f_r)])))``: concatenate, then mix both streams.

    k = 3 below 1/32 so the mix can also shift sparse, laterally imprecise radar evidence
    onto the image; k = 1 at 1/32, where one cell already spans a car.
    """

    def __init__(self, image_channels: int, radar_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.radar_proj = ConvReLU(radar_channels, image_channels)
        self.mix = nn.Sequential(
            nn.Conv2d(2 * image_channels, image_channels, kernel_size,
                      padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(image_channels),
            nn.ReLU(inplace=True))

    def forward(self, image: Tensor, radar: Tensor) -> Tensor:
        return self.mix(torch.cat([image, self.radar_proj(radar)], dim=1))  # (B, C_i, h, w)


class AttentionFusion(nn.Module):
    """``f = f_i + sigmoid(A [f_i, r]) * r``, ``r = ReLU(W f_r)``: per-pixel, per-channel gate."""

    def __init__(self, image_channels: int, radar_channels: int) -> None:
        super().__init__()
        self.radar_proj = ConvReLU(radar_channels, image_channels)
        self.gate = nn.Sequential(
            nn.Conv2d(2 * image_channels, image_channels, 1), nn.Sigmoid())

    def forward(self, image: Tensor, radar: Tensor) -> Tensor:
        r = self.radar_proj(radar)  # (B, C_i, h, w)
        return image + self.gate(torch.cat([image, r], dim=1)) * r


class FiLMFusion(nn.Module):
    """FiLM: ``gamma = W_g f_r``, ``beta = W_b f_r``, ``f = (1 + gamma) * f_i + beta``.

    The ``1 +`` keeps the image path an identity at initialisation-scale gamma.
    """

    def __init__(self, image_channels: int, radar_channels: int) -> None:
        super().__init__()
        self.gamma = nn.Conv2d(radar_channels, image_channels, 1)
        self.beta = nn.Conv2d(radar_channels, image_channels, 1)

    def forward(self, image: Tensor, radar: Tensor) -> Tensor:
        return (1.0 + self.gamma(radar)) * image + self.beta(radar)

    def fused(self) -> FusedFiLM:
        """Return the same map with gamma and beta from one conv (inference; see .fuse)."""
        return FusedFiLM(self)


class FusedFiLM(nn.Module):
    """Inference form of :class:`FiLMFusion`: one read of ``f_r``, two element-wise ops.

    ``[gamma; beta] = W f_r`` with the two 1x1 convs stacked into one, then
    ``f = (f_i + beta) + gamma * f_i`` (``torch.addcmul``): the same numbers as
    ``(1 + gamma) * f_i + beta`` up to fp32 rounding, with the same parameters.
    """

    def __init__(self, film: FiLMFusion) -> None:
        super().__init__()
        gamma, beta = film.gamma, film.beta
        self.modulation = nn.Conv2d(gamma.in_channels, 2 * gamma.out_channels, 1)
        with torch.no_grad():
            self.modulation.weight.copy_(torch.cat([gamma.weight, beta.weight]))
            self.modulation.bias.copy_(torch.cat([gamma.bias, beta.bias]))
        self.modulation.to(gamma.weight.device, gamma.weight.dtype)

    def forward(self, image: Tensor, radar: Tensor) -> Tensor:
        gamma, beta = self.modulation(radar).chunk(2, dim=1)  # 2 x (B, C_i, h, w)
        return torch.addcmul(image + beta, gamma, image)


class MultiScaleFusion(nn.Module):
    """One fusion module per scale; ``forward`` zips image and radar feature lists."""

    def __init__(self, kind: str, image_widths: Sequence[int],
                 radar_widths: Sequence[int]) -> None:
        super().__init__()
        if kind not in FUSION_KINDS:
            raise ValueError(f'fusion must be one of {FUSION_KINDS}, got {kind!r}')
        if len(image_widths) != len(radar_widths):
            raise ValueError('image_widths and radar_widths must have the same length')
        last = len(image_widths) - 1
        modules = []
        for s, (c_i, c_r) in enumerate(zip(image_widths, radar_widths)):
            if kind == 'add':
                modules.append(AddFusion(c_i, c_r))
            elif kind == 'concat':
                modules.append(ConcatFusion(c_i, c_r, kernel_size=1 if s == last else 3))
            elif kind == 'attention':
                modules.append(AttentionFusion(c_i, c_r))
            else:
                modules.append(FiLMFusion(c_i, c_r))
        self.scales = nn.ModuleList(modules)

    def forward(self, image: Sequence[Tensor], radar: Sequence[Tensor]) -> list[Tensor]:
        """Fuse per scale; lists finest first, output widths = image widths."""
        return [fuse(f_i, f_r) for fuse, f_i, f_r in zip(self.scales, image, radar)]
