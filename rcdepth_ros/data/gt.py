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
    are ``(H, W)``. Every pixel centre inside (or on the edge of) a triangle gets the value of
    the plane through its corners; on a shared edge both triangles give the same value.
    Scanline rasterisation: each triangle's rows, then the columns between its edges on each.
    """
    height, width = out.shape
    # Skip triangles within a 2 x 2 pixel block, on the vertices' own pixels: three corners
    # of a unit square hold no pixel centre but their vertices (most triangles where the
    # LiDAR is dense).
    pix = np.rint(points).astype(np.int32)  # (N, 2)
    pa, pb, pc = (pix[triangles[:, k]] for k in range(3))  # (T, 2) each
    extent = np.maximum(np.maximum(pa, pb), pc) - np.minimum(np.minimum(pa, pb), pc)
    triangles = triangles[(extent[:, 0] > 1) | (extent[:, 1] > 1)]
    # Corners ordered by row: top (r0, c0), middle (r1, c1), bottom (r2, c2).
    triangles = np.take_along_axis(triangles, np.argsort(points[triangles, 0], axis=1), 1)
    (r0, c0), (r1, c1), (r2, c2) = (points[triangles[:, k]].T for k in range(3))  # (T,) each
    v0, v1, v2 = (values[triangles[:, k]] for k in range(3))
    row_lo = np.maximum(np.ceil(r0 - 1e-9), 0).astype(np.int64)
    row_hi = np.minimum(np.floor(r2 + 1e-9), height - 1).astype(np.int64)
    col_lo = np.maximum(np.ceil(np.minimum(np.minimum(c0, c1), c2) - 1e-9), 0).astype(np.int64)
    col_hi = np.minimum(np.floor(np.maximum(np.maximum(c0, c1), c2) + 1e-9),
                        width - 1).astype(np.int64)
    # Skip triangles whose bounding box holds no pixel to fill (a summed-area table).
    table = np.pad(np.cumsum(np.cumsum(fill, 0, dtype=np.int64), 1), ((1, 0), (1, 0)))
    end_r, end_c = np.maximum(row_hi + 1, row_lo), np.maximum(col_hi + 1, col_lo)
    todo = (table[end_r, end_c] - table[row_lo, end_c] - table[end_r, col_lo]
            + table[row_lo, col_lo]) > 0  # (T,)
    r0, c0, r1, c1, r2, c2, v0, v1, v2, row_lo, row_hi, col_lo, col_hi = (
        x[todo] for x in (r0, c0, r1, c1, r2, c2, v0, v1, v2, row_lo, row_hi, col_lo, col_hi))
    with np.errstate(divide='ignore', invalid='ignore'):  # a flat edge has no rows of its own
        slope_long, slope_top, slope_bottom = (
            np.nan_to_num(dc / dr, nan=0.0, posinf=0.0, neginf=0.0)
            for dc, dr in ((c2 - c0, r2 - r0), (c1 - c0, r1 - r0), (c2 - c1, r2 - r1)))
    # The plane through the corners: value = v0 + grad_r (row - r0) + grad_c (col - c0).
    det = (r1 - r0) * (c2 - c0) - (r2 - r0) * (c1 - c0)
    grad_r = ((v1 - v0) * (c2 - c0) - (v2 - v0) * (c1 - c0)) / det
    grad_c = ((r1 - r0) * (v2 - v0) - (r2 - r0) * (v1 - v0)) / det
    rows_each = np.maximum(row_hi - row_lo + 1, 0)  # (T,)
    tri = np.repeat(np.arange(len(r0)), rows_each)  # (Q,) row of a triangle -> triangle
    row = row_lo[tri] + np.arange(tri.size) - np.repeat(np.cumsum(rows_each) - rows_each,
                                                        rows_each)
    down = row - r0[tri]  # (Q,)
    x_long = c0[tri] + down * slope_long[tri]  # where the row crosses the top-bottom edge
    x_short = np.where(row < r1[tri], c0[tri] + down * slope_top[tri],
                       c1[tri] + (row - r1[tri]) * slope_bottom[tri])
    col_first = np.maximum(np.ceil(np.minimum(x_long, x_short) - 1e-9).astype(np.int64),
                           col_lo[tri])
    col_last = np.minimum(np.floor(np.maximum(x_long, x_short) + 1e-9).astype(np.int64),
                          col_hi[tri])
    cols_each = np.maximum(col_last - col_first + 1, 0)  # (Q,)
    span = np.repeat(np.arange(tri.size), cols_each)  # (P,) pixel -> row of a triangle
    col = col_first[span] + np.arange(span.size) - np.repeat(np.cumsum(cols_each) - cols_each,
                                                             cols_each)
    wanted = fill.ravel()[row[span] * width + col]
    span, col = span[wanted], col[wanted]
    owner = tri[span]
    out[row[span], col] = (v0[owner] + grad_r[owner] * down[span]
                           + grad_c[owner] * (col - c0[owner]))


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
    for hits in points_in_each_box(points, boxes, scale):
        inside[hits] = True
    return inside


def points_in_each_box(points: np.ndarray, boxes: list, scale: float = 1.0,
                       spans: np.ndarray | None = None) -> list[np.ndarray]:
    """Return the indices of the points inside each box: one sorted int array per box.

    Points and boxes as in :func:`points_in_boxes` (the one inside rule). ``spans`` ``(B, 2)``
    optionally limits box ``b`` to the points ``spans[b, 0]:spans[b, 1]`` (those outside the
    range are known to be outside the box, e.g. a slice of a cloud sorted along x). All boxes
    are tested in one vectorised pass.
    """
    points = np.asarray(points, np.float64).reshape(-1, 3)
    if not boxes:
        return []
    count = len(boxes)
    if spans is None:
        spans = np.tile([0, points.shape[0]], (count, 1))
    lo = np.asarray(spans, np.int64)[:, 0]
    sizes = np.maximum(np.asarray(spans, np.int64)[:, 1] - lo, 0)  # (B,)
    which = np.repeat(np.arange(count), sizes)  # (n,) candidate -> box
    index = np.arange(sizes.sum()) + np.repeat(lo - (np.cumsum(sizes) - sizes), sizes)  # (n,)
    centers = np.array([np.asarray(box[0], np.float64) for box in boxes])  # (B, 3)
    rotations = np.array([np.asarray(box[1], np.float64) for box in boxes])  # (B, 3, 3)
    halves = np.array([_box_half(box[2], scale) for box in boxes])  # (B, 3)
    radius = np.linalg.norm(halves, axis=1)  # (B,)
    # Cheap bounding-sphere test first, one axis at a time: most candidates are far from
    # their box.
    for axis in range(3):
        near = np.abs(points[index, axis] - centers[which, axis]) <= radius[which]
        index, which = index[near], which[near]
    offset = points[index] - centers[which]  # (n, 3)
    local = np.einsum('ni,nij->nj', offset, rotations[which])  # (n, 3) in the box frame
    limit = halves[which]  # (n, 3)
    inside = ((np.abs(local[:, 0]) <= limit[:, 0]) & (np.abs(local[:, 1]) <= limit[:, 1])
              & (np.abs(local[:, 2]) <= limit[:, 2]))
    index, which = index[inside], which[inside]
    bounds = np.searchsorted(which, np.arange(count + 1))  # ``which`` is sorted by box
    return [index[bounds[b]:bounds[b + 1]] for b in range(count)]


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
    enter = np.full(local.shape[0], -np.inf)
    leave = np.full(local.shape[0], np.inf)
    for axis in range(3):  # one slab at a time (cheaper than reductions over a length-3 axis)
        step, start, size = local[:, axis], origin[axis], half[axis]
        with np.errstate(divide='ignore', invalid='ignore'):
            t1 = (-size - start) / step
            t2 = (size - start) / step
        low, high = np.minimum(t1, t2), np.maximum(t1, t2)
        # A ray parallel to a slab is inside it for every t, or for none.
        parallel = step == 0
        if parallel.any():
            slab_in = abs(start) <= size
            low[parallel] = -np.inf if slab_in else np.inf
            high[parallel] = np.inf if slab_in else -np.inf
        np.maximum(enter, low, out=enter)
        np.minimum(leave, high, out=leave)
    return enter, leave


def rays_blocked_by_boxes(points: np.ndarray, boxes: list, scale: float = 1.0) -> np.ndarray:
    """Which points are hidden from the origin by a box: the segment origin -> point enters it.

    ``points (N, 3)`` in a frame whose origin is the viewpoint (a camera); boxes as in
    :func:`points_in_boxes` (inflated by ``scale``). A point inside a box counts as hidden.
    Returns ``bool (N,)``.
    """
    points = np.asarray(points, np.float64).reshape(-1, 3)
    hidden = np.zeros(points.shape[0], bool)
    if not boxes:
        return hidden
    norms = np.sqrt(np.einsum('ij,ij->i', points, points))  # (N,)
    centers = np.array([np.asarray(box[0], np.float64) for box in boxes])  # (B, 3)
    along = centers @ points.T  # (B, N) one product for every box's cone test
    for k, box in enumerate(boxes):
        # Cheap cone test first: only points seen within the box's bounding sphere matter.
        radius = float(np.linalg.norm(_box_half(box[2], scale)))
        distance = float(np.linalg.norm(centers[k]))
        near = np.arange(points.shape[0])
        if distance > radius:
            cos_cone = np.sqrt(1.0 - (radius / distance) ** 2)
            near = np.flatnonzero(along[k] >= (cos_cone * distance) * norms)  # (n,)
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
