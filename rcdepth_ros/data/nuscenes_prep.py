"""nuScenes preparation (``rcdepth prepare``): radar images and LiDAR ground truth per keyframe.

Protocol (SPEC 4.1, as RadarNet / CaFNet / LiRCDepth): every CAM_FRONT keyframe of the split's
scenes except each scene's last sample gives one sample with

- the radar image: RADAR_FRONT, 1 sweep, devkit filters disabled, chain radar -> ego(t_radar)
  -> global -> ego(t_cam) -> camera, depth >= 1 m, 1-pixel border, channels ``[z, RCS, vx,
  vy]`` raw (radar frame), nearer point wins;
- single-scan GT: the LIDAR_TOP keyframe, z-buffered, depth >= 1 m;
- accumulated GT: LIDAR_TOP sweeps within +-N of the keyframe, each motion-compensated into
  the keyframe camera. Ego-vehicle points (:data:`EGO_BOX`, ego frame) are removed from every
  sweep; points inside the annotated boxes of moving objects (classes
  :data:`.gt.MOVABLE_CATEGORIES`, boxes interpolated to the sweep time by the devkit's
  ``get_boxes``, inflated by ``box_scale``) are removed from every sweep but the keyframe's
  own, so a moving object appears once, where it is now. An object counts as moving in a
  sweep when its box centre there is more than ``moving_threshold`` metres from its keyframe
  box (or it has no keyframe box); parked vehicles and standing people stay, so their
  surfaces get dense and background points seen from other positions do not show through
  them. ``moving_threshold=0`` removes every movable-class box. Nearer depth wins; then
  Delaunay linear interpolation, 0 outside the hull;
- the teacher's confidence target from the interpolated GT (:func:`.gt.confidence_target`);
  the +-50 x +-150 pixel window is defined at 900x1600 and scaled with the image; a radar
  point belongs to a box when inside it inflated by ``radar_box_scale`` (radar has no
  elevation and range noise, so it often sits just outside the annotated box).

Splits: ``splits.json`` at the dataroot (or ``<dataroot>/<version>/``, the devkit's place)
naming scenes per split wins when present (the synthetic world); else v1.0-trainval
train/val are the standard splits (``create_splits_scenes``), v1.0-test is ``test``, and
v1.0-mini maps train/val to mini_train/mini_val.

The output format is documented in :mod:`.storage`. Work is parallel (spawn-safe worker
processes, each with its own ``NuScenes``), resumable (finished samples are skipped) and
shardable (``shard=(i, n)`` keeps the tokens whose SHA-1 is i modulo n).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import hashlib
import json
import os
from pathlib import Path
import shutil
import struct
import time
from typing import NamedTuple

import numpy as np

from .. import geometry
from ..errors import BadArgument
from ..sweeps import DEFAULT_MAX_SWEEPS, DEFAULT_WINDOW_S, select_sweeps
from . import gt
from .storage import PreparedSample, is_complete, sample_dir, write_sample

# Ego vehicle (Renault Zoe, 4.08 x 1.73 x 1.56 m) in the ego frame (origin: rear axle on the
# ground, x forward), with a margin: [x_min, y_min, z_min], [x_max, y_max, z_max] metres.
EGO_BOX = (np.array([-1.3, -1.2, -0.5]), np.array([3.6, 1.2, 2.3]))


_RADAR_COLUMNS = [0, 1, 2, 5, 6, 7]  # devkit rows x, y, z, rcs, vx, vy -> core (N, 6)


@dataclass(frozen=True)
class PrepareOptions:
    """What ``prepare`` computes; saved in the manifest."""

    camera: str = 'CAM_FRONT'
    radars: tuple[str, ...] = ('RADAR_FRONT',)
    radar_sweeps: int = DEFAULT_MAX_SWEEPS
    radar_window: float = DEFAULT_WINDOW_S
    radar_filters: bool = False
    accumulate_sweeps: int = 80
    min_depth: float = 1.0
    remove_movable: bool = True
    moving_threshold: float = 0.25
    box_scale: float = 1.1
    radar_box_scale: float = 1.2
    confidence_window: tuple[int, int] = field(default=gt.CONFIDENCE_WINDOW)
    confidence_tolerance: float = gt.CONFIDENCE_TOLERANCE
    interpolation: str = 'triangle'


class SampleError(ValueError):
    """A sample that cannot be prepared (missing or corrupt file); it is skipped and listed."""


# Data errors: a missing or unreadable file (OSError) or one our readers reject (SampleError,
# raised at the read sites from whatever the file parser says). Programming errors
# (AssertionError, KeyError, IndexError, shape errors) are not caught: they fail the run.
SAMPLE_ERRORS = (OSError, SampleError)

# What the devkit's file parsers raise for a corrupt file (caught only around those calls).
_PARSER_ERRORS = (ValueError, AssertionError, IndexError, struct.error, EOFError)


# ---------------------------------------------------------------- splits and sample lists

def _custom_splits(dataroot: str | Path, version: str) -> dict | None:
    for path in (Path(dataroot) / 'splits.json', Path(dataroot) / version / 'splits.json'):
        if path.is_file():
            return json.loads(path.read_text())
    return None


ALL_SCENES = 'all'  # the split name for every scene of a version


def split_scene_names(nusc, split: str) -> list[str]:
    """Return the names of the split's scenes present in ``nusc``, in split order.

    ``'all'`` (unless a splits.json defines it) is every scene of the table, in table order.
    """
    from nuscenes.utils.splits import create_splits_scenes

    version = nusc.version
    custom = _custom_splits(nusc.dataroot, version)
    if split == ALL_SCENES and (custom is None or ALL_SCENES not in custom):
        return [s['name'] for s in nusc.scene]
    if custom is not None:
        if split not in custom:
            raise BadArgument(f'split {split!r} not in splits.json (has {sorted(custom)})')
        names = list(custom[split])
    else:
        standard = create_splits_scenes()
        if version == 'v1.0-mini':
            key = {'train': 'mini_train', 'val': 'mini_val'}.get(split, split)
        elif version == 'v1.0-test':
            key = split if split == 'test' else None
        elif 'trainval' in version:
            key = split if split in ('train', 'val') else None
        else:
            key = split
        if key not in standard:
            raise BadArgument(f'no split {split!r} for version {version!r} and no splits.json')
        names = standard[key]
    present = {s['name'] for s in nusc.scene}
    chosen = [n for n in names if n in present]
    if not chosen:
        raise BadArgument(f'none of the {len(names)} scenes of split {split!r} is in {version}')
    return chosen


def split_sample_tokens(nusc, scene_names: list[str]) -> list[str]:
    """Return the keyframe sample tokens of the scenes, each scene's last sample skipped."""
    by_name = {s['name']: s for s in nusc.scene}
    tokens = []
    for name in scene_names:
        token = by_name[name]['first_sample_token']
        while token:
            sample = nusc.get('sample', token)
            if sample['next']:  # the last sample has no successor: skipped by protocol
                tokens.append(token)
            token = sample['next']
    return tokens


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``'i/n'`` (0 <= i < n) into ``(i, n)``."""
    try:
        index, count = (int(x) for x in text.split('/'))
    except ValueError:
        raise BadArgument(f'shard must look like i/n, got {text!r}') from None
    if count < 1 or not 0 <= index < count:
        raise BadArgument(f'shard {text!r}: need 0 <= i < n')
    return index, count


def shard_tokens(tokens: list[str], index: int, count: int) -> list[str]:
    """Keep the tokens of shard ``index`` of ``count`` by a stable hash (same on every host)."""
    def bucket(token: str) -> int:
        return int(hashlib.sha1(token.encode()).hexdigest(), 16) % count
    return [t for t in tokens if bucket(t) == index]


# ---------------------------------------------------------------- per-sample computation

def _sweep_chain(nusc, sd_token: str, before: int, after: int) -> list[dict]:
    """Return sample_data records from ``before`` previous to ``after`` next, in time order."""
    key = nusc.get('sample_data', sd_token)
    older, newer = [], []
    record = key
    while len(older) < before and record['prev']:
        record = nusc.get('sample_data', record['prev'])
        older.append(record)
    record = key
    while len(newer) < after and record['next']:
        record = nusc.get('sample_data', record['next'])
        newer.append(record)
    return older[::-1] + [key] + newer


def _pose_chain(nusc, sd: dict) -> tuple[dict, dict]:
    return (nusc.get('calibrated_sensor', sd['calibrated_sensor_token']),
            nusc.get('ego_pose', sd['ego_pose_token']))


def load_radar_points(path: str | Path, filters: bool = False) -> np.ndarray:
    """Read a nuScenes radar PCD; returns ``float32 (N, 6)`` ``[x, y, z, rcs, vx, vy]``.

    ``filters=False`` keeps every point (the same states as ``RadarPointCloud.disable_filters``),
    without touching the devkit's class-level defaults.
    """
    from nuscenes.utils.data_classes import RadarPointCloud

    if filters:
        states = dict(invalid_states=[0], dynprop_states=list(range(7)), ambig_states=[3])
    else:
        states = dict(invalid_states=list(range(18)), dynprop_states=list(range(8)),
                      ambig_states=list(range(5)))
    try:
        cloud = RadarPointCloud.from_file(str(path), **states)
    except _PARSER_ERRORS as exc:
        raise SampleError(f'radar file {Path(path).name} unreadable: {exc}') from exc
    return cloud.points[_RADAR_COLUMNS].T.astype(np.float32)  # (N, 6)


def load_lidar_points(path: str | Path) -> np.ndarray:
    """Read a nuScenes ``.pcd.bin`` (float32 x 5); returns ``float32 (N, 3)`` xyz."""
    size = os.path.getsize(path)
    if size % 20:
        raise SampleError(f'LiDAR file {Path(path).name} has {size} bytes, '
                          'not a multiple of 20 (truncated?)')
    from nuscenes.utils.data_classes import LidarPointCloud

    try:
        cloud = LidarPointCloud.from_file(str(path))
    except _PARSER_ERRORS as exc:
        raise SampleError(f'LiDAR file {Path(path).name} unreadable: {exc}') from exc
    return cloud.points[:3].T.astype(np.float32)  # (N, 3)


def _boxes_in_frame(boxes, T_frame_from_global: np.ndarray, prefixes: tuple[str, ...],
                    keep=None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Return ``(center, R, wlh)`` of the devkit boxes of the given classes in another frame.

    ``keep`` is an optional predicate on the devkit box.
    """
    out = []
    for box in boxes:
        if box.name is None or not gt.category_matches(box.name, prefixes):
            continue
        if keep is not None and not keep(box):
            continue
        center = T_frame_from_global[:3, :3] @ box.center + T_frame_from_global[:3, 3]
        rotation = T_frame_from_global[:3, :3] @ box.rotation_matrix
        out.append((center, rotation, np.asarray(box.wlh, np.float64)))
    return out


