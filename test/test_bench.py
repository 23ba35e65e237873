"""rcdepth bench: result schema, round-robin bookkeeping, ratios and the JSON file (no timing)."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from rcdepth_ros import cli
from rcdepth_ros.bench import (
    RESULT_FIELDS,
    format_breakdown,
    format_table,
    profiled_parts,
    run_benchmark,
    synthetic_inputs,
)
from rcdepth_ros.models.outputs import StudentOutput


class Tiny(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Conv2d(7, width, 3, padding=1)
        self.head = nn.Conv2d(width, 2, 1)

    def forward(self, image, radar):
        x = self.head(torch.relu(self.body(torch.cat([image, radar], 1))))
        return StudentOutput(100 * torch.sigmoid(x[:, :1]), x[:, 1:], (), (), (), (), ())


def check_schema(results, variants, backends, sizes, modes=('optimized',)):
    assert len(results) == len(variants) * len(backends) * len(sizes) * len(modes)
    seen = {(r['variant'], r['backend'], r['mode'], r['height'], r['width']) for r in results}
    assert seen == {(v, b, m, h, w) for v in variants for b in backends for m in modes
                    for h, w in sizes}
    for r in results:
        assert set(RESULT_FIELDS) <= set(r)
        assert r['device'] == 'cpu' and r['precision'] == 'fp32'
        assert r['fuse'] is (r['mode'] == 'optimized')
        assert r['channels_last'] is (r['mode'] == 'optimized' and r['backend'] == 'torch')
        assert r['threads'] == torch.get_num_threads()
        assert 0 < r['median_ms'] <= r['p90_ms']
        assert r['peak_mem_mb'] >= r['weights_mb'] > 0
        assert r['reference'] == variants[0]
        if r['variant'] == variants[0]:
            assert r['rel_median'] == pytest.approx(1.0)
        assert math.isfinite(r['rel_median']) and r['rel_median'] > 0


def test_run_benchmark_schema_tiny_models():
    torch.manual_seed(0)
    models = {'small': Tiny(4), 'large': Tiny(16)}
    sizes = [(32, 48), (40, 24)]
    results = run_benchmark(models, backends=['torch', 'onnxruntime'], sizes=sizes, runs=3,
                            warmup=1, device='cpu', progress=False)
    check_schema(results, ['small', 'large'], ['torch', 'onnxruntime'], sizes)
    assert all(r['runs'] == 3 for r in results)
    table = format_table(results)
    assert 'large' in table and 'onnxruntime' in table and 'x ref' in table


def test_run_benchmark_modes_share_rounds_and_keep_the_models():
    torch.manual_seed(0)
    models = {'small': Tiny(4), 'large': Tiny(8)}
    before = {k: [p.clone() for p in m.parameters()] for k, m in models.items()}
    results = run_benchmark(models, backends=['torch'], sizes=[(32, 64)], runs=2, warmup=0,
                            device='cpu', progress=False, modes=['optimized', 'eager'])
    check_schema(results, ['small', 'large'], ['torch'], [(32, 64)], ('optimized', 'eager'))
    # Ratios are within one mode: the reference is 1.0 in both.
    refs = [r for r in results if r['variant'] == 'small']
    assert sorted(r['mode'] for r in refs) == ['eager', 'optimized']
    assert all(r['rel_median'] == pytest.approx(1.0) for r in refs)
    for key, model in models.items():
        for p, q in zip(model.parameters(), before[key]):
            torch.testing.assert_close(p, q, rtol=0, atol=0)


class Decoded(nn.Module):
    """Tiny network with a ``decoder`` whose children the breakdown expands."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Conv2d(7, 8, 3, padding=1)
        self.decoder = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 2, 1))

    def forward(self, image, radar):
        x = self.decoder(torch.relu(self.encoder(torch.cat([image, radar], 1))))
        return StudentOutput(100 * torch.sigmoid(x[:, :1]), x[:, 1:], (), (), (), (), ())


def test_breakdown_times_every_part_and_removes_its_hooks():
    torch.manual_seed(0)
    models = {'a': Decoded(), 'b': Decoded()}
    assert list(profiled_parts(models['a'])) == ['encoder', 'decoder.0', 'decoder.1']
    results = run_benchmark(models, backends=['torch', 'onnxruntime'], sizes=[(32, 64)],
                            runs=3, warmup=1, device='cpu', progress=False, breakdown=True)
    for r in results:
        if r['backend'] == 'onnxruntime':
            assert 'parts_ms' not in r  # hooks need the torch module
            continue
        parts = r['parts_ms']
        assert set(parts) == {'encoder', 'decoder.0', 'decoder.1', '(rest)', '(forward)'}
        assert all(parts[k] > 0 for k in ('encoder', 'decoder.0', 'decoder.1', '(forward)'))
        assert sum(parts[k] for k in ('encoder', 'decoder.0', 'decoder.1')) <= (
            parts['(forward)'] * 1.5)
    # The optimized copy was timed with hooks; neither it nor the caller's model keeps one.
    for model in models.values():
        assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    table = format_breakdown(results)
    assert table.splitlines()[0].split()[0] == 'part' and 'decoder.1' in table
    assert format_breakdown([r for r in results if r['backend'] == 'onnxruntime']) == ''


