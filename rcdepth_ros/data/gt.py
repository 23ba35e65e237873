"""Ground-truth helpers for prepared data: interpolation, box masks and the confidence target.

Pure NumPy/SciPy (no devkit): the nuScenes walk lives in :mod:`.nuscenes_prep`. Images are
row-major ``(H, W)``, ``u`` = column, ``v`` = row; pixels of points come from
:func:`rcdepth_ros.geometry.pixel_indices` (the one rounding rule of the package).
"""

from __future__ import annotations

import numpy as np

# Categories whose annotated boxes define the confidence region of a radar point (SPEC 4.1:
# car, motorcycle, bicycle, bus, truck, trailer, adult pedestrian); prefixes of nuScenes names.
CONFIDENCE_BOX_CATEGORIES = (
    'vehicle.car', 'vehicle.motorcycle', 'vehicle.bicycle', 'vehicle.bus', 'vehicle.truck',
    'vehicle.trailer', 'human.pedestrian.adult',
)
# Things that move (removed from non-keyframe LiDAR sweeps); static movable_object.* (barriers,
# cones) stay because they are good static ground truth.
MOVABLE_CATEGORIES = ('vehicle.', 'human.', 'animal')

CONFIDENCE_WINDOW = (50, 150)  # half size (rows, cols) of the region of a radar point off boxes
CONFIDENCE_TOLERANCE = 0.4  # metres: |D_d - radar depth| below this marks a pixel confident


def category_matches(name: str, prefixes: tuple[str, ...]) -> bool:
    """Return whether a nuScenes category name starts with one of ``prefixes``."""
    return any(name.startswith(p) for p in prefixes)


def interpolate_depth(sparse: np.ndarray) -> np.ndarray:
    """Linearly interpolate a sparse depth image over the Delaunay triangulation of its pixels.

    ``sparse`` is ``float32 (H, W)``, 0 = no measurement. Returns ``float32 (H, W)``; pixels
    outside the convex hull of the valid pixels are 0. Measured pixels keep their value.
    """
    from scipy.interpolate import LinearNDInterpolator
    from scipy.spatial import QhullError

    if sparse.ndim != 2:
        raise ValueError(f'sparse depth must be (H, W), got shape {sparse.shape}')
    height, width = sparse.shape
    rows, cols = np.nonzero(sparse > 0)
    dense = np.zeros((height, width), np.float32)
    if rows.size < 3:
        return dense
    values = sparse[rows, cols].astype(np.float64)  # (N,)
    points = np.stack([rows, cols], 1).astype(np.float64)  # (N, 2)
    # A fixed sub-pixel jitter breaks the grid's cocircular ties that make Qhull slow (~2x).
    points += np.random.default_rng(0).uniform(-1e-3, 1e-3, points.shape)
    try:
        interp = LinearNDInterpolator(points, values, fill_value=0.0)
    except QhullError:  # all points collinear: no triangle to interpolate over
        dense[rows, cols] = values
        return dense
    # Only the bounding box of the points can be inside the hull; evaluate there.
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    grid_r, grid_c = np.mgrid[r0:r1, c0:c1]  # (h, w) each
    dense[r0:r1, c0:c1] = interp(grid_r, grid_c).astype(np.float32)
    dense[rows, cols] = values  # exact at the measurements
    return np.nan_to_num(dense, nan=0.0)


def box_region_2d(corners_cam: np.ndarray, K: np.ndarray, height: int,
                  width: int) -> tuple[int, int, int, int] | None:
    """Return the image rectangle ``(r0, r1, c0, c1)`` (half-open) of a 3D box, or None.

    ``corners_cam`` is ``(8, 3)`` box corners in the camera frame. Corners behind the camera
    (z <= 0.1 m) are ignored; None when no corner is in front or the box misses the image.
    """
    front = corners_cam[corners_cam[:, 2] > 0.1]  # (n, 3)
    if front.shape[0] == 0:
        return None
    proj = (K @ front.T).T  # (n, 3)
    u = proj[:, 0] / proj[:, 2]
    v = proj[:, 1] / proj[:, 2]
    c0 = int(np.clip(np.floor(u.min()), 0, width))
    c1 = int(np.clip(np.floor(u.max()) + 1, 0, width))
    r0 = int(np.clip(np.floor(v.min()), 0, height))
    r1 = int(np.clip(np.floor(v.max()) + 1, 0, height))
    if r1 <= r0 or c1 <= c0:
        return None
    return r0, r1, c0, c1


def confidence_target(dense: np.ndarray, radar_rc: np.ndarray, radar_depth: np.ndarray,
                      regions: list[tuple[int, int, int, int] | None],
                      window: tuple[int, int] = CONFIDENCE_WINDOW,
                      tolerance: float = CONFIDENCE_TOLERANCE) -> np.ndarray:
    """Build the teacher's radar-confidence target (CaFNet).

    For radar point i at pixel ``radar_rc[i] = (row, col)`` with depth ``radar_depth[i]``, the
    region is ``regions[i]`` (the 2D box of its containing 3D box) or, when None, the window of
    +-``window`` (rows, cols) around it clipped to the image; a pixel of the region is 1 where
    ``|dense - radar_depth[i]| < tolerance`` and ``dense`` is valid. Regions are OR-ed (the
    reference overwrites earlier regions with later ones; OR does not depend on point order).
    Returns ``uint8 (H, W)`` in {0, 1}.
    """
    height, width = dense.shape
    radar_rc = np.asarray(radar_rc, np.int64).reshape(-1, 2)
    if radar_rc.shape[0] != len(radar_depth) or len(regions) != len(radar_depth):
        raise ValueError('radar_rc, radar_depth and regions must have the same length')
    target = np.zeros((height, width), bool)
    valid = dense > 0
    for (row, col), depth, region in zip(radar_rc, radar_depth, regions):
        if region is None:
            r0, r1 = max(row - window[0], 0), min(row + window[0], height)
            c0, c1 = max(col - window[1], 0), min(col + window[1], width)
        else:
            r0, r1, c0, c1 = region
        patch = dense[r0:r1, c0:c1]
        target[r0:r1, c0:c1] |= (np.abs(patch - depth) < tolerance) & valid[r0:r1, c0:c1]
    return target.astype(np.uint8)


def points_in_boxes(points: np.ndarray, boxes: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                    scale: float = 1.0) -> np.ndarray:
    """Return which points lie inside any oriented box.

    ``points`` ``(N, 3)``; each box is ``(center (3,), R (3, 3) box-to-frame rotation,
    size (3,) as width, length, height)`` in the same frame (nuScenes wlh: width along the box
    y axis, length along x). ``scale`` inflates the box. Returns ``bool (N,)``.
    """
    points = np.asarray(points, np.float64).reshape(-1, 3)
    inside = np.zeros(points.shape[0], bool)
    for center, rotation, wlh in boxes:
        half = 0.5 * scale * np.array([wlh[1], wlh[0], wlh[2]])  # (3,) along box x, y, z
        # Cheap slab test on x first: most points are far from any given box.
        radius = float(np.sqrt(np.sum(half ** 2)))
        near = np.flatnonzero(np.abs(points[:, 0] - center[0]) <= radius)  # (n,)
        near = near[np.all(np.abs(points[near, 1:] - center[1:]) <= radius, axis=1)]
        if near.size == 0:
            continue
        local = (points[near] - center) @ rotation  # (n, 3) in the box frame
        inside[near[np.all(np.abs(local) <= half, axis=1)]] = True
    return inside
