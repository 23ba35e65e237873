"""Write synthetic scenes as a nuScenes dataset (JSON tables, samples/ and sweeps/ files).

The work is split into independent units, one per (scene, channel) plus one per scene for
the tables of samples and annotations. Every unit rebuilds its scene's world and timeline
from the seed, and every sensor frame draws its noise from its own generator seeded by
``(seed, scene, channel, frame)``, so the output is byte-identical whatever the number of
worker processes or the order the units run in.
"""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ...errors import BadArgument
from ...geometry import quat_to_matrix
from ...msgs import write_radar_pcd
from . import rig
from .lidar import lidar_sweep
from .radar import radar_sweep
from .raycast import box_corners, trace_rays
from .render import render_camera
from .world import KINDS, ROAD_HALF_WIDTH, ROAD_Y, SIDEWALK_WIDTH, World, make_world

BASE_TIMESTAMP_US = 1_600_000_000_000_000  # 2020-09-13, keeps timestamps nuScenes-like
ANNOTATION_RADIUS = 60.0

CATEGORIES = (
    ('vehicle.car', 'Vehicle designed primarily for personal use.'),
    ('vehicle.truck', 'Vehicles primarily designed to haul cargo.'),
    ('vehicle.bus.rigid', 'Rigid bus.'),
    ('human.pedestrian.adult', 'Adult subcategory.'),
    ('movable_object.barrier', 'Temporary road barrier.'),
    ('movable_object.trafficcone', 'All types of traffic cone.'),
)
ATTRIBUTES = (
    ('vehicle.moving', 'Vehicle is moving.'),
    ('vehicle.stopped', 'Vehicle, with a driver/rider in/on it, is currently stationary.'),
    ('vehicle.parked', 'Vehicle is stationary (usually for longer duration) with no driver.'),
    ('pedestrian.moving', 'The human is moving.'),
    ('pedestrian.standing', 'The human is standing.'),
)
VISIBILITY = (('1', 'v0-40'), ('2', 'v40-60'), ('3', 'v60-80'), ('4', 'v80-100'))


@dataclass(frozen=True)
class SimConfig:
    """Parameters of a synthetic world (saved as ``sim.json`` beside the tables)."""

    scenes: int = 2
    seed: int = 0
    night_fraction: float = 0.25
    image_scale: float = 0.4
    duration: float = 8.0
    version: str = 'v1.0-sim'
    cameras: tuple[str, ...] = rig.CAMERAS
    camera_sweeps: tuple[str, ...] = ('CAM_FRONT',)
    radars: tuple[str, ...] = rig.RADARS

    def validate(self) -> None:
        """Raise ``ValueError`` on parameters no world can be built from."""
        if self.scenes < 1:
            raise BadArgument(f'need at least one scene, got {self.scenes}')
        if not 0.0 <= self.night_fraction <= 1.0:
            raise BadArgument(f'night fraction must lie in [0, 1], got {self.night_fraction}')
        if not 0.05 <= self.image_scale <= 1.0:
            raise BadArgument(f'image scale must lie in [0.05, 1], got {self.image_scale}')
        if self.duration < 1.0:
            raise BadArgument(f'scene duration must be at least 1 s, got {self.duration}')
        if not self.version.startswith('v1.0-'):
            raise BadArgument(f'version must look like v1.0-<name>, got {self.version!r}')
        if 'CAM_FRONT' not in self.cameras or 'RADAR_FRONT' not in self.radars:
            raise BadArgument('the rig needs at least CAM_FRONT and RADAR_FRONT')
        for channel in (*self.cameras, *self.camera_sweeps, *self.radars):
            if channel not in rig.SENSOR_BY_CHANNEL:
                raise BadArgument(f'unknown sensor channel {channel!r}')


def token(*parts) -> str:
    """Deterministic 32-hex-digit token, like nuScenes' tokens."""
    return hashlib.md5('/'.join(str(p) for p in parts).encode()).hexdigest()


def _rng(*parts: int) -> np.random.Generator:
    return np.random.default_rng([int(p) for p in parts])


def scene_is_night(config: SimConfig, scene: int) -> bool:
    """Tell whether a scene is a night scene.

    ``round(night_fraction * scenes)`` scenes are, picked by a seeded permutation.
    """
    n_night = int(np.floor(config.night_fraction * config.scenes + 0.5))
    return bool(scene in _rng(config.seed, 991).permutation(config.scenes)[:n_night])


