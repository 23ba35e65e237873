"""``rcdepth bench-prepare``: seconds per sample of ``prepare``, fast path against reference."""

from __future__ import annotations

import argparse
import os

NAME = 'bench-prepare'
HELP = ('Time data preparation per sample: the fast path (Triangle interpolation, sweep cache) '
        'against the reference (Qhull, no cache) on the same samples, and compare their GT.')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--dataroot', required=True, help='nuScenes dataroot')
    parser.add_argument('--version', default='v1.0-sim', help='table version')
    parser.add_argument('--split', default='train', help='split whose first samples are timed')
    parser.add_argument('--samples', type=int, default=10, help='samples to time (drive order)')
    parser.add_argument('--accumulate-sweeps', type=int, default=20,
                        help='LiDAR sweeps before and after the keyframe')
    parser.add_argument('--baseline', default=None, metavar='CHECKOUT',
                        help='also time the prepare of another checkout of this package (its '
                             'root, e.g. a git worktree of an older commit), interleaved')
    parser.add_argument('--json', default=None, help='also write the result here')


def run(args: argparse.Namespace) -> int:
    from nuscenes import NuScenes

    from ..data.bench_prepare import bench_prepare
    from ..data.nuscenes_prep import PrepareOptions, split_sample_tokens, split_scene_names
    from ..errors import BadArgument
    from ..training.evaluate import write_json_atomic

    if args.samples < 1 or args.accumulate_sweeps < 0:
        raise BadArgument('need --samples >= 1 and --accumulate-sweeps >= 0')
    nusc = NuScenes(version=args.version, dataroot=args.dataroot, verbose=False)
    tokens = split_sample_tokens(nusc, split_scene_names(nusc, args.split))[:args.samples]
    result = bench_prepare(nusc, tokens, PrepareOptions(accumulate_sweeps=args.accumulate_sweeps),
                           baseline=args.baseline)
    threads = os.environ.get('OMP_NUM_THREADS', 'default')
    print(f'bench-prepare: {result["samples"]} samples, +-{args.accumulate_sweeps} sweeps, '
          f'OMP_NUM_THREADS={threads}, medians')
    if args.baseline:
        commit = (result['baseline_commit'] or 'not a git checkout')[:12]
        print(f'  baseline ({commit})        {result["median_baseline_s"]:.3f} s/sample, '
              f'fast path {result["speedup_vs_baseline"]:.1f}x faster')
    print(f'  reference (qhull, no cache)   {result["median_reference_s"]:.3f} s/sample')
    print(f'  fast (triangle, sweep cache)  {result["median_fast_s"]:.3f} s/sample')
    print(f'  speed-up                      {result["speedup"]:.1f}x')
    print(f'  dense GT: valid pixels differ by {100 * result["valid_pixels_rel_diff"]:.3f} %, '
          f'{result["pixels_over_1cm"]} pixels differ by > 1 cm (max {result["max_abs_m"]:.4f} m)')
    if args.json:
        write_json_atomic(args.json, result)
    return 0
