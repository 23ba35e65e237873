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


INTERPOLATIONS = ('triangle', 'qhull')


def _jittered_pixels(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Pixel centres ``(N, 2)`` (row, col) with a fixed sub-pixel jitter.

    The jitter breaks the grid's cocircular ties (which make Qhull about 2x slower) the same
    way for every triangulator, so both give the same, unique Delaunay triangulation.
    """
    points = np.stack([rows, cols], 1).astype(np.float64)  # (N, 2)
    return points + np.random.default_rng(0).uniform(-1e-3, 1e-3, points.shape)


def _delaunay_triangles(points: np.ndarray, method: str) -> np.ndarray | None:
    """Delaunay triangles ``(T, 3)`` (vertex indices) of ``points (N, 2)``, None if degenerate."""
    if method == 'qhull':
        from scipy.spatial import Delaunay, QhullError

        try:
            return Delaunay(points).simplices
        except QhullError:  # all points collinear: no triangle to interpolate over
            return None
    import triangle

    if np.linalg.matrix_rank(points - points.mean(0), tol=1e-6) < 2:
        return None
    result = triangle.triangulate({'vertices': points}, 'Q')  # Q: quiet
    return result.get('triangles')


def _rasterize_triangles(points: np.ndarray, values: np.ndarray, triangles: np.ndarray,
                         out: np.ndarray, fill: np.ndarray) -> None:
    """Write the linear interpolant of each triangle into the pixels of ``fill`` it covers.

    ``points (N, 2)`` (row, col), ``values (N,)``, ``triangles (T, 3)``; ``out`` and ``fill``
    are ``(H, W)``. Every pixel centre inside (or on the edge of) a triangle gets the
    barycentric blend of its corners; on a shared edge both triangles give the same value.
    """
    a, b, c = (points[triangles[:, k]] for k in range(3))  # (T, 2) each
    lo = np.ceil(np.minimum(np.minimum(a, b), c) - 1e-9).astype(np.int64)  # (T, 2)
    hi = np.floor(np.maximum(np.maximum(a, b), c) + 1e-9).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, np.array(out.shape) - 1)
    # Skip triangles that cannot hold a pixel to fill: those within a 2 x 2 pixel block (three
    # corners of a unit square: the only pixel centres inside are their own vertices; most
    # triangles where the LiDAR is dense), and those whose bounding box holds no pixel to
    # fill (counted with a summed-area table).
    table = np.pad(np.cumsum(np.cumsum(fill, 0, dtype=np.int64), 1), ((1, 0), (1, 0)))
    r0, c0 = lo[:, 0], lo[:, 1]
    r1, c1 = np.maximum(hi[:, 0] + 1, r0), np.maximum(hi[:, 1] + 1, c0)
    todo = (table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]) > 0  # (T,)
    pixels = np.rint(np.stack([a, b, c]))  # (3, T, 2) the vertices' own pixels
    todo &= np.any(pixels.max(axis=0) - pixels.min(axis=0) > 1, axis=1)
    triangles, a, b, c, lo, hi = (x[todo] for x in (triangles, a, b, c, lo, hi))
    span = np.maximum(hi - lo + 1, 0)  # (T, 2) rows, cols of each bounding box
    count = span[:, 0] * span[:, 1]  # (T,)
    tri = np.repeat(np.arange(len(triangles)), count)  # (P,) candidate pixel -> triangle
    local = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)  # (P,)
    rows = lo[tri, 0] + local // span[tri, 1]
    cols = lo[tri, 1] + local % span[tri, 1]
    wanted = fill[rows, cols]
    tri, rows, cols = tri[wanted], rows[wanted], cols[wanted]
    # Barycentric coordinates as affine functions of (row, col), one set per triangle.
    det = (b[:, 0] - c[:, 0]) * (a[:, 1] - c[:, 1]) + (c[:, 1] - b[:, 1]) * (a[:, 0] - c[:, 0])
    coef = np.stack([(c[:, 1] - b[:, 1]) / det, (b[:, 0] - c[:, 0]) / det,
                     (a[:, 1] - c[:, 1]) / det, (c[:, 0] - a[:, 0]) / det], 1)  # (T, 4)
    dr, dc = rows - c[tri, 0], cols - c[tri, 1]  # (P,)
    k = coef[tri]  # (P, 4)
    l1 = k[:, 0] * dr + k[:, 1] * dc
    l2 = k[:, 2] * dr + k[:, 3] * dc
    l3 = 1.0 - l1 - l2
    inside = (l1 >= -1e-9) & (l2 >= -1e-9) & (l3 >= -1e-9)
    corner = values[triangles[tri[inside]]]  # (p, 3)
    out[rows[inside], cols[inside]] = (corner[:, 0] * l1[inside] + corner[:, 1] * l2[inside]
                                       + corner[:, 2] * l3[inside])


def interpolate_depth(sparse: np.ndarray, method: str = 'triangle') -> np.ndarray:
    """Linearly interpolate a sparse depth image over the Delaunay triangulation of its pixels.

    ``sparse`` is ``float32 (H, W)``, 0 = no measurement. Returns ``float32 (H, W)``; pixels
    outside the convex hull of the valid pixels are 0. Measured pixels keep their value.

    ``method='triangle'`` (default) triangulates with Shewchuk's Triangle and rasterises the
    triangles directly; ``'qhull'`` is the reference (SciPy's ``LinearNDInterpolator``: Qhull
    plus point location), about 10x slower. With the same jittered vertices both build the
    same triangulation, so they agree to float precision.
    """
    if sparse.ndim != 2:
        raise ValueError(f'sparse depth must be (H, W), got shape {sparse.shape}')
    if method not in INTERPOLATIONS:
        raise ValueError(f'interpolation method must be one of {INTERPOLATIONS}, got {method!r}')
    valid = sparse > 0  # (H, W)
    dense = np.where(valid, sparse, 0).astype(np.float32)
    rows, cols = np.nonzero(valid)
    if rows.size < 3:
        return dense
    values = sparse[rows, cols].astype(np.float64)  # (N,)
    points = _jittered_pixels(rows, cols)  # (N, 2)
    if method == 'qhull':
        from scipy.interpolate import LinearNDInterpolator
        from scipy.spatial import QhullError

        try:
            interp = LinearNDInterpolator(points, values, fill_value=0.0)
        except QhullError:  # all points collinear
            return dense
        r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        grid_r, grid_c = np.mgrid[r0:r1, c0:c1]  # (h, w) each
        dense[r0:r1, c0:c1] = interp(grid_r, grid_c).astype(np.float32)
        dense[rows, cols] = values  # exact at the measurements
        return np.nan_to_num(dense, nan=0.0)
    triangles = _delaunay_triangles(points, method)
    if triangles is None or len(triangles) == 0:
        return dense
    _rasterize_triangles(points, values, triangles, dense, ~valid)
    return dense


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



def _box_half(wlh: np.ndarray, scale: float) -> np.ndarray:
    return 0.5 * scale * np.array([wlh[1], wlh[0], wlh[2]])  # (3,) along box x, y, z


_CORNER_SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])


def box_corners(box: tuple, scale: float = 1.0) -> np.ndarray:
    """Return the corners ``(8, 3)`` of a box ``(center, R, wlh)`` (``points_in_boxes``)."""
    center, rotation, wlh = box
    return center + (_CORNER_SIGNS * _box_half(wlh, scale)) @ rotation.T


def ray_box_interval(directions: np.ndarray, box: tuple, scale: float = 1.0,
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Where rays from the origin cross an oriented box: ``t`` of entry and exit.

    Rays are ``p(t) = t * directions[i]`` (``(N, 3)``, frame of the box); the box is
    ``(center, R, wlh)`` as in :func:`points_in_boxes`, inflated by ``scale``. Slab method in
    the box frame. Returns ``(enter (N,), leave (N,))``; a ray misses when ``enter > leave``.
    """
    center, rotation, wlh = box
    half = _box_half(wlh, scale)
    origin = -np.asarray(center, np.float64) @ rotation  # (3,) the origin in the box frame
    local = np.asarray(directions, np.float64) @ rotation  # (N, 3)
    with np.errstate(divide='ignore', invalid='ignore'):
        t1 = (-half - origin) / local
        t2 = (half - origin) / local
    # A ray parallel to a slab is inside it for every t, or for none.
    parallel = local == 0
    slab_in = np.abs(origin) <= half  # (3,)
    t_lo = np.where(parallel, np.where(slab_in, -np.inf, np.inf), np.minimum(t1, t2))
    t_hi = np.where(parallel, np.where(slab_in, np.inf, -np.inf), np.maximum(t1, t2))
    return t_lo.max(axis=1), t_hi.min(axis=1)


def rays_blocked_by_boxes(points: np.ndarray, boxes: list, scale: float = 1.0) -> np.ndarray:
    """Which points are hidden from the origin by a box: the segment origin -> point enters it.

    ``points (N, 3)`` in a frame whose origin is the viewpoint (a camera); boxes as in
    :func:`points_in_boxes` (inflated by ``scale``). A point inside a box counts as hidden.
    Returns ``bool (N,)``.
    """
    points = np.asarray(points, np.float64).reshape(-1, 3)
    hidden = np.zeros(points.shape[0], bool)
    norms = np.linalg.norm(points, axis=1)  # (N,)
    for box in boxes:
        center = np.asarray(box[0], np.float64)
        # Cheap cone test first: only points seen within the box's bounding sphere matter.
        radius = float(np.linalg.norm(_box_half(box[2], scale)))
        distance = float(np.linalg.norm(center))
        near = np.arange(points.shape[0])
        if distance > radius:
            cos_cone = np.sqrt(1.0 - (radius / distance) ** 2)
            near = np.flatnonzero(points @ center >= cos_cone * distance * norms)  # (n,)
        if near.size == 0:
            continue
        enter, leave = ray_box_interval(points[near], box, scale)  # segment: t in [0, 1]
        hidden[near] |= (enter <= leave) & (leave >= 0) & (enter <= 1)
    return hidden


def pixels_behind_boxes(depth: np.ndarray, boxes: list, K: np.ndarray,
                        scale: float = 1.0) -> np.ndarray:
    """Pixels whose depth lies behind a box on their line of sight.

    ``depth`` float ``(H, W)`` z-depth in metres (0 = none); boxes ``(center, R, wlh)`` in the
    camera frame (as :func:`points_in_boxes`, inflated by ``scale``); ``K (3, 3)``. A pixel is
    behind a box when its viewing ray crosses the box and its depth is beyond the box's far
    side. Returns ``bool (H, W)``.
    """
    height, width = depth.shape
    behind = np.zeros((height, width), bool)
    K_inv = np.linalg.inv(np.asarray(K, np.float64))
    for box in boxes:
        region = box_region_2d(box_corners(box, scale), K, height, width)
        if region is None:
            continue
        r0, r1, c0, c1 = region
        rows, cols = (g.ravel() for g in np.mgrid[r0:r1, c0:c1])  # (n,) each
        pix = np.stack([cols, rows, np.ones(rows.size)], 1)  # (n, 3) u, v, 1
        # Rays with z = 1, so the ray parameter is the z-depth.
        enter, leave = ray_box_interval(pix @ K_inv.T, box, scale)
        hit = (enter <= leave) & (leave > 0) & (depth[rows, cols] > leave)
        behind[rows[hit], cols[hit]] = True
    return behind
