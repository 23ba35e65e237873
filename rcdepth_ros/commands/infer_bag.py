"""``rcdepth infer-bag``: depth and uncertainty for every image of a bag, without ROS."""

from __future__ import annotations

import argparse

from ..ros import params

NAME = 'infer-bag'
HELP = ('Run the rcdepth_node frame pipeline over a bag without ROS (same radar pairing, '
        'ego-motion compensation and model) and write /<camera>/depth, /<camera>/uncertainty '
        '(32FC1), /<camera>/depth_colored (bgr8) and /<camera>/camera_info to a new bag.')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('input', help='input rosbag2 directory (e.g. from nuscenes2bag)')
    parser.add_argument('output', help='output bag directory to create')
    parser.add_argument('--params-file', default=None, metavar='YAML',
                        help="the node's parameters file (e.g. config/rcdepth.yaml), applied "
                             'as the node applies it; the options below override it')
    parser.add_argument('--model', default=None,
                        help='weights path without suffix (node: model_path; unset: shipped '
                             'demo weights)')
    parser.add_argument('--cameras', '--camera', nargs='+', default=['CAM_FRONT'],
                        metavar='CAMERA',
                        help='camera channels, or "all": every camera of the bag with images '
                             'and camera_info')
    parser.add_argument('--radars', nargs='*', default=['RADAR_FRONT'],
                        help='radar channels or topics (none: camera only)')
    parser.add_argument('--calibration', default=None,
                        help='calibration YAML (default: extrinsics.calibration_path, else '
                             "the bag's calibration.yaml, else /tf_static)")
    parser.add_argument('--device', default=None, choices=params.SPECS_BY_NAME['device'].choices,
                        help=f'node: device (default {params.default("device")})')
    parser.add_argument('--backend', default=None,
                        choices=params.SPECS_BY_NAME['backend'].choices,
                        help=f'inference runtime (node: backend, default '
                             f'{params.default("backend")})')
    parser.add_argument('--precision', default=None,
                        choices=params.SPECS_BY_NAME['precision'].choices,
                        help='fp16: torch on CUDA; int8: onnxruntime/openvino with the graph of '
                             f'rcdepth quantize (node: precision, default '
                             f'{params.default("precision")})')
    parser.add_argument('--window', type=float, default=None,
                        help='seconds of radar before the image time (node: radar.window, '
                             f'default {params.default("radar.window")})')
    parser.add_argument('--max-sweeps', type=int, default=None,
                        help='newest sweeps per radar (node: radar.max_sweeps, default '
                             f'{params.default("radar.max_sweeps")})')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing bag')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')


def run(args: argparse.Namespace) -> int:
    from ..bags.infer_bag import infer_bag

    cameras = 'all' if args.cameras == ['all'] else tuple(args.cameras)
    summary = infer_bag(args.input, args.output, model=args.model, cameras=cameras,
                        radars=tuple(args.radars), device=args.device,
                        backend=args.backend, precision=args.precision,
                        overwrite=args.overwrite, progress=not args.no_progress,
                        calibration=args.calibration, window=args.window,
                        max_sweeps=args.max_sweeps, params_file=args.params_file)
    skipped = ', '.join(f'{k} {v}' for k, v in sorted(summary['skipped'].items()))
    print(f'rcdepth infer-bag: {summary["frames"]} of {summary["images"]} images of '
          f'{len(summary["cameras"])} camera(s) -> {summary["bag"]} (model '
          f'{summary["model_ms_mean"]:.0f} ms/frame, radar points '
          f'{summary["radar_points_mean"]:.0f}/frame, calibration {summary["calibration"]}, '
          f'ego motion {summary["ego_motion"]})' + (f'; skipped: {skipped}' if skipped else ''))
    return 0
