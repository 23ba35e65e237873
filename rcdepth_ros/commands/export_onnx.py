"""``rcdepth export-onnx``: safetensors weights to an ONNX model with depth and sigma outputs."""

from __future__ import annotations

import argparse

from .bench import parse_size

NAME = 'export-onnx'
HELP = ('Export trained weights (safetensors + JSON) to ONNX with outputs depth and sigma '
        '(dynamic batch and H/W by default) and check it against PyTorch with onnxruntime.')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--weights', required=True,
                        help='weights path as written by save_weights (.safetensors + .json)')
    parser.add_argument('--out', required=True, help='output .onnx file')
    parser.add_argument('--size', type=parse_size, default=(352, 704), metavar='HxW',
                        help='trace size, multiples of 32 (with --static: the only size)')
    parser.add_argument('--opset', type=int, default=17, help='ONNX opset version')
    parser.add_argument('--static', action='store_true',
                        help='fix H and W to --size (batch stays dynamic)')
    parser.add_argument('--dynamo', action='store_true',
                        help='use the torch.export-based exporter instead of the legacy one')
    parser.add_argument('--no-check', action='store_true',
                        help='skip the onnxruntime vs PyTorch comparison on a random input')


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..bench import synthetic_inputs
    from ..inference import DepthEstimator
    from ..models import load_model
    from ..models.onnx_export import export_onnx

    model, config, _ = load_model(args.weights, device='cpu')
    height, width = args.size
    path = export_onnx(model, args.out, height, width, opset=args.opset,
                       dynamic=not args.static, config=config, dynamo=args.dynamo)
    print(f'wrote {path} ({path.stat().st_size / 2**20:.1f} MiB, opset {args.opset}, '
          f'{"static" if args.static else "dynamic"} H/W)')
    if args.no_check:
        return 0
    images, radar = synthetic_inputs(1, height, width)
    reference = DepthEstimator(model, device='cpu').predict(images, radar)
    exported = DepthEstimator(None, device='cpu', backend='onnxruntime',
                              onnx_path=path).predict(images, radar)
    err = float(np.max(np.abs(exported.depth - reference.depth)))
    print(f'check: max |depth onnxruntime - torch| = {err:.2e} m at {height}x{width}')
    if not np.allclose(exported.depth, reference.depth, rtol=1e-3, atol=1e-3):
        raise ValueError(f'onnxruntime output differs from PyTorch by up to {err:.3g} m')
    return 0
