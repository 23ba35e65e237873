"""MobileNetV2 feature encoder with five taps and 1x1 distillation adapters (LiRCDepth)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn
from torchvision import models as tv_models

from .blocks import ConvReLU

# torchvision ``mobilenet_v2().features`` is tapped after blocks 2, 4, 7, 11 and 19 (counting
# from 1), i.e. at 1/2, 1/4, 1/8, 1/16 and 1/32 of the input, with these widths.
MOBILENET_TAPS = (2, 4, 7, 11, 19)
MOBILENET_CHANNELS = (16, 24, 32, 64, 1280)


class MobileNetV2Features(nn.Module):
    """MobileNetV2 trunk returning 5 adapted features at 1/2 .. 1/32, finest first.

    ``in_channels != 3`` adds a bias-free conv3x3 + ReLU stem that maps the input to 3
    channels (the radar branch, 4 -> 3), so the ImageNet trunk is unchanged. Each tap goes
    through a 1x1 conv + ReLU adapter to ``adapter_widths`` (the teacher's widths, for
    feature distillation); ``channels`` publishes them.
    """

    def __init__(self, adapter_widths: Sequence[int], in_channels: int = 3,
                 pretrained: bool = False) -> None:
        super().__init__()
        if len(adapter_widths) != len(MOBILENET_TAPS):
            raise ValueError(f'need {len(MOBILENET_TAPS)} adapter widths, got {adapter_widths}')
        self.stem = nn.Identity() if in_channels == 3 else ConvReLU(in_channels, 3, 3)
        # pretrained=True downloads the torchvision ImageNet weights (needs network access).
        weights = tv_models.MobileNet_V2_Weights.IMAGENET1K_V1 if pretrained else None
        self.features = tv_models.mobilenet_v2(weights=weights).features
        self.adapters = nn.ModuleList(
            ConvReLU(c_in, c_out) for c_in, c_out in zip(MOBILENET_CHANNELS, adapter_widths))
        self.channels: tuple[int, ...] = tuple(int(c) for c in adapter_widths)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return 5 features ``(B, channels[s], H / 2^(s+1), W / 2^(s+1))``, finest first."""
        x = self.stem(x)  # (B, 3, H, W)
        taps = []
        for index, block in enumerate(self.features, start=1):
            x = block(x)
            if index in MOBILENET_TAPS:
                taps.append(x)
        return [adapter(tap) for adapter, tap in zip(self.adapters, taps)]
