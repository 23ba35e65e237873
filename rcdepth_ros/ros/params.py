"""Parameters of ``rcdepth_node``, declared once: :data:`PARAM_SPECS`.

Each :class:`ParamSpec` holds a parameter's name, type, default, description, range or
choices, and when a change takes effect (``applies``). Everything else is derived from it:

- the ROS descriptors (:func:`descriptor`, ``FloatingPointRange`` / ``IntegerRange``; rclpy
  enforces ranges, :func:`check_value` the choices) and :func:`declare_parameters`;
- :class:`NodeConfig`, the validated values (:func:`config_from_dict`, :func:`read_config`);
- ``config/rcdepth.yaml`` (:func:`params_yaml`) and the table in docs/ARCHITECTURE.md
  (:func:`params_markdown`), both printed by ``rcdepth params`` and checked by a test;
- the defaults of the bag tools' options (:func:`default`).

``applies`` says what a change needs while the node runs: ``live`` (the next message or
frame uses it), ``activate`` (read when subscribing: deactivate, set, activate),
``configure`` (read when loading: deactivate, cleanup, set, configure, activate) or
``start`` (read once at process start). The node's set-parameters callback applies live
changes and refuses the others while they cannot take effect, naming the transition.

No rclpy import at module level: the bag tools read the defaults without ROS.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
import re
from typing import Any

from ..sweeps import DEFAULT_MAX_SWEEPS, DEFAULT_WINDOW_S

# When a change takes effect; see the module docstring.
LIVE, ACTIVATE, CONFIGURE, START = 'live', 'activate', 'configure', 'start'
APPLIES = (LIVE, ACTIVATE, CONFIGURE, START)
KINDS = ('bool', 'integer', 'double', 'string', 'string_array', 'integer_array')


@dataclass(frozen=True)
class NodeConfig:
    """Validated parameters of the node; ``ParamSpec.attr`` maps ROS names to fields.

    No defaults here: they are the specs' (:func:`config_from_dict` fills them in).
    """

    autostart: bool
    model_path: str
    device: str
    backend: str
    precision: str
    image_type: str
    radar_topics: tuple[str, ...]
    radar_window: float
    radar_max_sweeps: int
    radar_max_points: int
    radar_invalid_states: tuple[int, ...]
    radar_dyn_props: tuple[int, ...]
    radar_ambig_states: tuple[int, ...]
    extrinsics_source: str
    calibration_path: str
    odom_topic: str
    base_frame: str
    camera_frame: str
    cameras: tuple[str, ...]
    batch_window: float
    min_depth: float
    max_depth: float
    time_jump_threshold: float
    qos_reliability: str
    qos_depth: int
    publish_points: bool
    points_stride: int
    publish_colored: bool
    colored_max_rate: float
    diagnostics_period: float


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter: ROS name, field, type, default, description, bounds, timing.

    ``default`` None (arrays only) means unset: an empty list has no ROS type, so the
    parameter is declared by type and reads back as an empty tuple.
    """

    name: str
    attr: str
    kind: str
    default: Any
    description: str
    applies: str
    float_range: tuple[float, float] | None = None
    int_range: tuple[int, int] | None = None
    choices: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        assert self.kind in KINDS and self.applies in APPLIES, self.name

    def ros_type(self) -> int:
        """Return the ``rcl_interfaces/ParameterType`` constant of this parameter."""
        from rcl_interfaces.msg import ParameterType

        return getattr(ParameterType, f'PARAMETER_{self.kind.upper()}')