def scene_world(config: SimConfig, scene: int) -> World:
    """Build (deterministically) the world of one scene."""
    return make_world(_rng(config.seed, scene, 0), config.duration, scene_is_night(config, scene))


@dataclass(frozen=True)
class Timeline:
    """Timestamps (microseconds) of a scene: origin, samples and every channel's frames."""

    origin: int
    samples: np.ndarray
    frames: dict

    def seconds(self, timestamp: int) -> float:
        """Scene time in seconds of a timestamp."""
        return (int(timestamp) - self.origin) * 1e-6

    def keyframes(self, channel: str) -> np.ndarray:
        """Index of the frame of ``channel`` closest to each sample (one keyframe a sample)."""
        times = self.frames[channel]
        return np.abs(times[None, :] - self.samples[:, None]).argmin(axis=1)


def scene_timeline(config: SimConfig, scene: int) -> Timeline:
    """Return the sensor clocks of a scene.

    LiDAR at 20 Hz (keyframes every 10th sweep = 2 Hz), cameras at 12 Hz triggered as the
    LiDAR sweeps past them, radars at ~13 Hz free-running with jitter.
    """
    rng = _rng(config.seed, scene, 1)
    origin = BASE_TIMESTAMP_US + (config.seed % 1000) * 86_400_000_000 + scene * 3_600_000_000
    lidar_period = round(1e6 / rig.LIDAR_HZ)
    n_lidar = int(config.duration * rig.LIDAR_HZ)
    lidar = origin + int(rng.integers(0, lidar_period)) + lidar_period * np.arange(n_lidar)
    frames = {'LIDAR_TOP': lidar}
    per_key = round(rig.LIDAR_HZ / rig.KEYFRAME_HZ)
    samples = lidar[::per_key]
    start, end = lidar[0], lidar[-1]
    for channel in rig.CAMERAS:
        # The LiDAR spins clockwise from the ego's rear; the camera fires as it passes.
        R = quat_to_matrix(rig.SENSOR_BY_CHANNEL[channel].rotation)
        yaw = np.arctan2(R[1, 2], R[0, 2])  # optical axis in the ego frame
        offset = round(((-yaw / (2 * np.pi)) % 1.0 - 0.5) * lidar_period)
        period = 1e6 / rig.CAMERA_HZ
        n = int((end - start) / period) + 1
        jitter = rng.integers(-500, 501, n)
        ticks = np.round(period * np.arange(n)).astype(np.int64)
        frames[channel] = start + offset + ticks + jitter
    for channel in rig.RADARS:
        period = 1e6 / rig.RADAR_HZ
        # Free-running: the first sweep comes up to one period before the first keyframe, so
        # the first keyframe's camera image already has a radar sweep before it.
        first = start - int(rng.integers(0, int(period)))
        n = int((end - first) / period) + 1
        jitter = rng.integers(-2000, 2001, n)
        frames[channel] = first + np.round(period * np.arange(n)).astype(np.int64) + jitter
    return Timeline(int(origin), samples, frames)


def owning_sample(samples: np.ndarray, timestamp: int) -> int:
    """Index of the sample a non-keyframe sweep belongs to, by nuScenes' rule.

    nuScenes attaches a sweep to the *following* keyframe sample (the first at or after its
    time; the last sample for sweeps after it), and the devkit's ``get_boxes`` interpolates a
    sweep's boxes between that sample and its predecessor, clamping the time into the
    interval. Attaching to the nearest sample instead freezes the boxes of the sweeps in the
    first half of each interval at the earlier keyframe.
    """
    return int(min(np.searchsorted(samples, timestamp, side='left'), len(samples) - 1))


def _pose_record(world: World, timeline: Timeline, timestamp: int, sd_token: str) -> dict:
    T = world.ego_transform(timeline.seconds(timestamp))
    yaw = float(np.arctan2(T[1, 0], T[0, 0]))
    return {'token': sd_token, 'timestamp': int(timestamp),
            'rotation': rig.yaw_to_quat(yaw), 'translation': [float(v) for v in T[:3, 3]]}


def _log_name(config: SimConfig, scene: int) -> str:
    return f'sim{config.seed}-{scene:04d}'


