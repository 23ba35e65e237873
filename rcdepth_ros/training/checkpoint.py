"""Training checkpoints: safetensors (model + optimiser tensors) + JSON (everything else).

A checkpoint ``OUT/<tag>.json`` (``tag`` = ``last`` or ``best``) names its tensor file,
``OUT/<tag>-<step>.safetensors``. The tensor file is written under a temporary name and
renamed first, then the JSON is written the same way; the JSON rename is the commit point,
so a kill at any moment leaves the previous checkpoint or the new one, never a mix or a
half-written file. Stale tensor files are removed after the commit.

Tensors: ``model.<name>`` (the bare network's state dict) and, in ``last``,
``optim.<param index>.<key>`` (AdamW moments and step). JSON: ``format``, ``tag``,
``weights`` (file name), the run config, ``model_config``, ``step``, ``epoch``, RNG states
as lists, ``best`` (metric name, value, step), optimiser hyper-parameters and scalar state,
and free ``extra``. No pickle anywhere.

:func:`load_any_model` opens either a training checkpoint (a run folder, ``OUT/best``,
``OUT/last.json``) or an exported model (``models/NAME`` as written by ``save_weights``).
"""

from __future__ import annotations

import json
from pathlib import Path
import random
import re
from typing import Any
import uuid

import numpy as np
import torch
from torch import nn

from ..models.io import CHECKPOINT_FORMAT as FORMAT
from ..models.io import (
    check_state_dict,
    checkpoint_json_path,  # noqa: F401 - training.export imports it from here
    input_spec,
    load_model,
    resolve_model,
    save_tensors_atomic,
    write_text_atomic,
)
from ..models.variants import ModelConfig, build_model, config_from_dict, config_to_dict

FORMAT_VERSION = 1
TAGS = ('last', 'best')


def bare_model(model: nn.Module) -> nn.Module:
    """Return the network inside DDP / DataParallel / ``torch.compile`` wrappers."""
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return getattr(model, '_orig_mod', model)


# ----------------------------------------------------------------------------- RNG states

def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states as JSON lists."""
    np_state = np.random.get_state()
    state = {
        'python': [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        'numpy': [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        'torch': torch.get_rng_state().tolist(),
        'cuda': ([s.tolist() for s in torch.cuda.get_rng_state_all()]
                 if torch.cuda.is_available() else []),
    }
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved (CUDA states only where devices match)."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state['torch'], dtype=torch.uint8))
    cuda = state.get('cuda') or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in cuda])


# ----------------------------------------------------------------------------- optimiser

def _optimizer_tensors(optimizer: torch.optim.Optimizer
                       ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimiser state dict into flat tensors and a JSON-ready rest."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state['state'].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f'optim.{index}.{key}'] = value.detach().to('cpu').contiguous()
            else:
                scalars[f'{index}.{key}'] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
              for g in state['param_groups']]
    return tensors, {'param_groups': groups, 'scalars': scalars}


def _optimizer_state(tensors: dict[str, torch.Tensor], saved: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`_optimizer_tensors`: a state dict for ``load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, index, key = name.split('.', 2)
        state.setdefault(int(index), {})[key] = value
    for name, value in saved.get('scalars', {}).items():
        index, key = name.split('.', 1)
        state.setdefault(int(index), {})[key] = value
    groups = [{k: (tuple(v) if k == 'betas' else v) for k, v in g.items()}
              for g in saved['param_groups']]
    return {'state': state, 'param_groups': groups}


# ----------------------------------------------------------------------------- writing

def save_checkpoint(out_dir: str | Path, tag: str, model: nn.Module, model_config: ModelConfig,
                    state: dict[str, Any], optimizer: torch.optim.Optimizer | None = None
                    ) -> Path:
    """Write checkpoint ``tag`` of ``model`` (and ``optimizer``) into ``out_dir``.

    ``state`` holds the JSON part: at least ``config`` (run config dict) and ``step``.
    Returns the JSON path. Safe against a kill at any moment (see the module docstring).
    """
    if tag not in TAGS:
        raise ValueError(f'checkpoint tag must be one of {TAGS}, got {tag!r}')
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    step = int(state['step'])
    tensors = {f'model.{k}': v.detach().to('cpu').contiguous()
               for k, v in bare_model(model).state_dict().items()}
    description = {'format': FORMAT, 'format_version': FORMAT_VERSION, 'tag': tag,
                   'model_config': config_to_dict(model_config), **state}
    if optimizer is not None:
        optim_tensors, optim_json = _optimizer_tensors(optimizer)
        tensors.update(optim_tensors)
        description['optimizer'] = optim_json
    # A unique name: a re-save of the same step never overwrites the committed file.
    weights = out_dir / f'{tag}-{step:08d}-{uuid.uuid4().hex[:6]}.safetensors'
    description['weights'] = weights.name
    text = json.dumps(description, indent=1, sort_keys=True)  # fails before any write
    save_tensors_atomic(tensors, weights, {'format': FORMAT, 'tag': tag, 'step': str(step)})
    json_path = out_dir / f'{tag}.json'
    write_text_atomic(json_path, text + '\n')
    clean_checkpoint_dir(out_dir)
    return json_path


def clean_checkpoint_dir(out_dir: str | Path) -> None:
    """Remove temporary files and tensor files no committed checkpoint refers to."""
    out_dir = Path(out_dir)
    referenced = set()
    for tag in TAGS:
        path = out_dir / f'{tag}.json'
        if path.is_file():
            try:
                referenced.add(json.loads(path.read_text(encoding='utf-8'))['weights'])
            except (ValueError, KeyError):
                return  # leave everything for a human to look at
    pattern = re.compile(r'^(\.(last|best|history|config)[-.].*\.tmp|'
                         r'(last|best)-\d+-\w+\.safetensors)$')
    for entry in out_dir.iterdir():
        if pattern.match(entry.name) and entry.name not in referenced:
            entry.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- reading

def read_checkpoint_description(json_path: str | Path) -> dict[str, Any]:
    """Return the JSON part of a checkpoint (no tensors); one ``ValueError`` if broken."""
    json_path = Path(json_path)
    if not json_path.is_file():
        raise FileNotFoundError(f'checkpoint not found: {json_path}')
    try:
        description = json.loads(json_path.read_text(encoding='utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f'corrupt checkpoint {json_path}: {exc}') from None
    if not isinstance(description, dict) or description.get('format') != FORMAT:
        raise ValueError(f'{json_path} is not an rcdepth_ros training checkpoint')
    if description.get('format_version') != FORMAT_VERSION:
        raise ValueError(f'{json_path}: unsupported checkpoint format_version '
                         f'{description.get("format_version")!r}')
    return description


def read_checkpoint(json_path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Return ``(description, tensors)`` of a checkpoint; one ``ValueError`` if broken."""
    from safetensors.torch import load_file

    json_path = Path(json_path)
    description = read_checkpoint_description(json_path)
    weights = json_path.parent / str(description.get('weights', ''))
    if not weights.is_file():
        raise ValueError(f'{json_path}: its tensor file {weights.name} is missing')
    try:
        tensors = load_file(str(weights), device='cpu')
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f'corrupt checkpoint tensors {weights}: {exc}') from None
    return description, tensors


