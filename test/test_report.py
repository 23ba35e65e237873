"""Results tables of rcdepth_ros.training.report from eval JSON files."""

import json

import pytest

from rcdepth_ros.training import report


def _write(root, run, mae, sigma=True, params=8_900_000):
    row = {'mae': mae, 'rmse': 2 * mae, 'abs_rel': 0.1, 'd1': 0.9,
           'ause_rmse': 0.5 if sigma else None, 'ause_abs_rel': 0.01 if sigma else None,
           'calib_1sigma': 0.7 if sigma else None, 'calib_2sigma': 0.95 if sigma else None}
    data = {'model': {'parameters': params}, 'step': 150, 'has_uncertainty': sigma,
            'ranges': {'0-50': dict(row), '0-80': dict(row)}}
    (root / run).mkdir()
    (root / run / 'test_metrics.json').write_text(json.dumps(data))


def test_tables_and_kd_gain(tmp_path, capsys):
    _write(tmp_path, 'teacher', 3.0, sigma=False, params=60_710_000)
    _write(tmp_path, 'xdrcdepth_nokd', 4.0)
    _write(tmp_path, 'xdrcdepth_kd', 3.6)
    reports = report.load_reports(tmp_path)
    assert list(reports) == ['teacher', 'xdrcdepth_nokd', 'xdrcdepth_kd']  # table order
    depth = report.depth_table(reports).splitlines()
    assert depth[2].startswith('| teacher | 60.71 | 150 | 3.000 | 6.000 |')
    uncertainty = report.uncertainty_table(reports)
    assert 'teacher' not in uncertainty and '| xdrcdepth_kd | 0.500 |' in uncertainty
    assert report.kd_gains(reports) == [
        '- xdrcdepth_kd (1 run(s)) vs xdrcdepth_nokd (1 run(s)), mean MAE 0-50 m: '
        '3.600 vs 4.000, -10.0 %',
        '- xdrcdepth_kd (1 run(s)) vs xdrcdepth_nokd (1 run(s)), mean MAE 0-80 m: '
        '3.600 vs 4.000, -10.0 %']
    assert report.main([str(tmp_path)]) == 0
    assert '-10.0 %' in capsys.readouterr().out


def test_seeds_are_averaged_before_the_kd_comparison(tmp_path):
    for run, mae in (('xdrcdepth_nokd_s0', 4.0), ('xdrcdepth_nokd_s1', 5.0),
                     ('xdrcdepth_kd_s0', 3.0), ('xdrcdepth_kd_s1', 4.2)):
        _write(tmp_path, run, mae)
    gains = report.kd_gains(report.load_reports(tmp_path))
    # (3.0 + 4.2) / 2 = 3.6 against (4.0 + 5.0) / 2 = 4.5: -20 %.
    assert gains[-1] == ('- xdrcdepth_kd (2 run(s)) vs xdrcdepth_nokd (2 run(s)), mean MAE '
                         '0-80 m: 3.600 vs 4.500, -20.0 %')


def test_learning_curves_png(tmp_path):
    (tmp_path / 'a').mkdir()
    lines = [{'step': s, 'val': {'0-80': {'mae': 10.0 / s}}} for s in (1, 2, 4)]
    (tmp_path / 'a' / 'history.jsonl').write_text('\n'.join(json.dumps(x) for x in lines))
    out = report.learning_curves(tmp_path, ['a', 'missing'], tmp_path / 'curves.png')
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    with pytest.raises(FileNotFoundError):
        report.learning_curves(tmp_path, ['missing'], tmp_path / 'none.png')


def test_missing_results_are_one_clear_error(tmp_path, capsys):
    with pytest.raises(FileNotFoundError):
        report.load_reports(tmp_path)
    assert report.main([str(tmp_path)]) == 1
    assert capsys.readouterr().err.count('\n') == 1