def _scene_name(config: SimConfig, scene: int) -> str:
    return f'scene-{scene:04d}'


def channel_frames(config: SimConfig, scene: int, channel: str) -> list[int]:
    """Return the indices of the frames of ``channel`` that the world contains.

    Cameras without sweeps get their keyframes only.
    """
    timeline = scene_timeline(config, scene)
    keys = timeline.keyframes(channel)
    if rig.SENSOR_BY_CHANNEL[channel].modality == 'camera' and channel not in config.camera_sweeps:
        return sorted(set(int(k) for k in keys))
    return list(range(len(timeline.frames[channel])))


def sensor_frame(config: SimConfig, scene: int, channel: str, index: int,
                 world: World | None = None, timeline: Timeline | None = None):
    """Simulate one frame of one sensor; returns the data as written to disk.

    Camera: :class:`.render.CameraFrame` (rgb, depth, box index); LiDAR: float32 ``(N, 5)``;
    radar: structured array of the 43-byte nuScenes layout.
    """
    world = world or scene_world(config, scene)
    timeline = timeline or scene_timeline(config, scene)
    sensor = rig.SENSOR_BY_CHANNEL[channel]
    t = timeline.seconds(timeline.frames[channel][index])
    T = world.ego_transform(t) @ rig.sensor_to_ego(sensor)
    channel_id = [s.channel for s in rig.SENSORS].index(channel)
    rng = _rng(config.seed, scene, 100 + channel_id, index)
    if sensor.modality == 'camera':
        K, height, width = rig.scaled_intrinsic(sensor, config.image_scale)
        return render_camera(world, t, T, K, height, width, rng)
    if sensor.modality == 'lidar':
        return lidar_sweep(world, t, T, rng)
    return radar_sweep(world, t, T, rng)


def write_channel(config: SimConfig, root: Path, scene: int, channel: str) -> dict:
    """Simulate and write every frame of one channel of one scene; return its table rows."""
    import cv2

    world = scene_world(config, scene)
    timeline = scene_timeline(config, scene)
    sensor = rig.SENSOR_BY_CHANNEL[channel]
    times = timeline.frames[channel]
    keys = timeline.keyframes(channel)
    key_of = {int(f): k for k, f in enumerate(keys)}
    frames = channel_frames(config, scene, channel)
    cs_token = token(config.seed, 'calibrated_sensor', channel)
    ext = {'camera': 'jpg', 'lidar': 'pcd.bin', 'radar': 'pcd'}[sensor.modality]
    height = width = 0
    if sensor.modality == 'camera':
        _, height, width = rig.scaled_intrinsic(sensor, config.image_scale)
    sample_data, ego_pose = [], []
    tokens = [token(config.seed, 'sample_data', scene, channel, j) for j in frames]
    for n, j in enumerate(frames):
        is_key = j in key_of
        folder = 'samples' if is_key else 'sweeps'
        filename = f'{folder}/{channel}/{_log_name(config, scene)}__{channel}__{times[j]}.{ext}'
        path = root / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        data = sensor_frame(config, scene, channel, j, world, timeline)
        if sensor.modality == 'camera':
            ok, buf = cv2.imencode('.jpg', data.rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert ok
            path.write_bytes(buf.tobytes())
        elif sensor.modality == 'lidar':
            data.tofile(path)
        else:
            write_radar_pcd(path, data)
        sample_index = key_of.get(j, owning_sample(timeline.samples, int(times[j])))
        sample_data.append({
            'token': tokens[n],
            'sample_token': token(config.seed, 'sample', scene, sample_index),
            'ego_pose_token': tokens[n],
            'calibrated_sensor_token': cs_token,
            'timestamp': int(times[j]),
            'fileformat': ext.split('.')[0],
            'is_key_frame': bool(is_key),
            'height': int(height),
            'width': int(width),
            'filename': filename,
            'prev': tokens[n - 1] if n > 0 else '',
            'next': tokens[n + 1] if n + 1 < len(frames) else '',
        })
        ego_pose.append(_pose_record(world, timeline, times[j], tokens[n]))
    return {'sample_data': sample_data, 'ego_pose': ego_pose}


def _inside_boxes(points: np.ndarray, centers: np.ndarray, half: np.ndarray, yaw: np.ndarray,
                  margin_xy: float = 0.0, ignore_z: bool = False) -> np.ndarray:
    """Count of ``points (N, 3)`` (world frame) inside each box, ``(B,)``."""
    counts = np.zeros(len(centers), dtype=np.int64)
    for b in range(len(centers)):
        d = points - centers[b]
        c, s = np.cos(yaw[b]), np.sin(yaw[b])
        x, y = c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]
        inside = (np.abs(x) <= half[b, 0] + margin_xy) & (np.abs(y) <= half[b, 1] + margin_xy)
        if not ignore_z:
            inside &= np.abs(d[:, 2]) <= half[b, 2]
        counts[b] = int(inside.sum())
    return counts