def test_run_benchmark_rejects_bad_arguments():
    with pytest.raises(ValueError):
        run_benchmark({}, device='cpu')
    with pytest.raises(ValueError):
        run_benchmark({'a': Tiny(2)}, runs=0, device='cpu')
    with pytest.raises(ValueError, match='mode'):
        run_benchmark({'a': Tiny(2)}, device='cpu', modes=['turbo'])


def test_synthetic_inputs_are_sparse_radar_and_rgb():
    images, radar = synthetic_inputs(2, 30, 50, seed=1)
    assert images.shape == (2, 30, 50, 3) and images.dtype == np.uint8
    assert radar.shape == (2, 4, 30, 50) and radar.dtype == np.float32
    assert 0 < np.count_nonzero(radar[:, 0]) <= 2 * 60
    np.testing.assert_array_equal(synthetic_inputs(2, 30, 50, seed=1)[1], radar)


def test_bench_command_writes_json(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    # Real variants, torch only: the onnxruntime path is covered with tiny models above.
    argv = ['bench', '--variants', 'xdrcdepth,xdrcdepth_add', '--backends', 'torch',
            '--size', '32x64', '--size', '32x96', '--runs', '2', '--warmup', '1',
            '--device', 'cpu', '--json', str(out), '--quiet']
    assert cli.main(argv) == 0
    results = json.loads(out.read_text())
    check_schema(results, ['xdrcdepth', 'xdrcdepth_add'], ['torch'], [(32, 64), (32, 96)])
    assert 'xdrcdepth' in capsys.readouterr().out
    assert cli.main(['bench', '--variants', 'nosuch', '--device', 'cpu']) == 1
    assert cli.main(['bench', '--variants', 'xdrcdepth', '--modes', 'turbo']) == 1
    assert cli.main(['bench', '--variants', 'xdrcdepth', '--threads', '0']) == 1
    assert not list(tmp_path.glob('*.partial'))
    capsys.readouterr()
    assert cli.main(['bench', '--from-json', str(out), '--markdown']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith('| variant |') and len(lines) == 2 + len(results)
    # --breakdown on the real students: every decoder stage is a row of the part table.
    assert cli.main(['bench', '--variants', 'lircdepth', 'xdrcdepth', '--size', '32x64',
                     '--runs', '1', '--warmup', '0', '--device', 'cpu', '--breakdown',
                     '--quiet']) == 0
    out_text = capsys.readouterr().out
    for part in ('image_encoder', 'fusion', 'decoder.stage2', 'decoder.context', 'uncertainty'):
        assert part in out_text
    assert cli.main(['bench', '--from-json', str(tmp_path / 'none.json')]) == 1
    (tmp_path / 'bad.json').write_text('[{"variant": 1}]')
    assert cli.main(['bench', '--from-json', str(tmp_path / 'bad.json')]) == 1


def test_three_backends_and_int8_in_one_interleaved_run():
    torch.manual_seed(0)
    models = {'small': Tiny(4), 'large': Tiny(8)}
    skipped = []
    results = run_benchmark(models, backends=['torch', 'onnxruntime', 'openvino'],
                            precisions=['fp32', 'fp16', 'int8'], sizes=[(32, 48)], runs=2,
                            warmup=1, device='cpu', progress=False, skipped=skipped)
    cases = {(r['variant'], r['backend'], r['precision']) for r in results}
    combos = {('torch', 'fp32'), ('onnxruntime', 'fp32'), ('openvino', 'fp32'),
              ('onnxruntime', 'int8'), ('openvino', 'int8')}
    assert cases == {(v, b, p) for v in models for b, p in combos}
    # fp16 exists on CPU for none of them, int8 not for torch: named, not silently dropped.
    assert sorted(line.split(':')[0] for line in skipped) == [
        'onnxruntime fp16 optimized', 'openvino fp16 optimized', 'torch fp16 optimized',
        'torch int8 optimized']
    for r in results:
        assert set(RESULT_FIELDS) <= set(r)
        assert math.isfinite(r['rel_backend']) and r['rel_backend'] > 0
        if r['backend'] == 'torch':
            assert r['rel_backend'] == pytest.approx(1.0)
        if r['variant'] == 'small':
            assert r['rel_median'] == pytest.approx(1.0)  # per backend and precision
        assert r['weights_mb'] == pytest.approx(
            sum(p.numel() for p in models[r['variant']].parameters())
            * (1 if r['precision'] == 'int8' else 4) / 2**20)
    table = format_table(results)
    assert 'openvino' in table and 'x torch' in table
