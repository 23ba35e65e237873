"""``rcdepth bench``: latency and memory of variants x backends x input sizes."""

from __future__ import annotations

import argparse

from ..errors import BadArgument, BadInputFile, MissingData

NAME = 'bench'
HELP = ('Time random-init networks (variants x backends x modes x sizes, round-robin) and '
        'report median/p90 latency, peak memory and ratios; optionally write JSON.')


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``HxW`` (e.g. ``352x704``) into ``(height, width)``."""
    try:
        height, width = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'size must be HxW, e.g. 352x704, got {text!r}')
    if height <= 0 or width <= 0:
        raise argparse.ArgumentTypeError(f'size must be positive, got {text!r}')
    return height, width


def _names(values: list[str]) -> list[str]:
    """Accept both ``a b`` and ``a,b``."""
    return [name for value in values for name in value.split(',') if name]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--variants', nargs='+', default=['lircdepth', 'xdrcdepth'],
                        help='variant names (space or comma separated); the first is the '
                             'reference for the ratios')
    parser.add_argument('--backends', nargs='+', default=['torch'],
                        help='torch, onnxruntime and/or openvino (space or comma separated); '
                             'all run interleaved in one round-robin')
    parser.add_argument('--size', action='append', type=parse_size, default=None,
                        metavar='HxW',
                        help='input size; repeat for several; 352x704 when none is given')
    parser.add_argument('--runs', type=int, default=20, help='timed calls per case')
    parser.add_argument('--warmup', type=int, default=3, help='untimed calls per case first')
    parser.add_argument('--batch', type=int, default=1, help='images per call')
    parser.add_argument('--device', default='auto', help='auto, cpu or cuda[:N]')
    parser.add_argument('--precision', nargs='+', default=['fp32'],
                        help='fp32, fp16 and/or int8, crossed with --backends; combinations '
                             'that do not exist on the device are left out and named (fp16: '
                             'torch on CUDA; int8: onnxruntime/openvino on CPU, calibrated on '
                             'synthetic frames)')
    parser.add_argument('--modes', nargs='+', default=['optimized'],
                        help='optimized (the inference rewrite + channels_last on CPU, what '
                             'the node runs) and/or eager (the network as trained, the '
                             'baseline); space or comma separated')
    parser.add_argument('--channels-last', choices=('auto', 'on', 'off'), default='auto',
                        help='memory format of the optimized torch cases; auto: on for CPU, '
                             'off for CUDA')
    parser.add_argument('--threads', type=int, default=None,
                        help="torch CPU threads (onnxruntime gets as many); unset keeps "
                             "torch's choice")
    parser.add_argument('--seed', type=int, default=0, help='seed of weights and inputs')
    parser.add_argument('--json', default=None, metavar='OUT',
                        help='write the results as a JSON list to this file')
    parser.add_argument('--markdown', action='store_true',
                        help='print the table as markdown (for docs/BENCHMARKS.md)')
    parser.add_argument('--from-json', default=None, metavar='IN',
                        help='print the table of an earlier --json file instead of timing')
    parser.add_argument('--breakdown', action='store_true',
                        help='also time each part of the torch networks (encoders, fusion, '
                             'decoder stages, heads) and print a per-part table')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from ..backends import BACKENDS, PRECISIONS
    from ..bench import (
        MODES,
        build_random_models,
        format_breakdown,
        format_markdown,
        format_table,
        run_benchmark,
    )

    formatter = format_markdown if args.markdown else format_table
    if args.from_json:
        path = Path(args.from_json)
        if not path.is_file():
            raise MissingData(f'benchmark JSON not found: {path}')
        try:
            results = json.loads(path.read_text())
            print(formatter(results))
            if args.breakdown:
                print(format_breakdown(results))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise BadInputFile(f'{path} is not an rcdepth bench JSON list: {exc}') from None
        return 0
    backends = _names(args.backends)
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise BadArgument(f'unknown backend(s) {", ".join(unknown)}; known: {", ".join(BACKENDS)}')
    precisions = _names(args.precision)
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        raise BadArgument(f'unknown precision(s) {", ".join(unknown)}; known: '
                          f'{", ".join(PRECISIONS)}')
    modes = _names(args.modes)
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise BadArgument(f'unknown mode(s) {", ".join(unknown)}; known: {", ".join(MODES)}')
    if args.threads is not None:
        if args.threads < 1:
            raise BadArgument(f'--threads must be >= 1, got {args.threads}')
        torch.set_num_threads(args.threads)
    channels_last = {'auto': None, 'on': True, 'off': False}[args.channels_last]
    skipped: list[str] = []
    models = build_random_models(_names(args.variants), seed=args.seed)
    results = run_benchmark(models, backends=backends, sizes=args.size or [(352, 704)],
                            runs=args.runs, warmup=args.warmup, device=args.device,
                            precisions=precisions, batch=args.batch, skipped=skipped,
                            channels_last=channels_last, seed=args.seed,
                            progress=not args.quiet, modes=modes, breakdown=args.breakdown)
    print(formatter(results))
    for line in skipped:
        print(f'left out: {line}')
    if args.breakdown:
        print(format_breakdown(results))
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + '.partial')
        partial.write_text(json.dumps(results, indent=2) + '\n')
        partial.replace(out)  # never a half-written file under the final name
        print(f'wrote {out}')
    return 0
