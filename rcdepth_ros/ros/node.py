"""``rcdepth_node``: lifecycle node publishing dense depth and uncertainty from camera + radar.

Thin by design: it declares parameters, wires topics and feeds every message to the frame
assembler (:mod:`rcdepth_ros.assembler`, which owns the pairing rules and the radar and
odometry buffers), then hands complete frames to :mod:`rcdepth_ros.pipeline`. Callbacks never
run inference: an image paired with its camera_info is left in a one-slot mailbox; a worker
thread takes the newest one (older ones are dropped and counted) and asks the assembler for
its frame then, so radar that arrived just after the image is still used. Malformed input
is logged (throttled per kind), counted in /diagnostics and skipped.
Image and point outputs are built only while they have a subscriber (the camera_info and
timing topics always are), as image_transport publishers do.

Lifecycle: configure loads the weights (a missing or corrupt file fails the transition),
activate subscribes and starts the worker, deactivate stops both, cleanup releases the model.
Parameters (:mod:`.params`) marked ``live`` may be set while active and apply to the next
message or frame; the others are refused with the transition they need.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import math
import threading
import time
import traceback
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
import numpy as np
from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Float32

from .. import codec, counters, geometry, inference, msgs, pipeline
from ..assembler import FrameAssembler, PairedImage, batches
from ..calibration import CalibrationExtrinsics, load_calibration
from ..errors import UserError
from .diagnostics import NodeStats, diagnostic_status
from .extrinsics import TfExtrinsics, tf2_available
from .params import (
    SPECS_BY_NAME,
    NodeConfig,
    check_value,
    config_from_dict,
    config_values,
    declare_parameters,
    read_config,
    refusal,
)

NODE_NAME = 'rcdepth_node'
LOG_THROTTLE_S = 5.0
# How long deactivate / shutdown wait for the worker to finish its frame.
WORKER_STOP_S = 30.0
SPIN_CHECK_S = 0.2  # how often the spin loop looks for a stop signal (s)

_SUCCESS = TransitionCallbackReturn.SUCCESS
_FAILURE = TransitionCallbackReturn.FAILURE


class RcDepthNode(LifecycleNode):
    """Dense depth + uncertainty from ``~/input/image``, ``~/input/camera_info`` and radar."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        declare_parameters(self)
        self.stats = NodeStats()
        self.config: NodeConfig | None = None
        self._pipeline: pipeline.FramePipeline | None = None
        self._estimator: Any = None
        self._extrinsics: Any = None
        self._model_name = ''
        self._subs: list[Any] = []
        self._pubs: dict[str, dict[str, Any]] = {}  # camera ('' = single) -> key -> pub
        self._fused_pub: Any = None
        self._assembler: FrameAssembler | None = None
        self._mailbox: dict[str, PairedImage] = {}  # camera -> its newest paired image
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._last_colored: dict[str, float] = {}
        self._last_log: dict[str, float] = {}
        self._active = False
        self._state = 'unconfigured'  # primary lifecycle state, for the parameter callback
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        period = float(self.get_parameter('diagnostics_period').value)
        self._diag_timer = self.create_timer(period, self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # ------------------------------------------------------------------ lifecycle

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        log = self.get_logger()
        try:
            config = read_config(self)
        except ValueError as exc:
            log.error(f'configure failed: invalid parameter: {exc}')
            return _FAILURE
        try:
            estimator = inference.load_estimator(config.model_path, config.device,
                                                 config.precision, backend=config.backend)
        except UserError as exc:  # missing, corrupt or mismatched weights files
            log.error(f'configure failed: cannot load model weights: {exc}')
            return _FAILURE
        except ValueError as exc:  # device / backend / precision the machine cannot run
            log.error(f'configure failed: device {config.device!r}, backend '
                      f'{config.backend!r}, precision {config.precision!r}: {exc}')
            return _FAILURE
        except Exception as exc:  # noqa: BLE001 - a bug: fail the transition, show where
            log.error(f'configure failed: unexpected {type(exc).__name__} while loading the '
                      f'model (a bug, please report):\n{traceback.format_exc()}')
            return _FAILURE
        try:
            extrinsics = self._make_extrinsics(config)
        except (ValueError, FileNotFoundError) as exc:
            log.error(f'configure failed: extrinsics: {exc}')
            return _FAILURE
        self.config = config
        self._estimator = estimator
        self._extrinsics = extrinsics
        self._pipeline = pipeline.FramePipeline(estimator, config.min_depth, config.max_depth)
        self._model_name = str(estimator.describe().get('variant', type(estimator).__name__))
        self._create_publishers()
        self._state = 'inactive'
        log.info(f'configured: model {self._model_name} on {estimator.device} '
                 f'({config.backend}, {config.precision}), radar topics '
                 f'{list(config.radar_topics)}, extrinsics {config.extrinsics_source}')
        return _SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._worker is not None and self._worker.is_alive():
            # A worker that outlived its stop is still inside a frame: a second one would
            # share the mailbox and the model with it.
            self.get_logger().error('activate failed: the previous worker is still running '
                                    '(it did not stop on deactivate); try again later')
            return _FAILURE
        self._create_subscriptions()
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name='rcdepth_worker', daemon=True)
        self._worker.start()
        self._active = True
        self._state = 'active'
        self.get_logger().info('activated')
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._state = 'inactive'
        self._destroy_subscriptions()
        self._stop_worker()
        self._clear_buffers()
        self.get_logger().info('deactivated')
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._state = 'unconfigured'
        self.get_logger().info('cleaned up')
        return _SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._state = 'finalized'
        self._destroy_subscriptions()
        self._stop_worker()
        self._release()
        self.get_logger().info('shut down')
        return _SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.on_shutdown(state)
        return _SUCCESS

    def _make_extrinsics(self, config: NodeConfig) -> Any:
        if config.extrinsics_source == 'tf':
            if tf2_available():
                return TfExtrinsics(self, config.base_frame)
            raise ValueError('extrinsics.source is tf but tf2_ros cannot be imported; install '
                             'tf2_ros or set extrinsics.source to calibration')
        calibration = load_calibration(config.calibration_path) if config.calibration_path \
            else None
        return CalibrationExtrinsics(calibration, config.base_frame)

    def _cameras(self) -> tuple[str, ...]:
        """Camera names; ``('',)`` for the single camera on the default topics."""
        return self.config.cameras or ('',)

    def _create_publishers(self) -> None:
        qos = QoSProfile(depth=5)
        self._pubs = {}
        for camera in self._cameras():
            def pub(cls: Any, name: str, camera: str = camera) -> Any:
                return self.create_lifecycle_publisher(cls, _topic(camera, name), qos)

            self._pubs[camera] = {
                'depth': pub(Image, 'output/depth'),
                'uncertainty': pub(Image, 'output/uncertainty'),
                'camera_info': pub(CameraInfo, 'output/camera_info'),
                'colored': pub(Image, 'output/depth_colored'),
                'processing_time': pub(Float32, 'output/processing_time'),
                'model_time': pub(Float32, 'output/model_time'),
                # Always created: output.points may be switched on while active.
                'points': pub(PointCloud2, 'output/points'),
            }
        # Several cameras: their points fused in the base frame (output.points).
        self._fused_pub = self.create_lifecycle_publisher(
            PointCloud2, '~/output/points', qos) if self.config.cameras else None

    def _create_subscriptions(self) -> None:
        config = self.config
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=config.qos_depth,
            reliability=(ReliabilityPolicy.RELIABLE if config.qos_reliability == 'reliable'
                         else ReliabilityPolicy.BEST_EFFORT))
        image_type = CompressedImage if config.image_type == 'compressed' else Image
        self._subs = []
        for camera in self._cameras():
            self._subs += [
                self.create_subscription(image_type, _topic(camera, 'input/image'),
                                         lambda msg, c=camera: self._on_image(msg, c), qos),
                self.create_subscription(CameraInfo, _topic(camera, 'input/camera_info'),
                                         lambda msg, c=camera: self._on_camera_info(msg, c),
                                         qos),
            ]
        # Buffers are sized by parameters read on activate (time_jump_threshold).
        self._assembler = FrameAssembler(config, self._extrinsics, on_bad=self._bad)
        for topic in config.radar_topics:
            self._subs.append(self.create_subscription(
                PointCloud2, topic, lambda msg, t=topic: self._on_radar(t, msg), qos))
        if config.odom_topic:
            self._subs.append(self.create_subscription(Odometry, config.odom_topic,
                                                       self._on_odometry, qos))

    def _destroy_subscriptions(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []

    def _stop_worker(self) -> bool:
        """Stop the worker; False (and logged) if it is still in a frame after the wait.

        A worker that did not stop is kept, so activate can refuse to start a second one.
        """
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._worker is None:
            return True
        self._worker.join(timeout=WORKER_STOP_S)
        if self._worker.is_alive():
            self.get_logger().error(f'the worker did not stop within {WORKER_STOP_S:.0f} s '
                                    '(a frame is still running); activate will wait for it')
            return False
        self._worker = None
        return True

    def _release(self) -> None:
        for pubs in self._pubs.values():
            for pub in pubs.values():
                self.destroy_lifecycle_publisher(pub)
        if self._fused_pub is not None:
            self.destroy_lifecycle_publisher(self._fused_pub)
        self._pubs, self._fused_pub = {}, None
        if isinstance(self._extrinsics, TfExtrinsics):
            self._extrinsics.close()
        self._pipeline = self._estimator = self._extrinsics = None
        self.config = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    def _clear_buffers(self) -> None:
        if self._assembler is not None:
            self._assembler.clear()
        with self._cond:
            self._mailbox = {}

    # ------------------------------------------------------------------ callbacks

    def _bad(self, kind: str, reason: str) -> None:
        """Count and log (throttled per kind) one skipped malformed input."""
        self.stats.bad(kind)
        now = time.monotonic()
        if now - self._last_log.get(kind, -math.inf) >= LOG_THROTTLE_S:
            self._last_log[kind] = now
            self.get_logger().warning(f'skipped bad input ({kind}): {reason}')

    def _on_image(self, msg: Any, camera: str = '') -> None:
        self.stats.input(_input_name(camera, 'image'))
        for paired in self._assembler.add_image(msg, camera):
            self._submit(paired)

    def _on_camera_info(self, msg: Any, camera: str = '') -> None:
        self.stats.input(_input_name(camera, 'camera_info'))
        for paired in self._assembler.add_camera_info(msg, camera):
            self._submit(paired)

    def _on_radar(self, topic: str, msg: Any) -> None:
        self.stats.input(topic)
        self._assembler.add_radar(topic, msg)

    def _on_odometry(self, msg: Any) -> None:
        self.stats.input('odometry')
        self._assembler.add_odometry(msg)

    def _submit(self, paired: PairedImage) -> None:
        with self._cond:
            if paired.camera in self._mailbox:
                self.stats.drop()
            self._mailbox[paired.camera] = paired
            self._cond.notify()

    # ------------------------------------------------------------------ worker

    def _take(self) -> list[PairedImage]:
        """Wait for paired images; with several cameras, wait up to ``batch.window`` for all."""
        with self._cond:
            while not self._mailbox and not self._stop.is_set():
                self._cond.wait(timeout=0.5)
            if self.config is not None and len(self._cameras()) > 1:
                deadline = time.monotonic() + self.config.batch_window
                while len(self._mailbox) < len(self._cameras()) and not self._stop.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(timeout=left)
            jobs, self._mailbox = list(self._mailbox.values()), {}
        return jobs

    def _work(self) -> None:
        while not self._stop.is_set():
            jobs = self._take()
            for batch in batches(jobs, self.config.batch_window if self.config else 0.0):
                try:
                    self._process(batch)
                except codec.BadInput as exc:
                    self._bad(exc.kind, exc.reason)
                except Exception as exc:  # noqa: BLE001 - the worker must survive any frame
                    self._bad(counters.INFERENCE, f'{type(exc).__name__}: {exc}')

    def _process(self, batch: list[PairedImage]) -> None:
        """One forward pass for the images of a batch (one per camera), then their outputs."""
        start = time.perf_counter()
        pairs = [(job, self._assembler.assemble(job)) for job in batch]
        pairs = [(job, frame) for job, frame in pairs if frame is not None]  # None: counted
        if not pairs:
            return
        results = self._pipeline.process_batch([frame for _, frame in pairs])
        for (job, _), result in zip(pairs, results):
            self._publish(job, result)
        total_ms = (time.perf_counter() - start) * 1e3
        for (job, _), result in zip(pairs, results):
            pubs = self._pubs[job.camera]
            pubs['processing_time'].publish(Float32(data=float(total_ms)))
            pubs['model_time'].publish(Float32(data=float(result.model_ms)))
            self.stats.frame_done(total_ms, result.model_ms,
                                  int(np.count_nonzero(result.radar_image[0] > 0)))
        if self._fused_pub is not None:
            self._publish_fused(pairs, results)
        self.stats.uncompensated = self._assembler.counts[counters.FRAMES_UNCOMPENSATED]

    def _publish(self, job: PairedImage, result: pipeline.FrameResult) -> None:
        header = job.image.header
        pubs = self._pubs[job.camera]
        # Messages nobody receives are not built: a 32FC1 image at 896x1600 is 5.7 MB to
        # copy and serialise. Publishing to no subscriber delivers nothing anyway (volatile).
        for key, image in (('depth', result.depth), ('uncertainty', result.sigma)):
            if pubs[key].get_subscription_count() > 0:
                pubs[key].publish(msgs.build_message(
                    Image, codec.depth_image_fields(image), header=header))
        info = copy.deepcopy(job.info)
        info.header = header
        pubs['camera_info'].publish(info)
        colored = pubs['colored']
        now = time.monotonic()
        if self.config.publish_colored and colored.get_subscription_count() > 0 and (
                now - self._last_colored.get(job.camera, -math.inf)
                >= 1.0 / self.config.colored_max_rate):
            self._last_colored[job.camera] = now
            bgr = codec.colorize_depth(result.depth, self.config.max_depth)
            colored.publish(msgs.build_message(
                Image, msgs.array_to_image_fields(bgr, 'bgr8'), header=header))
        if self.config.publish_points and pubs['points'].get_subscription_count() > 0:
            points = geometry.depth_to_points(result.depth, job.K, self.config.points_stride)
            pubs['points'].publish(msgs.build_message(
                PointCloud2, codec.points_cloud_fields(points), header=header))

    def _publish_fused(self, pairs: list[tuple[PairedImage, pipeline.Frame]],
                       results: list[pipeline.FrameResult]) -> None:
        """Points of every camera of a batch in ``frames.base``, stamped like the newest image."""
        if not (self.config.publish_points and self._fused_pub.get_subscription_count() > 0):
            return
        base = self.config.base_frame
        clouds = []
        for (job, frame), result in zip(pairs, results):
            T_base_from_cam = self._extrinsics.lookup(base, frame.frame_id, frame.stamp_ns)
            if T_base_from_cam is None:
                self._bad(counters.UNKNOWN_FRAME, f'no transform {frame.frame_id} -> {base}')
                continue
            points = geometry.depth_to_points(result.depth, job.K, self.config.points_stride)
            clouds.append(geometry.points_to_camera(points, T_base_from_cam))  # (N, 3) base
        newest = max(pairs, key=lambda p: p[0].stamp_ns)[0].image.header
        header = copy.deepcopy(newest)
        header.frame_id = base
        cloud = np.concatenate(clouds) if clouds else np.zeros((0, 3), np.float32)
        self._fused_pub.publish(msgs.build_message(
            PointCloud2, codec.points_cloud_fields(cloud), header=header))

    # ------------------------------------------------------------------ parameters

    def _on_set_parameters(self, params: list[Any]) -> SetParametersResult:
        """Accept changes that can take effect now and apply the live ones; refuse the rest."""
        changes = {}
        for param in params:
            spec = SPECS_BY_NAME.get(param.name)
            if spec is None:  # not ours (use_sim_time, ...): rclpy's own checks apply
                continue
            reason = refusal(spec, self._state)
            if reason is None:
                try:
                    check_value(spec, param.value)  # ranges: rclpy checks; choices: here
                except ValueError as exc:
                    reason = str(exc)
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
            changes[spec.name] = param.value
        if not changes or self.config is None:
            return SetParametersResult(successful=True)  # read at the next configure
        try:
            config = config_from_dict({**config_values(self.config), **changes})
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self._apply_live(config)
        return SetParametersResult(successful=True)

    def _apply_live(self, config: NodeConfig) -> None:
        """Make ``config`` current; the worker and callbacks read it at their next use."""
        old, self.config = self.config, config
        changed = {f.name for f in dataclasses.fields(config)
                   if getattr(old, f.name) != getattr(config, f.name)}
        if self._assembler is not None:
            self._assembler.configure(config)
        if changed & {'min_depth', 'max_depth'} and self._estimator is not None:
            self._pipeline = pipeline.FramePipeline(self._estimator, config.min_depth,
                                                    config.max_depth)
        if 'diagnostics_period' in changed:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = self.create_timer(config.diagnostics_period,
                                                 self._publish_diagnostics)
        if changed:
            self.get_logger().info(f'parameters changed: {", ".join(sorted(changed))}')

    # ------------------------------------------------------------------ diagnostics

    def _publish_diagnostics(self) -> None:
        estimator = self._estimator
        extra = {
            'model': self._model_name or 'not loaded',
            'device': str(getattr(estimator, 'device', 'none')),
            'precision': str(getattr(estimator, 'precision', 'none')),
        }
        status = diagnostic_status(self.stats.snapshot(), f'{self.get_name()}: depth',
                                   self.get_fully_qualified_name(), extra, self._active)
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


def _topic(camera: str, name: str) -> str:
    """Topic of a camera's input or output: ``~/name`` for the single camera."""
    return f'~/{camera}/{name}' if camera else f'~/{name}'


def _input_name(camera: str, kind: str) -> str:
    """Name of a camera input in the node's counters (``image``, ``CAM_BACK/image``)."""
    return f'{camera}/{kind}' if camera else kind


def main(args: list[str] | None = None) -> int:
    """Run ``rcdepth_node`` until SIGINT / SIGTERM; autostarts (configure + activate) by parameter.

    Stopping goes through the lifecycle shutdown transition, so the worker is stopped and the
    model released by ``on_shutdown`` as for a shutdown requested over the lifecycle service.
    rclpy's own signal handlers are off: they would invalidate the context before the
    transition could run. The signals only set a flag that the spin loop checks between
    callbacks: an exception raised asynchronously inside the executor could leave it half-way
    through a callback, and the shutdown after it hanging.
    """
    import signal

    from rclpy.signals import SignalHandlerOptions

    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)
    node = RcDepthNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if node.get_parameter('autostart').value and not stop.is_set():
            if node.trigger_configure() == _SUCCESS:
                node.trigger_activate()
            else:
                node.get_logger().error('autostart: configure failed; waiting for a lifecycle '
                                        'transition (fix the parameters, then configure again)')
        while not stop.is_set():
            executor.spin_once(timeout_sec=SPIN_CHECK_S)
    except ExternalShutdownException:
        pass
    finally:
        if node._state != 'finalized':  # not already shut down over the lifecycle service
            node.trigger_shutdown()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
