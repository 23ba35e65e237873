"""Counters, input rates and timings of the node, and their ``DiagnosticStatus`` form.

:class:`NodeStats` is plain thread-safe Python (callbacks and the worker thread both write
to it); :func:`diagnostic_status` turns a snapshot into a ``diagnostic_msgs`` message.
"""

from __future__ import annotations

from collections import Counter, deque
import threading
import time
from typing import Any

import numpy as np

from .. import counters as keys


class RateMeter:
    """Messages a second over a sliding window of arrival times."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque(maxlen=1000)

    def tick(self, now: float | None = None) -> None:
        self._times.append(time.monotonic() if now is None else now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        recent = [t for t in self._times if now - t <= self.window_s]
        if len(recent) < 2:
            return 0.0
        span = recent[-1] - recent[0]
        return (len(recent) - 1) / span if span > 0 else 0.0


class NodeStats:
    """Thread-safe counters (received, processed, dropped, bad input by kind) and timings."""

    def __init__(self, timing_window: int = 100) -> None:
        self._lock = threading.Lock()
        self.received: Counter[str] = Counter()
        self.bad_input: Counter[str] = Counter()
        self.rates: dict[str, RateMeter] = {}
        self.processed = 0
        self.dropped = 0
        self._total_ms: deque[float] = deque(maxlen=timing_window)
        self._model_ms: deque[float] = deque(maxlen=timing_window)
        self.radar_pixels_last = 0
        self.uncompensated = 0  # frames whose radar lacked ego motion (from the assembler)

    def input(self, topic: str) -> None:
        """Count one message received on ``topic``."""
        with self._lock:
            self.received[topic] += 1
            self.rates.setdefault(topic, RateMeter()).tick()

    def bad(self, kind: str) -> None:
        """Count one skipped malformed input of ``kind``."""
        with self._lock:
            self.bad_input[kind] += 1

    def drop(self, n: int = 1) -> None:
        """Count frames replaced by a newer one before the worker took them."""
        with self._lock:
            self.dropped += n

    def frame_done(self, total_ms: float, model_ms: float, radar_pixels: int = 0) -> None:
        """Record one processed frame, its timings and its radar pixels (points in view)."""
        with self._lock:
            self.processed += 1
            self.radar_pixels_last = int(radar_pixels)
            self._total_ms.append(total_ms)
            self._model_ms.append(model_ms)

    def snapshot(self) -> dict[str, Any]:
        """Copy every counter, rate and timing (median / max over a window) consistently."""
        with self._lock:
            total = np.asarray(self._total_ms, dtype=np.float64)
            model = np.asarray(self._model_ms, dtype=np.float64)
            return {
                'received': dict(self.received),
                'rates_hz': {k: m.rate() for k, m in self.rates.items()},
                'bad_input': dict(self.bad_input),
                'bad_input_total': int(sum(self.bad_input.values())),
                'processed': self.processed,
                'radar_pixels_last': self.radar_pixels_last,
                'dropped': self.dropped,
                'uncompensated': self.uncompensated,
                'processing_ms_median': float(np.median(total)) if total.size else 0.0,
                'processing_ms_max': float(total.max()) if total.size else 0.0,
                'model_ms_median': float(np.median(model)) if model.size else 0.0,
            }


def diagnostic_status(snapshot: dict[str, Any], name: str, hardware_id: str,
                      extra: dict[str, str], active: bool) -> Any:
    """Build a ``diagnostic_msgs/DiagnosticStatus`` from a :meth:`NodeStats.snapshot`."""
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    values = dict(extra)
    for topic, rate in sorted(snapshot['rates_hz'].items()):
        values[keys.rate_key(topic)] = f'{rate:.2f}'
    for topic, count in sorted(snapshot['received'].items()):
        values[keys.received_key(topic)] = str(count)
    for kind, count in sorted(snapshot['bad_input'].items()):
        values[keys.bad_input_key(kind)] = str(count)
    values.update({
        keys.BAD_INPUT_TOTAL: str(snapshot['bad_input_total']),
        keys.FRAMES_PROCESSED: str(snapshot['processed']),
        keys.FRAMES_DROPPED: str(snapshot['dropped']),
        keys.FRAMES_UNCOMPENSATED: str(snapshot['uncompensated']),
        keys.RADAR_PIXELS_LAST: str(snapshot['radar_pixels_last']),
        keys.PROCESSING_MS_MEDIAN: f"{snapshot['processing_ms_median']:.2f}",
        keys.PROCESSING_MS_MAX: f"{snapshot['processing_ms_max']:.2f}",
        keys.MODEL_MS_MEDIAN: f"{snapshot['model_ms_median']:.2f}",
    })
    if not active:
        level, message = DiagnosticStatus.STALE, 'inactive'
    elif snapshot['processed'] == 0:
        level, message = DiagnosticStatus.WARN, 'no frame processed yet'
    elif snapshot['bad_input_total']:
        level, message = DiagnosticStatus.WARN, 'running; some inputs were malformed'
    else:
        level, message = DiagnosticStatus.OK, 'running'
    return DiagnosticStatus(
        level=level, name=name, message=message, hardware_id=hardware_id,
        values=[KeyValue(key=k, value=v) for k, v in values.items()])
