"""rcdepth_ros installed the ways users install it, each from a copy of this working tree.

- colcon: ``colcon build --packages-select rcdepth_ros`` in a temporary workspace (colcon and
  ament_package come from PyPI via requirements.txt), then ``source install/setup.bash``: the
  install/ layout, the installed node with the installed parameters file, the installed
  launch file (evaluated with the launch / launch_ros stand-ins of test_launch_file.py; the
  real packages are not on PyPI).
- pip: a non-editable wheel installed into a throwaway venv whose ``.pth`` reuses this venv's
  site-packages (the ROS wheels need a real venv, so no ``pip --target``), run without
  AMENT_PREFIX_PATH and outside the source tree.
"""

import filecmp
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import sysconfig

from lifecycle_msgs.msg import State
import pytest
from test_launch_file import evaluate, kind, load_launch_description, resolve
import yaml

from rcdepth_ros import resources
from rcdepth_ros.models import io as model_io
from rcdepth_ros.ros.harness import (
    NodeClient,
    NodeProcess,
    calibration_dict,
    stamp_ns,
    write_params_file,
)

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
PACKAGE = resources.PACKAGE
BUILD_TIMEOUT_S = 300
STARTUP_S = 90.0  # torch import + model load on a busy 2-core machine
DEMO_TIMEOUT_S = 300  # the quick demo with the shipped weights; a busy 2-core machine
H, W = 96, 160
# Variables a sourced workspace sets; the tests start from none of them.
WORKSPACE_VARS = ('AMENT_PREFIX_PATH', 'COLCON_PREFIX_PATH', 'PYTHONPATH', 'CMAKE_PREFIX_PATH')


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in WORKSPACE_VARS}
    env['PATH'] = f'{VENV_BIN}{os.pathsep}{env.get("PATH", "")}'  # ENV.md: .venv/bin first
    env['PIP_DISABLE_PIP_VERSION_CHECK'] = '1'
    return env


def _run(cmd, timeout, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          timeout=timeout, **kwargs)
    assert done.returncode == 0, f'{cmd} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}'
    return done


def _copy_source(dest: Path) -> Path:
    """Copy the working tree as a clone would have it (tracked + untracked, not ignored)."""
    listed = _run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
                  60, cwd=REPO).stdout.split('\0')
    for relative in filter(None, listed):
        source = REPO / relative
        if source.is_file():  # a tracked file deleted in the working tree is not part of it
            (dest / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / relative)
    assert (dest / 'setup.py').is_file() and (dest / 'package.xml').is_file()
    return dest


def _shipped_source_files() -> list[str]:
    """What the package ships, relative to its share dir: the source tree's data folders."""
    return sorted(str(p.relative_to(REPO)) for folder in ('config', 'launch', 'models')
                  for p in (REPO / folder).rglob('*') if p.is_file())


def _files_report(rcdepth: Path, env: dict[str, str], cwd: Path) -> dict[str, str]:
    """``rcdepth files`` of an install: {'weights': ..., ..., 'looked in': [lines]}."""
    out = _run([rcdepth, 'files'], 120, env=env, cwd=cwd).stdout
    report: dict = {'looked in': []}
    for line in out.splitlines():
        if line.startswith('looked in: '):
            report['looked in'].append(line[len('looked in: '):])
        else:
            name, path = line.split(maxsplit=1)
            report[name] = path
    return report


# ----------------------------------------------------------------------------- colcon

@pytest.fixture(scope='module')
def colcon_ws(tmp_path_factory):
    """``(workspace, install share dir, environment after source install/setup.bash)``."""
    colcon = VENV_BIN / 'colcon'
    assert colcon.is_file(), 'colcon is not installed: bash scripts/setup.sh (requirements.txt)'
    ws = tmp_path_factory.mktemp('colcon_ws')
    _copy_source(ws / 'src' / PACKAGE)
    env = _clean_env()
    env['COLCON_HOME'] = str(ws / '.colcon')  # no user defaults or mixins
    _run([colcon, 'build', '--packages-select', PACKAGE], BUILD_TIMEOUT_S, cwd=ws, env=env)
    sourced = _run(['bash', '-c', 'set +u; source install/setup.bash && env -0'], 60, cwd=ws,
                   env=env).stdout
    sourced_env = dict(item.split('=', 1) for item in sourced.split('\0') if '=' in item)
    assert sourced_env['AMENT_PREFIX_PATH'] == str(ws / 'install' / PACKAGE)
    return ws, ws / 'install' / PACKAGE / 'share' / PACKAGE, sourced_env


