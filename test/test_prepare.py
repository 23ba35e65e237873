"""Tests of nuScenes preparation: GT helpers, storage, ``rcdepth prepare`` on a synthetic world."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
import shutil

import numpy as np
import pytest
import torch

from rcdepth_ros.data import gt, storage
from rcdepth_ros.data.nuscenes_prep import parse_shard, shard_tokens

# ---------------------------------------------------------------- pure helpers

def test_interpolation_reproduces_a_plane_inside_the_hull_and_zero_outside():
    rng = np.random.default_rng(0)
    height, width = 40, 70  # H != W to catch transposes
    sparse = np.zeros((height, width), np.float32)
    rows = rng.integers(10, 30, 200)
    cols = rng.integers(20, 60, 200)
    plane = lambda r, c: 5.0 + 0.25 * r + 0.1 * c  # noqa: E731 (linear: reproduced exactly)
    sparse[rows, cols] = plane(rows, cols)
    dense = gt.interpolate_depth(sparse)
    assert dense.dtype == np.float32 and dense.shape == (height, width)
    rr, cc = np.mgrid[0:height, 0:width]
    inside = dense > 0
    # Interior of the sampled box is inside the hull; corners of the image are not.
    assert inside[15:25, 25:55].all()
    assert not inside[:9].any() and not inside[:, :19].any() and not inside[31:].any()
    # atol: the 1e-3 px jitter that speeds up Qhull, far below the PNG's 1/256 m step.
    np.testing.assert_allclose(dense[inside], plane(rr, cc)[inside], atol=1e-3)
    np.testing.assert_array_equal(dense[rows, cols], sparse[rows, cols])


def test_interpolation_degenerate_inputs():
    empty = np.zeros((8, 9), np.float32)
    np.testing.assert_array_equal(gt.interpolate_depth(empty), empty)
    line = empty.copy()
    line[3, 1:8] = 7.0  # collinear: no triangle, measurements kept
    np.testing.assert_array_equal(gt.interpolate_depth(line), line)
    with pytest.raises(ValueError):
        gt.interpolate_depth(np.zeros((2, 3, 4), np.float32))


def test_confidence_target_window_and_box_region():
    dense = np.full((120, 400), 20.0, np.float32)
    dense[:, 300:] = 10.0
    dense[0, 0] = 0.0  # invalid GT is never confident
    # Point 0 at depth 20.2 with a window: confident where |20 - 20.2| < 0.4 inside +-50 x +-150.
    # Point 1 at depth 10.1 with a box region (rows 10..20, cols 310..330).
    target = gt.confidence_target(dense, np.array([[60, 100], [5, 390]]), np.array([20.2, 10.1]),
                                  [None, (10, 20, 310, 330)])
    assert target.dtype == np.uint8
    expected = np.zeros_like(target)
    expected[10:110, 0:250] = 1
    expected[0, 0] = 0
    expected[10:20, 310:330] = 1
    np.testing.assert_array_equal(target, expected)


def test_points_in_boxes_matches_devkit():
    from nuscenes.utils.data_classes import Box
    from nuscenes.utils.geometry_utils import points_in_box
    from pyquaternion import Quaternion

    rng = np.random.default_rng(1)
    points = rng.uniform(-4, 4, (4000, 3))
    for yaw in (0.0, 0.7, -2.1):
        box = Box([1.0, -0.5, 0.3], [1.8, 4.5, 1.6], Quaternion(axis=[0, 0, 1], angle=yaw))
        ours = gt.points_in_boxes(points, [(box.center, box.rotation_matrix, box.wlh)], 1.1)
        theirs = points_in_box(box, points.T, wlh_factor=1.1)
        np.testing.assert_array_equal(ours, theirs)
        assert 50 < ours.sum() < 3000


def test_points_in_each_box_matches_devkit_per_box_and_within_spans():
    from nuscenes.utils.data_classes import Box
    from nuscenes.utils.geometry_utils import points_in_box
    from pyquaternion import Quaternion

    rng = np.random.default_rng(4)
    points = rng.uniform(-6, 6, (5000, 3))
    points = points[np.argsort(points[:, 0])]  # sorted along x, as a cached sweep
    boxes = [Box([x, y, 0.2], [1.8, 4.5, 1.6], Quaternion(axis=[0, 0, 1], angle=yaw))
             for x, y, yaw in ((-3.0, 1.0, 0.4), (2.5, -2.0, -1.2), (2.0, 2.5, 2.9))]
    as_tuples = [(b.center, b.rotation_matrix, b.wlh) for b in boxes]
    theirs = [np.flatnonzero(points_in_box(b, points.T, wlh_factor=1.2)) for b in boxes]
    ours = gt.points_in_each_box(points, as_tuples, 1.2)
    for mine, truth in zip(ours, theirs):
        np.testing.assert_array_equal(mine, truth)
        assert truth.size > 20
    # Spans limit each box to a slice: the slice of x within the box's reach keeps every hit,
    # a slice that misses it finds none.
    reach = [np.searchsorted(points[:, 0], [b.center[0] - 3.5, b.center[0] + 3.5])
             for b in boxes]
    spans = np.array(reach[:2] + [[0, 10]])
    limited = gt.points_in_each_box(points, as_tuples, 1.2, spans=spans)
    np.testing.assert_array_equal(limited[0], theirs[0])
    np.testing.assert_array_equal(limited[1], theirs[1])
    assert limited[2].size == 0
    assert gt.points_in_each_box(points, []) == []


def test_storage_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    depth = rng.uniform(0, 120, (30, 50)).astype(np.float32)
    depth[depth < 30] = 0
    rc = np.array([[3, 4], [10, 49], [29, 0]], np.int32)
    features = rng.normal(size=(3, 4)).astype(np.float32)
    conf = (rng.random((30, 50)) > 0.5).astype(np.uint8)
    meta = {'token': 'tok', 'height': 30, 'width': 50}
    sample = storage.PreparedSample(meta, depth, depth * 0.5, depth, conf, rc, features)
    path = storage.write_sample(tmp_path, 'train', sample)
    assert storage.is_complete(path)
    assert storage.list_samples(tmp_path, 'train') == [path]
    assert not list((tmp_path / 'train').glob('.*'))  # no temp folder left behind
    back = storage.read_depth_png(path / 'depth_single.png')
    np.testing.assert_allclose(back, depth, atol=0.5 / storage.DEPTH_SCALE + 1e-6)
    np.testing.assert_array_equal(back == 0, depth == 0)
    np.testing.assert_array_equal(storage.read_confidence_png(path / 'confidence.png'), conf)
    rc_back, feat_back = storage.read_radar_npz(path / 'radar.npz')
    image = storage.radar_points_to_image(rc_back, feat_back, 30, 50)
    np.testing.assert_array_equal(image[:, 10, 49], features[1])
    assert np.count_nonzero(np.any(image != 0, axis=0)) == 3
    assert storage.read_meta(path)['format'] == storage.FORMAT_VERSION


def test_shards_partition_tokens():
    tokens = [f'token{i:03d}' for i in range(200)]
    parts = [shard_tokens(tokens, i, 3) for i in range(3)]
    assert sorted(sum(parts, [])) == tokens
    assert all(30 < len(p) < 110 for p in parts)
    assert shard_tokens(tokens, 1, 3) == parts[1]  # stable
    assert parse_shard('2/5') == (2, 5)
    for bad in ('5/5', '1', 'a/b', '0/0'):
        with pytest.raises(ValueError):
            parse_shard(bad)



def test_split_resolution(tmp_path):
    from types import SimpleNamespace

    from nuscenes.utils.splits import create_splits_scenes

    from rcdepth_ros.data.nuscenes_prep import split_scene_names

    standard = create_splits_scenes()
    names = standard['train'][:2] + standard['val'][:1] + standard['mini_val'][:1]
    nusc = SimpleNamespace(dataroot=str(tmp_path), scene=[{'name': n} for n in names])
    nusc.version = 'v1.0-trainval'
    assert split_scene_names(nusc, 'train') == standard['train'][:2]
    assert split_scene_names(nusc, 'val') == [n for n in standard['val'] if n in names]
    with pytest.raises(ValueError):
        split_scene_names(nusc, 'test')  # trainval has no test split
    nusc.version = 'v1.0-mini'
    assert split_scene_names(nusc, 'val') == standard['mini_val'][:1]
    # A splits.json at the dataroot (synthetic world) wins over the standard splits.
    (tmp_path / 'splits.json').write_text(json.dumps({'train': [names[2], 'absent'], 'val': []}))
    assert split_scene_names(nusc, 'train') == [names[2]]
    with pytest.raises(ValueError):
        split_scene_names(nusc, 'val')  # no scene
    with pytest.raises(ValueError):
        split_scene_names(nusc, 'test')  # not in the file

# ---------------------------------------------------------------- the real nuScenes frame

REAL_FRAME = (Path(__file__).resolve().parents[1].parent / 'shared' / 'data'
              / 'nuscenes-frame-scene0061')


@pytest.mark.skipif(not REAL_FRAME.is_dir(), reason='shared/data fixtures absent')
def test_real_frame_single_scan_and_dense_gt():
    from rcdepth_ros import geometry
    from rcdepth_ros.data.nuscenes_prep import load_lidar_points

    tables = {name: {r['token']: r for r in json.loads(
        (REAL_FRAME / 'tables' / f'{name}.json').read_text())}
        for name in ('sample_data', 'calibrated_sensor', 'ego_pose')}
    records = list(tables['sample_data'].values())
    cam = next(r for r in records if 'CAM_FRONT/' in r['filename'])
    lidar = next(r for r in records if 'LIDAR_TOP' in r['filename'])

    def calib_pose(sd):
        return (tables['calibrated_sensor'][sd['calibrated_sensor_token']],
                tables['ego_pose'][sd['ego_pose_token']])

    points = load_lidar_points(REAL_FRAME / lidar['filename'])
    assert points.shape == (34688, 3)
    T = geometry.nuscenes_sensor_to_camera(*calib_pose(lidar), *calib_pose(cam)[::-1])
    K = np.asarray(calib_pose(cam)[0]['camera_intrinsic'])
    single = geometry.lidar_depth_image(points, T, K, 900, 1600)
    # README: 3,053 points fall in the image; a few share a pixel after z-buffering.
    assert 2900 <= np.count_nonzero(single) <= 3053
    dense = gt.interpolate_depth(single)
    assert np.count_nonzero(dense) > 100 * np.count_nonzero(single)
    both = single > 0
    np.testing.assert_array_equal(dense[both], single[both])


# ---------------------------------------------------------------- a synthetic world end to end

SIM_VERSION = 'v1.0-sim'
SWEEPS = 6  # +-6 LiDAR sweeps (0.3 s each side) keeps the tests lean; prepare defaults to 80


def _cli(argv: list[str]) -> tuple[int, str]:
    from rcdepth_ros.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    return code, out.getvalue()


def _prepare_argv(dataroot: Path, split: str, out: Path, *extra: str) -> list[str]:
    return ['prepare', '--dataroot', str(dataroot), '--version', SIM_VERSION, '--split', split,
            '--out', str(out), '--accumulate-sweeps', str(SWEEPS), '--no-progress', *extra]


@pytest.fixture(scope='module')
def world(tmp_path_factory) -> tuple[Path, str]:
    dataroot = tmp_path_factory.mktemp('world')
    code, _ = _cli(['sim', '--out', str(dataroot), '--scenes', '1', '--seed', '5',
                    '--duration', '3', '--image-scale', '0.25', '--cameras', 'CAM_FRONT',
                    '--camera-sweeps', 'none', '--workers', '1', '--no-progress'])
    assert code == 0
    splits = json.loads((dataroot / 'splits.json').read_text())
    split = next(name for name in ('train', 'val', 'test') if splits.get(name))
    return dataroot, split


@pytest.fixture(scope='module')
def prepared(world, tmp_path_factory) -> dict:
    """Prepare the world as two shards (one with 2 worker processes), then once more whole."""
    dataroot, split = world
    out = tmp_path_factory.mktemp('prepared')
    runs = [_cli(_prepare_argv(dataroot, split, out, '--shard', '0/2', '--workers', '2')),
            _cli(_prepare_argv(dataroot, split, out, '--shard', '1/2')),
            _cli(_prepare_argv(dataroot, split, out))]
    return {'dataroot': dataroot, 'split': split, 'out': out, 'runs': runs}


@pytest.fixture(scope='module')
def nusc(world):
    from nuscenes import NuScenes

    return NuScenes(version=SIM_VERSION, dataroot=str(world[0]), verbose=False)


def test_devkit_loads_world_and_prepare_covers_the_split(prepared, nusc):
    from rcdepth_ros.data.nuscenes_prep import split_sample_tokens, split_scene_names

    scenes = split_scene_names(nusc, prepared['split'])
    tokens = split_sample_tokens(nusc, scenes)
    expected = sum(s['nbr_samples'] - 1 for s in nusc.scene if s['name'] in scenes)
    assert len(tokens) == expected >= 3  # each scene's last sample skipped
    done = storage.list_samples(prepared['out'], prepared['split'])
    assert sorted(p.name for p in done) == sorted(tokens)
    shard_manifests = [json.loads((prepared['out'] / prepared['split'] / name).read_text())
                       for name in ('manifest.shard-0-of-2.json', 'manifest.shard-1-of-2.json')]
    assert sum(m['counts']['new'] for m in shard_manifests) == len(tokens)
    assert all(code == 0 for code, _ in prepared['runs'])


def test_rerun_does_nothing(prepared):
    code, text = prepared['runs'][2]
    assert code == 0 and ' 0 new' in text
    manifest = json.loads((prepared['out'] / prepared['split'] / 'manifest.json').read_text())
    assert manifest['counts']['new'] == 0 and manifest['counts']['skipped'] == 0
    assert manifest['counts']['already_done'] == manifest['counts']['complete'] > 0


def test_radar_pixels_agree_with_devkit_projection(prepared, nusc):
    from nuscenes.nuscenes import NuScenesExplorer
    from nuscenes.utils.data_classes import RadarPointCloud

    from rcdepth_ros import geometry

    explorer = NuScenesExplorer(nusc)
    compared = 0
    radar_records = [sd for sd in nusc.sample_data if sd['channel'] == 'RADAR_FRONT']
    RadarPointCloud.disable_filters()
    try:
        for path in storage.list_samples(prepared['out'], prepared['split']):
            sample = nusc.get('sample', path.name)
            cam = nusc.get('sample_data', sample['data']['CAM_FRONT'])
            # The sweep served with the image: the newest one at or before it, within 0.1 s.
            scene_radar = [sd for sd in radar_records
                           if cam['timestamp'] - 100_000 <= sd['timestamp'] <= cam['timestamp']
                           and nusc.get('sample', sd['sample_token'])['scene_token']
                           == sample['scene_token']]
            if not scene_radar:
                rc, _ = storage.read_radar_npz(path / 'radar.npz')
                assert len(rc) == 0
                continue
            radar_sd = max(scene_radar, key=lambda sd: sd['timestamp'])
            points, depths, _ = explorer.map_pointcloud_to_image(radar_sd['token'], cam['token'])
            rows, cols = geometry.pixel_indices(points[:2].T)
            devkit = {}
            for r, c, d in zip(rows, cols, depths):  # nearer point wins a pixel
                devkit[(r, c)] = min(d, devkit.get((r, c), np.inf))
            rc, features = storage.read_radar_npz(path / 'radar.npz')
            ours = {(r, c): d for (r, c), d in zip(rc.tolist(), features[:, 0])}
            assert ours.keys() == devkit.keys()
            np.testing.assert_allclose([ours[k] for k in devkit], list(devkit.values()),
                                       rtol=1e-5)
            compared += len(ours)
        # Our reader without filters keeps what the devkit keeps with filters disabled.
        from rcdepth_ros.data.nuscenes_prep import load_radar_points

        radar_file = Path(nusc.dataroot) / radar_sd['filename']
        everything = load_radar_points(radar_file, filters=False)
        np.testing.assert_allclose(everything[:, :3],
                                   RadarPointCloud.from_file(str(radar_file)).points[:3].T,
                                   rtol=1e-6)
    finally:
        RadarPointCloud.default_filters()
    assert compared >= 10
    filtered = load_radar_points(radar_file, filters=True)
    np.testing.assert_allclose(filtered[:, :3],
                               RadarPointCloud.from_file(str(radar_file)).points[:3].T, rtol=1e-6)
    assert len(filtered) <= len(everything)


def test_dense_gt_is_denser_and_agrees_with_single_scan(prepared):
    for path in storage.list_samples(prepared['out'], prepared['split']):
        single = storage.read_depth_png(path / 'depth_single.png')
        dense = storage.read_depth_png(path / 'depth_dense.png')
        accumulated = storage.read_depth_png(path / 'depth_accumulated.png')
        assert np.count_nonzero(accumulated) > 1.5 * np.count_nonzero(single) > 0
        assert np.count_nonzero(dense) > 5 * np.count_nonzero(single)
        both = (single > 0) & (dense > 0)
        assert both.sum() > 0.9 * np.count_nonzero(single)
        # Tolerance 0.05 m: other sweeps may put a nearer static point on a single-scan pixel.
        assert np.median(np.abs(dense[both] - single[both])) < 0.05


def test_confidence_marks_pixels_near_radar_depth(prepared):
    confident = 0
    for path in storage.list_samples(prepared['out'], prepared['split']):
        conf = storage.read_confidence_png(path / 'confidence.png')
        dense = storage.read_depth_png(path / 'depth_dense.png')
        _, features = storage.read_radar_npz(path / 'radar.npz')
        values = dense[conf > 0]  # (M,)
        assert (values > 0).all()
        if values.size:
            gap = np.abs(values[:, None] - features[None, :, 0]).min(axis=1)
            # 0.4 m (+ PNG rounding); a hidden radar point sharing a pixel may own a pixel too.
            assert np.mean(gap < 0.4 + 1 / 256) > 0.95
        confident += values.size
    assert confident > 0


def test_moving_object_points_are_removed_from_other_sweeps(prepared, nusc):
    from nuscenes.utils.geometry_utils import points_in_box
    from pyquaternion import Quaternion

    from rcdepth_ros.data.nuscenes_prep import PrepareOptions, accumulate_lidar

    token = storage.list_samples(prepared['out'], prepared['split'])[1].name
    sample = nusc.get('sample', token)
    cam_sd = nusc.get('sample_data', sample['data']['CAM_FRONT'])
    cam_calib = nusc.get('calibrated_sensor', cam_sd['calibrated_sensor_token'])
    cam_pose = nusc.get('ego_pose', cam_sd['ego_pose_token'])
    lidar_sd = nusc.get('sample_data', sample['data']['LIDAR_TOP'])
    chain, record = [], lidar_sd
    for _ in range(SWEEPS):  # the sweeps after the keyframe, index 1..SWEEPS
        record = nusc.get('sample_data', record['next'])
        chain.append(record)

    def to_camera(box):
        # Devkit path global -> ego(t_cam) -> camera, independent of our transforms.
        box.translate(-np.array(cam_pose['translation']))
        box.rotate(Quaternion(cam_pose['rotation']).inverse)
        box.translate(-np.array(cam_calib['translation']))
        box.rotate(Quaternion(cam_calib['rotation']).inverse)
        return box

    def instance(box) -> str:
        return nusc.get('sample_annotation', box.token)['instance_token']

    now = {instance(b): to_camera(b).center for b in nusc.get_boxes(cam_sd['token'])}

    def on_objects(points, index) -> tuple[int, int, int]:
        """Count other-sweep points inside movable boxes at their own time, on moved ones, and
        on parked ones."""
        on, trail, parked = 0, 0, 0
        for k, sd in enumerate(chain, start=1):
            pts = points[index == k].T  # (3, n) keyframe camera frame
            for box in nusc.get_boxes(sd['token']):
                if not box.name.startswith(('vehicle.', 'human.')):
                    continue
                box = to_camera(box)
                inside = int(points_in_box(box, pts).sum())
                on += inside
                moved = np.linalg.norm(box.center - now.get(instance(box), np.inf))
                if moved > 0.5:
                    trail += inside  # where the object was, not where it is: a ghost
                elif moved < 0.05:
                    parked += inside
        return on, trail, parked

    kept = accumulate_lidar(nusc, lidar_sd['token'], cam_sd, SWEEPS, PrepareOptions())
    raw = accumulate_lidar(nusc, lidar_sd['token'], cam_sd, SWEEPS,
                           PrepareOptions(remove_movable=False))
    everything = accumulate_lidar(nusc, lidar_sd['token'], cam_sd, SWEEPS,
                                  PrepareOptions(moving_threshold=0.0))
    raw_on, raw_trail, raw_parked = on_objects(*raw[:2])
    kept_on, kept_trail, kept_parked = on_objects(*kept[:2])
    all_on, all_trail, _ = on_objects(*everything[:2])
    assert raw_trail > 10  # the world has moving objects: without removal they leave trails
    assert kept_trail == 0 and all_trail == 0 and all_on == 0
    # Parked objects keep their points (but where a moving object now hides them).
    assert kept_parked > 0.8 * raw_parked > 0
    # The keyframe's own object points stay.
    assert np.count_nonzero(kept[1] == 0) == np.count_nonzero(raw[1] == 0)


def test_dense_gt_on_moving_objects_matches_rendered_depth(prepared, nusc):
    """D_d on a moving object's pixels is the object, not background seen at other times.

    Oracle: the simulator's rendered z-depth of the keyframe camera and the world's velocities.
    """
    from rcdepth_ros.data.sim.writer import SimConfig, scene_timeline, scene_world, sensor_frame

    meta = json.loads((prepared['dataroot'] / 'sim.json').read_text())
    config = SimConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta.items()})
    scene_index = {s['name']: i for i, s in enumerate(sorted(nusc.scene, key=lambda s: s['name']))}
    too_far = moving = static_far = static = 0
    for path in storage.list_samples(prepared['out'], prepared['split']):
        sample = nusc.get('sample', path.name)
        scene = scene_index[nusc.get('scene', sample['scene_token'])['name']]
        world, timeline = scene_world(config, scene), scene_timeline(config, scene)
        cam = nusc.get('sample_data', sample['data']['CAM_FRONT'])
        j = int(np.flatnonzero(timeline.frames['CAM_FRONT'] == cam['timestamp'])[0])
        truth = sensor_frame(config, scene, 'CAM_FRONT', j, world, timeline)
        dense = storage.read_depth_png(path / 'depth_dense.png')
        speed = np.zeros(truth.index.shape)
        on_box = truth.index >= 0
        speed[on_box] = np.hypot(*world.velocity[truth.index[on_box]].T)
        both = (dense > 0) & (truth.depth > 0)
        on_mover = both & (speed > 0.5)
        too_far += np.count_nonzero(dense[on_mover] > truth.depth[on_mover] + 0.5)
        moving += np.count_nonzero(on_mover)
        rest = both & ~(speed > 0.5)
        static_far += np.count_nonzero(dense[rest] > truth.depth[rest] + 0.5)
        static += np.count_nonzero(rest)
    assert moving > 500  # the world has moving objects in view
    # Before the fix background showed through: 75 % of these pixels were > 0.5 m too far.
    assert too_far / moving < 0.08
    assert static_far / static < 0.08


def test_fast_interpolation_agrees_with_the_reference(prepared):
    """Triangle + rasterisation gives the qhull LinearNDInterpolator result (SciPy: oracle)."""
    for path in storage.list_samples(prepared['out'], prepared['split'])[:3]:
        accumulated = storage.read_depth_png(path / 'depth_accumulated.png')
        fast = gt.interpolate_depth(accumulated, 'triangle')
        reference = gt.interpolate_depth(accumulated, 'qhull')
        n_fast, n_ref = np.count_nonzero(fast), np.count_nonzero(reference)
        assert abs(n_fast - n_ref) <= 0.01 * n_ref
        both = (fast > 0) & (reference > 0)
        # Ties on depth edges could pick the other diagonal; with the shared jitter none does.
        assert np.mean(np.abs(fast[both] - reference[both]) > 0.01) < 1e-3
        np.testing.assert_array_equal(fast[accumulated > 0], accumulated[accumulated > 0])


def _link_copy(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, copy_function=os.link)


def test_corrupt_and_missing_files_are_skipped_and_listed(world, nusc, tmp_path):
    dataroot, split = world
    copy = tmp_path / 'world'
    _link_copy(dataroot, copy)
    from rcdepth_ros.data.nuscenes_prep import split_sample_tokens, split_scene_names

    tokens = split_sample_tokens(nusc, split_scene_names(nusc, split))
    lidar_file = nusc.get('sample_data', nusc.get('sample', tokens[0])['data']['LIDAR_TOP'])
    cam_file = nusc.get('sample_data', nusc.get('sample', tokens[1])['data']['CAM_FRONT'])
    sweep = nusc.get('sample_data', nusc.get('sample_data', nusc.get(
        'sample', tokens[2])['data']['LIDAR_TOP'])['prev'])
    for record, keep in ((lidar_file, 0.5), (sweep, 0.3)):
        target = copy / record['filename']
        data = target.read_bytes()
        target.unlink()  # a hard link: never write through to the shared world
        target.write_bytes(data[:int(len(data) * keep) // 20 * 20 + 7])  # truncated mid-point
    (copy / cam_file['filename']).unlink()
    out = tmp_path / 'out'
    code, text = _cli(_prepare_argv(copy, split, out))
    assert code == 0
    manifest = json.loads((out / split / 'manifest.json').read_text())
    skipped = {entry['token']: entry['reason'] for entry in manifest['skipped']}
    assert set(skipped) == {tokens[0], tokens[1]}
    assert 'LiDAR' in skipped[tokens[0]] and 'image' in skipped[tokens[1]]
    assert f'skipped {tokens[0]}' in text
    assert manifest['counts']['new'] == len(tokens) - 2
    assert any(sweep['filename'] in w['reason'] for w in manifest['warnings'])
    assert not storage.is_complete(out / split / tokens[0])
    assert storage.read_meta(out / split / tokens[2])['skipped_sweeps']


def test_dataset_over_prepared_world(prepared):
    from rcdepth_ros.data.dataset import PreparedDataset

    train = PreparedDataset(prepared['out'], prepared['split'], crop=(128, 256), seed=0)
    item = train[0]
    assert item['image'].shape == (3, 128, 256) and item['radar'].shape == (4, 128, 256)
    assert torch.isfinite(item['image']).all() and torch.isfinite(item['depth_dense']).all()
    evaluation = PreparedDataset(prepared['out'], prepared['split'], mode='eval')
    item = evaluation[0]
    height, width = evaluation.metas[0]['height'], evaluation.metas[0]['width']
    assert item['depth_dense'].shape == (1, (height - round(4 * height / 900)) // 32 * 32,
                                         width // 32 * 32)
    assert set(torch.unique(item['confidence_gt']).tolist()) <= {0.0, 1.0}


def test_bench_prepare_times_fast_reference_and_a_baseline_checkout(world, tmp_path, capsys):
    """bench-prepare: the fast path's dense GT against SciPy's qhull interpolation (oracle),
    and a baseline checkout (this one) timed in its own worker process."""
    dataroot, split = world
    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / 'bench.json'
    code, text = _cli(['bench-prepare', '--dataroot', str(dataroot), '--version', SIM_VERSION,
                       '--split', split, '--samples', '2', '--accumulate-sweeps', '2',
                       '--baseline', str(repo), '--json', str(out)])
    assert code == 0, text
    result = json.loads(out.read_text())
    assert result['samples'] == 2 and len(result['per_sample']) == 2
    assert result['pixels_over_1cm'] == 0 and result['valid_pixels_rel_diff'] < 0.01
    assert all(row['same_accumulated'] for row in result['per_sample'])
    times = [row['baseline_s'] for row in result['per_sample']]
    assert all(t > 0 for t in times)
    assert result['median_baseline_s'] == pytest.approx(float(np.median(times)))
    assert result['speedup_vs_baseline'] == pytest.approx(
        result['median_baseline_s'] / result['median_fast_s'])
    assert 'fast path' in text and 'x faster' in text
    # Not a checkout of the package: one line, no traceback.
    code, _ = _cli(['bench-prepare', '--dataroot', str(dataroot), '--version', SIM_VERSION,
                    '--split', split, '--samples', '1', '--baseline', str(tmp_path)])
    err = capsys.readouterr().err
    assert code != 0 and 'is not a checkout of this package' in err
    assert 'Traceback' not in err


def test_split_all_is_every_scene_of_the_splits(world, nusc):
    from rcdepth_ros.data.nuscenes_prep import split_scene_names

    splits = json.loads((world[0] / 'splits.json').read_text())  # the simulator's own split
    every = [name for names in splits.values() for name in names]
    assert sorted(split_scene_names(nusc, 'all')) == sorted(every)
    assert split_scene_names(nusc, 'all') == [s['name'] for s in nusc.scene]
