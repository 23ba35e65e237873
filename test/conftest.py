"""Shared ROS fixtures: isolated environment per test, rclpy context, node processes, weights."""

import itertools
import os
from pathlib import Path

import pytest
import yaml

_DOMAIN_COUNTER = itertools.count()


def _next_domain_id() -> int:
    # Spread across 1..100 by pid so concurrent pytest runs on one machine rarely meet;
    # tests also use unique namespaces, so a shared domain would still not cross-talk.
    return 1 + (os.getpid() * 13 + next(_DOMAIN_COUNTER) * 7) % 100


@pytest.fixture
def ros_env(tmp_path, monkeypatch):
    """Environment of an isolated ROS run, applied to this process and returned for children."""
    from rcdepth_ros.ros.harness import ros_environment

    log_dir = tmp_path / 'ros_log'
    log_dir.mkdir()
    env = ros_environment(_next_domain_id(), log_dir)
    for key in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE', 'FASTDDS_BUILTIN_TRANSPORTS',
                'ROS_LOG_DIR'):
        monkeypatch.setenv(key, env[key])
    return env


@pytest.fixture
def namespace(request):
    """A ROS namespace unique to this test and process."""
    name = ''.join(c if c.isalnum() else '_' for c in request.node.name)[:40]
    return f'/t{os.getpid()}_{name}'


@pytest.fixture
def ros_session(ros_env):
    """The test's :class:`~rcdepth_ros.ros.session.RosSession` (spun by the test itself)."""
    from rcdepth_ros.ros.session import RosSession

    with RosSession(f'tester_{os.getpid()}', int(ros_env['ROS_DOMAIN_ID']), ros_env,
                    spin=False) as session:
        yield session


@pytest.fixture
def rclpy_context(ros_session):
    """An initialised rclpy context for the test process; shut down afterwards."""
    return ros_session.context


@pytest.fixture
def executor_node(ros_session):
    """``(executor, node)`` of a test-side node; executor and node torn down afterwards."""
    return ros_session.executor, ros_session.node


@pytest.fixture(scope='session')
def student_weights(tmp_path_factory):
    """Random-init XD-RCDepth weights (safetensors + JSON); returns the path without suffix."""
    import torch

    from rcdepth_ros.models import VARIANTS, build_model, save_weights

    torch.manual_seed(0)
    config = VARIANTS['xdrcdepth']
    model = build_model(config).eval()
    path = tmp_path_factory.mktemp('weights') / 'xdrcdepth_random'
    save_weights(model, config, path, metadata={'note': 'random init for tests'})
    return path


@pytest.fixture
def node_params(tmp_path, student_weights):
    """Build a params file for the node under test: ``node_params(**overrides) -> path``."""
    from rcdepth_ros.ros.harness import calibration_dict, write_params_file

    def make(height: int = 96, width: int = 160, **overrides) -> Path:
        calib = tmp_path / 'calibration.yaml'
        calib.write_text(yaml.safe_dump(calibration_dict(height, width)))
        params = {
            'model_path': str(student_weights), 'device': 'cpu', 'image_type': 'raw',
            'radar_topics': ['~/input/radar'], 'extrinsics.calibration_path': str(calib),
            'odom_topic': '~/input/odom', 'diagnostics_period': 0.5,
        }
        params.update({k.replace('__', '.'): v for k, v in overrides.items()})
        return write_params_file(tmp_path / 'params.yaml', params)

    return make


@pytest.fixture
def node_client(executor_node, ros_env, namespace, node_params, tmp_path):
    """Start ``rcdepth_node`` processes: ``node_client(height, width, **params) -> NodeClient``.

    Every process started is checked to be still alive at teardown, then stopped.
    """
    from rcdepth_ros.ros.harness import NodeClient, NodeProcess

    executor, node = executor_node
    started = []

    def start(height=96, width=160, **overrides):
        params = node_params(height, width, **overrides)
        proc = NodeProcess(params, ros_env, namespace, tmp_path / f'node{len(started)}.log')
        started.append(proc)
        return NodeClient(executor, node, namespace, proc, height, width,
                          cameras=overrides.get('cameras', ()))

    yield start
    try:
        for proc in started:
            assert proc.alive(), 'node died\n' + proc.log()[-3000:]
    finally:
        for proc in started:
            proc.stop()


@pytest.fixture(scope='session')
def tiny_prepared(tmp_path_factory):
    """A tiny synthetic world prepared for training: ``{'root', 'dataroot'}`` (train + val).

    Two 2.5 s scenes at 0.15 scale (135 x 240 images, eval window 128 x 224), four samples a
    split; shared by the trainer, evaluation and DDP tests.
    """
    from rcdepth_ros.cli import main

    dataroot = tmp_path_factory.mktemp('tiny_world')
    root = tmp_path_factory.mktemp('tiny_prepared')
    code = main(['sim', '--out', str(dataroot), '--scenes', '2', '--seed', '11', '--duration',
                 '2.5', '--image-scale', '0.15', '--cameras', 'CAM_FRONT', '--camera-sweeps',
                 'none', '--workers', '1', '--no-progress'])
    assert code == 0
    for split in ('train', 'val'):
        code = main(['prepare', '--dataroot', str(dataroot), '--version', 'v1.0-sim', '--split',
                     split, '--out', str(root), '--accumulate-sweeps', '4', '--no-progress'])
        assert code == 0
    return {'root': root, 'dataroot': dataroot}
