"""ONNX export of the depth networks: inputs ``image``, ``radar``; outputs ``depth``, ``sigma``.

The exported graph is the published pair only, not the distillation features:
``depth (B, 1, H, W)`` metres and ``sigma (B, 1, H, W)`` = ``sqrt(2) * exp(log_scale)`` metres
(NaN for the teacher, which has no uncertainty head). Batch, height and width are dynamic
axes by default; H and W must stay multiples of 32 at run time, as for the networks.
The model config is stored as JSON in the ONNX metadata under :data:`METADATA_KEY`.

The legacy TorchScript exporter (``dynamo=False``) is the default: it exports these networks
with dynamic H/W in well under a second, where the dynamo exporter takes tens of seconds.
By default (``fuse=True``) the graph is exported from a copy rewritten by
:func:`.fuse.fuse_for_inference` (batch norms folded, stride-1 transposed convs as convs, one
FiLM conv): onnxruntime folds Conv + BatchNormalization itself but not ConvTranspose + norm,
and runs its ConvTranspose kernels slower than Conv.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import os
from pathlib import Path
from typing import Any
import warnings

import torch
from torch import Tensor, nn

from .outputs import depth_and_sigma
from .variants import config_to_dict

ONNX_INPUTS = ('image', 'radar')
ONNX_OUTPUTS = ('depth', 'sigma')
DEFAULT_OPSET = 17
METADATA_KEY = 'rcdepth_config'
SIZE_MULTIPLE = 32


class DepthSigma(nn.Module):
    """Wraps a depth network so that ``forward`` returns the published ``(depth, sigma)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor, radar: Tensor) -> tuple[Tensor, Tensor]:
        return depth_and_sigma(self.model(image, radar))


def config_dict(config: Any) -> dict:
    """JSON-ready dict of a model config, with ``arch`` and ``variant`` where known."""
    if isinstance(config, dict):
        return dict(config)
    try:
        return config_to_dict(config)
    except TypeError:  # not a registered config family: a plain dataclass or object
        if dataclasses.is_dataclass(config) and not isinstance(config, type):
            return dataclasses.asdict(config)
        return dict(vars(config))


def config_to_json(config: Any) -> str:
    """Serialise a model config (see :func:`config_dict`) to JSON."""
    return json.dumps(config_dict(config), sort_keys=True, default=str)


def _example_inputs(batch: int, height: int, width: int) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(batch, 3, height, width, generator=gen)  # (B, 3, H, W) normalised
    radar = torch.zeros(batch, 4, height, width)  # (B, 4, H, W), sparse like real radar
    rows = torch.randint(0, height, (32,), generator=gen)
    cols = torch.randint(0, width, (32,), generator=gen)
    radar[:, 0, rows, cols] = 5.0 + 50.0 * torch.rand(32, generator=gen)
    radar[:, 1, rows, cols] = 10.0 * torch.randn(32, generator=gen)
    return image, radar


def _check_size(height: int, width: int, batch: int) -> None:
    if height <= 0 or width <= 0 or height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
        raise ValueError(f'export size must be positive multiples of {SIZE_MULTIPLE}, '
                         f'got {height}x{width}')
    if batch <= 0:
        raise ValueError(f'batch must be positive, got {batch}')


def export_onnx_bytes(model: nn.Module, height: int, width: int, *,
                      opset: int = DEFAULT_OPSET, dynamic: bool = True, batch: int = 1,
                      config: Any = None, dynamo: bool = False, fuse: bool = True) -> bytes:
    """Export ``model`` to an in-memory ONNX model (see :func:`export_onnx`)."""
    _check_size(height, width, batch)
    # A float32 CPU copy: exporting never changes the caller's model (device, dtype, mode).
    wrapper = DepthSigma(copy.deepcopy(model)).float().cpu().eval()
    if fuse:
        from .fuse import fuse_for_inference

        fuse_for_inference(wrapper)
    inputs = _example_inputs(batch, height, width)
    with warnings.catch_warnings():
        # The legacy exporter warns about its own deprecation and about traced shape
        # arithmetic (interpolate to the input size), which the dynamic axes cover.
        warnings.simplefilter('ignore')
        if dynamo:
            data = _export_dynamo(wrapper, inputs, opset, dynamic)
        else:
            data = _export_legacy(wrapper, inputs, opset, dynamic)
    if config is None:
        config = getattr(model, 'config', None)
    return _with_metadata(data, config)


def _export_legacy(wrapper: nn.Module, inputs: tuple[Tensor, Tensor], opset: int,
                   dynamic: bool) -> bytes:
    axes = {0: 'batch', 2: 'height', 3: 'width'} if dynamic else {0: 'batch'}
    buffer = io.BytesIO()
    torch.onnx.export(
        wrapper, inputs, buffer, dynamo=False, opset_version=opset,
        input_names=list(ONNX_INPUTS), output_names=list(ONNX_OUTPUTS),
        dynamic_axes={name: axes for name in ONNX_INPUTS + ONNX_OUTPUTS},
        do_constant_folding=True)
    return buffer.getvalue()


def _export_dynamo(wrapper: nn.Module, inputs: tuple[Tensor, Tensor], opset: int,
                   dynamic: bool) -> bytes:
    from torch.export import Dim

    axes = {0: Dim.DYNAMIC, 2: Dim.DYNAMIC, 3: Dim.DYNAMIC} if dynamic else {0: Dim.DYNAMIC}
    program = torch.onnx.export(
        wrapper, inputs, None, dynamo=True, opset_version=opset,
        input_names=list(ONNX_INPUTS), output_names=list(ONNX_OUTPUTS),
        dynamic_shapes={name: axes for name in ONNX_INPUTS}, verbose=False)
    return program.model_proto.SerializeToString()


def _with_metadata(data: bytes, config: Any) -> bytes:
    import onnx

    proto = onnx.load_from_string(data)
    entries = {'producer': 'rcdepth_ros'}
    if config is not None:
        entries[METADATA_KEY] = config_to_json(config)
    for key, value in entries.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    return proto.SerializeToString()


def export_onnx(model: nn.Module, path: str | Path, height: int, width: int, *,
                opset: int = DEFAULT_OPSET, dynamic: bool = True, batch: int = 1,
                config: Any = None, dynamo: bool = False, fuse: bool = True) -> Path:
    """Export ``model`` to ``path`` as ONNX with outputs ``depth`` and ``sigma``.

    ``height`` x ``width`` (multiples of 32) is the size traced with; with ``dynamic`` the
    graph accepts any batch and any H/W multiple of 32, else any batch at that size only.
    ``config`` (default ``model.config`` if present) is stored in the ONNX metadata.
    ``fuse`` exports the inference rewrite (see the module docstring). Returns the written
    path.
    """
    path = Path(path)
    if path.suffix != '.onnx':
        raise ValueError(f'ONNX output path must end in .onnx, got {path.name}')
    data = export_onnx_bytes(model, height, width, opset=opset, dynamic=dynamic, batch=batch,
                             config=config, dynamo=dynamo, fuse=fuse)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + '.partial')
    partial.write_bytes(data)
    os.replace(partial, path)  # never a half-written file under the final name
    return path


def read_onnx_config(model_bytes_or_path: bytes | str | Path) -> dict | None:
    """Return the model config stored by :func:`export_onnx`, or None if absent."""
    import onnx

    if isinstance(model_bytes_or_path, bytes):
        proto = onnx.load_from_string(model_bytes_or_path)
    else:
        proto = onnx.load(str(model_bytes_or_path), load_external_data=False)
    for prop in proto.metadata_props:
        if prop.key == METADATA_KEY:
            return json.loads(prop.value)
    return None
