"""Drive ``rcdepth_node`` from outside: start it as a process, feed synthetic frames, wait.

Shared by the node tests and ``rcdepth bench-node``. Synthetic scene: a ground plane seen by
a forward camera (depth grows towards the horizon) and radar points on that plane, so a
trained model has something to fit and an untrained one still gets well-formed input.
"""

from __future__ import annotations

import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np
import yaml

from .. import msgs

CAMERA_FRAME = 'test_camera'
RADAR_FRAME = 'test_radar'


def node_executable() -> str:
    """Path of the ``rcdepth_node`` console script next to this interpreter (or on PATH)."""
    beside = Path(sys.executable).parent / 'rcdepth_node'
    if beside.is_file():
        return str(beside)
    found = shutil.which('rcdepth_node')
    if found is None:
        raise FileNotFoundError('rcdepth_node console script not found; pip install -e .')
    return found


def ros_environment(domain_id: int, log_dir: str | Path) -> dict[str, str]:
    """Environment of an isolated ROS run: own domain, local discovery, LARGE_DATA, log dir."""
    env = dict(os.environ)
    env.update({
        'ROS_DOMAIN_ID': str(domain_id),
        'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
        'FASTDDS_BUILTIN_TRANSPORTS': 'LARGE_DATA',
        'ROS_LOG_DIR': str(log_dir),
        'RCUTILS_COLORIZED_OUTPUT': '0',
        'PYTHONUNBUFFERED': '1',
        'OMP_NUM_THREADS': env.get('OMP_NUM_THREADS', '1'),
    })
    return env


def intrinsics(height: int, width: int) -> np.ndarray:
    """Pinhole K of the synthetic camera (horizontal field of view ~70 degrees)."""
    f = 0.7 * width
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def calibration_dict(height: int, width: int) -> dict[str, Any]:
    """Calibration YAML content of the synthetic rig (camera 1.5 m up, radar 0.5 m up)."""
    # base_link: x forward, y left, z up. Camera optical frame: z forward, x right, y down.
    cam_rot = [0.5, -0.5, 0.5, -0.5]  # (w, x, y, z) of R_base_from_optical
    return {
        'base_frame': 'base_link',
        'sensors': {
            'CAMERA': {'frame_id': CAMERA_FRAME, 'parent_frame': 'base_link',
                       'translation': [1.5, 0.0, 1.5], 'rotation': cam_rot,
                       'K': [float(v) for v in intrinsics(height, width).reshape(-1)],
                       'width': width, 'height': height},
            'RADAR': {'frame_id': RADAR_FRAME, 'parent_frame': 'base_link',
                      'translation': [3.0, 0.0, 0.5], 'rotation': [1.0, 0.0, 0.0, 0.0]},
        },
    }


def write_params_file(path: str | Path, params: dict[str, Any]) -> Path:
    """Write ``/**: ros__parameters: params`` (nested keys for dotted names) to ``path``."""
    nested: dict[str, Any] = {}
    for name, value in params.items():
        node = nested
        *parents, leaf = name.split('.')
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    path = Path(path)
    path.write_text(yaml.safe_dump({'/**': {'ros__parameters': nested}}, sort_keys=False))
    return path


