"""``rcdepth sim``: build a synthetic radar-camera world in nuScenes format."""

from __future__ import annotations

import argparse
import os

from ..errors import BadArgument

NAME = 'sim'
HELP = ('Simulate procedural driving scenes (cameras, radars, LiDAR, 3-D boxes) and write '
        'them as a nuScenes dataset that the nuscenes-devkit loads.')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', required=True, help='dataroot to create')
    parser.add_argument('--scenes', type=int, default=2, help='number of scenes')
    parser.add_argument('--seed', type=int, default=0, help='seed: same seed, same bytes')
    parser.add_argument('--night-fraction', type=float, default=0.25,
                        help='share of night scenes (dark, noisy images; radar unchanged)')
    parser.add_argument('--image-scale', type=float, default=0.4,
                        help='image size relative to 900x1600; intrinsics are scaled to match')
    parser.add_argument('--duration', type=float, default=8.0,
                        help='scene length in seconds (keyframes at 2 Hz)')
    parser.add_argument('--version', default='v1.0-sim', help='table folder name, v1.0-<name>')
    parser.add_argument('--cameras', default='all',
                        help="comma-separated camera channels, or 'all' (the six of nuScenes)")
    parser.add_argument('--camera-sweeps', default='CAM_FRONT',
                        help="cameras that also get their 12 Hz sweeps (others: keyframes "
                             "only), comma-separated, 'all' or 'none'")
    parser.add_argument('--workers', type=int, default=min(2, os.cpu_count() or 1),
                        help='worker processes (output does not depend on it)')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')


def _channels(value: str, every: tuple[str, ...]) -> tuple[str, ...]:
    if value == 'all':
        return every
    if value == 'none':
        return ()
    return tuple(c.strip() for c in value.split(',') if c.strip())


def run(args: argparse.Namespace) -> int:
    from ..data.sim import CAMERAS, RADARS
    from ..data.sim.writer import SimConfig, build_world

    cameras = _channels(args.cameras, CAMERAS)
    config = SimConfig(scenes=args.scenes, seed=args.seed, night_fraction=args.night_fraction,
                       image_scale=args.image_scale, duration=args.duration,
                       version=args.version, cameras=cameras,
                       camera_sweeps=tuple(c for c in _channels(args.camera_sweeps, CAMERAS)
                                           if c in cameras),
                       radars=RADARS)
    if args.workers < 1:
        raise BadArgument(f'--workers must be at least 1, got {args.workers}')
    root = build_world(config, args.out, workers=args.workers, progress=not args.no_progress)
    print(f'rcdepth sim: wrote {config.scenes} scene(s) to {root} ({config.version})')
    return 0
