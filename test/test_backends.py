"""Graph backends: what exists, OpenVINO parity with torch, the graph cache, INT8 graphs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from rcdepth_ros import backends
from rcdepth_ros.bench import synthetic_inputs
from rcdepth_ros.inference import DepthEstimator
from rcdepth_ros.preprocess import image_to_tensor


@pytest.mark.parametrize('backend, precision, device', [
    ('torch', 'fp16', 'cpu'), ('openvino', 'fp16', 'cpu'), ('openvino', 'fp32', 'cuda'),
    ('onnxruntime', 'int8', 'cuda'), ('onnxruntime', 'fp16', 'cpu'), ('tensorrt', 'fp32', 'cpu'),
    ('torch', 'int4', 'cpu')])
def test_combinations_that_do_not_exist_raise(backend, precision, device):
    with pytest.raises(ValueError, match=backend if backend != 'torch' else precision):
        backends.check_combination(backend, precision, device)


def test_combinations_that_exist_pass():
    for (backend, precision), devices in backends.COMBINATIONS.items():
        for device in devices:
            backends.check_combination(backend, precision, device)


def _frame(height=90, width=150, seed=3):
    # H != W and not multiples of 32: padding and cropping are part of what must agree.
    return synthetic_inputs(1, height, width, seed=seed)


def test_openvino_matches_torch_on_a_synthetic_frame(student_weights, tmp_path):
    images, radar = _frame()
    reference = DepthEstimator(str(student_weights), device='cpu').predict(images, radar)
    openvino = DepthEstimator(str(student_weights), device='cpu', backend='openvino',
                              cache=tmp_path / 'cache')
    result = openvino.predict(images, radar)
    assert result.depth.shape == (1, 90, 150)
    # fp32 tolerances: both run the same fused graph, differing in kernel summation order.
    torch.testing.assert_close(result.depth, reference.depth, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(result.sigma, reference.sigma, rtol=1e-4, atol=1e-3)
    assert np.isfinite(openvino.model_time_ms)
    assert openvino.describe()['backend'] == 'openvino'
    # A second size compiles a second shape and still agrees.
    images2, radar2 = _frame(64, 200, seed=4)
    torch.testing.assert_close(openvino.predict(images2, radar2).depth,
                               DepthEstimator(str(student_weights), device='cpu')
                               .predict(images2, radar2).depth, rtol=1e-4, atol=1e-3)


def test_openvino_is_cpu_only(student_weights):
    with pytest.raises(ValueError, match='cpu only'):
        DepthEstimator(str(student_weights), device='cuda', backend='openvino')


def test_graph_cache_second_start_does_not_export(student_weights, tmp_path, monkeypatch):
    calls = []
    export = backends.export_graph

    def counting_export(*args, **kwargs):
        calls.append(1)
        return export(*args, **kwargs)

    monkeypatch.setattr(backends, 'export_graph', counting_export)
    cache = tmp_path / 'cache'
    images, radar = _frame()
    outputs = {}
    for backend in ('onnxruntime', 'openvino'):
        first = DepthEstimator(str(student_weights), device='cpu', backend=backend, cache=cache)
        second = DepthEstimator(str(student_weights), device='cpu', backend=backend,
                                cache=cache)
        assert first.describe()['graph_cache'] == 'build'
        assert second.describe()['graph_cache'] == 'hit'
        np.testing.assert_array_equal(first.predict(images, radar).depth,
                                      second.predict(images, radar).depth)
        outputs[backend] = second.predict(images, radar).depth
    assert len(calls) == 2  # one export per backend, none on the second starts
    entries = sorted(p.name for p in cache.iterdir())
    assert len(entries) == 2 and not any(name.startswith('.') for name in entries)
    torch.testing.assert_close(outputs['openvino'], outputs['onnxruntime'], rtol=1e-4,
                               atol=1e-3)


def test_graph_cache_key_changes_with_weights_backend_and_versions(student_weights, tmp_path):
    digest = backends.weights_digest(student_weights)
    changed = tmp_path / 'changed'
    for suffix in ('.safetensors', '.json'):
        shutil.copy(f'{student_weights}{suffix}', f'{changed}{suffix}')
    assert backends.weights_digest(changed) == digest
    with open(f'{changed}.safetensors', 'r+b') as f:
        f.seek(-4, 2)
        f.write(b'\x00\x01\x02\x03')
    assert backends.weights_digest(changed) != digest
    fields = {'weights': digest, 'backend': 'onnxruntime', 'precision': 'fp32',
              'size_policy': backends.SIZE_POLICY, **backends.tool_versions('onnxruntime')}
    key = backends.GraphCache.key(fields)
    for name, value in (('backend', 'openvino'), ('onnxruntime', '0.0.0'),
                        ('size_policy', 'static'), ('weights', '0' * 64)):
        assert backends.GraphCache.key(dict(fields, **{name: value})) != key


@pytest.mark.parametrize('damage', ['truncate', 'flip', 'manifest', 'no_manifest', 'delete'])
def test_corrupt_cache_entry_is_rebuilt_never_loaded(student_weights, tmp_path, damage):
    cache = backends.GraphCache(tmp_path / 'cache')
    images, radar = _frame()
    good = DepthEstimator(str(student_weights), device='cpu', backend='onnxruntime',
                          cache=cache).predict(images, radar).depth
    (entry,) = [p for p in cache.root.iterdir()]
    graph = entry / 'graph.onnx'
    if damage == 'truncate':
        graph.write_bytes(graph.read_bytes()[:1000])
    elif damage == 'flip':
        data = bytearray(graph.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one weight byte: the graph would still load
        graph.write_bytes(bytes(data))
    elif damage == 'manifest':
        (entry / 'manifest.json').write_text('{not json')
    elif damage == 'no_manifest':
        (entry / 'manifest.json').unlink()
    else:
        graph.unlink()
    again = DepthEstimator(str(student_weights), device='cpu', backend='onnxruntime',
                           cache=cache)
    assert again.describe()['graph_cache'].startswith('rebuild')
    np.testing.assert_array_equal(again.predict(images, radar).depth, good)
    third = DepthEstimator(str(student_weights), device='cpu', backend='onnxruntime',
                           cache=cache)
    assert third.describe()['graph_cache'] == 'hit'


def _calibration(count=2, height=64, width=96):
    frames = []
    for seed in range(count):
        images, radar = synthetic_inputs(1, height, width, seed=seed)
        frames.append((image_to_tensor(images).numpy(), radar))
    return frames


@pytest.fixture(scope='module')
def int8_graph():
    from rcdepth_ros.models import VARIANTS, build_model

    torch.manual_seed(0)
    model = build_model(VARIANTS['xdrcdepth']).eval()
    return model, backends.quantize_int8(backends.export_graph(model), _calibration())


def test_int8_graph_runs_on_onnxruntime_and_openvino(int8_graph, tmp_path):
    import onnx

    model, graph = int8_graph
    proto = onnx.load_from_string(graph)
    ops = {node.op_type for node in proto.graph.node}
    assert {'QuantizeLinear', 'DequantizeLinear'} <= ops
    assert any(p.key == 'rcdepth_config' for p in proto.metadata_props)
    path = tmp_path / 'int8.onnx'
    path.write_bytes(graph)
    images, radar = _frame(64, 96, seed=0)
    reference = DepthEstimator(model, device='cpu').predict(images, radar).depth
    results = {}
    for backend in ('onnxruntime', 'openvino'):
        est = DepthEstimator(None, device='cpu', backend=backend, onnx_path=path)
        results[backend] = est.predict(images, radar).depth
        assert est.variant == 'xdrcdepth'
        assert np.isfinite(results[backend]).all()
        # Quantisation error, not a wrong graph: within a few % of the fp32 depth.
        assert np.abs(results[backend] - reference).mean() < 0.05 * np.abs(reference).mean()


def test_int8_of_a_module_needs_calibration():
    from rcdepth_ros.models import VARIANTS, build_model

    model = build_model(VARIANTS['xdrcdepth']).eval()
    with pytest.raises(ValueError, match='calibration'):
        DepthEstimator(model, device='cpu', backend='onnxruntime', precision='int8')


def test_int8_next_to_weights_is_verified(student_weights, int8_graph, tmp_path):
    base = tmp_path / 'student'
    for suffix in ('.safetensors', '.json'):
        shutil.copy(f'{student_weights}{suffix}', f'{base}{suffix}')
    with pytest.raises(FileNotFoundError, match='rcdepth quantize'):
        DepthEstimator(str(base), device='cpu', backend='openvino', precision='int8')
    _, graph = int8_graph
    onnx_path, json_path = backends.write_int8_graph(base, graph, {'mae_change': 0.01})
    est = DepthEstimator(str(base), device='cpu', backend='openvino', precision='int8')
    assert est.metadata['int8']['mae_change'] == 0.01
    assert np.isfinite(est.predict(*_frame(64, 96)).depth).all()
    # Bytes changed after the manifest was written: refused, not loaded.
    data = bytearray(onnx_path.read_bytes())
    data[-10] ^= 0xFF
    onnx_path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match='corrupt'):
        DepthEstimator(str(base), device='cpu', backend='onnxruntime', precision='int8')
    # A graph quantised from other weights: refused.
    backends.write_int8_graph(base, graph, {})
    manifest = json.loads(json_path.read_text())
    manifest['weights_sha256'] = '0' * 64
    json_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match='other weights'):
        DepthEstimator(str(base), device='cpu', backend='onnxruntime', precision='int8')


def test_weights_digest_of_a_module_follows_its_tensors():
    from rcdepth_ros.models import VARIANTS, build_model

    torch.manual_seed(0)
    model = build_model(VARIANTS['xdrcdepth']).eval()
    digest = backends.weights_digest(model)  # 0-dim buffers (num_batches_tracked) included
    assert backends.weights_digest(model) == digest
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1.0
    assert backends.weights_digest(model) != digest
