"""Offline inference over a bag, without ROS: the node's frame pipeline on rosbags messages.

The bag is read in log-time order and fed through the same pieces ``rcdepth_node`` uses:
camera_info paired with the image of the same stamp, radar sweeps in
:class:`~rcdepth_ros.ros.radar_buffer.RadarBuffer` s (newest ``max_sweeps`` within ``window``
before the image stamp), ego motion from ``/odom`` (else ``map -> base_link`` in ``/tf``) in an
:class:`~rcdepth_ros.ros.radar_buffer.OdometryBuffer`, extrinsics from the calibration YAML,
:func:`~rcdepth_ros.ros.radar_buffer.sweeps_in_camera` and
:class:`~rcdepth_ros.pipeline.FramePipeline`. A frame is processed once every message with a
log time up to its own has been read (the node processes a frame right after it arrives), and
unlike the node none is dropped: one output per input image.
"""

from __future__ import annotations

from collections import Counter, deque
import dataclasses
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import codec, geometry, inference, msgs, pipeline
from ..errors import BadArgument, MissingData
from ..ros import params
from ..ros.extrinsics import (
    Calibration,
    CalibrationExtrinsics,
    SensorCalibration,
    load_calibration,
)
from ..ros.radar_buffer import OdometryBuffer, RadarBuffer, RadarSweep, sweeps_in_camera
from . import io
from .nuscenes2bag import BASE_FRAME, CALIBRATION_FILE, camera_info_topic

__all__ = ['infer_bag', 'output_topics', 'RADAR_WINDOW_S', 'RADAR_MAX_SWEEPS']

# The node's radar.window / radar.max_sweeps / min_depth / max_depth defaults, as declared.
RADAR_WINDOW_S = params.default('radar.window')
RADAR_MAX_SWEEPS = params.default('radar.max_sweeps')
MIN_DEPTH, MAX_DEPTH = params.default('min_depth'), params.default('max_depth')
# camera_info kept for pairing, images kept while their camera_info is late (as the node).
INFO_HISTORY = 30
PENDING_IMAGES = 4

_IMAGE = 'sensor_msgs/msg/Image'
_COMPRESSED = 'sensor_msgs/msg/CompressedImage'
_INFO = 'sensor_msgs/msg/CameraInfo'
_CLOUD = 'sensor_msgs/msg/PointCloud2'
_ODOM = 'nav_msgs/msg/Odometry'
_TF = 'tf2_msgs/msg/TFMessage'


def output_topics(camera: str) -> dict[str, str]:
    """Topics written by :func:`infer_bag` for ``camera``: key -> topic."""
    return {'depth': f'/{camera}/depth', 'uncertainty': f'/{camera}/uncertainty',
            'colored': f'/{camera}/depth_colored', 'camera_info': camera_info_topic(camera)}


def _image_topic(topics: dict[str, tuple[str, int]], camera: str) -> tuple[str, bool]:
    """Image topic of ``camera`` in the bag and whether it is compressed."""
    candidates = (f'/{camera}/image_rect_compressed', f'/{camera}/image_rect',
                  f'/{camera}/image_raw', f'/{camera}/image_raw/compressed')
    for topic in candidates:
        msgtype = topics.get(topic, ('', 0))[0]
        if msgtype in (_IMAGE, _COMPRESSED):
            return topic, msgtype == _COMPRESSED
    raise MissingData(f'the bag has no image topic of camera {camera} (looked for '
                      f'{", ".join(candidates)})')


def _radar_topics(topics: dict[str, tuple[str, int]], radars: Sequence[str]) -> list[str]:
    out = []
    for radar in radars:
        topic = radar if radar.startswith('/') else f'/{radar}'
        msgtype = topics.get(topic, ('', 0))[0]
        if msgtype != _CLOUD:
            raise MissingData(f'the bag has no PointCloud2 topic {topic}' +
                              (f' ({msgtype})' if msgtype else ''))
        out.append(topic)
    return out


