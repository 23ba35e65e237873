"""Known-answer tests of rcdepth_ros.geometry (H != W everywhere to catch transposes)."""

import numpy as np
import pytest

from rcdepth_ros import geometry as g

H, W = 40, 60
K = np.array([[100.0, 0.0, 30.0], [0.0, 200.0, 20.0], [0.0, 0.0, 1.0]])

# Optical camera looking along ego +x: cam x = -ego y, cam y = -ego z, cam z = ego x.
R_EGO_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def _record(rotation, translation):
    rot = np.asarray(rotation, dtype=float)
    q = g.matrix_to_quat(rot) if rot.shape == (3, 3) else rot
    return {'rotation': list(q), 'translation': list(translation)}


def test_quat_to_matrix_known_rotation():
    q = [np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)]  # 90 deg about z
    np.testing.assert_allclose(g.quat_to_matrix(q), [[0, -1, 0], [1, 0, 0], [0, 0, 1]],
                               atol=1e-12)
    # Unnormalised input is normalised first.
    np.testing.assert_allclose(g.quat_to_matrix(np.array(q) * 3.0), g.quat_to_matrix(q))


@pytest.mark.parametrize('axis', [0, 1, 2])
def test_matrix_to_quat_round_trip_all_branches(axis):
    rng = np.random.default_rng(axis)
    # 180 deg rotations exercise the non-trace branches of Shepperd's method.
    q_half = np.zeros(4)
    q_half[axis + 1] = 1.0
    for q in [q_half, *rng.normal(size=(20, 4))]:
        q = q / np.linalg.norm(q)
        q_back = g.matrix_to_quat(g.quat_to_matrix(q))
        assert q_back[0] >= 0
        # q and -q are the same rotation.
        np.testing.assert_allclose(q_back, q * np.sign(q[0] if q[0] != 0 else 1.0),
                                   atol=1e-9)
        np.testing.assert_allclose(g.quat_to_matrix(q_back), g.quat_to_matrix(q), atol=1e-9)


def test_quaternion_and_matrix_errors():
    with pytest.raises(ValueError, match='zero norm'):
        g.quat_to_matrix([0, 0, 0, 0])
    with pytest.raises(ValueError, match='shape'):
        g.quat_to_matrix([1, 0, 0])
    with pytest.raises(ValueError, match='non-finite'):
        g.quat_to_matrix([np.nan, 0, 0, 1])
    with pytest.raises(ValueError, match='orthonormal'):
        g.matrix_to_quat(np.diag([1.0, 1.0, -1.0]))


def test_transforms_compose_and_invert():
    T = g.make_transform([np.cos(0.3), 0.1, -0.2, np.sin(0.3)], [1.0, -2.0, 3.0])
    np.testing.assert_allclose(T @ g.invert_transform(T), np.eye(4), atol=1e-12)
    pts = np.array([[1.0, 2.0, 3.0], [-4.0, 0.5, 0.0]])
    back = g.transform_points(g.invert_transform(T), g.transform_points(T, pts))
    np.testing.assert_allclose(back, pts, atol=1e-12)
    # Extra columns ride along unchanged, dtype is kept.
    pts6 = np.array([[1, 2, 3, 7, 8, 9]], dtype=np.float32)
    out = g.transform_points(np.eye(4), pts6)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, pts6)
    with pytest.raises(ValueError, match=r'\(N, >=3\)'):
        g.transform_points(T, np.zeros((4, 2)))


def test_record_transform_requires_keys():
    with pytest.raises(ValueError, match='rotation'):
        g.record_transform({'translation': [0, 0, 0]})
    T = g.record_transform({'rotation': [1, 0, 0, 0], 'translation': [1, 2, 3]})
    np.testing.assert_array_equal(T[:3, 3], [1, 2, 3])


