"""DepthEstimator: RGB images + radar images in, metric depth and sigma (numpy) out.

One object per loaded network, used by the frame pipeline (node and bag tools), evaluation
and ``rcdepth bench``. Backends: ``torch`` (CPU or CUDA, optional fp16, channels_last and
``torch.compile``), and the exported-graph backends of :mod:`.backends`: ``onnxruntime``
(CPU provider, CUDA provider when installed) and ``openvino`` (CPU), fp32 or INT8. Which
backend x precision x device combinations exist is :data:`.backends.COMBINATIONS`. Graphs
exported from a weights path are cached on disk (:class:`.backends.GraphCache`), so a second
start does not re-export.

Both backends run the network rewritten for inference by default (``fuse=True``,
:func:`.models.fuse.fuse_for_inference`: batch norms folded, stride-1 transposed convs as
convs, FiLM from one conv), the same for every variant, with outputs equal up to fp32
rounding. On CPU the torch backend also runs in channels_last memory format by default
(``channels_last=None`` = on for CPU, off for CUDA): oneDNN then skips a layout reorder
around every convolution. The onnxruntime session uses as many intra-op threads as torch
(``torch.get_num_threads()``), so ``--threads`` of ``rcdepth bench`` binds both backends.

Any input size works: inputs are padded at the bottom and right to a multiple of 32 (image
replicate-padded, radar zero-padded, i.e. no detections there) and outputs are cropped back,
so pixel coordinates and intrinsics are unchanged. Teacher (CaFNet) models have no
uncertainty head: their ``sigma`` is NaN everywhere, the REP 117 'no measurement' value.
"""

from __future__ import annotations

import copy
from pathlib import Path
import time
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from . import backends as graph_backends
from .backends import BACKENDS, PRECISIONS, GraphCache
from .errors import BadInputFile
from .models.io import InputSpec
from .models.onnx_export import config_dict, read_onnx_config
from .models.outputs import depth_and_sigma
from .preprocess import RADAR_CHANNELS, image_to_tensor, radar_to_tensor

PAD_MULTIPLE = 32


class Prediction(NamedTuple):
    """Result of :meth:`DepthEstimator.predict`, float32 numpy at input resolution.

    - depth: (B, H, W) metres.
    - sigma: (B, H, W) metres, :func:`.models.outputs.depth_and_sigma`; NaN for models
      without an uncertainty head (the teacher).
    - model_ms: network time of this call (CUDA-synchronised), without pre/post-processing
      and host transfers; NaN when the estimator cannot tell.
    """

    depth: np.ndarray
    sigma: np.ndarray
    model_ms: float = float('nan')


@runtime_checkable
class Estimator(Protocol):
    """What the frame pipeline needs of a depth network (:class:`DepthEstimator` is one).

    ``predict(images (B,H,W,3) uint8 RGB, radar (B,C,H,W) float32, K) -> Prediction``;
    ``describe()`` returns at least ``variant`` for logs and diagnostics; ``input`` says what
    the network is fed (camera-only, the focal length frames are resized to).
    """

    device: str
    precision: str
    input: InputSpec

    def predict(self, images: np.ndarray, radar: np.ndarray,
                K: np.ndarray | None = None) -> Prediction: ...

    def describe(self) -> dict: ...


def load_estimator(path: str | Path | None, device: str = 'auto', precision: str = 'fp32',
                   **options: Any) -> DepthEstimator:
    """Build a :class:`DepthEstimator` for the weights a user named (None: the demo weights).

    The path is resolved by :func:`.models.io.resolve_weights`; ``options`` go to
    :class:`DepthEstimator`. Missing files raise :class:`~.errors.MissingData`, unreadable
    ones :class:`~.errors.BadInputFile`.
    """
    from .models.io import resolve_weights

    return DepthEstimator(resolve_weights(path), device=device, precision=precision, **options)


