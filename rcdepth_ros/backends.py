"""Inference backends of exported graphs (ONNX Runtime, OpenVINO), INT8, and the graph cache.

:class:`~rcdepth_ros.inference.DepthEstimator` runs the ``torch`` backend itself and hands
the graph backends to a runner of this module. What exists (:data:`COMBINATIONS`):

=============  =========  =========================================================
backend        precision  devices
=============  =========  =========================================================
torch          fp32       cpu, cuda
torch          fp16       cuda
onnxruntime    fp32       cpu, cuda (CUDA provider of ``onnxruntime-gpu``)
onnxruntime    int8       cpu
openvino       fp32       cpu
openvino       int8       cpu
=============  =========  =========================================================

**Graph cache.** Exporting a network to ONNX takes seconds; a node start should not pay it
twice. :class:`GraphCache` keeps one folder per key under a cache root; the key is a hash of
the weights (:func:`weights_digest`), the backend, the precision, the input-size policy
(:data:`SIZE_POLICY`) and the tool versions (:func:`tool_versions`). Each entry holds a
``manifest.json`` with the SHA-256 of every file; an entry whose manifest is missing, does not
parse, names another key or whose files do not hash to the manifest is deleted and rebuilt,
never loaded. Entries are built in a temporary folder and renamed into place, so a crash
leaves no half-written entry under its key.

**INT8.** Static post-training quantisation (QDQ, per-channel int8 weights, uint8
activations; ``onnxruntime.quantization``) of the fp32 graph, calibrated on frames given by
the caller. The result is an ONNX file that both ONNX Runtime and OpenVINO run with int8
kernels. Deployed INT8 graphs are written by ``rcdepth quantize`` next to the weights
(``<weights>.int8.onnx`` + ``<weights>.int8.json``) only when their accuracy passed the gate
of that command; :func:`load_int8_graph` refuses one whose manifest does not match the
weights or whose bytes do not match the manifest (it cannot be rebuilt without the
calibration data, so it is never trusted).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
import hashlib
import json
import os
from pathlib import Path
import shutil
import tempfile
import time
from typing import Any

import numpy as np

from .errors import BadInputFile, MissingData

BACKENDS = ('torch', 'onnxruntime', 'openvino')
PRECISIONS = ('fp32', 'fp16', 'int8')
GRAPH_BACKENDS = ('onnxruntime', 'openvino')
# (backend, precision) -> device types where the combination exists.
COMBINATIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ('torch', 'fp32'): ('cpu', 'cuda'),
    ('torch', 'fp16'): ('cuda',),
    ('onnxruntime', 'fp32'): ('cpu', 'cuda'),
    ('onnxruntime', 'int8'): ('cpu',),
    ('openvino', 'fp32'): ('cpu',),
    ('openvino', 'int8'): ('cpu',),
}
# How input sizes map to graphs: one graph with dynamic batch, height and width (multiples of
# 32), traced at a small H != W size; OpenVINO compiles it once per concrete input shape.
SIZE_POLICY = 'dynamic-bhw-mult32-trace128x192-opset17-fused'
# Bump when the content of a cache entry changes meaning (file names, export options).
CACHE_FORMAT = 1
INT8_SUFFIX = '.int8'
MANIFEST = 'manifest.json'


def check_combination(backend: str, precision: str, device_type: str) -> None:
    """Raise ``ValueError`` naming what exists if ``backend`` x ``precision`` x device does not."""
    if backend not in BACKENDS:
        raise ValueError(f'unknown backend {backend!r} (expected one of {", ".join(BACKENDS)})')
    if precision not in PRECISIONS:
        raise ValueError(f'unknown precision {precision!r} '
                         f'(expected one of {", ".join(PRECISIONS)})')
    devices = COMBINATIONS.get((backend, precision), ())
    if device_type not in devices:
        have = ', '.join(f'{p} on {"/".join(d)}' for (b, p), d in COMBINATIONS.items()
                         if b == backend)
        raise ValueError(f'backend {backend} has no {precision} on {device_type} '
                         f'(it has: {have})')


def tool_versions(backend: str) -> dict[str, str]:
    """Versions of the tools that shape a cached graph of ``backend`` (part of the cache key)."""
    import onnx
    import torch

    versions = {'torch': torch.__version__, 'onnx': onnx.__version__,
                'cache_format': str(CACHE_FORMAT)}
    if backend == 'openvino':
        import openvino

        versions['openvino'] = openvino.__version__
    else:
        import onnxruntime

        versions['onnxruntime'] = onnxruntime.__version__
    return versions


# ----------------------------------------------------------------------------- hashing

def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def weights_digest(source: Any) -> str:
    """SHA-256 of a network's weights: the two files of a weights path, or a module's tensors.

    ``source`` is a base path (``models/NAME``: ``NAME.safetensors`` + ``NAME.json`` are
    hashed) or an ``nn.Module`` (every state-dict tensor's name, dtype, shape and bytes, and
    its config).
    """
    import torch

    digest = hashlib.sha256()
    if isinstance(source, torch.nn.Module):
        for name, tensor in source.state_dict().items():
            tensor = tensor.detach().cpu().contiguous()
            digest.update(f'{name}|{tensor.dtype}|{tuple(tensor.shape)}|'.encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
        config = getattr(source, 'config', None)
        if config is not None:
            from .models.onnx_export import config_to_json

            digest.update(config_to_json(config).encode())
        return digest.hexdigest()
    base = Path(source)
    for suffix in ('.safetensors', '.json'):
        path = base.with_name(base.name + suffix)
        if not path.is_file():
            raise MissingData(f'model weights not found: {path}')
        digest.update(suffix.encode())
        digest.update(_sha256_file(path).encode())
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """``$RCDEPTH_CACHE_DIR``, else ``$XDG_CACHE_HOME/rcdepth_ros/graphs`` (``~/.cache``)."""
    if os.environ.get('RCDEPTH_CACHE_DIR'):
        return Path(os.environ['RCDEPTH_CACHE_DIR'])
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(base) / 'rcdepth_ros' / 'graphs'


# ----------------------------------------------------------------------------- cache

class GraphCache:
    """Exported graphs on disk, one verified folder per key (see the module docstring).

    ``events`` records what each :meth:`get` did (``'hit'``, ``'build'`` or
    ``'rebuild: <reason>'``), for logs and tests.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.events: list[str] = []

    @staticmethod
    def key(fields: dict[str, str]) -> str:
        """Hex key of the fields that determine an entry (sorted JSON, SHA-256, 32 chars)."""
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]

    def entry(self, key: str) -> Path:
        return self.root / key

    def _verify(self, folder: Path, key: str) -> str | None:
        """None if ``folder`` is a complete entry of ``key``, else why not."""
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            return 'no manifest'
        try:
            manifest = json.loads(manifest_path.read_text())
            files = dict(manifest['files'])
            stored_key = manifest['key']
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return f'unreadable manifest ({type(exc).__name__})'
        if stored_key != key:
            return 'manifest of another key'
        if not files:
            return 'manifest lists no files'
        for name, sha in files.items():
            path = folder / name
            if not path.is_file():
                return f'missing {name}'
            if _sha256_file(path) != sha:
                return f'{name} does not match its hash'
        return None

    def get(self, fields: dict[str, str], build: Callable[[Path], Iterable[str]]) -> Path:
        """Folder of the verified entry for ``fields``; built with ``build(folder)`` if needed.

        ``build`` writes its files into the folder it is given and returns their names.
        """
        key = self.key(fields)
        folder = self.entry(key)
        if folder.exists():
            reason = self._verify(folder, key)
            if reason is None:
                self.events.append('hit')
                return folder
            self.events.append(f'rebuild: {reason}')
            shutil.rmtree(folder, ignore_errors=True)
        else:
            self.events.append('build')
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f'.{key}.', dir=self.root))
        try:
            names = list(build(staging))
            manifest = {'key': key, 'fields': fields, 'created': time.time(),
                        'files': {name: _sha256_file(staging / name) for name in names}}
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
            try:
                os.rename(staging, folder)
            except OSError:  # another process put the same entry in place first
                if self._verify(folder, key) is not None:
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return folder


