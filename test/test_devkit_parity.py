"""Parity of rcdepth_ros geometry and PCD parsing with the nuscenes-devkit's own code."""

import copy
from pathlib import Path

import numpy as np
from nuscenes.utils.data_classes import LidarPointCloud, RadarPointCloud
from nuscenes.utils.geometry_utils import transform_matrix, view_points
from pyquaternion import Quaternion
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header

from rcdepth_ros import geometry as g
from rcdepth_ros import msgs

RADAR_DIR = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'nuscenes-radar'
H, W = 450, 800  # H != W, half nuScenes size
K = np.array([[633.2, 0.0, 408.1], [0.0, 633.2, 245.8], [0.0, 0.0, 1.0]])
# Every devkit state filter disabled, without touching the devkit's class-level settings.
NO_FILTERS = dict(invalid_states=list(range(18)), dynprop_states=list(range(8)),
                  ambig_states=list(range(5)))


def random_record(rng, scale=2.0):
    q = Quaternion(axis=rng.normal(size=3), angle=rng.uniform(-0.3, 0.3))
    return {'rotation': list(q.elements), 'translation': list(rng.normal(scale=scale, size=3))}


def camera_record(rng):
    # Optical camera looking along ego +x, slightly perturbed, as CAM_FRONT.
    base = Quaternion(matrix=np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]))
    q = base * Quaternion(axis=rng.normal(size=3), angle=0.05)
    return {'rotation': list(q.elements), 'translation': [1.7, 0.0, 1.5]}


def devkit_chain(pc, sensor_calib, ego_sensor, ego_cam, cam_calib):
    """The steps of NuScenesExplorer.map_pointcloud_to_image, with devkit primitives."""
    pc = copy.deepcopy(pc)
    pc.rotate(Quaternion(sensor_calib['rotation']).rotation_matrix)
    pc.translate(np.array(sensor_calib['translation']))
    pc.rotate(Quaternion(ego_sensor['rotation']).rotation_matrix)
    pc.translate(np.array(ego_sensor['translation']))
    pc.translate(-np.array(ego_cam['translation']))
    pc.rotate(Quaternion(ego_cam['rotation']).rotation_matrix.T)
    pc.translate(-np.array(cam_calib['translation']))
    pc.rotate(Quaternion(cam_calib['rotation']).rotation_matrix.T)
    depths = pc.points[2, :]
    points = view_points(pc.points[:3, :], K, normalize=True)
    mask = (depths > 1.0) & (points[0] > 1) & (points[0] < W - 1) & (points[1] > 1) & (
        points[1] < H - 1)
    return points, depths, mask, pc


def random_scene(seed):
    rng = np.random.default_rng(seed)
    sensor_calib = {'rotation': list(Quaternion(axis=[0, 0, 1], angle=0.02).elements),
                    'translation': [3.4, 0.0, 0.5]}
    ego_cam = {'rotation': list(Quaternion(axis=[0, 0, 1], angle=1.2).elements),
               'translation': [400.0, 1100.0, 0.0]}
    # The sensor sweep is taken 50 ms away: a slightly different ego pose.
    ego_sensor = {'rotation': list(Quaternion(axis=[0, 0, 1], angle=1.21).elements),
                  'translation': [400.6, 1100.3, 0.01]}
    return rng, sensor_calib, ego_sensor, ego_cam, camera_record(rng)


def test_primitives_match_devkit():
    rng = np.random.default_rng(0)
    for _ in range(10):
        rec = random_record(rng)
        q = Quaternion(rec['rotation'])
        np.testing.assert_allclose(g.quat_to_matrix(rec['rotation']), q.rotation_matrix,
                                   atol=1e-12)
        q_back = Quaternion(matrix=q.rotation_matrix).elements
        ours = g.matrix_to_quat(q.rotation_matrix)
        np.testing.assert_allclose(ours, q_back * np.sign(q_back[0]), atol=1e-9)
        np.testing.assert_allclose(g.record_transform(rec),
                                   transform_matrix(rec['translation'], q), atol=1e-12)
        np.testing.assert_allclose(g.invert_transform(g.record_transform(rec)),
                                   transform_matrix(rec['translation'], q, inverse=True),
                                   atol=1e-12)
    pts = rng.normal(size=(50, 3)) * 5 + [0, 0, 10]
    uv, depth = g.project_points(pts, K)
    ref = view_points(pts.T, K, normalize=True)
    np.testing.assert_allclose(uv, ref[:2].T, rtol=1e-12)
    np.testing.assert_allclose(depth, pts[:, 2])


