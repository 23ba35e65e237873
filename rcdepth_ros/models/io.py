"""Weights on disk: ``<path>.safetensors`` (tensors) + ``<path>.json`` (everything else).

The JSON file describes how to rebuild and feed the network, so a consumer never guesses:

- ``format``/``format_version``; ``variant`` and ``arch``; ``config`` (the architecture
  dict of :func:`config_to_dict`, widths included); ``max_depth``;
- ``input``: image colour order, ImageNet mean/std, value range; radar channel names, units
  and order; size multiple;
- ``training_resolution`` ``[H, W]`` and ``training_data`` (from ``metadata`` when given);
- ``dtype`` of the stored tensors; ``metadata``: free JSON-serialisable dict.

Loading is strict: a missing or corrupt file, an unknown architecture, and any missing,
unexpected or mis-shaped tensor raise one ``ValueError`` naming the problem. No pickle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..preprocess import IMAGENET_MEAN, IMAGENET_STD, RADAR_CHANNELS
from .config import ModelConfig, build_model, config_arch, config_from_dict, config_to_dict

FORMAT = 'rcdepth_ros.weights'
FORMAT_VERSION = 1
DEFAULT_TRAINING_RESOLUTION = (352, 704)


def weight_paths(path: str | Path) -> tuple[Path, Path]:
    """Return ``(<path>.safetensors, <path>.json)``, dropping a given suffix of either."""
    path = Path(path)
    if path.suffix in ('.safetensors', '.json'):
        path = path.with_suffix('')
    return path.with_name(path.name + '.safetensors'), path.with_name(path.name + '.json')


def _input_description() -> dict[str, Any]:
    return {
        'image': {'color_order': 'RGB', 'layout': 'B,3,H,W', 'scale': 'uint8 / 255',
                  'mean': list(IMAGENET_MEAN), 'std': list(IMAGENET_STD)},
        'radar': {'layout': 'B,4,H,W', 'channels': list(RADAR_CHANNELS),
                  'empty_value': 0.0,
                  'note': 'one pixel per point, nearer point wins; velocities raw, radar frame'},
        'size_multiple': 32,
    }


def save_weights(model: nn.Module, config: ModelConfig, path: str | Path,
                 metadata: dict[str, Any] | None = None, half: bool = False) -> tuple[Path, Path]:
    """Write ``model``'s state dict and its description; return both file paths.

    ``half=True`` stores floating-point tensors as float16 (half the size); they load back
    into a float32 model. ``metadata`` may carry ``training_resolution`` and
    ``training_data``, which are lifted to the top level; it must be JSON-serialisable.
    """
    from safetensors.torch import save_file

    metadata = dict(metadata or {})
    # Save the bare network whether it comes wrapped by DDP / DataParallel or torch.compile.
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    model = getattr(model, '_orig_mod', model)
    config_dict = config_to_dict(config)
    tensors = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().to('cpu')
        if half and tensor.is_floating_point():
            tensor = tensor.half()
        tensors[name] = tensor.contiguous()
    resolution = metadata.pop('training_resolution', DEFAULT_TRAINING_RESOLUTION)
    if len(resolution) != 2 or min(int(v) for v in resolution) <= 0:
        raise ValueError(f'training_resolution must be [height, width], got {resolution}')
    description = {
        'format': FORMAT,
        'format_version': FORMAT_VERSION,
        'variant': config_dict['variant'],
        'arch': config_arch(config),
        'config': config_dict,
        'max_depth': float(config.max_depth),
        'input': _input_description(),
        'training_resolution': [int(v) for v in resolution],
        'training_data': str(metadata.pop('training_data', 'unspecified')),
        'dtype': 'float16' if half else 'float32',
        'metadata': metadata,
    }
    try:
        text = json.dumps(description, indent=2, sort_keys=True)
    except TypeError as exc:
        raise ValueError(f'metadata is not JSON-serialisable: {exc}') from None
    weights_path, json_path = weight_paths(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(weights_path), metadata={'format': FORMAT, 'arch': config_arch(config)})
    json_path.write_text(text + '\n', encoding='utf-8')
    return weights_path, json_path


def read_description(path: str | Path) -> dict[str, Any]:
    """Parse and check the ``<path>.json`` description of a weights file."""
    _, json_path = weight_paths(path)
    if not json_path.is_file():
        raise ValueError(f'model description not found: {json_path}')
    try:
        description = json.loads(json_path.read_text(encoding='utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f'corrupt model description {json_path}: {exc}') from None
    if not isinstance(description, dict) or description.get('format') != FORMAT:
        raise ValueError(f'{json_path} is not an rcdepth_ros model description '
                         f'(format {FORMAT!r} expected)')
    if description.get('format_version') != FORMAT_VERSION:
        raise ValueError(f'{json_path}: unsupported format_version '
                         f'{description.get("format_version")!r} (expected {FORMAT_VERSION})')
    if 'config' not in description:
        raise ValueError(f'{json_path}: no model config')
    return description


def _read_tensors(weights_path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not weights_path.is_file():
        raise ValueError(f'weights file not found: {weights_path}')
    try:
        return load_file(str(weights_path), device='cpu')
    except Exception as exc:  # safetensors raises its own error types for bad headers/data
        raise ValueError(f'corrupt weights file {weights_path}: {exc}') from None


def check_state_dict(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor],
                     source: str = 'weights') -> None:
    """Raise one ``ValueError`` listing missing, unexpected and mis-shaped tensors."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    misshaped = sorted(f'{k} {tuple(found[k].shape)} != {tuple(expected[k].shape)}'
                       for k in set(expected) & set(found)
                       if tuple(found[k].shape) != tuple(expected[k].shape))
    problems = []
    for label, names in (('missing', missing), ('unexpected', unexpected),
                         ('mis-shaped', misshaped)):
        if names:
            shown = ', '.join(names[:5]) + (f' (+{len(names) - 5} more)' if len(names) > 5 else '')
            problems.append(f'{len(names)} {label}: {shown}')
    if problems:
        raise ValueError(f'{source} do not match the model: ' + '; '.join(problems))


def load_model(path: str | Path, device: str | torch.device = 'cpu'
               ) -> tuple[nn.Module, ModelConfig, dict[str, Any]]:
    """Rebuild the network from ``<path>.json``, load ``<path>.safetensors`` strictly.

    Returns ``(model in eval mode on device, config, description)``; ``description`` is the
    whole JSON dict (its ``metadata`` key holds the free metadata).
    """
    weights_path, json_path = weight_paths(path)
    description = read_description(path)
    try:
        config = config_from_dict(description['config'])
    except (TypeError, ValueError) as exc:
        raise ValueError(f'{json_path}: bad model config: {exc}') from None
    tensors = _read_tensors(weights_path)
    model = build_model(config)
    expected = model.state_dict()
    check_state_dict(expected, tensors, source=str(weights_path))
    # fp16 files load into the fp32 model; integer buffers keep their dtype.
    state = {k: v.to(expected[k].dtype) for k, v in tensors.items()}
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), config, description
