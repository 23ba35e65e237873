import subprocess
import sys

from rcdepth_ros import cli


def test_help_lists_subcommands(capsys):
    parser = cli.build_parser()
    help_text = parser.format_help()
    assert 'COMMAND' in help_text
    for action in parser._subparsers._group_actions:
        for name in action.choices:
            assert name in help_text


def test_console_script_runs():
    out = subprocess.run([sys.executable, '-m', 'rcdepth_ros.cli', '--help'],
                         capture_output=True, text=True, check=True)
    assert 'rcdepth' in out.stdout


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 2


def test_user_errors_are_one_line(capsys, tmp_path):
    assert cli.main(['bench', '--variants', 'nosuch', '--device', 'cpu']) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith('rcdepth bench: error: unknown variant') and '\n' not in err
    assert cli.main(['export-onnx', '--weights', str(tmp_path / 'none.v2'), '--out',
                     str(tmp_path / 'x.onnx')]) == 1
    err = capsys.readouterr().err.strip()
    assert 'model description not found' in err and 'none.v2.json' in err and '\n' not in err
    # --debug shows where a user error came from.
    assert cli.main(['--debug', 'bench', '--variants', 'nosuch', '--device', 'cpu']) == 1
    err = capsys.readouterr().err
    assert 'Traceback (most recent call last)' in err and 'BadArgument' in err


def test_a_bug_prints_its_traceback_even_when_it_is_a_value_error(capsys, monkeypatch):
    import numpy as np

    from rcdepth_ros.commands import models

    def shape_bug(args):
        return np.zeros(3).reshape(2, 2)  # numpy raises ValueError: a bug, not bad input

    monkeypatch.setattr(models, 'run', shape_bug)
    assert cli.main(['models']) == 1
    err = capsys.readouterr().err
    assert 'Traceback (most recent call last)' in err and 'reshape' in err
    assert 'internal error (ValueError)' in err.splitlines()[-1]
