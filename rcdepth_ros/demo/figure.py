"""The demo picture: image | radar overlay | depth | uncertainty | |error| vs LiDAR.

One row per keyframe (the first is the representative one), five panels a row, each with a
title and, under it, a colour bar in metres. Depth is the node's colour map
(:func:`rcdepth_ros.codec.colorize_depth`: turbo on a fixed log scale from 1 m to the
model's max depth); the radar points use the very same mapping, so a radar point and the depth
under it have the same colour when they agree. Rendered with matplotlib's Agg canvas (no
display, no pyplot state); the pixel size is fixed by :func:`figure_size`.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path
import tempfile
from typing import Sequence

import numpy as np

from .. import geometry
from ..codec import colorize_depth, depth_color_position

PANELS = ('image', 'radar', 'depth', 'uncertainty', 'error')
PANEL_WIDTH_IN = 3.6  # inches per panel
COLORBAR_IN = 0.75  # inches under each image for the colour bar and its label
TITLE_IN = 0.35  # inches above each image for the panel titles
HEADER_IN = 0.45  # inches for the figure title
DPI = 100
ERROR_RANGE = 80.0  # metres: LiDAR points beyond are not shown (the 0-80 m protocol)
_DEPTH_TICKS = (1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0)


@dataclass(frozen=True)
class FigureRow:
    """One keyframe of the picture (all arrays at the image resolution).

    ``rgb`` uint8 (H, W, 3); ``K`` (3, 3); ``radar_points`` (N, 6) camera frame;
    ``depth``/``sigma`` float32 (H, W) metres, NaN where invalid; ``lidar_depth`` float32
    (H, W), 0 = no return.
    """

    label: str
    rgb: np.ndarray
    K: np.ndarray
    radar_points: np.ndarray
    depth: np.ndarray
    sigma: np.ndarray
    lidar_depth: np.ndarray


def figure_size(rows: int, height: int, width: int, dpi: int = DPI) -> tuple[int, int]:
    """Pixel size ``(width, height)`` of the PNG for ``rows`` keyframes of ``height x width``."""
    if rows < 1 or height < 1 or width < 1:
        raise ValueError(f'need rows, height and width >= 1, got {rows}, {height}, {width}')
    width_in, height_in = _figure_inches(rows, height, width)
    return int(round(width_in * dpi)), int(round(height_in * dpi))


def _figure_inches(rows: int, height: int, width: int) -> tuple[float, float]:
    image_in = PANEL_WIDTH_IN * height / width
    return (len(PANELS) * PANEL_WIDTH_IN,
            HEADER_IN + rows * (TITLE_IN + image_in + COLORBAR_IN))


def _in_image(points: np.ndarray, K: np.ndarray, height: int, width: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Projected ``uv (M, 2)`` and ``depth (M,)`` of the points that land in the image."""
    if points.shape[0] == 0:
        return np.zeros((0, 2)), np.zeros(0)
    uv, depth = geometry.project_points(points[:, :3], K)
    keep = geometry.in_image_mask(uv, depth, height, width)
    return uv[keep], depth[keep]


