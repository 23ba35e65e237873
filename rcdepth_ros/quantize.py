"""INT8 post-training quantisation of exported weights, gated on accuracy.

``rcdepth quantize`` runs :func:`quantize_weights`:

1. Export the fp32 graph of the weights (:func:`.backends.export_graph`).
2. Calibrate static INT8 (:func:`.backends.quantize_int8`) on ``calib_frames`` evenly spaced
   frames of a prepared split (``train`` by default: never the split that is scored), exactly
   as the network sees them (eval window, normalised image, radar image).
3. Score the torch fp32 network, the backend's fp32 graph and its INT8 graph on the same
   frames of the test split with the SPEC 5 evaluation (:func:`.training.evaluate.evaluate_model`).
4. The gate: ``mae_change`` = (MAE 0-80 m of INT8 - MAE of the fp32 graph) / MAE of the fp32
   graph. Only when ``|mae_change| < threshold`` (2 %) is the INT8 graph written next to the
   weights (:func:`.backends.write_int8_graph`), where ``precision: int8`` finds it. The
   report is returned (and written) either way.

The latency figures in the report are medians of the evaluation calls (one after the other,
not interleaved); for comparable speed ratios use ``rcdepth bench --precision fp32 int8``.
"""

from __future__ import annotations

import math
from pathlib import Path
import statistics
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from . import backends

GATE_RANGE = '0-80'
DEFAULT_THRESHOLD = 0.02


class GraphOutput(NamedTuple):
    """What :func:`.models.outputs.depth_and_sigma` reads: depth and Laplace log-scale."""

    depth: torch.Tensor  # (B, 1, H, W) metres
    log_scale: torch.Tensor  # (B, 1, H, W); NaN where the graph has no sigma


class GraphModule(nn.Module):
    """A graph runner dressed as a module, so the SPEC 5 evaluation scores a backend as is.

    ``forward(image, radar)`` takes the dataset's normalised tensors (sizes multiples of 32)
    and returns :class:`GraphOutput`; every call's inference time is kept in ``times_ms``.
    """

    def __init__(self, runner: backends.GraphRunner) -> None:
        super().__init__()
        self.runner = runner
        self.times_ms: list[float] = []

    def forward(self, image: torch.Tensor, radar: torch.Tensor) -> GraphOutput:
        depth, sigma = self.runner.run(image.cpu().numpy(), radar.cpu().numpy())
        self.times_ms.append(self.runner.last_ms)
        depth_t = torch.from_numpy(depth)
        log_scale = torch.log(torch.from_numpy(sigma) / math.sqrt(2.0))  # inverse of sigma
        return GraphOutput(depth_t, log_scale)


def backend_module(model: nn.Module, config: Any, weights: str | Path, backend: str,
                   precision: str) -> nn.Module:
    """``model`` as ``backend`` x ``precision`` runs it on CPU, for the SPEC 5 evaluation.

    torch fp32 is the module itself; the graph backends run its exported fp32 graph, or the
    verified INT8 graph ``rcdepth quantize`` wrote next to the exported weights ``weights``.
    """
    backends.check_combination(backend, precision, 'cpu')
    if backend == 'torch':
        return model
    if precision == 'int8':
        from .models.io import resolve_weights

        graph, _ = backends.load_int8_graph(resolve_weights(weights))
    else:
        graph = backends.export_graph(model.float().eval(), config)
    return GraphModule(backends.make_runner(backend, graph, 'cpu', torch.get_num_threads()))


