"""Speed of ``rcdepth prepare`` per sample: the fast path against the reference, one run.

The reference is the corrected slow path: Qhull + ``LinearNDInterpolator`` for the dense GT
and no sweep cache (every sample reads and annotates its own +-N LiDAR sweeps). The fast path
is what ``prepare`` runs: Triangle + scanline rasterisation and the per-process sweep cache. Both
run on the same samples, interleaved (reference then fast, sample by sample, so load on the
machine hits both alike); the fast path sees the samples in drive order, as ``prepare`` gives
them to a worker. The dense GT of the two is compared pixel by pixel.

With a ``baseline`` (the root of another checkout of this package, e.g. a ``git worktree`` of
an older commit), that checkout's ``prepare_sample`` is timed too, on the same samples,
interleaved, in a worker process of its own that keeps its state between samples, as a
``prepare`` worker does. Its ground truth is not compared (an older one may differ by design).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
import os
from pathlib import Path
import statistics
import subprocess
import sys
import time
from typing import Iterator

import numpy as np

from ..errors import BadArgument
from . import nuscenes_prep as prep


@contextmanager
def _sweep_cache(cache: prep._SweepCache) -> Iterator[None]:
    saved, prep._SWEEPS = prep._SWEEPS, cache
    try:
        yield
    finally:
        prep._SWEEPS = saved


# The baseline worker: imports ``rcdepth_ros`` from the checkout given as argv[1] (never the
# running one), then prepares each token read from stdin and answers with its seconds.
_BASELINE_WORKER = """
import sys, time
sys.path.insert(0, sys.argv[1])
import rcdepth_ros
from pathlib import Path
if Path(rcdepth_ros.__file__).resolve().parents[1] != Path(sys.argv[1]).resolve():
    sys.exit(f'baseline: imported {rcdepth_ros.__file__}, not the checkout {sys.argv[1]}')
from nuscenes import NuScenes
from rcdepth_ros.data import nuscenes_prep as prep
nusc = NuScenes(version=sys.argv[3], dataroot=sys.argv[2], verbose=False)
options = prep.PrepareOptions(accumulate_sweeps=int(sys.argv[4]))
print('ready', flush=True)
for line in sys.stdin:
    start = time.perf_counter()
    prep.prepare_sample(nusc, line.strip(), options)
    print(time.perf_counter() - start, flush=True)
"""


class _Baseline:
    """A worker process running another checkout's ``prepare_sample``, one token at a time."""

    def __init__(self, root: str | Path, nusc, options: prep.PrepareOptions) -> None:
        root = Path(root).resolve()
        if not (root / 'rcdepth_ros' / 'data' / 'nuscenes_prep.py').is_file():
            raise BadArgument(f'baseline {root} is not a checkout of this package '
                              '(no rcdepth_ros/data/nuscenes_prep.py)')
        found = subprocess.run(['git', '-C', str(root), 'rev-parse', 'HEAD'],
                               capture_output=True, text=True)
        self.commit = found.stdout.strip() if found.returncode == 0 else None  # None: no git
        env = dict(os.environ, PYTHONPATH=str(root))  # same thread settings as this process
        self._process = subprocess.Popen(
            [sys.executable, '-c', _BASELINE_WORKER, str(root), str(nusc.dataroot),
             nusc.version, str(options.accumulate_sweeps)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self._expect('ready')

    def _expect(self, what: str) -> str:
        line = self._process.stdout.readline().strip()
        if not line or (what == 'ready' and line != 'ready'):
            self.close()
            raise RuntimeError(f'baseline worker stopped (exit {self._process.returncode}) '
                               f'instead of answering {what!r}')
        return line

    def time(self, token: str) -> float:
        self._process.stdin.write(token + '\n')
        self._process.stdin.flush()
        return float(self._expect('seconds'))

    def close(self) -> None:
        if self._process.stdin:
            self._process.stdin.close()
        self._process.wait()


def bench_prepare(nusc, tokens: list[str], options: prep.PrepareOptions,
                  baseline: str | Path | None = None) -> dict:
    """Time both paths (and a baseline checkout) on ``tokens``.

    Returns per-sample seconds, medians, the fast path's speed-up and the GT agreement.
    """
    reference_options = replace(options, interpolation='qhull')
    fast_cache = prep._SweepCache()
    other = _Baseline(baseline, nusc, options) if baseline is not None else None
    try:
        rows = [_time_sample(nusc, token, options, reference_options, fast_cache, other)
                for token in tokens]
    finally:
        if other is not None:
            other.close()
    ref = statistics.median(r['reference_s'] for r in rows)
    fast = statistics.median(r['fast_s'] for r in rows)
    valid_ref = sum(r['valid_reference'] for r in rows)
    result = {
        'samples': len(rows),
        'options': {'accumulate_sweeps': options.accumulate_sweeps},
        'median_reference_s': ref,
        'median_fast_s': fast,
        'speedup': ref / fast if fast > 0 else float('inf'),
        'valid_pixels_rel_diff': abs(sum(r['valid_fast'] for r in rows) - valid_ref)
        / max(valid_ref, 1),
        'pixels_over_1cm': sum(r['pixels_over_1cm'] for r in rows),
        'max_abs_m': max(r['max_abs_m'] for r in rows),
        'per_sample': rows,
    }
    if other is not None:
        base = statistics.median(r['baseline_s'] for r in rows)
        result.update(baseline_commit=other.commit, median_baseline_s=base,
                      speedup_vs_baseline=base / fast if fast > 0 else float('inf'))
    return result


def _time_sample(nusc, token: str, options, reference_options, fast_cache,
                 baseline: _Baseline | None) -> dict:
    """One sample: the baseline (if any), the reference, then the fast path; their GT."""
    t_baseline = baseline.time(token) if baseline is not None else None
    with _sweep_cache(prep._SweepCache(0)):  # no cache: every sweep read again
        start = time.perf_counter()
        reference = prep.prepare_sample(nusc, token, reference_options)
        t_reference = time.perf_counter() - start
    with _sweep_cache(fast_cache):
        start = time.perf_counter()
        fast = prep.prepare_sample(nusc, token, options)
        t_fast = time.perf_counter() - start
    a, b = reference.depth_dense, fast.depth_dense
    both = (a > 0) & (b > 0)
    differ = np.abs(a - b)[both] > 0.01
    row = {
        'token': token, 'reference_s': t_reference, 'fast_s': t_fast,
        'valid_reference': int(np.count_nonzero(a)), 'valid_fast': int(np.count_nonzero(b)),
        'pixels_over_1cm': int(np.count_nonzero(differ)),
        'max_abs_m': float(np.abs(a - b)[both].max()) if both.any() else 0.0,
        'same_accumulated': bool(np.array_equal(reference.depth_accumulated,
                                                fast.depth_accumulated)),
    }
    if t_baseline is not None:
        row['baseline_s'] = t_baseline
    return row
