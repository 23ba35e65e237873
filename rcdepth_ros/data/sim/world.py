"""Procedural driving scene: a straight urban road, its furniture and traffic as oriented boxes.

Global frame (nuScenes ``global``): x east along the road, y north, z up, ground at z = 0.
The road runs along +x at ``y = ROAD_Y``; right-hand traffic, so the ego lane has y < ROAD_Y.
Every solid thing is an oriented box (centre, half extents in its own frame, yaw about z);
the ground (road, markings, sidewalks) is the plane z = 0 and the sky lies at infinity.
The camera renderer, the LiDAR and the radar all ray-cast this one list of boxes, so every
sensor sees the same world.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROAD_Y = 50.0          # global y of the road centre line (keeps map coordinates positive)
LANE_WIDTH = 3.5
ROAD_HALF_WIDTH = 8.5  # two lanes a direction plus a parking strip, kerb at the edge
SIDEWALK_WIDTH = 4.0
KERB_HEIGHT = 0.15


@dataclass(frozen=True)
class Kind:
    """What a class of box is: its annotation category, texture, radar and LiDAR response."""

    name: str
    category: str | None      # nuScenes category name; None = not annotated
    texture: str              # facade | vehicle | person | pole | kerb | barrier | cone
    rcs_dbsm: float           # mean radar cross-section of one scattering centre
    intensity: float          # mean LiDAR intensity (0..255)


KINDS: tuple[Kind, ...] = (
    Kind('building', None, 'facade', 6.0, 20.0),
    Kind('car', 'vehicle.car', 'vehicle', 10.0, 40.0),
    Kind('truck', 'vehicle.truck', 'vehicle', 18.0, 35.0),
    Kind('bus', 'vehicle.bus.rigid', 'vehicle', 20.0, 35.0),
    Kind('pedestrian', 'human.pedestrian.adult', 'person', -5.0, 15.0),
    Kind('pole', None, 'pole', 8.0, 60.0),
    Kind('kerb', None, 'kerb', -8.0, 10.0),
    Kind('barrier', 'movable_object.barrier', 'barrier', 4.0, 80.0),
    Kind('cone', 'movable_object.trafficcone', 'cone', -6.0, 100.0),
)
KIND_INDEX = {k.name: i for i, k in enumerate(KINDS)}


@dataclass
class World:
    """One scene: boxes with constant velocities and the ego trajectory.

    Box arrays (B = number of boxes): ``centers (B, 3)`` at t = 0, ``half (B, 3)`` half
    extents along the box's own x (length), y (width), z (height), ``yaw (B,)``,
    ``velocity (B, 2)`` m/s in the xy plane, ``kind (B,)`` index into :data:`KINDS`,
    ``color (B, 3)`` base RGB in [0, 1], ``instance (B,)`` annotation track id or -1.
    Time ``t`` is in seconds from the scene start.
    """

    centers: np.ndarray
    half: np.ndarray
    yaw: np.ndarray
    velocity: np.ndarray
    kind: np.ndarray
    color: np.ndarray
    instance: np.ndarray
    ego_speed: float
    ego_x0: float
    ego_lane_y: float
    weave_amplitude: float
    weave_period: float
    x_min: float
    x_max: float
    night: bool

    def boxes_at(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(centers (B, 3), half (B, 3), yaw (B,))`` at time ``t``."""
        centers = self.centers.copy()
        centers[:, :2] += self.velocity * t  # (B, 2)
        return centers, self.half, self.yaw

    def ego_state(self, t: float) -> tuple[np.ndarray, float, np.ndarray]:
        """Return ego ``(position (3,), yaw, velocity (3,))`` in the global frame at ``t``."""
        w = 2.0 * np.pi / self.weave_period
        x = self.ego_x0 + self.ego_speed * t
        y = self.ego_lane_y + self.weave_amplitude * np.sin(w * t)
        vy = self.weave_amplitude * w * np.cos(w * t)
        yaw = float(np.arctan2(vy, self.ego_speed))
        return np.array([x, y, 0.0]), yaw, np.array([self.ego_speed, vy, 0.0])

    def ego_transform(self, t: float) -> np.ndarray:
        """Return ``T_global_from_ego (4, 4)`` at time ``t``."""
        pos, yaw, _ = self.ego_state(t)
        T = np.eye(4)
        c, s = np.cos(yaw), np.sin(yaw)
        T[:2, :2] = [[c, -s], [s, c]]
        T[:3, 3] = pos
        return T


