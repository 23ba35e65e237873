"""The frame assembler: pairing, drop reasons, time jumps, and where lagging-odometry radar lands.

Messages are plain namespaces with the message fields (the assembler reads fields only).
Oracles are hand-computed positions of a static point seen from a car moving at 9.4 m/s.
"""

from types import SimpleNamespace

import numpy as np
import pytest

from rcdepth_ros import counters, geometry, msgs
from rcdepth_ros.assembler import FrameAssembler
from rcdepth_ros.calibration import CalibrationExtrinsics, parse_calibration
from rcdepth_ros.ros import harness
from rcdepth_ros.ros.params import config_from_dict

H, W = 48, 80  # H != W
MS = 1_000_000
SPEED = 9.4  # m/s forward (base x)


def _header(stamp_ns, frame_id):
    return SimpleNamespace(stamp=SimpleNamespace(sec=stamp_ns // 10**9,
                                                 nanosec=stamp_ns % 10**9),
                           frame_id=frame_id)


def _image(stamp_ns, frame_id=harness.CAMERA_FRAME):
    fields = msgs.array_to_image_fields(np.zeros((H, W, 3), np.uint8), 'rgb8')
    return SimpleNamespace(header=_header(stamp_ns, frame_id), **fields)


def _info(stamp_ns, **override):
    fields = msgs.camera_info_fields(harness.intrinsics(H, W), H, W)
    fields.update(override)
    return SimpleNamespace(header=_header(stamp_ns, harness.CAMERA_FRAME), **fields)


def _radar(stamp_ns, xyz_radar):
    pts = np.zeros(len(xyz_radar), dtype=msgs.NUSCENES_RADAR_DTYPE)
    for i, (x, y, z) in enumerate(xyz_radar):
        pts[i]['x'], pts[i]['y'], pts[i]['z'] = x, y, z
    fields = msgs.array_to_pointcloud2_fields(pts)
    fields['fields'] = [SimpleNamespace(**f) for f in fields['fields']]
    return SimpleNamespace(header=_header(stamp_ns, harness.RADAR_FRAME), **fields)


def _odometry(stamp_ns, x, vx):
    v = SimpleNamespace(x=vx, y=0.0, z=0.0)
    return SimpleNamespace(
        header=_header(stamp_ns, 'odom'),
        pose=SimpleNamespace(pose=SimpleNamespace(
            position=SimpleNamespace(x=x, y=0.0, z=0.0),
            orientation=SimpleNamespace(w=1.0, x=0.0, y=0.0, z=0.0))),
        twist=SimpleNamespace(twist=SimpleNamespace(
            linear=v, angular=SimpleNamespace(x=0.0, y=0.0, z=0.0))))


def _assembler(**params):
    config = config_from_dict({'radar_topics': ['/radar'], 'odom_topic': '/odom', **params})
    ext = CalibrationExtrinsics(parse_calibration(harness.calibration_dict(H, W)))
    return FrameAssembler(config, ext)


def test_image_pairs_with_the_camera_info_of_its_stamp_in_either_order():
    asm = _assembler()
    assert asm.add_image(_image(100 * MS)) == []
    [paired] = asm.add_camera_info(_info(100 * MS))
    assert paired.stamp_ns == 100 * MS and paired.size == (H, W)
    asm.add_camera_info(_info(200 * MS))
    [paired] = asm.add_image(_image(200 * MS))
    assert paired.stamp_ns == 200 * MS
    assert asm.add_camera_info(_info(150 * MS)) == []  # no image of that stamp
    # Cameras pair separately: a camera_info of another camera does not match.
    assert asm.add_image(_image(300 * MS), camera='CAM_B') == []
    assert asm.add_camera_info(_info(300 * MS)) == []
    [paired] = asm.add_camera_info(_info(300 * MS), camera='CAM_B')
    assert paired.camera == 'CAM_B'
    assert dict(asm.counts) == {}


