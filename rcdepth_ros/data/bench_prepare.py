"""Speed of ``rcdepth prepare`` per sample: the fast path against the reference, one run.

The reference is the corrected slow path: Qhull + ``LinearNDInterpolator`` for the dense GT
and no sweep cache (every sample reads and annotates its own +-N LiDAR sweeps). The fast path
is what ``prepare`` runs: Triangle + direct rasterisation and the per-process sweep cache. Both
run on the same samples, interleaved (reference then fast, sample by sample, so load on the
machine hits both alike); the fast path sees the samples in drive order, as ``prepare`` gives
them to a worker. The dense GT of the two is compared pixel by pixel.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
import statistics
import time
from typing import Iterator

import numpy as np

from . import nuscenes_prep as prep


@contextmanager
def _sweep_cache(cache: prep._SweepCache) -> Iterator[None]:
    saved, prep._SWEEPS = prep._SWEEPS, cache
    try:
        yield
    finally:
        prep._SWEEPS = saved


def bench_prepare(nusc, tokens: list[str], options: prep.PrepareOptions) -> dict:
    """Time both paths on ``tokens``; returns per-sample seconds, medians and agreement."""
    reference_options = replace(options, interpolation='qhull')
    fast_cache = prep._SweepCache()
    rows = []
    for token in tokens:
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
        rows.append({
            'token': token, 'reference_s': t_reference, 'fast_s': t_fast,
            'valid_reference': int(np.count_nonzero(a)), 'valid_fast': int(np.count_nonzero(b)),
            'pixels_over_1cm': int(np.count_nonzero(differ)),
            'max_abs_m': float(np.abs(a - b)[both].max()) if both.any() else 0.0,
            'same_accumulated': bool(np.array_equal(reference.depth_accumulated,
                                                    fast.depth_accumulated)),
        })
    ref = statistics.median(r['reference_s'] for r in rows)
    fast = statistics.median(r['fast_s'] for r in rows)
    valid_ref = sum(r['valid_reference'] for r in rows)
    return {
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