@dataclass(frozen=True)
class _Sweep:
    """One LiDAR sweep as ``accumulate_lidar`` needs it.

    Cached: neighbouring keyframes share most of their sweeps.
    """

    points_ego: np.ndarray  # float64 (N, 3) in the sweep's ego frame, ego vehicle removed
    T_global_from_ego: np.ndarray  # (4, 4)
    T_ego_from_lidar: np.ndarray  # (4, 4)
    timestamp: int
    # Movable-class boxes at the sweep time (devkit interpolation), global frame:
    # instance token -> (center (3,), R (3, 3), wlh (3,)).
    movable: dict
    # instance token -> indices into points_ego inside its box (inflated by box_scale).
    inside: dict


class _SweepCache:
    """A small LRU of :class:`_Sweep` per sample_data token (one per worker process)."""

    def __init__(self, capacity: int = 96) -> None:
        self.capacity = capacity
        self._items: dict[tuple[str, str, float], _Sweep] = {}

    def get(self, nusc, sd: dict, box_scale: float) -> _Sweep:
        key = (str(nusc.dataroot), sd['token'], float(box_scale))
        item = self._items.pop(key, None)
        if item is None:
            item = _load_sweep(nusc, sd, box_scale)
        self._items[key] = item  # most recently used last
        while len(self._items) > self.capacity:
            self._items.pop(next(iter(self._items)))
        return item


