"""GPU paths that CPU machines cannot run: fp16 + channels_last inference, the ONNX Runtime CUDA
provider, AMP training with GradScaler, DDP over NCCL.

Marked ``cuda``; they skip without an NVIDIA GPU. ``scripts/device_check.sh`` runs them on a
GPU machine (``pytest -m cuda``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rcdepth_ros.bench import synthetic_inputs
from rcdepth_ros.inference import DepthEstimator

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason='needs an NVIDIA GPU (scripts/device_check.sh)')]


def _relative_gap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean() / np.abs(b).mean())


@pytest.mark.parametrize('channels_last', [False, True])
def test_fp16_on_cuda_matches_fp32_on_cpu(student_weights, channels_last):
    images, radar = synthetic_inputs(2, 90, 150, seed=1)
    reference = DepthEstimator(str(student_weights), device='cpu').predict(images, radar)
    half = DepthEstimator(str(student_weights), device='cuda', precision='fp16',
                          channels_last=channels_last)
    result = half.predict(images, radar)
    assert result.depth.dtype == np.float32 and np.isfinite(result.depth).all()
    assert np.isfinite(result.sigma).all()
    assert _relative_gap(result.depth, reference.depth) < 1e-2
    assert _relative_gap(result.sigma, reference.sigma) < 2e-2
    assert half.model_time_ms > 0


def test_onnxruntime_cuda_provider_matches_torch(student_weights, tmp_path):
    import onnxruntime as ort

    if 'CUDAExecutionProvider' not in ort.get_available_providers():
        pytest.skip('onnxruntime has no CUDA provider here (device_check installs '
                    'onnxruntime-gpu)')
    images, radar = synthetic_inputs(1, 96, 160, seed=2)
    reference = DepthEstimator(str(student_weights), device='cuda').predict(images, radar)
    est = DepthEstimator(str(student_weights), device='cuda', backend='onnxruntime',
                         cache=tmp_path)
    assert est.describe()['providers'][0] == 'CUDAExecutionProvider'
    result = est.predict(images, radar)
    torch.testing.assert_close(result.depth, reference.depth, rtol=1e-3, atol=1e-2)


def test_amp_float16_training_steps_with_grad_scaler(tiny_prepared, tmp_path):
    from rcdepth_ros.devcheck import train_steps

    result = train_steps('xdrcdepth_nokd', str(tiny_prepared['root']), str(tmp_path / 'run'),
                         steps=6, device='cuda', crop=(64, 128), batch=2, amp_dtype='float16')
    assert result['amp'] and result['grad_scaler']
    assert result['finite'] and result['peak_mem_mb'] > 0


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason='DDP over NCCL needs 2 GPUs')
def test_ddp_over_nccl_keeps_ranks_identical(tiny_prepared, tmp_path):
    from rcdepth_ros.devcheck import ddp_smoke

    result = ddp_smoke(str(tiny_prepared['root']), str(tmp_path / 'ddp'), steps=2,
                       device='cuda', crop=(64, 128), batch=1)
    assert result['ran'] and result['backend'] == 'nccl' and result['identical_weights']
