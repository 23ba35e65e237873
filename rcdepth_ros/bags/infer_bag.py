"""Offline inference over a bag, without ROS: the node's frame assembler and pipeline.

The bag is read in log-time order and every message is fed to the same
:class:`~rcdepth_ros.assembler.FrameAssembler` that ``rcdepth_node`` feeds from its callbacks
(image paired with the camera_info of its stamp, per-radar windows and the sweep-selection
rule, ego motion from ``/odom``, else ``map -> base_link`` in ``/tf``, time jumps), with the
node's parameters (a ``--params-file``, read by :func:`rcdepth_ros.ros.params.read_params_file`,
then the tool's options), extrinsics from the calibration YAML, and
:class:`~rcdepth_ros.pipeline.FramePipeline`. A frame is assembled once every message with a
log time up to its own has been read (the node assembles a frame right after it arrives),
and unlike the node none is dropped: one output per input image that has a camera_info.
"""

from __future__ import annotations

from collections import Counter
import dataclasses
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .. import codec, counters, inference, msgs, pipeline
from ..assembler import FrameAssembler, PairedImage, batches, pose_matrix
from ..calibration import Calibration, CalibrationExtrinsics, SensorCalibration, load_calibration
from ..errors import BadArgument, BadInputFile, MissingData
from ..ros import params
from ..ros.params import NodeConfig
from . import io
from .nuscenes2bag import BASE_FRAME, CALIBRATION_FILE, camera_info_topic

__all__ = ['infer_bag', 'output_topics', 'tool_config', 'BagFrames', 'bag_cameras']

_IMAGE = 'sensor_msgs/msg/Image'
_COMPRESSED = 'sensor_msgs/msg/CompressedImage'
_INFO = 'sensor_msgs/msg/CameraInfo'
_CLOUD = 'sensor_msgs/msg/PointCloud2'
_ODOM = 'nav_msgs/msg/Odometry'
_TF = 'tf2_msgs/msg/TFMessage'
_IMAGE_SUFFIXES = ('image_rect_compressed', 'image_rect', 'image_raw', 'image_raw/compressed')


def tool_config(params_file: str | os.PathLike[str] | None = None,
                **given: Any) -> NodeConfig:
    """Return the node's parameters for a tool: ``params_file`` (node YAML), then ``given``.

    ``given`` maps ROS names to the tool's options; None means "not given" (the file's value
    or the declared default stays). Bad files and values are :class:`BadInputFile` /
    :class:`BadArgument`.
    """
    values: dict[str, Any] = {}
    if params_file is not None:
        path = Path(params_file).expanduser()
        if not path.is_file():
            raise MissingData(f'parameters file not found: {path}')
        try:
            values = params.read_params_file(path)
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise BadInputFile(str(exc)) from None
    values.update({k: v for k, v in given.items() if v is not None})
    try:
        return params.config_from_dict(values)
    except ValueError as exc:
        raise BadArgument(str(exc)) from None


def output_topics(camera: str) -> dict[str, str]:
    """Topics written by :func:`infer_bag` for ``camera``: key -> topic."""
    return {'depth': f'/{camera}/depth', 'uncertainty': f'/{camera}/uncertainty',
            'colored': f'/{camera}/depth_colored', 'camera_info': camera_info_topic(camera)}


def _image_topic(topics: dict[str, tuple[str, int]], camera: str) -> tuple[str, bool]:
    """Image topic of ``camera`` in the bag and whether it is compressed."""
    candidates = tuple(f'/{camera}/{suffix}' for suffix in _IMAGE_SUFFIXES)
    for topic in candidates:
        msgtype = topics.get(topic, ('', 0))[0]
        if msgtype in (_IMAGE, _COMPRESSED):
            return topic, msgtype == _COMPRESSED
    raise MissingData(f'the bag has no image topic of camera {camera} (looked for '
                      f'{", ".join(candidates)})')