_SWEEPS = _SweepCache()


def _load_sweep(nusc, sd: dict, box_scale: float) -> _Sweep:
    points = load_lidar_points(Path(nusc.dataroot) / sd['filename'])  # (N, 3)
    calib, pose = _pose_chain(nusc, sd)
    T_ego_from_lidar = geometry.record_transform(calib)
    points_ego = geometry.transform_points(T_ego_from_lidar, points.astype(np.float64))
    low, high = EGO_BOX
    in_ego_box = np.ones(len(points_ego), bool)
    for axis in range(3):
        column = points_ego[:, axis]
        in_ego_box &= (column >= low[axis]) & (column <= high[axis])
    movable = {}
    for box in nusc.get_boxes(sd['token']):
        if box.name is None or not gt.category_matches(box.name, gt.MOVABLE_CATEGORIES):
            continue
        instance = nusc.get('sample_annotation', box.token)['instance_token']
        movable[instance] = (np.asarray(box.center, np.float64), box.rotation_matrix,
                             np.asarray(box.wlh, np.float64))
    points_ego = points_ego[~in_ego_box]
    # Ordered by whole metres of x (a stable radix sort), so that the points near a box are a
    # slice found by binary search.
    x_bins = np.clip(np.floor(points_ego[:, 0]), -32000, 32000).astype(np.int16)
    order = np.argsort(x_bins, kind='stable')
    points_ego, x_bins = points_ego[order], x_bins[order]
    T_global_from_ego = geometry.record_transform(pose)
    T_ego_from_global = geometry.invert_transform(T_global_from_ego)
    # Which points each object's box holds does not depend on the keyframe: computed once,
    # on the slices of points whose x is within the boxes' bounding spheres.
    instances = list(movable)
    boxes = [_box_to_frame(movable[i], T_ego_from_global) for i in instances]
    radius = np.array([0.5 * box_scale * float(np.linalg.norm(box[2])) for box in boxes])
    centers_x = np.array([box[0][0] for box in boxes]).reshape(-1)
    spans = np.stack([np.searchsorted(x_bins, np.floor(centers_x - radius), 'left'),
                      np.searchsorted(x_bins, np.floor(centers_x + radius), 'right')], 1)
    hits = gt.points_in_each_box(points_ego, boxes, scale=box_scale, spans=spans)
    inside = {i: h for i, h in zip(instances, hits) if h.size}
    return _Sweep(points_ego, T_global_from_ego, T_ego_from_lidar, int(sd['timestamp']),
                  movable, inside)


