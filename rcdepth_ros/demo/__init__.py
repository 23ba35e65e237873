"""The one-command demo (``rcdepth demo``): world -> bag -> live node -> depth bag + report.

- :mod:`.run`: orchestration (:func:`run_demo`, :class:`DemoOptions`, :class:`DemoError`).
- :mod:`.scene`: keyframes of a nuScenes scene with radar and single-scan LiDAR GT.
- :mod:`.recorder`: records the node's outputs into an MCAP bag (the rclpy user here).
- :mod:`.metrics`: SPEC 5 metrics of the node's depth per keyframe; the JSON report.
- :mod:`.figure`: the picture (image | radar | depth | uncertainty | error).

Outer layer, like ``commands/``: it drives ``ros/`` and ``bags/`` and nothing imports it.
"""

from .run import DemoError, DemoOptions, print_report, run_demo

__all__ = ['DemoError', 'DemoOptions', 'print_report', 'run_demo']