def test_nuscenes_chain_known_answer():
    # Radar 1 m ahead of the ego origin; ego moves +1 m in x between radar and camera times.
    sensor_calib = _record([1, 0, 0, 0], [1.0, 0.0, 0.0])
    ego_pose_sensor = _record([1, 0, 0, 0], [10.0, 0.0, 0.0])
    ego_pose_cam = _record([1, 0, 0, 0], [11.0, 0.0, 0.0])
    cam_calib = _record(R_EGO_FROM_OPTICAL, [0.0, 0.0, 0.0])
    T = g.nuscenes_sensor_to_camera(sensor_calib, ego_pose_sensor, ego_pose_cam, cam_calib)
    # Radar (5, 2, 1) -> ego_s (6, 2, 1) -> global (16, 2, 1) -> ego_c (5, 2, 1)
    # -> optical (-2, -1, 5).
    np.testing.assert_allclose(g.transform_points(T, [[5.0, 2.0, 1.0]]), [[-2.0, -1.0, 5.0]],
                               atol=1e-12)


def test_projection_and_mask_known_answers_h_ne_w():
    pts = np.array([
        [0.0, 0.0, 2.0],      # centre: u=30, v=20
        [0.2, -0.05, 2.0],    # u=40, v=15
        [1.0, 0.5, 2.0],      # u=80: out of frame (W=60)
        [0.0, 0.25, 2.0],     # v=45: out of frame (H=40) though u fits: catches transposes
        [np.nan, 0.0, 2.0],   # NaN
        [0.0, 0.0, -2.0],     # behind the camera
        [0.0, 0.0, 0.5],      # closer than min depth
    ])
    uv, depth = g.project_points(pts, K)
    np.testing.assert_allclose(uv[0], [30.0, 20.0])
    np.testing.assert_allclose(uv[1], [40.0, 15.0])
    np.testing.assert_allclose(uv[3], [30.0, 45.0])
    np.testing.assert_allclose(depth[:2], [2.0, 2.0])
    mask = g.in_image_mask(uv, depth, H, W)
    np.testing.assert_array_equal(mask, [True, True, False, False, False, False, False])
    # v=45 fits a 60-row image, u=80 does not fit 60 columns either way.
    swapped = g.in_image_mask(uv, depth, W, H)
    assert swapped[3] and not swapped[2]
    # The 1-px border is strict, as in the devkit: 1 < u < W - 1, 1 < v < H - 1.
    uv_b = np.array([[1.0, 5], [1.05, 5], [58.99, 5], [59.0, 5], [5, 38.9], [5, 39.0],
                     [5, 1.0]])
    np.testing.assert_array_equal(g.in_image_mask(uv_b, np.full(7, 3.0), H, W),
                                  [False, True, True, False, True, False, False])
    np.testing.assert_array_equal(g.in_image_mask(uv_b, np.full(7, 3.0), H, W, border=0),
                                  [True] * 7)


def test_validate_and_scale_intrinsics():
    for bad, msg in [(np.zeros((3, 3)), 'positive focal'), (np.full((3, 3), np.nan),
                                                           'non-finite'),
                     (np.eye(2), 'shape'), (np.array([[1, 0, 0], [0, 1, 0], [0, 1, 1.0]]),
                                            'last row')]:
        with pytest.raises(ValueError, match=msg):
            g.validate_intrinsics(bad)
    # Halving a 4-wide image: centre 1.5 -> 0.5 with pixel centres on integers.
    K4 = np.array([[4.0, 0, 1.5], [0, 8.0, 3.5], [0, 0, 1]])
    np.testing.assert_allclose(g.scale_intrinsics(K4, 0.5, 0.25),
                               [[2.0, 0, 0.5], [0, 2.0, 0.5], [0, 0, 1]])


