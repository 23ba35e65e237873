"""Names of the frame counters and of the node's ``/diagnostics`` keys, written once.

The frame assembler counts why an input or a frame was dropped under these reasons; the node
publishes them (:mod:`rcdepth_ros.ros.diagnostics`), and the demo, the benchmarks and the tests
read them back by these names.
"""

from __future__ import annotations

# Why an input or a frame was skipped (``bad_input <reason>`` in /diagnostics). Decode
# failures of :mod:`rcdepth_ros.codec` use their own ``BadInput.kind`` names, listed here.
IMAGE_DECODE, IMAGE_ENCODING, IMAGE_SIZE = 'image_decode', 'image_encoding', 'image_size'
CAMERA_INFO, CAMERA_INFO_MISMATCH = 'camera_info', 'camera_info_mismatch'
RADAR_DECODE, RADAR_EMPTY, RADAR_NONFINITE, RADAR_HUGE = (
    'radar_decode', 'radar_empty', 'radar_nonfinite', 'radar_huge')
UNKNOWN_FRAME = 'unknown_frame'
TIME_JUMP = 'time_jump'
ODOMETRY = 'odometry'
NO_CAMERA_INFO = 'no_camera_info'  # an image whose camera_info never came
INFERENCE = 'inference'
BAD_INPUT_KINDS = (
    IMAGE_DECODE, IMAGE_ENCODING, IMAGE_SIZE, CAMERA_INFO, CAMERA_INFO_MISMATCH,
    RADAR_DECODE, RADAR_EMPTY, RADAR_NONFINITE, RADAR_HUGE, UNKNOWN_FRAME, TIME_JUMP,
    ODOMETRY, NO_CAMERA_INFO, INFERENCE,
)

# /diagnostics keys (values are strings).
FRAMES_PROCESSED = 'frames_processed'
FRAMES_DROPPED = 'frames_dropped'  # replaced in the one-slot mailbox before the worker took it
FRAMES_UNCOMPENSATED = 'frames_uncompensated'  # radar without ego motion (odometry missing)
BAD_INPUT_TOTAL = 'bad_input_total'
RADAR_PIXELS_LAST = 'radar_pixels_last_frame'
PROCESSING_MS_MEDIAN = 'processing_ms_median'
PROCESSING_MS_MAX = 'processing_ms_max'
MODEL_MS_MEDIAN = 'model_ms_median'


def received_key(topic: str) -> str:
    """Key of the message count of an input (a topic, ``camera_info`` or ``odometry``)."""
    return f'received {topic}'


def rate_key(topic: str) -> str:
    """Key of the input rate (Hz) of an input."""
    return f'rate_hz {topic}'


def bad_input_key(kind: str) -> str:
    """Key of the count of inputs skipped for ``kind``."""
    return f'bad_input {kind}'