def calibration_frames(dataset: Any, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` evenly spaced eval-mode frames of ``dataset`` as ``(image, radar)`` arrays."""
    from .training.evaluate import spaced_indices

    if count < 1:
        raise ValueError(f'need at least one calibration frame, got {count}')
    frames = []
    for index in spaced_indices(len(dataset), count):
        item = dataset[index]
        frames.append((item['image'][None].numpy(), item['radar'][None].numpy()))
    return frames


def quantize_weights(weights: str | Path, data_root: str | Path, backend: str = 'openvino',
                     calib_split: str = 'train', calib_frames: int = 16, split: str = 'test',
                     max_samples: int = 0, threshold: float = DEFAULT_THRESHOLD,
                     write: bool = True, progress: bool = False) -> dict[str, Any]:
    """Quantise, score and gate the weights at ``weights``; returns the report (module doc)."""
    from .models.io import input_spec, load_model, resolve_weights
    from .training.evaluate import evaluate_model, served_dataset, spaced_indices

    backends.check_combination(backend, 'int8', 'cpu')
    if not 0 < threshold < 1:
        raise ValueError(f'threshold must be in (0, 1), got {threshold}')
    base = resolve_weights(weights)
    model, config, description = load_model(base, device='cpu')
    model = model.float().eval()
    # Calibrated and scored at the input size the weights are served at.
    focal = input_spec(description).focal_length_px
    calib_set = served_dataset(data_root, calib_split, focal)
    test_set = served_dataset(data_root, split, focal)
    frames = calibration_frames(calib_set, calib_frames)
    fp32_graph = backends.export_graph(model, config)
    int8_graph = backends.quantize_int8(fp32_graph, frames)
    threads = torch.get_num_threads()
    candidates: dict[str, nn.Module] = {
        'torch_fp32': model,
        f'{backend}_fp32': GraphModule(backends.make_runner(backend, fp32_graph, 'cpu', threads)),
        f'{backend}_int8': GraphModule(backends.make_runner(backend, int8_graph, 'cpu', threads)),
    }
    indices = spaced_indices(len(test_set), max_samples)
    scores: dict[str, dict] = {}
    for name, candidate in candidates.items():
        result = evaluate_model(candidate, test_set, 'cpu', indices=indices, progress=progress)
        times = getattr(candidate, 'times_ms', None)
        scores[name] = {'ranges': result['ranges'],
                        'median_ms': statistics.median(times) if times else None}
    mae = {name: s['ranges'][GATE_RANGE]['mae'] for name, s in scores.items()}
    fp32_mae, int8_mae = mae[f'{backend}_fp32'], mae[f'{backend}_int8']
    change = (int8_mae - fp32_mae) / fp32_mae
    passed = abs(change) < threshold
    report = {
        'weights': base.name, 'variant': getattr(config, 'variant', None), 'backend': backend,
        'calibration': {'split': calib_split, 'frames': len(frames),
                        'data': Path(data_root).name, 'method': 'static QDQ, min-max, '
                        'per-channel int8 weights, uint8 activations'},
        'split': split, 'images': len(indices), 'gate_range': GATE_RANGE,
        'input_scale': test_set.scale,
        'eval_size': list(test_set[indices[0]]['depth_single'].shape[-2:]),
        'mae': mae, 'mae_change': change, 'threshold': threshold, 'passed': passed,
        'median_ms': {name: s['median_ms'] for name, s in scores.items()},
        'metrics': {name: s['ranges'] for name, s in scores.items()},
        'tools': backends.tool_versions(backend), 'written': [],
    }
    if passed and write:
        manifest = {k: report[k] for k in ('backend', 'calibration', 'split', 'images', 'mae',
                                           'mae_change', 'threshold', 'tools')}
        paths = backends.write_int8_graph(base, int8_graph, manifest)
        report['written'] = [p.name for p in paths]
    return report


def format_report(report: dict[str, Any]) -> str:
    """Short text summary of a :func:`quantize_weights` report."""
    lines = [f"{report['weights']} ({report['variant']}), {report['backend']}, "
             f"{report['images']} {report['split']} images, calibrated on "
             f"{report['calibration']['frames']} {report['calibration']['split']} frames"]
    for name, value in report['mae'].items():
        ms = report['median_ms'][name]
        lines.append(f"  {name:<20} MAE {report['gate_range']} m {value:8.4f}"
                     + ('' if ms is None else f"   median {ms:8.1f} ms (eval calls)"))
    verdict = 'passed: INT8 graph written' if report['written'] else (
        'passed (not written)' if report['passed'] else 'failed: INT8 left out')
    lines.append(f"  MAE change INT8 vs fp32 graph: {100 * report['mae_change']:+.2f} % "
                 f"(gate |change| < {100 * report['threshold']:.0f} %) -> {verdict}")
    return '\n'.join(lines)
