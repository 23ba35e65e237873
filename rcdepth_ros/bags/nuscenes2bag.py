"""nuScenes (or the synthetic world, which has the same format) -> rosbag2 MCAP bag.

Every sample_data record of the chosen scenes (keyframes and sweeps) becomes one message
whose log time and header stamp are the sensor time:

- cameras: ``/<CAM>/image_rect_compressed`` (sensor_msgs/CompressedImage, the original JPEG
  bytes, not re-encoded; nuScenes images are rectified) and ``/<CAM>/camera_info``;
- radars: ``/<RADAR>`` (sensor_msgs/PointCloud2, the 18-field 43-byte nuScenes layout);
- LiDAR: ``/LIDAR_TOP`` (PointCloud2, float32 x y z intensity ring, as in the .pcd.bin);
- ``/tf`` (map -> base_link at every ego pose) and ``/odom`` (nav_msgs/Odometry in ``map``,
  twist in ``base_link`` by central finite differences of the ego poses);
- ``/tf_static`` (base_link -> every sensor, offered transient-local so ``ros2 bag play``
  latches it) once per scene whose rig differs from the previous one (once for one rig).

frame_ids are the sensor channel names (nuScenes camera frames are already optical frames).
The calibration sidecar ``<bag>/calibration.yaml`` (format of
:mod:`rcdepth_ros.calibration`) holds the rig of the first scene; ``rcdepth_node`` reads
it as ``extrinsics.calibration_path``. ``metadata.yaml`` lists only the MCAP file, so
rosbag2 readers ignore the sidecar.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import geometry, msgs
from ..calibration import Calibration, SensorCalibration, calibration_to_dict
from ..errors import BadArgument, BadInputFile, MissingData
from . import io

__all__ = ['convert', 'CALIBRATION_FILE', 'BASE_FRAME', 'MAP_FRAME', 'image_topic',
           'camera_info_topic', 'LIDAR_DTYPE']

CALIBRATION_FILE = 'calibration.yaml'
BASE_FRAME = 'base_link'
MAP_FRAME = 'map'
# nuScenes LiDAR .pcd.bin: five float32 per point (the ring index is stored as a float).
LIDAR_DTYPE = np.dtype([('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('intensity', '<f4'),
                        ('ring', '<f4')])

_T = {
    'image': 'sensor_msgs/msg/CompressedImage', 'info': 'sensor_msgs/msg/CameraInfo',
    'cloud': 'sensor_msgs/msg/PointCloud2', 'tf': 'tf2_msgs/msg/TFMessage',
    'odom': 'nav_msgs/msg/Odometry',
}
# Write order of messages with the same stamp: static tf first, images after their info.
_ORDER = {'tf_static': 0, 'tf': 1, 'odom': 2, 'info': 3, 'image': 4, 'cloud': 5}


def image_topic(camera: str) -> str:
    """Topic of a camera's compressed images in bags written here."""
    return f'/{camera}/image_rect_compressed'


def camera_info_topic(camera: str) -> str:
    """Topic of a camera's camera_info in bags written here."""
    return f'/{camera}/camera_info'


@dataclass(frozen=True)
class _Item:
    """One message to write: ``kind`` picks the encoder, ``ref`` its input."""

    stamp_ns: int
    kind: str
    topic: str
    ref: Any


def _types(name: str) -> Any:
    return io.TYPESTORE.types[name]


# ----------------------------------------------------------------------------- message builders

def _vector3(xyz) -> Any:
    x, y, z = (float(v) for v in xyz)
    return _types('geometry_msgs/msg/Vector3')(x=x, y=y, z=z)


def _quaternion(wxyz) -> Any:
    w, x, y, z = (float(v) for v in wxyz)
    return _types('geometry_msgs/msg/Quaternion')(x=x, y=y, z=z, w=w)


def _transform_stamped(stamp_ns: int, parent: str, child: str, rotation, translation) -> Any:
    transform = _types('geometry_msgs/msg/Transform')(translation=_vector3(translation),
                                                      rotation=_quaternion(rotation))
    return _types('geometry_msgs/msg/TransformStamped')(
        header=io.header(stamp_ns, parent), child_frame_id=child, transform=transform)


def _tf_message(transforms: list[Any]) -> Any:
    return _types('tf2_msgs/msg/TFMessage')(transforms=transforms)


