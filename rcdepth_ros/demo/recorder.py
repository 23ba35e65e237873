"""Record ``rcdepth_node``'s outputs into an MCAP bag while keeping the keyframes' results.

An rclpy node of the caller subscribes (reliable) to the node's depth, uncertainty,
camera_info and coloured depth, writes every message into an open rosbags writer
(:func:`rcdepth_ros.bags.io.open_writer`) with ``rclpy.serialization.serialize_message``
(rclpy and rosbags share CDR), log time = the header stamp (the input image time), and keeps
the decoded depth and uncertainty of the stamps it is asked to keep. It also collects the
node's per-frame processing and model times and its last ``/diagnostics`` values.
Callbacks run on the caller's executor thread; :meth:`OutputRecorder.wait_for` blocks any
other thread until a stamp's depth and uncertainty have arrived.
"""

from __future__ import annotations

from collections.abc import Iterable
import threading
import time
from typing import Any

import numpy as np

from .. import msgs

# Recorded outputs: key -> (topic below the node, ROS 2 type).
RECORDED = {
    'depth': ('output/depth', 'sensor_msgs/msg/Image'),
    'uncertainty': ('output/uncertainty', 'sensor_msgs/msg/Image'),
    'camera_info': ('output/camera_info', 'sensor_msgs/msg/CameraInfo'),
    'depth_colored': ('output/depth_colored', 'sensor_msgs/msg/Image'),
}
QOS_DEPTH = 100


class OutputRecorder:
    """Subscriptions of ``node`` to the outputs of the node ``target`` (``/rcdepth_node``).

    ``writer`` is an open rosbags writer (or None: nothing is written); ``keep`` the stamps
    (ns) whose depth and uncertainty are kept as arrays for evaluation. ``target`` is the
    node, or with several cameras ``/rcdepth_node/<camera>`` (then ``diagnostics_of`` names
    the node).
    """

    def __init__(self, node: Any, target: str, writer: Any, keep: Iterable[int],
                 diagnostics_of: str | None = None) -> None:
        import importlib

        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from std_msgs.msg import Float32

        from ..bags import io as bag_io

        self.target = target.rstrip('/')
        # /diagnostics of this node (a camera's outputs live below the node's name).
        self.diagnostics_of = (diagnostics_of or target).rstrip('/')
        self.writer = writer
        self.keep = set(int(s) for s in keep)
        self.counts = {key: 0 for key in RECORDED}
        self.stamps: dict[str, set[int]] = {key: set() for key in RECORDED}
        self.kept: dict[int, dict[str, np.ndarray]] = {}
        self.processing_ms: list[float] = []
        self.model_ms: list[float] = []
        self.diagnostics: dict[str, str] = {}
        self.last_output = float('nan')
        self._cond = threading.Condition()
        self._connections: dict[str, Any] = {}
        qos = QoSProfile(depth=QOS_DEPTH, reliability=ReliabilityPolicy.RELIABLE)
        self._subs = {}
        for key, (suffix, msgtype) in RECORDED.items():
            topic = f'{self.target}/{suffix}'
            package, _, name = msgtype.split('/')
            cls = getattr(importlib.import_module(f'{package}.msg'), name)
            if writer is not None:
                self._connections[key] = bag_io.add_topic(writer, topic, msgtype)
            self._subs[key] = node.create_subscription(
                cls, topic, lambda msg, k=key: self._on_output(k, msg), qos)
        node.create_subscription(Float32, f'{self.target}/output/processing_time',
                                 lambda m: self.processing_ms.append(float(m.data)), qos)
        node.create_subscription(Float32, f'{self.target}/output/model_time',
                                 lambda m: self.model_ms.append(float(m.data)), qos)
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)

    def connected(self) -> bool:
        """Tell whether every recorded output has a matched publisher."""
        return all(sub.get_publisher_count() > 0 for sub in self._subs.values())

    def _on_output(self, key: str, msg: Any) -> None:
        from rclpy.serialization import serialize_message

        stamp = msgs.stamp_to_ns(msg.header.stamp)
        if self.writer is not None:
            self.writer.write(self._connections[key], stamp, serialize_message(msg))
        array = None
        if key in ('depth', 'uncertainty') and stamp in self.keep:
            array = np.array(msgs.image_to_array(msg), dtype=np.float32)  # (H, W) copy
        with self._cond:
            self.counts[key] += 1
            self.stamps[key].add(stamp)
            if array is not None:
                self.kept.setdefault(stamp, {})[key] = array
            self.last_output = time.monotonic()
            self._cond.notify_all()

    def _on_diagnostics(self, msg: Any) -> None:
        for status in msg.status:
            if status.hardware_id == self.diagnostics_of:
                self.diagnostics = {kv.key: kv.value for kv in status.values}

    def has(self, stamp: int) -> bool:
        """Tell whether depth and uncertainty of ``stamp`` have arrived."""
        with self._cond:
            return stamp in self.stamps['depth'] and stamp in self.stamps['uncertainty']

    def wait_for(self, stamp: int, timeout: float, alive: Any = None) -> bool:
        """Block until :meth:`has` ``(stamp)``; False on timeout or when ``alive()`` is false."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (stamp in self.stamps['depth'] and stamp in self.stamps['uncertainty']):
                left = deadline - time.monotonic()
                if left <= 0 or (alive is not None and not alive()):
                    return False
                self._cond.wait(min(left, 0.5))
            return True

    def settle(self, quiet_s: float, timeout: float) -> None:
        """Wait until no output has arrived for ``quiet_s`` seconds (at most ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                last = self.last_output
                complete = self.counts['depth'] == self.counts['uncertainty']
            if complete and not time.monotonic() - last < quiet_s:
                return
            time.sleep(0.05)
