"""Evaluation (SPEC 5) of a network on a prepared split, used by validation and ``rcdepth eval``.

Per image, then averaged over images: ground truth is the single-scan LiDAR depth of the
eval window (full image minus its top rows, :func:`rcdepth_ros.data.dataset.eval_window`);
ranges 0-50, 0-70, 0-80 m; valid GT in ``(1e-3, max]``; predictions clamped to
``[1e-3, max]``. Every number comes from :mod:`rcdepth_ros.training.metrics`. A model without
an uncertainty head (the teacher) gets ``None`` for the uncertainty metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import BadArgument
from ..models.io import write_text_atomic
from ..models.onnx_export import depth_and_sigma
from .metrics import (
    AUSE_STEPS,
    DEPTH_METRICS,
    EVAL_RANGES,
    UNCERTAINTY_METRICS,
    MetricAccumulator,
    reference_gap,
)

TABLE_METRICS = ('mae', 'rmse', 'abs_rel', 'sq_rel', 'rmse_log', 'log10', 'silog', 'd1', 'd2',
                 'd3', 'ause_rmse', 'ause_abs_rel', 'calib_1sigma', 'calib_2sigma')


def spaced_indices(total: int, count: int) -> list[int]:
    """``count`` evenly spaced indices of ``range(total)`` (all when count is 0 or >= total)."""
    if count <= 0 or count >= total:
        return list(range(total))
    return sorted({int(i) for i in np.linspace(0, total - 1, count).round()})


@torch.no_grad()
def evaluate_model(model: nn.Module, dataset: Any, device: str | torch.device = 'cpu',
                   ranges: Sequence[float] = EVAL_RANGES, camera_only: bool = False,
                   indices: Sequence[int] | None = None, progress: bool = False,
                   sparsification_steps: int = AUSE_STEPS, reference: nn.Module | None = None,
                   reference_camera_only: bool = False) -> dict[str, Any]:
    """Evaluate ``model`` on eval-mode ``dataset`` items; returns the result dict.

    Result: ``{'images': n, 'ranges': {'0-80': {metric: value | None, 'images': n,
    'pixels': total}}, 'has_uncertainty': bool}``. ``camera_only`` zeroes the radar input.
    Images are run one at a time (full eval window, no padding needed: multiples of 32).
    With a ``reference`` model (a teacher; ``reference_camera_only`` zeroes its radar), the
    result also has ``'reference': {'0-80': {'mae': ..., 'images': n}, ..., 'every_pixel':
    {...}}``: the mean ``|depth - reference depth|`` per image (:func:`.metrics.reference_gap`).
    """
    from tqdm import tqdm

    was_training = model.training
    model.eval()
    indices = list(range(len(dataset))) if indices is None else list(indices)
    if not indices:
        raise ValueError('nothing to evaluate: the split has no samples')
    accumulator = MetricAccumulator(ranges, sparsification_steps)
    gaps = MetricAccumulator(ranges)
    has_sigma = None
    if reference is not None:
        reference_was_training = reference.training
        reference.eval()
    try:
        for i in tqdm(indices, desc='eval', disable=not progress, leave=False):
            item = dataset[i]
            image = item['image'][None].to(device)  # (1, 3, H, W)
            radar = item['radar'][None].to(device)  # (1, 4, H, W)
            no_radar = torch.zeros_like(radar)
            depth, sigma = depth_and_sigma(model(image, no_radar if camera_only else radar))
            # depth, sigma: (1, 1, H, W) each
            if has_sigma is None:
                has_sigma = bool(torch.isfinite(sigma).any())
            accumulator.update(depth.cpu(), item['depth_single'][None],
                               sigma.cpu() if has_sigma else None)
            if reference is not None:
                ref_depth = depth_and_sigma(  # (1, 1, H, W)
                    reference(image, no_radar if reference_camera_only else radar))[0]
                gaps.add([reference_gap(depth[0, 0].cpu(), ref_depth[0, 0].cpu(),
                                        item['depth_single'][0], ranges)])
    finally:
        model.train(was_training)
        if reference is not None:
            reference.train(reference_was_training)
    result = {'images': len(indices), 'has_uncertainty': bool(has_sigma),
              'ranges': complete_metrics(accumulator.compute(), ranges)}
    if reference is not None:
        result['reference'] = {name: {'mae': row['mae'], 'images': row['images']}
                               for name, row in gaps.compute().items()}
    return result


def complete_metrics(computed: dict[str, dict[str, float]], ranges: Sequence[float]
                     ) -> dict[str, dict[str, float | None]]:
    """Every metric name in every range; ``None`` where not defined (no sigma, no GT)."""
    from .metrics import range_name

    result = {}
    for max_depth in ranges:
        name = range_name(max_depth)
        metrics = computed.get(name, {})
        row = {key: metrics.get(key) for key in DEPTH_METRICS + UNCERTAINTY_METRICS}
        row['images'] = int(metrics.get('images', 0))
        row['pixels'] = int(metrics.get('pixels', 0))
        result[name] = row
    return result


def format_table(ranges: dict[str, dict[str, float | None]],
                 metrics: Sequence[str] = TABLE_METRICS) -> str:
    """Format a plain-text table: one row per metric, one column per range."""
    names = list(ranges)
    lines = ['metric'.ljust(14) + ''.join(n.rjust(12) for n in names)]
    for key in list(metrics) + ['images']:
        cells = []
        for name in names:
            value = ranges[name].get(key)
            if value is None:
                cells.append('-'.rjust(12))
            elif key == 'images':
                cells.append(str(int(value)).rjust(12))
            else:
                cells.append(f'{value:12.4f}')
        lines.append(key.ljust(14) + ''.join(cells))
    return '\n'.join(lines)


def served_dataset(data_root: str | Path, split: str, focal_length_px: float | None,
                   dataroot: str | Path | None = None):
    """Return the eval-mode split as a model trained at ``focal_length_px`` is served.

    Frames are resized to the focal length the model was trained at
    (:func:`..rescale.serving_scale`), as the node and ``infer-bag`` do; ``None`` (weights from
    before the focal length was recorded) serves them at native size.
    """
    from ..data.dataset import PreparedDataset
    from ..rescale import serving_scale

    dataset = PreparedDataset(data_root, split, 'eval', augment=False, dataroot=dataroot)
    dataset.scale = serving_scale(focal_length_px, dataset.focal_length_px)
    return dataset


def evaluate_checkpoint(checkpoint: str | Path, data_root: str | Path, split: str,
                        max_depths: Sequence[float] = EVAL_RANGES,
                        json_path: str | Path | None = None, dataroot: str | Path | None = None,
                        max_samples: int = 0, camera_only: bool | None = None,
                        device: str = 'auto', progress: bool = False, backend: str = 'torch',
                        precision: str = 'fp32', reference: str | Path | None = None
                        ) -> dict[str, Any]:
    """Evaluate a training checkpoint or exported model on a prepared split (SPEC 5).

    ``camera_only`` None follows how the model was trained. Returns the report written to
    ``json_path`` (atomically): model (variant, arch, parameters, MACs at 352x704 and
    896x1600), data, protocol and ``ranges`` with every metric per range (uncertainty
    metrics ``None`` for models without sigma). ``backend`` / ``precision`` other than torch
    fp32 score the network as that runtime runs it on CPU (:func:`..quantize.backend_module`).
    ``reference``: another model (the teacher) run in torch on the same frames, with its own
    radar input; the report's ``reference`` holds how far the depth is from its depth.
    """
    from ..inference import resolve_device
    from ..models.macs import config_macs
    from ..models.variants import config_to_dict
    from .checkpoint import load_any_model

    ranges = sorted({float(d) for d in max_depths})
    if not ranges or min(ranges) <= 1e-3:
        raise BadArgument(f'--max-depths must be positive depths in metres, got {max_depths}')
    if max_samples < 0:
        raise BadArgument(f'max_samples must be >= 0, got {max_samples}')
    dev = resolve_device(device) if backend == 'torch' and precision == 'fp32' else 'cpu'
    model, config, info = load_any_model(checkpoint, device=dev)
    if camera_only is None:
        camera_only = bool(info.get('camera_only', False))
    dataset = served_dataset(data_root, split, info.get('focal_length_px'), dataroot)
    indices = spaced_indices(len(dataset), max_samples)
    from ..quantize import backend_module

    scored = backend_module(model, config, checkpoint, backend, precision)
    ref_model, ref_info = None, {}
    if reference is not None:
        ref_model, _, ref_info = load_any_model(reference, device=dev)
        if ref_info.get('focal_length_px') != info.get('focal_length_px'):
            raise BadArgument(
                f'the reference was trained at a focal length of '
                f'{ref_info.get("focal_length_px")} px and the evaluated model at '
                f'{info.get("focal_length_px")} px: they would not see the same frames')
    result = evaluate_model(scored, dataset, dev, ranges, camera_only, indices, progress,
                            reference=ref_model,
                            reference_camera_only=bool(ref_info.get('camera_only', False)))
    if reference is not None:
        result['reference'] = {'checkpoint': str(reference), **result['reference']}
    height, width = dataset[indices[0]]['depth_single'].shape[-2:]
    report = {
        'checkpoint': str(checkpoint),
        'source': info['source'],
        'step': info.get('step'),
        'model': {
            'variant': config_to_dict(config)['variant'],
            'arch': config_to_dict(config)['arch'],
            'parameters': sum(p.numel() for p in model.parameters()),
            'macs': {f'{h}x{w}': config_macs(config, h, w)
                     for h, w in ((352, 704), (896, 1600), (int(height), int(width)))},
        },
        'data': {'root': Path(data_root).name, 'split': split, 'samples': len(dataset),
                 'eval_size': [int(height), int(width)], 'input_scale': dataset.scale},
        'protocol': 'SPEC 5: per-image metrics averaged over images; GT single-scan LiDAR; '
                    'valid GT in (1e-3, max]; predictions clamped to [1e-3, max]',
        'camera_only': camera_only, 'backend': backend, 'precision': precision,
        **result,
    }
    if json_path is not None:
        write_json_atomic(json_path, report)
    return report


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write JSON to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(data, indent=2) + '\n')
    return path
