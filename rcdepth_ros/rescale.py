"""Input scale: frames resized to the focal length a network was trained at (pure NumPy).

The training data (``PreparedDataset(scale=...)``) and serving (``pipeline.FramePipeline``) both
go through these functions, so a network sees the same pixels either way. Pixel centres sit on
integer coordinates: a resize by ``s`` maps ``u' + 0.5 = s (u + 0.5)``
(:func:`rcdepth_ros.geometry.scale_intrinsics`).
"""

from __future__ import annotations

import numpy as np


def serving_scale(focal_length_px: float | None, fx: float) -> float:
    """Resize factor for a frame with focal length ``fx``: the network's focal length / ``fx``.

    The networks learn metric depth from apparent sizes, which depend on the focal length, so
    a frame is resized to the focal length the network was trained at
    (``InputSpec.focal_length_px``). Frames whose focal length is already at or below it are
    served as they are (1.0: never enlarged); so is every frame for weights without one.
    """
    if focal_length_px is None or not np.isfinite(fx) or fx <= 0:
        return 1.0
    return float(min(1.0, focal_length_px / fx))


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """Size ``(h, w)`` of an ``height x width`` image resized by ``scale`` (at least 1 x 1)."""
    if not 0 < scale <= 1:
        raise ValueError(f'input scale must be in (0, 1], got {scale}')
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def _scaled_pixels(rows: np.ndarray, cols: np.ndarray, scale: float, size: tuple[int, int],
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Return the target pixel of each source pixel: the one containing its centre.

    ``u' + 0.5 = s (u + 0.5)``, the convention of :func:`rcdepth_ros.geometry.scale_intrinsics`.
    """
    r = np.minimum(np.floor((rows + 0.5) * scale).astype(np.int64), size[0] - 1)
    c = np.minimum(np.floor((cols + 0.5) * scale).astype(np.int64), size[1] - 1)
    return r, c


def downscale_image(image: np.ndarray, scale: float) -> np.ndarray:
    """RGB ``uint8 (H, W, 3)`` resized by ``scale`` with area averaging (``scale`` 1: as is)."""
    if scale == 1:
        return image
    import cv2

    h, w = scaled_size(image.shape[0], image.shape[1], scale)
    return cv2.resize(np.ascontiguousarray(image), (w, h), interpolation=cv2.INTER_AREA)


def downscale_sparse(layers: np.ndarray, scale: float) -> np.ndarray:
    """Sparse ``(C, H, W)`` maps keyed by channel 0 (a depth, 0 = empty), resized by ``scale``.

    Each occupied source pixel moves to the target pixel containing its centre; where several
    land on one, the nearest (smallest channel-0 value) wins with all its channels, the rule
    of radar and LiDAR rasterisation. Used for the radar image and the sparse LiDAR depth.
    """
    if scale == 1:
        return layers
    channels, height, width = layers.shape
    size = scaled_size(height, width, scale)
    out = np.zeros((channels, *size), layers.dtype)
    occupied = layers[0] > 0  # (H, W)
    # Only the rows holding a point are searched (a radar image has a few hundred points):
    # the same pixels in the same row-major order as np.nonzero(occupied), 10x faster.
    row_any = np.flatnonzero(occupied.any(axis=1))
    row_in, cols = np.nonzero(occupied[row_any])
    rows = row_any[row_in]
    if rows.size == 0:
        return out
    r, c = _scaled_pixels(rows, cols, scale, size)
    depth = layers[0, rows, cols]
    order = np.argsort(-depth, kind='stable')  # farthest first: the nearest is written last
    out[:, r[order], c[order]] = layers[:, rows[order], cols[order]]
    return out


def downscale_mask(mask: np.ndarray, scale: float) -> np.ndarray:
    """Binary ``(H, W)`` map resized by ``scale``: a target pixel is set if any source is."""
    if scale == 1:
        return mask
    size = scaled_size(*mask.shape, scale)
    out = np.zeros(size, mask.dtype)
    rows, cols = np.nonzero(mask)
    r, c = _scaled_pixels(rows, cols, scale, size)
    out[r, c] = mask[rows, cols]
    return out