class _Boxes:
    """Accumulates box rows while a world is being laid out."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def add(self, kind: str, center_xy: tuple[float, float], size_lwh: tuple[float, float, float],
            yaw: float, color: np.ndarray, velocity: tuple[float, float] = (0.0, 0.0),
            z0: float = 0.0, instance: bool = True) -> None:
        length, width, height = size_lwh
        self.rows.append((KIND_INDEX[kind], center_xy[0], center_xy[1], z0 + height / 2,
                          length / 2, width / 2, height / 2, yaw, velocity[0], velocity[1],
                          *color, instance and KINDS[KIND_INDEX[kind]].category is not None))


_CAR_COLORS = np.array([[0.8, 0.8, 0.82], [0.1, 0.1, 0.12], [0.55, 0.05, 0.05], [0.1, 0.2, 0.5],
                        [0.5, 0.5, 0.52], [0.85, 0.75, 0.5], [0.15, 0.35, 0.2], [0.9, 0.9, 0.9]])
_FACADE_COLORS = np.array([[0.75, 0.65, 0.55], [0.6, 0.35, 0.3], [0.8, 0.8, 0.75],
                           [0.45, 0.45, 0.5], [0.7, 0.55, 0.4], [0.9, 0.85, 0.7]])
_VEHICLE_SIZES = {'car': ((4.0, 4.9), (1.7, 2.0), (1.45, 1.8)),
                  'truck': ((6.0, 9.0), (2.3, 2.6), (2.8, 3.6)),
                  'bus': ((10.0, 12.5), (2.5, 2.7), (3.0, 3.4))}


def _vehicle_kind(rng: np.random.Generator) -> str:
    return str(rng.choice(['car', 'truck', 'bus'], p=[0.82, 0.12, 0.06]))


def _vehicle_size(rng: np.random.Generator, kind: str) -> tuple[float, float, float]:
    (l0, l1), (w0, w1), (h0, h1) = _VEHICLE_SIZES[kind]
    return float(rng.uniform(l0, l1)), float(rng.uniform(w0, w1)), float(rng.uniform(h0, h1))


def make_world(rng: np.random.Generator, duration: float, night: bool) -> World:
    """Lay out one scene: road furniture, buildings, parked and moving traffic, pedestrians."""
    ego_speed = float(rng.uniform(4.0, 11.0))
    ego_x0 = 200.0
    ego_lane_y = ROAD_Y - LANE_WIDTH * float(rng.choice([0.5, 1.5]))
    # The world must reach beyond the radar's far range ahead of the ego at the scene's end.
    x_min = ego_x0 - 80.0
    x_max = ego_x0 + ego_speed * duration + 220.0
    boxes = _Boxes()

    for side in (-1.0, 1.0):
        kerb_y = ROAD_Y + side * (ROAD_HALF_WIDTH + 0.15)
        # Kerbs in 20 m pieces so a box never spans the whole scene (keeps culling effective).
        for x in np.arange(x_min, x_max, 20.0):
            boxes.add('kerb', (x + 10.0, kerb_y), (20.0, 0.3, KERB_HEIGHT), 0.0,
                      np.array([0.62, 0.62, 0.6]))
        # Buildings: a row of blocks with gaps, set back behind the sidewalk.
        x = x_min
        while x < x_max:
            length = float(rng.uniform(10.0, 35.0))
            depth = float(rng.uniform(10.0, 20.0))
            height = float(rng.uniform(6.0, 28.0))
            setback = ROAD_HALF_WIDTH + SIDEWALK_WIDTH + float(rng.uniform(0.5, 4.0))
            color = _FACADE_COLORS[rng.integers(len(_FACADE_COLORS))] * rng.uniform(0.85, 1.1)
            boxes.add('building', (x + length / 2, ROAD_Y + side * (setback + depth / 2)),
                      (length, depth, height), 0.0, np.clip(color, 0, 1))
            x += length + float(rng.uniform(0.0, 12.0))
        # Street-light poles along the sidewalk.
        x = x_min + float(rng.uniform(0, 20))
        while x < x_max:
            boxes.add('pole', (x, ROAD_Y + side * (ROAD_HALF_WIDTH + 0.8)), (0.25, 0.25, 7.0),
                      0.0, np.array([0.35, 0.37, 0.4]))
            x += float(rng.uniform(20.0, 35.0))
        # Parked vehicles on the parking strip, heading with the traffic of that side.
        x = x_min + float(rng.uniform(0, 10))
        while x < x_max:
            if rng.random() < 0.6:
                kind = 'car' if rng.random() < 0.9 else 'truck'
                size = _vehicle_size(rng, kind)
                y = ROAD_Y + side * (ROAD_HALF_WIDTH - 0.3 - size[1] / 2)
                yaw = 0.0 if side < 0 else np.pi
                boxes.add(kind, (x + size[0] / 2, y), size, yaw + float(rng.normal(0, 0.03)),
                          _CAR_COLORS[rng.integers(len(_CAR_COLORS))])
                x += size[0]
            x += float(rng.uniform(1.0, 9.0))
        # Pedestrians on the sidewalk: standing or walking along it.
        for _ in range(int(rng.integers(4, 12))):
            x = float(rng.uniform(x_min + 40, x_max - 60))
            y = ROAD_Y + side * (ROAD_HALF_WIDTH + float(rng.uniform(1.3, SIDEWALK_WIDTH - 0.4)))
            speed = float(rng.choice([0.0, 1.0, 1.4, -1.2]))
            height = float(rng.uniform(1.55, 1.9))
            yaw = 0.0 if speed >= 0 else np.pi
            boxes.add('pedestrian', (x, y), (0.55, 0.6, height), yaw,
                      np.clip(rng.uniform(0.05, 0.8, 3), 0, 1), velocity=(speed, 0.0))
        # Construction: a few cones or barriers at the kerb.
        if rng.random() < 0.5:
            x = float(rng.uniform(ego_x0 + 10, x_max - 60))
            kind = 'cone' if rng.random() < 0.5 else 'barrier'
            for i in range(int(rng.integers(3, 7))):
                size = (0.4, 0.4, 0.7) if kind == 'cone' else (0.5, 1.8, 1.0)
                color = np.array([1.0, 0.45, 0.0] if kind == 'cone' else [0.9, 0.9, 0.85])
                yaw = 0.0 if kind == 'cone' else np.pi / 2
                boxes.add(kind, (x + 2.5 * i, ROAD_Y + side * (ROAD_HALF_WIDTH - 1.4)), size,
                          yaw, color)

    # Moving traffic, one speed a lane so vehicles of a lane never collide.
    lanes = [(-0.5, 1.0), (-1.5, 1.0), (0.5, -1.0), (1.5, -1.0)]  # (lane offset, direction)
    for offset, direction in lanes:
        lane_y = ROAD_Y + offset * LANE_WIDTH
        if abs(lane_y - ego_lane_y) < 0.1:
            # The ego lane: vehicles ahead pulling away, never into the ego.
            speed = ego_speed + float(rng.uniform(0.3, 2.0))
            x = ego_x0 + float(rng.uniform(12.0, 30.0))
        else:
            speed = direction * float(rng.uniform(3.0, 13.0))
            x = x_min + float(rng.uniform(0, 15))
        while x < x_max:
            kind = _vehicle_kind(rng)
            size = _vehicle_size(rng, kind)
            yaw = 0.0 if direction > 0 else np.pi
            boxes.add(kind, (x + size[0] / 2, lane_y + float(rng.normal(0, 0.15))), size, yaw,
                      _CAR_COLORS[rng.integers(len(_CAR_COLORS))], velocity=(speed, 0.0))
            x += size[0] + float(rng.uniform(8.0, 45.0))

    rows = np.array(boxes.rows, dtype=np.float64)
    instance = np.where(rows[:, 13] > 0, np.cumsum(rows[:, 13] > 0) - 1, -1).astype(np.int64)
    return World(
        centers=rows[:, 1:4].copy(), half=rows[:, 4:7].copy(), yaw=rows[:, 7].copy(),
        velocity=rows[:, 8:10].copy(), kind=rows[:, 0].astype(np.int64),
        color=rows[:, 10:13].copy(), instance=instance, ego_speed=ego_speed, ego_x0=ego_x0,
        ego_lane_y=ego_lane_y, weave_amplitude=float(rng.uniform(0.0, 0.4)),
        weave_period=float(rng.uniform(6.0, 14.0)), x_min=x_min, x_max=x_max, night=night)
