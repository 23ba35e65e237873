"""Parameters of ``rcdepth_node``: one table of specs, declared with descriptors and validated.

Every parameter is declared with its type, a description and, where it has one, a range or
a set of allowed values. :func:`read_config` turns the declared parameters into a frozen
:class:`NodeConfig`; :func:`validate_config` raises ``ValueError`` with a one-line reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
)
from rclpy.exceptions import ParameterUninitializedException
from rclpy.parameter import Parameter


@dataclass(frozen=True)
class NodeConfig:
    """Validated parameters of the node; ``ParamSpec.attr`` maps ROS names to fields."""

    autostart: bool = True
    model_path: str = ''
    device: str = 'auto'
    precision: str = 'fp32'
    image_type: str = 'raw'
    radar_topics: tuple[str, ...] = ('~/input/radar',)
    radar_window: float = 0.1
    radar_max_sweeps: int = 1
    radar_max_points: int = 20000
    radar_invalid_states: tuple[int, ...] = ()
    radar_dyn_props: tuple[int, ...] = ()
    radar_ambig_states: tuple[int, ...] = ()
    extrinsics_source: str = 'calibration'
    calibration_path: str = ''
    odom_topic: str = '/odom'
    base_frame: str = 'base_link'
    camera_frame: str = ''
    min_depth: float = 1.0
    max_depth: float = 100.0
    time_jump_threshold: float = 1.0
    qos_reliability: str = 'best_effort'
    qos_depth: int = 5
    publish_points: bool = False
    points_stride: int = 4
    publish_colored: bool = True
    colored_max_rate: float = 5.0
    diagnostics_period: float = 1.0


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter: ROS name, type, default, description, range or choices."""

    name: str
    attr: str
    type: int
    default: Any
    description: str
    float_range: tuple[float, float] | None = None
    int_range: tuple[int, int] | None = None
    choices: tuple[str, ...] | None = None


_T = ParameterType
PARAM_SPECS: tuple[ParamSpec, ...] = (
    ParamSpec('autostart', 'autostart', _T.PARAMETER_BOOL, True,
              'Configure and activate the lifecycle node on start.'),
    ParamSpec('model_path', 'model_path', _T.PARAMETER_STRING, '',
              'Weights path without extension (<path>.safetensors + <path>.json); empty = the '
              'shipped demo weights models/xdrcdepth_demo.'),
    ParamSpec('device', 'device', _T.PARAMETER_STRING, 'auto',
              'Inference device; auto = cuda if available.',
              choices=('auto', 'cpu', 'cuda')),
    ParamSpec('precision', 'precision', _T.PARAMETER_STRING, 'fp32',
              'Inference precision (fp16 on GPU only).',
              choices=('fp32', 'fp16')),
    ParamSpec('image_type', 'image_type', _T.PARAMETER_STRING, 'raw',
              'Type of ~/input/image: sensor_msgs/Image (raw) or CompressedImage (compressed).',
              choices=('raw', 'compressed')),
    ParamSpec('radar_topics', 'radar_topics', _T.PARAMETER_STRING_ARRAY, ['~/input/radar'],
              'Radar PointCloud2 topics (nuScenes 43-byte or x/y/z[/rcs/vx/vy] layouts).'),
    ParamSpec('radar.window', 'radar_window', _T.PARAMETER_DOUBLE, 0.1,
              'Seconds of radar kept per radar before the image time.', float_range=(0.0, 5.0)),
    ParamSpec('radar.max_sweeps', 'radar_max_sweeps', _T.PARAMETER_INTEGER, 1,
              'Most recent sweeps used per radar within the window.', int_range=(1, 50)),
    ParamSpec('radar.max_points', 'radar_max_points', _T.PARAMETER_INTEGER, 20000,
              'Clouds with more points are rejected as malformed (huge cloud).',
              int_range=(1, 10_000_000)),
    ParamSpec('radar.invalid_states', 'radar_invalid_states', _T.PARAMETER_INTEGER_ARRAY, None,
              'Keep only these nuScenes invalid_state values; unset = no filter.'),
    ParamSpec('radar.dyn_props', 'radar_dyn_props', _T.PARAMETER_INTEGER_ARRAY, None,
              'Keep only these nuScenes dyn_prop values; unset = no filter.'),
    ParamSpec('radar.ambig_states', 'radar_ambig_states', _T.PARAMETER_INTEGER_ARRAY, None,
              'Keep only these nuScenes ambig_state values; unset = no filter.'),
    ParamSpec('extrinsics.source', 'extrinsics_source', _T.PARAMETER_STRING, 'calibration',
              'Sensor extrinsics from tf2 (needs tf2_ros) or from the calibration YAML.',
              choices=('tf', 'calibration')),
    ParamSpec('extrinsics.calibration_path', 'calibration_path', _T.PARAMETER_STRING, '',
              'Calibration YAML (docs/ARCHITECTURE.md); empty = only identical frames.'),
    ParamSpec('odom_topic', 'odom_topic', _T.PARAMETER_STRING, '/odom',
              'nav_msgs/Odometry topic for radar ego-motion compensation; empty = none.'),
    ParamSpec('frames.base', 'base_frame', _T.PARAMETER_STRING, 'base_link',
              'Vehicle body frame.'),
    ParamSpec('frames.camera', 'camera_frame', _T.PARAMETER_STRING, '',
              'Optical frame of the camera; empty = frame_id of the image header.'),
    ParamSpec('min_depth', 'min_depth', _T.PARAMETER_DOUBLE, 1.0,
              'Depth below this is published as NaN (metres).', float_range=(0.0, 1000.0)),
    ParamSpec('max_depth', 'max_depth', _T.PARAMETER_DOUBLE, 100.0,
              'Depth above this is published as NaN (metres).', float_range=(0.0, 1000.0)),
    ParamSpec('time_jump_threshold', 'time_jump_threshold', _T.PARAMETER_DOUBLE, 1.0,
              'A stamp earlier than the last by more than this (s) clears the buffers.',
              float_range=(0.0, 3600.0)),
    ParamSpec('qos.reliability', 'qos_reliability', _T.PARAMETER_STRING, 'best_effort',
              'Reliability of the input subscriptions.', choices=('best_effort', 'reliable')),
    ParamSpec('qos.depth', 'qos_depth', _T.PARAMETER_INTEGER, 5,
              'History depth of the input subscriptions.',
              int_range=(1, 1000)),
    ParamSpec('output.points', 'publish_points', _T.PARAMETER_BOOL, False,
              'Publish ~/output/points (PointCloud2).'),
    ParamSpec('output.points_stride', 'points_stride', _T.PARAMETER_INTEGER, 4,
              'Pixel stride of ~/output/points.', int_range=(1, 64)),
    ParamSpec('output.colored', 'publish_colored', _T.PARAMETER_BOOL, True,
              'Publish ~/output/depth_colored (bgr8) while it has subscribers.'),
    ParamSpec('output.colored_max_rate', 'colored_max_rate', _T.PARAMETER_DOUBLE, 5.0,
              'Most colourised depth images a second (Hz).', float_range=(0.01, 1000.0)),
    ParamSpec('diagnostics_period', 'diagnostics_period', _T.PARAMETER_DOUBLE, 1.0,
              'Seconds between /diagnostics messages.', float_range=(0.05, 60.0)),
)

