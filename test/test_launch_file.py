"""The launch file, evaluated with recording stand-ins for launch / launch_ros (not on PyPI)."""

import importlib.util
import os
from pathlib import Path
import re
import sys
import types
from types import SimpleNamespace

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / 'launch' / 'rcdepth.launch.py'


class Recorded:
    """Stand-in for any launch class: remembers its constructor arguments."""

    def __init__(self, *args, **kwargs):
        self.args = args
        self.kwargs = kwargs

    def perform(self, context):
        """Substitution.perform: evaluate against the context's launch configurations."""
        return resolve(self, context.launch_configurations)


STAND_INS = {
    'launch': ['LaunchDescription'],
    'launch.actions': ['DeclareLaunchArgument', 'ExecuteProcess', 'OpaqueFunction',
                       'SetEnvironmentVariable'],
    'launch.conditions': ['IfCondition'],
    'launch.substitutions': ['LaunchConfiguration', 'PathJoinSubstitution', 'PythonExpression'],
    'launch_ros': [],
    'launch_ros.actions': ['Node'],
    'launch_ros.substitutions': ['FindPackageShare'],
}


def repo_share(package):
    """FindPackageShare of the source tree: the package's share dir is the repository."""
    assert package == 'rcdepth_ros'
    return str(REPO)


