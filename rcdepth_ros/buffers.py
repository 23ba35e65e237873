"""Per-radar time-windowed sweep buffers and an odometry buffer (pure Python, thread-safe).

Used by the frame assembler (:mod:`.assembler`). Stamps are integer nanoseconds. A stamp
earlier than the newest one by more than the time-jump threshold (a bag that loops, a
simulator reset) clears the buffer, because sweeps from "the future" would otherwise be
paired with every new image.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass
import threading

import numpy as np

from . import geometry
from .sweeps import select_sweeps


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


MAX_EXTRAPOLATION_S = 0.2
"""How far past its newest (or before its oldest) pose the odometry buffer extrapolates.

Odometry often lags the camera by a few tens of ms. Repeating the newest pose instead
would leave ``v * lag`` uncompensated (0.47 m for 50 ms at 9.4 m/s); beyond this bound no
pose is answered and the frame assembler counts the frame as uncompensated.
"""


@dataclass(frozen=True)
class Twist:
    """Body-frame velocity: ``linear`` m/s and ``angular`` rad/s, float64 (3,) each."""

    linear: np.ndarray
    angular: np.ndarray


def _exp_twist(twist: Twist, dt_s: float) -> np.ndarray:
    """Pose increment ``T_base(t)_from_base(t + dt)`` of a constant body twist over ``dt``.

    Rotation ``exp(w dt)``; translation the chord of the arc: ``v dt`` shortened by
    ``sinc(angle / 2)`` and turned by half the angle (exact for a constant yaw rate).
    """
    w = np.asarray(twist.angular, np.float64) * dt_s
    angle = float(np.linalg.norm(w))
    if angle < 1e-12:
        q = np.array([1.0, 0.0, 0.0, 0.0])
        q_half = q
    else:
        axis = w / angle
        q = np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis])
        q_half = np.concatenate([[np.cos(angle / 4)], np.sin(angle / 4) * axis])
    chord = np.sinc(angle / (2 * np.pi))  # sin(angle / 2) / (angle / 2)
    t = geometry.quat_to_matrix(q_half) @ (np.asarray(twist.linear, np.float64) * dt_s * chord)
    return geometry.make_transform(q, t)


def _twist_between(T0: np.ndarray, T1: np.ndarray, dt_s: float) -> Twist:
    """Return the constant body twist moving pose ``T0`` to ``T1`` in ``dt_s`` seconds."""
    delta = geometry.invert_transform(T0) @ T1  # T_base(t0)_from_base(t1)
    q = geometry.matrix_to_quat(delta[:3, :3])
    if q[0] < 0:
        q = -q
    angle = 2.0 * float(np.arctan2(np.linalg.norm(q[1:]), q[0]))
    axis = q[1:] / np.linalg.norm(q[1:]) if angle > 1e-12 else np.zeros(3)
    angular = axis * angle / dt_s
    # Undo the half-turn rotation of the chord (inverse of _exp_twist).
    q_half = np.concatenate([[np.cos(angle / 4)], np.sin(angle / 4) * axis]) if angle > 1e-12 \
        else np.array([1.0, 0.0, 0.0, 0.0])
    chord = np.sinc(angle / (2 * np.pi))
    linear = geometry.quat_to_matrix(q_half).T @ delta[:3, 3] / (dt_s * chord)
    return Twist(linear=linear, angular=angular)


class OdometryBuffer:
    """Poses ``T_odom_from_base`` over time, interpolated for ego-motion compensation.

    Between two poses: linear translation, nlerp rotation. Past the newest pose (odometry
    lagging the camera) or before the oldest, by at most ``max_extrapolation_s``: the pose
    moved on with the body twist of that end pose (the message's twist when it had one, else
    the finite difference of the two end poses); one pose and no twist: that pose.
    """

    def __init__(self, capacity: int = 400, time_jump_s: float = 1.0,
                 max_extrapolation_s: float = MAX_EXTRAPOLATION_S) -> None:
        self._stamps: list[int] = []
        self._poses: list[np.ndarray] = []
        self._twists: list[Twist | None] = []
        self.max_extrapolation_ns = int(max_extrapolation_s * 1e9)
        self.capacity = capacity
        self.time_jump_ns = int(time_jump_s * 1e9)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._stamps)

    def add(self, stamp_ns: int, T_odom_from_base: np.ndarray,
            twist: Twist | None = None) -> bool:
        """Insert a pose (and its body twist, if known).

        Return True if a backwards time jump cleared the buffer first.
        """
        pose = np.asarray(T_odom_from_base, dtype=np.float64)
        if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
            raise ValueError('odometry pose must be a finite 4x4 transform')
        if twist is not None and not (np.all(np.isfinite(twist.linear))
                                      and np.all(np.isfinite(twist.angular))):
            raise ValueError('odometry twist must be finite')
        with self._lock:
            jumped = bool(self._stamps) and stamp_ns < self._stamps[-1] - self.time_jump_ns
            if jumped:
                self._stamps.clear()
                self._poses.clear()
                self._twists.clear()
            i = bisect.bisect_right(self._stamps, stamp_ns)
            self._stamps.insert(i, stamp_ns)
            self._poses.insert(i, pose)
            self._twists.insert(i, twist)
            if len(self._stamps) > self.capacity:
                del self._stamps[0]
                del self._poses[0]
                del self._twists[0]
            return jumped

    def clear(self) -> None:
        """Drop every buffered pose."""
        with self._lock:
            self._stamps.clear()
            self._poses.clear()
            self._twists.clear()

    def pose_at(self, stamp_ns: int) -> np.ndarray | None:
        """``T_odom_from_base`` at ``stamp_ns``, or None when it is out of reach."""
        with self._lock:
            stamps, poses, twists = list(self._stamps), list(self._poses), list(self._twists)
        if not stamps:
            return None
        i = bisect.bisect_left(stamps, stamp_ns)
        if i < len(stamps) and stamps[i] == stamp_ns:
            return poses[i]
        if i == 0 or i == len(stamps):
            j = 0 if i == 0 else len(stamps) - 1
            if abs(stamps[j] - stamp_ns) > self.max_extrapolation_ns:
                return None
            twist = twists[j]
            if twist is None and len(stamps) > 1:
                k = 1 if j == 0 else j - 1  # the neighbour of the end pose
                a, b = min(j, k), max(j, k)
                twist = _twist_between(poses[a], poses[b], (stamps[b] - stamps[a]) * 1e-9)
            if twist is None:
                return poses[j]
            return poses[j] @ _exp_twist(twist, (stamp_ns - stamps[j]) * 1e-9)
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
