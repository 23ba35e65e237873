"""Subcommands of ``rcdepth``; each module is discovered by :mod:`rcdepth_ros.cli`."""