def load_launch_description(monkeypatch, launch_file=LAUNCH_FILE, find_share=repo_share):
    """Run ``generate_launch_description`` of ``launch_file`` against the stand-ins.

    ``find_share(package)`` is what the FindPackageShare stand-in resolves to (test/test_install
    passes the real ament index lookup of a colcon workspace).
    """
    attributes = {'find_share': staticmethod(find_share)}
    for module_name, class_names in STAND_INS.items():
        module = types.ModuleType(module_name)
        for name in class_names:
            setattr(module, name, type(name, (Recorded,), attributes))
        monkeypatch.setitem(sys.modules, module_name, module)
    spec = importlib.util.spec_from_file_location('rcdepth_launch', launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


@pytest.fixture
def launch_description(monkeypatch):
    return load_launch_description(monkeypatch)


def kind(obj):
    return type(obj).__name__


def resolve(value, args):
    """Evaluate stand-in substitutions as launch would; FindPackageShare by its ``find_share``."""
    if isinstance(value, (list, tuple)):
        return type(value)(resolve(v, args) for v in value)
    if isinstance(value, dict):
        return {k: resolve(v, args) for k, v in value.items()}
    if not isinstance(value, Recorded):
        return value
    name = kind(value)
    if name == 'LaunchConfiguration':
        return args[value.args[0]]
    if name == 'FindPackageShare':
        return type(value).find_share(value.args[0])
    if name == 'PathJoinSubstitution':
        return os.path.join(*resolve(value.args[0], args))
    if name == 'PythonExpression':
        return str(eval(''.join(resolve(value.args[0], args))))  # noqa: S307 - launch semantics
    if name == 'IfCondition':
        return resolve(value.args[0], args).lower() in ('true', '1')
    raise AssertionError(f'unexpected substitution {name}')


def evaluate(description, **overrides):
    """Actions (OpaqueFunctions run in place, as launch does) and the argument values."""
    actions = description.args[0]
    declared = {a.args[0]: a.kwargs['default_value'] for a in actions
                if kind(a) == 'DeclareLaunchArgument'}
    assert set(overrides) <= set(declared)
    args = {k: resolve(v, {}) if isinstance(v, Recorded) else v for k, v in declared.items()}
    args.update(overrides)
    context = SimpleNamespace(launch_configurations=dict(args))
    expanded = []
    for action in actions:
        if kind(action) == 'OpaqueFunction':
            expanded += action.kwargs['function'](context, *action.kwargs.get('args', ()),
                                                  **action.kwargs.get('kwargs', {}))
        else:
            expanded.append(action)
    return expanded, args


def _nodes(actions, executable):
    return [a for a in actions if kind(a) == 'Node' and a.kwargs['executable'] == executable]


def test_every_argument_is_declared_described_and_used(launch_description):
    actions, args = evaluate(launch_description)
    for action in actions:
        if kind(action) == 'DeclareLaunchArgument':
            assert action.kwargs['description'], action.args[0]
    source = LAUNCH_FILE.read_text()
    used = set(re.findall(r"arg\['(\w+)'\]", source))
    assert used == set(args)


def test_node_action_parameters_remaps_and_environment(launch_description):
    actions, args = evaluate(launch_description, namespace='car1',
                             image_topic='/cam/image_raw', camera_info_topic='/cam/info')
    env = [a for a in actions if kind(a) == 'SetEnvironmentVariable']
    assert [e.args for e in env] == [('FASTDDS_BUILTIN_TRANSPORTS', 'LARGE_DATA')]
    (node,) = _nodes(actions, 'rcdepth_node')
    assert actions.index(env[0]) < actions.index(node)  # the node inherits the variable
    assert node.kwargs['package'] == 'rcdepth_ros'
    assert "'rcdepth_node = rcdepth_ros.ros.node:main'" in (REPO / 'setup.py').read_text()
    assert resolve(node.kwargs['namespace'], args) == 'car1'
    assert resolve(node.kwargs['remappings'], args) == [
        ('~/input/image', '/cam/image_raw'), ('~/input/camera_info', '/cam/info')]
    params_file, overrides = resolve(node.kwargs['parameters'], args)  # file, then overrides
    assert Path(params_file) == REPO / 'config' / 'rcdepth.yaml'
    assert '/**' in yaml.safe_load(Path(params_file).read_text())
    assert overrides == {'use_sim_time': 'false'}


def test_bag_playback_and_rviz_are_optional(launch_description):
    actions, args = evaluate(launch_description)
    (bag,) = [a for a in actions if kind(a) == 'ExecuteProcess']
    (rviz,) = _nodes(actions, 'rviz2')
    assert resolve(bag.kwargs['condition'], args) is False
    assert resolve(rviz.kwargs['condition'], args) is False

    actions, args = evaluate(launch_description, bag='/data/scene-0061', rviz='true',
                             use_sim_time='true')
    (bag,) = [a for a in actions if kind(a) == 'ExecuteProcess']
    (rviz,) = _nodes(actions, 'rviz2')
    assert resolve(bag.kwargs['condition'], args) is True
    assert resolve(bag.kwargs['cmd'], args) == [
        'ros2', 'bag', 'play', '/data/scene-0061', '--clock', '--loop']
    assert resolve(rviz.kwargs['condition'], args) is True
    rviz_args = resolve(rviz.kwargs['arguments'], args)
    assert rviz_args[0] == '-d' and Path(rviz_args[1]) == REPO / 'config' / 'rcdepth.rviz'
    (node,) = _nodes(actions, 'rcdepth_node')
    assert resolve(node.kwargs['parameters'], args)[1] == {'use_sim_time': 'true'}


def test_rviz_config_shows_the_node_outputs():
    config = yaml.safe_load((REPO / 'config' / 'rcdepth.rviz').read_text())
    displays = config['Visualization Manager']['Displays']
    classes = {d['Class'] for d in displays}
    assert {'rviz_default_plugins/Image', 'rviz_default_plugins/PointCloud2',
            'rviz_default_plugins/DepthCloud'} <= classes
    topics = {d['Topic']['Value'] for d in displays if 'Topic' in d}
    assert {'/rcdepth_node/output/depth_colored', '/rcdepth_node/output/uncertainty',
            '/RADAR_FRONT'} <= topics
    depth_cloud = next(d for d in displays if d['Class'].endswith('DepthCloud'))
    assert depth_cloud['Depth Map Topic'] == '/rcdepth_node/output/depth'


def _node_overrides(description, **overrides):
    actions, args = evaluate(description, **overrides)
    (node,) = _nodes(actions, 'rcdepth_node')
    params_file, node_overrides = resolve(node.kwargs['parameters'], args)
    assert Path(params_file) == REPO / 'config' / 'rcdepth.yaml'
    return node_overrides


def test_calibration_argument_sets_the_path_only_when_given(launch_description, tmp_path):
    # Not given: the parameters file's extrinsics.calibration_path must stay untouched.
    assert _node_overrides(launch_description) == {'use_sim_time': 'false'}
    calib = tmp_path / 'rig.yaml'
    assert _node_overrides(launch_description, calibration=str(calib)) == {
        'use_sim_time': 'false', 'extrinsics.calibration_path': str(calib)}


def test_bag_calibration_sidecar_is_the_default(launch_description, tmp_path, monkeypatch):
    bag = tmp_path / 'scene-0061'
    bag.mkdir()
    (bag / 'scene-0061_0.mcap').write_bytes(b'')
    # A bag without the sidecar leaves the parameters file's value alone.
    assert 'extrinsics.calibration_path' not in _node_overrides(launch_description, bag=str(bag))
    (bag / 'calibration.yaml').write_text('base_frame: base_link\n')
    sidecar = str(bag / 'calibration.yaml')
    for given in (str(bag), str(bag / 'scene-0061_0.mcap')):  # the folder or its file
        overrides = _node_overrides(launch_description, bag=given, use_sim_time='true')
        assert overrides == {'use_sim_time': 'true', 'extrinsics.calibration_path': sidecar}
    # The docstring's form: a bag folder relative to the working directory.
    monkeypatch.chdir(tmp_path)
    assert _node_overrides(launch_description, bag='scene-0061')[
        'extrinsics.calibration_path'] == sidecar
    # An explicit calibration wins over the sidecar.
    other = str(tmp_path / 'other.yaml')
    assert _node_overrides(launch_description, bag=str(bag), calibration=other)[
        'extrinsics.calibration_path'] == other


def test_docstring_shows_the_bag_use():
    source = LAUNCH_FILE.read_text()
    assert ('ros2 launch rcdepth_ros rcdepth.launch.py bag:=scene-0061 rviz:=true '
            'use_sim_time:=true') in source
