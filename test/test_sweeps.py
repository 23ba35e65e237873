"""The sweep-selection rule and the line-of-sight box tests of the ground truth."""

import numpy as np
import pytest

from rcdepth_ros.data import gt
from rcdepth_ros.sweeps import select_sweeps


def test_select_sweeps_takes_the_newest_at_or_before_the_image_within_the_window():
    stamps = [100, 177, 254, 331, 408]  # a 13 Hz radar, in ms
    assert select_sweeps(stamps, 300, 100, 1) == [2]
    assert select_sweeps(stamps, 331, 100, 1) == [3]  # same stamp counts as before
    assert select_sweeps(stamps, 330, 100, 3) == [2]  # 177 is 153 ms old: outside the window
    assert select_sweeps(stamps, 420, 250, 3) == [4, 3, 2]
    assert select_sweeps(stamps, 90, 100, 1) == []  # nothing at or before the image
    assert select_sweeps(list(reversed(stamps)), 300, 100, 1) == [2]  # order does not matter
    with pytest.raises(ValueError):
        select_sweeps(stamps, 300, -1, 1)
    with pytest.raises(ValueError):
        select_sweeps(stamps, 300, 100, 0)


def _yaw_box(center, yaw, wlh):
    c, s = np.cos(yaw), np.sin(yaw)
    # Camera frame (x right, y down, z forward): box x (length) -> camera x, box y (width)
    # -> camera z, box z (up) -> camera -y; a vehicle's yaw turns about the camera y axis.
    to_camera = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
    rotation = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]) @ to_camera
    return np.asarray(center, float), rotation, np.asarray(wlh, float)


def test_rays_blocked_by_a_box_in_front_of_the_camera():
    box = _yaw_box([0.0, 0.0, 10.0], 0.3, [1.8, 4.5, 1.6])
    points = np.array([
        [0.0, 0.0, 20.0],    # straight behind the box: hidden
        [0.0, 0.0, 5.0],     # in front of it: seen
        [0.0, 0.0, 10.0],    # inside it: counts as hidden
        [6.0, 0.0, 20.0],    # behind, but off to the side of its silhouette: seen
        [0.0, 0.0, -20.0],   # behind the camera: seen
        [0.5, -0.3, 30.0],   # far behind, within the silhouette: hidden
    ])
    np.testing.assert_array_equal(gt.rays_blocked_by_boxes(points, [box]),
                                  [True, False, True, False, False, True])
    # Reference: march along each segment and test membership with points_in_boxes.
    rng = np.random.default_rng(0)
    cloud = rng.uniform([-8, -3, 1], [8, 3, 40], (400, 3))
    ts = np.linspace(0.0, 1.0, 2001)[:, None, None]  # (T, 1, 1)
    samples = (ts * cloud[None]).reshape(-1, 3)
    marched = gt.points_in_boxes(samples, [box]).reshape(len(ts), -1).any(axis=0)
    ours = gt.rays_blocked_by_boxes(cloud, [box])
    assert ours.sum() > 20
    # Marching can miss a corner clip of under 1/2000 of a segment; allow a couple of those.
    assert np.count_nonzero(ours != marched) <= 2


def test_pixels_behind_a_box_use_its_far_side():
    K = np.array([[200.0, 0, 160.0], [0, 200.0, 60.0], [0, 0, 1]])  # H != W
    height, width = 120, 320
    # Length 4 m along camera x, width 2 m along z: near face z = 11, far face z = 13.
    box = _yaw_box([2.0, 0.5, 12.0], 0.0, [2.0, 4.0, 1.5])
    depth = np.full((height, width), 30.0, np.float32)
    behind = gt.pixels_behind_boxes(depth, [box], K)
    u, v = 160 + 200 * 2.0 / 12.0, 60 + 200 * 0.5 / 12.0  # the box centre's pixel
    assert behind[round(v), round(u)] and not behind[5, 5]
    depth[:] = 12.5  # on the object: between the near and far faces on the centre ray
    assert not gt.pixels_behind_boxes(depth, [box], K)[round(v), round(u)]
    depth[:] = 13.2  # just behind the far face on the centre ray
    assert gt.pixels_behind_boxes(depth, [box], K)[round(v), round(u)]
    # The marked region is the box silhouette: compare with projected corner bounds.
    depth[:] = 30.0
    rows, cols = np.nonzero(gt.pixels_behind_boxes(depth, [box], K))
    x0, x1, y0, y1 = 0.0, 4.0, -0.25, 1.25  # box extent in x and y (camera frame)
    assert cols.min() >= np.floor(160 + 200 * x0 / 11.0) - 1
    assert cols.max() <= np.ceil(160 + 200 * x1 / 11.0) + 1
    assert rows.min() >= np.floor(60 + 200 * y0 / 11.0) - 1
    assert rows.max() <= np.ceil(60 + 200 * y1 / 11.0) + 1
    assert cols.max() >= np.floor(160 + 200 * x1 / 13.0) - 1  # reaches the far corners
