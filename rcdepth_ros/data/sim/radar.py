"""Automotive radar model (Continental ARS408-like, as on the nuScenes vehicle).

What it reproduces, and why it matters for radar-camera depth:

- sparse cluster detections with no elevation (z = 0 in the sensor frame), at most
  :data:`MAX_POINTS` a sweep (the sensor's cluster cap, reached on busy urban streets);
- scattering centres on the visible faces of vehicles, pedestrians, poles, facades and kerbs,
  occluded by nearer boxes (ray cast at the mounting height);
- detection probability from a radar-equation SNR (RCS in dBsm minus 40 log10 range) with
  Swerling-like RCS fluctuation, over a near beam (+-60 deg to ~70 m) and a far beam
  (+-9 deg to ~250 m);
- range, azimuth and Doppler noise; velocities as nuScenes gives them: ``vx, vy`` the radial
  relative velocity projected on the line of sight (raw), ``vx_comp, vy_comp`` the same after
  ego-motion compensation;
- clutter and multipath ghosts, and the state fields (``dyn_prop``, ``ambig_state``,
  ``invalid_state``, ``pdh0``, ``*_rms``) with the value mix of real sweeps, so the devkit's
  default filters keep roughly 55-65 % of the points.
"""

from __future__ import annotations

import numpy as np

from ...msgs import NUSCENES_RADAR_DTYPE
from .raycast import trace_rays
from .world import KINDS, World

MAX_POINTS = 125
_KIND_RCS = np.array([k.rcs_dbsm for k in KINDS])
_SPACING = {'facade': 2.5, 'vehicle': 1.2, 'person': 10.0, 'pole': 10.0, 'kerb': 3.0,
            'barrier': 1.5, 'cone': 10.0}
_KIND_SPACING = np.array([_SPACING[k.texture] for k in KINDS])
_SNR_OFFSET = 82.0   # dB: SNR = RCS - 40 log10(r) + offset, detection at SNR ~ 0



