"""CaFNet teacher: confidence-aware radar-camera fusion (Sun et al., IROS 2024).

Two stages. Stage 1 densifies the radar with normalised sparse convolutions and a ResNet-18,
decodes it together with the ResNet-34 image features into a coarse depth and a per-pixel
confidence that the radar point is correctly associated. Stage 2 re-encodes the confident
coarse depth with the radar and fuses it into a BTS decoder through confidence-gated
residuals at five scales.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
import torch.nn.functional as F

from .bts import (
    DenseASPP,
    DepthReduction,
    LocalPlanarGuidance,
    PlaneReduction,
    UpConv,
    UpConvBlock,
    batch_norm,
)
from .outputs import TeacherOutput, check_inputs
from .resnet import ResNetFeatures
from .sparse_conv import SparseConvStem


@dataclass(frozen=True)
class CaFNetConfig:
    """Architecture of the CaFNet teacher; saved with every checkpoint.

    - image_encoder_depth / radar_encoder_depth: ResNet depths (34 and 18 in the paper).
    - radar_channels: raw radar image channels ``[z, rcs, vx, vy]``.
    - sparse_channels / sparse_kernels: stage-1 normalised sparse convolutions; the last
      width must be 3 to feed an ImageNet ResNet.
    - bts_size: BTS feature size F; decoder widths are (F, F/4, F/4, F/8, F/16).
    - daspp_rates: dense ASPP dilation rates at 1/8.
    - confidence_threshold: stage-1 confidence above which the coarse depth is kept.
    - max_depth: depth = max_depth * sigmoid(.), metres.
    - pretrained: load torchvision ImageNet weights into the three ResNets (needs network).
    """

    image_encoder_depth: int = 34
    radar_encoder_depth: int = 18
    radar_channels: int = 4
    sparse_channels: tuple[int, ...] = (16, 16, 16, 3)
    sparse_kernels: tuple[int, ...] = (7, 5, 3, 3)
    bts_size: int = 512
    daspp_rates: tuple[int, ...] = (3, 6, 12, 18, 24)
    confidence_threshold: float = 0.4
    max_depth: float = 100.0
    pretrained: bool = False

    def __post_init__(self) -> None:
        # JSON round trips turn tuples into lists; keep the dataclass hashable and comparable.
        for name in ('sparse_channels', 'sparse_kernels', 'daspp_rates'):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if len(self.sparse_channels) != len(self.sparse_kernels):
            raise ValueError('sparse_channels and sparse_kernels must have the same length')
        if self.sparse_channels[-1] != 3:
            raise ValueError('the last sparse conv width must be 3 (input of a ResNet), got '
                             f'{self.sparse_channels[-1]}')
        if self.bts_size % 32 != 0 or self.bts_size < 128:
            raise ValueError(f'bts_size must be a multiple of 32 and >= 128, got {self.bts_size}')
        if not 0.0 < self.confidence_threshold < 1.0:
            raise ValueError('confidence_threshold must be in (0, 1), got '
                             f'{self.confidence_threshold}')
        if self.max_depth <= 0:
            raise ValueError(f'max_depth must be positive, got {self.max_depth}')

    @property
    def decoder_widths(self) -> tuple[int, ...]:
        """Widths of the five decoder features, 1/16 .. 1/1."""
        f = self.bts_size
        return (f, f // 4, f // 4, f // 8, f // 16)


class GatedRadarFusion(nn.Module):
    """Confidence-aware gated radar residual at one scale.

    ``r = sigmoid(W_g f) * relu(W_p f) * avgpool_s(confidence)`` with 1x1 convolutions.
    """

    def __init__(self, radar_channels: int, out_channels: int, scale: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(nn.Conv2d(radar_channels, out_channels, 1, bias=False),
                                  nn.Sigmoid())
        self.project = nn.Sequential(nn.Conv2d(radar_channels, out_channels, 1, bias=False),
                                     nn.ReLU())
        self.pool = nn.AvgPool2d(scale, scale)

    def forward(self, radar_feature: Tensor, confidence: Tensor) -> Tensor:
        """Gate ``radar_feature (B, C, h, w)`` by ``confidence (B, 1, H, W)`` pooled to h x w."""
        return self.gate(radar_feature) * self.project(radar_feature) * self.pool(confidence)


class ConfidenceDecoder(nn.Module):
    """Stage-1 decoder: coarse depth and radar confidence from image + radar features.

    Five up-convolution blocks, each concatenating the image and radar skips of its scale;
    widths are half the radar encoder's. A conv3x3 head gives 2 sigmoid channels.
    """

    def __init__(self, image_channels: Sequence[int], radar_channels: Sequence[int],
                 max_depth: float) -> None:
        super().__init__()
        self.max_depth = max_depth
        widths = [c // 2 for c in radar_channels]  # output width of the block at each scale
        self.block5 = UpConvBlock(image_channels[4] + radar_channels[4], widths[4])
        self.block4 = UpConvBlock(image_channels[3] + radar_channels[3] + widths[4], widths[3])
        self.block3 = UpConvBlock(image_channels[2] + radar_channels[2] + widths[3], widths[2])
        self.block2 = UpConvBlock(image_channels[1] + radar_channels[1] + widths[2], widths[1])
        self.block1 = UpConvBlock(image_channels[0] + radar_channels[0] + widths[1], widths[0])
        self.head = nn.Conv2d(widths[0], 2, 3, padding=1, bias=False)

    def forward(self, image: Sequence[Tensor], radar: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """Return ``(coarse_depth, confidence)``, each ``(B, 1, H, W)``."""
        x = self.block5(torch.cat([image[4], radar[4]], dim=1))  # (B, 256, H/16, W/16)
        x = self.block4(torch.cat([image[3], radar[3], x], dim=1))  # (B, 128, H/8, W/8)
        x = self.block3(torch.cat([image[2], radar[2], x], dim=1))  # (B, 64, H/4, W/4)
        x = self.block2(torch.cat([image[1], radar[1], x], dim=1))  # (B, 32, H/2, W/2)
        x = self.block1(torch.cat([image[0], radar[0], x], dim=1))  # (B, 32, H, W)
        out = torch.sigmoid(self.head(x))  # (B, 2, H, W)
        return self.max_depth * out[:, 0:1], out[:, 1:2]


class GatedBTSDecoder(nn.Module):
    """BTS decoder with confidence-gated radar residuals at 1/32, 1/16, 1/8, 1/4 and 1/2.

    Returns ``(depth, inter_depths, decoder_features, radar_features)``: depth in metres;
    three LPG depths at 1/8, 1/4, 1/2 (full size, depth / max_depth); decoder features
    1/16 .. 1/1 (coarsest first); gated radar residuals 1/2 .. 1/32 (finest first).
    """

    def __init__(self, image_channels: Sequence[int], radar_channels: Sequence[int],
                 num_features: int, rates: Sequence[int], max_depth: float) -> None:
        super().__init__()
        self.max_depth = max_depth
        f, img = num_features, image_channels
        # 1/32 -> 1/16
        self.fusion5 = GatedRadarFusion(radar_channels[4], img[4], 32)
        self.upconv5 = UpConv(img[4], f)
        self.bn5 = batch_norm(f)
        self.conv5 = nn.Sequential(nn.Conv2d(f + img[3], f, 3, padding=1, bias=False), nn.ELU())
        # 1/16 -> 1/8, dense ASPP
        self.fusion4 = GatedRadarFusion(radar_channels[3], f, 16)
        self.upconv4 = UpConv(f, f // 2)
        self.bn4 = batch_norm(f // 2)
        self.conv4 = nn.Sequential(
            nn.Conv2d(f // 2 + img[2], f // 2, 3, padding=1, bias=False), nn.ELU())
        self.bn4_2 = batch_norm(f // 2)
        self.daspp = DenseASPP(f // 2, f // 2 + img[2], f // 4, f // 4, rates)
        self.fusion3 = GatedRadarFusion(radar_channels[2], f // 4, 8)
        self.reduc8x8 = PlaneReduction(f // 4, f // 4, max_depth)
        self.lpg8x8 = LocalPlanarGuidance(8)
        # 1/8 -> 1/4
        self.upconv3 = UpConv(f // 4, f // 4)
        self.bn3 = batch_norm(f // 4)
        self.conv3 = nn.Sequential(
            nn.Conv2d(f // 4 + img[1] + 1, f // 4, 3, padding=1, bias=False), nn.ELU())
        self.fusion2 = GatedRadarFusion(radar_channels[1], f // 4, 4)
        self.reduc4x4 = PlaneReduction(f // 4, f // 8, max_depth)
        self.lpg4x4 = LocalPlanarGuidance(4)
        # 1/4 -> 1/2
        self.upconv2 = UpConv(f // 4, f // 8)
        self.bn2 = batch_norm(f // 8)
        self.conv2 = nn.Sequential(
            nn.Conv2d(f // 8 + img[0] + 1, f // 8, 3, padding=1, bias=False), nn.ELU())
        self.fusion1 = GatedRadarFusion(radar_channels[0], f // 8, 2)
        self.reduc2x2 = PlaneReduction(f // 8, f // 16, max_depth)
        self.lpg2x2 = LocalPlanarGuidance(2)
        # 1/2 -> 1
        self.upconv1 = UpConv(f // 8, f // 16)
        self.reduc1x1 = DepthReduction(f // 16, f // 32)
        self.conv1 = nn.Sequential(
            nn.Conv2d(f // 16 + 4, f // 16, 3, padding=1, bias=False), nn.ELU())
        self.get_depth = nn.Conv2d(f // 16, 1, 3, padding=1, bias=False)

    def forward(self, image: Sequence[Tensor], radar: Sequence[Tensor], confidence: Tensor
                ) -> tuple[Tensor, tuple[Tensor, ...], tuple[Tensor, ...], tuple[Tensor, ...]]:
        """Decode image features, gated by radar features and the stage-1 confidence."""
        skip0, skip1, skip2, skip3, top = image
        r5 = self.fusion5(radar[4], confidence)  # (B, 512, H/32, W/32)
        x = F.relu(top) + r5
        x = self.bn5(self.upconv5(x))  # (B, F, H/16, W/16)
        iconv5 = self.conv5(torch.cat([x, skip3], dim=1))  # (B, F, H/16, W/16)

        r4 = self.fusion4(radar[3], confidence)  # (B, F, H/16, W/16)
        x = self.bn4(self.upconv4(iconv5 + r4))  # (B, F/2, H/8, W/8)
        concat4 = torch.cat([x, skip2], dim=1)
        iconv4 = self.bn4_2(self.conv4(concat4))  # (B, F/2, H/8, W/8)
        r3 = self.fusion3(radar[2], confidence)  # (B, F/4, H/8, W/8)
        daspp = self.daspp(iconv4, concat4) + r3  # (B, F/4, H/8, W/8)
        depth8 = self.lpg8x8(self.reduc8x8(daspp)) / self.max_depth  # (B, 1, H, W)

        x = self.bn3(self.upconv3(daspp))  # (B, F/4, H/4, W/4)
        depth8_down = F.interpolate(depth8, size=skip1.shape[-2:], mode='nearest')
        r2 = self.fusion2(radar[1], confidence)  # (B, F/4, H/4, W/4)
        iconv3 = self.conv3(torch.cat([x, skip1, depth8_down], dim=1)) + r2
        depth4 = self.lpg4x4(self.reduc4x4(iconv3)) / self.max_depth  # (B, 1, H, W)

        x = self.bn2(self.upconv2(iconv3))  # (B, F/8, H/2, W/2)
        depth4_down = F.interpolate(depth4, size=skip0.shape[-2:], mode='nearest')
        r1 = self.fusion1(radar[0], confidence)  # (B, F/8, H/2, W/2)
        iconv2 = self.conv2(torch.cat([x, skip0, depth4_down], dim=1)) + r1
        depth2 = self.lpg2x2(self.reduc2x2(iconv2)) / self.max_depth  # (B, 1, H, W)

        x = self.upconv1(iconv2)  # (B, F/16, H, W)
        iconv1 = self.conv1(torch.cat([x, self.reduc1x1(x), depth2, depth4, depth8], dim=1))
        depth = self.max_depth * torch.sigmoid(self.get_depth(iconv1))  # (B, 1, H, W)
        # As in the reference, the 1/16 feature is taken before its radar residual.
        features = (iconv5, daspp, iconv3, iconv2, iconv1)
        return depth, (depth8, depth4, depth2), features, (r1, r2, r3, r4, r5)


def _xavier_init(module: nn.Module) -> None:
    """Xavier-uniform conv weights, zero biases (BTS/CaFNet decoder initialisation)."""
    if isinstance(module, nn.Conv2d):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class CaFNet(nn.Module):
    """CaFNet teacher: ``model(image (B,3,H,W), radar (B,4,H,W)) -> TeacherOutput``.

    H and W must be multiples of 32. ``image`` is ImageNet-normalised RGB; ``radar`` the raw
    radar image ``[z, rcs, vx, vy]`` with z = 0 where there is no point.
    """

    def __init__(self, config: CaFNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or CaFNetConfig()
        self.image_encoder = ResNetFeatures(config.image_encoder_depth, config.pretrained)
        # Stage 1: radar densification and confidence estimation.
        self.radar_stem = SparseConvStem((config.radar_channels, *config.sparse_channels),
                                         config.sparse_kernels)
        self.radar_encoder = ResNetFeatures(config.radar_encoder_depth, config.pretrained)
        self.confidence_decoder = ConfidenceDecoder(
            self.image_encoder.channels, self.radar_encoder.channels, config.max_depth)
        # Stage 2: [confident coarse depth, radar] re-encoded, then the gated BTS decoder.
        self.refine_stem = nn.Sequential(
            nn.Conv2d(config.radar_channels + 1, 3, 3, padding=1, bias=False), nn.ELU())
        self.refine_encoder = ResNetFeatures(config.radar_encoder_depth, config.pretrained)
        self.decoder = GatedBTSDecoder(
            self.image_encoder.channels, self.refine_encoder.channels, config.bts_size,
            config.daspp_rates, config.max_depth)
        self.confidence_decoder.apply(_xavier_init)
        self.decoder.apply(_xavier_init)

    def forward(self, image: Tensor, radar: Tensor) -> TeacherOutput:
        """Predict depth, confidence and the distillation features."""
        check_inputs(image, radar, self.config.radar_channels)
        image_features = self.image_encoder(image)  # 5 x (B, C_s, H/2^s, W/2^s)
        radar_features = self.radar_encoder(self.radar_stem(radar))
        coarse_depth, confidence = self.confidence_decoder(image_features, radar_features)

        keep = (confidence > self.config.confidence_threshold).to(coarse_depth.dtype)
        refine_input = torch.cat([keep * coarse_depth, radar], dim=1)  # (B, 1 + C_r, H, W)
        refine_features = self.refine_encoder(self.refine_stem(refine_input))
        depth, inter_depths, decoder_features, gated = self.decoder(
            image_features, refine_features, confidence)
        return TeacherOutput(
            depth=depth,
            confidence=confidence,
            coarse_depth=coarse_depth,
            inter_depths=inter_depths,
            decoder_features=decoder_features,
            image_features=tuple(image_features),
            radar_features=gated,
            xkd_features=(image_features[3], refine_features[3], decoder_features[0]),
        )