def test_rasterize_rounding_nearer_wins_and_layout():
    uv = np.array([
        [10.4, 3.6],   # -> row 4, col 10
        [10.2, 4.4],   # same pixel, nearer: wins
        [10.5, 7.5],   # half to even: col 10, row 8
        [11.5, 7.5],   # col 12, row 8
        [59.6, 5.0],   # rounds to col 60: outside, dropped
        [5.0, 5.0],    # zero depth: dropped
    ])
    depth = np.array([5.0, 3.0, 7.0, 9.0, 4.0, 0.0])
    values = np.stack([depth, np.arange(6.0)], axis=1)  # (6, 2)
    img = g.rasterize_points(uv, depth, values, H, W)
    assert img.shape == (2, H, W) and img.dtype == np.float32
    assert img[0, 4, 10] == 3.0 and img[1, 4, 10] == 1.0
    assert img[0, 8, 10] == 7.0 and img[0, 8, 12] == 9.0
    assert np.count_nonzero(img[0]) == 3
    # Order does not matter.
    perm = np.array([1, 0, 3, 2, 5, 4])
    np.testing.assert_array_equal(g.rasterize_points(uv[perm], depth[perm], values[perm], H, W),
                                  img)


def test_rasterize_matches_bruteforce_loop():
    rng = np.random.default_rng(0)
    n = 400
    uv = rng.uniform(-2, [W + 2, H + 2], size=(n, 2))
    uv[::7] = np.round(uv[::7])  # many collisions on a coarse grid
    uv[::7] //= 4
    depth = rng.uniform(0.5, 50, size=n)
    values = rng.normal(size=(n, 3))
    got = g.rasterize_points(uv, depth, values, H, W)
    want = np.zeros((3, H, W), np.float32)
    best = np.full((H, W), np.inf)
    for i in range(n):
        r, c = int(np.rint(uv[i, 1])), int(np.rint(uv[i, 0]))
        if 0 <= r < H and 0 <= c < W and depth[i] < best[r, c]:
            best[r, c] = depth[i]
            want[:, r, c] = values[i]
    np.testing.assert_array_equal(got, want)


def test_radar_image_channels_and_filters():
    # Radar frame = camera frame here; the point values are known.
    pts = np.array([
        [0.0, 0.0, 2.0, 5.0, 1.5, -0.5],
        [0.0, 0.0, 4.0, 9.0, 9.0, 9.0],        # same pixel, farther: loses
        [0.2, -0.05, 2.0, np.nan, 0.0, 0.0],   # non-finite RCS: dropped
        [0.0, 0.0, 0.9, 1.0, 1.0, 1.0],        # nearer than 1 m: dropped
    ], dtype=np.float32)
    img = g.radar_image(pts, np.eye(4), K, H, W)
    assert img.shape == (4, H, W) and img.dtype == np.float32
    np.testing.assert_allclose(img[:, 20, 30], [2.0, 5.0, 1.5, -0.5])
    assert np.count_nonzero(img[0]) == 1
    with pytest.raises(ValueError, match=r'\(N, >=6\)'):
        g.radar_image(pts[:, :5], np.eye(4), K, H, W)
    with pytest.raises(ValueError, match='focal'):
        g.radar_image(pts, np.eye(4), np.zeros((3, 3)), H, W)
    empty = g.radar_image(np.zeros((0, 6), np.float32), np.eye(4), K, H, W)
    assert not empty.any()


def test_lidar_depth_image_nearest_wins():
    pts = np.array([[0.0, 0.0, 8.0], [0.0, 0.0, 6.0], [0.0, 0.0, 7.0], [0.2, -0.05, 2.0]])
    T = g.make_transform([1, 0, 0, 0], [0.0, 0.0, 0.0])
    depth = g.lidar_depth_image(pts, T, K, H, W)
    assert depth.shape == (H, W) and depth.dtype == np.float32
    assert depth[20, 30] == 6.0 and depth[15, 40] == 2.0
    assert np.count_nonzero(depth) == 2