def _box_to_frame(box: tuple, T_frame_from_global: np.ndarray) -> tuple:
    center, rotation, wlh = box
    return (T_frame_from_global[:3, :3] @ center + T_frame_from_global[:3, 3],
            T_frame_from_global[:3, :3] @ rotation, wlh)


class Accumulated(NamedTuple):
    """LiDAR sweeps accumulated into a keyframe camera (:func:`accumulate_lidar`)."""

    points: np.ndarray  # float64 (N, 3) camera frame, in the image only
    sweep_index: np.ndarray  # int32 (N,) 0 = keyframe, +-k the k-th sweep after/before
    skipped: list  # unreadable sweep files, with the reason
    moving_boxes: list  # keyframe boxes (center, R, wlh), camera frame, of objects that move


def accumulate_lidar(nusc, lidar_sd_token: str, cam_sd: dict, sweeps: int,
                     options: PrepareOptions) -> Accumulated:
    """Motion-compensate LIDAR_TOP sweeps within +-``sweeps`` into the keyframe camera.

    Returns :class:`Accumulated`. Only points that land in the image (depth > ``min_depth``,
    1-pixel border) are kept. The keyframe's own file must be readable (it raises otherwise).

    With ``remove_movable``, for every sweep but the keyframe's own:

    - points inside the boxes of objects that moved (box at the sweep time more than
      ``moving_threshold`` from the keyframe box, or no keyframe box) are removed: the object
      was elsewhere then;
    - points whose line of sight from the keyframe camera passes through the keyframe box of
      an object that moves within the window are removed: the object stands there now and
      hides them (else background seen in other sweeps lands on the moving object's pixels);
    - sweeps outside the scene's first..last keyframe are not used: the devkit clamps their
      box time to the interval, so moving boxes come back frozen there.
    """
    cam_calib, cam_pose = _pose_chain(nusc, cam_sd)
    K = np.asarray(cam_calib['camera_intrinsic'], np.float64)  # (3, 3)
    height, width = int(cam_sd['height']), int(cam_sd['width'])
    T_cam_from_global = geometry.invert_transform(geometry.record_transform(cam_pose)
                                                  @ geometry.record_transform(cam_calib))
    chain = _sweep_chain(nusc, lidar_sd_token, sweeps, sweeps)
    key_pos = next(i for i, sd in enumerate(chain) if sd['token'] == lidar_sd_token)
    key = _SWEEPS.get(nusc, chain[key_pos], options.box_scale)
    if options.remove_movable:
        scene = nusc.get('scene', nusc.get('sample', chain[key_pos]['sample_token'])
                         ['scene_token'])
        t_first = nusc.get('sample', scene['first_sample_token'])['timestamp']
        t_last = nusc.get('sample', scene['last_sample_token'])['timestamp']
        chain = [sd for sd in chain if t_first <= sd['timestamp'] <= t_last
                 or sd['token'] == lidar_sd_token]
        key_pos = next(i for i, sd in enumerate(chain) if sd['token'] == lidar_sd_token)

    loaded, skipped = [], []
    for pos, sd in enumerate(chain):
        try:
            loaded.append((pos - key_pos, _SWEEPS.get(nusc, sd, options.box_scale)))
        except SAMPLE_ERRORS as exc:
            if pos == key_pos:
                raise
            skipped.append(f'{sd["filename"]}: {exc}')

    def moved_instances(sweep: _Sweep) -> list[str]:
        """Return the instances whose box then is off their keyframe box (or not annotated).

        Their points in that sweep are where the object no longer is.
        """
        if options.moving_threshold <= 0:
            return list(sweep.movable)
        moved = []
        for instance, box in sweep.movable.items():
            now = key.movable.get(instance)
            if now is None or np.linalg.norm(box[0] - now[0]) > options.moving_threshold:
                moved.append(instance)
        return moved

    moved_by_sweep = {id(sweep): moved_instances(sweep) for _, sweep in loaded}
    # Keyframe objects that move within the window hide what is behind them now.
    moving_now = sorted({i for moved in moved_by_sweep.values() for i in moved
                         if i in key.movable}) if options.remove_movable else []
    blockers = [_box_to_frame(key.movable[i], T_cam_from_global) for i in moving_now]

    chunks, index = [], []
    for offset, sweep in loaded:
        T_cam_from_ego = T_cam_from_global @ sweep.T_global_from_ego
        # Depth first: about half of a 360-degree sweep is behind the camera.
        keep = sweep.points_ego @ T_cam_from_ego[2, :3] + T_cam_from_ego[2, 3] > options.min_depth
        if options.remove_movable and offset != 0:
            for instance in moved_by_sweep[id(sweep)]:  # the object was elsewhere then
                keep[sweep.inside.get(instance, [])] = False
        points = geometry.transform_points(T_cam_from_ego, sweep.points_ego[keep])  # (n, 3)
        uv, depth = geometry.project_points(points, K)
        points = points[geometry.in_image_mask(uv, depth, height, width,
                                               min_depth=options.min_depth, border=1)]
        chunks.append(points)
        index.append(np.full(len(points), offset, np.int32))
    points, sweep_index = np.concatenate(chunks, 0), np.concatenate(index, 0)
    if blockers:  # one pass over every other-sweep point
        other = np.flatnonzero(sweep_index != 0)
        hidden = gt.rays_blocked_by_boxes(points[other], blockers, scale=options.box_scale)
        keep = np.ones(len(points), bool)
        keep[other[hidden]] = False
        points, sweep_index = points[keep], sweep_index[keep]
    return Accumulated(points, sweep_index, skipped, blockers)


