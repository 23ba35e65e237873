"""``rcdepth quantize``: INT8 post-training quantisation of exported weights, accuracy-gated."""

from __future__ import annotations

import argparse

from ..errors import BadArgument

NAME = 'quantize'
HELP = ('Quantise exported weights to INT8 (static, calibrated on prepared frames), score fp32 '
        'and INT8 on a test split (SPEC 5) and write models/NAME.int8.onnx for '
        '`precision: int8` only if MAE 0-80 m changes by less than the threshold (2 %%).')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--model', required=True, help='exported weights, models/NAME')
    parser.add_argument('--data', required=True, help='prepared folder (rcdepth prepare --out)')
    parser.add_argument('--backend', choices=('openvino', 'onnxruntime'), default='openvino',
                        help='runtime that scores the fp32 and INT8 graphs (both run the '
                             'written graph)')
    parser.add_argument('--calib-split', default='train', help='split of calibration frames')
    parser.add_argument('--calib-frames', type=int, default=16,
                        help='evenly spaced calibration frames')
    parser.add_argument('--split', default='test', help='split that is scored')
    parser.add_argument('--max-samples', type=int, default=0,
                        help='score this many evenly spaced samples (0: all)')
    parser.add_argument('--threshold', type=float, default=0.02,
                        help='largest relative MAE 0-80 m change that ships INT8')
    parser.add_argument('--no-write', action='store_true',
                        help='measure only; never write the INT8 graph')
    parser.add_argument('--json', default=None, help='write the report to this JSON file')
    parser.add_argument('--threads', type=int, default=1, help='CPU threads of every runtime')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run(args: argparse.Namespace) -> int:
    import torch

    from ..quantize import format_report, quantize_weights
    from ..training.evaluate import write_json_atomic

    if args.threads < 1:
        raise BadArgument(f'--threads must be >= 1, got {args.threads}')
    torch.set_num_threads(args.threads)
    report = quantize_weights(args.model, args.data, backend=args.backend,
                              calib_split=args.calib_split, calib_frames=args.calib_frames,
                              split=args.split, max_samples=args.max_samples,
                              threshold=args.threshold, write=not args.no_write,
                              progress=not args.no_progress)
    print(format_report(report))
    if args.json:
        write_json_atomic(args.json, report)
        print(f'wrote {args.json}')
    return 0