def _rotation_vector(R: np.ndarray) -> np.ndarray:
    """Axis * angle (3,) of a rotation matrix."""
    q = geometry.matrix_to_quat(R)  # (w, x, y, z), w >= 0
    v = q[1:]
    norm = float(np.linalg.norm(v))
    if norm < 1e-12:
        return 2.0 * v
    return v / norm * (2.0 * np.arctan2(norm, q[0]))


def _odometry(stamp_ns: int, poses: list[tuple[int, np.ndarray]], i: int) -> Any:
    """Odometry at pose ``i``: pose in map, twist in base_link by central differences."""
    T = poses[i][1]
    lo, hi = max(i - 1, 0), min(i + 1, len(poses) - 1)
    linear = angular = np.zeros(3)
    if hi > lo:
        dt = (poses[hi][0] - poses[lo][0]) * 1e-9
        T_lo, T_hi = poses[lo][1], poses[hi][1]
        linear = T[:3, :3].T @ (T_hi[:3, 3] - T_lo[:3, 3]) / dt  # (3,) in base_link
        angular = _rotation_vector(T_lo[:3, :3].T @ T_hi[:3, :3]) / dt
    pose = _types('geometry_msgs/msg/Pose')(
        position=_types('geometry_msgs/msg/Point')(x=float(T[0, 3]), y=float(T[1, 3]),
                                                   z=float(T[2, 3])),
        orientation=_quaternion(geometry.matrix_to_quat(T[:3, :3])))
    twist = _types('geometry_msgs/msg/Twist')(linear=_vector3(linear),
                                              angular=_vector3(angular))
    return _types('nav_msgs/msg/Odometry')(
        header=io.header(stamp_ns, MAP_FRAME), child_frame_id=BASE_FRAME,
        pose=_types('geometry_msgs/msg/PoseWithCovariance')(pose=pose,
                                                            covariance=np.zeros(36)),
        twist=_types('geometry_msgs/msg/TwistWithCovariance')(twist=twist,
                                                              covariance=np.zeros(36)))


def _image_format(data: bytes, path: Path) -> str:
    if data[:3] == b'\xff\xd8\xff':
        return 'jpeg'
    if data[:8] == b'\x89PNG\r\n\x1a\n':
        return 'png'
    raise BadInputFile(f'{path} is neither JPEG nor PNG')


