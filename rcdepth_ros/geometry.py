"""Pure NumPy geometry: rigid transforms, pinhole projection and point rasterisation.

Conventions (stated once, used everywhere in the package):

- Images are row-major ``(H, W)``; ``u`` is the column (x, to the right), ``v`` the row
  (y, down). Pixel ``(v, u)`` covers ``[u - 0.5, u + 0.5) x [v - 0.5, v + 0.5)``, i.e. pixel
  centres sit on integer coordinates, as the nuScenes intrinsics and the RadarNet / CaFNet /
  LiRCDepth data preparation assume.
- A projected point lands on pixel ``(rint(v), rint(u))``. The reference data preparation
  rounds with ``np.round`` (round half to even), so we use ``np.rint``, which is the same.
- Camera frames are optical: z forward, x right, y down. Depth is the camera z coordinate.
- Quaternions are ``(w, x, y, z)`` (nuScenes, pyquaternion). Rigid transforms are float64
  ``(4, 4)`` homogeneous matrices named ``T_<to>_from_<from>``; a nuScenes record with
  ``rotation``/``translation`` describes ``T_parent_from_child`` (sensor -> ego, ego -> global).
- Point arrays are ``(N, 3)`` xyz (extra columns are carried along where a function says so);
  radar points are float32 ``(N, 6)`` ``[x, y, z, rcs, vx, vy]`` in the radar frame.
- Sparse images hold ``0`` where there is no measurement; nearer points win a shared pixel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    'quat_to_matrix', 'matrix_to_quat', 'make_transform', 'invert_transform',
    'transform_points', 'record_transform', 'nuscenes_sensor_to_camera', 'project_points',
    'in_image_mask', 'pixel_indices', 'rasterize_points', 'radar_image', 'lidar_depth_image',
    'points_to_camera', 'sweeps_to_camera', 'scale_intrinsics', 'validate_intrinsics',
    'depth_to_points',
]


def _as_float_array(value, shape: tuple[int, ...], name: str) -> np.ndarray:
    """Return ``value`` as a finite float64 array of ``shape`` or raise ValueError."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f'{name} must have shape {shape}, got {arr.shape}')
    if not np.all(np.isfinite(arr)):
        raise ValueError(f'{name} contains non-finite values')
    return arr


def _as_points(points, name: str = 'points', min_cols: int = 3) -> np.ndarray:
    """Return ``points`` as a float array ``(N, C>=min_cols)`` (dtype kept if floating)."""
    arr = np.asarray(points)
    if arr.ndim != 2 or arr.shape[1] < min_cols:
        raise ValueError(f'{name} must have shape (N, >={min_cols}), got {arr.shape}')
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return arr


def quat_to_matrix(q_wxyz) -> np.ndarray:
    """Rotation matrix ``(3, 3)`` of a quaternion ``(w, x, y, z)`` (normalised first)."""
    q = _as_float_array(q_wxyz, (4,), 'quaternion')
    norm = np.linalg.norm(q)
    if norm < 1e-12:
        raise ValueError('quaternion has zero norm')
    w, x, y, z = q / norm
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])  # (3, 3)


def matrix_to_quat(rotation) -> np.ndarray:
    """Quaternion ``(w, x, y, z)`` with ``w >= 0`` of a rotation matrix ``(3, 3)``."""
    R = _as_float_array(rotation, (3, 3), 'rotation matrix')
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
        raise ValueError('rotation matrix is not orthonormal with determinant +1')
    # Shepperd's method: branch on the largest diagonal term for numerical stability.
    trace = np.trace(R)
    if trace > 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = [0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [(R[2, 1] - R[1, 2]) / s, 0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s]
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s]
    q = np.asarray(q) / np.linalg.norm(q)  # (4,)
    return -q if q[0] < 0 else q


def make_transform(rotation_wxyz, translation) -> np.ndarray:
    """Homogeneous ``(4, 4)`` transform from a quaternion ``(w, x, y, z)`` and a translation.

    ``rotation_wxyz`` may also be a ``(3, 3)`` rotation matrix.
    """
    rot = np.asarray(rotation_wxyz, dtype=np.float64)
    T = np.eye(4)
    T[:3, :3] = rot if rot.shape == (3, 3) else quat_to_matrix(rot)
    T[:3, 3] = _as_float_array(translation, (3,), 'translation')
    return T


