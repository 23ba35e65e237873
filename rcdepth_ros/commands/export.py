"""``rcdepth export``: a training checkpoint to deployable weights (safetensors + JSON)."""

from __future__ import annotations

import argparse

NAME = 'export'
HELP = ('Export a training checkpoint to models/NAME.safetensors + models/NAME.json (loadable '
        'by the node, DepthEstimator and rcdepth bench), optionally fp16 and with a model card.')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--checkpoint', required=True,
                        help='run folder (best preferred), OUT/best(.json) or OUT/last(.json)')
    parser.add_argument('--out', required=True, help='output path without suffix, models/NAME')
    parser.add_argument('--fp16', action='store_true', help='store float tensors as float16')
    parser.add_argument('--card', action='store_true', help='also write models/NAME.md')
    parser.add_argument('--metrics', default=None,
                        help='rcdepth eval JSON to quote in the model card')
    parser.add_argument('--training-data', default=None,
                        help='one-line description of the training data (default: from the '
                             'prepared data recorded in the checkpoint)')


def run(args: argparse.Namespace) -> int:
    from ..training.export import export_checkpoint

    paths = export_checkpoint(args.checkpoint, args.out, half=args.fp16, card=args.card,
                              metrics_path=args.metrics, training_data=args.training_data)
    for path in paths:
        print(f'wrote {path} ({path.stat().st_size / 2**20:.2f} MiB)')
    return 0
