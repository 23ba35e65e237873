"""``rcdepth nuscenes2bag``: convert nuScenes scenes (or the synthetic world) to a ROS 2 bag."""

from __future__ import annotations

import argparse

NAME = 'nuscenes2bag'
HELP = ('Convert nuScenes scenes (keyframes and sweeps: cameras as CompressedImage + '
        'camera_info, radars and LiDAR as PointCloud2, /tf, /tf_static, /odom) to a rosbag2 '
        'MCAP bag that ros2 bag play replays, plus the calibration YAML rcdepth_node reads.')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--dataroot', required=True, help='nuScenes dataroot')
    parser.add_argument('--version', required=True,
                        help='table folder, e.g. v1.0-mini, v1.0-trainval, v1.0-sim')
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument('--scene', nargs='+', metavar='NAME', help='scene names to convert')
    which.add_argument('--all', action='store_true', help='convert every scene')
    parser.add_argument('--out', required=True, help='bag directory to create')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing bag')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')


def run(args: argparse.Namespace) -> int:
    from ..bags.nuscenes2bag import convert

    summary = convert(args.dataroot, args.version, args.out,
                      scenes=None if args.all else args.scene, overwrite=args.overwrite,
                      progress=not args.no_progress)
    print(f'rcdepth nuscenes2bag: wrote {summary["messages"]} messages of '
          f'{len(summary["scenes"])} scene(s) to {summary["bag"]}')
    for topic, count in summary['topics'].items():
        print(f'  {topic}: {count}')
    print(f'  calibration for rcdepth_node: {summary["calibration"]}')
    if summary['rigs'] > 1:
        print(f'  note: the scenes use {summary["rigs"]} different sensor rigs; /tf_static '
              'follows them, the calibration file holds the first one')
    return 0
