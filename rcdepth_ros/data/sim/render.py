"""Camera renderer: ray-cast the world's boxes and ground, then texture and shade every pixel.

Pixel ``(v, u)`` (row, column) sees the ray through the pixel centre ``(u + 0.5, v + 0.5)``;
with the ``floor`` convention of the geometry core a world point projects back into the pixel
that rendered it. Rays are scaled to unit camera-frame z, so the ray parameter of a hit is its
z-depth and the depth buffer comes out of the intersection for free.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from .raycast import GROUND, SKY, Hits, box_corners, trace_grid
from .world import KINDS, LANE_WIDTH, ROAD_HALF_WIDTH, ROAD_Y, SIDEWALK_WIDTH, World

MAX_DEPTH = 300.0
_SUN = np.array([0.45, -0.55, 0.70]) / np.linalg.norm([0.45, -0.55, 0.70])
_TEXTURE_ID = {name: i for i, name in enumerate(
    ('facade', 'vehicle', 'person', 'pole', 'kerb', 'barrier', 'cone'))}
_KIND_TEXTURE = np.array([_TEXTURE_ID[k.texture] for k in KINDS])


class CameraFrame(NamedTuple):
    """A rendered camera frame.

    ``rgb`` uint8 (H, W, 3); ``depth`` float32 (H, W) z-depth in metres, 0 on the sky;
    ``index`` int64 (H, W) the box seen by each pixel (world box index), -2 ground, -1 sky.
    """

    rgb: np.ndarray
    depth: np.ndarray
    index: np.ndarray


def pixel_rays(K: np.ndarray, height: int, width: int) -> np.ndarray:
    """Return camera-frame rays ``(H, W, 3)`` through pixel centres, with z = 1."""
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    x = (u - K[0, 2] - K[0, 1] * (v - K[1, 2]) / K[1, 1]) / K[0, 0]
    y = (v - K[1, 2]) / K[1, 1]
    return np.stack([x, y, np.ones_like(x)], axis=-1)


_LATTICE = np.random.default_rng(20250101).random(65536).astype(np.float32)  # noise lattice


@lru_cache(maxsize=16)
def _cached_rays(K_flat: tuple[float, ...], height: int, width: int) -> np.ndarray:
    rays = pixel_rays(np.array(K_flat).reshape(3, 3), height, width)
    rays.flags.writeable = False  # shared between frames
    return rays


def _hash01(ix: np.ndarray, iy: np.ndarray, seed: np.ndarray | int) -> np.ndarray:
    """Deterministic pseudo-random value in [0, 1) per integer lattice point and seed."""
    ix = ix.astype(np.int64) + 37 * np.asarray(seed, dtype=np.int64)
    iy = iy.astype(np.int64) + 91 * np.asarray(seed, dtype=np.int64)
    return _LATTICE[((ix & 255) << 8) | ((iy + (ix >> 8) * 17) & 255)]


def value_noise(x: np.ndarray, y: np.ndarray, seed: np.ndarray | int = 0) -> np.ndarray:
    """Smooth noise in [0, 1) on the unit lattice (bilinear blend of hashed corners)."""
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0).astype(np.float32), (y - y0).astype(np.float32)
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    ix = x0.astype(np.int64) + 37 * np.asarray(seed, dtype=np.int64)
    iy = y0.astype(np.int64) + 91 * np.asarray(seed, dtype=np.int64)
    row0, row1 = (ix & 255) << 8, ((ix + 1) & 255) << 8
    skew0, skew1 = (ix >> 8) * 17, ((ix + 1) >> 8) * 17
    a = _LATTICE[row0 | ((iy + skew0) & 255)]
    b = _LATTICE[row1 | ((iy + skew1) & 255)]
    c = _LATTICE[row0 | ((iy + 1 + skew0) & 255)]
    d = _LATTICE[row1 | ((iy + 1 + skew1) & 255)]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def ground_albedo(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the ground albedo ``(N, 3)`` and surface class ``(N,)`` at global ``(x, y)``.

    Classes (they set the LiDAR reflectivity): 0 asphalt, 1 paint, 2 paving, 3 verge.
    """
    dy = y - ROAD_Y
    ady = np.abs(dy)
    n = value_noise(x * 4.0, y * 4.0, 11)
    color = np.empty(x.shape + (3,))
    cls = np.zeros(x.shape, dtype=np.int64)
    road = ady < ROAD_HALF_WIDTH
    color[road] = (0.22 + 0.12 * n[road])[:, None] * np.array([1.0, 1.0, 1.03])
    # Markings: solid double centre line, dashed lane lines, solid parking-strip lines.
    centre = np.abs(ady - 0.15) < 0.07
    dashed = (np.abs(ady - LANE_WIDTH) < 0.07) & ((x % 9.0) < 3.0)
    edge = np.abs(ady - 2 * LANE_WIDTH) < 0.08
    paint = road & (centre | dashed | edge)
    color[paint] = np.array([0.85, 0.85, 0.8]) * (0.9 + 0.1 * n[paint])[:, None]
    color[road & centre] = np.array([0.9, 0.75, 0.2]) * (0.9 + 0.1 * n[road & centre])[:, None]
    cls[paint] = 1
    walk = ~road & (ady < ROAD_HALF_WIDTH + SIDEWALK_WIDTH + 4.0)
    joint = ((x % 0.6) < 0.03) | (((ady - ROAD_HALF_WIDTH) % 0.6) < 0.03)
    tile = 0.55 + 0.1 * n[walk] - 0.15 * joint[walk]
    color[walk] = tile[:, None] * np.array([1.0, 0.98, 0.94])
    cls[walk] = 2
    verge = ~road & ~walk
    color[verge] = (0.25 + 0.2 * n[verge])[:, None] * np.array([0.55, 0.7, 0.35])
    cls[verge] = 3
    return color, cls