# ----------------------------------------------------------------------------- graphs

def export_graph(model: Any, config: Any = None, fuse: bool = True) -> bytes:
    """Export the fp32 ONNX graph of ``model`` under :data:`SIZE_POLICY` (dynamic B/H/W).

    ``fuse=False`` exports the network as trained (``rcdepth bench --modes eager``); such
    graphs are never cached (the policy names the fused graph).
    """
    from .models.onnx_export import export_onnx_bytes

    return export_onnx_bytes(model, 128, 192, config=config, fuse=fuse)


def _write_openvino_ir(onnx_source: bytes | Path, folder: Path) -> list[str]:
    import openvino as ov

    if isinstance(onnx_source, bytes):
        onnx_path = folder / 'source.onnx'
        onnx_path.write_bytes(onnx_source)
    else:
        onnx_path = onnx_source
    model = ov.convert_model(str(onnx_path))
    ov.save_model(model, str(folder / 'graph.xml'), compress_to_fp16=False)
    if isinstance(onnx_source, bytes):
        onnx_path.unlink()
    return ['graph.xml', 'graph.bin']


def cached_graph(cache: GraphCache, backend: str, weights_key: str, precision: str,
                 onnx_source: Callable[[], bytes | Path]) -> Path:
    """Path of the cached graph file of ``backend`` (``graph.onnx`` or ``graph.xml``).

    ``weights_key`` identifies the network (:func:`weights_digest`, or the digest of an INT8
    graph); ``onnx_source()`` gives the fp32/int8 ONNX (bytes or a file) when a build is needed.
    """
    fields = {'weights': weights_key, 'backend': backend, 'precision': precision,
              'size_policy': SIZE_POLICY, **tool_versions(backend)}

    def build(folder: Path) -> list[str]:
        source = onnx_source()
        if backend == 'openvino':
            return _write_openvino_ir(source, folder)
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        (folder / 'graph.onnx').write_bytes(data)
        return ['graph.onnx']

    folder = cache.get(fields, build)
    return folder / ('graph.xml' if backend == 'openvino' else 'graph.onnx')


