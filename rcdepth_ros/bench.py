"""Latency and memory benchmark: variants x backends x input sizes (``rcdepth bench``).

Timing is round-robin: within every run each (variant, backend, mode) case is called once,
in an order rotated from run to run, so slow phases of a shared machine hit all cases alike
and the ratios between variants measured in one benchmark are robust to noise.

Modes (:data:`MODES`) say how the network is run, the same way for every variant:
``optimized`` is what the node runs (``DepthEstimator`` defaults: the inference rewrite of
:func:`.models.fuse.fuse_for_inference`, channels_last on CPU for torch); ``eager`` is the
network as trained (batch norms, transposed convs, contiguous layout), the baseline.

Fields of each result (one per variant x backend x size):

- ``median_ms``, ``p90_ms``: network time of one call (``DepthEstimator.model_time_ms``,
  CUDA-synchronised), without pre-processing and host transfers; ``e2e_median_ms``: the whole
  ``predict`` call, numpy in to numpy out.
- ``peak_mem_mb``: the memory one stream of this configuration needs: parameter bytes
  (``weights_mb``) plus the peak working memory of one warmed-up call. On CUDA (torch) the
  working memory is ``torch.cuda.max_memory_allocated`` during the call minus the allocation
  before it. On CPU it is the peak increase of the process resident set size (RSS, sampled
  every 0.5 ms from ``/proc/self/statm`` after returning freed heap to the OS with
  ``malloc_trim``): approximate, and it includes allocator overhead. None where it cannot be
  measured (onnxruntime on CUDA).
- ``rel_median``: ``median_ms`` relative to the first variant of the list for the same backend,
  precision, size and mode (the reference).
- ``rel_backend``: ``median_ms`` relative to the torch fp32 case of the same variant, mode and
  size in the same run (None without one): the backend speed-up, from one interleaved run.

Backends x precisions are crossed and only the combinations that exist on the device are run
(:data:`.backends.COMBINATIONS`). INT8 cases are quantised in memory, calibrated on
:func:`synthetic_inputs` frames of the first size (timing does not depend on the weights or
the calibration; for the accuracy of INT8 see ``rcdepth quantize``).
- ``mode``, ``fuse``, ``channels_last``, ``threads`` (torch intra-op threads; onnxruntime gets
  as many).

``breakdown=True`` adds ``parts_ms`` to every torch case: the median time of each part of
the network (its top-level modules, the decoder's expanded one level) and ``(rest)``, the
forward time outside them (concatenation, up-sampling, Python), from extra round-robin calls
timed with forward hooks after the main timing (:func:`part_times`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import copy
import ctypes
import os
import platform
import statistics
import threading
import time

import numpy as np
import torch
from torch import nn

from .errors import BadArgument
from .inference import DepthEstimator

RESULT_FIELDS = ('variant', 'backend', 'mode', 'device', 'precision', 'height', 'width',
                 'batch', 'runs', 'median_ms', 'p90_ms', 'e2e_median_ms', 'peak_mem_mb',
                 'weights_mb', 'params_m', 'rel_median', 'reference', 'rel_backend', 'fuse',
                 'channels_last', 'threads', 'device_name')
MODES = ('optimized', 'eager')


def synthetic_inputs(batch: int, height: int, width: int,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random RGB ``uint8 (B,H,W,3)`` and a sparse radar image ``float32 (B,4,H,W)``."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(batch, height, width, 3), dtype=np.uint8)
    radar = np.zeros((batch, 4, height, width), dtype=np.float32)
    count = 60  # about one filtered nuScenes front-radar sweep
    rows = rng.integers(0, height, size=(batch, count))
    cols = rng.integers(0, width, size=(batch, count))
    for b in range(batch):
        radar[b, 0, rows[b], cols[b]] = rng.uniform(2.0, 80.0, count)
        radar[b, 1, rows[b], cols[b]] = rng.normal(5.0, 10.0, count)
        radar[b, 2, rows[b], cols[b]] = rng.normal(0.0, 3.0, count)
        radar[b, 3, rows[b], cols[b]] = rng.normal(0.0, 3.0, count)
    return images, radar


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` in [0, 100]."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def _rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def _malloc_trim() -> None:
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: the RSS baseline then includes cached heap


def _peak_rss_delta_mb(call: Callable[[], object]) -> float | None:
    """Peak RSS increase (MiB) during ``call()``, sampled by a background thread."""
    try:
        _rss_bytes()
    except OSError:
        return None
    _malloc_trim()
    base = _rss_bytes()
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.0005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        call()
    finally:
        done.set()
        sampler.join()
    peak[0] = max(peak[0], _rss_bytes())
    return (peak[0] - base) / 2**20


def _working_mem_mb(estimator: DepthEstimator, images: np.ndarray,
                    radar: np.ndarray) -> float | None:
    def call() -> object:
        return estimator.predict(images, radar)

    if torch.device(estimator.device).type == 'cuda':
        if estimator.backend != 'torch':
            return None  # onnxruntime's CUDA arena is invisible to torch
        torch.cuda.synchronize(estimator.device)
        before = torch.cuda.memory_allocated(estimator.device)
        torch.cuda.reset_peak_memory_stats(estimator.device)
        call()
        return (torch.cuda.max_memory_allocated(estimator.device) - before) / 2**20
    return _peak_rss_delta_mb(call)


def device_name(device: str) -> str:
    """Human-readable name of the device the figures come from."""
    if torch.device(device).type == 'cuda':
        return torch.cuda.get_device_name(torch.device(device))
    name = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            name = next(line.split(':', 1)[1].strip() for line in f
                        if line.startswith('model name'))
    except (OSError, StopIteration):
        pass  # not Linux: keep the platform's short name
    return f'{name} ({torch.get_num_threads()} torch threads)'


def build_random_models(variants: Sequence[str], seed: int = 0) -> dict[str, nn.Module]:
    """Random-init networks of the named variants (timing does not depend on weights)."""
    from .models import VARIANTS, build_model

    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise BadArgument(f'unknown variant(s) {", ".join(unknown)}; '
                          f'known: {", ".join(sorted(VARIANTS))}')
    models = {}
    for variant in variants:
        torch.manual_seed(seed)
        models[variant] = build_model(VARIANTS[variant]).eval()
    return models


def run_benchmark(models: Mapping[str, nn.Module], backends: Sequence[str] = ('torch',),
                  sizes: Sequence[tuple[int, int]] = ((352, 704),), runs: int = 20,
                  warmup: int = 3, device: str = 'auto', precision: str = 'fp32',
                  batch: int = 1, channels_last: bool | None = None, seed: int = 0,
                  progress: bool = True, modes: Sequence[str] = ('optimized',),
                  breakdown: bool = False, precisions: Sequence[str] | None = None,
                  skipped: list[str] | None = None) -> list[dict]:
    """Benchmark every model x backend x precision x mode x size; one dict per case.

    ``models`` maps variant names to networks, the first being the reference for
    ``rel_median``. ``precisions`` (default ``[precision]``) is crossed with ``backends``;
    combinations that do not exist on the device are left out and named in ``skipped`` when
    a list is given (ValueError if none is left). ``channels_last`` applies to the
    ``optimized`` torch cases (None: on for CPU). The networks given are never changed in
    place (every case runs its own copy). See the module docstring for the fields.
    """
    from .backends import check_combination
    from .inference import resolve_device
    from .preprocess import image_to_tensor

    if not models:
        raise BadArgument('no variants to benchmark')
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise BadArgument(f'unknown or no mode(s) {unknown}; known: {", ".join(MODES)}')
    if runs < 1 or warmup < 0 or batch < 1:
        raise BadArgument(f'need runs >= 1, warmup >= 0, batch >= 1; got {runs}, {warmup}, '
                          f'{batch}')
    if not sizes:
        raise BadArgument('no sizes to benchmark')
    for height, width in sizes:
        if height <= 0 or width <= 0:
            raise BadArgument(f'size must be positive, got {height}x{width}')
    precisions = list(precisions or [precision])
    combos = []
    for backend in backends:
        for prec in precisions:
            for mode in modes:
                try:
                    check_combination(backend, prec,
                                      torch.device(resolve_device(device, backend)).type)
                except ValueError as exc:
                    if skipped is not None:
                        skipped.append(f'{backend} {prec} {mode}: {exc}')
                    continue
                combos.append((backend, prec, mode))
    if not combos:
        raise BadArgument('no backend x precision x mode combination exists on this device')
    calibration = None
    if any(prec == 'int8' for _, prec, _ in combos):
        height, width = sizes[0]
        calibration = [(image_to_tensor(im).numpy(), ra) for im, ra in
                       (synthetic_inputs(batch, -(-height // 32) * 32, -(-width // 32) * 32,
                                         seed + 100 + i) for i in range(4))]
    estimators: dict[tuple[str, str, str, str], DepthEstimator] = {}
    weights_mb: dict[tuple[str, str], float] = {}
    params_m: dict[str, float] = {}
    for variant, model in models.items():
        params = sum(p.numel() for p in model.parameters())
        params_m[variant] = params / 1e6
        for backend, prec, mode in combos:
            bytes_per = {'fp16': 2, 'int8': 1}.get(prec, 4)
            weights_mb[variant, prec] = params * bytes_per / 2**20
            optimized = mode == 'optimized'
            layout = channels_last if optimized and backend == 'torch' else False
            # fuse=False moves the module in place: hand it a copy.
            estimators[variant, backend, prec, mode] = DepthEstimator(
                model if optimized else copy.deepcopy(model), device=device,
                precision=prec, backend=backend, channels_last=layout, fuse=optimized,
                calibration=calibration if prec == 'int8' else None)
    cases = list(estimators)
    results = []
    for height, width in sizes:
        images, radar = synthetic_inputs(batch, height, width, seed)
        for _ in range(warmup):
            for key in cases:
                estimators[key].predict(images, radar)
        working = {key: _working_mem_mb(estimators[key], images, radar) for key in cases}
        model_ms: dict[tuple, list[float]] = {key: [] for key in cases}
        e2e_ms: dict[tuple, list[float]] = {key: [] for key in cases}
        bar = _progress(runs * len(cases), f'{height}x{width}', progress)
        for run in range(runs):
            shift = run % len(cases)
            for key in cases[shift:] + cases[:shift]:
                start = time.perf_counter()
                estimators[key].predict(images, radar)
                e2e_ms[key].append((time.perf_counter() - start) * 1e3)
                model_ms[key].append(estimators[key].model_time_ms)
                bar.update(1)
        bar.close()
        parts = (part_times({k: estimators[k] for k in cases if k[1] == 'torch'}, images,
                            radar, runs) if breakdown else {})
        for key in cases:
            variant, backend, prec, mode = key
            est = estimators[key]
            mem = working[key]
            results.append({
                'variant': variant, 'backend': backend, 'mode': mode, 'device': est.device,
                'precision': prec, 'height': height, 'width': width, 'batch': batch,
                'runs': runs, 'median_ms': statistics.median(model_ms[key]),
                'p90_ms': percentile(model_ms[key], 90),
                'e2e_median_ms': statistics.median(e2e_ms[key]),
                'peak_mem_mb': (None if mem is None
                                else weights_mb[variant, prec] + max(mem, 0.0)),
                'weights_mb': weights_mb[variant, prec], 'params_m': params_m[variant],
                'fuse': est.fuse, 'channels_last': est.channels_last,
                'threads': torch.get_num_threads(), 'device_name': device_name(est.device)})
            if key in parts:
                results[-1]['parts_ms'] = parts[key]
    _add_ratios(results, next(iter(models)))
    return results


def profiled_parts(model: nn.Module) -> dict[str, nn.Module]:
    """Name the parts :func:`part_times` times: top-level modules, ``decoder`` one level down."""
    parts: dict[str, nn.Module] = {}
    for name, child in model.named_children():
        grandchildren = list(child.named_children()) if name == 'decoder' else []
        if grandchildren:
            parts.update((f'{name}.{sub}', module) for sub, module in grandchildren)
        else:
            parts[name] = child
    return parts


class _PartTimer:
    """Forward hooks that add each part's wall time of one forward into ``current``."""

    def __init__(self, parts: Mapping[str, nn.Module], synchronize: Callable[[], None]) -> None:
        self.current: dict[str, float] = {}
        self._sync = synchronize
        self._starts: dict[str, float] = {}
        self._handles = []
        for name, module in parts.items():
            self._handles.append(module.register_forward_pre_hook(self._pre(name)))
            self._handles.append(module.register_forward_hook(self._post(name)))

    def _pre(self, name: str) -> Callable:
        def hook(module: nn.Module, args: object) -> None:
            self._sync()
            self._starts[name] = time.perf_counter()
        return hook

    def _post(self, name: str) -> Callable:
        def hook(module: nn.Module, args: object, output: object) -> None:
            self._sync()
            elapsed = (time.perf_counter() - self._starts.pop(name)) * 1e3
            self.current[name] = self.current.get(name, 0.0) + elapsed
        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def part_times(estimators: Mapping[str, DepthEstimator], images: np.ndarray, radar: np.ndarray,
               runs: int) -> dict[str, dict[str, float]]:
    """Median ms of each part (:func:`profiled_parts`) of torch estimators, round-robin.

    Returns ``{case: {part: ms, ..., '(rest)': ms, '(forward)': ms}}`` where ``(forward)`` is
    the network time of the hooked calls and ``(rest)`` what the parts do not cover. Hooks
    add a little overhead per part; they are removed afterwards.
    """
    keys = list(estimators)
    timers, samples = {}, {key: [] for key in keys}
    for key in keys:
        est = estimators[key]
        if est.backend != 'torch' or est.model is None:
            raise ValueError(f'part times need the torch backend ({key})')
        device = torch.device(est.device)
        sync = (lambda d=device: torch.cuda.synchronize(d)) if device.type == 'cuda' else (
            lambda: None)
        timers[key] = _PartTimer(profiled_parts(est.model), sync)
    try:
        for run in range(runs):
            shift = run % len(keys)
            for key in keys[shift:] + keys[:shift]:
                timers[key].current = {}
                estimators[key].predict(images, radar)
                parts = dict(timers[key].current)
                parts['(forward)'] = estimators[key].model_time_ms
                parts['(rest)'] = parts['(forward)'] - sum(
                    v for k, v in parts.items() if k != '(forward)')
                samples[key].append(parts)
    finally:
        for timer in timers.values():
            timer.remove()
    return {key: {name: statistics.median(s[name] for s in runs_) for name in runs_[0]}
            for key, runs_ in samples.items()}


