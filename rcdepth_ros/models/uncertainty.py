"""Per-pixel Laplace-scale head of the students (SPEC 2.4: ours, not from the papers).

The head reads the full-resolution decoder features and predicts ``log b`` (b in metres), the
scale of a Laplace distribution of the depth error; sigma = sqrt(2) * b. The students feed it
those features detached, so its Laplace NLL (on a detached depth prediction too, in
``training.losses``) trains the head alone and leaves the depth network's training as in the
papers; with shared, non-detached features the NLL gradient reshaped them (on the synthetic
benchmark it cost the narrow XD-RCDepth decoder about 1 m of MAE, docs/BENCHMARKS.md).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from .blocks import ConvReLU


class UncertaintyHead(nn.Module):
    """conv3x3 + ReLU, conv3x3 -> ``log_scale (B, 1, H, W)``."""

    def __init__(self, in_channels: int, hidden: int = 16, initial_scale: float = 1.0) -> None:
        super().__init__()
        self.hidden = ConvReLU(in_channels, hidden, 3)
        self.log_scale = nn.Conv2d(hidden, 1, 3, padding=1)
        # Start near b = initial_scale metres so early NLL gradients are moderate.
        nn.init.constant_(self.log_scale.bias, math.log(initial_scale))

    def forward(self, features: Tensor) -> Tensor:
        return self.log_scale(self.hidden(features))  # (B, 1, H, W)
