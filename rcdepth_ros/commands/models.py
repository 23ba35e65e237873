"""``rcdepth models``: list the network variants with their parameters and MACs."""

from __future__ import annotations

import argparse

NAME = 'models'
HELP = ('List the network variants (teacher and students) with parameter counts and '
        'multiply-accumulates at 352x704 (training crop) and 896x1600 (nuScenes test).')
SIZES = ((352, 704), (896, 1600))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--json', action='store_true',
                        help='print a JSON list of objects instead of a table')
    parser.add_argument('--variants', nargs='+', metavar='NAME', default=None,
                        help='variants to list (default: all registered)')
    parser.add_argument('--no-macs', action='store_true',
                        help='skip the MAC counts (each takes a few seconds on CPU)')
    parser.add_argument('--thop-convention', action='store_true',
                        help='count transposed convs over their output like the thop '
                             'profiler behind the papers\' figures')


def run(args: argparse.Namespace) -> int:
    import json

    import torch

    from ..models import VARIANTS, build_model, config_macs, get_variant
    from ..models.macs import format_count

    names = args.variants or list(VARIANTS)
    configs = [get_variant(name) for name in names]  # ValueError for unknown names
    rows = []
    for name, config in zip(names, configs):
        with torch.device('meta'):
            model = build_model(config)
        row = {'variant': name, 'params': sum(p.numel() for p in model.parameters())}
        for height, width in SIZES:
            key = f'macs_{height}x{width}'
            row[key] = None if args.no_macs else config_macs(
                config, height, width, transposed_as_conv=args.thop_convention)
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ['variant', 'params'] + [f'macs_{h}x{w}' for h, w in SIZES]
    table = [header] + [[row['variant'], format_count(row['params'])]
                        + ['-' if row[k] is None else format_count(row[k]) for k in header[2:]]
                        for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print('  '.join(cell.ljust(w) if i == 0 else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(line, widths))))
    return 0
