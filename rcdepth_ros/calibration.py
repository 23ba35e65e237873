"""Sensor calibration of a rig and static extrinsics from it (pure core, no rclpy).

The calibration YAML (format in docs/ARCHITECTURE.md, "Calibration YAML") gives every
sensor's pose in the vehicle frame ``base_link``; :class:`CalibrationExtrinsics` answers
``T_target_from_source`` for any two of those frames. The node, the bag tools and the frame
assembler (:mod:`.assembler`) use it; tf2 extrinsics (optional, needs rclpy) live in
:mod:`rcdepth_ros.ros.extrinsics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import geometry


@dataclass(frozen=True)
class SensorCalibration:
    """One sensor of the calibration YAML; ``K``/``width``/``height`` only for cameras."""

    name: str
    frame_id: str
    parent_frame: str
    translation: tuple[float, float, float]
    rotation: tuple[float, float, float, float]
    K: np.ndarray | None = None
    width: int | None = None
    height: int | None = None

    @property
    def T_parent_from_sensor(self) -> np.ndarray:
        """``(4, 4)`` pose of the sensor in its parent frame."""
        return geometry.make_transform(np.asarray(self.rotation, dtype=np.float64),
                                       np.asarray(self.translation, dtype=np.float64))


@dataclass(frozen=True)
class Calibration:
    """All sensors of a rig, keyed by sensor name, with the common parent frame."""

    base_frame: str
    sensors: dict[str, SensorCalibration]

    def by_frame(self, frame_id: str) -> SensorCalibration | None:
        """Return the sensor whose ``frame_id`` is ``frame_id``, or None."""
        for sensor in self.sensors.values():
            if sensor.frame_id == frame_id:
                return sensor
        return None


def _floats(value: Any, n: int, what: str) -> tuple[float, ...]:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size != n or not np.all(np.isfinite(arr)):
        raise ValueError(f'{what} must be {n} finite numbers, got {value!r}')
    return tuple(float(v) for v in arr)


def parse_calibration(data: Any) -> Calibration:
    """Validate a loaded calibration YAML document and return a :class:`Calibration`."""
    if not isinstance(data, dict) or not isinstance(data.get('sensors'), dict):
        raise ValueError('calibration YAML needs a mapping "sensors: {NAME: {...}}"')
    base = str(data.get('base_frame', 'base_link'))
    sensors: dict[str, SensorCalibration] = {}
    for name, entry in data['sensors'].items():
        if not isinstance(entry, dict):
            raise ValueError(f'calibration sensor {name!r} must be a mapping')
        parent = str(entry.get('parent_frame', base))
        if parent != base:
            raise ValueError(f'calibration sensor {name!r}: parent_frame {parent!r} is not '
                             f'the base frame {base!r}')
        rotation = _floats(entry.get('rotation'), 4, f'{name}.rotation (w, x, y, z)')
        if abs(np.linalg.norm(rotation) - 1.0) > 1e-3:
            raise ValueError(f'calibration sensor {name!r}: rotation is not a unit quaternion')
        K = width = height = None
        if 'K' in entry:
            K = np.asarray(_floats(entry['K'], 9, f'{name}.K'), dtype=np.float64).reshape(3, 3)
            width, height = int(entry.get('width', 0)), int(entry.get('height', 0))
            if width <= 0 or height <= 0 or K[0, 0] <= 0 or K[1, 1] <= 0:
                raise ValueError(f'calibration camera {name!r} needs positive fx, fy, width, '
                                 'height')
        sensors[str(name)] = SensorCalibration(
            name=str(name), frame_id=str(entry.get('frame_id', name)), parent_frame=parent,
            translation=_floats(entry.get('translation'), 3, f'{name}.translation'),
            rotation=rotation, K=K, width=width, height=height)
    return Calibration(base_frame=base, sensors=sensors)


def load_calibration(path: str | Path) -> Calibration:
    """Read and validate a calibration YAML file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'calibration file not found: {path}')
    with path.open() as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise ValueError(f'calibration file {path} is not valid YAML: {exc}') from None
    return parse_calibration(data)


def calibration_to_dict(calibration: Calibration) -> dict[str, Any]:
    """Plain-data form of a :class:`Calibration`, ready for ``yaml.safe_dump``."""
    sensors: dict[str, Any] = {}
    for name, s in calibration.sensors.items():
        entry: dict[str, Any] = {'frame_id': s.frame_id, 'parent_frame': s.parent_frame,
                                 'translation': list(s.translation),
                                 'rotation': list(s.rotation)}
        if s.K is not None:
            entry.update(K=[float(v) for v in s.K.reshape(-1)], width=s.width, height=s.height)
        sensors[name] = entry
    return {'base_frame': calibration.base_frame, 'sensors': sensors}


class CalibrationExtrinsics:
    """Static extrinsics from a :class:`Calibration` (or none: only identical frames)."""

    def __init__(self, calibration: Calibration | None, base_frame: str = 'base_link') -> None:
        self.calibration = calibration
        self.base_frame = calibration.base_frame if calibration else base_frame

    def T_base_from(self, frame_id: str) -> np.ndarray | None:
        """Pose of ``frame_id`` in the base frame, or None if the frame is unknown."""
        if frame_id == self.base_frame:
            return np.eye(4)
        sensor = self.calibration.by_frame(frame_id) if self.calibration else None
        return None if sensor is None else sensor.T_parent_from_sensor

    def lookup(self, target: str, source: str, stamp_ns: int | None = None) -> np.ndarray | None:
        """``T_target_from_source`` (static), or None when a frame is unknown."""
        if target == source:
            return np.eye(4)
        T_base_from_target = self.T_base_from(target)
        T_base_from_source = self.T_base_from(source)
        if T_base_from_target is None or T_base_from_source is None:
            return None
        return geometry.invert_transform(T_base_from_target) @ T_base_from_source
