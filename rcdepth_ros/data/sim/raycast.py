"""Ray casting against the world's boxes and ground plane: shared by camera, LiDAR and radar.

Rays come as a grid ``dirs (H, W, 3)`` (camera pixels, or LiDAR beams x azimuths) from one
origin. Each box is tested only against the sub-grid its projection can cover (the caller
gives one ``(r0, r1, c0, c1)`` window per box), so the work per frame is proportional to the
pixels each box covers, not pixels x boxes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

SKY = -1
GROUND = -2
_EPS = 1e-6


class Hits(NamedTuple):
    """Nearest hit per ray.

    ``t (H, W)`` ray parameter (``inf`` where nothing is hit), ``index (H, W)`` box index or
    :data:`GROUND` / :data:`SKY`, ``face (H, W)`` entry face code ``2 * axis + (normal > 0)``
    in the box frame, ``local (H, W, 3)`` hit point in the box frame (box centre at 0).
    """

    t: np.ndarray
    index: np.ndarray
    face: np.ndarray
    local: np.ndarray


def to_box_frame(points: np.ndarray, center: np.ndarray, yaw: float) -> np.ndarray:
    """Express ``points (..., 3)`` (or directions with ``center = 0``) in a box frame."""
    c, s = np.cos(yaw), np.sin(yaw)
    d = points - center
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1], d[..., 2]],
                    axis=-1)


def box_corners(centers: np.ndarray, half: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Return the 8 corners of each box, ``(B, 8, 3)`` in the world frame."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)],
                     dtype=np.float64)  # (8, 3)
    local = signs[None] * half[:, None, :]  # (B, 8, 3)
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    x = c * local[..., 0] - s * local[..., 1]
    y = s * local[..., 0] + c * local[..., 1]
    return np.stack([x, y, local[..., 2]], axis=-1) + centers[:, None, :]


def intersect_box(origin_local: np.ndarray, dirs_local: np.ndarray, half: np.ndarray,
                  want_face: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Slab test of rays against one axis-aligned box (box frame).

    Returns ``(t_near (...), face (...))``; ``t_near`` is ``inf`` where the ray misses or
    starts inside the box; ``face`` is None unless ``want_face``.
    """
    d = np.where(np.abs(dirs_local) < 1e-12, dirs_local.dtype.type(1e-12), dirs_local)
    inv = 1 / d
    t1 = (-half - origin_local) * inv  # (..., 3)
    t2 = (half - origin_local) * inv
    t_in = np.minimum(t1, t2)
    t_near = t_in.max(axis=-1)
    t_far = np.maximum(t1, t2).min(axis=-1)
    miss = (t_near > t_far) | (t_near <= _EPS)
    if not want_face:
        return np.where(miss, np.inf, t_near), None
    axis = t_in.argmax(axis=-1)
    # The entry face's outward normal points against the ray along that axis.
    d_axis = np.take_along_axis(d, axis[..., None], axis=-1)[..., 0]
    face = 2 * axis + (d_axis < 0)
    return np.where(miss, np.inf, t_near), face