def _radar_points_in_camera(nusc, sample: dict, cam_sd: dict,
                            options: PrepareOptions) -> tuple[np.ndarray, np.ndarray]:
    """Return radar points ``(N, 6)`` with xyz in the camera frame, and their global xyz.

    Per radar, the sweeps are chosen by the one rule the node serves with
    (:func:`rcdepth_ros.sweeps.select_sweeps`): the newest ``radar_sweeps`` sweeps stamped in
    ``[t_cam - radar_window, t_cam]``. Never the keyframe's radar sample itself when that is
    after the camera: a live node cannot have it.
    """
    cam_calib, cam_pose = _pose_chain(nusc, cam_sd)
    T_global_from_cam = (geometry.record_transform(cam_pose)
                         @ geometry.record_transform(cam_calib))
    t_cam = int(cam_sd['timestamp'])
    window_us = int(round(options.radar_window * 1e6))
    clouds = []
    for channel in options.radars:
        if channel not in sample['data']:
            raise SampleError(f'sample has no {channel}')
        for sd in _radar_sweeps_for_image(nusc, sample['data'][channel], t_cam, window_us,
                                          options.radar_sweeps):
            points = load_radar_points(Path(nusc.dataroot) / sd['filename'],
                                       options.radar_filters)  # (N, 6)
            calib, pose = _pose_chain(nusc, sd)
            T_cam_from_radar = geometry.nuscenes_sensor_to_camera(calib, pose, cam_pose,
                                                                  cam_calib)
            clouds.append(geometry.points_to_camera(points, T_cam_from_radar))  # (N, 6)
    points_cam = np.concatenate(clouds, 0) if clouds else np.zeros((0, 6), np.float32)
    return points_cam, geometry.transform_points(T_global_from_cam, points_cam[:, :3])


