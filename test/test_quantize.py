"""rcdepth quantize: INT8 calibrated on prepared frames, scored, written only if gated."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rcdepth_ros import backends, cli
from rcdepth_ros.inference import DepthEstimator


@pytest.fixture
def weights(student_weights, tmp_path):
    import shutil

    base = tmp_path / 'student'
    for suffix in ('.safetensors', '.json'):
        shutil.copy(f'{student_weights}{suffix}', f'{base}{suffix}')
    return base


def test_quantize_scores_gates_and_writes_a_loadable_int8_graph(tiny_prepared, weights,
                                                                tmp_path, capsys):
    out = tmp_path / 'report.json'
    argv = ['quantize', '--model', str(weights), '--data', str(tiny_prepared['root']),
            '--split', 'val', '--calib-frames', '2', '--max-samples', '2', '--threshold',
            '0.999', '--json', str(out), '--no-progress']
    assert cli.main(argv) == 0
    report = json.loads(out.read_text())
    assert set(report['mae']) == {'torch_fp32', 'openvino_fp32', 'openvino_int8'}
    assert all(math.isfinite(v) and v > 0 for v in report['mae'].values())
    # The fp32 graph scores what torch scores (same network, fp32 rounding).
    assert report['mae']['openvino_fp32'] == pytest.approx(report['mae']['torch_fp32'],
                                                           rel=1e-4)
    assert report['mae_change'] == pytest.approx(
        report['mae']['openvino_int8'] / report['mae']['openvino_fp32'] - 1)
    assert report['passed'] and report['images'] == 2
    assert report['calibration']['frames'] == 2 and report['calibration']['split'] == 'train'
    onnx_path, json_path = backends.int8_paths(weights)
    assert report['written'] == [onnx_path.name, json_path.name]
    printed = capsys.readouterr().out
    assert 'MAE change' in printed and 'INT8 graph written' in printed
    est = DepthEstimator(str(weights), device='cpu', backend='onnxruntime', precision='int8')
    assert est.metadata['int8']['mae_change'] == pytest.approx(report['mae_change'])
    from rcdepth_ros.bench import synthetic_inputs

    assert np.isfinite(est.predict(*synthetic_inputs(1, 64, 96)).depth).all()


def test_quantize_that_fails_the_gate_writes_nothing(tiny_prepared, weights, monkeypatch):
    from rcdepth_ros import quantize

    real = backends.quantize_int8

    def worse(graph, frames):
        # An INT8 graph calibrated on a blank frame: activations clip, the MAE moves.
        image, radar = frames[0]
        return real(graph, [(np.full_like(image, 5.0), radar * 0)])

    monkeypatch.setattr(backends, 'quantize_int8', worse)
    report = quantize.quantize_weights(weights, tiny_prepared['root'], split='val',
                                       calib_frames=1, max_samples=2, threshold=1e-9)
    assert not report['passed'] and report['written'] == []
    assert not any(p.exists() for p in backends.int8_paths(weights))
    assert 'INT8 left out' in quantize.format_report(report)


def test_eval_scores_a_graph_backend_like_torch(tiny_prepared, weights, tmp_path):
    reports = {}
    for backend in ('torch', 'openvino'):
        out = tmp_path / f'{backend}.json'
        assert cli.main(['eval', '--checkpoint', str(weights), '--data',
                         str(tiny_prepared['root']), '--split', 'val', '--max-samples', '2',
                         '--device', 'cpu', '--backend', backend, '--json', str(out),
                         '--no-progress']) == 0
        reports[backend] = json.loads(out.read_text())
    assert reports['openvino']['backend'] == 'openvino'
    for key in ('mae', 'rmse', 'ause_rmse'):
        assert reports['openvino']['ranges']['0-80'][key] == pytest.approx(
            reports['torch']['ranges']['0-80'][key], rel=1e-3)
    with pytest.raises(FileNotFoundError, match='rcdepth quantize'):
        cli_args = ['eval', '--checkpoint', str(weights), '--data', str(tiny_prepared['root']),
                    '--split', 'val', '--backend', 'openvino', '--precision', 'int8']
        from rcdepth_ros.commands.eval import run

        run(cli.build_parser().parse_args(cli_args))


def test_quantize_serves_frames_at_the_focal_length_the_weights_were_trained_at(
        tiny_prepared, weights):
    """Weights trained at half the data's focal length are calibrated and scored on frames
    resized by 0.5, as the node serves them (not at the prepared size)."""
    from rcdepth_ros import quantize

    meta = json.loads(next((tiny_prepared['root'] / 'val').glob('*/meta.json')).read_text())
    height, width, fx = meta['height'], meta['width'], meta['K'][0][0]
    description = json.loads(weights.with_suffix('.json').read_text())
    description.setdefault('input', {}).setdefault('image', {})['focal_length_px'] = 0.5 * fx
    weights.with_suffix('.json').write_text(json.dumps(description))
    report = quantize.quantize_weights(weights, tiny_prepared['root'], split='val',
                                       calib_frames=1, max_samples=1, write=False)
    assert report['input_scale'] == pytest.approx(0.5, abs=1e-3)
    rows, cols = report['eval_size']
    assert height / 2 - 32 < rows <= height / 2 and width / 2 - 32 < cols <= width / 2