def bag_cameras(topics: dict[str, tuple[str, int]]) -> list[str]:
    """Cameras of a bag: names with an image topic and a CameraInfo topic, sorted."""
    names = set()
    for topic, (msgtype, _) in topics.items():
        for suffix in _IMAGE_SUFFIXES:
            if topic.endswith('/' + suffix) and msgtype in (_IMAGE, _COMPRESSED):
                names.add(topic[1:-len(suffix) - 1])
    return sorted(n for n in names if topics.get(camera_info_topic(n), ('', 0))[0] == _INFO)


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


class BagFrames:
    """The frames of a bag as the node would assemble them: iterate for (paired, frame).

    ``config``: the node's parameters (:func:`tool_config`); its ``image_type``,
    ``radar_topics`` and calibration are replaced by what the bag holds (``radars``:
    channel names or topics; ``calibration``: a YAML path, default the parameter
    ``extrinsics.calibration_path``, else the bag's sidecar, else ``/tf_static``). A frame the
    assembler cannot build (bad input) is counted in ``assembler.counts`` and not yielded.
    """

    def __init__(self, in_bag: str | os.PathLike[str], config: NodeConfig,
                 cameras: Sequence[str] = ('CAM_FRONT',),
                 radars: Sequence[str] = ('RADAR_FRONT',),
                 calibration: str | os.PathLike[str] | None = None) -> None:
        self.bag = Path(in_bag).expanduser()
        topics = io.bag_topics(self.bag)
        if not cameras:
            raise BadArgument('no camera to run')
        self.images: dict[str, str] = {}  # image topic -> camera
        self.infos: dict[str, str] = {}  # camera_info topic -> camera
        kinds = set()
        for camera in cameras:
            topic, compressed = _image_topic(topics, camera)
            info = camera_info_topic(camera)
            if topics.get(info, ('', 0))[0] != _INFO:
                raise MissingData(f'the bag has no CameraInfo topic {info}')
            self.images[topic], self.infos[info] = camera, camera
            kinds.add(compressed)
        if len(kinds) != 1:
            raise BadArgument('the cameras mix raw and compressed images (image_type is one '
                              'parameter)')
        self.n_images = sum(topics[t][1] for t in self.images)
        self.radar_topics = _radar_topics(topics, radars)
        path = calibration or config.calibration_path or None
        calib, self.calibration_source = _calibration(self.bag, topics, path)
        if calib is None and self.radar_topics:
            raise MissingData(f'no calibration for the radars: no {CALIBRATION_FILE} in the '
                              'bag, no /tf_static; pass --calibration')
        if topics.get('/odom', ('', 0))[0] == _ODOM:
            self.motion_topic: str | None = '/odom'
        elif topics.get('/tf', ('', 0))[0] == _TF:
            self.motion_topic = '/tf'
        else:
            self.motion_topic = None
        self.config = dataclasses.replace(
            config, image_type='compressed' if kinds.pop() else 'raw',
            radar_topics=tuple(self.radar_topics), odom_topic=self.motion_topic or '',
            calibration_path=str(path or ''))
        self.assembler = FrameAssembler(
            self.config, CalibrationExtrinsics(calib, self.config.base_frame))

    def __iter__(self) -> Iterator[tuple[PairedImage, pipeline.Frame]]:
        assembler = self.assembler
        ready: list[tuple[int, PairedImage]] = []  # (log time the pair completed, pair)

        def due(before_ns: int | None) -> Iterator[tuple[PairedImage, pipeline.Frame]]:
            """Frames of the pairs completed before log time ``before_ns`` (None: all).

            Waiting for a later log time means every message up to the pair's own log time
            (a radar sweep or odometry of the same instant) is buffered first.
            """
            while ready and (before_ns is None or ready[0][0] < before_ns):
                _, paired = ready.pop(0)
                frame = assembler.assemble(paired)
                if frame is not None:
                    yield paired, frame

        read = [*self.images, *self.infos, *self.radar_topics] + (
            [self.motion_topic] if self.motion_topic else [])
        for topic, msgtype, log_ns, raw in io.read_messages(self.bag, read):
            yield from due(log_ns)
            msg = io.deserialize(raw, msgtype)
            if topic in self.images:
                ready += [(log_ns, p) for p in assembler.add_image(msg, self.images[topic])]
            elif topic in self.infos:
                ready += [(log_ns, p) for p in assembler.add_camera_info(msg,
                                                                         self.infos[topic])]
            elif topic in assembler.radar:
                assembler.add_radar(topic, msg)
            elif topic == '/odom':
                assembler.add_odometry(msg)
            else:  # /tf: map (or odom) -> base_link
                for tf in msg.transforms:
                    if tf.child_frame_id == self.config.base_frame:
                        assembler.add_pose(msgs.stamp_to_ns(tf.header.stamp),
                                           pose_matrix(tf.transform.translation,
                                                       tf.transform.rotation))
        yield from due(None)
        assembler.finish()


