"""``rcdepth prepare``: nuScenes (or the synthetic world) to training samples."""

from __future__ import annotations

import argparse

from ..errors import BadArgument
from ..sweeps import DEFAULT_MAX_SWEEPS, DEFAULT_WINDOW_S

NAME = 'prepare'
HELP = ('Prepare nuScenes-format data for training: radar images, single-scan and accumulated '
        '(interpolated) LiDAR depth, teacher confidence targets. Resumable and shardable.')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--dataroot', required=True, help='nuScenes dataroot (tables + files)')
    parser.add_argument('--version', default='v1.0-trainval',
                        help='table version: v1.0-trainval, v1.0-test, v1.0-mini, or any '
                             'folder of the dataroot (synthetic world)')
    parser.add_argument('--split', required=True,
                        help='train, val, test, or all (every scene of the version); '
                             'splits.json at the dataroot wins if present')
    parser.add_argument('--out', required=True, help='output folder (OUT/<split>/<token>/)')
    parser.add_argument('--workers', type=int, default=0,
                        help='worker processes (0 or 1: in this process)')
    parser.add_argument('--shard', default=None,
                        help='i/n: prepare only shard i (0-based) of n, by a stable token hash')
    parser.add_argument('--accumulate-sweeps', type=int, default=80,
                        help='LiDAR sweeps before and after the keyframe for accumulated GT')
    parser.add_argument('--radar-sweeps', type=int, default=DEFAULT_MAX_SWEEPS,
                        help='newest radar sweeps per radar (node: radar.max_sweeps)')
    parser.add_argument('--radar-window', type=float, default=DEFAULT_WINDOW_S,
                        help='seconds of radar before the image time (node: radar.window)')
    parser.add_argument('--radars', default='RADAR_FRONT',
                        help='comma-separated radar channels')
    parser.add_argument('--radar-filters', choices=('off', 'on'), default='off',
                        help='devkit radar filters (invalid/dynprop/ambig states)')
    parser.add_argument('--camera', default='CAM_FRONT', help='camera channel')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run(args: argparse.Namespace) -> int:
    from ..data.nuscenes_prep import PrepareOptions, parse_shard, run_prepare

    if args.accumulate_sweeps < 0 or args.radar_sweeps < 1 or args.workers < 0 or \
            args.radar_window < 0:
        raise BadArgument('need --accumulate-sweeps >= 0, --radar-sweeps >= 1, '
                          '--radar-window >= 0, --workers >= 0')
    radars = tuple(r.strip() for r in args.radars.split(',') if r.strip())
    if not radars:
        raise BadArgument('--radars names no radar channel')
    options = PrepareOptions(camera=args.camera, radars=radars, radar_sweeps=args.radar_sweeps,
                             radar_window=args.radar_window,
                             radar_filters=args.radar_filters == 'on',
                             accumulate_sweeps=args.accumulate_sweeps)
    shard = parse_shard(args.shard) if args.shard else None
    manifest = run_prepare(args.dataroot, args.version, args.split, args.out, options,
                           workers=args.workers, shard=shard, progress=not args.no_progress)
    counts = manifest['counts']
    print(f'prepare {args.split}: {counts["new"]} new, {counts["already_done"]} already prepared, '
          f'{counts["skipped"]} skipped of {counts["shard_samples"]} samples -> {args.out}')
    for entry in manifest['skipped']:
        print(f'  skipped {entry["token"]}: {entry["reason"]}')
    # Exit status 1 only when nothing usable exists: every sample of the shard failed.
    return 1 if counts['shard_samples'] and counts['complete'] == 0 else 0
