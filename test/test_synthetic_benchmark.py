"""The synthetic benchmark script end to end on a tiny world (DRY_RUN=1), and its resume."""

import json
import os
from pathlib import Path
import subprocess

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNS = ('teacher', 'xdrcdepth_nokd_s0', 'xdrcdepth_nokd_s1', 'xdrcdepth_kd_s0', 'xdrcdepth_kd_s1',
        'lircdepth_nokd', 'lircdepth_kd', 'camera_only')


def _run(tmp_path: Path, *phases: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DRY_RUN='1', DATA=str(tmp_path / 'world'),
               PREP=str(tmp_path / 'prep'), UNSEEN=str(tmp_path / 'unseen'),
               RUNS=str(tmp_path / 'runs'), RESULTS=str(tmp_path / 'results'),
               DEMO_OUT=str(tmp_path / 'demo' / 'xd'),
               README_OUT=str(tmp_path / 'README.md'),
               RC=str(ROOT / '.venv' / 'bin' / 'rcdepth'),
               PY=str(ROOT / '.venv' / 'bin' / 'python'))
    return subprocess.run(['bash', str(ROOT / 'scripts' / 'synthetic_benchmark.sh'), *phases],
                          env=env, capture_output=True, text=True, timeout=1200)


@pytest.mark.timeout(1300)
def test_dry_run_of_every_stage_then_a_rerun_skips_them(tmp_path):
    from rcdepth_ros.training.report import README_BEGIN, README_END

    readme = tmp_path / 'README.md'
    readme.write_text(f'# README\n{README_BEGIN}\nold\n{README_END}\nafter\n')
    done = _run(tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = tmp_path / 'results'
    table = (results / 'results.md').read_text()
    for run in RUNS:
        assert f'| {run} |' in table
        report = json.loads((results / f'{run}.json').read_text())
        assert report['data']['split'] == 'test'
        assert (tmp_path / 'runs' / run / 'DONE').is_file()
    assert 'xdrcdepth_kd (2 run(s)) vs xdrcdepth_nokd (2 run(s))' in table
    assert table.startswith('Made by `bash scripts/synthetic_benchmark.sh` (profile tiny')
    assert 'the teacher has the lowest MAE' in table  # the targets, met or missed
    # The README's block holds the same text; the rest of the README is untouched.
    block = readme.read_text().split(README_BEGIN)[1].split(README_END)[0]
    assert block.strip() == table.strip() and readme.read_text().endswith('after\n')
    assert (results / 'learning_curves.png').read_bytes()[:4] == b'\x89PNG'
    # The demo weights' run: fine-tuned from the distilled seed with the better val MAE.
    demo_run = json.loads((tmp_path / 'runs' / 'xdrcdepth_demo' / 'last.json').read_text())
    seeds = {run: json.loads((tmp_path / 'runs' / run / 'best.json').read_text())['best']['value']
             for run in ('xdrcdepth_kd_s0', 'xdrcdepth_kd_s1')}
    assert demo_run['config']['model']['init'].endswith(f'/{min(seeds, key=seeds.get)}/best')
    assert demo_run['config']['scheme'] == 'xdrcdepth' and 'xdrcdepth_demo' not in table
    assert json.loads((results / 'demo_weights_test.json').read_text())['data']['split'] == 'test'
    description = json.loads((tmp_path / 'demo' / 'xd.json').read_text())
    assert description['variant'] == 'xdrcdepth' and description['dtype'] == 'float16'
    assert description['metadata']['scheme'] == 'xdrcdepth'
    int8 = json.loads((results / 'demo_weights_int8.json').read_text())
    assert int8['backend'] == 'openvino' and int8['split'] == 'test'
    written = (tmp_path / 'demo' / 'xd.int8.onnx').is_file()
    assert written == int8['passed']  # the INT8 graph ships only through the gate
    unseen = json.loads((results / 'demo_weights_unseen_world.json').read_text())
    # Every keyframe of every scene of the unseen world (the devkit's scene table; a scene's
    # last keyframe has no following sweeps to accumulate and is not prepared).
    scenes = json.loads((tmp_path / 'unseen' / 'v1.0-sim' / 'scene.json').read_text())
    assert unseen['ranges']['0-80']['images'] == sum(s['nbr_samples'] - 1 for s in scenes)
    assert unseen['data']['split'] == 'all'
    # Each run's test evaluation is done in its lane, right after its training: the teacher's
    # before phase 2 starts, a phase-1 student's before the next run of its lane.
    out = done.stdout
    assert out.index('teacher: test evaluation') < out.index('xdrcdepth_kd_s0: training')
    assert (out.index('xdrcdepth_nokd_s0: test evaluation')
            < out.index('xdrcdepth_nokd_s1: training'))
    # The demo weights' run and its stage come after the benchmark's report, once.
    assert out.index('demo weights\' run starts from') > out.index('| teacher |')
    assert out.count('demo weights: test evaluation') == 1
    # Finished stages are skipped on a second run.
    again = _run(tmp_path, 'phase1', 'phase2', 'demo')
    assert again.returncode == 0, again.stderr[-3000:]
    # Every run, the demo weights' run and its demo stage.
    assert again.stdout.count(': done') == len(RUNS) + 2
    assert 'demo weights: done' in again.stdout
    assert 'training' not in again.stdout and 'test evaluation' not in again.stdout
    _check_lane_probe(tmp_path)


def _check_lane_probe(tmp_path: Path) -> None:
    """scripts/lane_probe.sh on the dry run's data and teacher (tiny profile, a few steps)."""
    out = tmp_path / 'probe.json'
    env = dict(os.environ, PROFILE='tiny', STEPS_TWO='3', STEPS_THREE='4',
               PREP=str(tmp_path / 'prep'), TEACHER_CKPT=str(tmp_path / 'runs/teacher/best'),
               PROBE=str(tmp_path / 'probe'), RC=str(ROOT / '.venv' / 'bin' / 'rcdepth'),
               PY=str(ROOT / '.venv' / 'bin' / 'python'))
    done = subprocess.run(['bash', str(ROOT / 'scripts' / 'lane_probe.sh'), str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert json.loads(done.stdout) == result
    # Each probe trained its steps, with the config it names.
    for run, steps, arch in (('two_kd_s0', 3, 'xdrcdepth'), ('three_kd_s1', 4, 'xdrcdepth'),
                             ('three_lircdepth_kd', 4, 'lircdepth')):
        last = json.loads((tmp_path / 'probe' / run / 'last.json').read_text())
        assert last['step'] == steps and last['config']['scheme'] == arch
    two, three = result['two_processes'], result['three_processes']
    assert two['xdrcdepth_kd'] > 0 and three['xdrcdepth_kd'] > 0 and three['lircdepth_kd'] > 0
    assert result['xdrcdepth_kd_slowdown_three_vs_two'] == pytest.approx(
        three['xdrcdepth_kd'] / two['xdrcdepth_kd'], abs=1e-3)
    if three['lircdepth_kd'] <= three['xdrcdepth_kd']:  # 1500 steps each, as in phase 2
        lir = 1500 * three['lircdepth_kd']
        expected = (lir + (1500 - lir / three['xdrcdepth_kd']) * two['xdrcdepth_kd']) / 3600
        assert result['phase2_hours'] == pytest.approx(expected, abs=0.01)
    else:
        assert result['phase2_hours'] is None


def test_a_stopped_training_run_is_never_marked_done(tmp_path):
    """A run killed or failed half-way (here: `rcdepth train` stopped by SIGTERM) is not
    marked done, the lane stops, and the script fails, so a later run resumes it."""
    stub = tmp_path / 'rcdepth'
    stub.write_text('#!/usr/bin/env bash\n'
                    '[ "$1" = train ] && kill -TERM $$\n'
                    'exit 0\n')
    stub.chmod(0o755)
    env = dict(os.environ, RUNS=str(tmp_path / 'runs'), RESULTS=str(tmp_path / 'results'),
               RC=str(stub), PY='false')
    done = subprocess.run(['bash', str(ROOT / 'scripts' / 'synthetic_benchmark.sh'), 'phase1'],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert 'teacher: stopped (exit 143' in done.stdout
    assert 'xdrcdepth_nokd_s0: stopped (exit 143' in done.stdout
    # The lane stopped at its first run: the later runs of the lane were not started.
    assert 'xdrcdepth_nokd_s1: training' not in done.stdout
    assert not list((tmp_path / 'runs').glob('*/DONE'))


@pytest.mark.parametrize('phase, missing', [('demo', 'xdrcdepth_kd_s0'), ('report', 'teacher')])
def test_demo_and_report_refuse_untrained_runs(tmp_path, phase, missing):
    """The demo phase needs the distilled seeds it starts from; the report needs every
    benchmark run. Neither starts on a run that is not done."""
    env = dict(os.environ, RUNS=str(tmp_path / 'runs'), RESULTS=str(tmp_path / 'results'),
               RC='false', PY='false')
    done = subprocess.run(['bash', str(ROOT / 'scripts' / 'synthetic_benchmark.sh'), phase],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip() == f'{phase}: {missing} is not trained yet'