def model_state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return the ``model.*`` tensors of a checkpoint, prefix removed."""
    return {k[len('model.'):]: v for k, v in tensors.items() if k.startswith('model.')}


def optimizer_state(description: dict[str, Any], tensors: dict[str, torch.Tensor]
                    ) -> dict[str, Any] | None:
    """Return the optimiser state dict of a checkpoint, or None (``best`` has none)."""
    if 'optimizer' not in description:
        return None
    optim = {k: v for k, v in tensors.items() if k.startswith('optim.')}
    return _optimizer_state(optim, description['optimizer'])


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a state dict into ``model`` strictly, with one clear error on any mismatch."""
    target = bare_model(model)
    expected = target.state_dict()
    check_state_dict(expected, state, source=source)
    target.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)


def load_any_model(path: str | Path, device: str | torch.device = 'cpu'
                   ) -> tuple[nn.Module, ModelConfig, dict[str, Any]]:
    """Load a training checkpoint or an exported model: ``(model.eval(), config, info)``.

    ``path`` is resolved by :func:`rcdepth_ros.models.io.resolve_model`. ``info`` has
    ``source`` (``checkpoint`` or ``export``), ``path`` and, for checkpoints, the checkpoint
    description (run ``config``, ``step``, ``best``); for exports, the model description of
    :func:`rcdepth_ros.models.load_model`. ``info['camera_only']`` says whether the model was
    trained with its radar input zeroed.
    """
    source = resolve_model(path, checkpoints=True)
    if source.kind == 'checkpoint':
        json_path = source.path
        description, tensors = read_checkpoint(json_path)
        try:
            config = config_from_dict(description['model_config'])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f'{json_path}: bad model config: {exc}') from None
        model = build_model(config)
        load_state_strict(model, model_state(tensors), str(json_path))
        run = description.get('config', {})
        info = {'source': 'checkpoint', 'path': str(json_path), **description,
                'camera_only': bool(run.get('data', {}).get('camera_only', False)),
                'focal_length_px': description.get('focal_length_px')}
        return model.to(device).eval(), config, info
    model, config, description = load_model(source.path, device=device)
    spec = input_spec(description)
    info = {'source': 'export', 'path': str(source.path), **description,
            'camera_only': spec.camera_only, 'focal_length_px': spec.focal_length_px}
    return model, config, info
