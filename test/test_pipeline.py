"""Frame pipeline, radar/odometry buffers, calibration extrinsics, params and diagnostics."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from rcdepth_ros import codec, geometry, inference, msgs, pipeline
from rcdepth_ros.buffers import OdometryBuffer, RadarBuffer, RadarSweep
from rcdepth_ros.calibration import (
    CalibrationExtrinsics,
    calibration_to_dict,
    load_calibration,
    parse_calibration,
)
from rcdepth_ros.models.io import InputSpec
from rcdepth_ros.ros import harness
from rcdepth_ros.ros.diagnostics import NodeStats

REPO = Path(__file__).resolve().parents[1]
H, W = 48, 80  # H != W so a transpose cannot hide


def _header(stamp_ns=0, frame_id='cam'):
    return SimpleNamespace(stamp=SimpleNamespace(sec=stamp_ns // 10**9,
                                                 nanosec=stamp_ns % 10**9),
                           frame_id=frame_id)


def _image_msg(arr, encoding, **override):
    fields = msgs.array_to_image_fields(arr, encoding)
    fields.update(override)
    return SimpleNamespace(header=_header(), **fields)


def _cloud_msg(structured, **override):
    fields = msgs.array_to_pointcloud2_fields(structured)
    fields['fields'] = [SimpleNamespace(**f) for f in fields['fields']]
    fields.update(override)
    return SimpleNamespace(header=_header(frame_id='radar'), **fields)


class StandIn:
    """What the pipeline needs of an estimator (the Estimator protocol), nothing more."""

    device, precision = 'cpu', 'fp32'
    input = InputSpec()

    def describe(self):
        return {'variant': type(self).__name__}


class RampEstimator(StandIn):
    """Stand-in estimator: depth grows down the rows, sigma = 10 % of depth."""

    def __init__(self):
        self.calls = []

    def predict(self, images, radar, K=None):
        self.calls.append((images.shape, radar.shape))
        b, h, w = images.shape[:3]
        depth = np.broadcast_to(np.linspace(0.5, 120.0, h, dtype=np.float32)[:, None], (h, w))
        depth = np.repeat(depth[None], b, axis=0).copy()
        return inference.Prediction(depth, 0.1 * depth)


# ----------------------------------------------------------------------------- decoding

def test_stand_ins_and_the_real_estimator_follow_the_protocol(student_weights):
    assert isinstance(RampEstimator(), inference.Estimator)
    assert not isinstance(object(), inference.Estimator)
    estimator = inference.load_estimator(student_weights, device='cpu')
    assert isinstance(estimator, inference.Estimator)
    prediction = estimator.predict(np.zeros((1, 64, 96, 3), np.uint8),
                                   np.zeros((1, 4, 64, 96), np.float32))
    assert prediction.model_ms > 0 and prediction.model_ms == estimator.model_time_ms


def test_decode_image_bgr_is_swapped_to_rgb_and_bad_images_are_rejected():
    bgr = np.zeros((H, W, 3), np.uint8)
    bgr[..., 0] = 255  # blue
    rgb = codec.decode_image(_image_msg(bgr, 'bgr8'), compressed=False)
    assert rgb.shape == (H, W, 3)
    np.testing.assert_array_equal(rgb[0, 0], [0, 0, 255])

    depth = np.ones((H, W), np.float32)
    with pytest.raises(codec.BadInput) as err:
        codec.decode_image(_image_msg(depth, '32FC1'), compressed=False)
    assert err.value.kind == 'image_encoding'
    msg = _image_msg(bgr, 'bgr8')
    msg.data = msg.data[:-7]
    with pytest.raises(codec.BadInput) as err:
        codec.decode_image(msg, compressed=False)
    assert err.value.kind == 'image_decode'
    with pytest.raises(codec.BadInput) as err:
        codec.decode_image(_image_msg(bgr, 'bgr8', width=100000, height=100000), False)
    assert err.value.kind == 'image_size'


def test_decode_compressed_image_round_trip():
    rgb = harness.synthetic_image(H, W)
    msg = SimpleNamespace(header=_header(), **msgs.rgb_to_compressed_fields(rgb, 'png'))
    np.testing.assert_array_equal(codec.decode_image(msg, compressed=True), rgb)


def test_decode_jpeg_keeps_the_colour_order():
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:, : W // 2] = (200, 30, 60)  # red-ish left half, blue-ish right half
    rgb[:, W // 2:] = (20, 90, 220)
    msg = SimpleNamespace(header=_header(), **msgs.rgb_to_compressed_fields(rgb, 'jpeg'))
    out = codec.decode_image(msg, compressed=True)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_allclose(out[:, :2].mean(axis=(0, 1)), (200, 30, 60), atol=12)
    np.testing.assert_allclose(out[:, -2:].mean(axis=(0, 1)), (20, 90, 220), atol=12)


def test_decode_camera_info_rejects_zero_intrinsics():
    K = harness.intrinsics(H, W)
    good = SimpleNamespace(header=_header(), roi=None, **msgs.camera_info_fields(K, H, W))
    K_out, h, w = codec.decode_camera_info(good)
    np.testing.assert_allclose(K_out, K)
    assert (h, w) == (H, W)
    bad = SimpleNamespace(header=_header(), roi=None, **msgs.camera_info_fields(K, H, W))
    bad.k = np.zeros(9)
    with pytest.raises(codec.BadInput) as err:
        codec.decode_camera_info(bad)
    assert err.value.kind == 'camera_info'


def test_decode_radar_layouts_filters_and_bad_clouds():
    pts = harness.synthetic_radar(10)
    pts['invalid_state'][:3] = 7
    out = codec.decode_radar(_cloud_msg(pts))
    assert out.shape == (10, 6) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0], pts['x'])
    np.testing.assert_allclose(out[:, 3], pts['rcs'])
    assert codec.decode_radar(_cloud_msg(pts), invalid_states=[0]).shape == (7, 6)

    plain = np.zeros(4, dtype=[('x', '<f4'), ('y', '<f4'), ('z', '<f4')])
    plain['x'] = [1, 2, np.nan, 4]
    out = codec.decode_radar(_cloud_msg(plain))
    assert out.shape == (3, 6)
    np.testing.assert_array_equal(out[:, 3:], 0.0)

    def kind(msg, **kw):
        with pytest.raises(codec.BadInput) as err:
            codec.decode_radar(msg, **kw)
        return err.value.kind

    assert kind(_cloud_msg(pts[:0])) == 'radar_empty'
    assert kind(_cloud_msg(pts), ambig_states=[1]) == 'radar_empty'
    nan = pts.copy()
    nan['x'] = np.nan
    assert kind(_cloud_msg(nan)) == 'radar_nonfinite'
    assert kind(_cloud_msg(pts), max_points=5) == 'radar_huge'
    truncated = _cloud_msg(pts)
    truncated.data = truncated.data[:-3]
    assert kind(truncated) == 'radar_decode'
    no_x = np.zeros(3, dtype=[('a', '<f4'), ('y', '<f4'), ('z', '<f4')])
    assert kind(_cloud_msg(no_x)) == 'radar_decode'


# ----------------------------------------------------------------------------- frame + infer

def test_make_frame_transforms_radar_and_checks_camera_info_size():
    rgb = np.zeros((H, W, 3), np.uint8)
    K = harness.intrinsics(H, W)
    points = np.array([[10.0, 1.0, 0.0, 5.0, 1.0, 2.0]], np.float32)  # radar frame
    T = np.eye(4)
    T[:3, 3] = [0.5, 0.0, 0.0]
    frame = pipeline.make_frame(7, 'cam', rgb, K, (H, W), [(points, T)])
    np.testing.assert_allclose(frame.radar_points_cam, [[10.5, 1.0, 0.0, 5.0, 1.0, 2.0]])
    with pytest.raises(codec.BadInput) as err:
        pipeline.make_frame(7, 'cam', rgb, K, (W, H), [(points, T)])
    assert err.value.kind == 'camera_info_mismatch'


def test_pipeline_masks_depth_outside_range_and_rasterises_radar():
    K = harness.intrinsics(H, W)
    # One point 20 m ahead, 1 m right of and 0.5 m below the optical axis.
    radar = np.array([[1.0, 0.5, 20.0, 7.0, 0.5, -0.5]], np.float32)
    frame = pipeline.Frame(1, 'cam', np.zeros((H, W, 3), np.uint8), K, radar)
    estimator = RampEstimator()
    result = pipeline.FramePipeline(estimator, min_depth=1.0, max_depth=100.0).process(frame)
    assert estimator.calls == [((1, H, W, 3), (1, 4, H, W))]
    assert result.depth.shape == (H, W) and result.depth.dtype == np.float32
    ramp = np.linspace(0.5, 120.0, H, dtype=np.float32)
    valid_rows = (ramp >= 1.0) & (ramp <= 100.0)
    assert np.isnan(result.depth[~valid_rows]).all()
    assert np.isnan(result.sigma[~valid_rows]).all()
    np.testing.assert_allclose(result.depth[valid_rows, 0], ramp[valid_rows])
    np.testing.assert_allclose(result.sigma[valid_rows], 0.1 * result.depth[valid_rows],
                               rtol=1e-6)
    uv = np.array([[K[0, 0] * 1.0 / 20.0 + K[0, 2], K[1, 1] * 0.5 / 20.0 + K[1, 2]]])
    rows, cols = geometry.pixel_indices(uv)  # the geometry module's pixel convention
    v, u = int(rows[0]), int(cols[0])
    np.testing.assert_allclose(result.radar_image[:, v, u], [20.0, 7.0, 0.5, -0.5])
    assert np.count_nonzero(result.radar_image[0]) == 1
    assert 0.0 <= result.model_ms <= result.total_ms


class FixedEstimator(StandIn):
    """Stand-in returning given arrays as read-only broadcast views (no copy of its own)."""

    def __init__(self, depth, sigma):
        self.depth, self.sigma = depth, sigma

    def predict(self, images, radar, K=None):
        return inference.Prediction(np.broadcast_to(self.depth, (1, *self.depth.shape)),
                                    np.broadcast_to(self.sigma, (1, *self.sigma.shape)))


@pytest.mark.parametrize('teacher', [False, True])
def test_pipeline_masking_matches_the_definition_on_any_estimator_output(teacher):
    rng = np.random.default_rng(3)
    depth = rng.uniform(-5.0, 130.0, (H, W)).astype(np.float32)  # H != W
    depth[2, 3], depth[4, 1], depth[5, 6] = np.nan, np.inf, -np.inf
    depth[1, 1], depth[1, 2] = 1.0, 100.0  # the bounds are valid
    sigma = np.full((H, W), np.nan, np.float32) if teacher else rng.uniform(
        0.1, 3.0, (H, W)).astype(np.float32)
    frame = pipeline.Frame(1, 'cam', np.zeros((H, W, 3), np.uint8), harness.intrinsics(H, W),
                           np.zeros((0, 6), np.float32))
    before = depth.copy(), sigma.copy()
    result = pipeline.FramePipeline(FixedEstimator(depth, sigma), 1.0, 100.0).process(frame)
    invalid = ~np.isfinite(depth) | (depth < 1.0) | (depth > 100.0)
    np.testing.assert_array_equal(result.depth, np.where(invalid, np.nan, depth))
    np.testing.assert_array_equal(result.sigma, np.where(invalid, np.nan, sigma))
    assert not np.isnan(result.depth[1, 1:3]).any()
    assert result.depth.flags.writeable and result.depth.flags.c_contiguous
    # Read-only estimator output is copied, never written through.
    np.testing.assert_array_equal(depth, before[0])
    np.testing.assert_array_equal(sigma, before[1])


def test_pipeline_runs_a_real_student(student_weights):
    estimator = inference.load_estimator(student_weights, 'cpu', 'fp32')
    K = harness.intrinsics(H, W)
    sweeps = [(codec.decode_radar(_cloud_msg(harness.synthetic_radar(30))), np.eye(4))]
    rgb = harness.synthetic_image(H, W)
    frame = pipeline.make_frame(1, 'cam', rgb, K, (H, W), sweeps)
    result = pipeline.FramePipeline(estimator, 0.0, 100.0).process(frame)
    assert result.depth.shape == (H, W) and result.sigma.shape == (H, W)
    assert np.isfinite(result.depth).all() and (result.sigma > 0).all()
    with pytest.raises(FileNotFoundError, match='model weights not found'):
        inference.load_estimator(student_weights.parent / 'missing', 'cpu', 'fp32')


def test_encoders_colour_and_points():
    depth = np.full((H, W), 10.0, np.float32)
    depth[0, 0] = np.nan
    fields = codec.depth_image_fields(depth)
    assert fields['encoding'] == '32FC1' and fields['step'] == W * 4
    bgr = codec.colorize_depth(depth, 100.0)
    assert bgr.shape == (H, W, 3) and bgr.dtype == np.uint8
    np.testing.assert_array_equal(bgr[0, 0], 0)
    K = harness.intrinsics(H, W)
    pts = geometry.depth_to_points(depth, K, stride=2)
    assert pts.shape == ((H // 2) * (W // 2) - 1, 3)
    np.testing.assert_allclose(pts[:, 2], 10.0)
    # Pixel (u=2, v=0) back-projects through K.
    np.testing.assert_allclose(pts[0], [(2 - K[0, 2]) * 10 / K[0, 0],
                                        (0 - K[1, 2]) * 10 / K[1, 1], 10.0], rtol=1e-5)


def test_depth_colours_are_a_fixed_log_scale():
    """1 m is the warm end, max depth the cold end, 10 m of 100 m exactly half way (hand
    values of log(d) / log(100)); a depth keeps its colour whatever else is in the image."""
    import cv2

    def turbo(index: int) -> np.ndarray:
        return cv2.applyColorMap(np.array([[index]], np.uint8), cv2.COLORMAP_TURBO)[0, 0]

    depth = np.array([[1.0, 10.0, 100.0, 0.2, 500.0, np.nan]], np.float32)
    bgr = codec.colorize_depth(depth, 100.0)
    # rint(255 * (1 - log 10 / log 100)) = rint(127.5) = 128; outside [1, 100] m clamps.
    for col, index in ((0, 255), (1, 128), (2, 0), (3, 255), (4, 0)):
        np.testing.assert_array_equal(bgr[0, col], turbo(index))
    np.testing.assert_array_equal(bgr[0, 5], 0)
    np.testing.assert_allclose(codec.depth_color_position(np.array([2.0, 20.0]), 100.0),
                               [1 - np.log10(2) / 2, 1 - np.log10(20) / 2])
    # A near object entering the view does not recolour the rest of the scene.
    scene = np.full((4, 4), 30.0, np.float32)
    with_car = scene.copy()
    with_car[0, 0] = 2.0
    np.testing.assert_array_equal(codec.colorize_depth(scene, 100.0)[1:, 1:],
                                  codec.colorize_depth(with_car, 100.0)[1:, 1:])


# ----------------------------------------------------------------------------- buffers

def _sweep(t_ms, frame='radar'):
    return RadarSweep(t_ms * 1_000_000, frame, np.zeros((1, 6), np.float32))


def test_radar_buffer_window_max_sweeps_and_time_jump():
    buf = RadarBuffer(window_s=0.2, max_sweeps=2, time_jump_s=1.0)
    for t in (1000, 1077, 1154, 1231):
        assert not buf.add(_sweep(t))
    chosen = buf.select(1240 * 1_000_000)
    assert [s.stamp_ns // 1_000_000 for s in chosen] == [1231, 1154]
    assert buf.select(1100 * 1_000_000)[0].stamp_ns == 1077 * 1_000_000
    assert buf.select(900 * 1_000_000) == []
    assert buf.add(_sweep(10))  # bag looped: 1.2 s back
    assert len(buf) == 1


def test_odometry_buffer_interpolates_motion():
    odom = OdometryBuffer()
    for t, x in ((0, 0.0), (100, 1.0), (200, 2.0)):
        odom.add(t * 1_000_000, geometry.make_transform([1, 0, 0, 0], [x, 0, 0]))
    np.testing.assert_allclose(odom.pose_at(150_000_000)[:3, 3], [1.5, 0, 0])
    motion = odom.motion(200_000_000, 50_000_000)  # base(t=200) from base(t=50)
    # A point fixed to the car at t=50 lies 1.5 m behind it at t=200.
    np.testing.assert_allclose(geometry.transform_points(motion, np.zeros((1, 3))),
                               [[-1.5, 0, 0]], atol=1e-9)
    assert odom.pose_at(10_000_000_000) is None
    with pytest.raises(ValueError):
        odom.add(1, np.full((4, 4), np.nan))


# ----------------------------------------------------------------------------- calibration

def test_calibration_example_matches_nuscenes_chain():
    calib = load_calibration(REPO / 'config' / 'calibration_example.yaml')
    assert set(calib.sensors) == {'CAM_FRONT', 'RADAR_FRONT'}
    assert calib.sensors['CAM_FRONT'].K.shape == (3, 3)
    ext = CalibrationExtrinsics(calib)
    T = ext.lookup('CAM_FRONT', 'RADAR_FRONT')
    cam = calib.sensors['CAM_FRONT']
    radar = calib.sensors['RADAR_FRONT']
    expected = geometry.invert_transform(
        geometry.make_transform(cam.rotation, cam.translation)) @ geometry.make_transform(
        radar.rotation, radar.translation)
    np.testing.assert_allclose(T, expected)
    # A radar point 20 m ahead lies about 20 m - (1.70 - 3.41) m in front of the camera.
    p = geometry.transform_points(T, np.array([[20.0, 0.0, 0.0]]))
    assert 21.0 < p[0, 2] < 22.0 and abs(p[0, 0]) < 0.2 and 0.5 < p[0, 1] < 1.5
    assert ext.lookup('CAM_FRONT', 'nowhere') is None
    again = parse_calibration(yaml.safe_load(yaml.safe_dump(calibration_to_dict(calib))))
    np.testing.assert_allclose(again.sensors['CAM_FRONT'].K, cam.K)
    assert again.sensors['RADAR_FRONT'].rotation == radar.rotation


def test_harness_calibration_camera_looks_forward():
    calib = parse_calibration(harness.calibration_dict(H, W))
    T = CalibrationExtrinsics(calib).lookup(harness.CAMERA_FRAME, 'base_link')
    # 10 m ahead on the ground (z = 0) is in front of and below the camera (y down).
    p = geometry.transform_points(T, np.array([[11.5, 0.0, 0.0]]))
    np.testing.assert_allclose(p, [[0.0, 1.5, 10.0]], atol=1e-9)


@pytest.mark.parametrize('mutate, match', [
    (lambda d: d.pop('sensors'), 'sensors'),
    (lambda d: d['sensors']['RADAR_FRONT'].update(rotation=[1, 1, 0, 0]), 'unit quaternion'),
    (lambda d: d['sensors']['RADAR_FRONT'].update(translation=[1, 2]), 'translation'),
    (lambda d: d['sensors']['CAM_FRONT'].update(width=0), 'positive'),
    (lambda d: d['sensors']['CAM_FRONT'].update(parent_frame='map'), 'parent_frame'),
])
def test_bad_calibration_is_a_clear_error(mutate, match):
    data = yaml.safe_load((REPO / 'config' / 'calibration_example.yaml').read_text())
    mutate(data)
    with pytest.raises(ValueError, match=match):
        parse_calibration(data)


# ----------------------------------------------------------------------------- params

@pytest.mark.parametrize('values, match', [
    ({'device': 'tpu'}, 'device'),
    ({'min_depth': 50.0, 'max_depth': 10.0}, 'min_depth'),
    ({'radar.max_sweeps': 0}, 'radar.max_sweeps'),
    ({'radar_topics': ['/a', '/a']}, 'duplicates'),
    ({'qos.reliability': 'sometimes'}, 'qos.reliability'),
    ({'no_such': 1}, 'unknown parameter'),
])
def test_bad_params_are_rejected(values, match):
    from rcdepth_ros.ros.params import config_from_dict

    with pytest.raises(ValueError, match=match):
        config_from_dict(values)


def test_params_declared_with_descriptors(rclpy_context):
    import rclpy

    from rcdepth_ros.ros.params import PARAM_SPECS, declare_parameters, read_config

    node = rclpy.create_node('params_probe', context=rclpy_context)
    try:
        declare_parameters(node)
        for spec in PARAM_SPECS:
            desc = node.describe_parameter(spec.name)
            assert desc.type == spec.ros_type() and desc.description, spec.name
            if spec.float_range:
                assert desc.floating_point_range[0].to_value == spec.float_range[1]
            if spec.int_range:
                assert desc.integer_range[0].from_value == spec.int_range[0]
        config = read_config(node)
        assert config.radar_dyn_props == () and config.autostart is True
        # The descriptor's range is enforced by rclpy itself.
        from rclpy.parameter import Parameter

        result = node.set_parameters([Parameter('qos.depth', value=0)])[0]
        assert not result.successful
    finally:
        node.destroy_node()


def test_node_stats_snapshot_and_status():
    from diagnostic_msgs.msg import DiagnosticStatus

    from rcdepth_ros.ros.diagnostics import diagnostic_status

    stats = NodeStats()
    for _ in range(3):
        stats.input('image')
    stats.bad('radar_empty')
    stats.drop(2)
    stats.frame_done(12.0, 8.0)
    snap = stats.snapshot()
    assert snap['received'] == {'image': 3} and snap['dropped'] == 2
    assert snap['bad_input'] == {'radar_empty': 1} and snap['processing_ms_median'] == 12.0
    status = diagnostic_status(snap, 'n', 'hw', {'model': 'm'}, active=True)
    values = {kv.key: kv.value for kv in status.values}
    assert values['bad_input radar_empty'] == '1' and values['model'] == 'm'
    assert status.level == DiagnosticStatus.WARN
    assert diagnostic_status(snap, 'n', 'hw', {}, active=False).level == DiagnosticStatus.STALE


# ----------------------------------------------------------------------------- real data

SCENE = REPO.parent / 'shared' / 'data' / 'nuscenes-frame-scene0061'


def test_real_nuscenes_radar_through_calibration_yaml_and_odometry():
    """The node's chain (43-byte cloud -> calibration YAML -> odometry motion) on real data."""
    import json

    if not SCENE.is_dir():
        pytest.skip(f'shared fixture folder {SCENE} is absent')
    csv = np.loadtxt(SCENE / 'radar_front' / 'points_filtered_18xN.csv', delimiter=',')
    cloud = np.zeros(csv.shape[1], dtype=msgs.NUSCENES_RADAR_DTYPE)
    for row, name in zip(csv, msgs.NUSCENES_RADAR_DTYPE.names):
        cloud[name] = row
    points = codec.decode_radar(_cloud_msg(cloud))  # (74, 6) radar frame
    assert points.shape == (74, 6)

    records = json.loads((SCENE / 'radar_front' / 'records.json').read_text())
    tables = SCENE / 'tables'
    cam_sd = next(s for s in json.loads((tables / 'sample_data.json').read_text())
                  if '/CAM_FRONT/' in s['filename'])
    cam_pose = next(p for p in json.loads((tables / 'ego_pose.json').read_text())
                    if p['token'] == cam_sd['ego_pose_token'])
    odom = OdometryBuffer()
    for pose in (records['ego_pose'], cam_pose):
        odom.add(pose['timestamp'] * 1000, geometry.record_transform(pose))
    t_cam, t_radar = cam_sd['timestamp'] * 1000, records['ego_pose']['timestamp'] * 1000

    ext = CalibrationExtrinsics(load_calibration(REPO / 'config' / 'calibration_example.yaml'))
    T = (ext.lookup('CAM_FRONT', 'base_link') @ odom.motion(t_cam, t_radar)
         @ ext.lookup('base_link', 'RADAR_FRONT'))
    K = ext.calibration.sensors['CAM_FRONT'].K
    frame = pipeline.make_frame(t_cam, 'CAM_FRONT', np.zeros((900, 1600, 3), np.uint8), K,
                                (900, 1600), [(points, T)])
    radar = pipeline.FramePipeline(RampEstimator()).radar_image(frame)  # (4, 900, 1600)
    depth = radar[0][radar[0] > 0]
    # Known facts of this frame (shared/data README): 61 of 74 points, depths 10.4-83.4 m.
    assert depth.size == 61
    assert 10.0 < depth.min() < 11.0 and 83.0 < depth.max() < 84.0


def test_frames_are_resized_to_the_focal_length_the_network_was_trained_at():
    """A network trained at half the focal length gets half-size frames; outputs come back at
    frame size."""

    class HalfFocal(RampEstimator):
        input = InputSpec(focal_length_px=150.0)

    estimator = HalfFocal()
    K = np.array([[300.0, 0, 159.5], [0, 300.0, 49.5], [0, 0, 1]])
    image = np.zeros((100, 320, 3), np.uint8)
    points = np.array([[0.0, 0.0, 20.0, 5.0, 1.0, 0.0]], np.float32)  # on the optical axis
    frame = pipeline.Frame(1, 'cam', image, K, points)
    result = pipeline.FramePipeline(estimator).process(frame)
    (image_shape, radar_shape), = estimator.calls
    assert image_shape == (1, 50, 160, 3) and radar_shape == (1, 4, 50, 160)
    assert result.depth.shape == (100, 320) and result.sigma.shape == (100, 320)
    assert result.radar_image.shape == (4, 100, 320)  # the overlay stays at frame size
    # Unchanged focal length (or an older weights file without one): served as is.
    plain = RampEstimator()
    pipeline.FramePipeline(plain).process(frame)
    assert plain.calls[0][0] == (1, 100, 320, 3)
