"""The shipped-files lookup: ament index, then sys.prefix/share, then the source tree."""

from pathlib import Path
import sys

import pytest

from rcdepth_ros import cli, resources
from rcdepth_ros.errors import MissingData
from rcdepth_ros.models import io as model_io

REPO = Path(__file__).resolve().parents[1]


def _prefix(root: Path, *files: str, indexed: bool = True) -> Path:
    """An install prefix holding share/rcdepth_ros/<files> (and its ament index marker)."""
    share = root / 'share' / 'rcdepth_ros'
    share.mkdir(parents=True)
    if indexed:
        marker = root / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'rcdepth_ros'
        marker.parent.mkdir(parents=True)
        marker.write_text('')
    for name in files:
        (share / name).parent.mkdir(parents=True, exist_ok=True)
        (share / name).write_text(f'{root.name} {name}\n')
    return root


@pytest.fixture
def no_workspace(monkeypatch, tmp_path):
    """No sourced workspace and a sys.prefix without share/rcdepth_ros."""
    monkeypatch.delenv('AMENT_PREFIX_PATH', raising=False)
    monkeypatch.setattr(sys, 'prefix', str(tmp_path / 'empty_prefix'))


def test_lookup_order_ament_then_prefix_then_source(no_workspace, monkeypatch, tmp_path):
    # Only the source tree (this clone) holds the files.
    assert resources.params_file() == REPO / 'config' / 'rcdepth.yaml'
    assert resources.launch_file() == REPO / 'launch' / 'rcdepth.launch.py'
    assert resources.rviz_config() == REPO / 'config' / 'rcdepth.rviz'

    # A pip install's sys.prefix/share wins over the source tree.
    pip_prefix = _prefix(tmp_path / 'pip', resources.PARAMS_FILE, indexed=False)
    monkeypatch.setattr(sys, 'prefix', str(pip_prefix))
    assert resources.params_file() == pip_prefix / 'share' / 'rcdepth_ros' / 'config/rcdepth.yaml'
    # ... file by file: what the prefix lacks still comes from the source tree.
    assert resources.rviz_config() == REPO / 'config' / 'rcdepth.rviz'

    # A sourced workspace (ament index) wins over both.
    ws = _prefix(tmp_path / 'ws', resources.PARAMS_FILE)
    monkeypatch.setenv('AMENT_PREFIX_PATH', f'{tmp_path / "other"}:{ws}')
    assert resources.params_file() == ws / 'share' / 'rcdepth_ros' / 'config/rcdepth.yaml'
    kinds = [(p.kind, p.folder) for p in resources.places()]
    assert kinds == [('ament index', ws / 'share' / 'rcdepth_ros'),
                     ('sys.prefix', pip_prefix / 'share' / 'rcdepth_ros'),
                     ('source tree', REPO)]


def test_default_weights_come_from_the_lookup(no_workspace, monkeypatch, tmp_path):
    name = model_io.DEMO_MODEL_NAME
    assert model_io.default_model_path() == REPO / 'models' / name
    assert REPO.joinpath('models', f'{name}.safetensors').is_file()
    ws = _prefix(tmp_path / 'ws', f'models/{name}.safetensors', f'models/{name}.json')
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(ws))
    assert model_io.default_model_path() == ws / 'share' / 'rcdepth_ros' / 'models' / name
    assert model_io.resolve_weights(None) == ws / 'share' / 'rcdepth_ros' / 'models' / name
    assert model_io.resolve_weights('') == ws / 'share' / 'rcdepth_ros' / 'models' / name


def test_missing_file_names_every_place_in_one_line(no_workspace, monkeypatch, tmp_path):
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(tmp_path / 'not_a_workspace'))
    with pytest.raises(MissingData) as info:  # a user error: one line from the CLI
        resources.find('config/missing.yaml')
    message = str(info.value)
    assert '\n' not in message
    assert 'config/missing.yaml' in message
    assert 'ament index (rcdepth_ros is not in AMENT_PREFIX_PATH)' in message
    assert f'sys.prefix (no folder {tmp_path / "empty_prefix" / "share" / "rcdepth_ros"})' \
        in message
    assert f'source tree {REPO / "config" / "missing.yaml"} (missing)' in message

    monkeypatch.delenv('AMENT_PREFIX_PATH')
    with pytest.raises(FileNotFoundError, match=r'ament index \(AMENT_PREFIX_PATH is not set\)'):
        resources.find('models/missing.safetensors')


@pytest.mark.parametrize('bad', ['', '/etc/passwd', '../setup.py', 'config/../../x'])
def test_only_relative_paths_inside_the_package(bad):
    with pytest.raises(ValueError, match='relative path inside the package'):
        resources.find(bad)


def test_files_command_prints_the_shipped_paths(no_workspace, capsys):
    assert cli.main(['files', 'params']) == 0
    assert capsys.readouterr().out == f'{REPO / "config" / "rcdepth.yaml"}\n'
    assert cli.main(['files']) == 0
    out = capsys.readouterr().out
    assert f'weights  {REPO / "models" / model_io.DEMO_MODEL_NAME}\n' in out
    assert f'looked in: source tree {REPO}\n' in out
    assert 'looked in: ament index (AMENT_PREFIX_PATH is not set)' in out


def test_files_command_missing_file_is_one_line(no_workspace, monkeypatch, capsys):
    monkeypatch.setattr(resources, 'RVIZ_CONFIG', 'config/gone.rviz')
    assert cli.main(['files', 'rviz']) == 1
    err = capsys.readouterr().err.strip()
    assert '\n' not in err
    assert err.startswith('rcdepth files: error: shipped file config/gone.rviz of rcdepth_ros '
                          'not found; looked in:')


def test_missing_default_weights_are_missing_data(no_workspace, monkeypatch):
    monkeypatch.setattr(model_io, 'DEMO_MODEL_NAME', 'no_such_model')
    with pytest.raises(MissingData, match='shipped file models/no_such_model.safetensors of '
                                          'rcdepth_ros not found; looked in: ament index'):
        model_io.resolve_weights(None)
