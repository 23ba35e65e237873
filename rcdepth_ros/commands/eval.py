"""``rcdepth eval``: SPEC 5 metrics of a checkpoint or exported model on a prepared split."""

from __future__ import annotations

import argparse

NAME = 'eval'
HELP = ('Evaluate a training checkpoint or an exported model on a prepared split (SPEC 5: '
        'per-image metrics averaged over images, 0-50/70/80 m, AUSE and calibration); prints '
        'a table and optionally writes JSON.')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--checkpoint', required=True,
                        help='run folder, OUT/best(.json), OUT/last(.json) or an exported '
                             'model (models/NAME)')
    parser.add_argument('--data', required=True, help='prepared folder (rcdepth prepare --out)')
    parser.add_argument('--split', default='test', help='split to evaluate')
    parser.add_argument('--json', default=None, help='write every metric to this JSON file')
    parser.add_argument('--max-depths', type=float, nargs='+', default=[50.0, 70.0, 80.0],
                        help='evaluation ranges 0-D m')
    parser.add_argument('--dataroot', default=None,
                        help='nuScenes dataroot, if moved since preparation')
    parser.add_argument('--max-samples', type=int, default=0,
                        help='evaluate this many evenly spaced samples (0: all)')
    parser.add_argument('--camera-only', choices=('auto', 'yes', 'no'), default='auto',
                        help="zero the radar input ('auto': as the model was trained)")
    parser.add_argument('--device', default='auto', help='auto, cpu or cuda')
    parser.add_argument('--backend', choices=('torch', 'onnxruntime', 'openvino'),
                        default='torch', help='runtime that runs the network (graph '
                        'backends on CPU)')
    parser.add_argument('--precision', choices=('fp32', 'int8'), default='fp32',
                        help='int8: the graph rcdepth quantize wrote next to exported weights')
    parser.add_argument('--reference', default=None,
                        help='another model (the teacher: run folder, checkpoint or export): '
                             'also report the mean |depth - its depth|, on the GT pixels and '
                             'on every pixel')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run(args: argparse.Namespace) -> int:
    from ..training.evaluate import evaluate_checkpoint

    camera_only = None if args.camera_only == 'auto' else args.camera_only == 'yes'
    report = evaluate_checkpoint(args.checkpoint, args.data, args.split,
                                 max_depths=args.max_depths, json_path=args.json,
                                 dataroot=args.dataroot, max_samples=args.max_samples,
                                 camera_only=camera_only, device=args.device,
                                 progress=not args.no_progress, backend=args.backend,
                                 precision=args.precision, reference=args.reference)
    from ..training.evaluate import format_table

    model = report['model']
    print(f'{model["variant"]} ({model["parameters"] / 1e6:.2f} M parameters) on '
          f'{args.split}: {report["images"]} images'
          + (' (camera only)' if report['camera_only'] else ''))
    print(format_table(report['ranges']))
    if 'reference' in report:
        from ..training.metrics import EVERY_PIXEL

        gaps = report['reference']
        per_range = ', '.join(f'{name} m {row["mae"]:.4f}' for name, row in gaps.items()
                              if name not in ('checkpoint', EVERY_PIXEL))
        print(f'mean |depth - reference depth| (reference {args.reference}): on the GT pixels '
              f'{per_range}; on every pixel {gaps[EVERY_PIXEL]["mae"]:.4f} m')
    if args.json:
        print(f'wrote {args.json}')
    return 0
