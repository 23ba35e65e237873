"""``rcdepth replay``: publish a bag's topics with rclpy (no ``ros2 bag`` needed)."""

from __future__ import annotations

import argparse

NAME = 'replay'
HELP = ('Publish the topics of a rosbag2 bag with rclpy at the recorded (or scaled) rate; '
        'topics whose message types are not installed are skipped with one note each. '
        'Sets FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA unless already set (large images).')


def parse_remap(text: str) -> tuple[str, str]:
    """Parse ``FROM:=TO`` into ``(FROM, TO)``."""
    source, sep, target = text.partition(':=')
    if not sep or not source or not target:
        raise argparse.ArgumentTypeError(f'remap must be FROM:=TO, got {text!r}')
    return source, target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('bag', help='rosbag2 directory')
    parser.add_argument('--rate', type=float, default=1.0,
                        help='playback speed factor (2 = twice as fast)')
    parser.add_argument('--topics', nargs='+', metavar='TOPIC', default=None,
                        help='play only these bag topics (default: all)')
    parser.add_argument('--clock', action='store_true', help='publish the bag time on /clock')
    parser.add_argument('--remap', nargs='+', type=parse_remap, default=[],
                        metavar='FROM:=TO', help='publish bag topic FROM on topic TO')
    parser.add_argument('--wait-for-subscribers', type=float, default=0.0, metavar='S',
                        help='wait up to S seconds until every topic has a subscriber')


def run(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault('FASTDDS_BUILTIN_TRANSPORTS', 'LARGE_DATA')
    from ..bags.replay import replay

    summary = replay(args.bag, rate=args.rate, topics=args.topics, remap=dict(args.remap),
                     clock=args.clock, wait_for_subscribers=args.wait_for_subscribers)
    print(f'rcdepth replay: published {summary["messages"]} messages on '
          f'{len(summary["published"])} topics in {summary["wall_s"]:.1f} s'
          + (f'; skipped {", ".join(summary["skipped"])}' if summary['skipped'] else ''))
    return 0