def invert_transform(T) -> np.ndarray:
    """Inverse of a rigid transform ``(4, 4)`` (uses R^T, exact for rotations)."""
    T = _as_float_array(T, (4, 4), 'transform')
    inv = np.eye(4)
    inv[:3, :3] = T[:3, :3].T
    inv[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return inv


def transform_points(T, points) -> np.ndarray:
    """Apply a transform ``(4, 4)`` to points ``(N, 3+)``; extra columns are returned unchanged.

    The result keeps a floating input dtype (float32 radar stays float32 in its extra columns;
    coordinates are computed in float64 and cast back).
    """
    T = _as_float_array(T, (4, 4), 'transform')
    pts = _as_points(points)
    xyz = pts[:, :3].astype(np.float64) @ T[:3, :3].T + T[:3, 3]  # (N, 3)
    if pts.shape[1] == 3:
        return xyz.astype(pts.dtype, copy=False)
    out = pts.copy()
    out[:, :3] = xyz
    return out


def record_transform(record: Mapping) -> np.ndarray:
    """``T_parent_from_child`` ``(4, 4)`` of a nuScenes record (``rotation``, ``translation``)."""
    try:
        rotation, translation = record['rotation'], record['translation']
    except (KeyError, TypeError) as exc:
        raise ValueError('record needs "rotation" (w, x, y, z) and "translation" keys') from exc
    return make_transform(rotation, translation)


def nuscenes_sensor_to_camera(sensor_calib: Mapping, ego_pose_sensor: Mapping,
                              ego_pose_cam: Mapping, cam_calib: Mapping) -> np.ndarray:
    """``T_cam_from_sensor`` through the nuScenes chain.

    sensor -> ego(t_sensor) -> global -> ego(t_cam) -> camera, from the sensor's
    ``calibrated_sensor`` and ``ego_pose`` records and the camera's. This is the chain of
    ``NuScenesExplorer.map_pointcloud_to_image`` in one matrix; using the sensor's own ego pose
    compensates ego motion between the sensor time and the camera time.
    """
    T_ego_from_sensor = record_transform(sensor_calib)
    T_global_from_ego_s = record_transform(ego_pose_sensor)
    T_ego_from_global_c = invert_transform(record_transform(ego_pose_cam))
    T_cam_from_ego = invert_transform(record_transform(cam_calib))
    return T_cam_from_ego @ T_ego_from_global_c @ T_global_from_ego_s @ T_ego_from_sensor


def validate_intrinsics(K) -> np.ndarray:
    """Return ``K`` as float64 ``(3, 3)`` or raise ValueError if it is not a usable pinhole."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f'intrinsics K must have shape (3, 3), got {K.shape}')
    if not np.all(np.isfinite(K)):
        raise ValueError('intrinsics K contain non-finite values')
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f'intrinsics K need positive focal lengths, got fx={K[0, 0]}, '
                         f'fy={K[1, 1]}')
    if not np.allclose(K[2], [0.0, 0.0, 1.0]):
        raise ValueError(f'intrinsics K last row must be [0, 0, 1], got {K[2].tolist()}')
    return K


def scale_intrinsics(K, scale_x: float, scale_y: float) -> np.ndarray:
    """Intrinsics of an image resized by ``(scale_x, scale_y)`` (new size / old size).

    With pixel centres on integer coordinates a resize maps ``u' = s (u + 0.5) - 0.5``.
    """
    K = validate_intrinsics(K).copy()
    K[0, 0] *= scale_x
    K[0, 1] *= scale_x
    K[0, 2] = scale_x * (K[0, 2] + 0.5) - 0.5
    K[1, 1] *= scale_y
    K[1, 2] = scale_y * (K[1, 2] + 0.5) - 0.5
    return K


def project_points(points_cam, K) -> tuple[np.ndarray, np.ndarray]:
    """Project camera-frame points ``(N, 3+)`` with ``K``: ``uv (N, 2)`` float64, ``depth (N,)``.

    Points at or behind the camera get non-finite or meaningless ``uv``; filter them with
    :func:`in_image_mask`, which checks the depth first.
    """
    K = validate_intrinsics(K)
    xyz = _as_points(points_cam, 'points_cam')[:, :3].astype(np.float64)  # (N, 3)
    depth = xyz[:, 2]  # (N,)
    pix = xyz @ K.T  # (N, 3) homogeneous pixels
    with np.errstate(divide='ignore', invalid='ignore'):
        uv = pix[:, :2] / depth[:, None]  # (N, 2)
    return uv, depth


def in_image_mask(uv, depth, height: int, width: int, min_depth: float = 1.0,
                  border: int = 1) -> np.ndarray:
    """Boolean ``(N,)``: finite, ``depth > min_depth`` and strictly inside a ``border`` margin.

    With ``border=1`` this is the nuScenes devkit filter ``1 < u < W - 1``, ``1 < v < H - 1``
    used by RadarNet, CaFNet and LiRCDepth.
    """
    uv = np.asarray(uv, dtype=np.float64)
    depth = np.asarray(depth, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2 or depth.shape != (uv.shape[0],):
        raise ValueError(f'uv must be (N, 2) and depth (N,), got {uv.shape} and {depth.shape}')
    if height <= 0 or width <= 0:
        raise ValueError(f'image size must be positive, got {height}x{width}')
    u, v = uv[:, 0], uv[:, 1]
    with np.errstate(invalid='ignore'):
        mask = np.isfinite(u) & np.isfinite(v) & np.isfinite(depth) & (depth > min_depth)
        mask &= (u > border) & (u < width - border) & (v > border) & (v < height - border)
    return mask


def pixel_indices(uv) -> tuple[np.ndarray, np.ndarray]:
    """Integer ``(rows, cols)`` ``(N,)`` of projected points: ``rint`` (see module conventions)."""
    uv = np.asarray(uv, dtype=np.float64)
    cols = np.rint(uv[:, 0]).astype(np.int64)
    rows = np.rint(uv[:, 1]).astype(np.int64)
    return rows, cols


def rasterize_points(uv, depth, values, height: int, width: int) -> np.ndarray:
    """Scatter ``values (N, C)`` into a float32 ``(C, H, W)`` image, one pixel per point.

    Where points share a pixel the one with the smallest ``depth`` wins (ties: the earlier
    point). Points with non-finite coordinates, non-positive depth or outside the image after
    rounding are dropped; callers apply :func:`in_image_mask` for the min-depth/border rule.
    """
    uv = np.asarray(uv, dtype=np.float64)
    depth = np.asarray(depth, dtype=np.float64)
    values = np.asarray(values)
    if values.ndim == 1:
        values = values[:, None]
    n = uv.shape[0] if uv.ndim == 2 else -1
    if uv.ndim != 2 or uv.shape[1] != 2 or depth.shape != (n,) or values.shape[0] != n:
        raise ValueError(f'uv (N, 2), depth (N,) and values (N, C) disagree: {uv.shape}, '
                         f'{depth.shape}, {values.shape}')
    if height <= 0 or width <= 0:
        raise ValueError(f'image size must be positive, got {height}x{width}')
    out = np.zeros((values.shape[1], height, width), dtype=np.float32)  # (C, H, W)
    with np.errstate(invalid='ignore'):
        ok = np.isfinite(uv).all(axis=1) & np.isfinite(depth) & (depth > 0)
    rows, cols = pixel_indices(uv[ok])
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    rows, cols = rows[inside], cols[inside]
    depth_k = depth[ok][inside]
    values_k = values[ok][inside]
    if rows.size == 0:
        return out
    flat = rows * width + cols  # (M,)
    # Sort by pixel, then by depth: the first entry of each pixel run is the nearest point.
    order = np.lexsort((depth_k, flat))
    flat_sorted = flat[order]
    first = np.ones(order.shape, dtype=bool)
    first[1:] = flat_sorted[1:] != flat_sorted[:-1]
    keep = order[first]
    out.reshape(out.shape[0], -1)[:, flat[keep]] = values_k[keep].T
    return out


def radar_image(points, T_cam_from_radar, K, height: int, width: int, min_depth: float = 1.0,
                border: int = 1) -> np.ndarray:
    """Radar image float32 ``(4, H, W)``: ``[z-depth (m), RCS (dBsm), vx, vy (m/s)]``.

    ``points`` are ``(N, 6)`` ``[x, y, z, rcs, vx, vy]`` in the radar frame (raw, not
    ego-motion compensated velocities, which stay in the radar frame as in the reference data
    preparation). Rows with any non-finite value are dropped. For points already in the camera
    frame (e.g. from :func:`sweeps_to_camera`) pass ``np.eye(4)``.
    """
    pts = _as_points(points, 'radar points', 6)
    if pts.shape[1] != 6:
        raise ValueError(f'radar points must have shape (N, 6), got {pts.shape}')
    pts = pts[np.isfinite(pts).all(axis=1)]
    cam = transform_points(T_cam_from_radar, pts[:, :3].astype(np.float64))  # (N, 3)
    uv, depth = project_points(cam, K)
    mask = in_image_mask(uv, depth, height, width, min_depth, border)
    values = np.concatenate([depth[:, None], pts[:, 3:6]], axis=1)[mask]  # (M, 4)
    return rasterize_points(uv[mask], depth[mask], values, height, width)


def lidar_depth_image(points, T_cam_from_lidar, K, height: int, width: int,
                      min_depth: float = 1.0, border: int = 1) -> np.ndarray:
    """Sparse float32 depth ``(H, W)`` in metres from LiDAR points ``(N, 3+)``, nearest wins.

    ``0`` where no point lands. ``border=1`` matches the devkit's ``map_pointcloud_to_image``.
    """
    pts = _as_points(points, 'lidar points')
    cam = transform_points(T_cam_from_lidar, pts[:, :3].astype(np.float64))  # (N, 3)
    uv, depth = project_points(cam, K)
    mask = in_image_mask(uv, depth, height, width, min_depth, border)
    # The value is the depth itself, so the nearest point's value is the per-pixel minimum:
    # ``rasterize_points``' result without its sort (which tie wins cannot matter).
    rows, cols = pixel_indices(uv[mask])
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    nearest = np.full(height * width, np.inf)
    np.minimum.at(nearest, rows[inside] * width + cols[inside], depth[mask][inside])
    nearest[np.isinf(nearest)] = 0.0
    return nearest.reshape(height, width).astype(np.float32)


def points_to_camera(points, T_cam_from_sensor) -> np.ndarray:
    """Move sensor points into the camera: float32 ``(N, C)``, xyz moved by ``T``.

    ``points`` ``(N, C >= 3)``; only xyz is transformed (in float64), extra columns (RCS,
    raw radar-frame velocities) are carried as is. Ego motion is compensated when ``T``
    includes it (:func:`nuscenes_sensor_to_camera` with the sweep's and the camera's ego
    poses, or the frame assembler's chain). Data preparation, the frame assembler (node, bag
    tools) and the demo all call this.
    """
    pts = _as_points(points)
    out = np.array(pts, dtype=np.float32)  # (N, C), a copy
    out[:, :3] = transform_points(T_cam_from_sensor, pts[:, :3].astype(np.float64))
    return out


def sweeps_to_camera(sweeps: Sequence[tuple[np.ndarray, np.ndarray]],
                     columns: int = 6) -> np.ndarray:
    """Stack ``(points (N_i, C), T_cam_from_sensor_i)`` sweeps into one float32 ``(M, C)``.

    Each sweep goes through :func:`points_to_camera` with its own transform; no sweep gives
    ``(0, columns)``. All sweeps must have the same number of columns.
    """
    clouds = [points_to_camera(points, T) for points, T in sweeps]
    if not clouds:
        return np.zeros((0, columns), dtype=np.float32)
    ncols = {c.shape[1] for c in clouds}
    if len(ncols) != 1:
        raise ValueError(f'sweeps have different column counts: {sorted(ncols)}')
    return np.concatenate(clouds, axis=0)


def depth_to_points(depth, K, stride: int = 1) -> np.ndarray:
    """Back-project the finite pixels of a depth image to float32 (N, 3) camera-frame points.

    ``depth`` (H, W) metres, NaN where invalid; ``K`` (3, 3). Every ``stride``-th row and
    column is used; pixel (u, v) = (column, row) of the full image.
    """
    if stride < 1:
        raise ValueError(f'stride must be >= 1, got {stride}')
    K = validate_intrinsics(K)
    sub = np.asarray(depth)[::stride, ::stride]  # (h, w)
    v, u = np.nonzero(np.isfinite(sub))
    z = sub[v, u].astype(np.float64)  # (N,)
    u = u * stride + 0.0
    v = v * stride + 0.0
    x = (u - K[0, 2]) * z / K[0, 0]
    y = (v - K[1, 2]) * z / K[1, 1]
    return np.stack([x, y, z], axis=1).astype(np.float32)  # (N, 3)
