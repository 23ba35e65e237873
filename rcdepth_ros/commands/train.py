"""``rcdepth train``: train the teacher or a (distilled) student from a YAML config."""

from __future__ import annotations

import argparse

NAME = 'train'
HELP = ('Train a network from a config (config/train/*.yaml) with optional profile and '
        'key.sub=value overrides; resumes automatically from OUT/last.json. Works under '
        'torchrun for multi-GPU / multi-node DistributedDataParallel.')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--config', required=True, help='training config YAML')
    parser.add_argument('--profile', choices=('tiny', 'cpu', 'paper'), default=None,
                        help='size profile applied over the file (before overrides)')
    parser.add_argument('--resume', action='store_true',
                        help='require a checkpoint to resume (default: resume if OUT/last.json '
                             'exists, else start)')
    parser.add_argument('--print-config', action='store_true',
                        help='print the resolved config as YAML and exit')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('overrides', nargs='*', metavar='KEY=VALUE',
                        help='config overrides, e.g. optim.lr=1e-4 data.crop=192,384 '
                             'output_dir=runs/x')


def run(args: argparse.Namespace) -> int:
    import yaml

    from ..training.config import config_to_json, load_train_config

    config = load_train_config(args.config, args.profile, args.overrides)
    if args.print_config:
        print(yaml.safe_dump(config_to_json(config), sort_keys=False), end='')
        return 0
    from ..training.trainer import train

    result = train(config, resume=True if args.resume else None,
                   progress=not args.no_progress)
    if not result.is_main:  # under torchrun only rank 0 reports
        return 0
    if result.step == result.resumed_from and result.step >= result.total_steps:
        print(f'{config.name}: already complete at step {result.step} ({result.output_dir})')
    best = result.best
    if best is not None:
        print(f'{config.name}: step {result.step}/{result.total_steps}, best val '
              f'{best["metric"]} = {best["value"]:.4f} m at step {best["step"]} -> '
              f'{result.output_dir}/best.json')
    else:
        print(f'{config.name}: step {result.step}/{result.total_steps} -> '
              f'{result.output_dir}/last.json')
    return 0