def _box_color(world: World, hits: Hits, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Albedo of the box pixels ``sel`` from their box's texture and the face coordinates.

    Also returns which of those pixels glow at night (lit windows, vehicle lamps).
    """
    k = hits.index[sel]
    local = hits.local[sel]  # (N, 3)
    face = hits.face[sel]
    half = world.half[k]  # (N, 3)
    base = world.color[k]
    axis = face // 2
    # Face coordinates: h along the face (metres from its edge), v height above the box bottom.
    h = np.where(axis == 0, local[:, 1] + half[:, 1], local[:, 0] + half[:, 0])
    v = local[:, 2] + half[:, 2]
    vf = v / (2 * half[:, 2])
    tex = _KIND_TEXTURE[world.kind[k]]
    grain = value_noise(h * 6.0, v * 6.0, k)
    color = base * (0.8 + 0.35 * grain)[:, None]
    side = axis < 2

    m = tex == _TEXTURE_ID['facade']
    fu, fv = (h / 3.0) % 1.0, (v / 3.2) % 1.0
    window = m & side & (fu > 0.22) & (fu < 0.78) & (fv > 0.3) & (fv < 0.85) & (v > 3.5) & (
        v < 2 * half[:, 2] - 1.0)
    shop = m & side & (v > 0.5) & (v < 2.8) & (((h / 5.0) % 1.0) > 0.1) & (((h / 5.0) % 1.0) < 0.8)
    glass = window | shop
    pane = _hash01(np.floor(h / 3.0), np.floor(v / 3.2), k)
    color[glass] = np.array([0.12, 0.16, 0.22]) + 0.2 * pane[glass, None]
    lit = window & (pane > 0.6)
    if world.night:
        color[lit] = np.array([1.0, 0.85, 0.55]) * (0.6 + 0.4 * pane[lit, None])
    band = m & side & (fv < 0.06) & (v > 3.0)
    color[band] *= 0.7
    color[m & ~side] = 0.3 + 0.1 * grain[m & ~side, None]

    m = tex == _TEXTURE_ID['vehicle']
    color[m & (vf < 0.25)] = 0.06 + 0.04 * grain[m & (vf < 0.25), None]
    glass = m & side & (vf > 0.55) & (vf < 0.88) & ((h % 10.0) > 0.4)
    color[glass] = np.array([0.08, 0.1, 0.13]) + 0.1 * grain[glass, None]
    lamp = m & (axis == 0) & (vf > 0.32) & (vf < 0.45) & (
        (h < 0.45) | (h > 2 * half[:, 1] - 0.45))
    front = face % 2 == 1  # +x face: the front of a vehicle
    color[lamp & front] = np.array([0.95, 0.95, 0.85])
    color[lamp & ~front] = np.array([0.7, 0.05, 0.05])
    lit |= lamp

    m = tex == _TEXTURE_ID['person']
    color[m & (vf < 0.47)] *= 0.35
    color[m & (vf > 0.87)] = np.array([0.8, 0.6, 0.5]) * (0.8 + 0.2 * grain[m & (vf > 0.87), None])

    m = tex == _TEXTURE_ID['barrier']
    stripe = m & (((h + v) / 0.5) % 1.0 < 0.5)
    color[stripe] = np.array([0.8, 0.1, 0.1])
    m = tex == _TEXTURE_ID['cone']
    color[m & (vf > 0.45) & (vf < 0.65)] = 0.95
    return np.clip(color, 0.0, 1.0), lit


def _normals(world: World, hits: Hits, sel: np.ndarray) -> np.ndarray:
    """World-frame unit normals of the box pixels ``sel``."""
    k = hits.index[sel]
    axis, positive = hits.face[sel] // 2, hits.face[sel] % 2 == 1
    n_local = np.zeros((len(k), 3))
    n_local[np.arange(len(k)), axis] = np.where(positive, 1.0, -1.0)
    c, s = np.cos(world.yaw[k]), np.sin(world.yaw[k])
    return np.stack([c * n_local[:, 0] - s * n_local[:, 1],
                     s * n_local[:, 0] + c * n_local[:, 1], n_local[:, 2]], axis=-1)


_EDGES = np.array([(a, b) for a in range(8) for b in range(a + 1, 8)
                   if bin(a ^ b).count('1') == 1])  # (12, 2) corner pairs differing in one sign
_NEAR = 0.05


def box_windows(corners_cam: np.ndarray, K: np.ndarray, height: int, width: int
                ) -> tuple[list[tuple[int, int, int, int]], np.ndarray, np.ndarray]:
    """Pixel windows of boxes from their camera-frame corners ``(B, 8, 3)``.

    Returns the windows, the indices of the boxes worth testing (at least partly in front of
    the camera and overlapping the image) and their nearest z-depth, nearest first so that
    the tracer's occlusion test skips boxes hidden behind others. Boxes crossing the near
    plane are clipped against it, so their windows stay bounded.
    """
    z = corners_cam[..., 2]  # (B, 8)
    a, b = corners_cam[:, _EDGES[:, 0]], corners_cam[:, _EDGES[:, 1]]  # (B, 12, 3)
    za, zb = a[..., 2], b[..., 2]
    crosses = (za > _NEAR) != (zb > _NEAR)  # (B, 12)
    with np.errstate(divide='ignore', invalid='ignore'):
        s = np.where(crosses, (_NEAR - za) / (zb - za), 0.0)
    cut = a + s[..., None] * (b - a)  # (B, 12, 3) edge points on the near plane
    pts = np.concatenate([corners_cam, cut], axis=1)  # (B, 20, 3)
    valid = np.concatenate([z > _NEAR, crosses], axis=1)  # (B, 20)
    zc = np.maximum(pts[..., 2], _NEAR)
    u = (K[0, 0] * pts[..., 0] + K[0, 1] * pts[..., 1]) / zc + K[0, 2]
    v = K[1, 1] * pts[..., 1] / zc + K[1, 2]
    big = 1e9
    u_lo, u_hi = np.where(valid, u, big).min(1), np.where(valid, u, -big).max(1)
    v_lo, v_hi = np.where(valid, v, big).min(1), np.where(valid, v, -big).max(1)
    c0 = np.clip(np.floor(u_lo) - 1, 0, width).astype(np.int64)
    c1 = np.clip(np.ceil(u_hi) + 1, 0, width).astype(np.int64)
    r0 = np.clip(np.floor(v_lo) - 1, 0, height).astype(np.int64)
    r1 = np.clip(np.ceil(v_hi) + 1, 0, height).astype(np.int64)
    keep = valid.any(1) & (c0 < c1) & (r0 < r1)
    nearest = np.where(valid, pts[..., 2], big).min(1)
    ids = np.flatnonzero(keep)
    ids = ids[np.argsort(nearest[ids], kind='stable')]
    windows = [(int(r0[i]), int(r1[i]), int(c0[i]), int(c1[i])) for i in ids]
    return windows, ids, nearest[ids]


def render_camera(world: World, t: float, T_global_from_cam: np.ndarray, K: np.ndarray,
                  height: int, width: int, rng: np.random.Generator) -> CameraFrame:
    """Render one camera frame at scene time ``t`` (see :class:`CameraFrame`)."""
    centers, half, yaw = world.boxes_at(t)
    R, origin = T_global_from_cam[:3, :3], T_global_from_cam[:3, 3]
    rays_cam = _cached_rays(tuple(np.asarray(K, dtype=np.float64).ravel()), height, width)
    dirs = (rays_cam @ R.T).astype(np.float32)  # (H, W, 3) world frame, unit camera z
    near = np.linalg.norm(centers[:, :2] - origin[:2], axis=1) < MAX_DEPTH + half.max(axis=1)
    corners = box_corners(centers, half, yaw)  # (B, 8, 3)
    corners_cam = (corners - origin) @ R  # (B, 8, 3)
    windows, ids, nearest = box_windows(corners_cam[near], K, height, width)
    ids = np.flatnonzero(near)[ids]
    hits = trace_grid(origin, dirs, centers, half, yaw, windows, ids, MAX_DEPTH, nearest)

    color = np.zeros((height, width, 3), dtype=np.float32)
    light = np.ones((height, width), dtype=np.float32)
    ambient, direct = (0.08, 0.0) if world.night else (0.5, 0.55)
    sky = hits.index == SKY
    d_sky = dirs[sky]  # (S, 3)
    elevation = d_sky[:, 2] / np.linalg.norm(d_sky, axis=-1)  # (S,) sine, up positive
    if world.night:
        sky_rgb = np.array([0.02, 0.025, 0.05]) + 0.03 * np.clip(1 - 4 * elevation, 0, 1)[:, None]
    else:
        flat = np.maximum(elevation, 0.05)
        clouds = value_noise(d_sky[:, 0] / flat * 0.02, d_sky[:, 1] / flat * 0.02, 5)
        sky_rgb = (np.array([0.45, 0.62, 0.9]) * (1 - np.clip(elevation, 0, 1))[:, None]
                   + np.array([0.75, 0.82, 0.92]) * np.clip(elevation, 0, 1)[:, None] * 0.3
                   + 0.25 * np.clip(clouds - 0.45, 0, 1)[:, None])
    color[sky] = sky_rgb

    ground = hits.index == GROUND
    g_point = origin + hits.t[ground][:, None] * dirs[ground]  # (G, 3) world frame
    g_color, _ = ground_albedo(g_point[:, 0], g_point[:, 1])
    color[ground] = g_color
    light[ground] = ambient + direct * _SUN[2]

    boxes = hits.index >= 0
    color[boxes], lit = _box_color(world, hits, boxes)
    normal = _normals(world, hits, boxes)
    light[boxes] = ambient + direct * np.clip(normal @ _SUN, 0, None)

    solid = ~sky
    if world.night:
        # Headlights: a cone ahead of the ego vehicle lights the nearby scene.
        T_ego = world.ego_transform(t)
        point = origin + hits.t[solid][:, None] * dirs[solid]  # (N, 3) world frame
        rel = (point - T_ego[:3, 3]) @ T_ego[:3, :3]  # (N, 3) ego frame
        ahead = rel[:, 0] > 1.0
        cone = np.exp(-(rel[:, 1] / np.maximum(rel[:, 0], 1.0) / 0.35) ** 2) * ahead
        light[solid] += 2.2 * cone * np.exp(-rel[:, 0] / 25.0)
        # Lit windows and vehicle lamps glow on their own.
        glow = np.zeros_like(boxes)
        glow[boxes] = lit
        light[glow] = np.maximum(light[glow], 1.2)
    shaded = color * light[..., None]
    # Aerial perspective: distant surfaces fade into the horizon colour.
    fog = 1 - np.exp(np.where(solid, hits.t, np.float32(0)) / np.float32(-350))  # (H, W)
    horizon = np.array([0.03, 0.03, 0.05] if world.night else [0.7, 0.76, 0.85], np.float32)
    shaded = shaded * (1 - fog[..., None]) + horizon * fog[..., None]
    noise_sigma = np.float32(0.035 if world.night else 0.008)
    shaded = shaded + noise_sigma * rng.standard_normal(shaded.shape, dtype=np.float32)
    if world.night:
        shaded = np.clip(shaded, 0, None) ** np.float32(1.1)
    rgb = np.clip(np.round(shaded * np.float32(255)), 0, 255).astype(np.uint8)
    depth = np.where(solid, hits.t, 0.0).astype(np.float32)
    return CameraFrame(rgb, depth, hits.index)