def _cloud_message(arr: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
    return msgs.build_message(_types(_T['cloud']), msgs.array_to_pointcloud2_fields(arr),
                              point_field_cls=_types('sensor_msgs/msg/PointField'),
                              header=io.header(stamp_ns, frame_id))


def read_lidar_bin(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a nuScenes LiDAR ``.pcd.bin`` as a structured :data:`LIDAR_DTYPE` array ``(N,)``."""
    size = os.path.getsize(path)
    if size % LIDAR_DTYPE.itemsize:
        raise BadInputFile(f'LiDAR file {path} has {size} bytes, not a multiple of '
                           f'{LIDAR_DTYPE.itemsize} (truncated?)')
    return np.fromfile(path, dtype=LIDAR_DTYPE)


class _Encoder:
    """Turns :class:`_Item` s into rosbags messages, reading sensor files on demand."""

    def __init__(self, dataroot: Path) -> None:
        self.dataroot = dataroot

    def __call__(self, item: _Item) -> Any:
        kind, ref, stamp = item.kind, item.ref, item.stamp_ns
        if kind == 'image':
            path = self.dataroot / ref['filename']
            data = path.read_bytes()
            return _types(_T['image'])(header=io.header(stamp, ref['channel']),
                                       format=_image_format(data, path),
                                       data=np.frombuffer(data, dtype=np.uint8))
        if kind == 'info':
            roi = _types('sensor_msgs/msg/RegionOfInterest')(
                x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
            fields = msgs.camera_info_fields(ref['K'], ref['height'], ref['width'])
            return msgs.build_message(_types(_T['info']), fields, roi=roi,
                                      header=io.header(stamp, ref['channel']))
        if kind == 'cloud':
            path = self.dataroot / ref['filename']
            arr = read_lidar_bin(path) if ref['modality'] == 'lidar' else \
                msgs.read_radar_pcd(path)
            return _cloud_message(arr, stamp, ref['channel'])
        if kind == 'tf':
            return _tf_message([_transform_stamped(stamp, MAP_FRAME, BASE_FRAME,
                                                   ref['rotation'], ref['translation'])])
        if kind == 'odom':
            return _odometry(stamp, ref[0], ref[1])
        if kind == 'tf_static':
            return _tf_message([
                _transform_stamped(stamp, BASE_FRAME, s.frame_id, s.rotation, s.translation)
                for s in ref.sensors.values()])
        raise AssertionError(f'unknown item kind {kind}')


# ----------------------------------------------------------------------------- scene planning

def _records_by_scene(nusc: Any, scenes: list[dict]) -> dict[str, list[dict]]:
    """All sample_data records (keyframes and sweeps) of each scene, in time order."""
    scene_of: dict[str, str] = {}
    for scene in scenes:
        token = scene['first_sample_token']
        while token:
            scene_of[token] = scene['name']
            token = nusc.get('sample', token)['next']
    out: dict[str, list[dict]] = {scene['name']: [] for scene in scenes}
    for sd in nusc.sample_data:  # one pass: sweeps hang off the sample nearest in time
        name = scene_of.get(sd['sample_token'])
        if name is not None:
            out[name].append(sd)
    for records in out.values():
        records.sort(key=lambda sd: (sd['timestamp'], sd['token']))
    return out


def _channel(nusc: Any, sd: dict) -> tuple[str, str]:
    calib = nusc.get('calibrated_sensor', sd['calibrated_sensor_token'])
    sensor = nusc.get('sensor', calib['sensor_token'])
    return sensor['channel'], sensor['modality']


def _scene_calibration(nusc: Any, records: list[dict]) -> Calibration:
    sensors: dict[str, SensorCalibration] = {}
    for sd in records:
        channel, modality = _channel(nusc, sd)
        if channel in sensors:
            continue
        calib = nusc.get('calibrated_sensor', sd['calibrated_sensor_token'])
        camera = modality == 'camera'
        sensors[channel] = SensorCalibration(
            name=channel, frame_id=channel, parent_frame=BASE_FRAME,
            translation=tuple(float(v) for v in calib['translation']),
            rotation=tuple(float(v) for v in calib['rotation']),
            K=np.asarray(calib['camera_intrinsic'], dtype=np.float64) if camera else None,
            width=int(sd['width']) if camera else None,
            height=int(sd['height']) if camera else None)
    return Calibration(base_frame=BASE_FRAME, sensors=dict(sorted(sensors.items())))


def _scene_items(nusc: Any, records: list[dict], calibration: Calibration | None,
                 dataroot: Path) -> list[_Item]:
    """Messages of one scene; ``calibration`` given = emit /tf_static at its start."""
    items: list[_Item] = []
    poses: dict[int, dict] = {}
    for sd in records:
        stamp = int(sd['timestamp']) * 1000
        channel, modality = _channel(nusc, sd)
        path = dataroot / sd['filename']
        if not path.is_file():
            raise MissingData(f'missing sensor file {path} (scene data incomplete?)')
        ref = {'filename': sd['filename'], 'channel': channel, 'modality': modality}
        if modality == 'camera':
            calib = nusc.get('calibrated_sensor', sd['calibrated_sensor_token'])
            info = {'channel': channel, 'K': np.asarray(calib['camera_intrinsic'], float),
                    'height': int(sd['height']), 'width': int(sd['width'])}
            items.append(_Item(stamp, 'info', camera_info_topic(channel), info))
            items.append(_Item(stamp, 'image', image_topic(channel), ref))
        elif modality in ('radar', 'lidar'):
            items.append(_Item(stamp, 'cloud', f'/{channel}', ref))
        else:
            raise ValueError(f'sample_data {sd["token"]}: unknown modality {modality!r}')
        pose = nusc.get('ego_pose', sd['ego_pose_token'])
        poses.setdefault(int(pose['timestamp']) * 1000, pose)
    ordered = sorted(poses.items())
    matrices = [(stamp, geometry.record_transform(p)) for stamp, p in ordered]
    for i, (stamp, pose) in enumerate(ordered):
        items.append(_Item(stamp, 'tf', '/tf', pose))
        items.append(_Item(stamp, 'odom', '/odom', (matrices, i)))
    if calibration is not None and items:
        first = min(item.stamp_ns for item in items)
        items.append(_Item(first, 'tf_static', '/tf_static', calibration))
    items.sort(key=lambda it: (it.stamp_ns, _ORDER[it.kind], it.topic))
    return items


def _load_nuscenes(dataroot: Path, version: str) -> Any:
    if not dataroot.is_dir():
        raise MissingData(f'nuScenes dataroot not found: {dataroot}')
    if not (dataroot / version).is_dir():
        raise MissingData(f'no nuScenes tables {version!r} under {dataroot}')
    from nuscenes.nuscenes import NuScenes

    try:
        return NuScenes(version=version, dataroot=str(dataroot), verbose=False)
    except (AssertionError, KeyError, OSError, ValueError) as exc:
        raise BadInputFile(f'cannot load nuScenes {version} from {dataroot}: '
                           f'{type(exc).__name__}: {exc}') from None


def _select_scenes(nusc: Any, names: Sequence[str] | None) -> list[dict]:
    by_name = {s['name']: s for s in nusc.scene}
    if names is None:
        chosen = list(nusc.scene)
    else:
        unknown = [n for n in names if n not in by_name]
        if unknown:
            known = ', '.join(sorted(by_name)[:5]) + (', ...' if len(by_name) > 5 else '')
            raise BadArgument(f'unknown scene(s) {", ".join(unknown)}; the dataset has '
                              f'{len(by_name)} scenes ({known})')
        chosen = [by_name[n] for n in dict.fromkeys(names)]
    if not chosen:
        raise BadArgument('no scenes to convert')
    return chosen


# ----------------------------------------------------------------------------- conversion

def convert(dataroot: str | os.PathLike[str], version: str, out: str | os.PathLike[str],
            scenes: Sequence[str] | None = None, overwrite: bool = False,
            progress: bool = True) -> dict[str, Any]:
    """Write the scenes ``scenes`` (names; None = all) of a nuScenes dataroot to bag ``out``.

    Returns a summary: ``bag``, ``calibration`` (sidecar path), ``scenes``, ``topics``
    (``{topic: message count}``), ``messages``, ``start_ns``, ``end_ns``, ``rigs`` (number of
    distinct sensor rigs; the sidecar holds the first).
    """
    from tqdm import tqdm
    import yaml

    dataroot, out = Path(dataroot).expanduser(), Path(out).expanduser()
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise BadArgument(f'{out} already exists (use --overwrite to replace it)')
    if not out.parent.is_dir():
        raise MissingData(f'output folder does not exist: {out.parent}')
    nusc = _load_nuscenes(dataroot, version)
    chosen = _select_scenes(nusc, scenes)

    plans = []
    for name, records in _records_by_scene(nusc, chosen).items():
        if not records:
            raise ValueError(f'scene {name} has no sample_data')
        plans.append((name, records, _scene_calibration(nusc, records)))
    plans.sort(key=lambda p: p[1][0]['timestamp'])
    for (name_a, rec_a, _), (name_b, rec_b, _) in zip(plans, plans[1:]):
        if rec_b[0]['timestamp'] <= rec_a[-1]['timestamp']:
            raise BadArgument(f'scenes {name_a} and {name_b} overlap in time; convert them to '
                              'separate bags')

    items: list[_Item] = []
    rigs: list[Calibration] = []
    for name, records, calibration in plans:
        changed = not rigs or calibration_to_dict(calibration) != calibration_to_dict(rigs[-1])
        if changed:
            rigs.append(calibration)
        items.extend(_scene_items(nusc, records, calibration if changed else None, dataroot))

    topics: dict[str, int] = {}
    encode = _Encoder(dataroot)
    with io.open_writer(out, overwrite=overwrite) as writer:
        writer.set_custom_data('rcdepth_ros.source',
                               f'nuScenes {version}: {", ".join(p[0] for p in plans)}')
        connections: dict[str, Any] = {}
        kinds = {'image': _T['image'], 'info': _T['info'], 'cloud': _T['cloud'],
                 'tf': _T['tf'], 'tf_static': _T['tf'], 'odom': _T['odom']}
        for item in items:
            if item.topic not in connections:
                connections[item.topic] = io.add_topic(writer, item.topic, kinds[item.kind],
                                                       latched=item.kind == 'tf_static')
        for item in tqdm(items, desc='nuscenes2bag', unit='msg', disable=not progress):
            msgtype = kinds[item.kind]
            writer.write(connections[item.topic], item.stamp_ns,
                         io.serialize(encode(item), msgtype))
            topics[item.topic] = topics.get(item.topic, 0) + 1
        sidecar = Path(writer.path) / CALIBRATION_FILE
        sidecar.write_text(yaml.safe_dump(calibration_to_dict(rigs[0]), sort_keys=False))
    return {
        'bag': str(out), 'calibration': str(out / CALIBRATION_FILE),
        'scenes': [p[0] for p in plans], 'topics': dict(sorted(topics.items())),
        'messages': len(items), 'start_ns': items[0].stamp_ns, 'end_ns': items[-1].stamp_ns,
        'rigs': len(rigs),
    }
