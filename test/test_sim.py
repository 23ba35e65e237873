"""The synthetic world: devkit-loadable nuScenes output, sensor realism and rig consistency."""

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from rcdepth_ros import cli, geometry
from rcdepth_ros.data.sim import rig
from rcdepth_ros.data.sim.radar import radar_sweep
from rcdepth_ros.data.sim.render import render_camera
from rcdepth_ros.data.sim.writer import SimConfig, scene_timeline, scene_world, sensor_frame
from rcdepth_ros.msgs import NUSCENES_RADAR_DTYPE, read_radar_pcd

nuscenes = pytest.importorskip('nuscenes.nuscenes')
data_classes = pytest.importorskip('nuscenes.utils.data_classes')

SCALE = 0.15
DURATION = 2.0
SEED = 7


@pytest.fixture(scope='module')
def world_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('sim') / 'world'
    rc = cli.main(['sim', '--out', str(root), '--scenes', '1', '--seed', str(SEED),
                   '--duration', str(DURATION), '--image-scale', str(SCALE),
                   '--night-fraction', '0', '--workers', '1', '--no-progress'])
    assert rc == 0
    return root


@pytest.fixture(scope='module')
def nusc(world_root):
    return nuscenes.NuScenes(version='v1.0-sim', dataroot=str(world_root), verbose=False)


def _config():
    return SimConfig(scenes=1, seed=SEED, night_fraction=0.0, image_scale=SCALE,
                     duration=DURATION)


def test_devkit_loads_world(world_root, nusc):
    assert len(nusc.scene) == 1
    assert len(nusc.sample) == int(DURATION * rig.KEYFRAME_HZ)
    for sample in nusc.sample:
        assert set(sample['data']) == set(rig.CAMERAS) | {'LIDAR_TOP'} | set(rig.RADARS)
    path, boxes, K = nusc.get_sample_data(nusc.sample[1]['data']['CAM_FRONT'])
    assert Path(path).is_file()
    np.testing.assert_allclose(K[0, 0], 1266.417203046554 * SCALE, rtol=1e-6)
    sd = nusc.get('sample_data', nusc.sample[1]['data']['CAM_FRONT'])
    assert (sd['height'], sd['width']) == (round(900 * SCALE), round(1600 * SCALE))
    splits = json.loads((world_root / 'splits.json').read_text())
    assert splits['train'] == [nusc.scene[0]['name']]
    assert set(splits) == {'train', 'val', 'test'}
    assert json.loads((world_root / 'sim.json').read_text())['version'] == 'v1.0-sim'


def test_calibration_is_real_nuscenes(nusc):
    calib = {nusc.get('sensor', c['sensor_token'])['channel']: c for c in nusc.calibrated_sensor}
    fixture = Path(__file__).resolve().parents[1].parent / 'shared' / 'data'
    tables = fixture / 'nuscenes-frame-scene0061' / 'tables'
    if not tables.is_dir():
        pytest.skip('shared/data nuScenes fixture absent')
    real_sensor = {s['token']: s['channel']
                   for s in json.loads((tables / 'sensor.json').read_text())}
    for rec in json.loads((tables / 'calibrated_sensor.json').read_text()):
        channel = real_sensor[rec['sensor_token']]
        np.testing.assert_allclose(calib[channel]['translation'], rec['translation'])
        np.testing.assert_allclose(calib[channel]['rotation'], rec['rotation'])
    records = json.loads((fixture / 'nuscenes-frame-scene0061' / 'radar_front' /
                          'records.json').read_text())
    np.testing.assert_allclose(calib['RADAR_FRONT']['rotation'],
                               records['calibrated_sensor']['rotation'])


def test_sensor_rates_and_keyframes(nusc):
    by_channel = {}
    for sd in nusc.sample_data:
        by_channel.setdefault(sd['channel'], []).append(sd)
    period = {ch: np.median(np.diff(sorted(s['timestamp'] for s in sds))) * 1e-6
              for ch, sds in by_channel.items()}
    assert period['LIDAR_TOP'] == pytest.approx(1 / 20, rel=0.02)
    assert period['CAM_FRONT'] == pytest.approx(1 / 12, rel=0.02)
    assert period['RADAR_FRONT'] == pytest.approx(1 / 13, rel=0.05)
    stamps = sorted(s['timestamp'] for s in nusc.sample)
    assert np.median(np.diff(stamps)) * 1e-6 == pytest.approx(0.5, rel=0.01)
    for ch, sds in by_channel.items():
        assert sum(s['is_key_frame'] for s in sds) == len(nusc.sample), ch
    # Unsynchronised: the keyframe camera and radar are not at the sample (LiDAR) time.
    sample = nusc.sample[1]
    t_cam = nusc.get('sample_data', sample['data']['CAM_FRONT'])['timestamp']
    t_radar = nusc.get('sample_data', sample['data']['RADAR_FRONT'])['timestamp']
    assert t_cam != sample['timestamp'] and t_radar != sample['timestamp']
    assert abs(t_cam - sample['timestamp']) < 50_000
    # Each sample_data has its own ego pose.
    assert len(nusc.ego_pose) == len(nusc.sample_data)