def _calibration_from_tf_static(in_bag: Path) -> Calibration | None:
    """Sensors that ``/tf_static`` places directly under ``base_link`` (None if none)."""
    sensors: dict[str, SensorCalibration] = {}
    for _, msgtype, _, raw in io.read_messages(in_bag, ['/tf_static']):
        for tf in io.deserialize(raw, msgtype).transforms:
            if tf.header.frame_id != BASE_FRAME:
                continue
            t, r = tf.transform.translation, tf.transform.rotation
            sensors[tf.child_frame_id] = SensorCalibration(
                name=tf.child_frame_id, frame_id=tf.child_frame_id, parent_frame=BASE_FRAME,
                translation=(t.x, t.y, t.z), rotation=(r.w, r.x, r.y, r.z))
    return Calibration(BASE_FRAME, sensors) if sensors else None


def _calibration(in_bag: Path, topics: dict[str, tuple[str, int]],
                 path: str | os.PathLike[str] | None) -> tuple[Calibration | None, str]:
    """Calibration and where it came from: ``path``, the bag's sidecar, else /tf_static."""
    if path:
        return load_calibration(path), str(path)
    sidecar = in_bag / CALIBRATION_FILE
    if sidecar.is_file():
        return load_calibration(sidecar), str(sidecar)
    if topics.get('/tf_static', ('', 0))[0] == _TF:
        found = _calibration_from_tf_static(in_bag)
        if found is not None:
            return found, '/tf_static'
    return None, 'none'


def _pose(position: Any, orientation: Any) -> np.ndarray:
    return geometry.make_transform(
        np.array([orientation.w, orientation.x, orientation.y, orientation.z]),
        np.array([position.x, position.y, position.z]))


class _BagRunner:
    """The node's buffering and pairing, driven by bag messages instead of callbacks."""

    def __init__(self, frame_pipeline: pipeline.FramePipeline, extrinsics: CalibrationExtrinsics,
                 radar_topics: list[str], window: float, max_sweeps: int) -> None:
        self.pipeline = frame_pipeline
        self.extrinsics = extrinsics
        self.radar = {t: RadarBuffer(window, max_sweeps) for t in radar_topics}
        self.odom = OdometryBuffer()
        self.infos: deque[tuple[int, Any, np.ndarray, tuple[int, int]]] = deque(
            maxlen=INFO_HISTORY)
        self.waiting: list[tuple[int, Any]] = []  # images whose camera_info is not yet read
        # (log time the pair completed, image, camera_info, K, (height, width))
        self.ready: list[tuple[int, Any, Any, np.ndarray, tuple[int, int]]] = []
        self.skipped: Counter[str] = Counter()
        self.radar_points: list[int] = []

    def on_image(self, msg: Any, log_ns: int) -> None:
        stamp = msgs.stamp_to_ns(msg.header.stamp)
        match = next((i for i in self.infos if i[0] == stamp), None)
        if match is None:
            self.waiting.append((stamp, msg))
            if len(self.waiting) > PENDING_IMAGES:  # its camera_info never came
                del self.waiting[0]
                self.skipped['no_camera_info'] += 1
        else:
            self.ready.append((log_ns, msg, match[1], match[2], match[3]))

    def on_camera_info(self, msg: Any, log_ns: int) -> None:
        try:
            K, height, width = codec.decode_camera_info(msg)
        except codec.BadInput as exc:
            self.skipped[exc.kind] += 1
            return
        stamp = msgs.stamp_to_ns(msg.header.stamp)
        self.infos.append((stamp, msg, K, (height, width)))
        for _, image in [w for w in self.waiting if w[0] == stamp]:
            self.ready.append((log_ns, image, msg, K, (height, width)))
        self.waiting = [w for w in self.waiting if w[0] != stamp]

    def on_radar(self, topic: str, msg: Any) -> None:
        try:
            points = codec.decode_radar(msg)
        except codec.BadInput as exc:
            self.skipped[exc.kind] += 1
            return
        if not msg.header.frame_id:
            self.skipped['unknown_frame'] += 1
            return
        self.radar[topic].add(RadarSweep(msgs.stamp_to_ns(msg.header.stamp),
                                         msg.header.frame_id, points))

    def on_pose(self, stamp_ns: int, pose: np.ndarray) -> None:
        try:
            self.odom.add(stamp_ns, pose)
        except ValueError:
            self.skipped['odometry'] += 1

    def process(self, image: Any, K: np.ndarray, info_size: tuple[int, int],
                compressed: bool) -> pipeline.FrameResult | None:
        """Run one paired image through the pipeline; None (and counted) if it is bad."""
        stamp = msgs.stamp_to_ns(image.header.stamp)
        camera_frame = image.header.frame_id
        try:
            if not camera_frame:
                raise codec.BadInput('unknown_frame', 'image has an empty frame_id')
            rgb = codec.decode_image(image, compressed)
            chosen = [s for buffer in self.radar.values() for s in buffer.select(stamp)]
            sweeps = sweeps_in_camera(
                self.extrinsics, self.odom, camera_frame, self.extrinsics.base_frame, stamp,
                chosen, on_unknown=lambda reason: self.skipped.update(['unknown_frame']))
            frame = pipeline.make_frame(stamp, camera_frame, rgb, K, info_size, sweeps)
        except codec.BadInput as exc:
            self.skipped[exc.kind] += 1
            return None
        self.radar_points.append(int(frame.radar_points_cam.shape[0]))
        return self.pipeline.process(frame)