def test_every_drop_is_counted_under_its_reason():
    reported = []
    asm = _assembler()
    asm.on_bad = lambda kind, reason: reported.append(kind)
    for t in range(1, 7):  # PENDING_IMAGES = 4 wait; two are pushed out
        asm.add_image(_image(t * 10 * MS))
    assert asm.counts[counters.NO_CAMERA_INFO] == 2
    asm.finish()  # end of input: the four still waiting
    assert asm.counts[counters.NO_CAMERA_INFO] == 6 and asm.pending() == 0
    asm.add_camera_info(_info(10 * MS, k=[0.0] * 9))
    assert asm.counts[counters.CAMERA_INFO] == 1
    # A camera_info of another size than its image: the frame is refused, counted.
    asm.add_camera_info(_info(3000 * MS, height=H + 1))
    [paired] = asm.add_image(_image(3000 * MS))
    assert asm.assemble(paired) is None and asm.counts[counters.CAMERA_INFO_MISMATCH] == 1
    asm.add_radar('/radar', _radar(3000 * MS, []))
    assert asm.counts[counters.RADAR_EMPTY] == 1
    bad_odometry = _odometry(3000 * MS, 0.0, 1.0)
    bad_odometry.pose.pose.orientation.w = 0.0  # zero quaternion
    asm.add_odometry(bad_odometry)
    asm.add_odometry(_odometry(3000 * MS, float('nan'), 1.0))
    assert asm.counts[counters.ODOMETRY] == 2 and len(asm.odom) == 0
    # A bag that loops: everything buffered is forgotten, once counted.
    asm.add_radar('/radar', _radar(2990 * MS, [(10.0, 0.0, 0.0)]))
    asm.add_image(_image(10 * MS))
    assert asm.counts[counters.TIME_JUMP] == 1 and len(asm.radar['/radar']) == 0
    assert sorted(set(reported)) == sorted(k for k in asm.counts)


def _lagging_run(odometry: str):
    """Car at 9.4 m/s; a sweep 60 ms before the image; odometry ends 50 ms before the image.

    Returns the camera-frame point of a static target 20 m ahead of the radar, and the
    assembler.
    """
    t_img = 1000 * MS
    asm = _assembler()
    if odometry != 'none':
        for t in range(700, 951, 25):  # the newest pose is 50 ms before the image
            x = SPEED * t * 1e-3
            if odometry == 'twist':
                asm.add_odometry(_odometry(t * MS, x, SPEED))
            else:  # poses alone (as from /tf): the twist is the finite difference
                asm.add_pose(t * MS, geometry.make_transform([1, 0, 0, 0], [x, 0, 0]))
    asm.add_radar('/radar', _radar(t_img - 60 * MS, [(20.0, 0.0, 0.0)]))
    asm.add_camera_info(_info(t_img))
    [paired] = asm.add_image(_image(t_img))
    frame = asm.assemble(paired)
    return frame.radar_points_cam, asm


@pytest.mark.parametrize('odometry', ['twist', 'poses'])
def test_lagging_odometry_is_extrapolated_and_the_radar_lands_where_the_target_is(odometry):
    points, asm = _lagging_run(odometry)
    # The target is 20 m ahead of the radar (3 m ahead of base, 0.5 m up) at the sweep; in
    # the 60 ms to the image the car moved 0.564 m towards it. The camera sits 1.5 m ahead
    # of base, 1.5 m up, optical axes (x right, y down, z forward).
    ahead = 3.0 + 20.0 - SPEED * 0.060 - 1.5
    np.testing.assert_allclose(points[:, :3], [[0.0, 1.5 - 0.5, ahead]], atol=1e-4)
    assert asm.counts[counters.FRAMES_UNCOMPENSATED] == 0


def test_missing_odometry_leaves_the_radar_uncompensated_and_counts_the_frame():
    points, asm = _lagging_run('none')
    np.testing.assert_allclose(points[:, :3], [[0.0, 1.0, 3.0 + 20.0 - 1.5]], atol=1e-4)
    assert asm.counts[counters.FRAMES_UNCOMPENSATED] == 1


def test_odometry_further_behind_than_the_extrapolation_bound_is_not_trusted():
    asm = _assembler()
    asm.add_odometry(_odometry(0, 0.0, SPEED))  # 1 s before the image
    asm.add_radar('/radar', _radar(940 * MS, [(20.0, 0.0, 0.0)]))
    asm.add_camera_info(_info(1000 * MS))
    [paired] = asm.add_image(_image(1000 * MS))
    points = asm.assemble(paired).radar_points_cam
    np.testing.assert_allclose(points[:, 2], [21.5], atol=1e-4)  # static transform only
    assert asm.counts[counters.FRAMES_UNCOMPENSATED] == 1


def test_radar_parameters_apply_when_decoding():
    asm = _assembler(**{'radar.max_points': 2})
    asm.add_radar('/radar', _radar(0, [(10.0, 0, 0)] * 3))
    assert asm.counts[counters.RADAR_HUGE] == 1 and len(asm.radar['/radar']) == 0
    # Live change of window / sweeps reaches the buffers.
    asm.configure(config_from_dict({'radar_topics': ['/radar'], 'radar.window': 0.5,
                                    'radar.max_sweeps': 3}))
    assert asm.radar['/radar'].window_ns == 500 * MS and asm.radar['/radar'].max_sweeps == 3
