"""SPEC 5 metrics of the node's depth against single-scan LiDAR, and the demo's JSON report.

The numbers come from :mod:`rcdepth_ros.training.metrics` (per image, then averaged over
images, ranges 0-50/0-70/0-80 m, AUSE and calibration); this module only pairs the node's
outputs with the keyframes and writes the report.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
import tempfile
from typing import Any, Mapping, Sequence

import numpy as np

from ..training.metrics import EVAL_RANGES, MetricAccumulator, evaluate_image, range_name
from .scene import Keyframe

MAIN_RANGE = range_name(80.0)
SUMMARY_KEYS = ('mae', 'rmse', 'abs_rel', 'd1', 'ause_rmse', 'calib_1sigma', 'calib_2sigma')


def evaluate_keyframes(keyframes: Sequence[Keyframe],
                       results: Mapping[int, Mapping[str, np.ndarray]]
                       ) -> tuple[dict[str, dict[str, float]], list[dict[str, Any]]]:
    """Average metrics per range and one record per keyframe.

    ``results`` maps a stamp (ns) to ``{'depth': (H, W), 'uncertainty': (H, W)}`` (NaN where
    invalid). A keyframe without a result or without LiDAR in range is listed with
    ``evaluated: False`` and left out of the averages.
    """
    accumulator = MetricAccumulator(EVAL_RANGES)
    records = []
    for index, kf in enumerate(keyframes):
        record: dict[str, Any] = {
            'index': index, 'stamp_ns': kf.stamp_ns, 'sample_token': kf.token,
            'lidar_points': int(np.count_nonzero(kf.lidar_depth)),
            'radar_points': int(kf.radar_points.shape[0]), 'evaluated': False,
        }
        result = results.get(kf.stamp_ns)
        if result is not None:
            depth, sigma = result['depth'], result['uncertainty']
            if depth.shape != kf.lidar_depth.shape:
                raise ValueError(f'depth of keyframe {index} is {depth.shape}, '
                                 f'the camera image {kf.lidar_depth.shape}')
            if not np.isfinite(sigma).any():  # a model without sigma (the teacher): no
                sigma = None  # uncertainty metrics, rather than those of an infinite sigma
            per_range = evaluate_image(depth, kf.lidar_depth, sigma, EVAL_RANGES)
            if per_range:
                accumulator.add([per_range])
                record['evaluated'] = True
                main = per_range.get(MAIN_RANGE, next(iter(per_range.values())))
                record.update({key: main[key] for key in SUMMARY_KEYS if key in main})
                record['valid_depth_fraction'] = float(np.isfinite(depth).mean())
        records.append(record)
    return accumulator.compute(), records


def representative(records: Sequence[Mapping[str, Any]], count: int = 3) -> list[int]:
    """Pick keyframes to draw: the median-MAE one first, then others spread in time."""
    evaluated = [r for r in records if r.get('evaluated')]
    if not evaluated:
        return []
    by_mae = sorted(evaluated, key=lambda r: (r['mae'], r['index']))
    first = by_mae[(len(by_mae) - 1) // 2]['index']
    others = [r['index'] for r in evaluated if r['index'] != first]
    if count <= 1 or not others:
        return [first]
    picks = np.linspace(0, len(others) - 1, min(count - 1, len(others)))
    return [first] + [others[int(round(p))] for p in picks]


def summary_line(metrics: Mapping[str, Mapping[str, float]]) -> str:
    """One line of the main numbers (0-80 m, or the widest range evaluated)."""
    if not metrics:
        return 'no keyframe had LiDAR ground truth in range'
    name = MAIN_RANGE if MAIN_RANGE in metrics else sorted(metrics)[-1]
    m = metrics[name]
    line = (f'{name} m over {int(m["images"])} keyframes: MAE {m["mae"]:.3f} m, '
            f'RMSE {m["rmse"]:.3f} m, AbsRel {m["abs_rel"]:.3f}, d1 {m["d1"]:.3f}')
    if 'ause_rmse' not in m:
        return line + ', no uncertainty output'
    return (line + f', AUSE-RMSE {m["ause_rmse"]:.3f} m, |err|<=sigma {m["calib_1sigma"]:.2f}, '
            f'<=2sigma {m["calib_2sigma"]:.2f}')


def _finite(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | os.PathLike[str], data: Mapping[str, Any]) -> Path:
    """Write ``data`` as strict JSON (NaN/inf become null) via a temp file and rename."""
    path = Path(path)
    text = json.dumps(_finite(data), indent=2, allow_nan=False) + '\n'
    fd, tmp = tempfile.mkstemp(prefix=path.name + '.', suffix='.partial', dir=path.parent)
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