def test_radar_files_are_nuscenes_pcd(world_root, nusc):
    RadarPointCloud = data_classes.RadarPointCloud
    raw, kept, rcs, ranges = [], [], [], []
    for sd in nusc.sample_data:
        if sd['channel'] != 'RADAR_FRONT':
            continue
        path = nusc.get_sample_data_path(sd['token'])
        arr = read_radar_pcd(path)
        assert arr.dtype == NUSCENES_RADAR_DTYPE and arr.dtype.itemsize == 43
        width = len(arr)
        RadarPointCloud.disable_filters()
        try:
            pc = RadarPointCloud.from_file(path)
        finally:
            RadarPointCloud.default_filters()
        assert pc.points.shape == (18, width)
        np.testing.assert_allclose(pc.points[0], arr['x'])
        np.testing.assert_array_equal(pc.points[2], 0.0)  # no elevation
        raw.append(width)
        kept.append(RadarPointCloud.from_file(path).points.shape[1])
        rcs.extend(pc.points[5])
        ranges.extend(np.hypot(pc.points[0], pc.points[1]))
        assert set(np.unique(pc.points[3])) <= set(range(8))  # dyn_prop
        assert set(np.unique(pc.points[11])) <= {0, 1, 2, 3, 4}  # ambig_state
    raw, kept = np.array(raw), np.array(kept)
    assert raw.max() <= 125
    assert 30 <= raw.mean() <= 125
    assert 0.3 <= kept.sum() / raw.sum() <= 0.9
    assert 0.0 <= np.median(rcs) <= 12.0
    assert np.max(ranges) > 60.0


def test_lidar_files_load(nusc):
    sd = nusc.get('sample_data', nusc.sample[0]['data']['LIDAR_TOP'])
    pc = data_classes.LidarPointCloud.from_file(nusc.get_sample_data_path(sd['token']))
    assert 20_000 < pc.points.shape[1] < 40_000
    raw = np.fromfile(nusc.get_sample_data_path(sd['token']), dtype=np.float32).reshape(-1, 5)
    assert set(np.unique(raw[:, 4]).astype(int)) <= set(range(32))
    elevation = np.degrees(np.arctan2(raw[:, 2], np.hypot(raw[:, 0], raw[:, 1])))
    assert elevation.max() < 10.5 and elevation.min() > -30.5


def test_lidar_agrees_with_rendered_depth(nusc):
    """LiDAR through the nuScenes chain lands where the renderer saw the same surface.

    This checks that the world, the rig and the calibration tables are consistent.
    """
    config = _config()
    timeline = scene_timeline(config, 0)
    world = scene_world(config, 0)
    rel_errors = []
    for k in (0, 2):
        sample = nusc.sample[k]
        lidar_sd = nusc.get('sample_data', sample['data']['LIDAR_TOP'])
        cam_sd = nusc.get('sample_data', sample['data']['CAM_FRONT'])
        j = int(np.flatnonzero(timeline.frames['CAM_FRONT'] == cam_sd['timestamp'])[0])
        rendered = sensor_frame(config, 0, 'CAM_FRONT', j, world, timeline).depth
        points = data_classes.LidarPointCloud.from_file(
            nusc.get_sample_data_path(lidar_sd['token'])).points[:3].T
        cam_calib = nusc.get('calibrated_sensor', cam_sd['calibrated_sensor_token'])
        T = geometry.nuscenes_sensor_to_camera(
            nusc.get('calibrated_sensor', lidar_sd['calibrated_sensor_token']),
            nusc.get('ego_pose', lidar_sd['ego_pose_token']),
            nusc.get('ego_pose', cam_sd['ego_pose_token']), cam_calib)
        lidar = geometry.lidar_depth_image(points, T, np.array(cam_calib['camera_intrinsic']),
                                           *rendered.shape)
        both = (lidar > 0) & (rendered > 0)
        assert both.sum() > 300
        rel_errors.append(np.abs(lidar[both] - rendered[both]) / rendered[both])
    rel = np.concatenate(rel_errors)
    # Pixel quantisation, LiDAR noise and objects moving between the two timestamps leave a
    # tail at depth edges; the bulk must agree to centimetres.
    assert np.median(rel) < 0.01
    assert np.mean(rel < 0.05) > 0.85


def test_images_are_textured_and_night_is_darker():
    config = _config()
    world = scene_world(config, 0)
    sensor = rig.SENSOR_BY_CHANNEL['CAM_FRONT']
    K, height, width = rig.scaled_intrinsic(sensor, SCALE)
    T = world.ego_transform(1.0) @ rig.sensor_to_ego(sensor)
    day = render_camera(world, 1.0, T, K, height, width, np.random.default_rng(0))
    gray = day.rgb.astype(np.float64).mean(axis=-1)
    objects = [i for i in np.unique(day.index) if i >= 0 and (day.index == i).sum() > 150]
    assert objects
    # Surfaces are textured, not flat-coloured: colour does not give depth away.
    for i in objects:
        assert gray[day.index == i].std() > 2.0
    assert gray[day.index == -2].std() > 2.0
    night_world = dataclasses.replace(world, night=True)
    night = render_camera(night_world, 1.0, T, K, height, width, np.random.default_rng(0))
    np.testing.assert_array_equal(night.depth, day.depth)
    assert night.rgb.mean() < 0.6 * day.rgb.mean()
    # Radar does not care about daylight.
    T_r = world.ego_transform(1.0) @ rig.sensor_to_ego(rig.SENSOR_BY_CHANNEL['RADAR_FRONT'])
    r_day = radar_sweep(world, 1.0, T_r, np.random.default_rng(3))
    r_night = radar_sweep(night_world, 1.0, T_r, np.random.default_rng(3))
    assert r_day.tobytes() == r_night.tobytes()


