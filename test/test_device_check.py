"""scripts/device_check.sh --dry-run: every step of the GPU check runs on CPU at tiny sizes."""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys

SCRIPT = Path(__file__).resolve().parents[1] / 'scripts' / 'device_check.sh'


def test_device_check_dry_run_runs_every_step(tmp_path):
    out = tmp_path / 'out'
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1')
    env.pop('OUT', None)
    proc = subprocess.run(['bash', str(SCRIPT), '--dry-run', '--out', str(out)], env=env,
                          capture_output=True, text=True, timeout=840)
    summary = (out / 'summary.md').read_text()
    assert proc.returncode == 0, summary + proc.stderr[-3000:]
    lines = {line.split(':')[0][2:]: line for line in summary.splitlines()
             if line.startswith('- ')}
    for name in ('pytest', 'bench_64x96', 'bench_32x64', 'prepare', 'train_teacher',
                 'train_xdrcdepth_kd', 'ddp', 'node'):
        assert lines[name].startswith(f'- {name}: ok'), summary
    assert 'skipped (dry run)' in lines['install'] and 'skipped (dry run)' in lines['smi']
    assert ', 0 failed step(s)' in lines['total']
    bench = json.loads((out / 'bench_64x96.json').read_text())
    assert {(r['variant'], r['backend'], r['precision']) for r in bench} == {
        (v, 'torch', 'fp32') for v in ('xdrcdepth', 'lircdepth')} | {
        (v, 'onnxruntime', 'fp32') for v in ('xdrcdepth', 'lircdepth')}
    assert 'left out: torch fp16' in (out / 'bench_64x96.log').read_text()
    for name in ('teacher', 'xdrcdepth_kd'):
        result = json.loads((out / f'train_{name}.json').read_text())
        assert result['steps'] == 4 and result['finite'] and result['falling']
    assert (out / 'runs' / 'teacher' / 'last.json').is_file()  # the KD run's teacher
    node = json.loads((out / 'node_64x96.json').read_text())
    assert node['device'] == 'cpu'
