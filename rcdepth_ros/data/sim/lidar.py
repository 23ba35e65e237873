"""LIDAR_TOP model: a 32-beam spinning LiDAR ray-cast against the world.

The sweep is a grid of rays (beams x azimuths) in the sensor frame, traced like a spherical
camera: every box is tested only within the beam/azimuth window its footprint can cover.
Output is nuScenes' ``.pcd.bin`` layout, float32 ``(N, 5)`` x, y, z, intensity, ring index,
in the LiDAR frame. The whole sweep is taken at one instant (no rolling motion blur).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .raycast import GROUND, SKY, box_corners, trace_grid
from .render import ground_albedo
from .rig import LIDAR_AZIMUTHS, LIDAR_BEAMS_DEG, LIDAR_MAX_RANGE
from .world import KINDS, World

_KIND_INTENSITY = np.array([k.intensity for k in KINDS])
_GROUND_INTENSITY = np.array([6.0, 70.0, 18.0, 10.0])  # asphalt, paint, paving, verge


@lru_cache(maxsize=1)
def beam_rays() -> np.ndarray:
    """Return unit rays ``(beams, azimuths, 3)`` in the LiDAR frame; azimuth from -pi."""
    elevation = np.deg2rad(LIDAR_BEAMS_DEG)[:, None]  # (32, 1)
    azimuth = -np.pi + 2 * np.pi * (np.arange(LIDAR_AZIMUTHS) + 0.5) / LIDAR_AZIMUTHS
    azimuth = azimuth[None, :]  # (1, A)
    rays = np.stack(np.broadcast_arrays(np.cos(elevation) * np.cos(azimuth),
                                        np.cos(elevation) * np.sin(azimuth),
                                        np.sin(elevation)), axis=-1)
    rays.flags.writeable = False  # cached, shared between sweeps
    return rays


def _windows(corners_l: np.ndarray, half: np.ndarray, centers_l: np.ndarray
             ) -> tuple[list[tuple[int, int, int, int]], list[int], list[float]]:
    """Beam/azimuth windows of boxes from their LiDAR-frame corners ``(B, 8, 3)``."""
    beams, n_az = len(LIDAR_BEAMS_DEG), LIDAR_AZIMUTHS
    step_el = np.deg2rad(LIDAR_BEAMS_DEG[0] - LIDAR_BEAMS_DEG[-1]) / (beams - 1)
    top = np.deg2rad(LIDAR_BEAMS_DEG[0])
    radius = np.hypot(half[:, 0], half[:, 1])
    d_center = np.hypot(centers_l[:, 0], centers_l[:, 1])
    d_min = np.maximum(d_center - radius, 0.3)
    d_max = d_center + radius
    z_lo, z_hi = corners_l[..., 2].min(1), corners_l[..., 2].max(1)
    # Extreme elevations of a box occur at its nearest or farthest horizontal distance.
    el = np.arctan2(np.stack([z_lo, z_hi, z_lo, z_hi], 1),
                    np.stack([d_min, d_min, d_max, d_max], 1))  # (B, 4)
    r0 = np.clip(np.floor((top - el.max(1)) / step_el) - 1, 0, beams).astype(np.int64)
    r1 = np.clip(np.ceil((top - el.min(1)) / step_el) + 2, 0, beams).astype(np.int64)
    az_c = np.arctan2(centers_l[:, 1], centers_l[:, 0])
    rel = np.arctan2(corners_l[..., 1], corners_l[..., 0]) - az_c[:, None]
    rel = (rel + np.pi) % (2 * np.pi) - np.pi  # (B, 8) azimuth relative to the centre
    lo, hi = az_c + rel.min(1), az_c + rel.max(1)
    inside = d_center <= radius + 0.3  # the sensor sits (almost) over the box: all azimuths
    windows, ids, near = [], [], []
    for b in range(len(corners_l)):
        if r0[b] >= r1[b]:
            continue
        if inside[b]:
            spans = [(0, n_az)]
        else:
            c0 = int(np.floor((lo[b] + np.pi) / (2 * np.pi) * n_az)) - 1
            c1 = int(np.ceil((hi[b] + np.pi) / (2 * np.pi) * n_az)) + 1
            # Split a window that wraps around the +-pi seam.
            spans = [(max(c0, 0), min(c1, n_az))]
            if c0 < 0:
                spans.append((n_az + c0, n_az))
            if c1 > n_az:
                spans.append((0, c1 - n_az))
        for c0, c1 in spans:
            if c0 < c1:
                windows.append((int(r0[b]), int(r1[b]), c0, c1))
                ids.append(b)
                near.append(float(d_min[b]))
    return windows, ids, near


def lidar_sweep(world: World, t: float, T_global_from_lidar: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """Simulate one sweep at scene time ``t``: float32 ``(N, 5)`` in the LiDAR frame."""
    centers, half, yaw = world.boxes_at(t)
    R, origin = T_global_from_lidar[:3, :3], T_global_from_lidar[:3, 3]
    rays = beam_rays()  # (32, A, 3) LiDAR frame
    dirs = (rays @ R.T).astype(np.float32)  # (32, A, 3) world frame
    near = np.linalg.norm(centers[:, :2] - origin[:2], axis=1) < LIDAR_MAX_RANGE + half.max(1)
    idx = np.flatnonzero(near)
    corners_l = (box_corners(centers[idx], half[idx], yaw[idx]) - origin) @ R  # (B, 8, 3)
    centers_l = (centers[idx] - origin) @ R
    windows, ids, near_t = _windows(corners_l, half[idx], centers_l)
    order = np.argsort(near_t, kind='stable')
    hits = trace_grid(origin, dirs, centers, half, yaw, [windows[i] for i in order],
                      idx[np.asarray(ids, dtype=np.int64)[order]], LIDAR_MAX_RANGE,
                      np.asarray(near_t)[order], surface=False)
    ring = np.broadcast_to(np.arange(len(LIDAR_BEAMS_DEG))[:, None], hits.t.shape)
    # A few per cent of returns are lost (dark or specular surfaces, grazing angles).
    keep = (hits.index != SKY) & (rng.random(hits.t.shape) > 0.03)
    r = hits.t[keep] + rng.normal(0.0, 0.02, keep.sum())  # (N,) range with noise
    xyz = rays[keep] * r[:, None]  # (N, 3)
    intensity = np.empty(len(r))
    index = hits.index[keep]
    on_box = index >= 0
    intensity[on_box] = _KIND_INTENSITY[world.kind[index[on_box]]]
    ground = index == GROUND
    hit_world = origin + hits.t[keep][ground, None] * dirs[keep][ground]
    _, cls = ground_albedo(hit_world[:, 0], hit_world[:, 1])
    intensity[ground] = _GROUND_INTENSITY[cls]
    intensity = np.clip(intensity * rng.uniform(0.7, 1.3, len(r)) / (1 + r / 60.0), 0, 255)
    return np.column_stack([xyz, np.round(intensity), ring[keep]]).astype(np.float32)
