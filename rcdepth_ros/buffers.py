"""Per-radar time-windowed sweep buffers and an odometry buffer (pure Python, thread-safe).

Stamps are integer nanoseconds. A stamp earlier than the newest one by more than the
time-jump threshold (a bag that loops, a simulator reset) clears the buffer, because sweeps
from "the future" would otherwise be paired with every new image.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass
import threading
from typing import Any, Callable, Sequence

import numpy as np

from .. import geometry
from ..sweeps import select_sweeps


@dataclass(frozen=True)
class RadarSweep:
    """One radar sweep: ``points`` float32 (N, 6) ``[x, y, z, rcs, vx, vy]`` in ``frame_id``."""

    stamp_ns: int
    frame_id: str
    points: np.ndarray


class RadarBuffer:
    """Recent sweeps of one radar; :meth:`select` returns those within the window of a time."""

    def __init__(self, window_s: float, max_sweeps: int, time_jump_s: float = 1.0,
                 capacity: int = 64) -> None:
        if window_s < 0.0 or max_sweeps < 1:
            raise ValueError(f'need window >= 0 and max_sweeps >= 1, got {window_s}, {max_sweeps}')
        self.window_ns = int(window_s * 1e9)
        self.max_sweeps = int(max_sweeps)
        self.time_jump_ns = int(time_jump_s * 1e9)
        self._sweeps: deque[RadarSweep] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._sweeps)

    def add(self, sweep: RadarSweep) -> bool:
        """Append a sweep; return True if a backwards time jump cleared the buffer first."""
        with self._lock:
            jumped = bool(self._sweeps) and (
                sweep.stamp_ns < self._sweeps[-1].stamp_ns - self.time_jump_ns)
            if jumped:
                self._sweeps.clear()
            if self._sweeps and sweep.stamp_ns < self._sweeps[-1].stamp_ns:
                # Small reordering: keep the deque sorted by stamp.
                items = sorted([*self._sweeps, sweep], key=lambda s: s.stamp_ns)
                self._sweeps.clear()
                self._sweeps.extend(items)
            else:
                self._sweeps.append(sweep)
            return jumped

    def clear(self) -> None:
        """Drop every buffered sweep."""
        with self._lock:
            self._sweeps.clear()

    def select(self, stamp_ns: int) -> list[RadarSweep]:
        """Sweeps paired with an image at ``stamp_ns`` (:func:`rcdepth_ros.sweeps.select_sweeps`).

        The newest ``max_sweeps`` sweeps stamped in ``[stamp - window, stamp]``, newest first.
        """
        with self._lock:
            sweeps = list(self._sweeps)
        chosen = select_sweeps([s.stamp_ns for s in sweeps], stamp_ns, self.window_ns,
                               self.max_sweeps)
        return [sweeps[i] for i in chosen]


class OdometryBuffer:
    """Poses ``T_odom_from_base`` over time, interpolated for ego-motion compensation."""

    def __init__(self, capacity: int = 400, time_jump_s: float = 1.0) -> None:
        self._stamps: list[int] = []
        self._poses: list[np.ndarray] = []
        self.capacity = capacity
        self.time_jump_ns = int(time_jump_s * 1e9)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._stamps)

    def add(self, stamp_ns: int, T_odom_from_base: np.ndarray) -> bool:
        """Insert a pose; return True if a backwards time jump cleared the buffer first."""
        pose = np.asarray(T_odom_from_base, dtype=np.float64)
        if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
            raise ValueError('odometry pose must be a finite 4x4 transform')
        with self._lock:
            jumped = bool(self._stamps) and stamp_ns < self._stamps[-1] - self.time_jump_ns
            if jumped:
                self._stamps.clear()
                self._poses.clear()
            i = bisect.bisect_right(self._stamps, stamp_ns)
            self._stamps.insert(i, stamp_ns)
            self._poses.insert(i, pose)
            if len(self._stamps) > self.capacity:
                del self._stamps[0]
                del self._poses[0]
            return jumped

    def clear(self) -> None:
        """Drop every buffered pose."""
        with self._lock:
            self._stamps.clear()
            self._poses.clear()

    def pose_at(self, stamp_ns: int, max_extrapolation_ns: int = 200_000_000) -> np.ndarray | None:
        """``T_odom_from_base`` at ``stamp_ns`` (linear translation, nlerp rotation) or None."""
        with self._lock:
            stamps, poses = list(self._stamps), list(self._poses)
        if not stamps:
            return None
        i = bisect.bisect_left(stamps, stamp_ns)
        if i < len(stamps) and stamps[i] == stamp_ns:
            return poses[i]
        if i == 0 or i == len(stamps):
            j = 0 if i == 0 else len(stamps) - 1
            return poses[j] if abs(stamps[j] - stamp_ns) <= max_extrapolation_ns else None
        t0, t1 = stamps[i - 1], stamps[i]
        a = (stamp_ns - t0) / float(t1 - t0)
        q0 = geometry.matrix_to_quat(poses[i - 1][:3, :3])
        q1 = geometry.matrix_to_quat(poses[i][:3, :3])
        if float(np.dot(q0, q1)) < 0.0:
            q1 = -q1  # shortest arc
        q = (1.0 - a) * q0 + a * q1
        t = (1.0 - a) * poses[i - 1][:3, 3] + a * poses[i][:3, 3]
        return geometry.make_transform(q / np.linalg.norm(q), t)

    def motion(self, to_ns: int, from_ns: int) -> np.ndarray | None:
        """``T_base(to)_from_base(from)``: the ego motion between two times, or None."""
        pose_to, pose_from = self.pose_at(to_ns), self.pose_at(from_ns)
        if pose_to is None or pose_from is None:
            return None
        return geometry.invert_transform(pose_to) @ pose_from


def sweeps_in_camera(extrinsics: Any, odom: OdometryBuffer, camera_frame: str, base_frame: str,
                     stamp_ns: int, sweeps: Sequence[RadarSweep],
                     on_unknown: Callable[[str], None] | None = None,
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(points, T_cam_from_radar)`` of each sweep at the image time ``stamp_ns``.

    ``T = T_cam_from_base @ T_base(t_img)_from_base(t_radar) @ T_base_from_radar``, the ego
    motion from ``odom`` when it covers both times, else identity. ``extrinsics`` answers
    ``lookup(target, source, stamp_ns)``. Sweeps of an unknown frame are left out and
    reported to ``on_unknown``. Shared by ``rcdepth_node`` and ``rcdepth infer-bag``.
    """
    out = []
    for sweep in sweeps:
        T = extrinsics.lookup(camera_frame, sweep.frame_id, stamp_ns)
        if T is None:
            if on_unknown is not None:
                on_unknown(f'no transform {sweep.frame_id} -> {camera_frame}')
            continue
        if sweep.stamp_ns != stamp_ns and len(odom):
            motion = odom.motion(stamp_ns, sweep.stamp_ns)
            T_cam_from_base = extrinsics.lookup(camera_frame, base_frame, stamp_ns)
            T_base_from_radar = extrinsics.lookup(base_frame, sweep.frame_id, stamp_ns)
            if motion is not None and T_cam_from_base is not None and \
                    T_base_from_radar is not None:
                T = T_cam_from_base @ motion @ T_base_from_radar
        out.append((sweep.points, T))
    return out
