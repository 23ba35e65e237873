"""ROS 2 layer: the only part of rcdepth_ros that imports rclpy.

- :mod:`.node`: ``rcdepth_node`` (lifecycle node, console script ``rcdepth_node``).
- :mod:`.params`: declared parameters with descriptors and validation.
- :mod:`.radar_buffer`: per-radar time-windowed sweep buffers, odometry buffer.
- :mod:`.extrinsics`: calibration YAML and optional tf2 extrinsics.
- :mod:`.diagnostics`: counters, rates and the /diagnostics status.
"""