def test_annotations(nusc):
    names = {a['category_name'] for a in nusc.sample_annotation}
    assert 'vehicle.car' in names
    assert 'human.pedestrian.adult' in names
    moving = [a for a in nusc.sample_annotation
              if a['attribute_tokens'] and nusc.get('attribute', a['attribute_tokens'][0])[
                  'name'] == 'vehicle.moving' and a['prev'] and a['next']]
    assert moving
    velocity = nusc.box_velocity(moving[0]['token'])
    assert np.isfinite(velocity).all() and np.linalg.norm(velocity[:2]) > 0.3
    for inst in nusc.instance:
        chain, tok = 0, inst['first_annotation_token']
        while tok:
            chain += 1
            tok = nusc.get('sample_annotation', tok)['next']
        assert chain == inst['nbr_annotations']
    for a in nusc.sample_annotation:
        assert a['num_lidar_pts'] + a['num_radar_pts'] > 0
        assert a['visibility_token'] in {'1', '2', '3', '4'}


def _digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*')) if p.is_file()}


def test_deterministic_from_seed(tmp_path):
    args = ['--scenes', '2', '--seed', '3', '--duration', '1', '--image-scale', '0.08',
            '--cameras', 'CAM_FRONT', '--no-progress']
    assert cli.main(['sim', '--out', str(tmp_path / 'a'), '--workers', '1', *args]) == 0
    assert cli.main(['sim', '--out', str(tmp_path / 'b'), '--workers', '2', *args]) == 0
    a, b = _digest(tmp_path / 'a'), _digest(tmp_path / 'b')
    assert a == b
    # Another seed, another world.
    other = scene_world(dataclasses.replace(_config(), seed=SEED + 1), 0)
    assert not np.array_equal(other.centers, scene_world(_config(), 0).centers)
    splits = json.loads((tmp_path / 'a' / 'splits.json').read_text())
    assert splits['train'] == ['scene-0000'] and splits['val'] == ['scene-0001']


def test_bad_arguments_fail_cleanly(tmp_path, capsys):
    assert cli.main(['sim', '--out', str(tmp_path / 'x'), '--image-scale', '3']) == 1
    assert 'image scale' in capsys.readouterr().err
    assert cli.main(['sim', '--out', str(tmp_path / 'x'), '--cameras', 'CAM_FRONT',
                     '--camera-sweeps', 'none', '--version', 'sim']) == 1


def test_sweeps_belong_to_the_following_sample_so_devkit_boxes_match_the_truth(nusc):
    """nuScenes attaches a sweep to the next keyframe; the devkit interpolates boxes from there.

    Oracle: the simulator's own box positions at the sweep time (linear motion, so the devkit's
    interpolation between the two keyframes is exact when the sweep is attached correctly).
    """
    from rcdepth_ros.data.sim.writer import token

    config = _config()
    world = scene_world(config, 0)
    timeline = scene_timeline(config, 0)
    by_instance = {token(SEED, 'instance', 0, int(world.instance[b])): b
                   for b in np.flatnonzero(world.instance >= 0)}
    samples = sorted(nusc.sample, key=lambda s: s['timestamp'])
    first, last = samples[0]['timestamp'], samples[-1]['timestamp']
    checked, worst = 0, 0.0
    for sd in nusc.sample_data:
        if sd['channel'] != 'LIDAR_TOP' or sd['is_key_frame']:
            continue
        owner = nusc.get('sample', sd['sample_token'])
        following = min((s for s in samples if s['timestamp'] >= sd['timestamp']),
                        key=lambda s: s['timestamp'], default=samples[-1])
        assert owner['token'] == following['token']
        if not first < sd['timestamp'] < last:
            continue  # outside the keyframes the devkit clamps: nothing to interpolate
        centers, _, _ = world.boxes_at(timeline.seconds(sd['timestamp']))
        for box in nusc.get_boxes(sd['token']):
            ann = nusc.get('sample_annotation', box.token)
            if not ann['prev'] or nusc.get('sample_annotation', ann['prev'])[
                    'sample_token'] != owner['prev']:
                continue  # not annotated at the previous keyframe: the devkit cannot interpolate
            b = by_instance[ann['instance_token']]
            if np.hypot(*world.velocity[b]) < 1.0:
                continue
            worst = max(worst, float(np.linalg.norm(box.center - centers[b])))
            checked += 1
    assert checked > 10
    assert worst < 0.01
