"""tf2 extrinsics for the node (only when ``tf2_ros`` is importable).

:class:`TfExtrinsics` wraps a tf2 buffer and answers ``lookup(target, source, stamp_ns)`` like
:class:`rcdepth_ros.calibration.CalibrationExtrinsics`; it is used only when ``import tf2_ros``
succeeds and the node asks for it (tf2 is not installable from pip wheels, so the calibration
path is the tested one).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import geometry


class TfExtrinsics:
    """Extrinsics and ego motion from tf2 (only when ``tf2_ros`` is importable)."""

    def __init__(self, node: Any, base_frame: str = 'base_link') -> None:
        import tf2_ros  # optional dependency, see module docstring

        self.base_frame = base_frame
        self.buffer = tf2_ros.Buffer()
        self.listener = tf2_ros.TransformListener(self.buffer, node)

    def lookup(self, target: str, source: str, stamp_ns: int | None = None) -> np.ndarray | None:
        """``T_target_from_source`` at ``stamp_ns`` (latest when None), or None."""
        from rclpy.duration import Duration
        from rclpy.time import Time

        when = Time() if stamp_ns is None else Time(nanoseconds=stamp_ns)
        try:
            tf = self.buffer.lookup_transform(target, source, when, timeout=Duration(seconds=0))
        except Exception:  # noqa: BLE001 - tf2 raises several unrelated exception types
            return None
        r, t = tf.transform.rotation, tf.transform.translation
        return geometry.make_transform(np.array([r.w, r.x, r.y, r.z]),
                                       np.array([t.x, t.y, t.z]))

    def close(self) -> None:
        """Stop listening to /tf."""
        self.listener.unregister()


def tf2_available() -> bool:
    """Tell whether ``tf2_ros`` can be imported."""
    try:
        import tf2_ros  # noqa: F401
    except ImportError:
        return False
    return True
