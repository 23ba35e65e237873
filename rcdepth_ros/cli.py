"""The ``rcdepth`` command: one entry point, one subcommand per module in ``commands/``.

Each module in :mod:`rcdepth_ros.commands` defines ``NAME``, ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``. Command modules import heavy libraries (torch, rclpy) inside
``run`` only, so ``rcdepth --help`` stays fast.

Errors: a :class:`~rcdepth_ros.errors.UserError` (bad input file, missing data, bad
argument) or a file the system cannot open (:data:`USER_ERRORS`) is printed as one line,
exit code 1; ``--debug`` adds its traceback. Anything else is a bug of ours: its traceback is
printed, then one line saying so, exit code 1.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback

from . import commands
from .errors import UserError

# What the user can fix: our own family, and files the operating system could not open.
USER_ERRORS = (UserError, FileNotFoundError, FileExistsError, IsADirectoryError,
               NotADirectoryError, PermissionError)


def _command_modules():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith('_'):
            continue
        yield importlib.import_module(f'{commands.__name__}.{info.name}')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='rcdepth',
        description='Radar-camera metric depth: simulate, prepare, train, evaluate, export, '
                    'benchmark, convert bags and run the demo.',
    )
    parser.add_argument('--debug', action='store_true',
                        help='print the traceback of user errors too (bugs always print it)')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    for module in sorted(_command_modules(), key=lambda m: m.NAME):
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, '_run', None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print('rcdepth: interrupted', file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        if args.debug:
            traceback.print_exc()
        print(f'rcdepth {args.command}: error: {exc}', file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug: show where, then say so in one line
        traceback.print_exc()
        print(f'rcdepth {args.command}: internal error ({type(exc).__name__}), a bug in '
              'rcdepth_ros: please report it with the traceback above', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
