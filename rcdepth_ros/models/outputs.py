"""Named outputs, what they mean, and the input contract of the networks.

Shapes use B = batch, H x W = input size. Feature tuples are ordered finest to coarsest
unless a field says otherwise. :func:`depth_and_sigma` is the one definition of the published
pair (depth and its sigma) that inference, evaluation and the ONNX graph all use.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor


class TeacherOutput(NamedTuple):
    """CaFNet forward result.

    - depth: (B, 1, H, W) final depth in metres, ``max_depth * sigmoid``.
    - confidence: (B, 1, H, W) stage-1 radar confidence in [0, 1].
    - coarse_depth: (B, 1, H, W) stage-1 depth in metres.
    - inter_depths: 3 x (B, 1, H, W) local-planar-guidance depths at 1/8, 1/4, 1/2,
      upsampled to H x W, in units of depth / max_depth.
    - decoder_features: 5 tensors, widths (512, 128, 128, 64, 32) at scales
      1/16, 1/8, 1/4, 1/2, 1/1 (coarsest first; as the reference, the 1/16 one is taken
      before its radar residual is added).
    - image_features: 5 tensors, widths (64, 64, 128, 256, 512) at 1/2 .. 1/32.
    - radar_features: 5 gated radar features r_s, widths as the image stream they are
      added to, (64, 128, 128, 512, 512) at 1/2 .. 1/32.
    - xkd_features: (image encoder layer3 (256), stage-2 radar encoder layer3 (256),
      decoder feature (512)) at 1/16 for X-KD.
    """

    depth: Tensor
    confidence: Tensor
    coarse_depth: Tensor
    inter_depths: tuple[Tensor, Tensor, Tensor]
    decoder_features: tuple[Tensor, ...]
    image_features: tuple[Tensor, ...]
    radar_features: tuple[Tensor, ...]
    xkd_features: tuple[Tensor, Tensor, Tensor]


class StudentOutput(NamedTuple):
    """LiRCDepth / XD-RCDepth forward result.

    - depth: (B, 1, H, W) metres, ``max_depth * sigmoid``.
    - log_scale: (B, 1, H, W) log of the Laplace scale b in metres (uncertainty head);
      the published sigma is ``sqrt(2) * exp(log_scale)``.
    - inter_depths: 3 x (B, 1, H, W) side-head depths at 1/8, 1/4, 1/2 upsampled to H x W,
      in units of depth / max_depth.
    - decoder_features: 5 tensors, widths ``config.decoder_widths``, 1/16 .. 1/1 (coarsest
      first): LiRCDepth's are the teacher's (512, 128, 128, 64, 32), XD-RCDepth's
      (512, 128, 64, 32, 16).
    - image_features: 5 image-encoder features after the distillation adapters, teacher
      widths (64, 64, 128, 256, 512), 1/2 .. 1/32.
    - radar_features: 5 radar-encoder features after the distillation adapters, widths
      (64, 128, 128, 512, 512), 1/2 .. 1/32.
    - xkd_features: (image encoder, radar encoder, decoder) features at 1/16 for X-KD.
    """

    depth: Tensor
    log_scale: Tensor
    inter_depths: tuple[Tensor, Tensor, Tensor]
    decoder_features: tuple[Tensor, ...]
    image_features: tuple[Tensor, ...]
    radar_features: tuple[Tensor, ...]
    xkd_features: tuple[Tensor, Tensor, Tensor]


def check_inputs(image: Tensor, radar: Tensor, radar_channels: int) -> None:
    """Raise ValueError unless ``image`` (B, 3, H, W) and ``radar`` (B, C, H, W) fit a network.

    Every network here halves its input five times, so H and W must be multiples of 32
    (``inference.pad_to_multiple`` pads any image to that).
    """
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f'image must be (B, 3, H, W), got {tuple(image.shape)}')
    if radar.dim() != 4 or radar.shape[1] != radar_channels:
        raise ValueError(f'radar must be (B, {radar_channels}, H, W), got {tuple(radar.shape)}')
    if image.shape[0] != radar.shape[0] or image.shape[2:] != radar.shape[2:]:
        raise ValueError(f'image {tuple(image.shape)} and radar {tuple(radar.shape)} '
                         'differ in batch or size')
    if image.shape[2] % 32 or image.shape[3] % 32:
        raise ValueError('height and width must be multiples of 32, got '
                         f'{image.shape[2]}x{image.shape[3]}')


def depth_and_sigma(output: Any) -> tuple[Tensor, Tensor]:
    """Return ``(depth, sigma)``, both float32 ``(B, 1, H, W)`` metres, from a model output.

    ``sigma = sqrt(2) * exp(log_scale)`` is the standard deviation of the predicted Laplace
    distribution. Outputs without ``log_scale`` (the CaFNet teacher) give ``sigma`` = NaN,
    the REP 117 'no measurement' value, rather than a made-up number.
    """
    depth = output.depth.float()  # (B, 1, H, W)
    log_scale = getattr(output, 'log_scale', None)
    if log_scale is None:
        return depth, torch.full_like(depth, float('nan'))
    # exp in float32: under fp16 a large log_scale would overflow to inf.
    sigma = math.sqrt(2.0) * torch.exp(log_scale.float())  # (B, 1, H, W)
    return depth, sigma