def _to_world(points: np.ndarray, T: np.ndarray) -> np.ndarray:
    return points @ T[:3, :3].T + T[:3, 3]


def write_scene_tables(config: SimConfig, scene: int) -> dict:
    """Rows of the scene, log, sample, sample_annotation and instance tables of one scene."""
    world = scene_world(config, scene)
    timeline = scene_timeline(config, scene)
    seed = config.seed
    name = _scene_name(config, scene)
    scene_token = token(seed, 'scene', scene)
    log_token = token(seed, 'log', scene)
    n_samples = len(timeline.samples)
    sample_tokens = [token(seed, 'sample', scene, k) for k in range(n_samples)]
    samples = [{'token': sample_tokens[k], 'timestamp': int(timeline.samples[k]),
                'prev': sample_tokens[k - 1] if k > 0 else '',
                'next': sample_tokens[k + 1] if k + 1 < n_samples else '',
                'scene_token': scene_token} for k in range(n_samples)]
    daytime = 'Night' if world.night else 'Day'
    scenes = [{'token': scene_token, 'log_token': log_token, 'nbr_samples': n_samples,
               'first_sample_token': sample_tokens[0], 'last_sample_token': sample_tokens[-1],
               'name': name,
               'description': f'{daytime}, synthetic urban street, parked cars, traffic, '
                              f'pedestrians, ego {world.ego_speed:.1f} m/s'}]
    logs = [{'token': log_token, 'logfile': _log_name(config, scene), 'vehicle': 'sim-ego',
             'date_captured': '2020-09-13', 'location': 'sim-city'}]

    # Annotations: every annotated box near the ego with at least one LiDAR or radar return.
    lidar = rig.SENSOR_BY_CHANNEL['LIDAR_TOP']
    lidar_keys = timeline.keyframes('LIDAR_TOP')
    annotated = np.flatnonzero(world.instance >= 0)
    tracks: dict[int, list[dict]] = {}
    for k in range(n_samples):
        t = timeline.seconds(timeline.samples[k])
        centers, half, yaw = world.boxes_at(t)
        ego_pos, _, _ = world.ego_state(t)
        near = annotated[np.linalg.norm(centers[annotated, :2] - ego_pos[:2], axis=1)
                         < ANNOTATION_RADIUS]
        if len(near) == 0:
            continue
        sweep = sensor_frame(config, scene, 'LIDAR_TOP', int(lidar_keys[k]), world, timeline)
        T_lidar = world.ego_transform(t) @ rig.sensor_to_ego(lidar)
        n_lidar = _inside_boxes(_to_world(sweep[:, :3].astype(np.float64), T_lidar),
                                centers[near], half[near], yaw[near])
        n_radar = np.zeros(len(near), dtype=np.int64)
        for channel in config.radars:
            j = int(timeline.keyframes(channel)[k])
            pts = sensor_frame(config, scene, channel, j, world, timeline)
            t_r = timeline.seconds(timeline.frames[channel][j])
            T_radar = world.ego_transform(t_r) @ rig.sensor_to_ego(rig.SENSOR_BY_CHANNEL[channel])
            xyz = np.column_stack([pts['x'], pts['y'], pts['z']]).astype(np.float64)
            n_radar += _inside_boxes(_to_world(xyz, T_radar), centers[near], half[near],
                                     yaw[near], margin_xy=0.5, ignore_z=True)
        # Visibility: share of the box's corners (pulled in by 20 %) and centre in LiDAR sight.
        corners = box_corners(centers[near], half[near] * 0.8, yaw[near])  # (B, 8, 3)
        probe = np.concatenate([corners, centers[near][:, None]], axis=1)  # (B, 9, 3)
        origin = T_lidar[:3, 3]
        rays = probe.reshape(-1, 3) - origin
        dist = np.linalg.norm(rays, axis=1)
        t_hit, i_hit = trace_rays(origin, rays / dist[:, None], centers, half, yaw)
        owner = np.repeat(near, 9)
        seen = ((i_hit == owner) | (t_hit > dist - 0.2)).reshape(-1, 9).mean(axis=1)
        level = np.digitize(seen, [0.4, 0.6, 0.8]) + 1  # 1..4
        for i, b in enumerate(near):
            if n_lidar[i] + n_radar[i] == 0:
                continue
            kind = KINDS[world.kind[b]]
            speed = float(np.hypot(*world.velocity[b]))
            if kind.texture == 'vehicle':
                attr = 'vehicle.moving' if speed > 0.3 else 'vehicle.parked'
            elif kind.texture == 'person':
                attr = 'pedestrian.moving' if speed > 0.3 else 'pedestrian.standing'
            else:
                attr = None
            tracks.setdefault(int(world.instance[b]), []).append({
                'sample_token': sample_tokens[k],
                'instance': int(world.instance[b]),
                'category': kind.category,
                'visibility_token': str(level[i]),
                'attribute_tokens': [token(seed, 'attribute', attr)] if attr else [],
                'translation': [float(v) for v in centers[b]],
                # nuScenes sizes are width, length, height.
                'size': [float(2 * half[b, 1]), float(2 * half[b, 0]), float(2 * half[b, 2])],
                'rotation': rig.yaw_to_quat(float(yaw[b])),
                'num_lidar_pts': int(n_lidar[i]),
                'num_radar_pts': int(n_radar[i]),
            })
    annotations, instances = [], []
    for inst, anns in sorted(tracks.items()):
        inst_token = token(seed, 'instance', scene, inst)
        ann_tokens = [token(seed, 'sample_annotation', scene, inst, a['sample_token'])
                      for a in anns]
        for i, a in enumerate(anns):
            category = a.pop('category')
            a.pop('instance')
            annotations.append({'token': ann_tokens[i], 'instance_token': inst_token, **a,
                                'prev': ann_tokens[i - 1] if i > 0 else '',
                                'next': ann_tokens[i + 1] if i + 1 < len(anns) else ''})
        instances.append({'token': inst_token, 'category_token': token(seed, 'category', category),
                          'nbr_annotations': len(anns), 'first_annotation_token': ann_tokens[0],
                          'last_annotation_token': ann_tokens[-1]})
    return {'scene': scenes, 'log': logs, 'sample': samples, 'sample_annotation': annotations,
            'instance': instances}