def test_sweeps_to_camera_compensates_ego_motion():
    cam_calib = _record(R_EGO_FROM_OPTICAL, [0.0, 0.0, 0.0])
    radar_calib = _record([1, 0, 0, 0], [2.0, 0.0, 0.5])
    ego_cam = _record([1, 0, 0, 0], [100.0, 0.0, 0.0])
    # A static world point at global (110, 1, 0.5) seen in two sweeps from two ego poses.
    world = np.array([110.0, 1.0, 0.5])
    sweeps = []
    for ego_x, yaw in [(100.0, 0.0), (98.0, 0.1)]:
        ego = _record([np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)], [ego_x, 0.0, 0.0])
        T_radar_from_global = g.invert_transform(
            g.record_transform(ego) @ g.record_transform(radar_calib))
        p = g.transform_points(T_radar_from_global, world[None])[0]
        pts = np.array([[*p, 3.0, 0.25, -0.25]], dtype=np.float32)
        sweeps.append((pts, g.nuscenes_sensor_to_camera(radar_calib, ego, ego_cam, cam_calib)))
    cloud = g.sweeps_to_camera(sweeps)
    assert cloud.dtype == np.float32
    assert cloud.shape == (2, 6)
    # Both sweeps land on the same camera point: (-1, -0.5, 10) in optical coordinates.
    np.testing.assert_allclose(cloud[:, :3], [[-1.0, -0.5, 10.0]] * 2, atol=1e-4)
    np.testing.assert_array_equal(cloud[:, 3:], [[3.0, 0.25, -0.25]] * 2)
    img = g.radar_image(cloud, np.eye(4), K, H, W)
    assert np.count_nonzero(img[0]) == 1
    np.testing.assert_allclose(img[:, 10, 20], [10.0, 3.0, 0.25, -0.25], rtol=1e-5)
    # One sweep: the transform applied once, float32 out, the input left alone.
    before = sweeps[1][0].copy()
    np.testing.assert_allclose(g.points_to_camera(*sweeps[1]),
                               [[-1.0, -0.5, 10.0, 3.0, 0.25, -0.25]], atol=1e-4)
    np.testing.assert_array_equal(sweeps[1][0], before)
    assert g.sweeps_to_camera([]).shape == (0, 6)
    with pytest.raises(ValueError, match='column counts'):
        g.sweeps_to_camera([(np.zeros((1, 3)), np.eye(4)), (np.zeros((1, 6)), np.eye(4))])


def test_rasterize_is_vectorised_on_large_clouds():
    rng = np.random.default_rng(1)
    n = 300_000
    uv = rng.uniform(0, [1600, 900], size=(n, 2))
    depth = rng.uniform(1, 80, size=n)
    img = g.rasterize_points(uv, depth, depth, 900, 1600)
    # The nearest depth per pixel is never larger than any depth landing there.
    r, c = np.rint(uv[:, 1]).astype(int), np.rint(uv[:, 0]).astype(int)
    ok = (r < 900) & (c < 1600)
    assert np.all(img[0, r[ok], c[ok]] <= depth[ok].astype(np.float32))


def test_lidar_depth_image_is_the_per_pixel_minimum():
    # Many points per pixel of a small image; the oracle is a plain loop over the points.
    rng = np.random.default_rng(3)
    H, W, n = 12, 16, 4000
    Kc = np.array([[10.0, 0, W / 2], [0, 10.0, H / 2], [0, 0, 1]])
    depth = rng.uniform(1.5, 50.0, n)
    uv = rng.uniform(-2, [W + 1, H + 1], size=(n, 2))
    pts = np.stack([(uv[:, 0] - W / 2) * depth / 10.0, (uv[:, 1] - H / 2) * depth / 10.0,
                    depth], 1)
    pts[::97, 2] = -3.0  # behind the camera: never drawn
    got = g.lidar_depth_image(pts, np.eye(4), Kc, H, W, min_depth=1.0, border=1)
    want = np.zeros((H, W), np.float32)
    for (x, y, z) in pts:
        if z <= 1.0:
            continue
        u, v = 10.0 * x / z + W / 2, 10.0 * y / z + H / 2
        if not (1 < u < W - 1 and 1 < v < H - 1):
            continue
        r, c = int(np.rint(v)), int(np.rint(u))
        if want[r, c] == 0 or z < want[r, c]:
            want[r, c] = np.float32(z)
    np.testing.assert_array_equal(got, want)
    uvp, dp = g.project_points(pts, Kc)
    m = g.in_image_mask(uvp, dp, H, W, 1.0, 1)
    np.testing.assert_array_equal(got, g.rasterize_points(uvp[m], dp[m], dp[m], H, W)[0])