_TYPE_OF = {
    _T.PARAMETER_BOOL: Parameter.Type.BOOL,
    _T.PARAMETER_INTEGER: Parameter.Type.INTEGER,
    _T.PARAMETER_DOUBLE: Parameter.Type.DOUBLE,
    _T.PARAMETER_STRING: Parameter.Type.STRING,
    _T.PARAMETER_STRING_ARRAY: Parameter.Type.STRING_ARRAY,
    _T.PARAMETER_INTEGER_ARRAY: Parameter.Type.INTEGER_ARRAY,
}


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """Build the ROS parameter descriptor (type, description, range, choices) of a spec."""
    desc = ParameterDescriptor(name=spec.name, type=spec.type, description=spec.description,
                               read_only=False)
    if spec.float_range is not None:
        desc.floating_point_range = [FloatingPointRange(
            from_value=float(spec.float_range[0]), to_value=float(spec.float_range[1]), step=0.0)]
    if spec.int_range is not None:
        desc.integer_range = [IntegerRange(
            from_value=int(spec.int_range[0]), to_value=int(spec.int_range[1]), step=0)]
    if spec.choices is not None:
        desc.additional_constraints = 'one of: ' + ', '.join(spec.choices)
    return desc


def declare_parameters(node: Any) -> None:
    """Declare every parameter of :data:`PARAM_SPECS` on ``node`` with its descriptor."""
    for spec in PARAM_SPECS:
        # Integer-array filters default to "unset": an empty list has no ROS type.
        value = _TYPE_OF[spec.type] if spec.default is None else spec.default
        node.declare_parameter(spec.name, value, descriptor(spec))


def _value(node: Any, name: str) -> Any:
    try:
        return node.get_parameter(name).value
    except ParameterUninitializedException:
        return None


def read_config(node: Any) -> NodeConfig:
    """Read the declared parameters of ``node`` into a validated :class:`NodeConfig`."""
    values = {spec.name: _value(node, spec.name) for spec in PARAM_SPECS}
    return config_from_dict(values)


def config_from_dict(values: dict[str, Any]) -> NodeConfig:
    """Build and validate a :class:`NodeConfig` from ROS parameter names to values."""
    by_name = {spec.name: spec for spec in PARAM_SPECS}
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        if name not in by_name:
            raise ValueError(f'unknown parameter {name!r}')
        if value is None:
            continue
        kwargs[by_name[name].attr] = tuple(value) if isinstance(value, list | tuple) else value
    config = NodeConfig(**kwargs)
    validate_config(config)
    return config


def validate_config(config: NodeConfig) -> None:
    """Raise ``ValueError`` with a one-line reason if ``config`` is inconsistent."""
    for spec in PARAM_SPECS:
        value = getattr(config, spec.attr)
        if spec.choices is not None and value not in spec.choices:
            raise ValueError(f'parameter {spec.name} = {value!r} is not one of {spec.choices}')
        bounds = spec.float_range or spec.int_range
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            raise ValueError(f'parameter {spec.name} = {value!r} is outside {list(bounds)}')
    if not 0.0 <= config.min_depth < config.max_depth:
        raise ValueError(f'need 0 <= min_depth < max_depth, got min_depth={config.min_depth} '
                         f'max_depth={config.max_depth}')
    if len(set(config.radar_topics)) != len(config.radar_topics):
        raise ValueError(f'radar_topics has duplicates: {list(config.radar_topics)}')
    if any(not t for t in config.radar_topics):
        raise ValueError('radar_topics contains an empty topic name')
    if not config.base_frame:
        raise ValueError('frames.base must not be empty')
