"""``rcdepth bench-node``: end-to-end latency of ``rcdepth_node`` over real ROS topics."""

from __future__ import annotations

import argparse

from ..errors import BadArgument
from ..ros import params

NAME = 'bench-node'
HELP = ('Start rcdepth_node as a process, publish synthetic frames one at a time and report '
        'end-to-end latency (image published -> depth received) and the node overhead '
        '(end-to-end minus the model time the node reports), median and p90, the throughput '
        'in camera frames a second (--cameras N: one node serving N cameras, one batched '
        "forward pass per instant), and the node's resident memory (RSS) after the warm-up "
        'and at the end (a soak test with e.g. --frames 2000).')


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
    parser.add_argument('--backend', default=params.default('backend'),
                        choices=params.SPECS_BY_NAME['backend'].choices,
                        help="the node's backend parameter")
    parser.add_argument('--precision', default=params.default('precision'),
                        choices=params.SPECS_BY_NAME['precision'].choices,
                        help="the node's precision parameter")
    parser.add_argument('--domain-id', type=int, default=None,
                        help='ROS_DOMAIN_ID of the run (default: derived from the pid)')
    parser.add_argument('--timeout', type=float, default=120.0,
                        help='seconds to wait for the node to start and for each frame')
    parser.add_argument('--cameras', type=int, default=1, metavar='N',
                        help='cameras served by the one node (1: the default single-camera '
                             'topics; N > 1: the cameras parameter with CAM_0 .. CAM_N-1)')
    parser.add_argument('--rss-every', type=int, default=100, metavar='N',
                        help="sample the node's RSS every N timed frames (soak runs)")
    parser.add_argument('--json', default=None, metavar='OUT', help='write the results here')


def _stats(values: list[float]) -> dict[str, float]:
    import numpy as np

    arr = np.asarray(values, dtype=np.float64)
    return {'median': float(np.median(arr)), 'p90': float(np.percentile(arr, 90)),
            'min': float(arr.min()), 'max': float(arr.max())}


# Outputs the client subscribes to, one message each per frame: a viewer of depth and
# uncertainty (the node builds only the image outputs someone subscribes to).
KEYS = ('depth', 'uncertainty', 'model_time', 'processing_time')


def _settle(client, timeout: float, keys: list[str]) -> dict[str, int]:
    """Wait until every warm-up frame is done; return the message count of each output.

    The client waits for quiet: no new output for twice the slowest processing time seen
    (at least 0.5 s). A fixed short wait is not enough when a frame takes seconds: a frame
    queued in the node's one-slot mailbox would finish inside the timed loop and shift the
    model times by one frame.
    """
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        slowest = max((m.data for k in keys if k.endswith('processing_time')
                       for _, m in client.got[k]), default=0.0)
        counts = [len(client.got[k]) for k in keys]
        client.wait(lambda: False, max(0.5, 2e-3 * slowest))  # spin: collect late messages
        if counts == [len(client.got[k]) for k in keys]:
            return dict(zip(keys, counts))
    raise ValueError('the node kept publishing after the warm-up frames')


def _arrival(client, key: str, stamp: int, start: int) -> float | None:
    """Arrival time of the first ``key`` output of ``stamp`` from index ``start`` on."""
    from ..ros.harness import stamp_ns

    for t, msg in client.got[key][start:]:
        if stamp_ns(msg.header) == stamp:
            return t
    return None