def test_colcon_build_installs_scripts_and_shared_files(colcon_ws):
    ws, share, env = colcon_ws
    prefix = ws / 'install' / PACKAGE
    for script in ('rcdepth', 'rcdepth_node'):  # where `ros2 run rcdepth_ros X` looks
        path = prefix / 'lib' / PACKAGE / script
        assert path.is_file() and os.access(path, os.X_OK), path
        assert path.read_text().splitlines()[0].startswith('#!'), path
    assert (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / PACKAGE).is_file()
    assert (share / 'package.xml').is_file()
    for relative in (resources.LAUNCH_FILE, resources.PARAMS_FILE, resources.RVIZ_CONFIG,
                     f'{resources.MODELS_DIR}/{model_io.DEMO_MODEL_NAME}.safetensors',
                     f'{resources.MODELS_DIR}/{model_io.DEMO_MODEL_NAME}.json'):
        assert (share / relative).is_file(), relative
    for relative in _shipped_source_files():  # every shipped file, unchanged
        assert filecmp.cmp(REPO / relative, share / relative, shallow=False), relative

    # The installed command runs the installed package and finds everything via the index.
    report = _files_report(prefix / 'lib' / PACKAGE / 'rcdepth', env, ws)
    assert report['looked in'][0] == f'ament index {share}'
    assert report['looked in'][-1].startswith('source tree (') and 'no package.xml' in \
        report['looked in'][-1]  # imported from install/, not from a source tree
    assert report['weights'] == str(share / resources.MODELS_DIR / model_io.DEMO_MODEL_NAME)
    assert report['params'] == str(share / resources.PARAMS_FILE)
    assert report['launch'] == str(share / resources.LAUNCH_FILE)
    assert report['rviz'] == str(share / resources.RVIZ_CONFIG)


def test_colcon_installed_node_with_installed_params_answers(colcon_ws, executor_node, ros_env,
                                                             namespace, tmp_path):
    ws, share, sourced_env = colcon_ws
    env = {**sourced_env, **ros_env, 'AMENT_PREFIX_PATH': sourced_env['AMENT_PREFIX_PATH'],
           'PYTHONPATH': sourced_env['PYTHONPATH'], 'PATH': sourced_env['PATH']}
    installed = yaml.safe_load((share / resources.PARAMS_FILE).read_text())
    assert installed['/**']['ros__parameters']['model_path'] == ''  # the shipped weights
    # Only the test's topics and rig calibration on top of the installed file: model, device
    # and everything else keep the installed defaults.
    calib = tmp_path / 'calibration.yaml'
    calib.write_text(yaml.safe_dump(calibration_dict(H, W)))
    overrides = write_params_file(tmp_path / 'test_topics.yaml', {
        'image_type': 'raw', 'radar_topics': ['~/input/radar'],
        'odom_topic': '~/input/odom', 'extrinsics.calibration_path': str(calib)})
    node = ws / 'install' / PACKAGE / 'lib' / PACKAGE / 'rcdepth_node'
    executor, test_node = executor_node
    with NodeProcess([share / resources.PARAMS_FILE, overrides], env, namespace,
                     tmp_path / 'node.log', executable=node) as proc:
        client = NodeClient(executor, test_node, namespace, proc, H, W, outputs=('depth',),
                            startup_timeout=STARTUP_S)
        assert client.wait(lambda: client.pub_image.get_subscription_count() > 0, STARTUP_S), \
            proc.log()[-3000:]
        assert client.state() == State.PRIMARY_STATE_ACTIVE  # autostart from the installed file
        stamp = client.serve_one()
        (depth,) = [m for m in client.messages('depth') if stamp_ns(m.header) == stamp]
        assert (depth.encoding, depth.height, depth.width) == ('32FC1', H, W)
        assert proc.alive(), proc.log()[-3000:]
    assert 'configured: model' in proc.log()


def test_colcon_installed_launch_file_resolves(colcon_ws, monkeypatch, tmp_path):
    from ament_index_python.packages import get_package_share_directory

    ws, share, sourced_env = colcon_ws
    prefix = ws / 'install' / PACKAGE
    # FindPackageShare as launch_ros does it: the ament index of the sourced workspace.
    monkeypatch.setenv('AMENT_PREFIX_PATH', sourced_env['AMENT_PREFIX_PATH'])
    description = load_launch_description(monkeypatch, share / resources.LAUNCH_FILE,
                                          get_package_share_directory)
    actions, args = evaluate(description, rviz='true', calibration=str(tmp_path / 'rig.yaml'))
    assert Path(args['params_file']) == share / resources.PARAMS_FILE
    nodes = {a.kwargs['executable']: a for a in actions if kind(a) == 'Node'}
    node = nodes['rcdepth_node']
    # What launch_ros runs for Node(package, executable): <prefix>/lib/<package>/<executable>.
    assert (prefix / 'lib' / node.kwargs['package'] / node.kwargs['executable']).is_file()
    params_file, node_overrides = resolve(node.kwargs['parameters'], args)
    assert Path(params_file) == share / resources.PARAMS_FILE
    assert '/**' in yaml.safe_load(Path(params_file).read_text())
    assert node_overrides['extrinsics.calibration_path'] == str(tmp_path / 'rig.yaml')
    rviz_args = resolve(nodes['rviz2'].kwargs['arguments'], args)
    assert rviz_args[0] == '-d' and Path(rviz_args[1]) == share / resources.RVIZ_CONFIG
    assert Path(rviz_args[1]).is_file()


