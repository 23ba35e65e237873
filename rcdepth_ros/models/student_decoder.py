"""Light student decoder: transposed inverted-residual stages, side depth heads, final depth.

Layout (LiRCDepth), with skips ``s_1 .. s_32`` the fused encoder features:

    s_32 -> stage5 (x2) ----------------------------> d16  (widths[0], 1/16)
    [d16, s_16] -> stage4 (x2) -> context ----------> d8   (widths[1], 1/8)  -> side head 1/8
    [d8,  s_8]  -> stage3 (x2) ---------------------> d4   (widths[2], 1/4)  -> side head 1/4
    [d4,  s_4]  -> stage2 (x2) ---------------------> d2   (widths[3], 1/2)  -> side head 1/2
    [d2,  s_2]  -> up (x2) -> side head 1/1; refine([., 4 side depths]) -> d1 (widths[4])
    depth = max_depth * sigmoid(conv3x3(d1))

``context`` is the point-wise dense ASPP of XD-RCDepth, ``nn.Identity`` for LiRCDepth.
``up`` (attribute ``stage1``) is a dense stride-2 3x3 transposed conv (LiRCDepth) or its
point-wise form, 1x1 conv + nearest x2 + depthwise 3x3 (XD-RCDepth; ``full_res_upsample``).
Side heads are 1x1 conv + ReLU in units of depth / max_depth, nearest-upsampled to full size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
import torch.nn.functional as F

from .blocks import ConvReLU, PointwiseDenseASPP, PointwiseUpsample, transposed_stage

UPSAMPLE_KINDS = ('transposed', 'pointwise')


class StudentDecoder(nn.Module):
    """Decode 5 fused skips (finest first) into depth, side depths and decoder features."""

    def __init__(self, skip_widths: Sequence[int], widths: Sequence[int],
                 bottlenecks: Sequence[int], blocks: Sequence[int], expansion: int,
                 daspp_rates: Sequence[int], daspp_width: int, max_depth: float,
                 full_res_upsample: str = 'transposed') -> None:
        super().__init__()
        if len(skip_widths) != 5 or len(widths) != 5:
            raise ValueError('the decoder needs 5 skip widths and 5 decoder widths')
        if len(bottlenecks) != 4 or len(blocks) != 4:
            raise ValueError('the decoder needs 4 stage bottlenecks and 4 block counts')
        if full_res_upsample not in UPSAMPLE_KINDS:
            raise ValueError(f'full_res_upsample must be one of {UPSAMPLE_KINDS}, '
                             f'got {full_res_upsample!r}')
        s, w = skip_widths, widths
        self.max_depth = float(max_depth)
        self.stage5 = transposed_stage(s[4], bottlenecks[0], w[0], blocks[0], expansion)
        self.stage4 = transposed_stage(w[0] + s[3], bottlenecks[1], w[1], blocks[1], expansion)
        self.context = (PointwiseDenseASPP(w[1], daspp_width, daspp_rates) if daspp_rates
                        else nn.Identity())
        self.head8 = ConvReLU(w[1], 1)
        self.stage3 = transposed_stage(w[1] + s[2], bottlenecks[2], w[2], blocks[2], expansion)
        self.head4 = ConvReLU(w[2], 1)
        self.stage2 = transposed_stage(w[2] + s[1], bottlenecks[3], w[3], blocks[3], expansion)
        self.head2 = ConvReLU(w[3], 1)
        self.stage1: nn.Module
        if full_res_upsample == 'pointwise':
            self.stage1 = PointwiseUpsample(w[3] + s[0], w[4])
        else:
            self.stage1 = nn.ConvTranspose2d(w[3] + s[0], w[4], 3, stride=2, padding=1,
                                             output_padding=1, bias=False)
        self.head1 = ConvReLU(w[4], 1)
        self.refine = ConvReLU(w[4] + 4, w[4], 3)
        self.depth_head = nn.Conv2d(w[4], 1, 3, padding=1, bias=False)
        self.widths: tuple[int, ...] = tuple(int(c) for c in widths)

    def forward(self, skips: Sequence[Tensor]
                ) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor], tuple[Tensor, ...]]:
        """Return ``(depth (B,1,H,W) m, 3 side depths at 1/8, 1/4, 1/2, 5 features 1/16..1/1)``."""
        s2, s4, s8, s16, s32 = skips
        size = (2 * s2.shape[-2], 2 * s2.shape[-1])  # full input size (H, W)
        d16 = self.stage5(s32)  # (B, w0, H/16, W/16)
        d8 = self.context(self.stage4(torch.cat([d16, s16], dim=1)))  # (B, w1, H/8, W/8)
        d4 = self.stage3(torch.cat([d8, s8], dim=1))  # (B, w2, H/4, W/4)
        d2 = self.stage2(torch.cat([d4, s4], dim=1))  # (B, w3, H/2, W/2)
        up = self.stage1(torch.cat([d2, s2], dim=1))  # (B, w4, H, W)
        inter = tuple(F.interpolate(head(f), size=size, mode='nearest')  # 3 x (B, 1, H, W)
                      for head, f in ((self.head8, d8), (self.head4, d4), (self.head2, d2)))
        d1 = self.refine(torch.cat([up, *inter, self.head1(up)], dim=1))  # (B, w4, H, W)
        depth = self.max_depth * torch.sigmoid(self.depth_head(d1))  # (B, 1, H, W)
        return depth, inter, (d16, d8, d4, d2, d1)