def _weights(args: argparse.Namespace, folder) -> tuple[str, str]:
    """Weights path and where it came from (given, demo, or random init)."""
    from ..models.io import resolve_weights

    if args.model:
        return str(resolve_weights(args.model)), 'given'
    try:
        return str(resolve_weights(None)), 'demo'
    except FileNotFoundError:
        pass
    import torch

    from ..models import VARIANTS, build_model, save_weights

    if args.variant not in VARIANTS:
        raise BadArgument(f'unknown variant {args.variant!r} (one of {sorted(VARIANTS)})')
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

    import yaml

    from ..ros.harness import (
        NodeClient,
        NodeProcess,
        calibration_dict,
        output_key,
        ros_environment,
        stamp_ns,
        write_params_file,
    )
    from ..ros.session import RosSession

    if args.frames < 1 or args.warmup < 0 or args.rss_every < 1 or args.cameras < 1:
        raise BadArgument('need --frames >= 1, --warmup >= 0, --rss-every >= 1 and '
                          '--cameras >= 1')
    cameras = [f'CAM_{i}' for i in range(args.cameras)] if args.cameras > 1 else []
    names = cameras or ['']
    keys = [output_key(c, k) for c in names for k in KEYS]
    height, width = args.size
    domain = args.domain_id if args.domain_id is not None else 1 + os.getpid() % 100
    with tempfile.TemporaryDirectory(prefix='rcdepth_bench_node_') as tmp:
        folder = Path(tmp)
        weights, source = _weights(args, folder)
        calib = folder / 'calibration.yaml'
        calib.write_text(yaml.safe_dump(calibration_dict(height, width)))
        params = write_params_file(folder / 'params.yaml', {
            'model_path': weights, 'device': args.device, 'precision': args.precision,
            'backend': args.backend, 'image_type': 'raw', 'radar_topics': ['~/input/radar'],
            'extrinsics.calibration_path': str(calib), 'odom_topic': '~/input/odom',
            'qos.reliability': 'reliable', 'output.colored': False,
            **({'cameras': cameras} if cameras else {})})
        env = ros_environment(domain, folder)
        namespace = f'/bench{os.getpid()}'
        proc = NodeProcess(params, env, namespace, folder / 'node.log')
        session = RosSession('bench_node_client', domain, env, spin=False)
        rss: list[tuple[int, float]] = []  # (timed frames done, node RSS MB)
        try:
            client = NodeClient(session.executor, session.node, namespace, proc, height, width,
                                outputs=KEYS, startup_timeout=args.timeout, cameras=cameras)
            if not client.wait(lambda: all(p.get_subscription_count() > 0
                                           for p in client.pub_images.values()),
                               args.timeout):
                raise ValueError('rcdepth_node did not activate:\n' + proc.log()[-2000:])
            for _ in range(args.warmup):
                client.serve_one(timeout=args.timeout)
            done = _settle(client, args.timeout, keys)
            rss.append((0, proc.rss_mb()))
            e2e, both, model, total = [], [], [], []
            t_timed = time.perf_counter()
            for i in range(args.frames):
                stamp = client.publish_frame()  # one image per camera, same stamp
                sent = client.last_image_sent
                images = [output_key(c, k) for c in names for k in ('depth', 'uncertainty')]
                times = [k for k in keys if k not in images]

                def complete() -> bool:
                    return all(_arrival(client, k, stamp, done[k]) is not None
                               for k in images) and \
                        all(len(client.got[k]) > done[k] for k in times)
                if not client.wait(complete, args.timeout):
                    raise ValueError(f'frame {i}: no depth within {args.timeout} s\n'
                                     + proc.log()[-2000:])
                # Latency of the instant: until the last camera's depth (and uncertainty).
                depth_t = [_arrival(client, output_key(c, 'depth'), stamp, done[
                    output_key(c, 'depth')]) for c in names]
                e2e.append((max(depth_t) - sent) * 1e3)
                both.append((max(_arrival(client, k, stamp, done[k]) for k in images)
                             - sent) * 1e3)
                first = names[0]  # a batch reports one network and one processing time
                model.append(float(client.got[output_key(first, 'model_time')][-1][1].data))
                total.append(float(
                    client.got[output_key(first, 'processing_time')][-1][1].data))
                done = {k: len(client.got[k]) for k in keys}
                if (i + 1) % args.rss_every == 0 or i + 1 == args.frames:
                    rss.append((i + 1, proc.rss_mb()))
                print(f'\rframe {i + 1}/{args.frames}: {e2e[-1]:.1f} ms', end='', flush=True)
            timed_s = time.perf_counter() - t_timed
            print()
            client.wait(lambda: False, 0.2)
            late = [stamp_ns(m.header) for k in images for _, m in client.got[k][done[k]:]]
            if late:
                raise ValueError(f'the node published {len(late)} more image outputs than '
                                 'frames were sent')
        finally:
            session.close()
            proc.stop()
    overhead = [a - b for a, b in zip(e2e, model)]
    inside = [a - b for a, b in zip(total, model)]  # the node's own work around the network
    result = {
        'size': [height, width], 'frames': args.frames, 'warmup': args.warmup,
        'cameras': args.cameras,
        # Frames are sent one instant at a time (the next after the last output came back).
        'camera_frames_per_s': args.cameras * args.frames / timed_s,
        'weights': source, 'device': args.device, 'precision': args.precision,
        'backend': args.backend, 'transport': 'FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA',
        # A Fast DDS XML profile (e.g. a shorter heartbeat period) changes the latencies.
        'fastdds_profiles_file': Path(os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE', '')).name,
        'machine': platform.machine(),
        'cpu_count': os.cpu_count(),
        'outputs': list(KEYS),
        'end_to_end_ms': _stats(e2e), 'end_to_end_depth_and_uncertainty_ms': _stats(both),
        'model_ms': _stats(model), 'node_processing_ms': _stats(total),
        'overhead_ms': _stats(overhead), 'node_overhead_ms': _stats(inside),
        # Resident memory of the node process after the warm-up and at the end: a leak per
        # frame shows as growth over a long run.
        'node_rss_mb': {'start': rss[0][1], 'end': rss[-1][1],
                        'growth_pct': 100.0 * (rss[-1][1] / rss[0][1] - 1.0),
                        'samples': [[n, mb] for n, mb in rss]},
        'measured_at': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
    }
    for key in ('end_to_end_ms', 'end_to_end_depth_and_uncertainty_ms', 'model_ms',
                'node_processing_ms', 'overhead_ms', 'node_overhead_ms'):
        s = result[key]
        print(f'{key:36s} median {s["median"]:8.2f}  p90 {s["p90"]:8.2f}')
    print(f'{"camera_frames_per_s":36s} {result["camera_frames_per_s"]:8.2f}  '
          f'({args.cameras} camera(s))')
    memory = result['node_rss_mb']
    print(f'{"node_rss_mb":36s} start {memory["start"]:8.1f}  end {memory["end"]:8.1f}  '
          f'growth {memory["growth_pct"]:+.2f} % over {args.frames} frames')
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + '.partial')
        partial.write_text(json.dumps(result, indent=2) + '\n')
        partial.replace(out)  # never a half-written file under the final name
    return 0
