"""The students, LiRCDepth and XD-RCDepth: one class, the variant is its :class:`StudentConfig`.

Both: two MobileNetV2 encoders (image; radar behind a conv3x3 4 -> 3 stem) whose five taps
are adapted to the teacher's widths, radar fused into image at every scale, a transposed
inverted-residual decoder and the uncertainty head.

LiRCDepth (12.65 M): additive fusion, decoder stages of 3, 8, 3, 2 blocks with expansion 6.
Image encoder 2.90 M and radar encoder 2.92 M include their adapters (MobileNetV2 features
alone are 2.22 M); decoder 6.82 M includes the radar -> image fusion projections (0.42 M).

XD-RCDepth (8.89 M with FiLM) sizing. The paper gives totals only, so the widths are worked
out here. The encoders are as LiRCDepth (5.82 M, adapters kept for feature distillation),
leaving 3.07 M for fusion + decoder. With the adapted widths C_i = (64, 64, 128, 256, 512),
C_r = (64, 128, 128, 512, 512), sum C_r C_i = 0.42 M, sum C_i^2 = 0.35 M:

- add: one projection per scale, 0.42 M.
- FiLM: gamma and beta convs with bias, 0.85 M (paper: FiLM - add = 0.15 M; ours 0.42 M,
  since FiLM cannot share add's projection).
- attention: projection + 1x1 gate over [f_i, r], 0.42 + 0.70 = 1.13 M (paper: +0.74 M
  over add; ours +0.70 M).
- concat: projection + a mixing conv over [f_i, r] (3x3, 1x1 at 1/32), 2.57 M (paper: +2.20
  M over add; ours +2.15 M).

The decoder keeps the LiRCDepth bottlenecks and gets its size from the expansion ratio,
which dominates LiRCDepth's decoder (the first 1x1 expansion of the 1/16 stage alone is
768 * 4608 = 3.5 M at t = 6): t = 2 with 2, 4, 2, 2 blocks. A point-wise dense ASPP at 1/8
(rates 3, 6, 12, 18, 24; 48-channel depthwise-separable branches, 0.12 M) restores the wide
receptive field that the smaller decoder loses; decoder 2.18 M in all.

Full and half resolution, where the time is. XD-RCDepth's losses (SPEC 3) read no decoder
feature finer than 1/16 (X-KD's Grad-CAM maps, channel-summed) besides the final depth
(D2-KD), so nothing ties its fine decoder widths to the teacher's (LiRCDepth's pair-wise
similarity term compares cell-similarity matrices, which are width-free, so the crossed
configs still train). Hence, in the point-wise spirit of the paper's decoder:

- decoder widths (512, 128, 64, 32, 16): the teacher's at 1/16 and 1/8, halved at 1/4, 1/2
  and 1/1;
- the last up-sampling in point-wise form (1x1 conv at 1/2, nearest x2, depthwise 3x3)
  instead of LiRCDepth's dense stride-2 3x3 transposed conv;
- the uncertainty head at half the width it reads (8), as LiRCDepth's (16 of 32).

Together 0.06 M parameters, but most of the time at full resolution: XD-RCDepth runs at
about 0.45x LiRCDepth's CPU latency instead of 0.63x with LiRCDepth's fine layers (the
profile is in docs/BENCHMARKS.md), in the direction of the paper's 0.015 s vs 0.069 s.

Totals: FiLM 8.84 M (paper 8.89), add 8.42 M (8.74), attention 9.12 M (9.48), concat 10.57
M (10.94); the tests hold them to the paper within 2 % (FiLM) and 5 % (the ablations).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from .fusion import FUSION_KINDS, MultiScaleFusion
from .mobilenet import MobileNetV2Features
from .outputs import StudentOutput, check_inputs
from .student_decoder import UPSAMPLE_KINDS, StudentDecoder
from .uncertainty import UncertaintyHead

STUDENT_ARCHS = ('lircdepth', 'xdrcdepth')
_TUPLE_FIELDS = ('image_widths', 'radar_widths', 'decoder_widths', 'decoder_bottlenecks',
                 'decoder_blocks', 'daspp_rates')


@dataclass(frozen=True)
class StudentConfig:
    """Architecture of a student; saved with every checkpoint. Defaults are LiRCDepth.

    - variant: registry name; arch: ``lircdepth`` or ``xdrcdepth`` (the paper it follows).
    - fusion: ``add`` | ``concat`` | ``attention`` | ``film`` (radar into image, every scale).
    - image_widths / radar_widths: adapter widths of the 5 encoder taps (the teacher's).
    - decoder_widths: 5 decoder features 1/16 .. 1/1 (LiRCDepth: the teacher's, for its
      feature distillation; XD-RCDepth: the teacher's at 1/16 and 1/8, half of them finer).
    - decoder_bottlenecks / decoder_blocks / decoder_expansion: the 4 transposed
      inverted-residual stages (1/32 -> 1/2).
    - daspp_rates / daspp_width: point-wise dense ASPP at 1/8 (empty rates: none).
    - full_res_upsample: ``transposed`` (dense stride-2 3x3 transposed conv, LiRCDepth) or
      ``pointwise`` (1x1 conv, nearest x2, depthwise 3x3) from 1/2 to full resolution.
    - uncertainty_width: hidden width of the log-scale head.
    - max_depth: depth = max_depth * sigmoid(.), metres.
    - pretrained: load torchvision ImageNet weights into both MobileNetV2s (needs network).
    """

    variant: str = 'lircdepth'
    arch: str = 'lircdepth'
    fusion: str = 'add'
    radar_channels: int = 4
    image_widths: tuple[int, ...] = (64, 64, 128, 256, 512)
    radar_widths: tuple[int, ...] = (64, 128, 128, 512, 512)
    decoder_widths: tuple[int, ...] = (512, 128, 128, 64, 32)
    decoder_bottlenecks: tuple[int, ...] = (32, 16, 32, 32)
    decoder_blocks: tuple[int, ...] = (3, 8, 3, 2)
    decoder_expansion: int = 6
    daspp_rates: tuple[int, ...] = ()
    daspp_width: int = 32
    full_res_upsample: str = 'transposed'
    uncertainty_width: int = 16
    max_depth: float = 100.0
    pretrained: bool = False

    def __post_init__(self) -> None:
        # JSON round trips turn tuples into lists; keep the dataclass hashable and comparable.
        for name in _TUPLE_FIELDS:
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if self.arch not in STUDENT_ARCHS:
            raise ValueError(f'arch must be one of {STUDENT_ARCHS}, got {self.arch!r}')
        if self.fusion not in FUSION_KINDS:
            raise ValueError(f'fusion must be one of {FUSION_KINDS}, got {self.fusion!r}')
        for name, count in (('image_widths', 5), ('radar_widths', 5), ('decoder_widths', 5),
                            ('decoder_bottlenecks', 4), ('decoder_blocks', 4)):
            values = getattr(self, name)
            if len(values) != count or min(values) < 1:
                raise ValueError(f'{name} must be {count} positive ints, got {values}')
        if min(self.decoder_blocks) < 2:
            raise ValueError(f'decoder_blocks must be >= 2 each, got {self.decoder_blocks}')
        if self.full_res_upsample not in UPSAMPLE_KINDS:
            raise ValueError(f'full_res_upsample must be one of {UPSAMPLE_KINDS}, '
                             f'got {self.full_res_upsample!r}')
        if self.decoder_expansion < 1 or self.radar_channels < 1:
            raise ValueError('decoder_expansion and radar_channels must be positive')
        if self.max_depth <= 0:
            raise ValueError(f'max_depth must be positive, got {self.max_depth}')



class RCDepthStudent(nn.Module):
    """``model(image (B,3,H,W), radar (B,4,H,W)) -> StudentOutput``; H, W multiples of 32.

    ``image`` is ImageNet-normalised RGB, ``radar`` the raw radar image ``[z, rcs, vx, vy]``
    (0 where there is no point), both from :mod:`rcdepth_ros.preprocess`.
    """

    def __init__(self, config: StudentConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or StudentConfig()
        self.image_encoder = MobileNetV2Features(config.image_widths, 3, config.pretrained)
        self.radar_encoder = MobileNetV2Features(config.radar_widths, config.radar_channels,
                                                 config.pretrained)
        self.fusion = MultiScaleFusion(config.fusion, config.image_widths, config.radar_widths)
        self.decoder = StudentDecoder(
            config.image_widths, config.decoder_widths, config.decoder_bottlenecks,
            config.decoder_blocks, config.decoder_expansion, config.daspp_rates,
            config.daspp_width, config.max_depth, config.full_res_upsample)
        self.uncertainty = UncertaintyHead(config.decoder_widths[-1], config.uncertainty_width)

    def forward(self, image: Tensor, radar: Tensor) -> StudentOutput:
        """Predict depth, its Laplace log-scale and the distillation features."""
        check_inputs(image, radar, self.config.radar_channels)
        image_features = self.image_encoder(image)  # 5 x (B, C_i, H/2^s, W/2^s), finest first
        radar_features = self.radar_encoder(radar)  # 5 x (B, C_r, H/2^s, W/2^s)
        fused = self.fusion(image_features, radar_features)  # 5 x (B, C_i, ...)
        depth, inter_depths, decoder_features = self.decoder(fused)
        # The head reads detached features: its Laplace NLL trains the head alone, so the
        # depth network learns exactly from the papers' losses (SPEC 2.4).
        log_scale = self.uncertainty(decoder_features[-1].detach())  # (B, 1, H, W)
        return StudentOutput(
            depth=depth,
            log_scale=log_scale,
            inter_depths=inter_depths,
            decoder_features=decoder_features,
            image_features=tuple(image_features),
            radar_features=tuple(radar_features),
            xkd_features=(image_features[3], radar_features[3], decoder_features[0]),
        )