def pad_to_multiple(image: torch.Tensor, radar: torch.Tensor,
                    multiple: int = PAD_MULTIPLE) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad ``image (B,3,H,W)`` (replicate) and ``radar (B,4,H,W)`` (zeros) at bottom/right.

    Padding only at the far edges keeps pixel (u, v) and the intrinsics K valid for the crop.
    """
    height, width = image.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h == 0 and pad_w == 0:
        return image, radar
    image = F.pad(image, (0, pad_w, 0, pad_h), mode='replicate')  # (B, 3, H', W')
    radar = F.pad(radar, (0, pad_w, 0, pad_h))  # (B, 4, H', W'), zero = no radar point
    return image, radar


def resolve_device(device: str, backend: str = 'torch') -> str:
    """Return a concrete device string; ``'auto'`` = cuda if usable, else cpu."""
    if backend == 'openvino':
        if device not in ('auto', 'cpu'):
            raise ValueError(f'the openvino backend runs on cpu only, got device {device!r}')
        return 'cpu'
    if backend == 'onnxruntime':
        import onnxruntime as ort

        has_cuda = 'CUDAExecutionProvider' in ort.get_available_providers()
        if device == 'auto':
            return 'cuda' if has_cuda else 'cpu'
        if device.startswith('cuda') and not has_cuda:
            raise ValueError('device cuda requested but onnxruntime has no CUDAExecutionProvider '
                             '(install onnxruntime-gpu)')
        if not (device == 'cpu' or device.startswith('cuda')):
            raise ValueError(f'unknown device {device!r} (expected auto, cpu or cuda)')
        return device
    if device == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    try:
        kind = torch.device(device).type
    except RuntimeError as exc:
        raise ValueError(f'unknown device {device!r}: {exc}') from None
    if kind == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'device {device} requested but CUDA is not available')
    return device


class DepthEstimator:
    """Runs a depth network on batches of RGB + radar images; see the module docstring.

    ``model_or_path`` is an ``nn.Module``, a weights path for :func:`models.load_model`, or
    (graph backends) a ``.onnx`` file; ``onnx_path`` names the ONNX file explicitly (run as
    given). Otherwise the graph backends export the network: from a weights path through the
    graph cache (``cache``: a :class:`.backends.GraphCache` or its folder; None = the default
    folder, False = no cache), from a module in memory. ``precision='int8'`` loads the INT8
    graph that ``rcdepth quantize`` wrote next to the weights, or, for a module, quantises it
    in memory on ``calibration`` frames (``(image (B,3,H,W) normalised, radar (B,4,H,W))``
    pairs; used by ``rcdepth bench``). With ``fuse`` (default) the torch backend
    runs a rewritten copy of a given module (:func:`.models.fuse.fuse_for_inference`) and
    leaves the original alone; with ``fuse=False`` a given module is moved and cast in place
    (pass a copy to keep the original). ``precision='fp16'`` needs a CUDA device;
    ``channels_last`` None means on for CPU, off for CUDA; ``compile`` is ``True``
    (inductor) or a ``torch.compile`` backend name. ``model_time_ms`` is the network time of
    the last call (CUDA-synchronised), without pre/post-processing and host transfers.
    """

    def __init__(self, model_or_path: nn.Module | str | Path | None, device: str = 'auto',
                 precision: str = 'fp32', backend: str = 'torch',
                 channels_last: bool | None = None, compile: bool | str = False,
                 onnx_path: str | Path | None = None, fuse: bool = True,
                 cache: GraphCache | str | Path | bool | None = None,
                 calibration: Any = None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f'unknown backend {backend!r} (expected one of {BACKENDS})')
        if precision not in PRECISIONS:
            raise ValueError(f'unknown precision {precision!r} (expected one of {PRECISIONS})')
        self.backend = backend
        self.precision = precision
        self.compile = compile
        self.fuse = bool(fuse)
        self.model_time_ms = float('nan')
        self.model: nn.Module | None = None
        self.config: Any = None
        self.metadata: dict = {}
        # What the network is fed; from the weights description when loaded from a file.
        self.input = InputSpec()
        self.graph_cache: GraphCache | None = None
        self.device = resolve_device(device, backend)
        graph_backends.check_combination(backend, precision, torch.device(self.device).type)
        if channels_last is None:
            channels_last = backend == 'torch' and torch.device(self.device).type == 'cpu'
        self.channels_last = bool(channels_last)
        if backend == 'torch':
            self._init_torch(model_or_path)
        else:
            self._init_graph(model_or_path, onnx_path, cache, calibration)

    # -- construction --------------------------------------------------------------------

    def _load(self, model_or_path: nn.Module | str | Path) -> None:
        if isinstance(model_or_path, nn.Module):
            self.model = model_or_path
            self.config = getattr(model_or_path, 'config', None)
            return
        if isinstance(model_or_path, (str, Path)):
            from .models import input_spec, load_model

            self.model, self.config, metadata = load_model(model_or_path, device='cpu')
            self.metadata = dict(metadata or {})
            self.input = input_spec(self.metadata)
            if self.input.radar_channels != tuple(RADAR_CHANNELS):
                raise BadInputFile(
                    f'{model_or_path}: the model reads radar channels '
                    f'{list(self.input.radar_channels)}, this package builds '
                    f'{list(RADAR_CHANNELS)}')
            return
        raise TypeError(f'model_or_path must be an nn.Module or a path, '
                        f'got {type(model_or_path).__name__}')

    def _init_torch(self, model_or_path: nn.Module | str | Path | None) -> None:
        if model_or_path is None or _is_onnx_path(model_or_path):
            raise ValueError('the torch backend needs an nn.Module or a weights path, '
                             'not an ONNX file')
        on_cuda = torch.device(self.device).type == 'cuda'
        if self.precision == 'fp16' and not on_cuda:
            raise ValueError('precision fp16 needs a CUDA device; use fp32 on CPU')
        self._load(model_or_path)
        self._dtype = torch.float16 if self.precision == 'fp16' else torch.float32
        self._memory_format = (torch.channels_last if self.channels_last
                               else torch.contiguous_format)
        model = self.model.eval()
        if self.fuse:
            if isinstance(model_or_path, nn.Module):
                model = copy.deepcopy(model)  # never rewrite the caller's (training) module
            from .models.fuse import fuse_for_inference

            fuse_for_inference(model)  # in fp32, before any cast to fp16
        model = model.to(device=self.device, dtype=self._dtype)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self._forward = model
        if self.compile:
            backend = self.compile if isinstance(self.compile, str) else 'inductor'
            # dynamic=None: recompile once per new padded size, then reuse; sizes per stream
            # are fixed in practice.
            self._forward = torch.compile(model, backend=backend)

    def _init_graph(self, model_or_path: nn.Module | str | Path | None,
                    onnx_path: str | Path | None, cache: Any, calibration: Any) -> None:
        if self.channels_last or self.compile:
            raise ValueError('channels_last and compile apply to the torch backend only')
        if onnx_path is None and model_or_path is not None and _is_onnx_path(model_or_path):
            onnx_path, model_or_path = model_or_path, None
        threads = torch.get_num_threads()
        if onnx_path is not None:
            onnx_path = Path(onnx_path)
            if not onnx_path.is_file():
                raise FileNotFoundError(f'ONNX model not found: {onnx_path}')
            self._runner = graph_backends.make_runner(self.backend, onnx_path, self.device,
                                                      threads)
            self.config = read_onnx_config(onnx_path)
            return
        if model_or_path is None:
            raise ValueError(f'the {self.backend} backend needs a model, a weights path or '
                             'onnx_path')
        self._load(model_or_path)
        from_file = not isinstance(model_or_path, nn.Module)
        base = _weights_base(model_or_path) if from_file else None
        if self.precision == 'int8':
            if from_file:
                graph, manifest = graph_backends.load_int8_graph(base)
                self.metadata['int8'] = {k: manifest.get(k) for k in
                                         ('mae_change', 'calibration', 'split')}
            elif calibration:
                graph = graph_backends.quantize_int8(
                    graph_backends.export_graph(self.model, self.config), calibration)
            else:
                raise ValueError('INT8 of a module needs calibration frames')
            source: bytes | Path = graph
        elif from_file and cache is not False and self.fuse:
            self.graph_cache = cache if isinstance(cache, GraphCache) else GraphCache(cache)
            source = graph_backends.cached_graph(
                self.graph_cache, self.backend, graph_backends.weights_digest(base), 'fp32',
                lambda: graph_backends.export_graph(self.model, self.config))
        else:
            source = graph_backends.export_graph(self.model, self.config, fuse=self.fuse)
        self._runner = graph_backends.make_runner(self.backend, source, self.device, threads)

    # -- inference -----------------------------------------------------------------------

    def predict(self, images: np.ndarray, radar: np.ndarray,
                K: np.ndarray | None = None) -> Prediction:
        """Depth and sigma of ``images`` uint8 RGB and ``radar`` float32 radar images.

        ``images`` is (H, W, 3) or (B, H, W, 3), ``radar`` (4, H, W) or (B, 4, H, W).
        ``K`` (3,3) or (B,3,3) is validated but unused by the current networks (kept in the
        API for resolution-dependent models). Returns float32 (B, H, W) arrays. A model trained
        camera-only (``self.input.camera_only``) is fed an all-zero radar image, whatever
        ``radar`` holds, as it was trained.
        """
        # The torch backend normalises on its device: uint8 is a quarter of the bytes to copy.
        device = self.device if self.backend == 'torch' else None
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        # (B, 3, H, W) float32, normalised
        image_t = image_to_tensor(images, device=device, memory_format=layout)
        radar_t = radar_to_tensor(radar, device=device)  # (B, 4, H, W) float32
        if self.input.camera_only:
            radar_t = torch.zeros_like(radar_t)  # (B, 4, H, W), no detections anywhere
        if image_t.shape[0] != radar_t.shape[0] or image_t.shape[-2:] != radar_t.shape[-2:]:
            raise ValueError(f'image batch/size {tuple(image_t.shape)} does not match radar '
                             f'{tuple(radar_t.shape)}')
        if K is not None:
            _check_intrinsics(K, image_t.shape[0])
        height, width = image_t.shape[-2:]
        image_t, radar_t = pad_to_multiple(image_t, radar_t, self.input.size_multiple)
        if self.backend == 'torch':
            depth, sigma = self._run_torch(image_t, radar_t)
        else:
            depth, sigma = self._runner.run(image_t.numpy(), radar_t.numpy())
            self.model_time_ms = self._runner.last_ms
        depth = np.ascontiguousarray(depth[:, 0, :height, :width], dtype=np.float32)
        sigma = np.ascontiguousarray(sigma[:, 0, :height, :width], dtype=np.float32)
        return Prediction(depth, sigma, float(self.model_time_ms))

    __call__ = predict

    def _run_torch(self, image: torch.Tensor,
                   radar: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        cuda = torch.device(self.device).type == 'cuda'
        with torch.inference_mode():
            image = image.to(self.device, self._dtype, non_blocking=True,
                             memory_format=self._memory_format)
            radar = radar.to(self.device, self._dtype, non_blocking=True,
                             memory_format=self._memory_format)
            if cuda:
                torch.cuda.synchronize(self.device)
            start = time.perf_counter()
            depth, sigma = depth_and_sigma(self._forward(image, radar))  # (B, 1, H', W')
            if cuda:
                torch.cuda.synchronize(self.device)
            self.model_time_ms = (time.perf_counter() - start) * 1e3
            return depth.cpu().numpy(), sigma.cpu().numpy()

    # -- diagnostics ---------------------------------------------------------------------

    @property
    def variant(self) -> str:
        """Variant name from the model config, else the network class name."""
        name = self._config_info().get('variant')
        if name:
            return str(name)
        return type(self.model).__name__ if self.model is not None else 'onnx'

    @property
    def has_uncertainty(self) -> bool:
        """False for the teacher architecture (sigma NaN), True for the students."""
        return self._config_info().get('arch') != 'cafnet'

    def _config_info(self) -> dict:
        return {} if self.config is None else config_dict(self.config)

    def describe(self) -> dict:
        """Variant, device, precision, backend and options, for logs and diagnostics."""
        info = {'variant': self.variant, 'device': self.device, 'precision': self.precision,
                'backend': self.backend, 'channels_last': self.channels_last,
                'compile': bool(self.compile), 'fuse': self.fuse,
                'has_uncertainty': self.has_uncertainty, 'camera_only': self.input.camera_only,
                'training_resolution': list(self.input.training_resolution)}
        if self.backend != 'torch':
            info.update(self._runner.describe())
        if self.graph_cache is not None:
            info['graph_cache'] = self.graph_cache.events[-1]
        return info


def _is_onnx_path(value: Any) -> bool:
    return isinstance(value, (str, Path)) and Path(value).suffix == '.onnx'


def _weights_base(path: str | Path) -> Path:
    """Weights path without the ``.safetensors``/``.json`` suffix (the one resolver)."""
    from .models.io import resolve_weights

    return resolve_weights(path)


def _check_intrinsics(K: np.ndarray, batch: int) -> None:
    K = np.asarray(K)
    if K.shape not in ((3, 3), (batch, 3, 3)):
        raise ValueError(f'K must be (3, 3) or ({batch}, 3, 3), got {K.shape}')
    if not np.all(np.isfinite(K)):
        raise ValueError('K must be finite')
