"""Weights on disk: ``<path>.safetensors`` (tensors) + ``<path>.json`` (everything else).

The JSON file describes how to rebuild and feed the network, so a consumer never guesses:

- ``format``/``format_version``; ``variant`` and ``arch``; ``config`` (the architecture
  dict of :func:`config_to_dict`, widths included); ``max_depth``;
- ``input``: image colour order, ImageNet mean/std, value range; radar channel names, units
  and order; size multiple;
- ``training_resolution`` ``[H, W]`` and ``training_data`` (from ``metadata`` when given);
- ``dtype`` of the stored tensors; ``metadata``: free JSON-serialisable dict.

Loading is strict: a missing or corrupt file, an unknown architecture, and any missing,
unexpected or mis-shaped tensor raise one error naming the problem
(:class:`~rcdepth_ros.errors.MissingData` or :class:`~rcdepth_ros.errors.BadInputFile`). No
pickle.

:func:`resolve_model` is the one resolver of a user-given model path, for the node, the bag
tools, the demo, evaluation, export and the benchmarks. It accepts the base path
``models/NAME`` (a dot in NAME is part of the name: ``xd.v2`` is ``xd.v2.safetensors``), either
file, a folder holding exactly one exported model and, where the caller allows it, a training
checkpoint (a run folder, ``OUT/best``, ``OUT/last.json``, ``OUT/best-<step>.safetensors``).
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import os
from pathlib import Path
import re
from typing import Any
import uuid

import torch
from torch import nn

from .. import resources
from ..errors import BadArgument, BadInputFile, MissingData
from ..preprocess import IMAGENET_MEAN, IMAGENET_STD, RADAR_CHANNELS
from .variants import ModelConfig, build_model, config_arch, config_from_dict, config_to_dict

FORMAT = 'rcdepth_ros.weights'
FORMAT_VERSION = 1
CHECKPOINT_FORMAT = 'rcdepth_ros.checkpoint'
CHECKPOINT_TAGS = ('best', 'last')  # a run folder opens its best checkpoint first
DEFAULT_TRAINING_RESOLUTION = (352, 704)
SIZE_MULTIPLE = 32
DEMO_MODEL_NAME = 'xdrcdepth_demo'
_SUFFIXES = ('.safetensors', '.json')


# ----------------------------------------------------------------------------- paths

def default_model_path() -> Path:
    """Return the base path of the shipped demo weights (:mod:`rcdepth_ros.resources`).

    Raises FileNotFoundError naming every place looked at.
    """
    return resources.model_path(DEMO_MODEL_NAME)


def _strip_suffix(path: Path) -> Path:
    """Drop a ``.safetensors``/``.json`` suffix only; other dots belong to the name."""
    for suffix in _SUFFIXES:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.with_name(path.name[:-len(suffix)])
    return path


def weight_paths(path: str | Path) -> tuple[Path, Path]:
    """Return ``(<path>.safetensors, <path>.json)``, dropping a given suffix of either."""
    base = _strip_suffix(Path(path))
    return base.with_name(base.name + '.safetensors'), base.with_name(base.name + '.json')


def _json_format(path: Path) -> str | None:
    """Return the ``format`` field of a JSON file; None if it is no readable JSON object."""
    try:
        data = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data.get('format') if isinstance(data, dict) else None


def checkpoint_json_path(path: str | Path) -> Path | None:
    """Return the training-checkpoint JSON ``path`` names, or None if it names none.

    ``path`` may be a run folder (``best`` preferred over ``last``), ``OUT/best``,
    ``OUT/best.json`` or ``OUT/best-....safetensors``.
    """
    path = Path(path)
    if path.is_dir():
        candidates = [path / f'{tag}.json' for tag in CHECKPOINT_TAGS]
    else:
        candidates = [weight_paths(path)[1]]
        match = re.match(r'^(last|best)-.*\.safetensors$', path.name)
        if match:
            candidates.append(path.with_name(f'{match.group(1)}.json'))
    for candidate in candidates:
        if candidate.is_file() and _json_format(candidate) == CHECKPOINT_FORMAT:
            return candidate
    return None


@dataclass(frozen=True)
class ModelSource:
    """What a model path names.

    ``kind`` is ``weights`` (``path`` = base path without suffix) or ``checkpoint``
    (``path`` = the checkpoint JSON).
    """

    kind: str
    path: Path


def resolve_model(path: str | os.PathLike[str] | None, checkpoints: bool = False) -> ModelSource:
    """Resolve a user-given model path; see the module docstring for what it accepts.

    Empty or None means the shipped demo weights. ``checkpoints`` allows training
    checkpoints (evaluation, export); elsewhere one is refused with the command that turns it
    into weights. Raises :class:`MissingData` naming the file that is not there.
    """
    if path is None or str(path) == '':
        try:
            base = default_model_path()
        except FileNotFoundError as exc:
            raise MissingData(f'model weights not found: {exc}') from None
    else:
        base = Path(os.path.expanduser(str(path)))
        checkpoint = checkpoint_json_path(base)
        if checkpoint is not None:
            if checkpoints:
                return ModelSource('checkpoint', checkpoint)
            raise BadArgument(f'{path} is a training checkpoint; export it first with '
                              f'rcdepth export --checkpoint {path} --out models/NAME')
        if base.is_dir():
            found = sorted(p for p in base.glob('*.json') if _json_format(p) == FORMAT)
            if len(found) != 1:
                what = 'no training checkpoint (best.json / last.json) and ' if checkpoints \
                    else ''
                raise MissingData(f'{base}: {what}{len(found)} exported models in it '
                                  f'(need exactly one)')
            base = found[0]
        base = _strip_suffix(base)
    weights, description = weight_paths(base)
    if checkpoints and not description.is_file() and not weights.is_file():
        raise MissingData(f'no checkpoint or exported model at {path}')
    for file in (weights, description):
        if not file.is_file():
            raise MissingData(f'model weights not found: {file}')
    return ModelSource('weights', base)


def resolve_weights(path: str | os.PathLike[str] | None) -> Path:
    """Return the base path of exported weights (:func:`resolve_model`, no checkpoints)."""
    return resolve_model(path).path


# ----------------------------------------------------------------------------- description

def _input_description(camera_only: bool, focal_length_px: float | None = None,
                       ) -> dict[str, Any]:
    image = {'color_order': 'RGB', 'layout': 'B,3,H,W', 'scale': 'uint8 / 255',
             'mean': list(IMAGENET_MEAN), 'std': list(IMAGENET_STD)}
    if focal_length_px is not None:
        # Frames are resized so that their focal length is this (serving_scale).
        image['focal_length_px'] = float(focal_length_px)
    return {
        'image': image,
        'radar': {'layout': f'B,{len(RADAR_CHANNELS)},H,W', 'channels': list(RADAR_CHANNELS),
                  'empty_value': 0.0, 'camera_only': bool(camera_only),
                  'note': 'one pixel per point, nearer point wins; velocities raw, radar frame'},
        'size_multiple': SIZE_MULTIPLE,
    }


@dataclass(frozen=True)
class InputSpec:
    """What a network is fed, from its weights description (old files: the defaults).

    - camera_only: trained with an all-zero radar image; it must be served one too.
    - radar_channels: names of the radar image channels, in order.
    - training_resolution: ``(H, W)`` of the training crops.
    - size_multiple: inputs are padded to a multiple of this.
    - focal_length_px: the focal length (pixels) of the training images; frames with a longer
      one are resized down to it before the network (:func:`serving_scale`). None (files
      before it existed): frames are served at their own size
      (:func:`rcdepth_ros.rescale.serving_scale`).
    """

    camera_only: bool = False
    radar_channels: tuple[str, ...] = tuple(RADAR_CHANNELS)
    training_resolution: tuple[int, int] = DEFAULT_TRAINING_RESOLUTION
    size_multiple: int = SIZE_MULTIPLE
    focal_length_px: float | None = None


def input_spec(description: dict[str, Any]) -> InputSpec:
    """Return the :class:`InputSpec` of a weights description.

    Files written before ``input.radar.camera_only`` existed kept the flag in ``metadata``.
    """
    radar = description.get('input', {}).get('radar', {})
    camera_only = radar.get('camera_only', description.get('metadata', {}).get('camera_only'))
    resolution = description.get('training_resolution', DEFAULT_TRAINING_RESOLUTION)
    return InputSpec(
        camera_only=bool(camera_only),
        radar_channels=tuple(radar.get('channels', RADAR_CHANNELS)),
        training_resolution=(int(resolution[0]), int(resolution[1])),
        size_multiple=int(description.get('input', {}).get('size_multiple', SIZE_MULTIPLE)),
        focal_length_px=description.get('input', {}).get('image', {}).get('focal_length_px'))


def save_weights(model: nn.Module, config: ModelConfig, path: str | Path,
                 metadata: dict[str, Any] | None = None, half: bool = False) -> tuple[Path, Path]:
    """Write ``model``'s state dict and its description; return both file paths.

    ``half=True`` stores floating-point tensors as float16 (half the size); they load back
    into a float32 model. ``metadata`` may carry ``training_resolution`` and
    ``training_data``, which are lifted to the top level, and ``camera_only``, which goes to
    ``input.radar.camera_only``; it must be JSON-serialisable.
    """
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
    camera_only = bool(metadata.pop('camera_only', False))
    focal_length_px = metadata.pop('focal_length_px', None)
    if len(resolution) != 2 or min(int(v) for v in resolution) <= 0:
        raise ValueError(f'training_resolution must be [height, width], got {resolution}')
    description = {
        'format': FORMAT,
        'format_version': FORMAT_VERSION,
        'variant': config_dict['variant'],
        'arch': config_arch(config),
        'config': config_dict,
        'max_depth': float(config.max_depth),
        'input': _input_description(camera_only, focal_length_px),
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
    save_tensors_atomic(tensors, weights_path, {'format': FORMAT, 'arch': config_arch(config)})
    write_text_atomic(json_path, text + '\n')
    return weights_path, json_path


def _temporary_beside(path: Path) -> Path:
    return path.with_name(f'.{path.name}.{uuid.uuid4().hex[:8]}.tmp')


def _commit(tmp: Path, path: Path) -> None:
    """Sync ``tmp`` to disk and rename it onto ``path`` with the mode a plain ``open`` gives.

    safetensors writes 0600; a kill leaves either the old file or the new one, never half.
    """
    with open(tmp, 'rb') as f:
        os.fsync(f.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    tmp = _temporary_beside(path)
    try:
        tmp.write_text(text, encoding='utf-8')
        _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_tensors_atomic(tensors: dict[str, torch.Tensor], path: str | Path,
                        metadata: dict[str, str]) -> None:
    """Write a safetensors file through a temporary file and ``os.replace``."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = _temporary_beside(path)
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_description(path: str | Path) -> dict[str, Any]:
    """Parse and check the ``<path>.json`` description of a weights file."""
    _, json_path = weight_paths(path)
    if not json_path.is_file():
        raise MissingData(f'model description not found: {json_path}')
    try:
        description = json.loads(json_path.read_text(encoding='utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputFile(f'corrupt model description {json_path}: {exc}') from None
    if not isinstance(description, dict) or description.get('format') != FORMAT:
        raise BadInputFile(f'{json_path} is not an rcdepth_ros model description '
                           f'(format {FORMAT!r} expected)')
    if description.get('format_version') != FORMAT_VERSION:
        raise BadInputFile(f'{json_path}: unsupported format_version '
                           f'{description.get("format_version")!r} (expected {FORMAT_VERSION})')
    if 'config' not in description:
        raise BadInputFile(f'{json_path}: no model config')
    return description


def _read_tensors(weights_path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not weights_path.is_file():
        raise MissingData(f'weights file not found: {weights_path}')
    try:
        return load_file(str(weights_path), device='cpu')
    except Exception as exc:  # safetensors raises its own error types for bad headers/data
        raise BadInputFile(f'corrupt weights file {weights_path}: {exc}') from None


def check_state_dict(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor],
                     source: str = 'weights') -> None:
    """Raise one :class:`BadInputFile` listing missing, unexpected and mis-shaped tensors."""
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
        raise BadInputFile(f'{source} do not match the model: ' + '; '.join(problems))


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
        raise BadInputFile(f'{json_path}: bad model config: {exc}') from None
    tensors = _read_tensors(weights_path)
    model = build_model(config)
    expected = model.state_dict()
    check_state_dict(expected, tensors, source=str(weights_path))
    # fp16 files load into the fp32 model; integer buffers keep their dtype.
    state = {k: v.to(expected[k].dtype) for k, v in tensors.items()}
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), config, description
