"""Frame-level message codec: sensor messages to frame arrays and back, for node and bag tools.

Built on :mod:`.msgs` (which converts one message type at a time and raises ``ValueError``):
here a malformed input becomes :class:`BadInput`, a ``ValueError`` with a ``kind`` that the
node counts in its diagnostics. Duck-typed like :mod:`.msgs`: rclpy and rosbags messages
alike, no rclpy import.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import geometry, msgs

# Header of a huge cloud is rejected before decoding it (nuScenes radar: ~125 points).
DEFAULT_MAX_RADAR_POINTS = 20000
# Larger images are rejected before decoding (16 MPix; the networks run at about 1.4 MPix).
MAX_IMAGE_PIXELS = 4096 * 4096


class BadInput(ValueError):
    """Malformed input; ``kind`` names it for the diagnostics counters."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f'{kind}: {reason}')
        self.kind = kind
        self.reason = reason


# ----------------------------------------------------------------------------- decoding

def decode_image(msg: Any, compressed: bool) -> np.ndarray:
    """RGB uint8 (H, W, 3) from an Image or CompressedImage message; BadInput if malformed."""
    if not compressed and int(msg.height) * int(msg.width) > MAX_IMAGE_PIXELS:
        raise BadInput('image_size', f'image of {msg.width}x{msg.height} is too large')
    try:
        rgb = msgs.compressed_to_rgb(msg) if compressed else msgs.image_to_rgb(msg)
    except ValueError as exc:
        kind = 'image_encoding' if 'encoding' in str(exc).lower() else 'image_decode'
        raise BadInput(kind, str(exc)) from None
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 8 or rgb.shape[1] < 8:
        raise BadInput('image_size', f'image of shape {rgb.shape} is too small or not RGB')
    return rgb


def decode_camera_info(msg: Any) -> tuple[np.ndarray, int, int]:
    """``(K, height, width)`` from a CameraInfo message; BadInput on zero/NaN intrinsics."""
    try:
        K, height, width = msgs.camera_info_to_intrinsics(msg)
        K = geometry.validate_intrinsics(K)
    except ValueError as exc:
        raise BadInput('camera_info', str(exc)) from None
    if height <= 0 or width <= 0:
        raise BadInput('camera_info', f'camera_info size {width}x{height} is not positive')
    return K, int(height), int(width)


def _keep_states(cloud: np.ndarray, field: str, allowed: Sequence[int]) -> np.ndarray:
    if not allowed or field not in (cloud.dtype.names or ()):
        return cloud
    return cloud[np.isin(cloud[field], np.asarray(allowed))]


def decode_radar(msg: Any, max_points: int = DEFAULT_MAX_RADAR_POINTS,
                 invalid_states: Sequence[int] = (), dyn_props: Sequence[int] = (),
                 ambig_states: Sequence[int] = ()) -> np.ndarray:
    """Radar points float32 (N, 6) ``[x, y, z, rcs, vx, vy]`` from a PointCloud2.

    The nuScenes state filters keep only the listed values (empty = no filter, the default,
    as in the CaFNet / LiRCDepth data preparation). Non-finite rows are dropped; a cloud with
    no finite point, or more than ``max_points`` points, is BadInput.
    """
    n_declared = int(getattr(msg, 'width', 0)) * int(getattr(msg, 'height', 0))
    if n_declared > max_points:
        raise BadInput('radar_huge', f'cloud of {n_declared} points exceeds {max_points}')
    try:
        cloud = msgs.pointcloud2_to_array(msg)
        cloud = _keep_states(cloud, 'invalid_state', invalid_states)
        cloud = _keep_states(cloud, 'dyn_prop', dyn_props)
        cloud = _keep_states(cloud, 'ambig_state', ambig_states)
        points = np.asarray(msgs.radar_points_from_array(cloud), dtype=np.float32)
    except ValueError as exc:
        raise BadInput('radar_decode', str(exc)) from None
    if cloud.size == 0:
        raise BadInput('radar_empty', 'cloud has no points (after the state filters)')
    if points.shape[0] == 0:
        # radar_points_from_array drops rows with any non-finite value.
        raise BadInput('radar_nonfinite', f'none of the {cloud.size} points is finite')
    return points


# ----------------------------------------------------------------------------- encoding

def depth_image_fields(depth: np.ndarray) -> dict[str, Any]:
    """sensor_msgs/Image fields of a float32 (H, W) image, encoding 32FC1."""
    return msgs.array_to_image_fields(np.ascontiguousarray(depth, dtype=np.float32), '32FC1')


COLOR_NEAR_M = 1.0
"""The warm end of the depth colour map (metres); the cold end is the model's max depth."""


def depth_color_position(depth: np.ndarray, max_depth: float) -> np.ndarray:
    """Position in the depth colour map, 1 = near (warm) to 0 = far, for depths in metres.

    A fixed logarithmic scale from :data:`COLOR_NEAR_M` to ``max_depth``: a depth has the
    same colour in every frame (no per-image normaliser that the nearest pixel, or a wrong
    prediction in the sky, can set), and each doubling of the distance gets the same share
    of the colours, so cars at 5 m, facades at 20 m and the street at 60 m stay apart.
    """
    clipped = np.clip(np.asarray(depth, dtype=np.float64), COLOR_NEAR_M, max_depth)
    return 1.0 - np.log(clipped / COLOR_NEAR_M) / np.log(max_depth / COLOR_NEAR_M)


def colorize_depth(depth: np.ndarray, max_depth: float) -> np.ndarray:
    """BGR uint8 (H, W, 3) turbo colour map of :func:`depth_color_position`; NaN is black."""
    import cv2

    valid = np.isfinite(depth)  # (H, W)
    position = depth_color_position(np.where(valid, depth, max_depth), max_depth)
    bgr = cv2.applyColorMap(np.rint(position * 255.0).astype(np.uint8), cv2.COLORMAP_TURBO)
    bgr[~valid] = 0
    return bgr


def points_cloud_fields(points: np.ndarray) -> dict[str, Any]:
    """PointCloud2 fields of float32 (N, 3) points (x, y, z)."""
    structured = np.zeros(points.shape[0], dtype=[('x', '<f4'), ('y', '<f4'), ('z', '<f4')])
    for i, name in enumerate('xyz'):
        structured[name] = points[:, i]
    return msgs.array_to_pointcloud2_fields(structured)