def _scatterers(kinds: np.ndarray, centers: np.ndarray, half: np.ndarray, yaw: np.ndarray,
                origin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate scattering points ``(N, 2)`` (global xy) on the visible box edges.

    Every box gives the closest point of its footprint (a strong specular centre) plus points
    spaced along each face that looks towards the radar. Returns the points and the index
    of their box.
    """
    n_box = len(centers)
    c, s = np.cos(yaw), np.sin(yaw)
    rel = origin[:2] - centers[:, :2]  # (B, 2)
    o_local = np.column_stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1]])
    hxy = half[:, :2]  # (B, 2)
    closest = np.clip(o_local, -hxy, hxy)  # (B, 2)
    spacing = _KIND_SPACING[kinds]
    pts, owner = [closest], [np.arange(n_box)]
    for axis, sign in ((0, 1.0), (0, -1.0), (1, 1.0), (1, -1.0)):
        other = hxy[:, 1 - axis]
        n = (2 * other // spacing).astype(np.int64)
        faces = (sign * o_local[:, axis] > hxy[:, axis]) & (n > 0)  # face looks at the radar
        b = np.repeat(np.flatnonzero(faces), n[faces])
        first = np.repeat(np.cumsum(n[faces]) - n[faces], n[faces])
        i = np.arange(len(b)) - first  # index along the face
        edge = np.empty((len(b), 2))
        edge[:, axis] = sign * hxy[b, axis]
        edge[:, 1 - axis] = -other[b] + (i + 0.5) * 2 * other[b] / n[b]
        pts.append(edge)
        owner.append(b)
    local = np.concatenate(pts)
    owner = np.concatenate(owner)
    cb, sb = c[owner], s[owner]
    world_xy = np.column_stack([cb * local[:, 0] - sb * local[:, 1],
                                sb * local[:, 0] + cb * local[:, 1]]) + centers[owner, :2]
    return world_xy, owner


def _rms_codes(r: np.ndarray, az: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """State-field codes of the measurement standard deviations, as the sensor reports them."""
    n = len(r)
    x_rms = np.clip(19 + (r / 60.0).astype(np.int64) + rng.integers(0, 2, n), 19, 22)
    y_rms = np.clip(19 + (r * np.abs(np.sin(az)) / 8.0 + r / 50.0).astype(np.int64)
                    + rng.integers(0, 2, n), 19, 28)
    vx_rms = np.clip(16 + (rng.random(n) < 0.2) + (rng.random(n) < 0.05), 16, 18)
    vy_rms = np.full(n, 3)
    return x_rms, y_rms, vx_rms, vy_rms


def radar_sweep(world: World, t: float, T_global_from_radar: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """Simulate one radar sweep at scene time ``t`` (structured, ``NUSCENES_RADAR_DTYPE``)."""
    centers, half, yaw = world.boxes_at(t)
    R, origin = T_global_from_radar[:3, :3], T_global_from_radar[:3, 3]
    _, _, ego_velocity = world.ego_state(t)
    # Only boxes that can lie in the field of view matter, as targets or as occluders.
    c_local = (centers - origin) @ R  # (B, 3) radar frame
    dist = np.hypot(c_local[:, 0], c_local[:, 1])
    radius = np.hypot(half[:, 0], half[:, 1])
    ang = np.abs(np.arctan2(c_local[:, 1], c_local[:, 0]))
    ang_size = np.arcsin(np.clip(radius / np.maximum(dist, 1e-6), 0, 1))
    box_ids = np.flatnonzero((dist - radius < 250.0) & (
        (ang - ang_size < np.deg2rad(62)) | (dist < radius + 0.5)))
    centers, half, yaw = centers[box_ids], half[box_ids], yaw[box_ids]
    kinds = world.kind[box_ids]
    velocity = world.velocity[box_ids]
    pts, owner = _scatterers(kinds, centers, half, yaw, origin)
    # Radar frame: line of sight, range and azimuth of every candidate.
    rel = np.column_stack([pts - origin[:2], np.zeros(len(pts))])  # (N, 3) world offsets
    local = rel @ R  # (N, 3) radar frame
    r = np.hypot(local[:, 0], local[:, 1])
    az = np.arctan2(local[:, 1], local[:, 0])
    near_beam = (np.abs(az) < np.deg2rad(60)) & (r < np.where(np.abs(az) < np.deg2rad(45), 75, 40))
    far_beam = (np.abs(az) < np.deg2rad(9)) & (r < 250)
    fov = (near_beam | far_beam) & (r > 0.5)
    pts, owner, local, r, az = pts[fov], owner[fov], local[fov], r[fov], az[fov]
    # Swerling-like fluctuation, then detection by SNR; far-beam gain extends the range.
    kind = kinds[owner]
    rcs = _KIND_RCS[kind] + rng.normal(0.0, 4.0, len(r))
    # Far-beam gain on the boresight, antenna roll-off towards the edge of the near beam.
    gain = np.where(np.abs(az) < np.deg2rad(9), 9.0, 0.0)
    gain = gain - 8.0 * (np.abs(az) / np.deg2rad(60)) ** 2
    snr = rcs - 40.0 * np.log10(np.maximum(r, 1.0)) + _SNR_OFFSET + gain
    detected = rng.random(len(r)) < 1.0 / (1.0 + np.exp(-(snr - 3.0) / 2.0))
    pts, owner, local, r, az = pts[detected], owner[detected], local[detected], r[detected], az[
        detected]
    rcs, snr = rcs[detected], snr[detected]
    # Occlusion is the expensive test: run it on the strongest detections only, enough to
    # fill the cluster cap after occluded points drop out.
    strongest = np.argsort(-snr, kind='stable')[:2 * MAX_POINTS]
    pts, owner, r, az = pts[strongest], owner[strongest], r[strongest], az[strongest]
    rcs, snr = rcs[strongest], snr[strongest]
    # A horizontal ray at the mounting height must not hit another box first.
    dirs = np.column_stack([(pts - origin[:2]) / r[:, None], np.zeros(len(r))])
    tall = np.flatnonzero(centers[:, 2] + half[:, 2] > origin[2])  # kerbs sit below the beam
    t_hit, i_hit = trace_rays(origin, dirs, centers[tall], half[tall], yaw[tall])
    i_hit = np.where(i_hit >= 0, tall[np.maximum(i_hit, 0)], i_hit)
    visible = (i_hit == owner) | (t_hit > r - 0.3)
    owner, r, az, rcs, snr = owner[visible], r[visible], az[visible], rcs[visible], snr[visible]
    # Velocities: world velocity of the target and of the sensor, expressed in the radar frame.
    v_obj = np.column_stack([velocity[owner], np.zeros(len(owner))]) @ R  # (N, 3)
    v_ego = ego_velocity @ R  # (3,) ego velocity in the radar frame
    kind_true = np.zeros(len(owner), dtype=np.int64)  # 0 target, 1 clutter, 2 ghost

    # Clutter: road-surface and infrastructure returns with low RCS, stationary.
    n_clutter = int(rng.poisson(35))
    c_r = rng.uniform(2.0, 90.0, n_clutter)
    c_az = rng.uniform(-np.deg2rad(50), np.deg2rad(50), n_clutter)
    c_rcs = rng.normal(-2.0, 3.0, n_clutter)
    c_snr = c_rcs - 40.0 * np.log10(c_r) + _SNR_OFFSET
    # Multipath ghosts: strong vehicle returns re-appear further out along the same bearing.
    strong = np.flatnonzero((rcs > 8.0) & (rng.random(len(rcs)) < 0.2))
    g_scale = rng.uniform(1.5, 2.0, len(strong))
    g_r, g_az = r[strong] * g_scale, az[strong] + rng.normal(0, 0.02, len(strong))
    g_rcs = rcs[strong] - rng.uniform(6.0, 12.0, len(strong))
    g_snr = g_rcs - 40.0 * np.log10(g_r) + _SNR_OFFSET
    g_snr[g_r > 250.0] = -np.inf  # beyond the sensor's range gate

    r = np.concatenate([r, c_r, g_r])
    az = np.concatenate([az, c_az, g_az])
    rcs = np.concatenate([rcs, c_rcs, g_rcs])
    snr = np.concatenate([snr, c_snr, g_snr])
    v_obj = np.concatenate([v_obj, np.zeros((n_clutter, 3)), v_obj[strong] * g_scale[:, None]])
    kind_true = np.concatenate([kind_true, np.ones(n_clutter, np.int64),
                                np.full(len(strong), 2)])
    # Cluster cap: the sensor reports its strongest clusters only.
    # Clutter and ghosts pass the same detector as real targets.
    p_detect = 1.0 / (1.0 + np.exp(-(snr - 3.0) / 2.0))
    reported = (kind_true == 0) | (rng.random(len(snr)) < p_detect)
    order = np.argsort(np.where(reported, -snr, np.inf), kind='stable')[:reported.sum()]
    order = order[:MAX_POINTS]
    r, az, rcs, snr, v_obj, kind_true = (a[order] for a in (r, az, rcs, snr, v_obj, kind_true))
    n = len(r)

    # Measurement noise: range ~0.1 m + 0.2 %, azimuth 0.1 deg far beam, 0.5 deg near beam.
    r_meas = r + rng.normal(0.0, 0.1 + 0.002 * r, n)
    az_sigma = np.where(np.abs(az) < np.deg2rad(9), np.deg2rad(0.1), np.deg2rad(0.5))
    az_meas = az + rng.normal(0.0, 1.0, n) * az_sigma
    u = np.column_stack([np.cos(az_meas), np.sin(az_meas)])  # (n, 2) line of sight
    v_radial_rel = np.sum((v_obj[:, :2] - v_ego[:2]) * u, axis=1) + rng.normal(0.0, 0.1, n)
    v_radial_abs = np.sum(v_obj[:, :2] * u, axis=1) + rng.normal(0.0, 0.05, n)

    out = np.zeros(n, dtype=NUSCENES_RADAR_DTYPE)
    out['x'] = np.round(r_meas * u[:, 0] / 0.2) * 0.2  # the sensor reports on a 0.2 m grid
    out['y'] = np.round(r_meas * u[:, 1] / 0.2) * 0.2
    out['z'] = 0.0
    out['id'] = np.arange(n)
    out['rcs'] = np.round(rcs * 2.0) / 2.0  # 0.5 dBsm resolution
    out['vx'] = np.round(v_radial_rel * u[:, 0] * 4.0) / 4.0  # 0.25 m/s resolution
    out['vy'] = np.round(v_radial_rel * u[:, 1] * 4.0) / 4.0
    out['vx_comp'] = v_radial_abs * u[:, 0]
    out['vy_comp'] = v_radial_abs * u[:, 1]
    moving = np.abs(v_radial_abs) > 0.6
    oncoming = moving & (v_radial_abs < -0.6) & (np.abs(az) < np.deg2rad(30))
    dyn = np.where(rng.random(n) < 0.3, 3, 1)  # stationary or stationary candidate
    dyn = np.where(moving, np.where(oncoming, 2, 0), dyn)
    crossing = moving & (np.abs(np.abs(az) - np.pi / 2) < np.deg2rad(30))
    dyn = np.where(crossing, np.where(rng.random(n) < 0.5, 6, 5), dyn)
    dyn = np.where(rng.random(n) < 0.05, 4, dyn)  # unknown
    out['dyn_prop'] = dyn
    out['is_quality_valid'] = 1
    weak = snr < np.percentile(snr, 40) if n else np.zeros(0, bool)
    ambig = np.where(weak & (rng.random(n) < 0.2), rng.choice([0, 1, 2], n, p=[0.5, 0.4, 0.1]), 3)
    out['ambig_state'] = ambig
    p_invalid = np.select([kind_true == 1, kind_true == 2, weak], [0.75, 0.5, 0.3], 0.1)
    invalid_codes = rng.choice([4, 7, 9, 11, 16, 3, 10], n, p=[0.3, 0.1, 0.15, 0.25, 0.12,
                                                                0.04, 0.04])
    out['invalid_state'] = np.where(rng.random(n) < p_invalid, invalid_codes, 0)
    out['pdh0'] = np.select([snr > 12.0, snr > 5.0], [1, 3], 6)
    out['x_rms'], out['y_rms'], out['vx_rms'], out['vy_rms'] = _rms_codes(r, az, rng)
    return out