PARAM_SPECS: tuple[ParamSpec, ...] = (
    ParamSpec('autostart', 'autostart', 'bool', True,
              'Configure and activate the lifecycle node on start.', START),
    ParamSpec('model_path', 'model_path', 'string', '',
              'Weights: base path models/NAME (NAME.safetensors + NAME.json), either file, or '
              'a folder with one model; empty = the shipped demo weights xdrcdepth_demo.',
              CONFIGURE),
    ParamSpec('device', 'device', 'string', 'auto',
              'Inference device; auto = cuda if available.', CONFIGURE,
              choices=('auto', 'cpu', 'cuda')),
    ParamSpec('backend', 'backend', 'string', 'torch',
              'Inference runtime: torch (CPU/CUDA), onnxruntime (CPU, CUDA with '
              'onnxruntime-gpu) or openvino (CPU); exported graphs are cached '
              '($RCDEPTH_CACHE_DIR, default ~/.cache/rcdepth_ros/graphs).', CONFIGURE,
              choices=('torch', 'onnxruntime', 'openvino')),
    ParamSpec('precision', 'precision', 'string', 'fp32',
              'Inference precision: fp16 with torch on CUDA; int8 with onnxruntime/openvino '
              'on CPU, from the graph rcdepth quantize wrote next to the weights.', CONFIGURE,
              choices=('fp32', 'fp16', 'int8')),
    ParamSpec('image_type', 'image_type', 'string', 'raw',
              'Type of ~/input/image: sensor_msgs/Image (raw) or CompressedImage (compressed).',
              ACTIVATE, choices=('raw', 'compressed')),
    ParamSpec('radar_topics', 'radar_topics', 'string_array', ['~/input/radar'],
              'Radar PointCloud2 topics (nuScenes 43-byte or x/y/z[/rcs/vx/vy] layouts).',
              ACTIVATE),
    ParamSpec('radar.window', 'radar_window', 'double', DEFAULT_WINDOW_S,
              'Seconds of radar kept per radar before the image time.', LIVE,
              float_range=(0.0, 5.0)),
    ParamSpec('radar.max_sweeps', 'radar_max_sweeps', 'integer', DEFAULT_MAX_SWEEPS,
              'Most recent sweeps used per radar within the window.', LIVE, int_range=(1, 50)),
    ParamSpec('radar.max_points', 'radar_max_points', 'integer', 20000,
              'Clouds with more points are rejected as malformed (huge cloud).', LIVE,
              int_range=(1, 10_000_000)),
    ParamSpec('radar.invalid_states', 'radar_invalid_states', 'integer_array', None,
              'Keep only these nuScenes invalid_state values; unset = no filter.', LIVE),
    ParamSpec('radar.dyn_props', 'radar_dyn_props', 'integer_array', None,
              'Keep only these nuScenes dyn_prop values; unset = no filter.', LIVE),
    ParamSpec('radar.ambig_states', 'radar_ambig_states', 'integer_array', None,
              'Keep only these nuScenes ambig_state values; unset = no filter.', LIVE),
    ParamSpec('extrinsics.source', 'extrinsics_source', 'string', 'calibration',
              'Sensor extrinsics from tf2 (needs tf2_ros) or from the calibration YAML.',
              CONFIGURE, choices=('tf', 'calibration')),
    ParamSpec('extrinsics.calibration_path', 'calibration_path', 'string', '',
              'Calibration YAML, e.g. the nuscenes2bag sidecar; empty = only identical frames.',
              CONFIGURE),
    ParamSpec('odom_topic', 'odom_topic', 'string', '/odom',
              'nav_msgs/Odometry topic for radar ego-motion compensation; empty = none.',
              ACTIVATE),
    ParamSpec('frames.base', 'base_frame', 'string', 'base_link',
              'Vehicle body frame.', CONFIGURE),
    ParamSpec('frames.camera', 'camera_frame', 'string', '',
              'Optical frame of the camera; empty = frame_id of the image header.', LIVE),
    ParamSpec('cameras', 'cameras', 'string_array', None,
              'Cameras served by this one node (e.g. the six of nuScenes): each has inputs '
              '~/CAMERA/input/{image,camera_info} and outputs ~/CAMERA/output/..., every radar '
              'is projected into every camera, output.points adds a fused ~/output/points in '
              'frames.base; unset = one camera on ~/input/image and ~/output/...', CONFIGURE),
    ParamSpec('batch.window', 'batch_window', 'double', 0.05,
              'Images of different cameras stamped within this many seconds run as one '
              'batched forward pass; the worker waits at most this long for the others.',
              LIVE, float_range=(0.0, 1.0)),
    ParamSpec('min_depth', 'min_depth', 'double', 1.0,
              'Depth below this is published as NaN (metres).', LIVE,
              float_range=(0.0, 1000.0)),
    ParamSpec('max_depth', 'max_depth', 'double', 100.0,
              'Depth above this is published as NaN (metres).', LIVE,
              float_range=(0.0, 1000.0)),
    ParamSpec('time_jump_threshold', 'time_jump_threshold', 'double', 1.0,
              'A stamp earlier than the last by more than this (s) clears the buffers.',
              ACTIVATE, float_range=(0.0, 3600.0)),
    ParamSpec('qos.reliability', 'qos_reliability', 'string', 'best_effort',
              'Reliability of the input subscriptions.', ACTIVATE,
              choices=('best_effort', 'reliable')),
    ParamSpec('qos.depth', 'qos_depth', 'integer', 5,
              'History depth of the input subscriptions.', ACTIVATE, int_range=(1, 1000)),
    ParamSpec('output.points', 'publish_points', 'bool', False,
              'Publish ~/output/points (PointCloud2).', LIVE),
    ParamSpec('output.points_stride', 'points_stride', 'integer', 4,
              'Pixel stride of ~/output/points.', LIVE, int_range=(1, 64)),
    ParamSpec('output.colored', 'publish_colored', 'bool', True,
              'Publish ~/output/depth_colored (bgr8) while it has subscribers.', LIVE),
    ParamSpec('output.colored_max_rate', 'colored_max_rate', 'double', 5.0,
              'Most colourised depth images a second (Hz).', LIVE,
              float_range=(0.01, 1000.0)),
    ParamSpec('diagnostics_period', 'diagnostics_period', 'double', 1.0,
              'Seconds between /diagnostics messages.', LIVE, float_range=(0.05, 60.0)),
)
SPECS_BY_NAME: dict[str, ParamSpec] = {spec.name: spec for spec in PARAM_SPECS}