def trace_grid(origin: np.ndarray, dirs: np.ndarray, centers: np.ndarray, half: np.ndarray,
               yaw: np.ndarray, windows: list[tuple[int, int, int, int]], box_ids: np.ndarray,
               max_t: float, near_t: np.ndarray | None = None, surface: bool = True) -> Hits:
    """Nearest hit of each ray of ``dirs (H, W, 3)`` among the ground and the listed boxes.

    ``box_ids[k]`` is tested within ``windows[k] = (r0, r1, c0, c1)``. Rays that hit nothing
    closer than ``max_t`` (in units of the ray parameter) see the sky. With ``near_t[k]``, a
    lower bound of the ray parameter over box k, a box whose whole window already holds
    nearer hits is skipped (list boxes nearest first to make the most of it). With
    ``surface=False`` the face codes and box-frame hit points are left at zero.
    """
    height, width = dirs.shape[:2]
    dtype = dirs.dtype  # float32 grids halve the memory traffic; box frames stay accurate
    t = np.full((height, width), np.inf, dtype=dtype)
    index = np.full((height, width), SKY, dtype=np.int64)
    # Ground plane z = 0, hit from above.
    with np.errstate(divide='ignore', invalid='ignore'):
        t_ground = np.where(dirs[..., 2] < -1e-9, -float(origin[2]) / dirs[..., 2], np.inf)
    ground = t_ground < max_t
    t[ground] = t_ground[ground]
    index[ground] = GROUND
    for j, (k, (r0, r1, c0, c1)) in enumerate(zip(box_ids, windows)):
        if near_t is not None and t[r0:r1, c0:c1].max() < near_t[j]:
            continue  # hidden behind what is already drawn
        sub = dirs[r0:r1, c0:c1]  # (h, w, 3)
        o_local = to_box_frame(origin, centers[k], yaw[k]).astype(dtype)
        c, s = dtype.type(np.cos(yaw[k])), dtype.type(np.sin(yaw[k]))
        d_local = np.stack([c * sub[..., 0] + s * sub[..., 1], -s * sub[..., 0] + c * sub[..., 1],
                            sub[..., 2]], axis=-1)  # (h, w, 3) box frame
        t_box, _ = intersect_box(o_local, d_local, half[k].astype(dtype), want_face=False)
        closer = t_box < np.minimum(t[r0:r1, c0:c1], max_t)
        t[r0:r1, c0:c1][closer] = t_box[closer]
        index[r0:r1, c0:c1][closer] = k
    face = np.zeros((height, width), dtype=np.int64)
    local = np.zeros((height, width, 3))
    if surface:
        # Hit points in their box's frame, and the entry face: the axis along which the point
        # sits on the box's surface. Offsets from the box centre are taken in float64 first
        # (world coordinates are hundreds of metres), then the grid's precision suffices.
        on_box = index >= 0
        k = index[on_box]
        offset = (origin - centers).astype(dtype)  # (B, 3) camera relative to each box
        d = offset[k] + t[on_box][:, None] * dirs[on_box]  # (N, 3) box-centred, world axes
        c, s = np.cos(yaw).astype(dtype)[k], np.sin(yaw).astype(dtype)[k]
        p = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]], axis=-1)
        axis = np.abs(p / half.astype(dtype)[k]).argmax(axis=-1)
        face[on_box] = 2 * axis + (p[np.arange(len(k)), axis] > 0)
        local[on_box] = p
    return Hits(t, index, face, local)


def trace_rays(origin: np.ndarray, dirs: np.ndarray, centers: np.ndarray, half: np.ndarray,
               yaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest box hit of a few rays ``dirs (N, 3)`` (no ground): ``(t (N,), index (N,))``."""
    n = len(dirs)
    best_t = np.full(n, np.inf)
    best_i = np.full(n, SKY, dtype=np.int64)
    if n == 0 or len(centers) == 0:
        return best_t, best_i
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]  # (B, 1)
    o = origin[None] - centers  # (B, 3)
    o_local = np.stack([c[:, 0] * o[:, 0] + s[:, 0] * o[:, 1],
                        -s[:, 0] * o[:, 0] + c[:, 0] * o[:, 1], o[:, 2]], axis=-1)  # (B, 3)
    d_local = np.stack([c * dirs[None, :, 0] + s * dirs[None, :, 1],
                        -s * dirs[None, :, 0] + c * dirs[None, :, 1],
                        np.broadcast_to(dirs[None, :, 2], (len(centers), n))], axis=-1)
    t_box, _ = intersect_box(o_local[:, None, :], d_local, half[:, None, :], False)  # (B, N)
    best_i = np.where(np.isfinite(t_box.min(axis=0)), t_box.argmin(axis=0), SKY)
    return t_box.min(axis=0), best_i
