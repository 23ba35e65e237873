"""The real nuScenes frame (scene-0061) through the projection chain and the codecs."""

import json
from pathlib import Path

import numpy as np
from nuscenes.utils.data_classes import LidarPointCloud
from nuscenes.utils.geometry_utils import view_points
from pyquaternion import Quaternion
import pytest
from sensor_msgs.msg import PointCloud2

from rcdepth_ros import geometry as g
from rcdepth_ros import msgs

FRAME = (Path(__file__).resolve().parents[1].parent / 'shared' / 'data'
         / 'nuscenes-frame-scene0061')
H, W = 900, 1600


@pytest.fixture(scope='module')
def frame():
    if not FRAME.is_dir():
        pytest.skip(f'{FRAME} is absent')
    tables = {name: json.loads((FRAME / 'tables' / f'{name}.json').read_text())
              for name in ('sensor', 'calibrated_sensor', 'ego_pose', 'sample_data')}
    channel = {s['token']: s['channel'] for s in tables['sensor']}
    calib = {c['token']: c for c in tables['calibrated_sensor']}
    poses = {e['token']: e for e in tables['ego_pose']}
    by_channel = {}
    for sd in tables['sample_data']:
        cs = calib[sd['calibrated_sensor_token']]
        by_channel[channel[cs['sensor_token']]] = (sd, cs, poses[sd['ego_pose_token']])
    radar = json.loads((FRAME / 'radar_front' / 'records.json').read_text())
    by_channel['RADAR_FRONT'] = (radar['sample_data'], radar['calibrated_sensor'],
                                 radar['ego_pose'])
    return by_channel


def chain(frame, sensor):
    _, s_cal, s_pose = frame[sensor]
    _, c_cal, c_pose = frame['CAM_FRONT']
    K = np.array(c_cal['camera_intrinsic'])
    return g.nuscenes_sensor_to_camera(s_cal, s_pose, c_pose, c_cal), K


def lidar_points(frame):
    sd = frame['LIDAR_TOP'][0]
    path = FRAME / 'samples' / 'LIDAR_TOP' / Path(sd['filename']).name
    return path, np.fromfile(path, dtype=np.float32).reshape(-1, 5)  # (N, 5)


def test_lidar_in_camera_front(frame):
    path, pts = lidar_points(frame)
    assert pts.shape == (34688, 5)
    T, K = chain(frame, 'LIDAR_TOP')
    uv, depth = g.project_points(g.transform_points(T, pts[:, :3]), K)
    mask = g.in_image_mask(uv, depth, H, W)
    assert mask.sum() == 3053
    depth_img = g.lidar_depth_image(pts, T, K, H, W)
    assert depth_img.shape == (H, W)
    # Pixels hold the nearest of the points landing there.
    n_pixels = np.unique(g.pixel_indices(uv[mask])[0] * W + g.pixel_indices(uv[mask])[1]).size
    assert np.count_nonzero(depth_img) == n_pixels
    assert 1.0 < depth_img[depth_img > 0].min() and depth_img.max() < 100.0

    # The devkit's own float32 chain on the same file agrees to its float32 precision.
    pc = LidarPointCloud.from_file(str(path))
    _, s_cal, s_pose = frame['LIDAR_TOP']
    _, c_cal, c_pose = frame['CAM_FRONT']
    pc.rotate(Quaternion(s_cal['rotation']).rotation_matrix)
    pc.translate(np.array(s_cal['translation']))
    pc.rotate(Quaternion(s_pose['rotation']).rotation_matrix)
    pc.translate(np.array(s_pose['translation']))
    pc.translate(-np.array(c_pose['translation']))
    pc.rotate(Quaternion(c_pose['rotation']).rotation_matrix.T)
    pc.translate(-np.array(c_cal['translation']))
    pc.rotate(Quaternion(c_cal['rotation']).rotation_matrix.T)
    ref_uv = view_points(pc.points[:3], K, normalize=True)[:2].T
    np.testing.assert_allclose(uv[mask], ref_uv[mask], atol=0.05)
    np.testing.assert_allclose(depth[mask], pc.points[2, mask], atol=1e-3)


def test_radar_in_camera_front(frame):
    rows = np.loadtxt(FRAME / 'radar_front' / 'points_filtered_18xN.csv', delimiter=',')
    assert rows.shape == (18, 74)
    # Through the codecs as the node receives it: a 43-byte nuScenes PointCloud2.
    cloud = np.zeros(74, dtype=msgs.NUSCENES_RADAR_DTYPE)
    for i, name in enumerate(msgs.NUSCENES_RADAR_DTYPE.names):
        cloud[name] = rows[i]
    msg = msgs.build_message(PointCloud2, msgs.array_to_pointcloud2_fields(cloud))
    pts = msgs.radar_points_from_array(msgs.pointcloud2_to_array(msg))
    assert pts.shape == (74, 6)
    T, K = chain(frame, 'RADAR_FRONT')
    uv, depth = g.project_points(g.transform_points(T, pts[:, :3]), K)
    mask = g.in_image_mask(uv, depth, H, W)
    assert mask.sum() == 61
    assert depth[mask].min() == pytest.approx(10.4, abs=0.05)
    assert depth[mask].max() == pytest.approx(83.4, abs=0.05)
    img = g.radar_image(pts, T, K, H, W)
    filled = img[0] > 0
    rows_i, cols_i = g.pixel_indices(uv[mask])
    assert filled.sum() == np.unique(rows_i * W + cols_i).size
    np.testing.assert_allclose(np.sort(img[0][filled]),
                               np.sort([depth[mask][(rows_i == r) & (cols_i == c)].min()
                                        for r, c in zip(*np.nonzero(filled))]), rtol=1e-6)
    # RCS and raw velocities ride along with their point.
    k = int(np.argmin(np.where(mask, depth, np.inf)))
    r, c = int(np.rint(uv[k, 1])), int(np.rint(uv[k, 0]))
    np.testing.assert_allclose(img[:, r, c], [depth[k], *pts[k, 3:]], rtol=1e-6)


def test_camera_image_decodes_with_matching_size(frame):
    sd = frame['CAM_FRONT'][0]
    data = (FRAME / 'samples' / 'CAM_FRONT' / Path(sd['filename']).name).read_bytes()
    rgb = msgs.compressed_to_rgb(type('Msg', (), {'format': 'jpeg', 'data': data})())
    assert rgb.shape == (sd['height'], sd['width'], 3) == (H, W, 3)