def format_breakdown(results: Sequence[dict]) -> str:
    """Text table of ``parts_ms``: one row per part, one column per torch case."""
    cases = [r for r in results if r.get('parts_ms')]
    if not cases:
        return ''
    names: list[str] = []
    for r in cases:
        names += [n for n in r['parts_ms'] if n not in names and not n.startswith('(')]
    names += ['(rest)', '(forward)']
    header = ['part'] + [f"{r['variant']} {r.get('mode', 'optimized')} "
                         f"{r['height']}x{r['width']}" for r in cases]
    rows = [header] + [[name] + ['-' if name not in r['parts_ms'] else
                                 f"{r['parts_ms'][name]:.1f}" for r in cases]
                       for name in names]
    lines = _aligned(rows, first_right=1)
    lines.append('part medians in ms from hooked calls after the main timing')
    return '\n'.join(lines)


def _add_ratios(results: list[dict], reference: str) -> None:
    def group(r: dict) -> tuple:
        return (r['backend'], r.get('precision', 'fp32'), r.get('mode', 'optimized'),
                r['height'], r['width'])

    def case(r: dict) -> tuple:
        return r['variant'], r.get('mode', 'optimized'), r['height'], r['width']

    ref_ms = {group(r): r['median_ms'] for r in results if r['variant'] == reference}
    torch_ms = {case(r): r['median_ms'] for r in results
                if r['backend'] == 'torch' and r.get('precision', 'fp32') == 'fp32'}
    for r in results:
        base = ref_ms.get(group(r))
        r['reference'] = reference
        r['rel_median'] = r['median_ms'] / base if base else None
        base = torch_ms.get(case(r))
        r['rel_backend'] = r['median_ms'] / base if base else None


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)


