"""rcdepth_ros: radar-camera metric depth with per-pixel uncertainty for ROS 2.

Layout (arrows point inward only):

- ``geometry``, ``msgs``: the pure core (transforms, projection, rasterisation; message codecs);
  ``sweeps``: the radar sweep-selection rule; ``rescale``: frames resized to the focal length a
  network was trained at (training data and serving alike).
- ``errors``: the user-error family (bad input file, missing data, bad argument).
- ``models`` and ``inference``: networks, configs, safetensors I/O, the DepthEstimator.
- ``backends`` and ``quantize``: exported-graph runtimes (ONNX Runtime, OpenVINO), their
  graph cache and INT8 quantisation with its accuracy gate; ``devcheck``: the training
  steps of the GPU check (scripts/device_check.sh).
- ``data``: synthetic world in nuScenes format, nuScenes preparation, datasets.
- ``training``: losses, distillation, trainer, evaluation.
- ``ros`` and ``bags``: the node (the only rclpy user) and the bag tools.
- ``codec`` and ``pipeline``: frame-level message decode/encode, and the frame pipeline shared
  by the node and the bag tools.
- ``cli``/``commands``: the ``rcdepth`` command and its subcommands.
- ``resources``: where the shipped weights, configs and launch file are, in every install.
"""

__version__ = '0.1.0'
