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


def _write_row(root, run, mae, d1=0.9, rmse=None, ause=None, within=0.75):
    sigma = ause is not None
    row = {'mae': mae, 'rmse': rmse or 2 * mae, 'abs_rel': 0.1, 'd1': d1,
           'ause_rmse': ause, 'ause_abs_rel': 0.01 if sigma else None,
           'calib_1sigma': within if sigma else None, 'calib_2sigma': 0.95 if sigma else None}
    data = {'model': {'parameters': 1}, 'step': 1500, 'has_uncertainty': sigma,
            'ranges': {'0-80': row}}
    (root / run).mkdir()
    (root / run / 'test_metrics.json').write_text(json.dumps(data))


def test_targets_name_each_met_or_missed(tmp_path):
    _write_row(tmp_path, 'teacher', 2.8)
    # XD-RCDepth: no-KD mean (3.4 + 3.6) / 2 = 3.5; KD mean (2.9 + 3.1) / 2 = 3.0: 14.3 % lower;
    # delta1 mean (0.86 + 0.84) / 2 = 0.85 (met, >=), MAE 3.0 (met, <=).
    _write_row(tmp_path, 'xdrcdepth_nokd_s0', 3.4, rmse=6.0, ause=1.5, within=0.80)
    _write_row(tmp_path, 'xdrcdepth_nokd_s1', 3.6, rmse=6.0, ause=1.9, within=0.80)
    _write_row(tmp_path, 'xdrcdepth_kd_s0', 2.9, d1=0.86, rmse=6.0, ause=1.8, within=0.86)
    _write_row(tmp_path, 'xdrcdepth_kd_s1', 3.1, d1=0.84)
    # LiRCDepth: 4.0 -> 3.9 is 2.5 % lower: missed.
    _write_row(tmp_path, 'lircdepth_nokd', 4.0)
    _write_row(tmp_path, 'lircdepth_kd', 3.9)
    _write_row(tmp_path, 'camera_only', 3.95)  # below LiRCDepth no-KD's 4.0: not the worst
    lines = report.targets(report.load_reports(tmp_path, [
        'teacher', 'xdrcdepth_nokd_s0', 'xdrcdepth_nokd_s1', 'xdrcdepth_kd_s0', 'xdrcdepth_kd_s1',
        'lircdepth_nokd', 'lircdepth_kd', 'camera_only']))
    verdicts = {line.split('**: ')[1].split(':')[0]: line.split('**')[1] for line in lines}
    assert verdicts == {
        'the teacher has the lowest MAE': 'met',
        'xdrcdepth with its KD at least 5 % below without': 'met',
        'lircdepth with its KD at least 5 % below without': 'missed',
        'distilled XD-RCDepth delta1 >= 0.85 and MAE <= 3.0 m': 'met',
        'camera-only is the worst': 'missed',
        'xdrcdepth_nokd_s0 uncertainty': 'met',  # 1.5 / 6 = 0.25, 80 %
        'xdrcdepth_nokd_s1 uncertainty': 'missed',  # 1.9 / 6 = 0.32 > 0.3
        'xdrcdepth_kd_s0 uncertainty': 'missed',  # 86 % within 1 sigma > 85 %
    }
    assert '3.000 vs 3.500 m, 14.3 % lower' in lines[1]
    assert '3.900 vs 4.000 m, 2.5 % lower' in lines[2]


def test_a_kd_run_worse_than_without_reads_higher(tmp_path):
    _write_row(tmp_path, 'lircdepth_nokd', 4.0)
    _write_row(tmp_path, 'lircdepth_kd', 4.12)  # (4.0 - 4.12) / 4.0 = -3 %
    lines = report.targets(report.load_reports(tmp_path, ['lircdepth_nokd', 'lircdepth_kd']))
    line = next(text for text in lines if 'lircdepth with its KD' in text)
    assert line.startswith('- **missed**') and line.endswith('4.120 vs 4.000 m, 3.0 % higher')


def test_targets_without_their_runs_are_not_measured(tmp_path):
    _write_row(tmp_path, 'xdrcdepth_nokd_s0', 3.4)
    lines = report.targets(report.load_reports(tmp_path))
    assert len(lines) == 5 and all(line.startswith('- **not measured**') for line in lines)


def test_readme_block_is_replaced_between_its_markers_only(tmp_path, capsys):
    _write_row(tmp_path, 'teacher', 2.8)
    readme = tmp_path / 'README.md'
    readme.write_text(f'# top\n\n{report.README_BEGIN}\nold table\n{report.README_END}\nrest\n')
    assert report.main([str(tmp_path), '--note', 'Made by a command.',
                        '--readme', str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith('# top\n\n<!-- synthetic-benchmark:begin -->\nMade by a command.')
    assert 'old table' not in text and '| teacher |' in text and 'Targets' in text
    assert text.endswith(f'{report.README_END}\nrest\n')
    assert capsys.readouterr().out.startswith('Made by a command.')
    # A file without the markers is an error and stays as it was.
    plain = tmp_path / 'plain.md'
    plain.write_text('no markers\n')
    assert report.main([str(tmp_path), '--readme', str(plain)]) == 1
    assert plain.read_text() == 'no markers\n'
    assert 'needs one' in capsys.readouterr().err