@pytest.mark.parametrize('seed', [1, 2])
def test_radar_projection_matches_devkit_chain(seed):
    rng, sensor_calib, ego_sensor, ego_cam, cam_calib = random_scene(seed)
    n = 300
    raw = np.zeros((18, n))
    raw[0] = rng.uniform(1, 90, n)      # x forward
    raw[1] = rng.uniform(-40, 40, n)    # y left
    raw[5] = rng.uniform(-5, 30, n)     # rcs
    raw[6:8] = rng.normal(size=(2, n))  # vx, vy
    points, depths, mask, _ = devkit_chain(RadarPointCloud(raw.copy()), sensor_calib,
                                           ego_sensor, ego_cam, cam_calib)
    assert 20 < mask.sum() < n  # some in, some out of the image

    T = g.nuscenes_sensor_to_camera(sensor_calib, ego_sensor, ego_cam, cam_calib)
    ours = np.stack([raw[0], raw[1], raw[2], raw[5], raw[6], raw[7]], axis=1)  # (N, 6)
    uv, depth = g.project_points(g.transform_points(T, ours[:, :3]), K)
    np.testing.assert_allclose(uv, points[:2].T, rtol=1e-9, atol=1e-7)
    np.testing.assert_allclose(depth, depths, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(g.in_image_mask(uv, depth, H, W), mask)

    # Radar image: rasterise the devkit's points the reference way (np.round, nearer wins).
    img = g.radar_image(ours.astype(np.float32), T, K, H, W)
    want = np.zeros((4, H, W), np.float32)
    best = np.full((H, W), np.inf)
    cols, rows = np.round(points[:2, mask]).astype(int)
    feats = np.stack([depths[mask], raw[5, mask], raw[6, mask], raw[7, mask]])
    for i in range(cols.size):
        if depths[mask][i] < best[rows[i], cols[i]]:
            best[rows[i], cols[i]] = depths[mask][i]
            want[:, rows[i], cols[i]] = feats[:, i]
    np.testing.assert_allclose(img, want, rtol=1e-5, atol=1e-5)


def test_lidar_projection_matches_devkit_chain():
    rng, sensor_calib, ego_sensor, ego_cam, cam_calib = random_scene(3)
    sensor_calib = {'rotation': list(Quaternion(axis=[0, 0, 1], angle=-1.57).elements),
                    'translation': [0.9, 0.0, 1.8]}
    n = 5000
    pts = np.zeros((4, n), np.float32)
    pts[:3] = rng.uniform([-60, -60, -3], [60, 60, 3], size=(n, 3)).T
    # float64 in the devkit cloud: LidarPointCloud.from_file keeps float32, which rounds the
    # global coordinates (~1e-4 m at 1 km); here we compare the math, not the storage type.
    points, depths, mask, _ = devkit_chain(LidarPointCloud(pts.astype(np.float64)), sensor_calib,
                                           ego_sensor, ego_cam, cam_calib)
    T = g.nuscenes_sensor_to_camera(sensor_calib, ego_sensor, ego_cam, cam_calib)
    depth_img = g.lidar_depth_image(pts[:3].T, T, K, H, W)
    want = np.zeros((H, W), np.float32)
    best = np.full((H, W), np.inf)
    cols, rows = np.round(points[:2, mask]).astype(int)
    for c, r, d in zip(cols, rows, depths[mask]):
        if d < best[r, c]:
            best[r, c] = d
            want[r, c] = d
    assert np.count_nonzero(want) > 100
    np.testing.assert_allclose(depth_img, want, rtol=1e-6)


@pytest.fixture(scope='module')
def radar_files():
    if not RADAR_DIR.is_dir():
        pytest.skip(f'{RADAR_DIR} is absent')
    files = sorted(RADAR_DIR.glob('*.pcd'))
    assert len(files) == 2
    return files


def test_radar_pcd_header_matches_dtype(radar_files):
    for path in radar_files:
        head = path.read_bytes().split(b'DATA binary')[0].decode().splitlines()
        rows = {line.split()[0]: line.split()[1:] for line in head if not line.startswith('#')}
        dt = msgs.NUSCENES_RADAR_DTYPE
        assert tuple(rows['FIELDS']) == dt.names
        assert [int(s) for s in rows['SIZE']] == [dt.fields[n][0].itemsize for n in dt.names]
        assert rows['TYPE'] == ['F' if dt.fields[n][0].kind == 'f' else 'I' for n in dt.names]


def test_radar_pcd_through_pointcloud2_matches_devkit(radar_files):
    for path in radar_files:
        ref = RadarPointCloud.from_file(str(path), **NO_FILTERS).points  # (18, N)
        assert ref.shape == (18, 125)
        arr = msgs.read_radar_pcd(path)
        assert arr.dtype == msgs.NUSCENES_RADAR_DTYPE
        fields = msgs.array_to_pointcloud2_fields(arr)
        msg = msgs.build_message(PointCloud2, fields, header=Header(frame_id='RADAR'))
        msg = deserialize_message(serialize_message(msg), PointCloud2)
        back = msgs.pointcloud2_to_array(msg)
        got = np.stack([back[name].astype(np.float64) for name in back.dtype.names])
        np.testing.assert_array_equal(got, ref)
        pts = msgs.radar_points_from_array(back)
        np.testing.assert_array_equal(pts, ref[[0, 1, 2, 5, 6, 7]].T.astype(np.float32))
        # With the devkit's default filters ~70 points remain (README: 69-70).
        assert 60 < RadarPointCloud.from_file(str(path), invalid_states=[0],
                                              dynprop_states=range(7),
                                              ambig_states=[3]).nbr_points() < 80


def test_write_radar_pcd_is_read_by_devkit(radar_files, tmp_path):
    arr = msgs.read_radar_pcd(radar_files[0])
    out = tmp_path / 'sweep.pcd'
    msgs.write_radar_pcd(out, arr[:40])
    ref = RadarPointCloud.from_file(str(out), **NO_FILTERS).points
    np.testing.assert_array_equal(
        ref, np.stack([arr[:40][n].astype(np.float64) for n in arr.dtype.names]))
    np.testing.assert_array_equal(msgs.read_radar_pcd(out), arr[:40])
    # An empty sweep: the devkit's NaN-first-point convention.
    msgs.write_radar_pcd(out, arr[:0])
    assert RadarPointCloud.from_file(str(out), **NO_FILTERS).nbr_points() == 0
    assert msgs.read_radar_pcd(out).shape == (0,)


def test_read_radar_pcd_rejects_malformed(tmp_path, radar_files):
    raw = radar_files[0].read_bytes()
    cases = {
        'ascii.pcd': raw.replace(b'DATA binary', b'DATA ascii'),
        'short.pcd': raw[:raw.index(b'DATA binary') + 12 + 100],
        'noheader.pcd': b'garbage without a header',
        'type.pcd': raw.replace(b'TYPE F', b'TYPE Q'),
        'points.pcd': raw.replace(b'POINTS 125', b'POINTS 126'),
    }
    reasons = {'ascii.pcd': 'only DATA binary', 'short.pcd': 'data bytes',
               'noheader.pcd': 'no DATA line', 'type.pcd': 'unsupported field',
               'points.pcd': 'POINTS'}
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ValueError, match=reasons[name]):
            msgs.read_radar_pcd(path)