def _radar_sweeps_for_image(nusc, sd_token: str, t_cam: int, window_us: int,
                            max_sweeps: int) -> list[dict]:
    """Return the radar sample_data records paired with an image at ``t_cam`` (microseconds)."""
    record = nusc.get('sample_data', sd_token)
    while record['next'] and record['timestamp'] <= t_cam:  # forward to the first after t_cam
        record = nusc.get('sample_data', record['next'])
    candidates = []
    while True:  # backward until older than the window
        if record['timestamp'] < t_cam - window_us:
            break
        candidates.append(record)
        if not record['prev']:
            break
        record = nusc.get('sample_data', record['prev'])
    chosen = select_sweeps([r['timestamp'] for r in candidates], t_cam, window_us, max_sweeps)
    return [candidates[i] for i in chosen]


def _read_image_size(path: Path) -> tuple[int, int]:
    import cv2

    if not path.is_file():
        raise SampleError(f'camera image missing: {path.name}')
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SampleError(f'camera image unreadable: {path.name}')
    return image.shape[0], image.shape[1]


def prepare_sample(nusc, sample_token: str, options: PrepareOptions) -> PreparedSample:
    """Compute radar, single-scan GT, accumulated/interpolated GT and confidence of a keyframe.

    Raises :class:`SampleError` (or the reader's own error) for a missing or corrupt file.
    """
    sample = nusc.get('sample', sample_token)
    if options.camera not in sample['data'] or 'LIDAR_TOP' not in sample['data']:
        raise SampleError(f'sample has no {options.camera} or LIDAR_TOP')
    cam_sd = nusc.get('sample_data', sample['data'][options.camera])
    cam_calib, cam_pose = _pose_chain(nusc, cam_sd)
    K = np.asarray(cam_calib['camera_intrinsic'], np.float64)  # (3, 3)
    height, width = int(cam_sd['height']), int(cam_sd['width'])
    image_path = Path(nusc.dataroot) / cam_sd['filename']
    if _read_image_size(image_path) != (height, width):
        raise SampleError(f'camera image {image_path.name} is not {height}x{width}')

    # Radar: rasterised image (nearer wins), stored as its occupied pixels.
    radar_cam, radar_global = _radar_points_in_camera(nusc, sample, cam_sd, options)
    identity = np.eye(4)
    radar_img = geometry.radar_image(radar_cam, identity, K, height, width,
                                     min_depth=options.min_depth, border=1)  # (4, H, W)
    rows, cols = np.nonzero(radar_img[0] > 0)
    radar_rc = np.stack([rows, cols], 1).astype(np.int32)  # (M, 2)
    radar_features = radar_img[:, rows, cols].T.astype(np.float32)  # (M, 4)

    # Single-scan LiDAR GT.
    lidar_sd = nusc.get('sample_data', sample['data']['LIDAR_TOP'])
    lidar_points = load_lidar_points(Path(nusc.dataroot) / lidar_sd['filename'])  # (N, 3)
    lidar_calib, lidar_pose = _pose_chain(nusc, lidar_sd)
    T_cam_from_lidar = geometry.nuscenes_sensor_to_camera(lidar_calib, lidar_pose, cam_pose,
                                                          cam_calib)
    depth_single = geometry.lidar_depth_image(lidar_points, T_cam_from_lidar, K, height, width,
                                              min_depth=options.min_depth)  # (H, W)

    # Accumulated and interpolated GT.
    accumulated = accumulate_lidar(nusc, lidar_sd['token'], cam_sd, options.accumulate_sweeps,
                                   options)
    acc_cam, skipped_sweeps = accumulated.points, accumulated.skipped
    depth_acc = geometry.lidar_depth_image(acc_cam, identity, K, height, width,
                                           min_depth=options.min_depth)  # (H, W)
    depth_dense = gt.interpolate_depth(depth_acc, options.interpolation)  # (H, W)
    # Where a moving object stands now, depth behind it is background seen at other times
    # (or blended across its silhouette by the interpolation): no dense target there.
    behind = gt.pixels_behind_boxes(depth_dense, accumulated.moving_boxes, K,
                                    scale=options.box_scale)
    depth_dense[behind] = 0.0

    # Confidence target: regions from the keyframe boxes containing each in-image radar point.
    uv, depth = geometry.project_points(radar_cam[:, :3], K)  # (N, 2), (N,)
    inside = geometry.in_image_mask(uv, depth, height, width, min_depth=options.min_depth,
                                    border=1)
    T_cam_from_global = geometry.invert_transform(geometry.record_transform(cam_pose)
                                                  @ geometry.record_transform(cam_calib))
    boxes_global = _boxes_in_frame(nusc.get_boxes(cam_sd['token']), np.eye(4),
                                   gt.CONFIDENCE_BOX_CATEGORIES)
    in_image_global = radar_global[inside]  # (M, 3)
    regions: list = [None] * len(in_image_global)
    hits_by_box = gt.points_in_each_box(in_image_global, boxes_global,
                                        scale=options.radar_box_scale)
    for box, hits in zip(boxes_global, hits_by_box):
        todo = [i for i in hits if regions[i] is None]  # first box wins
        if todo:
            corners = geometry.transform_points(T_cam_from_global, gt.box_corners(box))
            region = gt.box_region_2d(corners, K, height, width)
            for i in todo:
                regions[i] = region
    point_rc = np.stack(geometry.pixel_indices(uv[inside]), 1)  # (M, 2) row, col
    window = (max(1, round(options.confidence_window[0] * height / 900)),
              max(1, round(options.confidence_window[1] * width / 1600)))
    confidence = gt.confidence_target(depth_dense, point_rc, depth[inside], regions,
                                      window=window,
                                      tolerance=options.confidence_tolerance)

    meta = {
        'token': sample_token,
        'scene': nusc.get('scene', sample['scene_token'])['name'],
        'timestamp': int(cam_sd['timestamp']),
        'image': cam_sd['filename'],
        'dataroot': str(Path(nusc.dataroot).resolve()),
        'height': height,
        'width': width,
        'K': K.tolist(),
        'camera': options.camera,
        'radars': list(options.radars),
        'radar_points': int(radar_rc.shape[0]),
        'radar_in_boxes': int(sum(r is not None for r in regions)),
        'lidar_points': int(np.count_nonzero(depth_single)),
        'accumulated_points': int(np.count_nonzero(depth_acc)),
        'accumulated_sweeps': 2 * options.accumulate_sweeps + 1,
        'skipped_sweeps': skipped_sweeps,
    }
    return PreparedSample(meta=meta, depth_single=depth_single, depth_dense=depth_dense,
                          depth_accumulated=depth_acc, confidence=confidence,
                          radar_rc=radar_rc, radar_features=radar_features)


