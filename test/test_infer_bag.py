"""infer-bag: the node's pipeline over a bag without ROS, checked against the devkit chain."""

from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest

from rcdepth_ros import cli, geometry, inference, msgs, pipeline
from rcdepth_ros.bags import io, nuscenes2bag
from rcdepth_ros.bags.infer_bag import infer_bag, output_topics

nuscenes = pytest.importorskip('nuscenes.nuscenes')

SCALE = 0.15
H, W = round(900 * SCALE), round(1600 * SCALE)


@pytest.fixture(scope='module')
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('world')
    # CAM_FRONT keyframes only (4 images in 2 s) keeps the inference short.
    assert cli.main(['sim', '--out', str(root), '--scenes', '1', '--seed', '11',
                     '--duration', '2', '--image-scale', str(SCALE), '--cameras', 'CAM_FRONT',
                     '--camera-sweeps', 'none', '--night-fraction', '0',
                     '--workers', '1', '--no-progress']) == 0
    return root


@pytest.fixture(scope='module')
def bag(world, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('bags') / 'in'
    nuscenes2bag.convert(world, 'v1.0-sim', out, progress=False)
    return out


@pytest.fixture(scope='module')
def result(bag, student_weights):
    import torch

    torch.set_num_threads(1)
    out = bag.with_name('depth')
    summary = infer_bag(bag, out, model=student_weights, device='cpu', progress=False)
    return out, summary


def _expected_depth(world: Path, estimator, image_stamp_ns: int) -> tuple[np.ndarray, int]:
    """Depth of the CAM_FRONT image at ``image_stamp_ns`` with radar projected by the devkit
    chain (radar -> ego(t_radar) -> global -> ego(t_cam) -> camera), newest RADAR_FRONT sweep
    within 0.1 s before the image, as the node pairs it. Returns (depth, radar points)."""
    nusc = nuscenes.NuScenes(version='v1.0-sim', dataroot=str(world), verbose=False)

    def channel(sd):
        calib = nusc.get('calibrated_sensor', sd['calibrated_sensor_token'])
        return nusc.get('sensor', calib['sensor_token'])['channel']

    cam = next(sd for sd in nusc.sample_data
               if channel(sd) == 'CAM_FRONT' and sd['timestamp'] * 1000 == image_stamp_ns)
    radars = [sd for sd in nusc.sample_data if channel(sd) == 'RADAR_FRONT' and
              0 <= image_stamp_ns - sd['timestamp'] * 1000 <= 100_000_000]
    cam_calib = nusc.get('calibrated_sensor', cam['calibrated_sensor_token'])
    sweeps = []
    if radars:
        radar = max(radars, key=lambda sd: sd['timestamp'])
        T = geometry.nuscenes_sensor_to_camera(
            nusc.get('calibrated_sensor', radar['calibrated_sensor_token']),
            nusc.get('ego_pose', radar['ego_pose_token']),
            nusc.get('ego_pose', cam['ego_pose_token']), cam_calib)
        points = msgs.radar_points_from_array(msgs.read_radar_pcd(world / radar['filename']))
        sweeps.append((points, T))
    import cv2

    rgb = cv2.imread(str(world / cam['filename']))[:, :, ::-1]
    K = np.asarray(cam_calib['camera_intrinsic'])
    frame = pipeline.make_frame(image_stamp_ns, 'CAM_FRONT', np.ascontiguousarray(rgb), K,
                                None, sweeps)
    out = pipeline.FramePipeline(estimator, 1.0, 100.0).process(frame)
    return out.depth, int(frame.radar_points_cam.shape[0])


def test_outputs_one_per_image_with_right_encodings(bag, result):
    out, summary = result
    images = [(log_ns, io.deserialize(raw, t)) for _, t, log_ns, raw in
              io.read_messages(bag, ['/CAM_FRONT/image_rect_compressed'])]
    assert len(images) == 4
    names = output_topics('CAM_FRONT')
    assert io.bag_topics(out) == {
        names['depth']: ('sensor_msgs/msg/Image', 4),
        names['uncertainty']: ('sensor_msgs/msg/Image', 4),
        names['colored']: ('sensor_msgs/msg/Image', 4),
        names['camera_info']: ('sensor_msgs/msg/CameraInfo', 4)}
    assert summary['frames'] == summary['images'] == 4 and summary['skipped'] == {}
    assert summary['calibration'].endswith('calibration.yaml')
    assert summary['ego_motion'] == '/odom' and summary['radar_points_mean'] > 0
    got: dict[str, list] = {topic: [] for topic in names.values()}
    for topic, msgtype, log_ns, raw in io.read_messages(out):
        got[topic].append((log_ns, io.deserialize(raw, msgtype)))
    stamps = [log_ns for log_ns, _ in images]
    for topic, entries in got.items():
        assert [log_ns for log_ns, _ in entries] == stamps, topic
        for log_ns, msg in entries:
            assert msgs.stamp_to_ns(msg.header.stamp) == log_ns
            assert msg.header.frame_id == 'CAM_FRONT'
            assert (msg.height, msg.width) == (H, W)
    for (_, depth_msg), (_, sigma_msg), (_, colored_msg) in zip(
            got[names['depth']], got[names['uncertainty']], got[names['colored']]):
        assert depth_msg.encoding == sigma_msg.encoding == '32FC1'
        assert colored_msg.encoding == 'bgr8'
        depth, sigma = msgs.image_to_array(depth_msg), msgs.image_to_array(sigma_msg)
        finite = np.isfinite(depth)
        assert finite.mean() > 0.5
        assert (depth[finite] >= 1.0).all() and (depth[finite] <= 100.0).all()
        np.testing.assert_array_equal(np.isfinite(sigma), finite)
        assert (sigma[finite] > 0).all()
        bgr = msgs.image_to_array(colored_msg)
        assert bgr.shape == (H, W, 3) and (bgr[~finite] == 0).all()
    info = got[names['camera_info']][0][1]
    assert (info.height, info.width) == (H, W)


def test_same_depth_as_the_devkit_projection_chain(world, bag, result, student_weights):
    out, _ = result
    estimator = inference.load_estimator(student_weights, 'cpu')
    depths = [(log_ns, msgs.image_to_array(io.deserialize(raw, t)))
              for _, t, log_ns, raw in io.read_messages(out, ['/CAM_FRONT/depth'])]
    checked_with_radar = 0
    for stamp, depth in depths[1:3]:
        expected, n_points = _expected_depth(world, estimator, stamp)
        # Same radar pixels, same model: equal up to float noise of the transform chain.
        np.testing.assert_allclose(depth, expected, rtol=1e-5, atol=1e-4, equal_nan=True)
        checked_with_radar += n_points > 0
    assert checked_with_radar >= 1


def test_tf_static_calibration_and_an_image_without_camera_info(bag, result, student_weights,
                                                                tmp_path):
    """A bag without the sidecar (calibration from /tf_static) and one camera_info missing."""
    out, _ = result
    infos = [log_ns for _, _, log_ns, _ in io.read_messages(bag, ['/CAM_FRONT/camera_info'])]
    copy = tmp_path / 'no_sidecar'
    with io.open_writer(copy) as writer:
        connections = {}
        for topic, msgtype, log_ns, raw in io.read_messages(bag):
            if topic == '/CAM_FRONT/camera_info' and log_ns == infos[-1]:
                continue
            if topic not in connections:
                connections[topic] = io.add_topic(writer, topic, msgtype,
                                                  latched=topic == '/tf_static')
            writer.write(connections[topic], log_ns, raw)
    assert not (copy / 'calibration.yaml').exists()
    summary = infer_bag(copy, tmp_path / 'depth', model=student_weights, device='cpu',
                        progress=False)
    assert summary['calibration'] == '/tf_static'
    assert summary['frames'] == 3 and summary['skipped'] == {'no_camera_info': 1}
    assert summary['radar_points_mean'] > 0
    first = {}
    for path in (out, tmp_path / 'depth'):
        topic, msgtype, _, raw = next(io.read_messages(path, ['/CAM_FRONT/depth']))
        first[path] = msgs.image_to_array(io.deserialize(raw, msgtype))
    np.testing.assert_allclose(first[out], first[tmp_path / 'depth'], atol=1e-5,
                               equal_nan=True)


def test_bag_tools_import_without_rclpy():
    code = ('import sys\n'
            'for name in ("rclpy", "sensor_msgs", "nav_msgs", "std_msgs", "rcl_interfaces"):\n'
            '    sys.modules[name] = None  # any import of them now fails\n'
            'import rcdepth_ros.bags.infer_bag, rcdepth_ros.bags.nuscenes2bag\n')
    subprocess.run([sys.executable, '-c', code], check=True)


def test_cli_bad_input_is_one_line_error(bag, result, tmp_path, capsys):
    out, _ = result
    cases = [
        ([str(bag), str(out)], 'already exists'),
        ([str(tmp_path), str(tmp_path / 'o')], 'not a rosbag2 directory'),
        ([str(tmp_path / 'none'), str(tmp_path / 'o')], 'bag not found'),
        ([str(bag), str(tmp_path / 'o'), '--camera', 'CAM_BACK'], 'no image topic'),
        ([str(bag), str(tmp_path / 'o'), '--radars', 'RADAR_NOPE'], 'no PointCloud2 topic'),
        ([str(bag), str(tmp_path / 'o'), '--model', str(tmp_path / 'nothing')],
         'model weights not found'),
    ]
    for argv, message in cases:
        assert cli.main(['infer-bag', *argv, '--device', 'cpu', '--no-progress']) == 1
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / 'o').exists()