def synthetic_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """RGB uint8 (H, W, 3): sky above the horizon, textured road below."""
    rng = np.random.default_rng(seed)
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    rgb[: height // 2] = (135, 180, 235)
    rows = np.arange(height - height // 2)[:, None]  # (h, 1)
    road = 60 + (rows * 80 // max(1, rows.size)) + rng.integers(0, 20, (rows.size, width))
    rgb[height // 2:] = np.clip(road, 0, 255).astype(np.uint8)[:, :, None]
    return rgb


def synthetic_radar(n: int = 40, seed: int = 0) -> np.ndarray:
    """Structured nuScenes 43-byte radar points on the ground ahead, radar frame."""
    rng = np.random.default_rng(seed)
    pts = np.zeros(n, dtype=msgs.NUSCENES_RADAR_DTYPE)
    rng_m = rng.uniform(5.0, 60.0, n)
    azimuth = rng.uniform(-0.5, 0.5, n)
    pts['x'] = rng_m * np.cos(azimuth)
    pts['y'] = rng_m * np.sin(azimuth)
    pts['rcs'] = rng.uniform(-5.0, 20.0, n)
    pts['vx'] = rng.normal(0.0, 1.0, n)
    pts['invalid_state'] = 0
    pts['dyn_prop'] = 1
    pts['ambig_state'] = 3
    return pts


class FrameMessages:
    """Builds rclpy Image / CameraInfo / PointCloud2 / Odometry messages of one stamp."""

    def __init__(self, height: int, width: int) -> None:
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        self.height, self.width = height, width
        self.K = intrinsics(height, width)
        self._image_fields = msgs.array_to_image_fields(synthetic_image(height, width), 'rgb8')
        self._info_fields = msgs.camera_info_fields(self.K, height, width)
        self._radar_fields = msgs.array_to_pointcloud2_fields(synthetic_radar())
        self._classes = (Image, CameraInfo, PointCloud2)

    @staticmethod
    def header(stamp_ns: int, frame_id: str) -> Any:
        from std_msgs.msg import Header

        header = Header(frame_id=frame_id)
        header.stamp.sec, header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
        return header

    def image(self, stamp_ns: int, **override: Any) -> Any:
        fields = {**self._image_fields, **override}
        return msgs.build_message(self._classes[0], fields,
                                  header=self.header(stamp_ns, CAMERA_FRAME))

    def camera_info(self, stamp_ns: int, **override: Any) -> Any:
        fields = {**self._info_fields, **override}
        return msgs.build_message(self._classes[1], fields,
                                  header=self.header(stamp_ns, CAMERA_FRAME))

    def radar(self, stamp_ns: int, frame_id: str = RADAR_FRAME, **override: Any) -> Any:
        fields = {**self._radar_fields, **override}
        return msgs.build_message(self._classes[2], fields,
                                  header=self.header(stamp_ns, frame_id))

    def odometry(self, stamp_ns: int, x: float = 0.0) -> Any:
        from nav_msgs.msg import Odometry

        odom = Odometry(header=self.header(stamp_ns, 'odom'), child_frame_id='base_link')
        odom.pose.pose.position.x = float(x)
        odom.pose.pose.orientation.w = 1.0
        return odom


class NodeProcess:
    """``rcdepth_node`` in its own process with params files; stopped with SIGINT.

    ``executable`` defaults to the console script of this interpreter (:func:`node_executable`).
    """

    def __init__(self, params_file: str | Path | Sequence[str | Path], env: dict[str, str],
                 namespace: str = '', log_path: str | Path | None = None,
                 executable: str | Path | None = None) -> None:
        # Several params files: later ones override earlier ones (rcl semantics).
        files = [params_file] if isinstance(params_file, (str, Path)) else list(params_file)
        cmd = [str(executable or node_executable()), '--ros-args']
        for path in files:
            cmd += ['--params-file', str(path)]
        if namespace:
            cmd += ['-r', f'__ns:={namespace}']
        self.log_path = Path(log_path) if log_path else None
        self._log = open(self.log_path, 'w') if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ''

    def rss_mb(self) -> float:
        """Resident memory of the node process in MiB (Linux)."""
        for line in Path(f'/proc/{self.proc.pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
        return float('nan')

    def stop(self, timeout: float = 20.0) -> int:
        """SIGINT, wait, then SIGKILL if it hangs; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        if self._log is not subprocess.DEVNULL:
            self._log.close()
        return self.proc.returncode

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def spin_until(executor: Any, condition: Callable[[], bool], timeout: float,
               step: float = 0.02) -> bool:
    """Spin ``executor`` until ``condition()`` is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        executor.spin_once(timeout_sec=step)
    return condition()


class NodeClient:
    """Test-side publishers, subscribers and lifecycle clients of one ``rcdepth_node``.

    ``node`` is a plain rclpy node spun by ``executor``; ``proc`` the :class:`NodeProcess`.
    Received messages accumulate in ``got[key]``; use :meth:`wait` for bounded polling.
    ``cameras``: the node's ``cameras`` parameter (empty: the single camera on the default
    topics); camera ``C``'s outputs are keyed ``C/depth`` etc., the fused cloud ``fused_points``.
    """

    OUTPUTS = (('depth', 'sensor_msgs/Image', 'output/depth'),
               ('uncertainty', 'sensor_msgs/Image', 'output/uncertainty'),
               ('camera_info', 'sensor_msgs/CameraInfo', 'output/camera_info'),
               ('points', 'sensor_msgs/PointCloud2', 'output/points'),
               ('colored', 'sensor_msgs/Image', 'output/depth_colored'),
               ('processing_time', 'std_msgs/Float32', 'output/processing_time'),
               ('model_time', 'std_msgs/Float32', 'output/model_time'))

    def __init__(self, executor: Any, node: Any, namespace: str, proc: NodeProcess,
                 height: int, width: int, outputs: tuple[str, ...] | None = None,
                 startup_timeout: float = 90.0, cameras: Sequence[str] = ()) -> None:
        import importlib

        from diagnostic_msgs.msg import DiagnosticArray
        from lifecycle_msgs.srv import ChangeState, GetState
        from nav_msgs.msg import Odometry
        from rcl_interfaces.srv import SetParameters
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        self.executor, self.node, self.proc = executor, node, proc
        self.base = base = f'{namespace}/rcdepth_node'
        self.frames = FrameMessages(height, width)
        self.cameras = tuple(cameras) or ('',)
        prefix = {c: f'{base}/{c}' if c else base for c in self.cameras}
        self.pub_images = {c: node.create_publisher(Image, f'{prefix[c]}/input/image', 5)
                           for c in self.cameras}
        self.pub_infos = {c: node.create_publisher(CameraInfo, f'{prefix[c]}/input/camera_info',
                                                   5) for c in self.cameras}
        self.pub_image, self.pub_info = self.pub_images[self.cameras[0]], \
            self.pub_infos[self.cameras[0]]
        self.pub_radar = node.create_publisher(PointCloud2, f'{base}/input/radar', 5)
        self.pub_odom = node.create_publisher(Odometry, f'{base}/input/odom', 20)
        self.got: dict[str, list[Any]] = {}
        self.got['diagnostics'] = []
        for camera in self.cameras:
            for key, type_name, topic in self.OUTPUTS:
                self.got[output_key(camera, key)] = []
                if outputs is not None and key not in outputs:
                    continue
                package, name = type_name.split('/')
                cls = getattr(importlib.import_module(f'{package}.msg'), name)
                node.create_subscription(cls, f'{prefix[camera]}/{topic}',
                                         self._append(output_key(camera, key)), 10)
        if cameras:
            self.got['fused_points'] = []
            node.create_subscription(PointCloud2, f'{base}/output/points',
                                     self._append('fused_points'), 10)
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 10)
        self.change = node.create_client(ChangeState, f'{base}/change_state')
        self.get = node.create_client(GetState, f'{base}/get_state')
        self.set_params = node.create_client(SetParameters, f'{base}/set_parameters')
        self.stamp_ns = self.start_ns = 1_700_000_000_000_000_000
        self.last_image_sent = float('nan')
        self.radar_sent = 0
        if not self.wait(self.get.service_is_ready, startup_timeout):
            raise TimeoutError('rcdepth_node did not come up\n' + proc.log()[-3000:])

    def _append(self, key: str) -> Callable[[Any], None]:
        def store(msg: Any) -> None:
            self.got[key].append((time.perf_counter(), msg))
        return store

    def messages(self, key: str) -> list[Any]:
        """Messages received on output ``key`` (without their arrival times)."""
        return [m for _, m in self.got[key]]

    def _on_diag(self, msg: Any) -> None:
        for status in msg.status:
            if status.hardware_id == self.base:
                self.got['diagnostics'].append({kv.key: kv.value for kv in status.values})

    def wait(self, condition: Callable[[], Any], timeout: float) -> bool:
        """Spin until ``condition()`` holds (True) or timeout / the node process died (False)."""
        return spin_until(self.executor, lambda: bool(condition()) or not self.proc.alive(),
                          timeout) and self.proc.alive() and bool(condition())

    def call(self, client: Any, request: Any, timeout: float = 30.0) -> Any:
        """Call a service and wait for the answer (AssertionError on timeout)."""
        future = client.call_async(request)
        if not self.wait(future.done, timeout):
            raise AssertionError(f'no answer from {client.srv_name}\n' + self.proc.log()[-2000:])
        return future.result()

    def state(self) -> int:
        """Return the current lifecycle state id (lifecycle_msgs/State)."""
        from lifecycle_msgs.srv import GetState

        return self.call(self.get, GetState.Request()).current_state.id

    def transition(self, transition_id: int) -> bool:
        """Request a lifecycle transition; True if it succeeded."""
        from lifecycle_msgs.srv import ChangeState

        request = ChangeState.Request()
        request.transition.id = transition_id
        return bool(self.call(self.change, request).success)

    def set_string(self, name: str, value: str) -> bool:
        """Set a string parameter of the node; True if accepted."""
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters

        param = Parameter(name=name, value=ParameterValue(
            type=ParameterType.PARAMETER_STRING, string_value=value))
        result = self.call(self.set_params, SetParameters.Request(parameters=[param]))
        return bool(result.results[0].successful)

    def publish_frame(self, radar_frame: str | None = None, odom: bool = True,
                      before_image: Callable[[], Any] | None = None) -> int:
        """Publish odometry, radar, camera_info and image of a new stamp (10 Hz); return it.

        ``before_image`` runs after the radar and odometry went out, before camera_info and
        image: e.g. a wait until the node has taken the radar in (the node picks radar when
        its worker takes the frame, so a sweep still queued would be missed by chance).
        """
        self.stamp_ns += 100_000_000
        stamp = self.stamp_ns
        if odom:  # driving at 10 m/s: the radar sweep 30 ms older needs compensation
            for dt in (-60_000_000, 20_000_000):
                x = (stamp + dt - self.start_ns) * 1e-8
                self.pub_odom.publish(self.frames.odometry(stamp + dt, x))
        self.pub_radar.publish(self.frames.radar(stamp - 30_000_000, **(
            {'frame_id': radar_frame} if radar_frame else {})))
        self.radar_sent += 1
        if before_image is not None:
            before_image()
        info, image = self.frames.camera_info(stamp), self.frames.image(stamp)
        for camera in self.cameras:
            self.pub_infos[camera].publish(info)
        self.last_image_sent = time.perf_counter()
        for camera in self.cameras:
            self.pub_images[camera].publish(image)
        return stamp

    def serve_one(self, timeout: float = 60.0, **kwargs: Any) -> int:
        """Publish frames until the depth of one of them comes back; return its stamp."""
        sent = set()
        deadline = time.monotonic() + timeout
        key = output_key(self.cameras[0], 'depth')
        while time.monotonic() < deadline and self.proc.alive():
            sent.add(self.publish_frame(**kwargs))
            n = len(self.got[key])
            self.wait(lambda: len(self.got[key]) > n, 1.0)
            for _, msg in self.got[key][n:]:
                if stamp_ns(msg.header) in sent:
                    return stamp_ns(msg.header)
        raise AssertionError('no depth image came back\n' + self.proc.log()[-3000:])


def output_key(camera: str, key: str) -> str:
    """Key of a camera's output in :attr:`NodeClient.got` (``depth``, ``CAM_B/depth``)."""
    return f'{camera}/{key}' if camera else key


def stamp_ns(header: Any) -> int:
    """Integer nanoseconds of a message header's stamp (:func:`rcdepth_ros.msgs.stamp_to_ns`)."""
    return msgs.stamp_to_ns(header.stamp)