def _aligned(rows: Sequence[Sequence[str]], first_right: int) -> list[str]:
    """Align ``rows`` (header first) into fixed-width lines with a dash rule under the header.

    Columns from ``first_right`` on are right-aligned, the others left-aligned.
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ['  '.join(cell.rjust(w) if i >= first_right else cell.ljust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return lines


def format_table(results: Sequence[dict]) -> str:
    """Fixed-width text table of benchmark results, with the ratio to the reference."""
    header = ('variant', 'backend', 'mode', 'device', 'prec', 'size', 'batch', 'median ms',
              'p90 ms', 'e2e ms', 'peak MB', 'params M', 'x ref', 'x torch')
    rows = [header]
    for r in results:
        rows.append((
            r['variant'], r['backend'], r.get('mode', 'optimized'), r['device'], r['precision'],
            f"{r['height']}x{r['width']}", str(r['batch']), f"{r['median_ms']:.2f}",
            f"{r['p90_ms']:.2f}", f"{r['e2e_median_ms']:.2f}",
            '-' if r['peak_mem_mb'] is None else f"{r['peak_mem_mb']:.1f}",
            f"{r['params_m']:.2f}",
            '-' if r['rel_median'] is None else f"{r['rel_median']:.3f}",
            '-' if r.get('rel_backend') is None else f"{r['rel_backend']:.3f}"))
    lines = _aligned(rows, first_right=5)
    if results:
        lines.append(f"x ref: median_ms / median_ms of {results[0]['reference']} "
                     f"(same backend, precision, mode and size); x torch: median_ms / "
                     f"median_ms of torch fp32 (same variant, mode and size); device: "
                     f"{results[0]['device_name']}")
    return '\n'.join(lines)


def format_markdown(results: Sequence[dict]) -> str:
    """Markdown table of benchmark results (for docs), one row per case, ratio included."""
    header = ('variant', 'backend', 'prec', 'mode', 'size', 'median ms', 'p90 ms', 'e2e ms',
              'peak MB', 'x ref', 'x torch')
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '|'.join('---' if i < 5 else '---:' for i in range(len(header))) + '|']
    for r in results:
        cells = (r['variant'], r['backend'], r.get('precision', 'fp32'),
                 r.get('mode', 'optimized'),
                 f"{r['height']}x{r['width']}", f"{r['median_ms']:.1f}", f"{r['p90_ms']:.1f}",
                 f"{r['e2e_median_ms']:.1f}",
                 '-' if r['peak_mem_mb'] is None else f"{r['peak_mem_mb']:.0f}",
                 '-' if r['rel_median'] is None else f"{r['rel_median']:.2f}",
                 '-' if r.get('rel_backend') is None else f"{r['rel_backend']:.2f}")
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)