def infer_bag(in_bag: str | os.PathLike[str], out_bag: str | os.PathLike[str],
              model: str | os.PathLike[str] | None = None, camera: str = 'CAM_FRONT',
              radars: Sequence[str] = ('RADAR_FRONT',), device: str = 'auto',
              overwrite: bool = False, progress: bool = True,
              calibration: str | os.PathLike[str] | None = None,
              window: float = RADAR_WINDOW_S, max_sweeps: int = RADAR_MAX_SWEEPS,
              backend: str = 'torch', precision: str = 'fp32') -> dict[str, Any]:
    """Write depth, uncertainty and coloured depth of every ``camera`` image to ``out_bag``.

    ``model``: weights path without suffix (None = the shipped demo weights). ``radars``:
    radar channel names or topics. ``calibration``: YAML path; default the bag's sidecar
    ``calibration.yaml``, else ``/tf_static``. ``backend`` / ``precision`` as the node's
    parameters (:mod:`rcdepth_ros.backends`). Output topics (:func:`output_topics`):
    ``/<camera>/depth`` and ``/<camera>/uncertainty`` (32FC1, metres, NaN = invalid),
    ``/<camera>/depth_colored`` (bgr8) and ``/<camera>/camera_info``, stamped like the input.
    Returns a summary with per-topic counts, skipped inputs by kind and mean timings.
    """
    from tqdm import tqdm

    in_bag, out_bag = Path(in_bag).expanduser(), Path(out_bag).expanduser()
    topics = io.bag_topics(in_bag)
    if out_bag.resolve() == in_bag.resolve():
        raise BadArgument('the output bag must differ from the input bag')
    if (out_bag.exists() or out_bag.is_symlink()) and not overwrite:
        raise BadArgument(f'{out_bag} already exists (use --overwrite to replace it)')
    image_topic, compressed = _image_topic(topics, camera)
    info_topic = camera_info_topic(camera)
    if topics.get(info_topic, ('', 0))[0] != _INFO:
        raise MissingData(f'the bag has no CameraInfo topic {info_topic}')
    radar_topics = _radar_topics(topics, radars)
    calib, calib_source = _calibration(in_bag, topics, calibration)
    if calib is None and radar_topics:
        raise MissingData(f'no calibration for the radars: no {CALIBRATION_FILE} in the bag, '
                          'no /tf_static; pass --calibration')
    if topics.get('/odom', ('', 0))[0] == _ODOM:
        motion_topic = '/odom'
    elif topics.get('/tf', ('', 0))[0] == _TF:
        motion_topic = '/tf'
    else:
        motion_topic = None
    if max_sweeps < 1 or window < 0:
        raise BadArgument(f'need window >= 0 and max_sweeps >= 1, got {window}, {max_sweeps}')

    estimator = inference.load_estimator(model, device, precision, backend=backend)
    runner = _BagRunner(pipeline.FramePipeline(estimator, MIN_DEPTH, MAX_DEPTH),
                        CalibrationExtrinsics(calib, BASE_FRAME), radar_topics, window,
                        max_sweeps)
    names = output_topics(camera)
    counts: Counter[str] = Counter()
    model_ms: list[float] = []
    total_ms: list[float] = []
    read = [image_topic, info_topic, *radar_topics] + ([motion_topic] if motion_topic else [])
    n_images = topics[image_topic][1]

    with io.open_writer(out_bag, overwrite=overwrite) as writer, \
            tqdm(total=n_images, desc='infer-bag', unit='img', disable=not progress) as bar:
        conns = {key: io.add_topic(writer, topic, _INFO if key == 'camera_info' else _IMAGE)
                 for key, topic in names.items()}

        def write(key: str, msg: Any, stamp: int) -> None:
            msgtype = _INFO if key == 'camera_info' else _IMAGE
            writer.write(conns[key], stamp, io.serialize(msg, msgtype))
            counts[names[key]] += 1

        def flush(before_ns: int | None) -> None:
            """Process the paired frames completed before log time ``before_ns`` (None: all).

            Waiting for a later log time means every message up to the pair's own log time
            (a radar sweep or odometry of the same instant) is buffered first.
            """
            keep = []
            for entry in runner.ready:
                done_ns, image, info, K, size = entry
                if before_ns is not None and done_ns >= before_ns:
                    keep.append(entry)
                    continue
                result = runner.process(image, K, size, compressed)
                bar.update(1)
                if result is None:
                    continue
                stamp = msgs.stamp_to_ns(image.header.stamp)
                image_cls = io.TYPESTORE.types[_IMAGE]
                write('depth', msgs.build_message(
                    image_cls, codec.depth_image_fields(result.depth),
                    header=image.header), stamp)
                write('uncertainty', msgs.build_message(
                    image_cls, codec.depth_image_fields(result.sigma),
                    header=image.header), stamp)
                bgr = codec.colorize_depth(result.depth, runner.pipeline.max_depth)
                write('colored', msgs.build_message(
                    image_cls, msgs.array_to_image_fields(bgr, 'bgr8'),
                    header=image.header), stamp)
                write('camera_info', dataclasses.replace(info, header=image.header), stamp)
                model_ms.append(result.model_ms)
                total_ms.append(result.total_ms)
            runner.ready = keep

        for topic, msgtype, log_ns, raw in io.read_messages(in_bag, read):
            flush(log_ns)
            msg = io.deserialize(raw, msgtype)
            if topic == image_topic:
                runner.on_image(msg, log_ns)
            elif topic == info_topic:
                runner.on_camera_info(msg, log_ns)
            elif topic in runner.radar:
                runner.on_radar(topic, msg)
            elif topic == '/odom':
                runner.on_pose(msgs.stamp_to_ns(msg.header.stamp),
                               _pose(msg.pose.pose.position, msg.pose.pose.orientation))
            else:  # /tf: map (or odom) -> base_link
                for tf in msg.transforms:
                    if tf.child_frame_id == BASE_FRAME:
                        runner.on_pose(msgs.stamp_to_ns(tf.header.stamp),
                                       _pose(tf.transform.translation, tf.transform.rotation))
        flush(None)
        if runner.waiting:
            runner.skipped['no_camera_info'] += len(runner.waiting)
        bar.update(n_images - bar.n)  # images skipped for lack of camera_info

    frames = counts[names['depth']]
    return {
        'bag': str(out_bag), 'images': n_images, 'frames': frames,
        'topics': {names[k]: counts[names[k]] for k in names},
        'skipped': dict(runner.skipped), 'calibration': calib_source,
        'ego_motion': motion_topic or 'none', 'camera': camera, 'radars': radar_topics,
        'model_ms_mean': float(np.mean(model_ms)) if model_ms else float('nan'),
        'total_ms_mean': float(np.mean(total_ms)) if total_ms else float('nan'),
        'radar_points_mean': float(np.mean(runner.radar_points)) if runner.radar_points
        else 0.0,
    }
