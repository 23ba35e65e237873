"""``rcdepth demo``: quick mode end to end (world, bag, live node, depth bag, picture, metrics).

The end-to-end run is a real ``rcdepth`` process with random-init weights on a private
ROS_DOMAIN_ID; the bad-input cases run the CLI in this process and fail before any work.
"""

import json
import math
import os
from pathlib import Path
import subprocess
import sys

import cv2
import numpy as np
import pytest
import yaml

from rcdepth_ros import cli, codec, msgs
from rcdepth_ros.bags import io as bag_io
from rcdepth_ros.demo import figure
from rcdepth_ros.demo.scene import load_keyframes
from rcdepth_ros.models import io as model_io
from rcdepth_ros.training.metrics import DEPTH_METRICS, UNCERTAINTY_METRICS, depth_metrics

DEMO_TIMEOUT_S = 240  # the quick demo takes ~25 s alone; leave room for a busy 2-core machine
NODE = '/rcdepth_node'


def _run_demo(out: Path, *extra: str, tmp: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env['ROS_LOG_DIR'] = str(tmp / 'ros_log')
    domain = str(101 + (os.getpid() * 7 + len(extra)) % 100)
    cmd = [sys.executable, '-m', 'rcdepth_ros.cli', 'demo', '--quick', '--out', str(out),
           '--device', 'cpu', '--no-progress', '--domain-id', domain, *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S)


@pytest.fixture(scope='module')
def quick_demo(tmp_path_factory, student_weights):
    """``(out, completed process)`` of ``rcdepth demo --quick`` with random-init weights."""
    tmp = tmp_path_factory.mktemp('demo')
    out = tmp / 'out'
    done = _run_demo(out, '--model', str(student_weights), tmp=tmp)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, done


def _messages(bag: Path, topic: str) -> list:
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CameraInfo, Image

    cls = CameraInfo if topic.endswith('camera_info') else Image
    return [(stamp, deserialize_message(raw, cls))
            for _, _, stamp, raw in bag_io.read_messages(bag, [topic])]


def test_quick_demo_records_one_output_per_keyframe(quick_demo):
    out, done = quick_demo
    for word in ('world', 'depth bag', 'picture', 'metrics', 'MAE'):
        assert word in done.stdout, done.stdout
    report = json.loads((out / 'metrics.json').read_text())
    # The quick world has no camera sweeps: every image of the bag is a keyframe.
    images = [stamp for _, _, stamp, _ in bag_io.read_messages(
        out / 'bag', ['/CAM_FRONT/image_rect_compressed'])]
    keyframes = load_keyframes(out / 'world', 'v1.0-sim', 'scene-0000')
    assert sorted(images) == [kf.stamp_ns for kf in keyframes]
    assert len(images) >= 5

    depth_bag = out / 'depth_bag'
    topics = bag_io.bag_topics(depth_bag)
    for name in ('depth', 'uncertainty', 'camera_info', 'depth_colored'):
        assert topics[f'{NODE}/output/{name}'][1] == len(images), topics
    depth = _messages(depth_bag, f'{NODE}/output/depth')
    sigma = _messages(depth_bag, f'{NODE}/output/uncertainty')
    assert [s for s, _ in depth] == images  # log time = header stamp = image stamp
    assert [msgs.stamp_to_ns(m.header.stamp) for _, m in sigma] == images
    height, width = keyframes[0].height, keyframes[0].width
    for (_, d), (_, s) in zip(depth, sigma):
        assert (d.encoding, d.height, d.width, d.header.frame_id) == \
            ('32FC1', height, width, 'CAM_FRONT')
        d_arr, s_arr = msgs.image_to_array(d), msgs.image_to_array(s)
        finite = np.isfinite(d_arr)
        assert finite.mean() > 0.5
        np.testing.assert_array_equal(np.isfinite(s_arr), finite)
        assert (s_arr[finite] > 0).all()
    colored = _messages(depth_bag, f'{NODE}/output/depth_colored')
    assert {m.encoding for _, m in colored} == {'bgr8'}

    frames = report['frames']
    assert frames['images_in'] == frames['depth_out'] == frames['uncertainty_out'] == len(images)
    assert frames['keyframes'] == frames['keyframes_with_output'] == len(images)
    assert frames['keyframes_unsynced'] == 0  # the node had every earlier sweep in time
    assert frames['published']['/RADAR_FRONT'] > 0
    assert frames['node_received']['/RADAR_FRONT'] == frames['published']['/RADAR_FRONT']
    assert frames['bad_input'] == 0

    # The report's numbers are the node's depth against the keyframe's LiDAR, recomputed here.
    record = report['per_keyframe'][2]
    expected = depth_metrics(msgs.image_to_array(depth[2][1]), keyframes[2].lidar_depth, 80.0)
    assert record['stamp_ns'] == images[2] and record['evaluated']
    assert record['mae'] == pytest.approx(expected['mae'], rel=1e-9)
    assert record['lidar_points'] == int(np.count_nonzero(keyframes[2].lidar_depth))


def test_quick_demo_report_has_finite_metrics(quick_demo):
    out, _ = quick_demo
    report = json.loads((out / 'metrics.json').read_text())
    assert report['model']['variant'] == 'xdrcdepth' and report['model']['source'] == 'given'
    assert report['world'] == {**report['world'], 'source': 'synthetic', 'seed': 0,
                               'scene': 'scene-0000', 'quick': True}
    for name in ('0-50', '0-70', '0-80'):
        metrics = report['metrics'][name]
        for key in (*DEPTH_METRICS, *UNCERTAINTY_METRICS):
            assert math.isfinite(metrics[key]), (name, key)
        assert metrics['images'] == report['frames']['keyframes']
        assert 0.0 <= metrics['d1'] <= metrics['d2'] <= metrics['d3'] <= 1.0
        assert 0.0 <= metrics['calib_1sigma'] <= metrics['calib_2sigma'] <= 1.0
    assert report['metrics']['0-80']['pixels'] >= report['metrics']['0-50']['pixels']
    node = report['node']
    assert 0.0 < node['model_ms_median'] <= node['processing_ms_median']
    assert math.isfinite(report['timing_s']['total_s'])
    for path in report['outputs'].values():
        assert Path(path).exists(), path


def _panel_difference(png: np.ndarray, box: list[int], expected: np.ndarray) -> float:
    """Mean |difference| between a panel of the PNG and an image resized to the panel."""
    left, top, right, bottom = box
    crop = png[top:bottom, left:right].astype(np.float64)
    ref = cv2.resize(expected, (right - left, bottom - top), interpolation=cv2.INTER_AREA)
    return float(np.abs(crop - ref)[2:-2, 2:-2].mean())  # skip the frame line


def test_quick_demo_picture_has_the_panel_layout(quick_demo):
    out, _ = quick_demo
    report = json.loads((out / 'metrics.json').read_text())
    png = cv2.imread(str(out / 'demo.png'), cv2.IMREAD_COLOR)[:, :, ::-1]  # RGB
    shown = report['figure']['keyframes']
    assert len(shown) == 3 and report['figure']['panels'] == list(figure.PANELS)
    height, width = report['world']['image_size']
    assert (png.shape[1], png.shape[0]) == figure.figure_size(len(shown), height, width)
    # The representative keyframe (first row) is the one with the median MAE.
    maes = sorted((r['mae'], r['index']) for r in report['per_keyframe'])
    assert shown[0] == maes[(len(maes) - 1) // 2][1]

    keyframes = load_keyframes(out / 'world', 'v1.0-sim', 'scene-0000')
    depth = dict(_messages(out / 'depth_bag', f'{NODE}/output/depth'))
    boxes = report['figure']['boxes']
    assert len(boxes) == len(shown) and all(len(row) == len(figure.PANELS) for row in boxes)
    for row, index in zip(boxes, shown):
        kf = keyframes[index]
        colored = codec.colorize_depth(msgs.image_to_array(depth[kf.stamp_ns]), 100.0)
        # Column 1 is the camera image, column 3 the node's colourised depth, and they are
        # not interchangeable (the layout is right, not just the size).
        assert _panel_difference(png, row[0], kf.rgb()) < 6.0
        assert _panel_difference(png, row[2], colored[:, :, ::-1]) < 6.0
        assert _panel_difference(png, row[2], kf.rgb()) > 20.0
        lefts = [box[0] for box in row]
        assert lefts == sorted(lefts) and all(b[1] == row[0][1] for b in row)


def test_demo_on_a_nuscenes_dataroot_gives_the_same_depth(quick_demo, student_weights,
                                                          tmp_path):
    # The synthetic world is a nuScenes dataroot: --nuscenes takes the same path as real data.
    # The replay waits for every keyframe, so the node sees the same inputs and the depth
    # (CPU, eval mode) and hence every number is the same as in the first run.
    first_out, _ = quick_demo
    out = tmp_path / 'out'
    done = _run_demo(out, '--nuscenes', str(first_out / 'world'), '--scene', 'scene-0000',
                     '--model', str(student_weights), tmp=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    first = json.loads((first_out / 'metrics.json').read_text())
    report = json.loads((out / 'metrics.json').read_text())
    assert not (out / 'world').exists()
    assert report['world']['source'] == 'nuscenes' and report['world']['seed'] is None
    assert report['world']['version'] == 'v1.0-sim'
    assert report['frames']['keyframes_with_output'] == first['frames']['keyframes']
    for a, b in zip(report['per_keyframe'], first['per_keyframe']):
        assert a['stamp_ns'] == b['stamp_ns']
        assert a['mae'] == pytest.approx(b['mae'], rel=1e-6)
        assert a['ause_rmse'] == pytest.approx(b['ause_rmse'], rel=1e-6, abs=1e-9)


def test_demo_refuses_a_non_empty_output_folder(tmp_path, capsys, student_weights):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'keep.txt').write_text('mine')
    code = cli.main(['demo', '--quick', '--out', str(out), '--model', str(student_weights)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and '\n' not in err
    assert 'not empty' in err and '--overwrite' in err
    assert sorted(p.name for p in out.iterdir()) == ['keep.txt']


def test_demo_missing_weights_say_how_to_get_them(tmp_path, capsys, monkeypatch):
    code = cli.main(['demo', '--quick', '--out', str(tmp_path / 'a'),
                     '--model', str(tmp_path / 'missing')])
    err = capsys.readouterr().err.strip()
    assert code == 1 and '\n' not in err and 'model weights not found' in err

    # No --model and no shipped weights: the message says where they come from.
    monkeypatch.setattr(model_io, 'default_model_path', lambda: tmp_path / 'xdrcdepth_demo')
    code = cli.main(['demo', '--quick', '--out', str(tmp_path / 'b')])
    err = capsys.readouterr().err.strip()
    assert code == 1 and '\n' not in err
    assert 'models/xdrcdepth_demo' in err and '--model' in err
    assert not (tmp_path / 'a').exists() and not (tmp_path / 'b').exists()


def test_demo_rejects_corrupt_weights_before_any_work(tmp_path, capsys, student_weights):
    bad = tmp_path / 'bad'
    bad.with_suffix('.safetensors').write_bytes(b'\x00' * 16)
    bad.with_suffix('.json').write_text('{"variant": ')
    code = cli.main(['demo', '--quick', '--out', str(tmp_path / 'o'), '--model', str(bad)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and '\n' not in err and 'cannot read model description' in err

    # A good description beside a truncated weights file.
    bad.with_suffix('.json').write_text(student_weights.with_suffix('.json').read_text())
    bad.with_suffix('.safetensors').write_bytes(
        student_weights.with_suffix('.safetensors').read_bytes()[:1000])
    code = cli.main(['demo', '--quick', '--out', str(tmp_path / 'o'), '--model', str(bad)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and '\n' not in err and 'corrupt weights file' in err
    assert not (tmp_path / 'o').exists()


def test_demo_nuscenes_input_errors(tmp_path, capsys, student_weights):
    model = ['--model', str(student_weights)]
    code = cli.main(['demo', '--out', str(tmp_path / 'o'), '--nuscenes',
                     str(tmp_path / 'nowhere'), *model])
    err = capsys.readouterr().err.strip()
    assert code == 1 and '\n' not in err and 'nuScenes dataroot not found' in err

    root = tmp_path / 'nusc'
    (root / 'v1.0-mini').mkdir(parents=True)
    (root / 'v1.0-mini' / 'scene.json').write_text(json.dumps(
        [{'name': 'scene-0061'}, {'name': 'scene-0103'}]))
    code = cli.main(['demo', '--out', str(tmp_path / 'o'), '--nuscenes', str(root),
                     '--scene', 'scene-9999', *model])
    err = capsys.readouterr().err.strip()
    assert code == 1 and '\n' not in err
    assert "unknown scene 'scene-9999'" in err and 'scene-0061' in err

    code = cli.main(['demo', '--out', str(tmp_path / 'o'), '--nuscenes', str(root),
                     '--version', 'v1.0-trainval', *model])
    err = capsys.readouterr().err.strip()
    assert code == 1 and 'no v1.0-trainval tables' in err and 'v1.0-mini' in err

    code = cli.main(['demo', '--out', str(tmp_path / 'o'), '--scene', 'scene-0061', *model])
    err = capsys.readouterr().err.strip()
    assert code == 1 and '--nuscenes' in err
    assert not (tmp_path / 'o').exists()


def test_demo_uses_the_shipped_weights_by_default(tmp_path):
    weights = model_io.default_model_path()
    if not weights.with_suffix('.safetensors').is_file():
        pytest.skip(f'shipped demo weights {weights.name}.safetensors are not in models/ yet')
    out = tmp_path / 'out'
    done = _run_demo(out, tmp=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / 'metrics.json').read_text())
    assert report['model']['source'] == 'shipped default'
    assert report['model']['name'] == model_io.DEMO_MODEL_NAME
    assert report['frames']['keyframes_with_output'] == report['frames']['keyframes']
    assert math.isfinite(report['metrics']['0-80']['mae'])


def test_node_and_infer_bag_agree_bit_for_bit_under_non_default_parameters(
        tmp_path, student_weights, monkeypatch):
    """One parameter set everywhere: the demo's live node and ``infer-bag`` on its bag, both
    with the same --params-file (state filters, window, sweeps, depth range), give identical
    depth and uncertainty images for every image."""
    import torch

    from rcdepth_ros.bags.infer_bag import infer_bag
    from rcdepth_ros.ros.harness import write_params_file

    params = write_params_file(tmp_path / 'params.yaml', {
        'radar.window': 0.3, 'radar.max_sweeps': 3, 'radar.invalid_states': [0],
        'radar.dyn_props': [0, 1, 2, 3, 5, 6, 7], 'radar.ambig_states': [3],
        # Random-init weights predict about 50 m everywhere: a band that masks part of it.
        'min_depth': 49.97, 'max_depth': 50.01})
    out = tmp_path / 'out'
    monkeypatch.setenv('OMP_NUM_THREADS', '1')  # the node's torch threads, as here
    done = _run_demo(out, '--model', str(student_weights), '--params-file', str(params),
                     tmp=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    torch.set_num_threads(1)
    summary = infer_bag(out / 'bag', tmp_path / 'offline', model=student_weights,
                        device='cpu', params_file=params, progress=False)
    assert summary['skipped'] == {} and summary['uncompensated'] == 0
    for key, offline_topic in (('depth', '/CAM_FRONT/depth'),
                               ('uncertainty', '/CAM_FRONT/uncertainty')):
        node = _messages(out / 'depth_bag', f'{NODE}/output/{key}')
        offline = _messages(tmp_path / 'offline', offline_topic)
        assert [s for s, _ in node] == [s for s, _ in offline] and len(node) >= 5
        finite, pixels = [], 0
        for (_, a), (_, b) in zip(node, offline):
            a, b = msgs.image_to_array(a), msgs.image_to_array(b)
            np.testing.assert_array_equal(a, b)
            finite.append(a[np.isfinite(a)])
            pixels += a.size
        if key == 'depth':  # the depth range of the file, not the default 1..100 m
            finite = np.concatenate(finite)
            assert 0 < finite.size < pixels
            assert finite.min() >= 49.97 and finite.max() <= 50.01


def test_surround_demo_serves_six_cameras_from_one_node(tmp_path, student_weights):
    """--surround: one node, six cameras and five radars; every camera image gets its depth
    back under /rcdepth_node/<camera>/output/..., and OUT/surround.png is written."""
    out = tmp_path / 'out'
    done = _run_demo(out, '--surround', '--model', str(student_weights), tmp=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert 'surround' in done.stdout
    from rcdepth_ros.demo.scene import SURROUND_CAMERAS

    params = yaml.safe_load((out / 'node_params.yaml').read_text())
    assert params['/**']['ros__parameters']['cameras'] == list(SURROUND_CAMERAS)
    images = bag_io.bag_topics(out / 'bag')
    outputs = bag_io.bag_topics(out / 'depth_bag')
    for camera in SURROUND_CAMERAS:
        n = images[f'/{camera}/image_rect_compressed'][1]
        assert outputs[f'{NODE}/{camera}/output/depth'][1] == n >= 2
        assert outputs[f'{NODE}/{camera}/output/uncertainty'][1] == n
    picture = cv2.imread(str(out / 'surround.png'))
    assert picture is not None and picture.shape[0] >= 640 and picture.shape[1] > 640
    report = json.loads((out / 'metrics.json').read_text())
    assert report['surround']['cameras'] == list(SURROUND_CAMERAS)
    assert report['frames']['images_in'] == report['frames']['depth_out']


def test_a_model_without_sigma_gets_no_uncertainty_metrics(tmp_path):
    """The teacher publishes NaN sigma everywhere: the demo reports no AUSE or calibration
    for it (an infinite sigma would put every pixel 'within 1 sigma')."""
    from rcdepth_ros.demo import metrics
    from rcdepth_ros.demo.scene import Keyframe

    lidar = np.zeros((32, 48), np.float32)
    lidar[10:20, 5:40] = 12.0
    kf = Keyframe('t', 1, tmp_path / 'x.png', np.eye(3), 32, 48, lidar, np.zeros((0, 6)))
    depth = np.full((32, 48), 13.0, np.float32)  # 1 m too far everywhere
    for sigma, has in ((np.full_like(depth, np.nan), False), (np.full_like(depth, 2.0), True)):
        averages, records = metrics.evaluate_keyframes([kf], {1: {'depth': depth,
                                                                 'uncertainty': sigma}})
        row = averages['0-80']
        assert row['mae'] == pytest.approx(1.0) and ('calib_1sigma' in row) == has
        assert ('ause_rmse' in records[0]) == has
        line = metrics.summary_line(averages)
        assert ('no uncertainty output' in line) == (not has)
        if has:
            assert row['calib_1sigma'] == 1.0 and '|err|<=sigma 1.00' in line  # 1 m <= 2 m
