"""The frame assembler: every pairing rule between camera, camera_info, radar and odometry.

One pure-core component (no rclpy) that ``rcdepth_node``, ``rcdepth infer-bag``, the demo and
the benchmarks feed with messages (rclpy or rosbags classes alike: only fields are read):

- :meth:`FrameAssembler.add_image` / :meth:`~FrameAssembler.add_camera_info`: an image is
  paired with the camera_info of exactly its stamp, whichever arrives first. Up to
  ``PENDING_IMAGES`` images wait for theirs; an image pushed out is counted
  (``no_camera_info``). A paired image comes back as a :class:`PairedImage`.
- :meth:`~FrameAssembler.add_radar`: decoded with the radar parameters (``radar.max_points``,
  state filters) into one time-windowed buffer per radar topic.
- :meth:`~FrameAssembler.add_odometry` / :meth:`~FrameAssembler.add_pose`: ego poses (and
  twists) for the motion between a sweep and the image.
- :meth:`~FrameAssembler.assemble`: turns a paired image into a :class:`~.pipeline.Frame` at
  the moment the caller processes it (the node: when its worker takes the frame, so a sweep
  that arrived just after the image is still used): per radar the sweeps of
  :func:`rcdepth_ros.sweeps.select_sweeps`, each moved into the camera at the image time by
  ``T_cam_from_base @ T_base(t_img)_from_base(t_radar) @ T_base_from_radar``
  (:func:`rcdepth_ros.geometry.sweeps_to_camera`). When odometry is expected but cannot give
  the motion (none yet, or further than the odometry buffer extrapolates), the static
  transform is used and the frame is counted as ``frames_uncompensated``.
- An image stamp earlier than the last one by more than ``time_jump_threshold`` (a bag that
  loops) clears every buffer.
- :func:`batches`: images of different cameras stamped within ``batch.window`` form one
  batch (one forward pass).

Every skipped input is counted under its reason (:mod:`.counters`) in :attr:`counts` and
reported to ``on_bad(kind, reason)`` (the node logs it, throttled). Thread-safe: the node's
callbacks and its worker call it concurrently.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np

from . import codec, counters, geometry, msgs, pipeline
from .buffers import OdometryBuffer, RadarBuffer, RadarSweep, Twist

if TYPE_CHECKING:
    from .ros.params import NodeConfig

# camera_info messages kept for pairing, images kept while their camera_info is late.
INFO_HISTORY = 30
PENDING_IMAGES = 4


@dataclass(frozen=True)
class PairedImage:
    """An image and the camera_info of its stamp (raw messages; decoding in assemble).

    ``camera``: the camera's name ('' for the single-camera node); ``K`` float64 (3, 3) and
    ``size`` (height, width) from the camera_info.
    """

    camera: str
    stamp_ns: int
    image: Any
    info: Any
    K: np.ndarray
    size: tuple[int, int]


class FrameAssembler:
    """Pairs messages into frames by the rules of the module docstring.

    ``config``: the node's parameters (:class:`~rcdepth_ros.ros.params.NodeConfig`); the bag
    tools build one from the same specs. ``extrinsics`` answers
    ``lookup(target, source, stamp_ns) -> T | None``. ``radar_topics``: the radar inputs
    (default ``config.radar_topics``). ``expect_odometry``: whether ego motion should be
    available (default: ``config.odom_topic`` is set); without it no frame counts as
    uncompensated.
    """

    def __init__(self, config: NodeConfig, extrinsics: Any,
                 radar_topics: Iterable[str] | None = None,
                 expect_odometry: bool | None = None,
                 on_bad: Callable[[str, str], None] | None = None) -> None:
        self.config = config
        self.extrinsics = extrinsics
        self.expect_odometry = bool(config.odom_topic) if expect_odometry is None \
            else expect_odometry
        self.on_bad = on_bad
        self.counts: Counter[str] = Counter()
        topics = config.radar_topics if radar_topics is None else tuple(radar_topics)
        self.radar = {t: RadarBuffer(config.radar_window, config.radar_max_sweeps,
                                     config.time_jump_threshold) for t in topics}
        self.odom = OdometryBuffer(time_jump_s=config.time_jump_threshold)
        self._lock = threading.Lock()
        self._infos: dict[str, deque[tuple[int, Any, np.ndarray, tuple[int, int]]]] = {}
        self._images: dict[str, deque[tuple[int, Any]]] = {}
        self._last_image_ns: int | None = None

    # ------------------------------------------------------------------ state

    def configure(self, config: NodeConfig) -> None:
        """Apply changed parameters (live ones: window, max sweeps, filters, frames)."""
        self.config = config
        for buffer in self.radar.values():
            buffer.window_ns = int(config.radar_window * 1e9)
            buffer.max_sweeps = int(config.radar_max_sweeps)

    def clear(self) -> None:
        """Forget every buffered message (deactivate)."""
        with self._lock:
            self._infos.clear()
            self._images.clear()
            self._last_image_ns = None
        for buffer in self.radar.values():
            buffer.clear()
        self.odom.clear()

    def bad(self, kind: str, reason: str) -> None:
        """Count one skipped input or frame under ``kind`` and report it."""
        with self._lock:
            self.counts[kind] += 1
        if self.on_bad is not None:
            self.on_bad(kind, reason)

    def pending(self) -> int:
        """Images still waiting for their camera_info."""
        with self._lock:
            return sum(len(q) for q in self._images.values())

    def finish(self) -> None:
        """End of input (a bag read to the end): count every still-unpaired image."""
        with self._lock:
            waiting = sum(len(q) for q in self._images.values())
            self._images.clear()
        for _ in range(waiting):
            self.bad(counters.NO_CAMERA_INFO, 'no camera_info with the stamp of the image')

    # ------------------------------------------------------------------ inputs

    def add_image(self, msg: Any, camera: str = '') -> list[PairedImage]:
        """Take an image; return it paired when its camera_info is already here."""
        stamp = msgs.stamp_to_ns(msg.header.stamp)
        evicted = jumped = False
        with self._lock:
            last = self._last_image_ns
            if last is not None and stamp < last - int(self.config.time_jump_threshold * 1e9):
                jumped = True
                self._forget_before(stamp)
            self._last_image_ns = stamp
            infos = self._infos.get(camera, ())
            match = next((i for i in infos if i[0] == stamp), None)
            if match is None:
                queue = self._images.setdefault(camera, deque())
                queue.append((stamp, msg))
                if len(queue) > PENDING_IMAGES:
                    queue.popleft()
                    evicted = True
        if jumped:
            for buffer in self.radar.values():
                buffer.clear()
            self.odom.clear()
            self.bad(counters.TIME_JUMP, f'image stamp {stamp * 1e-9:.3f} s is earlier than '
                     f'{last * 1e-9:.3f} s; buffers cleared')
        if evicted:
            self.bad(counters.NO_CAMERA_INFO, 'an image waited too long for its camera_info')
        if match is None:
            return []
        return [PairedImage(camera, stamp, msg, match[1], match[2], match[3])]

    def _forget_before(self, stamp: int) -> None:
        """Time jump: drop pairing state, keeping camera_info of this very stamp. Holds lock."""
        for infos in self._infos.values():
            kept = [entry for entry in infos if entry[0] == stamp]
            infos.clear()
            infos.extend(kept)
        self._images.clear()

    def add_camera_info(self, msg: Any, camera: str = '') -> list[PairedImage]:
        """Take a camera_info; return the waiting images of its stamp, now paired."""
        try:
            K, height, width = codec.decode_camera_info(msg)
        except codec.BadInput as exc:
            self.bad(exc.kind, exc.reason)
            return []
        stamp = msgs.stamp_to_ns(msg.header.stamp)
        entry = (stamp, msg, K, (height, width))
        with self._lock:
            self._infos.setdefault(camera, deque(maxlen=INFO_HISTORY)).append(entry)
            queue = self._images.get(camera, deque())
            waiting = [m for s, m in queue if s == stamp]
            if waiting:
                self._images[camera] = deque((s, m) for s, m in queue if s != stamp)
        return [PairedImage(camera, stamp, m, msg, K, (height, width)) for m in waiting]

    def add_radar(self, topic: str, msg: Any) -> None:
        """Decode a radar cloud of input ``topic`` with the radar parameters and buffer it."""
        config = self.config
        try:
            points = codec.decode_radar(
                msg, config.radar_max_points, config.radar_invalid_states,
                config.radar_dyn_props, config.radar_ambig_states)
        except codec.BadInput as exc:
            self.bad(exc.kind, f'{topic}: {exc.reason}')
            return
        if not msg.header.frame_id:
            self.bad(counters.UNKNOWN_FRAME, f'{topic}: empty frame_id')
            return
        sweep = RadarSweep(msgs.stamp_to_ns(msg.header.stamp), msg.header.frame_id, points)
        if self.radar[topic].add(sweep):
            self.bad(counters.TIME_JUMP, f'{topic}: stamp went backwards; radar buffer cleared')

    def add_odometry(self, msg: Any) -> None:
        """Take a ``nav_msgs/Odometry``: pose ``T_odom_from_base`` and its body twist."""
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        v, w = msg.twist.twist.linear, msg.twist.twist.angular
        twist = Twist(np.array([v.x, v.y, v.z], np.float64),
                      np.array([w.x, w.y, w.z], np.float64))
        try:
            pose = _pose_matrix(p, q)  # a zero or non-finite quaternion is bad input
        except ValueError as exc:
            self.bad(counters.ODOMETRY, str(exc))
            return
        self.add_pose(msgs.stamp_to_ns(msg.header.stamp), pose, twist)

    def add_pose(self, stamp_ns: int, T_odom_from_base: np.ndarray,
                 twist: Twist | None = None) -> None:
        """Take an ego pose (e.g. ``map -> base_link`` from /tf), with its twist if known."""
        try:
            jumped = self.odom.add(stamp_ns, T_odom_from_base, twist)
        except ValueError as exc:
            self.bad(counters.ODOMETRY, str(exc))
            return
        if jumped:
            self.bad(counters.TIME_JUMP, 'odometry stamp went backwards; odometry buffer '
                     'cleared')

    # ------------------------------------------------------------------ frames

    def camera_frame(self, paired: PairedImage) -> str:
        """Optical frame of a paired image: ``frames.camera`` or the image's frame_id."""
        return self.config.camera_frame or paired.image.header.frame_id

    def camera_sweeps(self, camera_frame: str, stamp_ns: int,
                      ) -> tuple[list[tuple[np.ndarray, np.ndarray]], bool]:
        """Return the sweeps paired with an image, and whether each got its ego motion.

        The sweeps are ``(points (N, 6), T_cam_from_radar)`` at the image time ``stamp_ns``.
        Compensation is missing only when odometry is expected (or some is buffered) and
        cannot give the motion between a sweep and the image.
        """
        chosen = [s for buffer in self.radar.values() for s in buffer.select(stamp_ns)]
        ext, base = self.extrinsics, self.config.base_frame
        sweeps, compensated = [], True
        for sweep in chosen:
            T_cam_from_base = ext.lookup(camera_frame, base, stamp_ns)
            T_base_from_radar = ext.lookup(base, sweep.frame_id, stamp_ns)
            if T_cam_from_base is None or T_base_from_radar is None:
                T = ext.lookup(camera_frame, sweep.frame_id, stamp_ns)  # e.g. same frame
                if T is None:
                    self.bad(counters.UNKNOWN_FRAME,
                             f'no transform {sweep.frame_id} -> {camera_frame}')
                    continue
            else:
                motion = np.eye(4)
                if sweep.stamp_ns != stamp_ns and (self.expect_odometry or len(self.odom)):
                    found = self.odom.motion(stamp_ns, sweep.stamp_ns)
                    if found is None:
                        compensated = False
                    else:
                        motion = found
                T = T_cam_from_base @ motion @ T_base_from_radar
            sweeps.append((sweep.points, T))
        return sweeps, compensated

    def assemble(self, paired: PairedImage) -> pipeline.Frame | None:
        """Decode the image and gather its radar into a :class:`~.pipeline.Frame`.

        None (counted under its reason) when the frame cannot be built.
        """
        try:
            camera_frame = self.camera_frame(paired)
            if not camera_frame:
                raise codec.BadInput(counters.UNKNOWN_FRAME, 'image has an empty frame_id')
            rgb = codec.decode_image(paired.image, self.config.image_type == 'compressed')
            sweeps, compensated = self.camera_sweeps(camera_frame, paired.stamp_ns)
            frame = pipeline.make_frame(paired.stamp_ns, camera_frame, rgb, paired.K,
                                        paired.size, sweeps)
        except codec.BadInput as exc:
            self.bad(exc.kind, exc.reason)
            return None
        if not compensated:
            with self._lock:
                self.counts[counters.FRAMES_UNCOMPENSATED] += 1
        return frame


def batches(paired: Iterable[PairedImage], window_s: float) -> list[list[PairedImage]]:
    """Group paired images into the batches of one forward pass each (surround view).

    In stamp order, an image joins the current batch when its stamp is within ``window_s``
    of the batch's first and the batch has no image of its camera yet.
    """
    window_ns = int(window_s * 1e9)
    out: list[list[PairedImage]] = []
    for job in sorted(paired, key=lambda j: j.stamp_ns):
        if out and job.stamp_ns - out[-1][0].stamp_ns <= window_ns and \
                all(j.camera != job.camera for j in out[-1]):
            out[-1].append(job)
        else:
            out.append([job])
    return out


def _pose_matrix(position: Any, orientation: Any) -> np.ndarray:
    """``(4, 4)`` of a geometry_msgs Point / Vector3 and Quaternion."""
    return geometry.make_transform(
        np.array([orientation.w, orientation.x, orientation.y, orientation.z]),
        np.array([position.x, position.y, position.z]))


pose_matrix = _pose_matrix
