"""Network input tensors from core arrays: the one pre-processing step everyone calls.

The dataset, the bag tools and the node all go through :func:`image_to_tensor` and
:func:`radar_to_tensor`, so a network sees the same numbers whichever path fed it.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Radar image channels (``geometry.radar_image``), in order.
RADAR_CHANNELS = ('z_depth_m', 'rcs_dbsm', 'vx_mps', 'vy_mps')


def _as_tensor(array: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        return array
    if isinstance(array, np.ndarray):
        array = np.ascontiguousarray(array)
        if array.flags.writeable:
            return torch.from_numpy(array)
        # A read-only view (e.g. of a ROS message buffer): no copy; torch's one-time warning
        # about writing through the tensor does not apply, pre-processing never writes to it.
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='The given NumPy array is not writable')
            return torch.from_numpy(array)
    raise TypeError(f'expected a numpy array or torch tensor, got {type(array).__name__}')


def image_to_tensor(images: np.ndarray | torch.Tensor,
                    device: str | torch.device | None = None,
                    memory_format: torch.memory_format = torch.contiguous_format
                    ) -> torch.Tensor:
    """RGB ``uint8 (H, W, 3)`` or ``(B, H, W, 3)`` -> ImageNet-normalised float32 (B, 3, H, W).

    ``memory_format=torch.channels_last`` keeps the pixel-interleaved layout of the input,
    one copy less for a channels_last network.
    """
    x = _as_tensor(images)
    if x.dtype != torch.uint8:
        raise ValueError(f'images must be uint8 RGB, got dtype {x.dtype}')
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[-1] != 3:
        raise ValueError(f'images must be (H, W, 3) or (B, H, W, 3), got {tuple(x.shape)}')
    x = x.to(device) if device is not None else x
    x = x.permute(0, 3, 1, 2)  # (B, 3, H, W) uint8, a view with channels_last strides
    # (x / 255 - mean) / std as one fused pass straight from uint8 (no float temporaries):
    # half the time of the step-by-step form on a 896x1600 frame, equal to ~1 ulp.
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64)
    scale = (1.0 / (255.0 * std)).to(device=x.device, dtype=torch.float32).view(1, 3, 1, 1)
    bias = (-mean / std).to(device=x.device, dtype=torch.float32).view(1, 3, 1, 1)
    x = torch.addcmul(bias, x, scale)  # (B, 3, H, W) float32
    return x.contiguous(memory_format=memory_format)


def radar_to_tensor(radar: np.ndarray | torch.Tensor,
                    device: str | torch.device | None = None) -> torch.Tensor:
    """Radar image ``(4, H, W)`` or ``(B, 4, H, W)`` -> float32 (B, 4, H, W), values unchanged.

    Channels ``[z-depth m, RCS dBsm, vx m/s, vy m/s]``, 0 where there is no point; the
    networks take raw values. Non-finite values are rejected (they would poison a frame).
    """
    x = _as_tensor(radar)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] != len(RADAR_CHANNELS):
        raise ValueError(f'radar must be (4, H, W) or (B, 4, H, W), got {tuple(x.shape)}')
    x = x.to(device=device, dtype=torch.float32) if device is not None else x.float()
    # min and max propagate NaN and expose +-inf: one pass without a (B, 4, H, W) bool
    # temporary (20x faster than isfinite().all() on a 896x1600 radar image).
    if x.numel() and not bool(torch.isfinite(torch.stack(torch.aminmax(x))).all()):
        raise ValueError('radar image contains NaN or inf')
    return x.contiguous()

