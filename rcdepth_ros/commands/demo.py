"""``rcdepth demo``: synthetic world (or nuScenes) -> bag -> live node -> depth bag + picture."""

from __future__ import annotations

import argparse

from ..errors import BadArgument
from ..ros import params

NAME = 'demo'
HELP = ('One-command demo: build a small synthetic world (or take a nuScenes scene), convert '
        'it to a ROS 2 bag, start rcdepth_node, replay the bag into it, record its depth and '
        'uncertainty into OUT/depth_bag, and write OUT/demo.png (image | radar | depth | '
        'uncertainty | error vs LiDAR) and OUT/metrics.json (SPEC 5 metrics vs LiDAR).')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', default='out/demo',
                        help='output folder (new or empty; out/ is git-ignored in the repo)')
    parser.add_argument('--quick', action='store_true',
                        help='a shorter scene at a smaller image size (about a minute on 2 '
                             'CPU cores)')
    parser.add_argument('--nuscenes', default=None, metavar='DIR',
                        help='use this nuScenes dataroot instead of a synthetic world')
    parser.add_argument('--scene', default=None,
                        help='scene name with --nuscenes; None = the first scene')
    parser.add_argument('--version', default=None,
                        help='nuScenes table version with --nuscenes, e.g. v1.0-mini; '
                             'None = the only one in DIR')
    parser.add_argument('--model', default=None, metavar='PATH',
                        help='weights path without suffix (PATH.safetensors + PATH.json); '
                             'None = the shipped models/xdrcdepth_demo')
    parser.add_argument('--params-file', default=None, metavar='YAML',
                        help="the node's parameters file (e.g. config/rcdepth.yaml): the demo's "
                             'node runs with it; the demo sets only its topics, calibration '
                             'and QoS, and the options here override the file')
    parser.add_argument('--device', choices=params.SPECS_BY_NAME['device'].choices,
                        default=None,
                        help=f'inference device of the node (default {params.default("device")})')
    parser.add_argument('--backend', default=None,
                        choices=params.SPECS_BY_NAME['backend'].choices,
                        help='inference runtime of the node (its backend parameter, default '
                             f'{params.default("backend")})')
    parser.add_argument('--precision', default=None,
                        choices=params.SPECS_BY_NAME['precision'].choices,
                        help="the node's precision parameter (default "
                             f'{params.default("precision")})')
    parser.add_argument('--surround', action='store_true',
                        help='six cameras and five radars (synthetic world), one node serving '
                             'all six; adds OUT/surround.png: the six depth maps as points from '
                             'above with the LiDAR, next to the per-camera depth panels')
    parser.add_argument('--seed', type=int, default=0, help='seed of the synthetic world')
    parser.add_argument('--rate', type=float, default=1.0,
                        help='replay rate (1 = recorded speed); replay also pauses after each '
                             'camera keyframe until its depth is back')
    parser.add_argument('--domain-id', type=int, default=None,
                        help='ROS_DOMAIN_ID of the run; None = 101 + pid %% 100')
    parser.add_argument('--timeout', type=float, default=120.0,
                        help='seconds to wait for the depth of one keyframe')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the outputs of an earlier demo in --out')
    parser.add_argument('--no-progress', action='store_true', help='hide progress bars')


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..demo import DemoOptions, print_report, run_demo

    if args.domain_id is not None and not 0 <= args.domain_id <= 232:
        raise BadArgument(f'--domain-id must lie in [0, 232], got {args.domain_id}')
    if args.timeout <= 0:
        raise BadArgument(f'--timeout must be > 0, got {args.timeout}')
    options = DemoOptions(
        out=Path(args.out), quick=args.quick,
        nuscenes=Path(args.nuscenes) if args.nuscenes else None, scene=args.scene,
        version=args.version, model=args.model, overwrite=args.overwrite, seed=args.seed,
        device=args.device, backend=args.backend, precision=args.precision, rate=args.rate,
        params_file=Path(args.params_file) if args.params_file else None,
        surround=args.surround,
        domain_id=args.domain_id,
        frame_timeout=args.timeout, progress=not args.no_progress)
    report = run_demo(options)  # a DemoError is a UserError: one line from the CLI
    print_report(report)
    return 0
