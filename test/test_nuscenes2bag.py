"""nuscenes2bag: bag round trip against the source files, metadata, and safe overwriting."""

from collections import Counter, defaultdict
import importlib
import json
from pathlib import Path
import sys

import numpy as np
import pytest
from rclpy.serialization import deserialize_message
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import Reader
import yaml

from rcdepth_ros import cli, geometry, msgs
from rcdepth_ros.bags import io, nuscenes2bag
from rcdepth_ros.calibration import load_calibration

nuscenes = pytest.importorskip('nuscenes.nuscenes')

SCALE = 0.15
RADAR_FIELDS = list(msgs.NUSCENES_RADAR_DTYPE.names)


@pytest.fixture(scope='module')
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('world')
    assert cli.main(['sim', '--out', str(root), '--scenes', '1', '--seed', '3',
                     '--duration', '2', '--image-scale', str(SCALE), '--cameras', 'CAM_FRONT',
                     '--camera-sweeps', 'CAM_FRONT', '--night-fraction', '0',
                     '--workers', '1', '--no-progress']) == 0
    return root


@pytest.fixture(scope='module')
def nusc(world):
    return nuscenes.NuScenes(version='v1.0-sim', dataroot=str(world), verbose=False)


@pytest.fixture(scope='module')
def converted(world, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp('bags') / 'scene0'
    summary = nuscenes2bag.convert(world, 'v1.0-sim', out, scenes=['scene-0000'],
                                   progress=False)
    return out, summary


def _channel(nusc, sd) -> str:
    calib = nusc.get('calibrated_sensor', sd['calibrated_sensor_token'])
    return nusc.get('sensor', calib['sensor_token'])['channel']


def _rclpy_class(msgtype: str):
    package, kind, name = msgtype.split('/')
    try:
        return getattr(importlib.import_module(f'{package}.{kind}'), name)
    except ImportError:
        return None


def _stamp(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _assert_pose(rotation_xyzw, translation, record):
    x, y, z, w = rotation_xyzw
    q = np.array([w, x, y, z])
    q_ref = np.asarray(record['rotation'])
    np.testing.assert_allclose(q * np.sign(q @ q_ref), q_ref, atol=1e-9)
    np.testing.assert_allclose(translation, record['translation'], atol=1e-9)


def test_round_trip_equals_source_files(world, nusc, converted):
    bag, summary = converted
    records = {(_channel(nusc, sd), int(sd['timestamp']) * 1000): sd for sd in nusc.sample_data}
    per_channel = Counter(channel for channel, _ in records)
    poses = {int(p['timestamp']) * 1000: p for p in nusc.ego_pose}
    calibs = {_channel(nusc, sd): nusc.get('calibrated_sensor', sd['calibrated_sensor_token'])
              for sd in nusc.sample_data}

    # Counts per topic equal the sample_data counts (keyframes and sweeps).
    expected = {'/tf': len(poses), '/odom': len(poses), '/tf_static': 1}
    for channel, n in per_channel.items():
        if channel.startswith('CAM'):
            expected[f'/{channel}/image_rect_compressed'] = n
            expected[f'/{channel}/camera_info'] = n
        else:
            expected[f'/{channel}'] = n
    assert summary['topics'] == expected
    assert {t: c for t, (_, c) in io.bag_topics(bag).items()} == expected
    assert per_channel['CAM_FRONT'] > 4  # camera sweeps are in, not only keyframes

    stamps = defaultdict(list)
    checked = Counter()
    for topic, msgtype, log_ns, raw in io.read_messages(bag):
        stamps[topic].append(log_ns)
        cls = _rclpy_class(msgtype)
        if cls is None:  # tf2_msgs has no pip wheel: check it through rosbags
            assert msgtype == 'tf2_msgs/msg/TFMessage'
            msg = io.deserialize(raw, msgtype)
            for tf in msg.transforms:
                assert _stamp(tf.header) == log_ns
                t, r = tf.transform.translation, tf.transform.rotation
                if topic == '/tf':
                    assert (tf.header.frame_id, tf.child_frame_id) == ('map', 'base_link')
                    _assert_pose((r.x, r.y, r.z, r.w), (t.x, t.y, t.z), poses[log_ns])
                else:
                    assert tf.header.frame_id == 'base_link'
                    _assert_pose((r.x, r.y, r.z, r.w), (t.x, t.y, t.z),
                                 calibs[tf.child_frame_id])
            if topic == '/tf_static':
                assert {tf.child_frame_id for tf in msg.transforms} == set(calibs)
            checked[topic] += 1
            continue
        msg = deserialize_message(raw, cls)
        assert _stamp(msg.header) == log_ns
        if topic == '/odom':
            assert (msg.header.frame_id, msg.child_frame_id) == ('map', 'base_link')
            p, q = msg.pose.pose.position, msg.pose.pose.orientation
            _assert_pose((q.x, q.y, q.z, q.w), (p.x, p.y, p.z), poses[log_ns])
            assert msg.twist.twist.linear.x > 1.0  # the ego drives forward ...
            assert abs(msg.twist.twist.linear.y) < 0.2 * msg.twist.twist.linear.x  # ... ahead
            checked[topic] += 1
            continue
        channel = msg.header.frame_id
        sd = records[(channel, log_ns)]
        path = world / sd['filename']
        if topic.endswith('image_rect_compressed'):
            assert msg.format == 'jpeg'
            assert bytes(msg.data) == path.read_bytes()  # original JPEG, not re-encoded
        elif topic.endswith('camera_info'):
            assert (msg.height, msg.width) == (sd['height'], sd['width'])
            np.testing.assert_array_equal(np.asarray(msg.k).reshape(3, 3),
                                          calibs[channel]['camera_intrinsic'])
            np.testing.assert_array_equal(np.asarray(msg.d), np.zeros(5))
        elif channel.startswith('RADAR'):
            cloud = msgs.pointcloud2_to_array(msg)
            assert [f.name for f in msg.fields] == RADAR_FIELDS and msg.point_step == 43
            source = msgs.read_radar_pcd(path)
            assert cloud.shape == source.shape
            for name in RADAR_FIELDS:
                np.testing.assert_array_equal(cloud[name], source[name])
        else:
            assert channel == 'LIDAR_TOP'
            cloud = msgs.pointcloud2_to_array(msg)
            assert [f.name for f in msg.fields] == ['x', 'y', 'z', 'intensity', 'ring']
            source = np.fromfile(path, dtype=np.float32).reshape(-1, 5)
            got = np.stack([cloud[n] for n in cloud.dtype.names], axis=1)  # (N, 5)
            np.testing.assert_array_equal(got, source)
        checked[topic] += 1
    assert checked == Counter(expected)
    for topic, values in stamps.items():
        assert values == sorted(values), f'{topic} stamps are not monotonic'


def test_odometry_twist_is_the_finite_difference_of_ego_poses(converted, nusc):
    bag, _ = converted
    poses = sorted((int(p['timestamp']) * 1000, geometry.record_transform(p))
                   for p in nusc.ego_pose)
    from nav_msgs.msg import Odometry

    odoms = [deserialize_message(raw, Odometry)
             for _, _, _, raw in io.read_messages(bag, ['/odom'])]
    assert len(odoms) == len(poses)
    i = len(poses) // 2
    (t0, T0), (t1, T1), (t2, T2) = poses[i - 1:i + 2]
    v_base = T1[:3, :3].T @ (T2[:3, 3] - T0[:3, 3]) / ((t2 - t0) * 1e-9)
    lin = odoms[i].twist.twist.linear
    np.testing.assert_allclose([lin.x, lin.y, lin.z], v_base, rtol=1e-6, atol=1e-9)
    # Heading rate: yaw change over the same interval (the world is flat: yaw only).
    yaw = [np.arctan2(T[1, 0], T[0, 0]) for T in (T0, T2)]
    yaw_rate = (yaw[1] - yaw[0]) / ((t2 - t0) * 1e-9)
    assert abs(yaw_rate) > 1e-5  # the ego turns a little: the check below is not 0 == 0
    np.testing.assert_allclose(odoms[i].twist.twist.angular.z, yaw_rate, rtol=1e-3, atol=1e-8)


def test_metadata_types_hashes_and_sidecar(world, nusc, converted):
    bag, summary = converted
    meta = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert meta['version'] == io.BAG_VERSION and meta['storage_identifier'] == 'mcap'
    # Only the MCAP file is part of the bag: readers ignore the calibration sidecar.
    assert meta['relative_file_paths'] == [f'{bag.name}.mcap']
    assert sorted(p.name for p in bag.iterdir()) == sorted(
        ['metadata.yaml', f'{bag.name}.mcap', 'calibration.yaml'])
    types = {t['topic_metadata']['name']: t['topic_metadata']
             for t in meta['topics_with_message_count']}
    assert types['/CAM_FRONT/image_rect_compressed']['type'] == 'sensor_msgs/msg/CompressedImage'
    assert types['/CAM_FRONT/camera_info']['type'] == 'sensor_msgs/msg/CameraInfo'
    assert types['/RADAR_FRONT']['type'] == 'sensor_msgs/msg/PointCloud2'
    assert types['/LIDAR_TOP']['type'] == 'sensor_msgs/msg/PointCloud2'
    assert types['/odom']['type'] == 'nav_msgs/msg/Odometry'
    assert types['/tf']['type'] == types['/tf_static']['type'] == 'tf2_msgs/msg/TFMessage'
    # /tf_static is offered transient-local (durability 1 in version-8 metadata): latched.
    static_qos = yaml.safe_load(types['/tf_static']['offered_qos_profiles'])
    assert static_qos[0]['durability'] == 1 and static_qos[0]['reliability'] == 1
    assert yaml.safe_load(types['/tf']['offered_qos_profiles'])[0]['durability'] == 2
    # Hashes are those of the installed Kilted message packages (their type description JSON).
    share = Path(sys.prefix) / 'share'
    compared = 0
    for topic, meta_topic in types.items():
        msgtype = meta_topic['type']
        assert meta_topic['type_description_hash'] == io.TYPESTORE.hash_rihs01(msgtype)
        package, kind, name = msgtype.split('/')
        description = share / package / kind / f'{name}.json'
        if _rclpy_class(msgtype) is not None:
            hashes = json.loads(description.read_text())['type_hashes']
            assert meta_topic['type_description_hash'] == hashes[0]['hash_string'], topic
            compared += 1
    assert compared >= 5
    # The MCAP schemas carry the full message definitions (ros2msg with dependencies).
    with Reader(bag) as reader:
        for connection in reader.connections:
            assert connection.msgdef.data == io.TYPESTORE.generate_msgdef(
                connection.msgtype, ros_version=2)[0]
            assert 'MSG: std_msgs/Header' in connection.msgdef.data
    # Other ways in: the MCAP file alone (as Foxglove opens it) and rosbags' AnyReader.
    with Reader(bag / f'{bag.name}.mcap') as reader:
        assert reader.message_count == summary['messages']
        assert sum(1 for _ in reader.messages()) == summary['messages']
    with AnyReader([bag]) as reader:
        assert reader.message_count == summary['messages']
    # Calibration sidecar: the node's format, equal to the calibrated_sensor records.
    calibration = load_calibration(summary['calibration'])
    assert calibration.base_frame == 'base_link'
    for sd in nusc.sample_data:
        channel = _channel(nusc, sd)
        record = nusc.get('calibrated_sensor', sd['calibrated_sensor_token'])
        sensor = calibration.sensors[channel]
        assert sensor.frame_id == channel
        np.testing.assert_allclose(sensor.T_parent_from_sensor,
                                   geometry.record_transform(record), atol=1e-12)
        if channel.startswith('CAM'):
            np.testing.assert_array_equal(sensor.K, record['camera_intrinsic'])
            assert (sensor.height, sensor.width) == (sd['height'], sd['width'])


def _bag_files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_refuses_existing_bag_and_bad_input(world, converted, capsys):
    bag, _ = converted
    before = _bag_files(bag)
    base = ['nuscenes2bag', '--dataroot', str(world), '--version', 'v1.0-sim',
            '--no-progress']
    cases = [
        (['--scene', 'scene-0000', '--out', str(bag)], 'already exists'),
        (['--scene', 'scene-0042', '--out', str(bag.with_name('x'))], 'unknown scene'),
        (['--all', '--out', str(bag.parent / 'missing' / 'x')], 'does not exist'),
    ]
    for extra, message in cases:
        assert cli.main(base + extra) == 1
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert cli.main(['nuscenes2bag', '--dataroot', str(world / 'nope'), '--version',
                     'v1.0-sim', '--all', '--out', str(bag.with_name('y'))]) == 1
    assert 'dataroot not found' in capsys.readouterr().err
    # --overwrite replaces bags only, never another kind of folder or file.
    not_a_bag = bag.parent / 'notes'
    not_a_bag.mkdir()
    assert cli.main(base + ['--all', '--out', str(not_a_bag), '--overwrite']) == 1
    assert 'not a rosbag2 directory' in capsys.readouterr().err
    assert _bag_files(bag) == before
    assert not bag.with_name('x').exists() and not bag.with_name('y').exists()


def test_failure_midway_keeps_previous_bag_and_leaves_no_partial(world, tmp_path,
                                                                 monkeypatch):
    out = tmp_path / 'bag'
    with io.open_writer(out) as writer:  # a previous bag with one message
        connection = io.add_topic(writer, '/odom', 'nav_msgs/msg/Odometry')
        writer.write(connection, 5, io.serialize(nuscenes2bag._odometry(
            5, [(5, np.eye(4))], 0), 'nav_msgs/msg/Odometry'))
    before = _bag_files(out)
    assert io.bag_topics(out) == {'/odom': ('nav_msgs/msg/Odometry', 1)}

    calls = {'n': 0}
    encode = nuscenes2bag._Encoder.__call__

    def failing(self, item):
        calls['n'] += 1
        if calls['n'] == 50:
            raise OSError('disk full (simulated)')
        return encode(self, item)

    monkeypatch.setattr(nuscenes2bag._Encoder, '__call__', failing)
    for target in (out, tmp_path / 'fresh'):
        calls['n'] = 0
        with pytest.raises(OSError, match='simulated'):
            nuscenes2bag.convert(world, 'v1.0-sim', target, overwrite=True, progress=False)
        assert calls['n'] == 50
    assert _bag_files(out) == before  # the previous bag is intact
    assert not (tmp_path / 'fresh').exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bag']  # no .partial left

    monkeypatch.setattr(nuscenes2bag._Encoder, '__call__', encode)
    summary = nuscenes2bag.convert(world, 'v1.0-sim', out, overwrite=True, progress=False)
    assert io.bag_topics(out)['/odom'][1] == summary['topics']['/odom'] > 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bag']
