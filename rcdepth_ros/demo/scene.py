"""The demo's view of one nuScenes scene: camera keyframes with radar and single-scan LiDAR GT.

Everything comes from the dataroot through the nuscenes-devkit tables, with the same chain as
``rcdepth prepare`` (SPEC 4.1): radar and LiDAR are moved sensor -> ego(t_sensor) -> global ->
ego(t_cam) -> camera, LiDAR is z-buffered into a depth image (nearest wins, depth > 1 m).
Keyframe stamps are the sample_data timestamps in nanoseconds, which ``nuscenes2bag`` writes
into the message headers, so they match the node's outputs one to one.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path

import numpy as np

from .. import geometry
from ..errors import BadArgument, BadInputFile, MissingData
from ..sweeps import DEFAULT_MAX_SWEEPS, DEFAULT_WINDOW_S


@dataclass(frozen=True)
class Keyframe:
    """One camera keyframe.

    ``K`` float64 (3, 3); ``lidar_depth`` float32 (H, W) metres, 0 = no LiDAR return;
    ``radar_points`` float32 (N, 6) ``[x, y, z, rcs, vx, vy]`` with xyz in the camera frame:
    the sweeps the node pairs with the image (:func:`rcdepth_ros.sweeps.select_sweeps` under
    the node's ``radar.window`` / ``radar.max_sweeps``), every point, no state filter.
    """

    token: str
    stamp_ns: int
    image_path: Path
    K: np.ndarray
    height: int
    width: int
    lidar_depth: np.ndarray
    radar_points: np.ndarray

    def rgb(self) -> np.ndarray:
        """Read the camera image, uint8 (H, W, 3) RGB."""
        import cv2

        bgr = cv2.imread(str(self.image_path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise BadInputFile(f'camera image unreadable: {self.image_path}')
        return np.ascontiguousarray(bgr[:, :, ::-1])


def table_versions(dataroot: str | Path) -> list[str]:
    """Table folders (``v1.0-*``) under a nuScenes dataroot that hold ``scene.json``."""
    root = Path(dataroot)
    return sorted(p.name for p in root.glob('v1.0-*') if (p / 'scene.json').is_file())


def resolve_version(dataroot: str | Path, version: str | None) -> str:
    """Check ``version`` (or pick the only one present); one-line errors otherwise."""
    root = Path(dataroot)
    if not root.is_dir():
        raise MissingData(f'nuScenes dataroot not found: {root}')
    found = table_versions(root)
    if version:
        if version not in found:
            raise MissingData(f'no {version} tables in {root} (found: '
                              f'{", ".join(found) or "none"})')
        return version
    if len(found) != 1:
        raise BadArgument(f'{root} holds {len(found)} table versions '
                          f'({", ".join(found) or "none"}); choose one with --version')
    return found[0]


def scene_names(dataroot: str | Path, version: str) -> list[str]:
    """Scene names of a version, read from ``scene.json`` alone (fast, no devkit)."""
    path = Path(dataroot) / version / 'scene.json'
    try:
        scenes = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInputFile(f'cannot read {path}: {exc}') from None
    return [s['name'] for s in scenes]


def check_scene(dataroot: str | Path, version: str, scene: str | None) -> str:
    """Return ``scene`` if the version has it (None: the first scene); ValueError otherwise."""
    names = scene_names(dataroot, version)
    if not names:
        raise MissingData(f'{Path(dataroot) / version} has no scenes')
    if scene is None:
        return names[0]
    if scene not in names:
        shown = ', '.join(names[:8]) + (', ...' if len(names) > 8 else '')
        raise BadArgument(f'unknown scene {scene!r} in {version} ({len(names)} scenes: {shown})')
    return scene


def _records(nusc, sd: dict) -> tuple[dict, dict]:
    return (nusc.get('calibrated_sensor', sd['calibrated_sensor_token']),
            nusc.get('ego_pose', sd['ego_pose_token']))


def _keyframe(nusc, sample: dict, camera: str, radar: str, window_s: float,
              max_sweeps: int) -> Keyframe:
    # The nuScenes-table side of the one sweep-selection rule, as preparation walks it.
    from ..data.nuscenes_prep import (
        _radar_sweeps_for_image,
        load_lidar_points,
        load_radar_points,
    )

    root = Path(nusc.dataroot)
    cam_sd = nusc.get('sample_data', sample['data'][camera])
    cam_calib, cam_pose = _records(nusc, cam_sd)
    K = geometry.validate_intrinsics(cam_calib['camera_intrinsic'])
    height, width = int(cam_sd['height']), int(cam_sd['width'])

    lidar_sd = nusc.get('sample_data', sample['data']['LIDAR_TOP'])
    lidar_calib, lidar_pose = _records(nusc, lidar_sd)
    T_cam_from_lidar = geometry.nuscenes_sensor_to_camera(lidar_calib, lidar_pose, cam_pose,
                                                          cam_calib)
    lidar = load_lidar_points(root / lidar_sd['filename'])  # (N, 3)
    lidar_depth = geometry.lidar_depth_image(lidar, T_cam_from_lidar, K, height, width)

    sweeps = []
    if radar in sample['data']:
        for radar_sd in _radar_sweeps_for_image(nusc, sample['data'][radar],
                                                int(cam_sd['timestamp']),
                                                int(round(window_s * 1e6)), max_sweeps):
            radar_calib, radar_pose = _records(nusc, radar_sd)
            sweeps.append((load_radar_points(root / radar_sd['filename']),  # (N, 6)
                           geometry.nuscenes_sensor_to_camera(radar_calib, radar_pose,
                                                              cam_pose, cam_calib)))
    radar_points = geometry.sweeps_to_camera(sweeps)  # (N, 6)
    return Keyframe(token=sample['token'], stamp_ns=int(cam_sd['timestamp']) * 1000,
                    image_path=root / cam_sd['filename'], K=K, height=height, width=width,
                    lidar_depth=lidar_depth, radar_points=radar_points)


def load_keyframes(dataroot: str | Path, version: str, scene: str, camera: str = 'CAM_FRONT',
                   radar: str = 'RADAR_FRONT', window_s: float = DEFAULT_WINDOW_S,
                   max_sweeps: int = DEFAULT_MAX_SWEEPS) -> list[Keyframe]:
    """Every ``camera`` keyframe of ``scene`` in time order, with its radar and LiDAR GT.

    ``window_s`` / ``max_sweeps``: the node's ``radar.window`` / ``radar.max_sweeps``.
    """
    import contextlib
    import io

    from nuscenes.nuscenes import NuScenes

    with contextlib.redirect_stdout(io.StringIO()):  # the devkit prints its table sizes
        nusc = NuScenes(version=version, dataroot=str(dataroot), verbose=False)
    record = next((s for s in nusc.scene if s['name'] == scene), None)
    if record is None:
        raise BadArgument(f'unknown scene {scene!r} in {version}')
    keyframes = []
    token = record['first_sample_token']
    while token:
        sample = nusc.get('sample', token)
        if camera not in sample['data'] or 'LIDAR_TOP' not in sample['data']:
            raise MissingData(f'sample {token} of {scene} has no {camera} or LIDAR_TOP')
        keyframes.append(_keyframe(nusc, sample, camera, radar, window_s, max_sweeps))
        token = sample['next']
    return keyframes


SURROUND_CAMERAS = ('CAM_FRONT_LEFT', 'CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_BACK_LEFT',
                    'CAM_BACK', 'CAM_BACK_RIGHT')
SURROUND_RADARS = ('RADAR_FRONT', 'RADAR_FRONT_LEFT', 'RADAR_FRONT_RIGHT', 'RADAR_BACK_LEFT',
                   'RADAR_BACK_RIGHT')


@dataclass(frozen=True)
class SurroundSample:
    """One sample seen from above, in the ego frame at the LiDAR keyframe time (x forward).

    ``T_ref_from_camera`` (4, 4) per camera (each camera's own ego pose through the global
    frame, as preparation moves sensors); ``lidar`` float32 (N, 3) LIDAR_TOP points.
    """

    T_ref_from_camera: dict[str, np.ndarray]
    lidar: np.ndarray


def load_surround_sample(dataroot: str | Path, version: str, scene: str, index: int,
                         cameras: tuple[str, ...] = SURROUND_CAMERAS) -> SurroundSample:
    """Camera poses and LiDAR of the ``index``-th sample of ``scene`` (bird's-eye view)."""
    import contextlib
    import io

    from nuscenes.nuscenes import NuScenes

    from ..data.nuscenes_prep import load_lidar_points

    with contextlib.redirect_stdout(io.StringIO()):
        nusc = NuScenes(version=version, dataroot=str(dataroot), verbose=False)
    record = next(s for s in nusc.scene if s['name'] == scene)
    token = record['first_sample_token']
    for _ in range(index):
        token = nusc.get('sample', token)['next']
    sample = nusc.get('sample', token)
    lidar_sd = nusc.get('sample_data', sample['data']['LIDAR_TOP'])
    lidar_calib, lidar_pose = _records(nusc, lidar_sd)
    T_ref_from_global = geometry.invert_transform(geometry.record_transform(lidar_pose))
    poses = {}
    for camera in cameras:
        sd = nusc.get('sample_data', sample['data'][camera])
        calib, pose = _records(nusc, sd)
        poses[camera] = (T_ref_from_global @ geometry.record_transform(pose)
                         @ geometry.record_transform(calib))
    lidar = load_lidar_points(Path(nusc.dataroot) / lidar_sd['filename'])  # (N, 3) sensor
    lidar = geometry.points_to_camera(lidar, geometry.record_transform(lidar_calib))  # ego
    return SurroundSample(T_ref_from_camera=poses, lidar=lidar[:, :3])