# What the shipped config/rcdepth.yaml sets differently from the defaults: it is written for
# bags from `rcdepth nuscenes2bag` (JPEG camera, front radar), where the defaults suit a
# generic camera driver.
SHIPPED_OVERRIDES: dict[str, Any] = {'image_type': 'compressed',
                                     'radar_topics': ['/RADAR_FRONT']}


# Top-level keys of a parameters file that apply to rcdepth_node (as rcl matches them).
NODE_KEYS = ('/**', 'rcdepth_node', '/rcdepth_node', '/**/rcdepth_node')


def read_params_file(path: Any) -> dict[str, Any]:
    """ROS names to values from a node parameters file (``/**: ros__parameters: ...``).

    Reads the sections of :data:`NODE_KEYS` in file order, later ones winning, as rcl does
    for ``--ros-args --params-file``; nested mappings become dotted names. ``ValueError``
    (one line) for a file that is not such a document or names an unknown parameter; values
    are checked by :func:`config_from_dict`.
    """
    import yaml

    with open(path, encoding='utf-8') as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise ValueError(f'{path} is not valid YAML: {exc}') from None
    if not isinstance(data, dict):
        raise ValueError(f'{path} is not a parameters file (no "/**: ros__parameters:")')
    values: dict[str, Any] = {}
    found = False
    for key, section in data.items():
        if key not in NODE_KEYS:
            continue
        if not isinstance(section, dict) or not isinstance(
                section.get('ros__parameters'), dict):
            raise ValueError(f'{path}: {key} has no ros__parameters mapping')
        found = True
        _flatten(section['ros__parameters'], '', values)
    if not found:
        raise ValueError(f'{path} has no section for rcdepth_node (one of {", ".join(NODE_KEYS)})')
    unknown = sorted(set(values) - set(SPECS_BY_NAME))
    if unknown:
        raise ValueError(f'{path}: unknown parameter(s) {", ".join(unknown)}')
    for name, value in values.items():
        if not _has_kind(SPECS_BY_NAME[name].kind, value):
            # rclpy refuses an override of another type (e.g. 1 for a double) the same way.
            raise ValueError(f'{path}: parameter {name} = {value!r} is not of type '
                             f'{SPECS_BY_NAME[name].kind}')
    return values


def _has_kind(kind: str, value: Any) -> bool:
    scalar = {'bool': lambda v: isinstance(v, bool),
              'integer': lambda v: isinstance(v, int) and not isinstance(v, bool),
              'double': lambda v: isinstance(v, float),
              'string': lambda v: isinstance(v, str)}
    if kind.endswith('_array'):
        item = scalar['string' if kind == 'string_array' else 'integer']
        return isinstance(value, list) and all(item(v) for v in value)
    return scalar[kind](value)


