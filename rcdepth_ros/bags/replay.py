"""Replay a bag with rclpy: raw CDR from rosbags, published as serialized bytes.

No ``ros2 bag`` needed: each topic gets an rclpy publisher of its message class (imported
from the installed message packages) and the recorded bytes are published unchanged at the
recorded timing divided by ``rate``. A topic whose type rclpy cannot import (``tf2_msgs``
has no pip wheel) is skipped with one log line. Topics recorded with transient-local offered
QoS (``/tf_static``) are published transient-local, i.e. latched, as ``ros2 bag play`` does.
"""

from __future__ import annotations

import importlib
import math
import os
from pathlib import Path
import time
from typing import Any, Callable, Mapping, Sequence

from ..errors import BadArgument
from . import io

__all__ = ['replay', 'message_class', 'CLOCK_PERIOD_S']

# /clock publication period while waiting for the next message (ros2 bag play: 40 Hz).
CLOCK_PERIOD_S = 0.025
PUBLISHER_DEPTH = 100


def message_class(msgtype: str) -> Any:
    """Import the rclpy message class of ``pkg/msg/Name``; ImportError if not installed."""
    try:
        package, kind, name = msgtype.split('/')
    except ValueError:
        raise ImportError(f'not a message type name: {msgtype!r}') from None
    module = importlib.import_module(f'{package}.{kind}')
    try:
        return getattr(module, name)
    except AttributeError:
        raise ImportError(f'{package}.{kind} has no {name}') from None


def _qos(profiles: Sequence[Any]) -> Any:
    """Build the rclpy QoS for replaying a topic recorded with the offered ``profiles``."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rosbags.interfaces import QosDurability, QosReliability

    latched = bool(profiles) and all(p.durability == QosDurability.TRANSIENT_LOCAL
                                     for p in profiles)
    best_effort = bool(profiles) and all(p.reliability == QosReliability.BEST_EFFORT
                                         for p in profiles)
    # A deep history: a reliable subscriber that falls behind a burst still gets everything.
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=PUBLISHER_DEPTH,
        reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def _plan(bag: Path, topics: Sequence[str] | None, remap: Mapping[str, str] | None,
          ) -> tuple[dict[str, tuple[str, int]], dict[str, str]]:
    in_bag = io.bag_topics(bag)
    chosen = list(in_bag) if topics is None else list(dict.fromkeys(topics))
    missing = [t for t in chosen if t not in in_bag]
    if missing:
        raise BadArgument(f'topics not in bag {bag}: {", ".join(missing)}')
    remap = dict(remap or {})
    unknown = [t for t in remap if t not in in_bag]
    if unknown:
        raise BadArgument(f'remapped topics not in bag {bag}: {", ".join(unknown)}')
    return {t: in_bag[t] for t in chosen}, {t: remap.get(t, t) for t in chosen}


def replay(bag: str | os.PathLike[str], rate: float = 1.0, topics: Sequence[str] | None = None,
           node: Any = None, remap: Mapping[str, str] | None = None, clock: bool = False,
           on_message: Callable[[str, str, int, bytes], Any] | None = None,
           wait_for_subscribers: float = 0.0) -> dict[str, Any]:
    """Publish the messages of ``bag`` with rclpy at the recorded timing divided by ``rate``.

    ``topics``: bag topics to play (None = all). ``remap``: bag topic -> published topic.
    ``node``: an rclpy node to publish from; when None a node in a fresh context is created
    and shut down at the end. ``clock``: also publish the bag time on ``/clock``
    (rosgraph_msgs/Clock). ``on_message(topic, msgtype, timestamp_ns, rawdata)`` is called
    after each publish. ``wait_for_subscribers``: wait up to this many seconds until every
    played topic has a subscriber before starting (messages sent before discovery are lost).
    ``rate`` may be ``math.inf`` (no waiting). Returns ``published`` and ``skipped``
    (``{bag topic: count}``), ``messages`` and ``wall_s``.
    """
    if not rate > 0:
        raise BadArgument(f'rate must be > 0, got {rate}')
    if wait_for_subscribers < 0:
        raise BadArgument(f'wait_for_subscribers must be >= 0, got {wait_for_subscribers}')
    bag = Path(bag).expanduser()
    played, targets = _plan(bag, topics, remap)
    qos = io.bag_qos(bag)

    session = None
    if node is None:
        from ..ros.session import RosSession

        session = RosSession(f'rcdepth_replay_{os.getpid()}', spin=False)
        node = session.node
    logger = node.get_logger()
    publishers: dict[str, Any] = {}
    skipped: dict[str, int] = {}
    published: dict[str, int] = {t: 0 for t in played}
    clock_pub = None
    started = time.monotonic()
    try:
        for topic, (msgtype, count) in played.items():
            try:
                cls = message_class(msgtype)
            except ImportError:
                skipped[topic] = count
                del published[topic]
                logger.warning(f'skipping {topic}: message type {msgtype} is not available to '
                               f'rclpy here ({count} message(s) not published)')
                continue
            try:
                publishers[topic] = node.create_publisher(cls, targets[topic],
                                                          _qos(qos.get(topic, [])))
            except Exception as exc:  # noqa: BLE001 - rclpy raises several name errors
                raise ValueError(f'cannot publish {targets[topic]}: {exc}') from None
        if clock:
            from rosgraph_msgs.msg import Clock

            clock_pub = node.create_publisher(Clock, '/clock', 10)
        if wait_for_subscribers > 0:
            deadline = time.monotonic() + wait_for_subscribers
            while time.monotonic() < deadline and any(
                    p.get_subscription_count() == 0 for p in publishers.values()):
                time.sleep(0.01)
        started = time.monotonic()
        bag_start: int | None = None
        for topic, msgtype, stamp, raw in io.read_messages(bag, list(publishers)):
            if bag_start is None:
                bag_start = stamp
            if not math.isinf(rate):
                _wait_until(started + (stamp - bag_start) * 1e-9 / rate, clock_pub, started,
                            bag_start, rate)
            if clock_pub is not None:
                _publish_clock(clock_pub, stamp)
            publishers[topic].publish(raw)
            published[topic] += 1
            if on_message is not None:
                on_message(topic, msgtype, stamp, raw)
    finally:
        for publisher in publishers.values():
            node.destroy_publisher(publisher)
        if clock_pub is not None:
            node.destroy_publisher(clock_pub)
        if session is not None:
            session.close()
    return {'published': published, 'skipped': skipped,
            'messages': sum(published.values()), 'wall_s': time.monotonic() - started}


def _publish_clock(publisher: Any, stamp_ns: int) -> None:
    from rosgraph_msgs.msg import Clock

    msg = Clock()
    msg.clock.sec, msg.clock.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    publisher.publish(msg)


def _wait_until(deadline: float, clock_pub: Any, started: float, bag_start: int,
                rate: float) -> None:
    """Sleep until monotonic ``deadline``, publishing /clock meanwhile when asked."""
    while True:
        now = time.monotonic()
        if now >= deadline:
            return
        if clock_pub is None:
            time.sleep(deadline - now)
            return
        _publish_clock(clock_pub, bag_start + int((now - started) * rate * 1e9))
        time.sleep(min(CLOCK_PERIOD_S, deadline - now))
