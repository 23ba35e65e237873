"""Synthetic radar-camera world written in nuScenes format (``rcdepth sim``).

One procedural world of oriented boxes (:mod:`.world`) seen by a camera renderer
(:mod:`.render`), a 32-beam LiDAR (:mod:`.lidar`) and an ARS408-like radar (:mod:`.radar`),
all through one ray caster (:mod:`.raycast`) and the nuScenes rig (:mod:`.rig`); the writer
(:mod:`.writer`) produces tables and files the nuscenes-devkit loads.
"""

from .rig import CAMERAS, RADARS, SENSOR_BY_CHANNEL, SENSORS
from .writer import SimConfig, build_world, scene_timeline, scene_world, sensor_frame, splits

__all__ = ['CAMERAS', 'RADARS', 'SENSORS', 'SENSOR_BY_CHANNEL', 'SimConfig', 'build_world',
           'scene_timeline', 'scene_world', 'sensor_frame', 'splits']