def _flatten(mapping: dict[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for key, value in mapping.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            _flatten(value, f'{name}.', out)
        else:
            out[name] = value


def default(name: str) -> Any:
    """Return the declared default of parameter ``name`` (for other tools' options)."""
    return SPECS_BY_NAME[name].default


# ----------------------------------------------------------------------------- values

def check_value(spec: ParamSpec, value: Any) -> None:
    """Raise ``ValueError`` naming the parameter if ``value`` is outside its range or choices."""
    if spec.choices is not None and value not in spec.choices:
        raise ValueError(f'parameter {spec.name} = {value!r} is not one of {spec.choices}')
    bounds = spec.float_range or spec.int_range
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        raise ValueError(f'parameter {spec.name} = {value!r} is outside {list(bounds)}')


def config_from_dict(values: dict[str, Any]) -> NodeConfig:
    """Build and validate a :class:`NodeConfig` from ROS names to values (missing: default)."""
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        if name not in SPECS_BY_NAME:
            raise ValueError(f'unknown parameter {name!r}')
        if value is not None:
            kwargs[SPECS_BY_NAME[name].attr] = value
    for spec in PARAM_SPECS:
        value = kwargs.get(spec.attr, spec.default)
        if spec.kind.endswith('_array'):
            value = tuple(value or ())
        kwargs[spec.attr] = value
    config = NodeConfig(**kwargs)
    validate_config(config)
    return config


def config_values(config: NodeConfig) -> dict[str, Any]:
    """Inverse of :func:`config_from_dict`: ROS names to values."""
    return {spec.name: getattr(config, spec.attr) for spec in PARAM_SPECS}


def validate_config(config: NodeConfig) -> None:
    """Raise ``ValueError`` with a one-line reason if ``config`` is inconsistent."""
    for spec in PARAM_SPECS:
        check_value(spec, getattr(config, spec.attr))
    if not 0.0 <= config.min_depth < config.max_depth:
        raise ValueError(f'need 0 <= min_depth < max_depth, got min_depth={config.min_depth} '
                         f'max_depth={config.max_depth}')
    if len(set(config.radar_topics)) != len(config.radar_topics):
        raise ValueError(f'radar_topics has duplicates: {list(config.radar_topics)}')
    if any(not t for t in config.radar_topics):
        raise ValueError('radar_topics contains an empty topic name')
    if not config.base_frame:
        raise ValueError('frames.base must not be empty')
    if len(set(config.cameras)) != len(config.cameras):
        raise ValueError(f'cameras has duplicates: {list(config.cameras)}')
    bad = [c for c in config.cameras if not re.fullmatch(r'[A-Za-z][A-Za-z0-9_]*', c)]
    if bad:
        raise ValueError(f'cameras must be ROS name tokens (letters, digits, _), got {bad}')
    if config.cameras and config.camera_frame:
        raise ValueError('frames.camera names one optical frame; with several cameras leave '
                         'it empty (each image header names its own)')


assert {spec.attr for spec in PARAM_SPECS} == {f.name for f in fields(NodeConfig)}


# ----------------------------------------------------------------------------- ROS

def descriptor(spec: ParamSpec) -> Any:
    """Build the ROS parameter descriptor (type, description, range, choices) of a spec."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    desc = ParameterDescriptor(name=spec.name, type=spec.ros_type(),
                               description=spec.description, read_only=False)
    if spec.float_range is not None:
        desc.floating_point_range = [FloatingPointRange(
            from_value=float(spec.float_range[0]), to_value=float(spec.float_range[1]), step=0.0)]
    if spec.int_range is not None:
        desc.integer_range = [IntegerRange(
            from_value=int(spec.int_range[0]), to_value=int(spec.int_range[1]), step=0)]
    constraints = [f'one of: {", ".join(spec.choices)}'] if spec.choices else []
    constraints.append(f'takes effect: {_applies_text(spec.applies)}')
    desc.additional_constraints = '; '.join(constraints)
    return desc


def declare_parameters(node: Any) -> None:
    """Declare every parameter of :data:`PARAM_SPECS` on ``node`` with its descriptor."""
    from rclpy.parameter import Parameter

    for spec in PARAM_SPECS:
        # Arrays may default to "unset": an empty list has no ROS type.
        if spec.default is None:
            value = (Parameter.Type.INTEGER_ARRAY if spec.kind == 'integer_array'
                     else Parameter.Type.STRING_ARRAY)
        else:
            value = spec.default
        node.declare_parameter(spec.name, value, descriptor(spec))


def read_config(node: Any) -> NodeConfig:
    """Read the declared parameters of ``node`` into a validated :class:`NodeConfig`."""
    from rclpy.exceptions import ParameterUninitializedException

    values = {}
    for spec in PARAM_SPECS:
        try:
            values[spec.name] = node.get_parameter(spec.name).value
        except ParameterUninitializedException:
            values[spec.name] = None
    return config_from_dict(values)


def refusal(spec: ParamSpec, state: str) -> str | None:
    """Why a change of ``spec`` cannot take effect in lifecycle ``state``; None if it can.

    ``state`` is ``unconfigured``, ``inactive`` or ``active`` (the primary states).
    """
    if spec.applies == START:
        return f'{spec.name} is read once at start; restart the node to change it'
    if spec.applies == LIVE or state == 'unconfigured':
        return None
    if spec.applies == ACTIVATE and state == 'active':
        return f'{spec.name} is read on activate: deactivate, set it, then activate'
    if spec.applies == CONFIGURE and state in ('active', 'inactive'):
        steps = 'deactivate, cleanup' if state == 'active' else 'cleanup'
        return f'{spec.name} is read on configure: {steps}, set it, then configure'
    return None


# ----------------------------------------------------------------------------- documents

def _applies_text(applies: str) -> str:
    return {LIVE: 'live', ACTIVATE: 'on activate', CONFIGURE: 'on configure',
            START: 'at start'}[applies]


def _yaml_value(value: Any) -> str:
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=1000)
    return text.removesuffix('\n').removesuffix('\n...').strip()  # scalars end in '...'


def _bounds_text(spec: ParamSpec, sep: str = ' | ') -> str:
    if spec.choices:
        return sep.join(spec.choices)
    bounds = spec.float_range or spec.int_range
    return f'{bounds[0]} .. {bounds[1]}' if bounds else ''


def params_yaml(overrides: dict[str, Any] | None = None) -> str:
    """Render the parameters file: every parameter, its value and its description.

    ``overrides`` (default :data:`SHIPPED_OVERRIDES`) replace defaults; unset integer arrays
    are written as comments.
    """
    overrides = SHIPPED_OVERRIDES if overrides is None else overrides
    lines = ['# Parameters of rcdepth_node: ros2 run rcdepth_ros rcdepth_node --ros-args '
             '--params-file THIS',
             '# Written by `rcdepth params --yaml` from rcdepth_ros/ros/params.py (a test checks '
             'it);',
             '# `ros2 param describe /rcdepth_node NAME` shows the same descriptions and ranges.',
             '/**:', '  ros__parameters:']
    group = ''
    for spec in PARAM_SPECS:
        prefix, _, key = spec.name.rpartition('.')
        if prefix != group:
            if prefix:
                lines.append(f'    {prefix}:')
            group = prefix
        indent = '      ' if prefix else '    '
        bounds = _bounds_text(spec)
        lines.append(f'{indent}# {spec.description}' + (f' [{bounds}]' if bounds else '')
                     + f' (takes effect: {_applies_text(spec.applies)})')
        value = overrides.get(spec.name, spec.default)
        if value is None:
            lines.append(f'{indent}# {key}: []')
        else:
            lines.append(f'{indent}{key}: {_yaml_value(value)}')
    return '\n'.join(lines) + '\n'


def params_markdown() -> str:
    """Render the parameter table of docs/ARCHITECTURE.md."""
    rows = ['| parameter | type | default | range / choices | takes effect | description |',
            '|---|---|---|---|---|---|']
    for spec in PARAM_SPECS:
        value = 'unset' if spec.default is None else f'`{_yaml_value(spec.default)}`'
        rows.append(f'| `{spec.name}` | {spec.kind} | {value} | {_bounds_text(spec, ", ")} | '
                    f'{_applies_text(spec.applies)} | {spec.description} |')
    return '\n'.join(rows) + '\n'
