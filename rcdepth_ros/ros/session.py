"""One in-process ROS session: private rclpy context, a node, an executor (and its thread).

Used by the demo, ``replay``, ``bench-node`` and the tests. rclpy and Fast DDS read the
middleware environment (``ROS_AUTOMATIC_DISCOVERY_RANGE``, ``FASTDDS_BUILTIN_TRANSPORTS``,
``ROS_LOG_DIR``) when the context starts, so a session sets those of ``env`` in this
process for its lifetime and restores the previous values when it closes. Closing shuts the
executor down, joins the spin thread, destroys the node and shuts the context down, in that
order (a spin thread still running at exit aborts the interpreter).
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any, Iterator, Mapping

# Environment variables a session applies to this process (read by rclpy / Fast DDS at init).
SESSION_ENV = ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'FASTDDS_BUILTIN_TRANSPORTS', 'ROS_LOG_DIR')
JOIN_TIMEOUT_S = 10.0


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables of this process for the block; restore them afterwards."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class RosSession:
    """A private rclpy context with one node; ``spin=True`` spins it in a daemon thread.

    ``domain_id``: None = ``ROS_DOMAIN_ID`` of this process. ``env``: environment of the run
    (e.g. :func:`rcdepth_ros.ros.harness.ros_environment`); only :data:`SESSION_ENV` of it is
    applied here, and restored on :meth:`close`. Use as a context manager, or call
    :meth:`close`.
    """

    def __init__(self, name: str, domain_id: int | None = None,
                 env: Mapping[str, str] | None = None, spin: bool = True) -> None:
        import warnings

        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        values = {k: env[k] for k in SESSION_ENV if env is not None and k in env}
        self._env = environment(values)
        self._env.__enter__()
        self.context = Context()
        self._thread: threading.Thread | None = None
        try:
            with warnings.catch_warnings():  # lark's DeprecationWarning at first node creation
                warnings.simplefilter('ignore', DeprecationWarning)
                rclpy.init(context=self.context,
                           domain_id=None if domain_id is None else int(domain_id))
                self.node = rclpy.create_node(name, context=self.context)
            self.executor = SingleThreadedExecutor(context=self.context)
            self.executor.add_node(self.node)
        except BaseException:
            self.context.try_shutdown()
            self._env.__exit__(None, None, None)
            raise
        if spin:
            self._thread = threading.Thread(target=self._spin, name=f'{name}_spin',
                                            daemon=True)
            self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        with contextlib.suppress(ExternalShutdownException):
            self.executor.spin()

    def close(self) -> None:
        """Stop spinning, destroy the node, shut the context down, restore the environment."""
        try:
            self.executor.shutdown()
            if self._thread is not None:
                self._thread.join(timeout=JOIN_TIMEOUT_S)
            self.node.destroy_node()
            self.context.try_shutdown()
        finally:
            self._env.__exit__(None, None, None)

    def __enter__(self) -> RosSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