def process_sample(nusc, token: str, options: PrepareOptions, out: str | Path,
                   split: str) -> dict:
    """Prepare and write one sample; returns ``{token, status, reason, warnings}``.

    A missing or corrupt file makes the status ``'skipped'`` with the reason; never raises for
    bad data.
    """
    try:
        prepared = prepare_sample(nusc, token, options)
    except SAMPLE_ERRORS as exc:
        return {'token': token, 'status': 'skipped', 'reason': f'{type(exc).__name__}: {exc}',
                'warnings': []}
    write_sample(out, split, prepared)
    return {'token': token, 'status': 'ok', 'reason': '',
            'warnings': prepared.meta['skipped_sweeps']}


# ---------------------------------------------------------------- the run

_WORKER: dict = {}


def _init_worker(dataroot: str, version: str, options: PrepareOptions, out: str,
                 split: str) -> None:
    from nuscenes import NuScenes

    _WORKER.update(nusc=NuScenes(version=version, dataroot=dataroot, verbose=False),
                   options=options, out=out, split=split)


def _work(token: str) -> dict:
    return process_sample(_WORKER['nusc'], token, _WORKER['options'], _WORKER['out'],
                          _WORKER['split'])


def manifest_name(shard: tuple[int, int] | None) -> str:
    """Return the manifest file name of a run (one per shard)."""
    if shard is None or shard[1] == 1:
        return 'manifest.json'
    return f'manifest.shard-{shard[0]}-of-{shard[1]}.json'


