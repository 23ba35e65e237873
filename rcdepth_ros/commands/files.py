"""``rcdepth files``: where the shipped weights, parameters, launch and RViz files are."""

from __future__ import annotations

import argparse

NAME = 'files'
HELP = ('Print the paths of the files rcdepth_ros ships (demo weights, the node\'s parameters '
        'file, launch file, RViz config) as this install finds them: ament index, then '
        'sys.prefix/share/rcdepth_ros (pip), then the source tree. With one name, print only '
        'that path, e.g. rcdepth_node --ros-args --params-file "$(rcdepth files params)".')


def _shipped() -> dict:
    from .. import resources
    from ..models.io import default_model_path

    return {
        'weights': default_model_path,
        'params': resources.params_file,
        'launch': resources.launch_file,
        'rviz': resources.rviz_config,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('name', nargs='?', choices=('weights', 'params', 'launch', 'rviz'),
                        help='print only this path (weights: base path without suffix); '
                             'default: all of them and the places looked at')


def run(args: argparse.Namespace) -> int:
    from .. import resources

    shipped = _shipped()
    if args.name:
        print(shipped[args.name]())  # FileNotFoundError: one line naming the places
        return 0
    for place in resources.places():
        print(f'looked in: {place.describe()}')
    for name, find in shipped.items():
        print(f'{name:8s} {find()}')
    return 0
