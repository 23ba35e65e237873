"""Bag replay with rclpy: counts and order on real topics, skipped types, and into rcdepth_node."""

from collections import defaultdict
import os
from pathlib import Path
import threading
import time

import pytest

from rcdepth_ros import cli
from rcdepth_ros import counters as keys
from rcdepth_ros.bags import io, nuscenes2bag
from rcdepth_ros.bags.replay import replay
from rcdepth_ros.ros.harness import NodeProcess, stamp_ns, write_params_file

nuscenes = pytest.importorskip('nuscenes.nuscenes')

SCALE = 0.15
H, W = round(900 * SCALE), round(1600 * SCALE)
STARTUP_S = 90.0  # torch import + model load on a busy 2-core machine
IMAGE = '/CAM_FRONT/image_rect_compressed'
INFO = '/CAM_FRONT/camera_info'


@pytest.fixture(scope='module')
def bag(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('world')
    assert cli.main(['sim', '--out', str(root), '--scenes', '1', '--seed', '4',
                     '--duration', '2', '--image-scale', str(SCALE), '--cameras', 'CAM_FRONT',
                     '--camera-sweeps', 'none', '--night-fraction', '0',
                     '--workers', '1', '--no-progress']) == 0
    out = tmp_path_factory.mktemp('bags') / 'scene'
    nuscenes2bag.convert(root, 'v1.0-sim', out, progress=False)
    return out


@pytest.fixture
def spun_node(ros_env):
    """A test node spun in a background thread (the ROS session helper); closed at teardown."""
    from rcdepth_ros.ros.session import RosSession

    with RosSession(f'replay_tester_{os.getpid()}', int(ros_env['ROS_DOMAIN_ID']),
                    ros_env) as session:
        yield session.node


def _wait(condition, timeout: float) -> bool:
    """Poll ``condition`` (the executor spins in its own thread) until true or timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def test_replay_publishes_every_message_in_order(bag, spun_node, capfd):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    from rcdepth_ros.bags.replay import message_class

    expected = defaultdict(list)  # topic -> header stamps in bag order
    for topic, msgtype, log_ns, _ in io.read_messages(bag):
        if topic not in ('/tf', '/tf_static'):
            expected[topic].append(log_ns)
    got = defaultdict(list)
    lock = threading.Lock()
    qos = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
    topics = io.bag_topics(bag)
    for topic in expected:
        def store(msg, topic=topic):
            with lock:
                got[topic].append(stamp_ns(msg.header))
        spun_node.create_subscription(message_class(topics[topic][0]), topic, store, qos)

    summary = replay(bag, rate=2.0, wait_for_subscribers=20.0)
    assert summary['published'] == {t: len(s) for t, s in expected.items()}
    assert summary['skipped'] == {'/tf': topics['/tf'][1], '/tf_static': 1}
    total = sum(len(s) for s in expected.values())
    assert _wait(lambda: sum(len(s) for s in got.values()) >= total, 20.0), \
        {t: len(s) for t, s in got.items()}
    assert dict(got) == dict(expected)  # every message, per-topic order kept
    err = capfd.readouterr().err
    for topic in ('/tf', '/tf_static'):
        notes = [line for line in err.splitlines() if f'skipping {topic}:' in line]
        assert len(notes) == 1 and 'tf2_msgs/msg/TFMessage' in notes[0], err


def test_replay_remaps_and_publishes_clock(bag, spun_node):
    from nav_msgs.msg import Odometry
    from rosgraph_msgs.msg import Clock

    odom, clock = [], []
    spun_node.create_subscription(Odometry, '/replayed/odom',
                                  lambda m: odom.append(stamp_ns(m.header)), 200)
    spun_node.create_subscription(Clock, '/clock', lambda m: clock.append(
        int(m.clock.sec) * 1_000_000_000 + int(m.clock.nanosec)), 200)
    stamps = [log_ns for _, _, log_ns, _ in io.read_messages(bag, ['/odom'])]
    summary = replay(bag, rate=4.0, topics=['/odom'], remap={'/odom': '/replayed/odom'},
                     clock=True, wait_for_subscribers=20.0)
    assert summary['published'] == {'/odom': len(stamps)} and summary['skipped'] == {}
    assert _wait(lambda: len(odom) == len(stamps), 20.0)
    assert odom == stamps
    assert _wait(lambda: len(clock) > 10, 5.0)
    assert clock == sorted(clock) and stamps[0] <= clock[0] and clock[-1] <= stamps[-1]


def test_replay_rejects_bad_input(bag, tmp_path, capsys):
    with pytest.raises(ValueError, match='not in bag'):
        replay(bag, topics=['/nope'])
    with pytest.raises(ValueError, match='rate'):
        replay(bag, rate=0.0)
    assert cli.main(['replay', str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert 'not a rosbag2 directory' in err and len(err.splitlines()) == 1
    assert cli.main(['replay', str(bag), '--remap', '/x:=/y']) == 1
    assert 'remapped topics not in bag' in capsys.readouterr().err


def test_bag_from_nuscenes2bag_replays_into_the_node(bag, spun_node, ros_env, namespace,
                                                     student_weights, tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    base = f'{namespace}/rcdepth_node'
    params = write_params_file(tmp_path / 'params.yaml', {
        'model_path': str(student_weights), 'device': 'cpu', 'image_type': 'compressed',
        'radar_topics': [f'{namespace}/RADAR_FRONT'], 'odom_topic': f'{namespace}/odom',
        'extrinsics.calibration_path': str(bag / nuscenes2bag.CALIBRATION_FILE),
        'diagnostics_period': 0.5})
    depths, diags = [], []
    spun_node.create_subscription(Image, f'{base}/output/depth', depths.append, 10)

    def on_diag(msg):
        diags.extend({kv.key: kv.value for kv in s.values} for s in msg.status
                     if s.hardware_id == base)
    spun_node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 10)
    image_stamps = [log_ns for _, _, log_ns, _ in io.read_messages(bag, [IMAGE])]

    with NodeProcess(params, ros_env, namespace, tmp_path / 'node.log') as proc:
        def up():
            return spun_node.count_subscribers(f'{base}/input/image') > 0 or not proc.alive()
        assert _wait(up, STARTUP_S) and proc.alive(), proc.log()[-3000:]
        remap = {IMAGE: f'{base}/input/image', INFO: f'{base}/input/camera_info',
                 '/RADAR_FRONT': f'{namespace}/RADAR_FRONT', '/odom': f'{namespace}/odom'}
        summary = replay(bag, rate=2.0, topics=list(remap), remap=remap,
                         wait_for_subscribers=20.0)
        assert summary['published'][IMAGE] == len(image_stamps) and not summary['skipped']
        assert _wait(lambda: depths or not proc.alive(), 60.0) and depths, proc.log()[-3000:]
        assert _wait(lambda: any(int(d.get(keys.FRAMES_PROCESSED, 0)) > 0 for d in diags), 10.0)
        assert proc.alive(), proc.log()[-3000:]
    depth = depths[0]
    assert (depth.encoding, depth.height, depth.width) == ('32FC1', H, W)
    assert depth.header.frame_id == 'CAM_FRONT' and stamp_ns(depth.header) in image_stamps
    last = [d for d in diags if int(d.get(keys.FRAMES_PROCESSED, 0)) > 0][-1]
    # Radar frames resolved through the bag's calibration sidecar: no bad input at all.
    assert int(last[keys.BAD_INPUT_TOTAL]) == 0, last
