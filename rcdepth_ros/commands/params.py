"""``rcdepth params``: the node's parameters as declared (YAML file or documentation table)."""

from __future__ import annotations

import argparse

NAME = 'params'
HELP = ('Print the parameters of rcdepth_node from their one declaration: the parameters '
        'file (config/rcdepth.yaml) or the markdown table of docs/ARCHITECTURE.md.')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument('--yaml', action='store_true',
                       help='the parameters file with the shipped values (default)')
    which.add_argument('--markdown', action='store_true', help='the documentation table')


def run(args: argparse.Namespace) -> int:
    from ..ros.params import params_markdown, params_yaml

    print(params_markdown() if args.markdown else params_yaml(), end='')
    return 0