def _batched(frames: BagFrames, frame_pipeline: pipeline.FramePipeline, window_s: float,
             sizes: list[int]) -> Iterator[tuple[PairedImage, pipeline.Frame,
                                                 pipeline.FrameResult]]:
    """Run the frames as the node batches them (:func:`~rcdepth_ros.assembler.batches`).

    Frames come in log order; a batch is run once a frame arrives that cannot join it. The
    size of each batch run is appended to ``sizes``.
    """
    pending: list[tuple[PairedImage, pipeline.Frame]] = []

    def run() -> Iterator[tuple[PairedImage, pipeline.Frame, pipeline.FrameResult]]:
        results = frame_pipeline.process_batch([frame for _, frame in pending])
        sizes.append(len(pending))
        yield from ((p, f, r) for (p, f), r in zip(pending, results))
        pending.clear()

    for paired, frame in frames:
        if pending and len(batches([p for p, _ in pending] + [paired], window_s)) > 1:
            yield from run()
        pending.append((paired, frame))
    if pending:
        yield from run()


def infer_bag(in_bag: str | os.PathLike[str], out_bag: str | os.PathLike[str],
              model: str | os.PathLike[str] | None = None,
              cameras: Sequence[str] | str = ('CAM_FRONT',),
              radars: Sequence[str] = ('RADAR_FRONT',), device: str | None = None,
              overwrite: bool = False, progress: bool = True,
              calibration: str | os.PathLike[str] | None = None,
              window: float | None = None, max_sweeps: int | None = None,
              backend: str | None = None, precision: str | None = None,
              params_file: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Write depth, uncertainty and coloured depth of every camera image to ``out_bag``.

    Parameters are the node's: ``params_file`` (the node's YAML) first, then the options
    given here (None = not given): ``model`` (weights path without suffix; unset = the
    shipped demo weights), ``device``, ``backend``, ``precision``, ``window``,
    ``max_sweeps``. ``cameras``: camera channels, or ``'all'`` (every camera with images
    and camera_info in the bag). ``radars``: radar channel names or topics.
    ``calibration``: YAML path; default ``extrinsics.calibration_path``, else the bag's
    sidecar ``calibration.yaml``, else ``/tf_static``. Output topics per camera
    (:func:`output_topics`): ``/<camera>/depth`` and ``/<camera>/uncertainty`` (32FC1,
    metres, NaN = invalid), ``/<camera>/depth_colored`` (bgr8) and ``/<camera>/camera_info``,
    stamped like the input. Returns a summary with per-topic counts, skipped inputs by
    reason and mean timings.
    """
    from tqdm import tqdm

    in_bag, out_bag = Path(in_bag).expanduser(), Path(out_bag).expanduser()
    topics = io.bag_topics(in_bag)
    if out_bag.resolve() == in_bag.resolve():
        raise BadArgument('the output bag must differ from the input bag')
    if (out_bag.exists() or out_bag.is_symlink()) and not overwrite:
        raise BadArgument(f'{out_bag} already exists (use --overwrite to replace it)')
    if cameras == 'all' or list(cameras) == ['all']:
        cameras = bag_cameras(topics)
        if not cameras:
            raise MissingData(f'the bag {in_bag} has no camera with images and camera_info')
    config = tool_config(params_file, model_path=None if model is None else str(model),
                         device=device, backend=backend, precision=precision,
                         **{'radar.window': window, 'radar.max_sweeps': max_sweeps})
    frames = BagFrames(in_bag, config, cameras, radars, calibration)
    config = frames.config
    estimator = inference.load_estimator(config.model_path or None, config.device,
                                         config.precision, backend=config.backend)
    frame_pipeline = pipeline.FramePipeline(estimator, config.min_depth, config.max_depth)
    names = {camera: output_topics(camera) for camera in cameras}
    counts: Counter[str] = Counter()
    model_ms: list[float] = []
    total_ms: list[float] = []
    radar_points: list[int] = []
    batch_sizes: list[int] = []  # images per forward pass
    image_cls = io.TYPESTORE.types[_IMAGE]

    with io.open_writer(out_bag, overwrite=overwrite) as writer, \
            tqdm(total=frames.n_images, desc='infer-bag', unit='img',
                 disable=not progress) as bar:
        conns = {(camera, key): io.add_topic(writer, topic,
                                             _INFO if key == 'camera_info' else _IMAGE)
                 for camera, topics_of in names.items() for key, topic in topics_of.items()}

        def write(camera: str, key: str, msg: Any, stamp: int) -> None:
            msgtype = _INFO if key == 'camera_info' else _IMAGE
            writer.write(conns[camera, key], stamp, io.serialize(msg, msgtype))
            counts[names[camera][key]] += 1

        for paired, frame, result in _batched(frames, frame_pipeline, config.batch_window,
                                              batch_sizes):
            bar.update(1)
            header, camera, stamp = paired.image.header, paired.camera, paired.stamp_ns
            write(camera, 'depth', msgs.build_message(
                image_cls, codec.depth_image_fields(result.depth), header=header), stamp)
            write(camera, 'uncertainty', msgs.build_message(
                image_cls, codec.depth_image_fields(result.sigma), header=header), stamp)
            bgr = codec.colorize_depth(result.depth, config.max_depth)
            write(camera, 'colored', msgs.build_message(
                image_cls, msgs.array_to_image_fields(bgr, 'bgr8'), header=header), stamp)
            write(camera, 'camera_info', dataclasses.replace(paired.info, header=header),
                  stamp)
            model_ms.append(result.model_ms)
            total_ms.append(result.total_ms)
            radar_points.append(int(frame.radar_points_cam.shape[0]))
        bar.update(frames.n_images - bar.n)  # images skipped (no camera_info, bad input)

    done = sum(counts[n['depth']] for n in names.values())
    return {
        'bag': str(out_bag), 'images': frames.n_images, 'frames': done,
        'topics': {topic: counts[topic] for n in names.values() for topic in n.values()},
        'skipped': {k: v for k, v in frames.assembler.counts.items()
                    if k != counters.FRAMES_UNCOMPENSATED},
        'uncompensated': frames.assembler.counts[counters.FRAMES_UNCOMPENSATED],
        'calibration': frames.calibration_source,
        'ego_motion': frames.motion_topic or 'none', 'cameras': list(cameras),
        'radars': frames.radar_topics,
        'model_ms_mean': float(np.mean(model_ms)) if model_ms else float('nan'),
        'total_ms_mean': float(np.mean(total_ms)) if total_ms else float('nan'),
        'radar_points_mean': float(np.mean(radar_points)) if radar_points else 0.0,
        'forward_passes': len(batch_sizes),
        'batch_size_max': max(batch_sizes, default=0),
    }
