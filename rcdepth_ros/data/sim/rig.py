"""The nuScenes sensor rig: calibration, rates and per-sensor clock offsets.

Camera and LIDAR_TOP extrinsics and intrinsics and the RADAR_FRONT extrinsics are the real
values of nuScenes log n015-2018-07-24-11-22-45+0800 (scene-0061, the calibrated_sensor
records in ``shared/data/nuscenes-frame-scene0061``). The other four radars are not in that
fixture: their mounting is approximated from the nuScenes vehicle drawing (corners of the
bumpers, z = 0.5 m, facing sideways / backwards).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...geometry import make_transform

FULL_HEIGHT, FULL_WIDTH = 900, 1600

CAMERA_HZ = 12.0
RADAR_HZ = 13.0
LIDAR_HZ = 20.0
KEYFRAME_HZ = 2.0

LIDAR_BEAMS_DEG = np.linspace(10.0, -30.0, 32)  # HDL-32E-like fan, top beam first
LIDAR_AZIMUTHS = 1080                          # ~34.5 k rays a sweep, as nuScenes
LIDAR_MAX_RANGE = 100.0


@dataclass(frozen=True)
class Sensor:
    """One sensor of the rig: nuScenes channel, modality, calibration (ego frame)."""

    channel: str
    modality: str                        # camera | lidar | radar
    translation: tuple[float, float, float]
    rotation: tuple[float, float, float, float]  # (w, x, y, z), sensor -> ego
    intrinsic: tuple[tuple[float, ...], ...] = ()  # full-resolution K for cameras


def _yaw_quat(yaw_deg: float) -> tuple[float, float, float, float]:
    h = np.deg2rad(yaw_deg) / 2
    return (float(np.cos(h)), 0.0, 0.0, float(np.sin(h)))


SENSORS: tuple[Sensor, ...] = (
    Sensor('CAM_FRONT', 'camera', (1.70079118954, 0.0159456324149, 1.51095763913),
           (0.4998015430569128, -0.5030316162024876, 0.4997798114386805, -0.49737083824542755),
           ((1266.417203046554, 0.0, 816.2670197447984),
            (0.0, 1266.417203046554, 491.50706579294757), (0.0, 0.0, 1.0))),
    Sensor('CAM_FRONT_RIGHT', 'camera', (1.5508477543, -0.493404796419, 1.49574800619),
           (0.2060347966337182, -0.2026940577919598, 0.6824507824531167, -0.6713610884174485),
           ((1260.8474446004698, 0.0, 807.968244525554),
            (0.0, 1260.8474446004698, 495.3344268742088), (0.0, 0.0, 1.0))),
    Sensor('CAM_BACK_RIGHT', 'camera', (1.0148780988, -0.480568219723, 1.56239545128),
           (0.12280980120078765, -0.132400842670559, -0.7004305821388234, 0.690496031265798),
           ((1259.5137405846733, 0.0, 807.2529053838625),
            (0.0, 1259.5137405846733, 501.19579884916527), (0.0, 0.0, 1.0))),
    Sensor('CAM_BACK', 'camera', (0.0283260309358, 0.00345136761476, 1.57910346144),
           (0.5037872666382278, -0.49740249788611096, -0.4941850223835201, 0.5045496097725578),
           ((809.2209905677063, 0.0, 829.2196003259838),
            (0.0, 809.2209905677063, 481.77842384512485), (0.0, 0.0, 1.0))),
    Sensor('CAM_BACK_LEFT', 'camera', (1.03569100218, 0.484795032713, 1.59097014818),
           (0.6924185592174665, -0.7031619420114925, -0.11648342771943819, 0.11203317912370753),
           ((1256.7414812095406, 0.0, 792.1125740759628),
            (0.0, 1256.7414812095406, 492.7757465151356), (0.0, 0.0, 1.0))),
    Sensor('CAM_FRONT_LEFT', 'camera', (1.52387798135, 0.494631336551, 1.50932822144),
           (0.6757265034669446, -0.6736266522251881, 0.21214015046209478, -0.21122827103904068),
           ((1272.5979470598488, 0.0, 826.6154927353808),
            (0.0, 1272.5979470598488, 479.75165386361925), (0.0, 0.0, 1.0))),
    Sensor('LIDAR_TOP', 'lidar', (0.943713, 0.0, 1.84023),
           (0.7077955119163518, -0.006492242056004365, 0.010646214713995808,
            -0.7063073142877817)),
    Sensor('RADAR_FRONT', 'radar', (3.412, 0.0, 0.5),
           (0.9999984769132877, 0.0, 0.0, 0.0017453283658983088)),
    Sensor('RADAR_FRONT_LEFT', 'radar', (3.163, 0.563, 0.5), _yaw_quat(89.0)),
    Sensor('RADAR_FRONT_RIGHT', 'radar', (3.125, -0.565, 0.5), _yaw_quat(-89.0)),
    Sensor('RADAR_BACK_LEFT', 'radar', (-0.562, 0.628, 0.5), _yaw_quat(179.0)),
    Sensor('RADAR_BACK_RIGHT', 'radar', (-0.562, -0.618, 0.5), _yaw_quat(-179.0)),
)
SENSOR_BY_CHANNEL = {s.channel: s for s in SENSORS}
CAMERAS = tuple(s.channel for s in SENSORS if s.modality == 'camera')
RADARS = tuple(s.channel for s in SENSORS if s.modality == 'radar')


def yaw_to_quat(yaw: float) -> list[float]:
    """Return the ``(w, x, y, z)`` quaternion of a rotation by ``yaw`` about z."""
    return [float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2))]


def sensor_to_ego(sensor: Sensor) -> np.ndarray:
    """Return ``T_ego_from_sensor (4, 4)``."""
    return make_transform(sensor.rotation, sensor.translation)


def scaled_intrinsic(sensor: Sensor, scale: float) -> tuple[np.ndarray, int, int]:
    """Return ``(K (3, 3), height, width)`` of a camera rendered at ``scale``.

    The image plane is scaled about the pixel-grid origin, so with the ``floor`` pixel
    convention a point lands in the same relative place at every scale.
    """
    height, width = round(FULL_HEIGHT * scale), round(FULL_WIDTH * scale)
    K = np.array(sensor.intrinsic, dtype=np.float64)
    K[0, :] *= width / FULL_WIDTH
    K[1, :] *= height / FULL_HEIGHT
    return K, height, width