def static_tables(config: SimConfig, log_tokens: list[str]) -> dict:
    """Return the tables all scenes share.

    These are sensor, calibrated_sensor, category, attribute, visibility and map.
    """
    seed = config.seed
    channels = [s for s in rig.SENSORS
                if s.channel in (*config.cameras, 'LIDAR_TOP', *config.radars)]
    sensors, calibrated = [], []
    for s in channels:
        sensor_token = token(seed, 'sensor', s.channel)
        sensors.append({'token': sensor_token, 'channel': s.channel, 'modality': s.modality})
        intrinsic = []
        if s.modality == 'camera':
            K, _, _ = rig.scaled_intrinsic(s, config.image_scale)
            intrinsic = K.tolist()
        calibrated.append({'token': token(seed, 'calibrated_sensor', s.channel),
                           'sensor_token': sensor_token, 'translation': list(s.translation),
                           'rotation': list(s.rotation), 'camera_intrinsic': intrinsic})
    categories = [{'token': token(seed, 'category', n), 'name': n, 'description': d, 'index': i}
                  for i, (n, d) in enumerate(CATEGORIES)]
    attributes = [{'token': token(seed, 'attribute', n), 'name': n, 'description': d}
                  for n, d in ATTRIBUTES]
    visibility = [{'token': t, 'level': level, 'description': f'visibility of whole object is '
                   f'between {level[1:].replace("-", " and ")} %'} for t, level in VISIBILITY]
    map_token = token(seed, 'map')
    maps = [{'token': map_token, 'log_tokens': log_tokens, 'category': 'semantic_prior',
             'filename': f'maps/{map_token}.png'}]
    return {'sensor': sensors, 'calibrated_sensor': calibrated, 'category': categories,
            'attribute': attributes, 'visibility': visibility, 'map': maps}