def _error_points(depth: np.ndarray, lidar_depth: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, columns and |error| of LiDAR pixels, prediction clamped as in SPEC 5."""
    rows, cols = np.nonzero((lidar_depth > 1e-3) & (lidar_depth <= ERROR_RANGE))
    gt = lidar_depth[rows, cols].astype(np.float64)
    pred = np.nan_to_num(depth[rows, cols].astype(np.float64), nan=1e-3, posinf=ERROR_RANGE)
    return rows, cols, np.abs(np.clip(pred, 1e-3, ERROR_RANGE) - gt)


def _depth_colorbar(fig, cax, max_depth: float) -> None:
    from matplotlib import cm, colors

    mappable = cm.ScalarMappable(norm=colors.Normalize(0.0, 1.0), cmap='turbo')
    bar = fig.colorbar(mappable, cax=cax, orientation='horizontal')
    ticks = [d for d in _DEPTH_TICKS if d <= max_depth]
    bar.set_ticks(depth_color_position(np.array(ticks), max_depth))
    bar.set_ticklabels([f'{d:g}' for d in ticks])
    bar.set_label('depth (m), log scale')


def _draw_row(fig, axes, caxes, row: FigureRow, max_depth: float) -> None:
    height, width = row.depth.shape
    dim = (row.rgb.astype(np.float32) * 0.45).astype(np.uint8)
    from matplotlib import colormaps

    turbo = colormaps['turbo']

    ax = axes[0]
    ax.imshow(row.rgb)
    ax.set_title(f'image  {row.label}', fontsize=9)
    caxes[0].axis('off')

    ax = axes[1]
    ax.imshow(dim)
    uv, radar_depth = _in_image(row.radar_points, row.K, height, width)
    ax.scatter(uv[:, 0], uv[:, 1], s=14, c=turbo(depth_color_position(radar_depth, max_depth)),
               edgecolors='white', linewidths=0.3)
    ax.set_title(f'radar overlay ({len(radar_depth)} points in view)', fontsize=9)
    _depth_colorbar(fig, caxes[1], max_depth)

    ax = axes[2]
    ax.imshow(np.ascontiguousarray(colorize_depth(row.depth, max_depth)[:, :, ::-1]))
    finite = np.isfinite(row.depth)
    ax.set_title(f'depth ({100.0 * finite.mean():.0f} % valid)', fontsize=9)
    _depth_colorbar(fig, caxes[2], max_depth)

    ax = axes[3]
    sigma = np.where(np.isfinite(row.sigma), row.sigma, np.nan)
    top = float(np.nanpercentile(sigma, 95)) if np.isfinite(sigma).any() else 1.0
    cmap = colormaps['magma'].with_extremes(bad='black')
    image = ax.imshow(np.ma.masked_invalid(sigma), cmap=cmap, vmin=0.0, vmax=max(top, 1e-3))
    ax.set_title('uncertainty σ' if np.isfinite(sigma).any()
                 else 'uncertainty σ: none (this model has no σ output)', fontsize=9)
    fig.colorbar(image, cax=caxes[3], orientation='horizontal').set_label('σ (m)')

    ax = axes[4]
    ax.imshow(dim)
    rows, cols, err = _error_points(row.depth, row.lidar_depth)
    top = max(1.0, float(np.percentile(err, 95))) if err.size else 1.0
    points = ax.scatter(cols, rows, s=2, c=err, cmap='RdYlGn_r', vmin=0.0, vmax=top,
                        linewidths=0)
    mae = f'MAE {err.mean():.2f} m' if err.size else 'no LiDAR'
    ax.set_title(f'|error| vs LiDAR ({err.size} points, {mae})', fontsize=9)
    fig.colorbar(points, cax=caxes[4], orientation='horizontal').set_label('|error| (m)')
    for ax in axes:
        ax.set_anchor('S')  # sit on the colour bar; the title takes the space above
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
        ax.set_xticks([])
        ax.set_yticks([])


def render_figure(rows: Sequence[FigureRow], path: str | os.PathLike[str], title: str = '',
                  max_depth: float = 100.0) -> list[list[tuple[int, int, int, int]]]:
    """Draw the keyframes into a PNG at ``path`` (written atomically).

    Returns where each panel's image lies in the PNG: per row, per panel of :data:`PANELS`,
    ``(left, top, right, bottom)`` pixels (top-left origin, right/bottom exclusive).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not rows:
        raise ValueError('the figure needs at least one keyframe')
    height, width = rows[0].depth.shape
    for row in rows:
        if row.depth.shape != (height, width) or row.rgb.shape[:2] != (height, width):
            raise ValueError('every row of the figure needs images of the same size')
    width_in, height_in = _figure_inches(len(rows), height, width)
    fig = Figure(figsize=(width_in, height_in), dpi=DPI)
    canvas = FigureCanvasAgg(fig)
    image_in = PANEL_WIDTH_IN * height / width
    ratios = [TITLE_IN + image_in, COLORBAR_IN] * len(rows)
    top = 1.0 - HEADER_IN / height_in
    grid = fig.add_gridspec(2 * len(rows), len(PANELS), height_ratios=ratios, left=0.01,
                            right=0.99, bottom=0.0, top=top, wspace=0.05, hspace=0.0)
    all_axes = []
    for i, row in enumerate(rows):
        axes = [fig.add_subplot(grid[2 * i, j]) for j in range(len(PANELS))]
        all_axes.append(axes)
        caxes = []
        for j in range(len(PANELS)):
            # The bar takes the middle of its slot: ticks and label need the rest.
            slot = grid[2 * i + 1, j].subgridspec(3, 3, height_ratios=[0.1, 0.2, 0.7],
                                                  width_ratios=[0.05, 0.9, 0.05])
            caxes.append(fig.add_subplot(slot[1, 1]))
        _draw_row(fig, axes, caxes, row, max_depth)
    if title:
        fig.suptitle(title, fontsize=11, y=1.0 - 0.1 * HEADER_IN / height_in, va='top')
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + '.', suffix='.partial', dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=DPI, format='png')
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    renderer = canvas.get_renderer()
    total_h = int(round(height_in * DPI))
    boxes = []
    for axes in all_axes:
        boxes.append([])
        for ax in axes:
            box = ax.get_window_extent(renderer)  # display pixels, bottom-left origin
            boxes[-1].append((int(round(box.x0)), total_h - int(round(box.y1)),
                              int(round(box.x1)), total_h - int(round(box.y0))))
    return boxes


