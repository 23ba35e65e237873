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