def write_map(root: Path, filename: str, x_max: float) -> None:
    """Semantic prior mask at 0.1 m a pixel: drivable road and sidewalks."""
    import cv2

    resolution = 0.1
    height = int(2 * ROAD_Y / resolution)
    width = int(np.ceil(x_max / resolution))
    mask = np.zeros((height, width), dtype=np.uint8)
    # Image row 0 is the map's largest y (the devkit flips y).
    half = ROAD_HALF_WIDTH + SIDEWALK_WIDTH
    r0, r1 = int((ROAD_Y - half) / resolution), int((ROAD_Y + half) / resolution)
    mask[height - r1:height - r0] = 255
    path = root / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode('.png', mask)
    assert ok
    path.write_bytes(buf.tobytes())


def splits(config: SimConfig) -> dict:
    """Train/val/test scene names: about 70/15/15, at least one train scene."""
    names = [_scene_name(config, i) for i in range(config.scenes)]
    n = len(names)
    n_val = 0 if n < 2 else max(1, round(0.15 * n))
    n_test = 0 if n < 3 else max(1, round(0.15 * n))
    n_train = n - n_val - n_test
    return {'train': names[:n_train],
            'val': names[n_train:n_train + n_val], 'test': names[n_train + n_val:]}


def _run_unit(args: tuple) -> tuple[str, int, dict]:
    config, root, scene, unit = args
    if unit == 'tables':
        return unit, scene, write_scene_tables(config, scene)
    return unit, scene, write_channel(config, root, scene, unit)


def build_world(config: SimConfig, out: str | os.PathLike, workers: int = 1,
                progress: bool = True) -> Path:
    """Simulate every scene and write the dataset under ``out``; return the dataroot."""
    from tqdm import tqdm

    config.validate()
    root = Path(out)
    table_dir = root / config.version
    if table_dir.exists() and any(table_dir.iterdir()):
        raise FileExistsError(f'{table_dir} already holds tables; choose another --out')
    root.mkdir(parents=True, exist_ok=True)
    channels = (*config.cameras, 'LIDAR_TOP', *config.radars)
    units = [(config, root, s, u) for s in range(config.scenes) for u in ('tables', *channels)]
    results = []
    bar = tqdm(total=len(units), desc='rcdepth sim', unit='stream', disable=not progress)
    if workers > 1:
        import multiprocessing

        with multiprocessing.get_context('fork').Pool(workers) as pool:
            for result in pool.imap_unordered(_run_unit, units):
                results.append(result)
                bar.update()
    else:
        for unit in units:
            results.append(_run_unit(unit))
            bar.update()
    bar.close()
    # Merge in a fixed order so the tables do not depend on which worker finished first.
    order = {u: i for i, u in enumerate(('tables', *channels))}
    results.sort(key=lambda r: (r[1], order[r[0]]))
    tables: dict[str, list] = {}
    for _, _, rows in results:
        for name, recs in rows.items():
            tables.setdefault(name, []).extend(recs)
    static = static_tables(config, [log['token'] for log in tables['log']])
    tables.update(static)
    x_max = max(scene_world(config, s).x_max for s in range(config.scenes))
    write_map(root, static['map'][0]['filename'], x_max + 10.0)
    table_dir.mkdir(parents=True, exist_ok=True)
    for name in ('category', 'attribute', 'visibility', 'instance', 'sensor',
                 'calibrated_sensor', 'ego_pose', 'log', 'scene', 'sample', 'sample_data',
                 'sample_annotation', 'map'):
        with open(table_dir / f'{name}.json', 'w') as f:
            json.dump(tables.get(name, []), f, indent=0)
    with open(root / 'splits.json', 'w') as f:
        json.dump(splits(config), f, indent=2)
    with open(root / 'sim.json', 'w') as f:
        json.dump({**config.__dict__, 'cameras': list(config.cameras),
                   'camera_sweeps': list(config.camera_sweeps),
                   'radars': list(config.radars)}, f, indent=2)
    return root