BEV_RANGE_M = 40.0  # half-width of the bird's-eye view
BEV_PX = 640
SURROUND_PANEL_W = 320
# One colour a camera (BGR), LiDAR drawn over them in white.
_CAMERA_BGR = ((66, 135, 245), (60, 180, 75), (230, 190, 0), (180, 30, 145), (0, 130, 200),
               (40, 40, 230))


def render_surround(cameras: Sequence[str], depths: Sequence[np.ndarray],
                    Ks: Sequence[np.ndarray], T_ref_from_camera: Sequence[np.ndarray],
                    lidar: np.ndarray, path: str | os.PathLike[str], title: str = '',
                    max_depth: float = 80.0, stride: int = 2) -> tuple[int, int]:
    """Write the surround picture: a bird's-eye view beside the cameras' depth panels.

    The view shows every camera's depth as points seen from above (one colour a camera) with
    the LiDAR over them. ``depths`` float32 (H, W) metres (NaN = none) with their ``Ks`` and
    poses in the reference ego frame (x forward, y left); ``lidar`` (N, 3) in that frame.
    Returns the picture's (height, width).
    """
    import cv2

    from .. import codec, geometry

    bev = np.full((BEV_PX, BEV_PX, 3), 24, np.uint8)
    scale = BEV_PX / (2 * BEV_RANGE_M)  # px per metre

    def to_px(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        col = np.rint(BEV_PX / 2 - xy[:, 1] * scale).astype(np.int64)  # y left -> left
        row = np.rint(BEV_PX / 2 - xy[:, 0] * scale).astype(np.int64)  # x forward -> up
        keep = (row >= 0) & (row < BEV_PX) & (col >= 0) & (col < BEV_PX)
        return row[keep], col[keep], keep

    for i, (depth, K, T) in enumerate(zip(depths, Ks, T_ref_from_camera)):
        points = geometry.points_to_camera(geometry.depth_to_points(depth, K, stride), T)
        row, col, _ = to_px(points[:, :2])
        bev[row, col] = _CAMERA_BGR[i % len(_CAMERA_BGR)]
    above = lidar[lidar[:, 2] > 0.3]  # ego z = 0 on the road: leave the road out
    row, col, _ = to_px(above[:, :2])
    bev[row, col] = (255, 255, 255)
    cv2.circle(bev, (BEV_PX // 2, BEV_PX // 2), 4, (0, 0, 255), -1)  # the car
    cv2.putText(bev, f"bird's-eye view {2 * BEV_RANGE_M:.0f} m, LiDAR white", (8, 20),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)

    panels = []
    for i, (camera, depth) in enumerate(zip(cameras, depths)):
        bgr = codec.colorize_depth(depth, max_depth)
        h = int(round(bgr.shape[0] * SURROUND_PANEL_W / bgr.shape[1]))
        bgr = cv2.resize(bgr, (SURROUND_PANEL_W, h), interpolation=cv2.INTER_NEAREST)
        cv2.rectangle(bgr, (0, 0), (SURROUND_PANEL_W - 1, 18), _CAMERA_BGR[i % 6], -1)
        cv2.putText(bgr, camera, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                    cv2.LINE_AA)
        panels.append(bgr)
    ph = max(p.shape[0] for p in panels)
    panels = [np.pad(p, ((0, ph - p.shape[0]), (0, 0), (0, 0))) for p in panels]
    rows = [np.concatenate(panels[i:i + 3] + [np.zeros_like(panels[0])] * (3 - len(
        panels[i:i + 3])), axis=1) for i in range(0, len(panels), 3)]
    grid = np.concatenate(rows, axis=0)
    height = max(BEV_PX, grid.shape[0])
    canvas = np.full((height + 30, BEV_PX + grid.shape[1], 3), 255, np.uint8)
    canvas[30:30 + BEV_PX, :BEV_PX] = bev
    canvas[30:30 + grid.shape[0], BEV_PX:] = grid
    cv2.putText(canvas, title, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1,
                cv2.LINE_AA)
    if not cv2.imwrite(str(path), canvas):
        raise OSError(f'cannot write {path}')
    return canvas.shape[0], canvas.shape[1]