# ----------------------------------------------------------------------------- wheel

@pytest.fixture(scope='module')
def wheel_venv(tmp_path_factory):
    """``(venv, environment without AMENT_PREFIX_PATH, working dir outside the source tree)``."""
    tmp = tmp_path_factory.mktemp('wheel')
    source = _copy_source(tmp / 'src')
    env = _clean_env()
    _run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation',
          '-w', tmp / 'dist', source], BUILD_TIMEOUT_S, env=env, cwd=tmp)
    (wheel,) = (tmp / 'dist').glob(f'{PACKAGE}-*.whl')
    venv = tmp / 'venv'
    _run([sys.executable, '-m', 'venv', '--without-pip', venv], 120, env=env, cwd=tmp)
    child_site = Path(_run([venv / 'bin' / 'python', '-c',
                            'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                           60, env=env, cwd=tmp).stdout.strip())
    # This venv's packages after the child's own; its .pth hooks (the ROS bootstrapper, the
    # editable rcdepth_ros) are not run, so rcdepth_ros can only come from the wheel.
    parents = dict.fromkeys(sysconfig.get_paths()[key] for key in ('purelib', 'platlib'))
    (child_site / '_rcdepth_parent_venv.pth').write_text(''.join(f'{p}\n' for p in parents))
    _run([venv / 'bin' / 'python', '-m', 'pip', 'install', '-q', '--no-deps', '--no-index',
          wheel], BUILD_TIMEOUT_S, env=env, cwd=tmp)
    # The ROS libraries: this process was re-executed by ros_wheels_bootstrapper with them.
    assert 'ros_rclpy.libs' in env.get('LD_LIBRARY_PATH', ''), 'run the tests with .venv/bin'
    work = tmp / 'work'  # not the source tree: '' on sys.path must not find rcdepth_ros
    work.mkdir()
    return venv, env, work


def test_wheel_install_finds_weights_and_params_without_ament(wheel_venv):
    venv, env, work = wheel_venv
    assert 'AMENT_PREFIX_PATH' not in env
    code = 'import rcdepth_ros; print(rcdepth_ros.__file__)'
    imported = _run([venv / 'bin' / 'python', '-c', code], 120, env=env, cwd=work).stdout.strip()
    assert Path(imported).is_relative_to(venv), imported
    share = venv / 'share' / PACKAGE
    report = _files_report(venv / 'bin' / 'rcdepth', env, work)
    assert report['looked in'][:2] == ['ament index (AMENT_PREFIX_PATH is not set)',
                                       f'sys.prefix {share}']
    weights = Path(report['weights'])
    assert weights == share / resources.MODELS_DIR / model_io.DEMO_MODEL_NAME
    for suffix in ('.safetensors', '.json'):
        shipped = REPO / resources.MODELS_DIR / f'{model_io.DEMO_MODEL_NAME}{suffix}'
        assert filecmp.cmp(shipped, f'{weights}{suffix}', shallow=False)
    assert report['params'] == str(share / resources.PARAMS_FILE)
    assert report['launch'] == str(share / resources.LAUNCH_FILE)
    assert report['rviz'] == str(share / resources.RVIZ_CONFIG)
    for relative in _shipped_source_files():
        assert (share / relative).is_file(), relative


def test_wheel_install_demo_runs_on_the_shipped_weights(wheel_venv, tmp_path):
    venv, env, work = wheel_venv
    env = {**env, 'ROS_LOG_DIR': str(tmp_path / 'ros_log'),
           'FASTDDS_BUILTIN_TRANSPORTS': 'LARGE_DATA'}
    out = tmp_path / 'out'
    domain = str(1 + (os.getpid() * 11 + 5) % 100)
    _run([venv / 'bin' / 'rcdepth', 'demo', '--quick', '--out', out, '--device', 'cpu',
          '--no-progress', '--domain-id', domain], DEMO_TIMEOUT_S, env=env, cwd=work)
    report = json.loads((out / 'metrics.json').read_text())
    assert report['model']['source'] == 'shipped default'
    assert Path(report['model']['path']) == (venv / 'share' / PACKAGE / resources.MODELS_DIR
                                             / model_io.DEMO_MODEL_NAME)
    assert report['frames']['keyframes_with_output'] == report['frames']['keyframes'] > 0