def run_prepare(dataroot: str | Path, version: str, split: str, out: str | Path,
                options: PrepareOptions = PrepareOptions(), workers: int = 0,
                shard: tuple[int, int] | None = None, progress: bool = True,
                nusc=None) -> dict:
    """Prepare a split; returns the manifest (also written to ``out/<split>/``).

    ``workers`` <= 1 runs in this process; more starts that many spawn-context processes.
    Samples already complete under ``out`` are not recomputed (``counts['new'] == 0`` on a
    re-run).
    """
    import multiprocessing

    from nuscenes import NuScenes
    from tqdm import tqdm

    dataroot = str(Path(dataroot).resolve())
    if not (Path(dataroot) / version).is_dir():
        raise FileNotFoundError(f'no nuScenes tables {version!r} under {dataroot}')
    if nusc is None:
        nusc = NuScenes(version=version, dataroot=dataroot, verbose=False)
    started = time.time()
    scenes = split_scene_names(nusc, split)
    tokens = split_sample_tokens(nusc, scenes)
    total = len(tokens)
    if shard is not None:
        tokens = shard_tokens(tokens, *shard)
    todo = [t for t in tokens if not is_complete(sample_dir(out, split, t))]
    (Path(out) / split).mkdir(parents=True, exist_ok=True)
    for token in todo:  # temp folders of an interrupted run of these samples
        for stale in (Path(out) / split).glob(f'.{token}.tmp*'):
            shutil.rmtree(stale, ignore_errors=True)

    results = []
    bar = tqdm(total=len(todo), desc=f'prepare {split}', unit='sample', disable=not progress)
    if workers <= 1 or len(todo) <= 1:
        for token in todo:
            results.append(process_sample(nusc, token, options, out, split))
            bar.update()
    else:
        context = multiprocessing.get_context('spawn')
        with context.Pool(workers, initializer=_init_worker,
                          initargs=(dataroot, version, options, str(out), split)) as pool:
            # Runs of neighbouring keyframes go to one worker: they share most of their LiDAR
            # sweeps, which the worker's sweep cache then reads and annotates once.
            chunk = max(1, min(8, len(todo) // (4 * workers)))
            for result in pool.imap_unordered(_work, todo, chunksize=chunk):
                results.append(result)
                bar.update()
    bar.close()

    skipped = sorted((r for r in results if r['status'] == 'skipped'),
                     key=lambda r: r['token'])
    manifest = {
        'format': 1,
        'dataroot': dataroot,
        'version': version,
        'split': split,
        'shard': list(shard) if shard else None,
        'scenes': scenes,
        'options': asdict(options),
        'counts': {
            'split_samples': total,
            'shard_samples': len(tokens),
            'already_done': len(tokens) - len(todo),
            'new': sum(r['status'] == 'ok' for r in results),
            'skipped': len(skipped),
            'complete': sum(is_complete(sample_dir(out, split, t)) for t in tokens),
        },
        'skipped': [{'token': r['token'], 'reason': r['reason']} for r in skipped],
        'warnings': [{'token': r['token'], 'reason': w} for r in results for w in r['warnings']],
        'seconds': round(time.time() - started, 2),
    }
    path = Path(out) / split / manifest_name(shard)
    tmp = path.with_suffix('.json.tmp')
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, path)
    return manifest
