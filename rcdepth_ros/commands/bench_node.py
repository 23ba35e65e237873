"""``rcdepth bench-node``: end-to-end latency of ``rcdepth_node`` over real ROS topics."""

from __future__ import annotations

import argparse

NAME = 'bench-node'
HELP = ('Start rcdepth_node as a process, publish synthetic frames one at a time and report '
        'end-to-end latency (image published -> depth received) and the node overhead '
        '(end-to-end minus the model time the node reports), median and p90.')


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``HxW`` (e.g. ``352x704``) into ``(height, width)``."""
    try:
        height, width = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'size must be HxW, e.g. 352x704, got {text!r}')
    if height < 8 or width < 8:
        raise argparse.ArgumentTypeError(f'size must be at least 8x8, got {text!r}')
    return height, width


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--size', type=parse_size, default=(352, 704), metavar='HxW',
                        help='image size published to the node')
    parser.add_argument('--frames', type=int, default=30, help='timed frames')
    parser.add_argument('--warmup', type=int, default=3, help='untimed frames first')
    parser.add_argument('--model', default=None,
                        help='weights path (no suffix); default: the shipped demo weights, '
                             'else a random-init --variant written to a temporary folder')
    parser.add_argument('--variant', default='xdrcdepth',
                        help='variant to random-initialise when no weights are found')
    parser.add_argument('--device', default='auto', help='auto, cpu or cuda')
    parser.add_argument('--precision', choices=('fp32', 'fp16'), default='fp32')
    parser.add_argument('--domain-id', type=int, default=None,
                        help='ROS_DOMAIN_ID of the run (default: derived from the pid)')
    parser.add_argument('--timeout', type=float, default=120.0,
                        help='seconds to wait for the node to start and for each frame')
    parser.add_argument('--json', default=None, metavar='OUT', help='write the results here')


def _stats(values: list[float]) -> dict[str, float]:
    import numpy as np

    arr = np.asarray(values, dtype=np.float64)
    return {'median': float(np.median(arr)), 'p90': float(np.percentile(arr, 90)),
            'min': float(arr.min()), 'max': float(arr.max())}


def _settle(client, timeout: float) -> None:
    """Wait until every warm-up frame is done, so model_time message k belongs to frame k."""
    import time

    keys = ('depth', 'model_time', 'processing_time')
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = [len(client.got[k]) for k in keys]
        client.wait(lambda: False, 0.5)  # spin half a second to collect late messages
        if counts == [len(client.got[k]) for k in keys] and len(set(counts)) == 1:
            return
    raise ValueError('the node kept publishing after the warm-up frames')


def _weights(args: argparse.Namespace, folder) -> tuple[str, str]:
    """Weights path and where it came from (given, demo, or random init)."""
    from ..pipeline import resolve_model_path

    if args.model:
        return str(resolve_model_path(args.model)), 'given'
    try:
        return str(resolve_model_path(None)), 'demo'
    except FileNotFoundError:
        pass
    import torch

    from ..models import VARIANTS, build_model, save_weights

    if args.variant not in VARIANTS:
        raise ValueError(f'unknown variant {args.variant!r} (one of {sorted(VARIANTS)})')
    torch.manual_seed(0)
    path = folder / f'{args.variant}_random'
    save_weights(build_model(VARIANTS[args.variant]).eval(), VARIANTS[args.variant], path,
                 metadata={'note': 'random init for bench-node'})
    return str(path), 'random-init'


def run(args: argparse.Namespace) -> int:
    import json
    import os
    from pathlib import Path
    import platform
    import tempfile
    import time

    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    import yaml

    from ..ros.harness import (
        NodeClient,
        NodeProcess,
        calibration_dict,
        ros_environment,
        stamp_ns,
        write_params_file,
    )

    if args.frames < 1 or args.warmup < 0:
        raise ValueError('need --frames >= 1 and --warmup >= 0')
    height, width = args.size
    domain = args.domain_id if args.domain_id is not None else 1 + os.getpid() % 100
    with tempfile.TemporaryDirectory(prefix='rcdepth_bench_node_') as tmp:
        folder = Path(tmp)
        weights, source = _weights(args, folder)
        calib = folder / 'calibration.yaml'
        calib.write_text(yaml.safe_dump(calibration_dict(height, width)))
        params = write_params_file(folder / 'params.yaml', {
            'model_path': weights, 'device': args.device, 'precision': args.precision,
            'image_type': 'raw', 'radar_topics': ['~/input/radar'],
            'extrinsics.calibration_path': str(calib), 'odom_topic': '~/input/odom',
            'qos.reliability': 'reliable', 'output.colored': False})
        env = ros_environment(domain, folder)
        namespace = f'/bench{os.getpid()}'
        proc = NodeProcess(params, env, namespace, folder / 'node.log')
        os.environ['FASTDDS_BUILTIN_TRANSPORTS'] = 'LARGE_DATA'
        os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
        context = Context()
        rclpy.init(context=context, domain_id=domain)
        node = rclpy.create_node('bench_node_client', context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        try:
            client = NodeClient(executor, node, namespace, proc, height, width,
                                outputs=('depth', 'model_time', 'processing_time'),
                                startup_timeout=args.timeout)
            if not client.wait(lambda: client.pub_image.get_subscription_count() > 0,
                               args.timeout):
                raise ValueError('rcdepth_node did not activate:\n' + proc.log()[-2000:])
            for _ in range(args.warmup):
                client.serve_one(timeout=args.timeout)
            _settle(client, args.timeout)
            e2e, model, total = [], [], []
            for i in range(args.frames):
                n_model = len(client.got['model_time'])
                n_total = len(client.got['processing_time'])
                stamp = client.publish_frame()
                sent = client.last_image_sent

                def arrived() -> list:
                    return [t for t, m in client.got['depth'] if stamp_ns(m.header) == stamp]

                ok = client.wait(lambda: arrived() and len(client.got['model_time']) > n_model
                                 and len(client.got['processing_time']) > n_total, args.timeout)
                if not ok:
                    raise ValueError(f'frame {i}: no depth within {args.timeout} s\n'
                                     + proc.log()[-2000:])
                e2e.append((arrived()[0] - sent) * 1e3)
                model.append(float(client.got['model_time'][n_model][1].data))
                total.append(float(client.got['processing_time'][n_total][1].data))
                print(f'\rframe {i + 1}/{args.frames}: {e2e[-1]:.1f} ms', end='', flush=True)
            print()
        finally:
            executor.shutdown()
            node.destroy_node()
            context.try_shutdown()
            proc.stop()
    overhead = [a - b for a, b in zip(e2e, model)]
    result = {
        'size': [height, width], 'frames': args.frames, 'warmup': args.warmup,
        'weights': source, 'device': args.device, 'precision': args.precision,
        'transport': 'FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA', 'machine': platform.machine(),
        'cpu_count': os.cpu_count(),
        'end_to_end_ms': _stats(e2e), 'model_ms': _stats(model),
        'node_processing_ms': _stats(total), 'overhead_ms': _stats(overhead),
        'measured_at': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
    }
    for key in ('end_to_end_ms', 'model_ms', 'node_processing_ms', 'overhead_ms'):
        s = result[key]
        print(f'{key:20s} median {s["median"]:8.2f}  p90 {s["p90"]:8.2f}')
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + '.partial')
        partial.write_text(json.dumps(result, indent=2) + '\n')
        partial.replace(out)  # never a half-written file under the final name
    return 0