def test_prepared_radar_image_is_what_infer_bag_feeds_the_network(world, bag, tmp_path):
    """One sweep-selection rule and one radar -> camera chain for training and serving.

    Preparation walks the nuScenes tables (radar -> ego(t_radar) -> global -> ego(t_cam) ->
    camera); infer-bag feeds bag messages to the node's frame assembler (calibration sidecar
    and /odom). Under the same parameters (up to two sweeps per radar within 0.25 s) the
    float32 radar images of every keyframe must be identical, pixel for pixel.
    """
    import json

    from rcdepth_ros.bags.infer_bag import BagFrames, tool_config
    from rcdepth_ros.data import storage

    splits = json.loads((world / 'splits.json').read_text())
    split = next(name for name, scenes in splits.items() if scenes)
    out = tmp_path / 'prepared'
    assert cli.main(['prepare', '--dataroot', str(world), '--version', 'v1.0-sim', '--split',
                     split, '--out', str(out), '--accumulate-sweeps', '1', '--radar-sweeps',
                     '2', '--radar-window', '0.25', '--no-progress']) == 0
    prepared = {}
    for path in storage.list_samples(out, split):
        rc, features = storage.read_radar_npz(path / 'radar.npz')
        stamp = int(storage.read_meta(path)['timestamp']) * 1000  # us -> bag ns
        prepared[stamp] = storage.radar_points_to_image(rc, features, H, W)
    assert len(prepared) >= 3  # the split's samples (keyframes)

    fed, sweeps = {}, []
    frames = BagFrames(bag, tool_config(**{'radar.max_sweeps': 2, 'radar.window': 0.25}))
    for paired, frame in frames:
        # FramePipeline.radar_image is the network's radar input (before any input scale).
        fed[paired.stamp_ns] = pipeline.FramePipeline(None).radar_image(frame)
        sweeps.append(len(frames.assembler.radar['/RADAR_FRONT'].select(paired.stamp_ns)))
    assert set(prepared) <= set(fed) and len(fed) == 4  # infer-bag: every image
    for stamp, image in prepared.items():
        np.testing.assert_array_equal(fed[stamp], image)
    assert sum(np.count_nonzero(image[0]) for image in prepared.values()) > 20
    assert max(sweeps) == 2  # the parameter took effect somewhere