# ----------------------------------------------------------------------------- runners

class GraphRunner:
    """Common interface: ``run(image (B,3,H,W), radar (B,4,H,W)) -> (depth, sigma)``.

    Inputs are float32 numpy, normalised and padded to multiples of 32; outputs are float32
    ``(B, 1, H, W)``. ``last_ms`` is the time of the last ``run``'s inference call alone.
    """

    backend = ''
    last_ms = float('nan')

    def run(self, image: np.ndarray, radar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def describe(self) -> dict:
        return {}


class OnnxRuntimeRunner(GraphRunner):
    """ONNX Runtime session (CPU provider; CUDA provider first on a ``cuda`` device)."""

    backend = 'onnxruntime'

    def __init__(self, source: bytes | str | Path, device: str = 'cpu',
                 threads: int = 1) -> None:
        import onnxruntime as ort

        from .models.onnx_export import ONNX_INPUTS, ONNX_OUTPUTS

        providers: list[Any] = ['CPUExecutionProvider']
        if device.startswith('cuda'):
            if 'CUDAExecutionProvider' not in ort.get_available_providers():
                raise ValueError('device cuda requested but onnxruntime has no '
                                 'CUDAExecutionProvider (install onnxruntime-gpu)')
            index = int(device.split(':', 1)[1]) if ':' in device else 0
            providers.insert(0, ('CUDAExecutionProvider', {'device_id': index}))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = max(1, int(threads))
        # Idle ORT workers would otherwise busy-wait after each run and steal the cores from
        # whatever runs next in this process (the torch backend in `rcdepth bench`, the node).
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        if isinstance(source, Path):
            source = str(source)
        try:
            self.session = ort.InferenceSession(source, sess_options=options,
                                                providers=providers)
        except Exception as exc:  # ORT raises its own exception types for corrupt files
            raise BadInputFile(f'cannot load ONNX model: {exc}') from None
        names = tuple(i.name for i in self.session.get_inputs())
        outputs = tuple(o.name for o in self.session.get_outputs())
        if names != ONNX_INPUTS or outputs[:2] != ONNX_OUTPUTS:
            raise ValueError(f'ONNX model must have inputs {ONNX_INPUTS} and outputs '
                             f'{ONNX_OUTPUTS}, got {names} -> {outputs}')
        self._outputs = list(ONNX_OUTPUTS)
        self.input_shape = self.session.get_inputs()[0].shape  # [B, 3, H, W]; str = dynamic

    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def run(self, image: np.ndarray, radar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fixed = [(axis, size, actual) for axis, size, actual
                 in zip(('batch', 'height', 'width'),
                        (self.input_shape[0], *self.input_shape[2:]),
                        (image.shape[0], *image.shape[2:]))
                 if isinstance(size, int) and size != actual]
        if fixed:
            axis, size, actual = fixed[0]
            raise ValueError(f'this ONNX model has a fixed {axis} of {size}, got {actual} '
                             '(after padding to a multiple of 32); export it with dynamic axes')
        feeds = {'image': np.ascontiguousarray(image, dtype=np.float32),
                 'radar': np.ascontiguousarray(radar, dtype=np.float32)}
        start = time.perf_counter()
        depth, sigma = self.session.run(self._outputs, feeds)  # (B, 1, H, W) each
        self.last_ms = (time.perf_counter() - start) * 1e3
        return depth, sigma

    def describe(self) -> dict:
        return {'providers': list(self.session.get_providers())}


class OpenVinoRunner(GraphRunner):
    """OpenVINO on CPU: the graph is compiled once per concrete input shape (static shapes).

    Inference precision is pinned to f32 (``INFERENCE_PRECISION_HINT``): on CPUs with bf16
    units OpenVINO would otherwise run fp32 graphs in bf16. An INT8 (QDQ) graph still runs its
    quantised layers in int8.
    """

    backend = 'openvino'
    MAX_COMPILED = 4  # shapes kept compiled; a stream has one size in practice

    def __init__(self, source: str | Path | bytes, threads: int = 1) -> None:
        import openvino as ov

        self._core = ov.Core()
        try:
            if isinstance(source, bytes):
                self._model = self._core.read_model(source, b'')  # ONNX bytes
            else:
                self._model = self._core.read_model(str(source))
        except RuntimeError as exc:
            raise BadInputFile(f'cannot load graph for OpenVINO: {exc}') from None
        names = tuple(i.get_any_name() for i in self._model.inputs)
        outputs = tuple(o.get_any_name() for o in self._model.outputs)
        if names != ('image', 'radar') or outputs[:2] != ('depth', 'sigma'):
            raise ValueError(f'graph must have inputs (image, radar) and outputs (depth, '
                             f'sigma), got {names} -> {outputs}')
        self._config = {'INFERENCE_NUM_THREADS': max(1, int(threads)),
                        'PERFORMANCE_HINT': 'LATENCY', 'INFERENCE_PRECISION_HINT': 'f32'}
        self._compiled: dict[tuple, Any] = {}

    def _request(self, image_shape: tuple, radar_shape: tuple) -> Any:
        key = (image_shape, radar_shape)
        request = self._compiled.pop(key, None)
        if request is None:
            model = self._model.clone()
            model.reshape({'image': list(image_shape), 'radar': list(radar_shape)})
            compiled = self._core.compile_model(model, 'CPU', self._config)
            request = compiled.create_infer_request()
            if len(self._compiled) >= self.MAX_COMPILED:
                self._compiled.pop(next(iter(self._compiled)))
        self._compiled[key] = request  # most recently used last
        return request

    def run(self, image: np.ndarray, radar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        image = np.ascontiguousarray(image, dtype=np.float32)
        radar = np.ascontiguousarray(radar, dtype=np.float32)
        request = self._request(image.shape, radar.shape)
        start = time.perf_counter()
        request.infer({'image': image, 'radar': radar})
        self.last_ms = (time.perf_counter() - start) * 1e3
        # Copies: the request's output buffers are reused by the next call.
        depth = np.array(request.get_tensor('depth').data, dtype=np.float32)
        sigma = np.array(request.get_tensor('sigma').data, dtype=np.float32)
        return depth, sigma  # (B, 1, H, W) each

    def describe(self) -> dict:
        return {'openvino_device': 'CPU', 'compiled_shapes': len(self._compiled)}


def make_runner(backend: str, graph: bytes | str | Path, device: str = 'cpu',
                threads: int = 1) -> GraphRunner:
    """Open a runner of ``backend`` for an ONNX (or OpenVINO IR) ``graph``."""
    if backend == 'onnxruntime':
        return OnnxRuntimeRunner(graph, device=device, threads=threads)
    if backend == 'openvino':
        if not device.startswith('cpu'):
            raise ValueError(f'the openvino backend runs on cpu only, got device {device}')
        return OpenVinoRunner(graph, threads=threads)
    raise ValueError(f'{backend!r} is not a graph backend ({", ".join(GRAPH_BACKENDS)})')


# ----------------------------------------------------------------------------- INT8

def quantize_int8(onnx_fp32: bytes, calibration: Sequence[tuple[np.ndarray, np.ndarray]]
                  ) -> bytes:
    """Quantise an fp32 graph to static INT8 (QDQ), calibrated on ``calibration`` frames.

    Each frame is ``(image (B,3,H,W) normalised float32, radar (B,4,H,W) float32)``, as the
    network sees it (sizes multiples of 32). Per-channel symmetric int8 weights, asymmetric
    uint8 activations with min-max ranges. Returns the ONNX bytes, metadata kept.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise ValueError('INT8 calibration needs at least one frame')

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self._frames = iter(calibration)

        def get_next(self) -> dict | None:
            frame = next(self._frames, None)
            if frame is None:
                return None
            image, radar = frame
            return {'image': np.ascontiguousarray(image, dtype=np.float32),
                    'radar': np.ascontiguousarray(radar, dtype=np.float32)}

    with tempfile.TemporaryDirectory(prefix='rcdepth_int8_') as tmp:
        fp32, pre, int8 = (Path(tmp) / n for n in ('fp32.onnx', 'pre.onnx', 'int8.onnx'))
        fp32.write_bytes(onnx_fp32)
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(int8), Frames(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        per_channel=True, calibrate_method=CalibrationMethod.MinMax)
        proto = onnx.load(str(int8))
    source = onnx.load_from_string(onnx_fp32)
    del proto.metadata_props[:]
    proto.metadata_props.extend(source.metadata_props)
    return proto.SerializeToString()


def int8_paths(weights_base: str | Path) -> tuple[Path, Path]:
    """``(<base>.int8.onnx, <base>.int8.json)`` of the weights at ``weights_base``."""
    base = Path(weights_base)
    return (base.with_name(base.name + INT8_SUFFIX + '.onnx'),
            base.with_name(base.name + INT8_SUFFIX + '.json'))


def write_int8_graph(weights_base: str | Path, graph: bytes, report: dict) -> tuple[Path, Path]:
    """Write a gated INT8 graph and its manifest next to the weights (atomically)."""
    onnx_path, json_path = int8_paths(weights_base)
    manifest = dict(report, weights_sha256=weights_digest(weights_base),
                    graph_sha256=hashlib.sha256(graph).hexdigest(), size_policy=SIZE_POLICY)
    for path, data in ((onnx_path, graph),
                       (json_path, (json.dumps(manifest, indent=2, sort_keys=True) + '\n')
                        .encode())):
        partial = path.with_name(path.name + '.partial')
        partial.write_bytes(data)
        os.replace(partial, path)
    return onnx_path, json_path


def load_int8_graph(weights_base: str | Path) -> tuple[bytes, dict]:
    """Read the verified INT8 graph of the weights at ``weights_base`` and its manifest.

    Raises ``FileNotFoundError`` if there is none (run ``rcdepth quantize``) and
    ``ValueError`` if it was made from other weights or its bytes changed.
    """
    onnx_path, json_path = int8_paths(weights_base)
    if not onnx_path.is_file() or not json_path.is_file():
        raise MissingData(f'no INT8 graph for {weights_base} ({onnx_path.name} + '
                                f'{json_path.name}); make one with rcdepth quantize')
    try:
        manifest = json.loads(json_path.read_text())
        expected_weights, expected_graph = manifest['weights_sha256'], manifest['graph_sha256']
    except (OSError, ValueError, KeyError, TypeError):
        raise BadInputFile(f'{json_path} is not an INT8 manifest; re-run rcdepth quantize'
                           ) from None
    if expected_weights != weights_digest(weights_base):
        raise BadInputFile(f'{onnx_path.name} was quantised from other weights; re-run rcdepth '
                         'quantize')
    graph = onnx_path.read_bytes()
    if hashlib.sha256(graph).hexdigest() != expected_graph:
        raise BadInputFile(f'{onnx_path} does not match its manifest (corrupt); re-run rcdepth '
                         'quantize')
    return graph, manifest
