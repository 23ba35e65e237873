"""ResNet-18/34 feature encoders: torchvision trunks without the classifier head."""

from __future__ import annotations

from torch import Tensor, nn
from torchvision import models as tv_models

# Widths of the taps after relu, layer1, layer2, layer3, layer4 of a basic-block ResNet.
RESNET_CHANNELS = (64, 64, 128, 256, 512)

_BUILDERS = {
    18: (tv_models.resnet18, tv_models.ResNet18_Weights.IMAGENET1K_V1),
    34: (tv_models.resnet34, tv_models.ResNet34_Weights.IMAGENET1K_V1),
}


class ResNetFeatures(nn.Module):
    """Basic-block ResNet returning 5 skip features at 1/2, 1/4, 1/8, 1/16, 1/32.

    The submodule names are torchvision's (``conv1``, ``bn1``, ``layer1`` ...), so ImageNet
    state dicts map one to one; ``avgpool`` and ``fc`` are dropped because no output uses them.
    """

    def __init__(self, depth: int = 34, pretrained: bool = False) -> None:
        super().__init__()
        if depth not in _BUILDERS:
            raise ValueError(f'ResNet depth must be one of {sorted(_BUILDERS)}, got {depth}')
        builder, weights = _BUILDERS[depth]
        # pretrained=True downloads the torchvision ImageNet weights (needs network access).
        trunk = builder(weights=weights if pretrained else None)
        self.conv1 = trunk.conv1
        self.bn1 = trunk.bn1
        self.relu = trunk.relu
        self.maxpool = trunk.maxpool
        self.layer1 = trunk.layer1
        self.layer2 = trunk.layer2
        self.layer3 = trunk.layer3
        self.layer4 = trunk.layer4
        self.channels: tuple[int, ...] = RESNET_CHANNELS

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return ``[relu, layer1, layer2, layer3, layer4]`` features, finest first."""
        f1 = self.relu(self.bn1(self.conv1(x)))  # (B, 64, H/2, W/2)
        f2 = self.layer1(self.maxpool(f1))  # (B, 64, H/4, W/4)
        f3 = self.layer2(f2)  # (B, 128, H/8, W/8)
        f4 = self.layer3(f3)  # (B, 256, H/16, W/16)
        f5 = self.layer4(f4)  # (B, 512, H/32, W/32)
        return [f1, f2, f3, f4, f5]