def test_cameras_all_on_a_surround_bag(tmp_path, student_weights):
    """Six cameras and five radars: depth and uncertainty for every image of every camera,
    every radar projected into every camera, cameras of one instant in one forward pass."""
    import torch

    torch.set_num_threads(1)
    root = tmp_path / 'world'
    assert cli.main(['sim', '--out', str(root), '--scenes', '1', '--seed', '3', '--duration',
                     '1', '--image-scale', '0.1', '--cameras', 'all', '--camera-sweeps', 'none',
                     '--night-fraction', '0', '--workers', '1', '--no-progress']) == 0
    bag = tmp_path / 'bag'
    nuscenes2bag.convert(root, 'v1.0-sim', bag, progress=False)
    topics = io.bag_topics(bag)
    radars = sorted(t[1:] for t in topics if t.startswith('/RADAR_'))
    assert len(radars) == 5
    assert cli.main(['infer-bag', str(bag), str(tmp_path / 'depth'), '--cameras', 'all',
                     '--radars', *radars, '--model', str(student_weights), '--device', 'cpu',
                     '--no-progress']) == 0
    out = io.bag_topics(tmp_path / 'depth')
    cameras = ['CAM_BACK', 'CAM_BACK_LEFT', 'CAM_BACK_RIGHT', 'CAM_FRONT', 'CAM_FRONT_LEFT',
               'CAM_FRONT_RIGHT']
    total = 0
    for camera in cameras:
        n = topics[f'/{camera}/image_rect_compressed'][1]
        assert n >= 2
        for key, topic in output_topics(camera).items():
            assert out[topic][1] == n, (camera, key)
        total += n
    summary = infer_bag(bag, tmp_path / 'depth2', model=student_weights, device='cpu',
                        cameras='all', radars=radars, progress=False)
    assert summary['cameras'] == cameras and summary['frames'] == total
    assert summary['skipped'] == {} and summary['radar_points_mean'] > 0
    # Cameras of one instant share a forward pass (batch.window 0.05 s).
    assert summary['batch_size_max'] > 1 and summary['forward_passes'] < total
