"""On-disk format of prepared samples (written by ``rcdepth prepare``, read by the dataset).

Layout under the output folder ``OUT``::

    OUT/<split>/<sample_token>/          one folder per CAM_FRONT keyframe, renamed into place
        meta.json                         atomically when complete (a folder = a finished sample)
        depth_single.png                  single-scan LiDAR depth
        depth_dense.png                   interpolated accumulated LiDAR depth (D_d)
        depth_accumulated.png             accumulated LiDAR depth before interpolation
        confidence.png                    teacher confidence target
        radar.npz                         rasterised radar points
    OUT/<split>/manifest[.shard-I-of-N].json   counts, options, skipped samples with reasons

- Depth PNGs: 16-bit grayscale, value = round(depth_m * 256), 0 = no measurement (KITTI
  convention; 1/256 m resolution, up to 255.99 m).
- ``confidence.png``: 8-bit grayscale, 255 = confident, 0 = not (PNG deflate makes it about as
  small as a 1-bit image).
- ``radar.npz`` (compressed): ``rc`` int32 ``(N, 2)`` pixel (row, col) and ``features`` float32
  ``(N, 4)`` ``[z-depth m, RCS dBsm, vx m/s, vy m/s]`` (raw radar frame), one entry per
  occupied pixel after nearer-wins rasterisation; :func:`radar_points_to_image` rebuilds the
  ``(4, H, W)`` radar image exactly.
- ``meta.json``: ``token``, ``scene``, ``timestamp`` (camera, us), ``image`` (camera file
  relative to ``dataroot``), ``dataroot``, ``height``, ``width``, ``K`` (3x3 list),
  ``camera``, ``radars``, counts (``radar_points``, ``lidar_points``, ``accumulated_sweeps``,
  ``skipped_sweeps``) and ``format`` (= :data:`FORMAT_VERSION`).
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import os
from pathlib import Path
import shutil

import numpy as np

FORMAT_VERSION = 1
DEPTH_SCALE = 256.0
META_FILE = 'meta.json'
DEPTH_FILES = ('depth_single', 'depth_dense', 'depth_accumulated')


@dataclass
class PreparedSample:
    """Everything ``prepare`` computes for one keyframe (arrays at full image resolution)."""

    meta: dict
    depth_single: np.ndarray  # float32 (H, W) metres
    depth_dense: np.ndarray  # float32 (H, W) metres
    depth_accumulated: np.ndarray  # float32 (H, W) metres
    confidence: np.ndarray  # uint8 (H, W) in {0, 1}
    radar_rc: np.ndarray  # int32 (N, 2) (row, col)
    radar_features: np.ndarray  # float32 (N, 4)


def encode_depth_png(depth: np.ndarray) -> bytes:
    """Encode a ``float32 (H, W)`` depth image (metres) as a 16-bit PNG (x256)."""
    import cv2

    if depth.ndim != 2:
        raise ValueError(f'depth must be (H, W), got shape {depth.shape}')
    scaled = np.round(np.nan_to_num(depth, nan=0.0) * DEPTH_SCALE)
    ok, buf = cv2.imencode('.png', np.clip(scaled, 0, 65535).astype(np.uint16))
    assert ok, 'PNG encoding of a uint16 image cannot fail'
    return buf.tobytes()


def read_depth_png(path: str | Path) -> np.ndarray:
    """Read a 16-bit depth PNG written by :func:`encode_depth_png`; returns float32 metres."""
    import cv2

    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint16 or raw.ndim != 2:
        raise ValueError(f'not a 16-bit depth PNG: {path}')
    return raw.astype(np.float32) / DEPTH_SCALE


def read_confidence_png(path: str | Path) -> np.ndarray:
    """Read ``confidence.png``; returns ``uint8 (H, W)`` in {0, 1}."""
    import cv2

    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.ndim != 2:
        raise ValueError(f'not a confidence PNG: {path}')
    return (raw > 127).astype(np.uint8)


def read_radar_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``radar.npz``; returns ``(rc int32 (N, 2), features float32 (N, 4))``."""
    with np.load(path, allow_pickle=False) as data:
        rc = data['rc'].astype(np.int32).reshape(-1, 2)
        features = data['features'].astype(np.float32).reshape(-1, 4)
    if rc.shape[0] != features.shape[0]:
        raise ValueError(f'radar file {path}: {rc.shape[0]} pixels but {features.shape[0]} rows')
    return rc, features


def radar_points_to_image(rc: np.ndarray, features: np.ndarray, height: int,
                          width: int) -> np.ndarray:
    """Rebuild the ``float32 (4, H, W)`` radar image from stored pixels."""
    image = np.zeros((4, height, width), np.float32)
    if rc.shape[0]:
        image[:, rc[:, 0], rc[:, 1]] = features.T  # (4, N)
    return image


def sample_dir(out: str | Path, split: str, token: str) -> Path:
    """Return the folder of one prepared sample."""
    return Path(out) / split / token


def is_complete(path: str | Path) -> bool:
    """Return whether a sample folder was completely written (renamed into place)."""
    return (Path(path) / META_FILE).is_file()


def write_sample(out: str | Path, split: str, sample: PreparedSample) -> Path:
    """Write one sample atomically: into a hidden temp folder, then rename into place."""
    import cv2

    token = sample.meta['token']
    final = sample_dir(out, split, token)
    tmp = final.parent / f'.{token}.tmp{os.getpid()}'
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for name in DEPTH_FILES:
        (tmp / f'{name}.png').write_bytes(encode_depth_png(getattr(sample, name)))
    ok, buf = cv2.imencode('.png', (sample.confidence > 0).astype(np.uint8) * 255)
    assert ok, 'PNG encoding of a uint8 image cannot fail'
    (tmp / 'confidence.png').write_bytes(buf.tobytes())
    np.savez_compressed(tmp / 'radar.npz', rc=sample.radar_rc.astype(np.int32),
                        features=sample.radar_features.astype(np.float32))
    meta = dict(sample.meta, format=FORMAT_VERSION)
    (tmp / META_FILE).write_text(json.dumps(meta, indent=1))
    if final.exists():  # an incomplete leftover (no meta.json) from an interrupted run
        shutil.rmtree(final)
    os.rename(tmp, final)
    return final


def read_meta(path: str | Path) -> dict:
    """Read ``meta.json`` of a sample folder."""
    meta = json.loads((Path(path) / META_FILE).read_text())
    if meta.get('format') != FORMAT_VERSION:
        raise ValueError(f'{path}: prepared format {meta.get("format")}, '
                         f'expected {FORMAT_VERSION}; re-run rcdepth prepare')
    return meta


def list_samples(root: str | Path, split: str) -> list[Path]:
    """Return the complete sample folders of a split, sorted by name."""
    base = Path(root) / split
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir()
                  if p.is_dir() and not p.name.startswith('.') and is_complete(p))
